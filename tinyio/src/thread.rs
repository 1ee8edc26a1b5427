//! Blocking work on other threads, and what that work can ask about its own cancellation.
//!
//! Rust cannot raise an error inside another thread, so cancellation is cooperative: when the
//! loop crashes (or a [`timeout`](crate::timeout) expires), the thread's cancellation flag is set,
//! and the loop waits for the function to return before [`Loop::run`](crate::Loop::run) does.
//! Inside the function, [`is_cancelled`], [`check`] and [`sleep`] see that flag.

// How it works. A call is one `Arc<Call>` shared by its leaf and the thread that runs it: the
// function until a thread takes it, then the result. The `Cache` is one queue of jobs, a
// condition variable and a keep-alive: threads are started when a job would otherwise wait and
// leave after ten idle seconds. A `ThreadPool` is a limit in front of the same cache: its calls
// wait in its own queue, and at most `max_threads` of the cache's threads take turns at it.
// Cancelling a call that no thread took drops its function; cancelling a running one sets its
// flag, unparks its thread and leaves a join for the run to wait on: the join parks its own
// thread, and the call, as it ends, wakes the join's waker in place of its leaf's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::Coro;
use crate::coro::{Coroutine, Cx, Failure, Join, Leaf, coroutine};
use crate::error::{Error, Frame};
use crate::site::{Site, site};
use crate::wake::lock;
use crate::yieldable::suspend;

static RUN_IN_THREAD: Site = site!("run_in_thread");
static POOL_RUN: Site = site!("ThreadPool::run_in_thread");

/// A coroutine that runs `f` on another thread and finishes with its output.
///
/// Threads come from a cache that grows on demand and lets threads go after ten idle seconds,
/// so a call costs a few microseconds, not a thread spawn. A panic in `f` is fatal, as a panic in
/// a coroutine is: the loop cancels everything, then resumes the panic out of `run`. To raise an
/// error from `f`, return a `Result` and use `?` on the output, or use [`try_run_in_thread`].
///
/// When the loop is cancelled while `f` runs, `f` is told through [`thread::is_cancelled`] and
/// friends, and the loop waits for it to return.
///
/// [`thread::is_cancelled`]: crate::thread::is_cancelled
///
/// ```
/// use std::sync::{Arc, Barrier};
/// use tinyio::{Loop, run_in_thread};
///
/// // Each call waits until all 20 are inside at once: one by one, they would never finish.
/// let all_inside = Arc::new(Barrier::new(20));
/// let calls: Vec<_> = (0..20u64)
///     .map(|i| {
///         let all_inside = all_inside.clone();
///         run_in_thread(move || { all_inside.wait(); i * i })
///     })
///     .collect();
/// let squares = Loop::new().run(calls).unwrap();
/// assert_eq!(squares[3], 9);
/// ```
#[track_caller]
pub fn run_in_thread<T, F>(f: F) -> Coro<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    thread_call(&RUN_IN_THREAD, None, move || Ok(f()))
}

/// Like [`run_in_thread`], for a function that returns a `Result`: an `Err` raises in the loop
/// (its trace ends at this call), and an `Err` other than a cancellation returned after the loop
/// told the thread to stop is reported with the errors met while cancelling.
///
/// ```
/// use tinyio::{Loop, try_run_in_thread};
///
/// let parse = try_run_in_thread(|| "12".parse::<u32>());
/// assert_eq!(Loop::new().run(parse).unwrap(), 12);
///
/// let bad = try_run_in_thread(|| "twelve".parse::<u32>());
/// let err = Loop::new().run(bad).unwrap_err();
/// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
/// assert_eq!(err.trace()[0].name(), "run_in_thread");
/// ```
#[track_caller]
pub fn try_run_in_thread<T, E, F>(f: F) -> Coro<T>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    thread_call(&RUN_IN_THREAD, None, move || f().map_err(Error::new))
}

type Outcome<T> = std::thread::Result<Result<T, Error>>;

/// The function of a call, as its leaf and its thread see it.
trait Func<T>: FnOnce() -> Result<T, Error> + Send + 'static {}
impl<T, F: FnOnce() -> Result<T, Error> + Send + 'static> Func<T> for F {}

/// What the loop and the thread share for one call.
struct Call<F, T> {
    stage: Mutex<Stage<F, T>>,
    /// Set, under the `stage` lock, when the loop cancels the call.
    cancelled: AtomicBool,
}

enum Stage<F, T> {
    /// Waiting for a thread, with the waker to wake once it has run.
    Queued(F, Waker),
    /// Running on this thread, which a cancellation unparks (for [`sleep`] and the blocking
    /// operations of channels), with the waker to wake when it ends: its leaf's, or, once it
    /// is cancelled, its join's.
    Running(Thread, Waker),
    /// Ended: its outcome until it is taken (`None` too if the call was dropped unrun).
    Done(Option<Outcome<T>>),
}

impl<F, T> Stage<F, T> {
    /// The outcome, if the call has ended and it was not taken yet.
    fn take_outcome(&mut self) -> Option<Outcome<T>> {
        let Stage::Done(outcome) = self else { return None };
        outcome.take()
    }
}

/// Work for a thread of the cache: a call, or a turn at a pool's queue.
trait Job: Send + Sync {
    /// Runs the job on this thread; gives the waker to wake, which the caller wakes itself (a
    /// cache thread counts itself free first, so that the loop's next call finds it: see
    /// `Cache::work`).
    fn run(self: Arc<Self>) -> Option<Waker>;
    /// Whether the loop told the job to stop.
    fn cancelled(&self) -> bool {
        false
    }
}

impl<T: Send + 'static, F: Func<T>> Job for Call<F, T> {
    fn run(self: Arc<Self>) -> Option<Waker> {
        let mut stage = lock(&self.stage);
        if self.cancelled() {
            return None; // withdrawn before it started: its leaf drops it
        }
        // Else still queued, unless its leaf dropped it already.
        let Stage::Queued(f, waker) = mem::replace(&mut *stage, Stage::Done(None)) else {
            return None;
        };
        *stage = Stage::Running(std::thread::current(), waker);
        drop(stage);
        CURRENT.set(Some(self.clone()));
        let outcome = panic::catch_unwind(AssertUnwindSafe(f));
        CURRENT.set(None);
        let ran = mem::replace(&mut *lock(&self.stage), Stage::Done(Some(outcome)));
        let Stage::Running(_, waker) = ran else { unreachable!("only its thread ends a call") };
        Some(waker)
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// The leaf of a thread call: its function until the first poll sends it to a thread, then
/// the call.
struct ThreadCall<F, T> {
    f: Option<F>,
    call: Option<Arc<Call<F, T>>>,
    /// The pool whose queue the call waits in, or `None` for a call of its own.
    pool: Option<Arc<Pool>>,
    site: &'static Site,
    at: &'static Location<'static>,
}

#[track_caller]
fn thread_call<T: Send + 'static>(
    site: &'static Site,
    pool: Option<Arc<Pool>>,
    f: impl Func<T>,
) -> Coro<T> {
    let at = Location::caller();
    Coroutine::leaf(site, ThreadCall { f: Some(f), call: None, pool, site, at })
}

impl<T: Send + 'static, F: Func<T>> Leaf for ThreadCall<F, T> {
    type Output = T;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<T, Error>> {
        if let Some(f) = self.f.take() {
            let stage = Mutex::new(Stage::Queued(f, (cx.waker)()));
            let call = Arc::new(Call { stage, cancelled: AtomicBool::new(false) });
            match &self.pool {
                Some(pool) => pool.push(call.clone()),
                None => CACHE.push(call.clone()).expect(SPAWN_FAILED),
            }
            self.call = Some(call);
            return Poll::Pending;
        }
        let call = self.call.as_ref().expect("polled a finished thread call");
        let Some(outcome) = lock(&call.stage).take_outcome() else { return Poll::Pending };
        match outcome {
            Ok(Ok(output)) => Poll::Ready(Ok(output)),
            Ok(Err(error)) => Poll::Ready(Err(error.raised_at(self.at))),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    fn withdraw(&mut self) {
        // Under the lock, so that no thread is taking it meanwhile: one that comes to it now
        // leaves it queued, for `cancel` to drop.
        if let Some(call) = &self.call
            && let Stage::Queued(..) = *lock(&call.stage)
        {
            call.cancelled.store(true, Ordering::Relaxed);
        }
    }

    fn cancel(&mut self, cx: &mut Cx<'_>) {
        let Some(call) = self.call.take() else { return }; // never started
        let mut stage = lock(&call.stage);
        if let Stage::Queued(..) | Stage::Done(None) = *stage {
            // No thread took it: drop it unrun, outside the lock. The queue keeps an empty call.
            let unstarted = mem::replace(&mut *stage, Stage::Done(None));
            drop(stage);
            drop(unstarted);
            return;
        }
        call.cancelled.store(true, Ordering::Relaxed);
        if let Stage::Running(thread, _) = &*stage {
            thread.unpark();
        }
        drop(stage);
        let (site, at) = (self.site, self.at);
        cx.joins.push(Join {
            frame: Frame { name: site.name, file: at.file(), line: at.line() },
            wait: Box::new(move |deadline| join(&call, site, at, deadline)),
        });
    }
}

/// Waits until a cancelled call has returned (or `deadline` passes: `Pending`), and gives what
/// it failed with, if anything but its cancellation.
fn join<F, T>(
    call: &Call<F, T>,
    site: &'static Site,
    at: &'static Location<'static>,
    deadline: Option<Instant>,
) -> Poll<Option<Failure>> {
    let outcome = ready!(block_until(deadline, |cx| {
        let mut stage = lock(&call.stage);
        match &mut *stage {
            Stage::Running(_, waker) => {
                waker.clone_from(cx.waker()); // the call wakes this thread as it ends
                Poll::Pending
            }
            stage => Poll::Ready(stage.take_outcome()),
        }
    }));
    Poll::Ready(match outcome {
        Some(Ok(Err(error))) if !error.is_cancelled() => {
            Some(Failure::Error(error.raised_at(at).traced(site.frame(0), Vec::new())))
        }
        Some(Err(payload)) => Some(Failure::Panic(payload)),
        // What nobody will take (an output, say, of a call that returned as it was cancelled).
        outcome => drop_caught(outcome),
    })
}

/// Drops `value` of user code (an output nobody will take) where a panic must not cut the
/// joins of the other threads short: the panic is given instead.
pub(crate) fn drop_caught<T>(value: T) -> Option<Failure> {
    panic::catch_unwind(AssertUnwindSafe(|| drop(value))).err().map(Failure::Panic)
}

/// Polls `poll` with a waker that unparks this thread (for `poll` to hand on) until it is
/// ready, parking this thread in between; `Pending` once `deadline` has passed.
pub(crate) fn block_until<R>(
    deadline: Option<Instant>,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>,
) -> Poll<R> {
    let waker = crate::wake::this_thread();
    loop {
        if let Poll::Ready(ready) = poll(&mut Context::from_waker(&waker)) {
            return Poll::Ready(ready);
        }
        match deadline.map(|deadline| deadline.checked_duration_since(Instant::now())) {
            None => std::thread::park(),
            Some(Some(left)) => std::thread::park_timeout(left),
            Some(None) => return Poll::Pending,
        }
    }
}

thread_local! {
    /// The call this thread is running, if it runs one for a loop.
    static CURRENT: RefCell<Option<Arc<dyn Job>>> = const { RefCell::new(None) };
}

/// Whether the loop that started this thread's work has told it to stop. Always `false` outside
/// [`run_in_thread`].
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, run_in_thread, thread};
///
/// #[tinyio::coroutine]
/// fn fails() -> () {
///     yield_!(tinyio::sleep(Duration::from_millis(10)));
///     tinyio::bail!("boom");
/// }
///
/// let work = run_in_thread(|| {
///     while !thread::is_cancelled() {
///         std::thread::sleep(Duration::from_millis(1));
///     }
///     "told to stop"
/// });
/// let err = Loop::new().run((work, fails())).unwrap_err();
/// assert_eq!(err.to_string(), "boom"); // and the thread has returned
/// assert!(!thread::is_cancelled());
/// ```
pub fn is_cancelled() -> bool {
    CURRENT.with_borrow(|call| call.as_ref().is_some_and(|call| call.cancelled()))
}

/// `Err` (a cancellation) if this thread's work was told to stop, for `?`.
///
/// ```
/// assert!(tinyio::thread::check().is_ok());
/// ```
pub fn check() -> Result<(), Error> {
    if is_cancelled() { Err(Error::cancelled()) } else { Ok(()) }
}

/// Sleeps like [`std::thread::sleep`], but returns `Err` (a cancellation) as soon as this
/// thread's work is told to stop.
///
/// ```
/// use std::time::Duration;
/// assert!(tinyio::thread::sleep(Duration::from_millis(1)).is_ok());
/// ```
pub fn sleep(duration: Duration) -> Result<(), Error> {
    if CURRENT.with_borrow(Option::is_none) {
        std::thread::sleep(duration); // no call to cancel it, and no park to steal a wake-up from
        return Ok(());
    }
    // Unparked by a cancellation, or early for nothing.
    let cancelled =
        |_: &mut Context<'_>| if is_cancelled() { Poll::Ready(()) } else { Poll::Pending };
    let _ = block_until(Some(crate::time::after(duration)), cancelled);
    check()
}

/// At most `max_threads` calls of [`run_in_thread`] at once; the others wait their turn, in order.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Arc;
/// use tinyio::{Loop, ThreadPool};
///
/// let pool = ThreadPool::new(2);
/// let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
/// let squares = pool.map(
///     move |x: u64| {
///         most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
///         std::thread::sleep(std::time::Duration::from_millis(2));
///         now.fetch_sub(1, SeqCst);
///         x * x
///     },
///     0..10,
/// );
/// assert_eq!(Loop::new().run(squares).unwrap(), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// ```
#[derive(Clone)]
pub struct ThreadPool(Arc<Pool>);

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("max_threads", &self.0.max_threads)
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// A pool running at most `max_threads` calls at once. Panics if `max_threads` is zero.
    ///
    /// ```
    /// let pool = tinyio::ThreadPool::new(4);
    /// assert!(format!("{pool:?}").contains("max_threads: 4"));
    /// ```
    pub fn new(max_threads: usize) -> Self {
        assert!(max_threads > 0, "`ThreadPool::new(0)` could never run anything; use at least 1");
        let state = Mutex::new(PoolState { calls: VecDeque::new(), threads: 0 });
        ThreadPool(Arc::new(Pool { max_threads, state }))
    }

    /// Like [`run_in_thread`], once a thread of this pool is free.
    ///
    /// ```
    /// let pool = tinyio::ThreadPool::new(1);
    /// let id = pool.run_in_thread(|| std::thread::current().id());
    /// assert_ne!(tinyio::Loop::new().run(id).unwrap(), std::thread::current().id());
    /// ```
    #[track_caller]
    pub fn run_in_thread<T, F>(&self, f: F) -> Coro<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        thread_call(&POOL_RUN, Some(self.0.clone()), move || Ok(f()))
    }

    /// Like [`try_run_in_thread`], once a thread of this pool is free.
    ///
    /// ```
    /// use tinyio::{Loop, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2);
    /// let ok = pool.try_run_in_thread(|| "7".parse::<u32>());
    /// assert_eq!(Loop::new().run(ok).unwrap(), 7);
    /// let err = pool.try_run_in_thread(|| "x".parse::<u32>());
    /// assert!(Loop::new().run(err).is_err());
    /// ```
    #[track_caller]
    pub fn try_run_in_thread<T, E, F>(&self, f: F) -> Coro<T>
    where
        T: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        thread_call(&POOL_RUN, Some(self.0.clone()), move || f().map_err(Error::new))
    }

    /// Runs `f` on each of `xs` in this pool; the outputs come back in the order of `xs`.
    ///
    /// ```
    /// let pool = tinyio::ThreadPool::new(2);
    /// let lengths = pool.map(|s: &str| s.len(), ["a", "bb", "ccc"]);
    /// assert_eq!(tinyio::Loop::new().run(lengths).unwrap(), [1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn map<X, T, F>(&self, f: F, xs: impl IntoIterator<Item = X>) -> Coro<Vec<T>>
    where
        X: Send + 'static,
        T: Send + 'static,
        F: Fn(X) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        // A loop, not a closure: `#[track_caller]` does not reach into closures.
        let mut calls: Vec<Coro<T>> = Vec::new();
        for x in xs {
            let f = f.clone();
            calls.push(self.run_in_thread(move || f(x)));
        }
        coroutine(&POOL_RUN, move |co| async move { Ok(suspend(&co, calls, line!()).await?) })
    }
}

/// A pool's own queue of calls, at which at most `max_threads` of the cache's threads take
/// turns. A call cancelled while queued stays in the queue with nothing in it: its function was
/// dropped by the cancel.
struct Pool {
    max_threads: usize,
    state: Mutex<PoolState>,
}

struct PoolState {
    calls: VecDeque<Arc<dyn Job>>,
    /// Cache threads taking turns at the queue.
    threads: usize,
}

impl Pool {
    fn push(self: &Arc<Self>, call: Arc<dyn Job>) {
        let mut state = lock(&self.state);
        state.calls.push_back(call);
        if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            CACHE.push(self.clone()).expect(SPAWN_FAILED);
        }
    }
}

/// A pool as a job of the cache: one thread's turn at its queue, which runs calls until none is
/// left.
impl Job for Pool {
    fn run(self: Arc<Self>) -> Option<Waker> {
        let mut state = lock(&self.state);
        while let Some(call) = state.calls.pop_front() {
            drop(state);
            if let Some(waker) = call.run() {
                waker.wake();
            }
            state = lock(&self.state);
        }
        state.threads -= 1;
        None
    }
}

const SPAWN_FAILED: &str = "failed to spawn a thread for `run_in_thread`";

/// The cache of threads that run blocking calls for every loop in the process: a thread with
/// nothing to do waits ten seconds for work before it exits.
static CACHE: Cache = Cache::new(Duration::from_secs(10));

/// Threads taking jobs from one queue: started on demand, leaving after `keep_alive` idle.
///
/// A thread is *free* while it is neither running a job nor asleep: it is about to look at the
/// queue. The invariant, whenever the lock is released: **if jobs are queued, at least one
/// thread is free**, so that no job waits behind running ones while a thread could take it.
/// Whoever leaves jobs queued with no thread free (`push`, or a thread taking a job) wakes a
/// sleeping thread or starts one, and counts it free at once: one wake-up serves one job, and a
/// burst of jobs is drained by the threads already awake.
struct Cache {
    state: Mutex<CacheState>,
    /// Where sleeping threads wait for a wake-up (`CacheState::wakeups`).
    wake: Condvar,
    keep_alive: Duration,
}

struct CacheState {
    jobs: VecDeque<Arc<dyn Job>>,
    /// Threads free, as above.
    free: usize,
    /// Threads asleep.
    sleeping: usize,
    /// Wake-ups handed out to sleeping threads and not yet taken.
    wakeups: usize,
}

impl Cache {
    const fn new(keep_alive: Duration) -> Self {
        let state = CacheState { jobs: VecDeque::new(), free: 0, sleeping: 0, wakeups: 0 };
        Cache { state: Mutex::new(state), wake: Condvar::new(), keep_alive }
    }

    /// Queues a job. Should no thread be free and none start, the job stays queued for the next
    /// thread that is free.
    fn push(&'static self, job: Arc<dyn Job>) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.jobs.push_back(job);
        self.keep_one_free(state)
    }

    /// Makes one more thread free (a sleeping one, or a new one) if jobs wait and none is.
    /// Releases the lock.
    fn keep_one_free(&'static self, mut state: MutexGuard<'_, CacheState>) -> io::Result<()> {
        if state.jobs.is_empty() || state.free > 0 {
            return Ok(());
        }
        state.free += 1;
        if state.sleeping > state.wakeups {
            state.wakeups += 1;
            drop(state);
            self.wake.notify_one();
            return Ok(());
        }
        drop(state);
        let spawned =
            std::thread::Builder::new().name("tinyio-blocking".into()).spawn(move || self.work());
        spawned.map(drop).inspect_err(|_| lock(&self.state).free -= 1)
    }

    /// A thread's life; it starts free.
    fn work(&'static self) {
        let mut state = lock(&self.state);
        loop {
            state.free -= 1; // to run a job, or to sleep
            if let Some(job) = state.jobs.pop_front() {
                // Should no thread start, this one serves the rest after its job.
                let _ = self.keep_one_free(state);
                let waker = job.run();
                lock(&self.state).free += 1;
                // Counted free before the loop hears of the end, so that its next call finds
                // this thread rather than starting another.
                if let Some(waker) = waker {
                    waker.wake();
                }
                state = lock(&self.state);
            } else {
                state.sleeping += 1;
                let woken =
                    self.wake.wait_timeout_while(state, self.keep_alive, |s| s.wakeups == 0);
                state = woken.unwrap_or_else(PoisonError::into_inner).0;
                state.sleeping -= 1;
                if state.wakeups == 0 {
                    return; // the keep-alive passed with no wake-up
                }
                state.wakeups -= 1; // free again: counted by the waker
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;
    use crate::{Loop, timeout};

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// Polls `done` until it holds, for 10 s at most.
    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// A leaf that, when started, holds the loop's thread until `started` hears from a call.
    /// Leaves start as they are yielded, in order: gathered after the call, it starts right
    /// after it, before the loop looks at a timer again, so that no timeout can stop the call
    /// while it is still queued (which drops it unrun).
    fn holds_the_loop_until(started: std::sync::mpsc::Receiver<()>) -> Coro<()> {
        crate::from_future(async move {
            let started = started.recv_timeout(Duration::from_secs(30));
            started.expect("the call started");
        })
    }

    /// Counts the runs of its jobs, and the threads that ran one: a thread counts itself in at
    /// its first job, and out (`left`) when it exits, as its thread-locals are destroyed.
    #[derive(Default)]
    struct Tally {
        runs: AtomicUsize,
        threads: AtomicUsize,
        left: Arc<AtomicUsize>,
    }

    thread_local! {
        static LEAVING: std::cell::OnceCell<DropCount> = const { std::cell::OnceCell::new() };
    }

    impl Tally {
        fn job(self: &Arc<Self>) -> Arc<dyn Job> {
            let tally = self.clone();
            let count = move || {
                LEAVING.with(|leaving| {
                    leaving.get_or_init(|| {
                        tally.threads.fetch_add(1, SeqCst);
                        DropCount(tally.left.clone())
                    });
                });
                tally.runs.fetch_add(1, SeqCst);
                Ok(())
            };
            let stage = Mutex::new(Stage::Queued(count, Waker::noop().clone()));
            Arc::new(Call::<_, ()> { stage, cancelled: AtomicBool::new(false) })
        }

        fn alive(&self) -> usize {
            self.threads.load(SeqCst) - self.left.load(SeqCst)
        }
    }

    /// Counts its drops.
    struct DropCount(Arc<AtomicUsize>);

    impl Drop for DropCount {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn keep_alive_expiring_as_a_job_is_handed_over() {
        // Idle threads leave at once (or after 20 us), so pushes at random gaps keep meeting a
        // thread whose keep-alive is expiring: every job must run exactly once, and every
        // thread must eventually leave with the books balanced.
        const JOBS: usize = 3000;
        for keep_alive in [Duration::ZERO, Duration::from_micros(20)] {
            let cache: &'static Cache = Box::leak(Box::new(Cache::new(keep_alive)));
            let tally = Arc::new(Tally::default());
            let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
            for _ in 0..JOBS {
                cache.push(tally.job()).unwrap();
                // Around the keep-alive.
                let gap = Duration::from_micros(next(40));
                let start = Instant::now();
                while start.elapsed() < gap {
                    std::hint::spin_loop();
                }
            }
            wait_until("every job to run", || tally.runs.load(SeqCst) == JOBS);
            wait_until("every thread to leave, with the books balanced", || {
                let state = lock(&cache.state);
                let books = (state.free, state.sleeping, state.wakeups, state.jobs.len());
                tally.alive() == 0 && books == (0, 0, 0, 0)
            });
            assert_eq!(tally.runs.load(SeqCst), JOBS, "a job ran twice");
        }
    }

    #[test]
    fn idle_threads_are_reused_then_leave() {
        let cache: &'static Cache = Box::leak(Box::new(Cache::new(ms(100))));
        let tally = Arc::new(Tally::default());
        for round in 1..=20 {
            cache.push(tally.job()).unwrap();
            wait_until("the job to run", || tally.runs.load(SeqCst) == round);
        }
        assert_eq!(tally.threads.load(SeqCst), 1, "one thread served every job");
        wait_until("the idle thread to leave", || tally.alive() == 0);
    }

    #[test]
    fn no_call_waits_behind_a_running_call() {
        // Each call returns only once all of them have started: they must all run at once,
        // although the loop starts them in a burst that the first threads could drain.
        const N: usize = 40;
        let started = Arc::new(AtomicUsize::new(0));
        let calls: Vec<Coro<bool>> = (0..N)
            .map(|_| {
                let started = started.clone();
                run_in_thread(move || {
                    started.fetch_add(1, SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while started.load(SeqCst) < N && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    started.load(SeqCst) == N
                })
            })
            .collect();
        let all = Loop::new().run(calls).unwrap();
        assert!(all.into_iter().all(|together| together));
    }

    #[test]
    fn a_pool_starts_its_second_thread_while_the_first_is_busy() {
        let pool = ThreadPool::new(2);
        let started = Arc::new(AtomicUsize::new(0));
        let calls: Vec<Coro<bool>> = (0..6)
            .map(|_| {
                let started = started.clone();
                pool.run_in_thread(move || {
                    let me = started.fetch_add(1, SeqCst) + 1;
                    // The first two wait for each other; the rest go through one by one.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while me <= 2 && started.load(SeqCst) < 2 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    started.load(SeqCst) >= 2
                })
            })
            .collect();
        let together = Loop::new().run(calls).unwrap();
        assert!(together.into_iter().all(|t| t));
    }

    #[test]
    fn cancelling_a_pool_drops_queued_calls_unrun_and_joins_the_running_one() {
        let pool = ThreadPool::new(1);
        let (ran, dropped, ended) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (started, running_now) = std::sync::mpsc::channel();
        let running = {
            let ended = ended.clone();
            pool.run_in_thread(move || {
                started.send(()).unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                while !is_cancelled() && Instant::now() < deadline {
                    std::thread::sleep(ms(1));
                }
                let told = is_cancelled();
                std::thread::sleep(ms(20)); // cleaning up
                ended.store(true, SeqCst);
                told
            })
        };
        let queued: Vec<Coro<()>> = (0..5)
            .map(|_| {
                let (ran, guard) = (ran.clone(), DropCount(dropped.clone()));
                pool.run_in_thread(move || {
                    let _guard = guard;
                    ran.fetch_add(1, SeqCst);
                })
            })
            .collect();
        let held = holds_the_loop_until(running_now);
        let out = Loop::new().run(timeout((running, queued, held), ms(30))).unwrap();
        assert!(out.is_none(), "timed out");
        assert!(ended.load(SeqCst), "the running call was joined before `run` returned");
        assert_eq!(ran.load(SeqCst), 0, "no queued call ran");
        assert_eq!(dropped.load(SeqCst), 5, "the queued calls were dropped by `run`");
        // The pool still works, and its thread takes the next calls.
        let again = pool.map(|x: u64| x + 1, 0..3);
        assert_eq!(Loop::new().run(again).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn cancelling_races_with_calls_ending() {
        // Timeouts of about the calls' own length: the cancel meets calls that have not
        // started, that run, that are ending and that have ended. Every run must return, with
        // every call either done or joined.
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..200u64 {
            let calls: Vec<Coro<()>> = (0..4)
                .map(|j| {
                    let running = running.clone();
                    run_in_thread(move || {
                        running.fetch_add(1, SeqCst);
                        let start = Instant::now();
                        let length = Duration::from_micros((i * 7 + j * 13) % 200);
                        while start.elapsed() < length && !is_cancelled() {
                            std::hint::spin_loop();
                        }
                        running.fetch_sub(1, SeqCst);
                    })
                })
                .collect();
            let length = Duration::from_micros((i * 11) % 150);
            Loop::new().run(timeout(calls, length)).unwrap();
            assert_eq!(running.load(SeqCst), 0, "a call outlived `run`");
        }
    }

    #[test]
    fn a_join_sees_an_error_returned_after_the_cancellation() {
        #[derive(Debug, thiserror::Error)]
        #[error("clean-up failed")]
        struct CleanupFailed;
        let (started, running) = std::sync::mpsc::channel();
        let call = try_run_in_thread(move || {
            started.send(()).unwrap();
            while !is_cancelled() {
                std::thread::sleep(ms(1));
            }
            Err::<(), _>(CleanupFailed)
        });
        let held = holds_the_loop_until(running);
        let err = Loop::new().run(timeout((call, held), ms(10))).unwrap_err();
        assert!(err.downcast_ref::<CleanupFailed>().is_some(), "{err:?}");
        assert_eq!(err.trace().last().map(|f| f.name()), Some("run_in_thread"));
    }
}

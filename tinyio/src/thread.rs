//! Blocking work on other threads, and what that work can ask about its own cancellation.
//!
//! Rust cannot raise an error inside another thread, so cancellation is cooperative: when the
//! loop crashes (or a [`timeout`](crate::timeout) expires), the thread's cancellation flag is set,
//! and the loop waits for the function to return before [`Loop::run`](crate::Loop::run) does.
//! Inside the function, [`is_cancelled`], [`check`] and [`sleep`] see that flag.

// A call is one `Arc<Call>` shared by the loop's leaf and the thread that runs it: the function
// until a thread takes it, then the result. Calls go through one process-wide `Cache` of
// threads; a `ThreadPool` queues its calls and lets at most `max_threads` of the cache's threads
// work through its queue. Both follow the hand-off protocol described at `Cache`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::Coro;
use crate::coro::{Coroutine, Cx, Leaf, Site, coroutine, site, suspend};
use crate::error::Error;
use crate::event_loop::Notify;
use crate::run::Failure;

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
    ThreadCall::coroutine(&RUN_IN_THREAD, None, move || Ok(f()))
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
    ThreadCall::coroutine(&RUN_IN_THREAD, None, move || f().map_err(Error::new))
}

type Outcome<T> = std::thread::Result<Result<T, Error>>;

/// What the loop and the thread share for one call.
struct Call<F, T> {
    /// Wakes the leaf.
    notify: Notify,
    stage: Mutex<Stage<F, T>>,
    /// Signalled when the call ends, only if a join waits for it (`Stage::Running::joined`).
    done: Condvar,
    cancelled: AtomicBool,
}

enum Stage<F, T> {
    /// Waiting for a thread.
    Queued(F),
    /// Running on `thread` (unparked on cancellation); `joined` once a join waits for the end.
    Running {
        thread: Thread,
        joined: bool,
    },
    Done(Outcome<T>),
    /// The outcome was taken, or the call was dropped before it started.
    Over,
}

impl<F, T> Stage<F, T> {
    /// The outcome, if the call has ended (the stage is then over); else nothing changes.
    fn take_outcome(&mut self) -> Option<Outcome<T>> {
        match mem::replace(self, Stage::Over) {
            Stage::Done(outcome) => Some(outcome),
            stage => {
                *self = stage;
                None
            }
        }
    }
}

/// A job for the cache's threads.
enum Job {
    Call(Arc<dyn Run>),
    /// A turn at a pool's queue.
    Pool(Arc<PoolQueue>),
}

/// A call, whatever its types.
trait Run: Send + Sync {
    /// Does the job, calls `finished` once no user code is left to run (at once for a call
    /// dropped before it started), then wakes whoever waits for the job.
    fn run(self: Arc<Self>, finished: &dyn Fn());
}

impl<F, T> Run for Call<F, T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    fn run(self: Arc<Self>, finished: &dyn Fn()) {
        let mut stage = lock(&self.stage);
        if !matches!(*stage, Stage::Queued(..)) {
            drop(stage);
            return finished(); // dropped by its leaf before it started
        }
        let running = Stage::Running {
            thread: std::thread::current(),
            joined: false,
        };
        let Stage::Queued(f) = mem::replace(&mut *stage, running) else {
            unreachable!("checked")
        };
        drop(stage);
        CURRENT.with(|current| *current.borrow_mut() = Some(self.clone()));
        let outcome = panic::catch_unwind(AssertUnwindSafe(f));
        let previous = CURRENT.with(|current| current.borrow_mut().take());
        drop(previous);
        let joined = {
            let mut stage = lock(&self.stage);
            let joined = matches!(*stage, Stage::Running { joined: true, .. });
            *stage = Stage::Done(outcome);
            joined
        };
        finished();
        if joined {
            self.done.notify_all();
        }
        self.notify.wake();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect("poisoned")
}

/// The leaf of a thread call.
struct ThreadCall<F, T> {
    state: CallState<F, T>,
    /// The pool whose queue the call waits in, or `None` for a call of its own.
    pool: Option<Arc<PoolQueue>>,
    site: &'static Site,
    at: &'static Location<'static>,
}

enum CallState<F, T> {
    Fresh(F),
    Started(Arc<Call<F, T>>),
    Gone,
}

impl<F, T> ThreadCall<F, T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    #[track_caller]
    fn coroutine(site: &'static Site, pool: Option<Arc<PoolQueue>>, f: F) -> Coro<T> {
        Coroutine::leaf(
            site,
            ThreadCall {
                state: CallState::Fresh(f),
                pool,
                site,
                at: Location::caller(),
            },
        )
    }
}

impl<F, T> Leaf for ThreadCall<F, T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    type Output = T;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<T, Error>> {
        let mut call = match mem::replace(&mut self.state, CallState::Gone) {
            CallState::Fresh(f) => {
                let call = Arc::new(Call {
                    notify: cx.notify(),
                    stage: Mutex::new(Stage::Queued(f)),
                    done: Condvar::new(),
                    cancelled: AtomicBool::new(false),
                });
                self.state = CallState::Started(call.clone());
                match &self.pool {
                    Some(pool) => pool.push(call),
                    None => CACHE.push(Job::Call(call)).expect(SPAWN_FAILED),
                }
                return Poll::Pending;
            }
            CallState::Started(call) => call,
            CallState::Gone => unreachable!("polled a finished thread call"),
        };
        let outcome = match Arc::get_mut(&mut call) {
            // The thread let go of the call, which it does only once the call has ended: take
            // the outcome without the lock.
            Some(ended) => {
                let stage = ended.stage.get_mut().expect("poisoned");
                let outcome = stage.take_outcome();
                Some(outcome.expect("a thread let go of a call before its end"))
            }
            None => lock(&call.stage).take_outcome(),
        };
        let Some(outcome) = outcome else {
            self.state = CallState::Started(call);
            return Poll::Pending;
        };
        match outcome {
            Ok(Ok(output)) => Poll::Ready(Ok(output)),
            Ok(Err(error)) => Poll::Ready(Err(error.raised_at(self.at))),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    fn cancel(&mut self, cx: &mut Cx<'_>) {
        let CallState::Started(call) = mem::replace(&mut self.state, CallState::Gone) else {
            return; // never started
        };
        let mut stage = lock(&call.stage);
        match &*stage {
            Stage::Queued(..) => {
                // No thread took it yet: drop it here, unrun. The queue keeps an empty call.
                let unstarted = mem::replace(&mut *stage, Stage::Over);
                drop(stage);
                drop(unstarted);
                return;
            }
            Stage::Running { thread, .. } => {
                call.cancelled.store(true, Ordering::Relaxed);
                thread.unpark(); // for `thread::sleep`
            }
            Stage::Done(_) => {}
            Stage::Over => return,
        }
        drop(stage);
        let (site, at) = (self.site, self.at);
        cx.joins.push(Box::new(move || join(&call, site, at)));
    }
}

/// Waits until a cancelled call has returned, and gives what it failed with, if anything but
/// its cancellation.
fn join<F, T>(
    call: &Call<F, T>,
    site: &'static Site,
    at: &'static Location<'static>,
) -> Option<Failure> {
    let mut stage = lock(&call.stage);
    while let Stage::Running { joined, .. } = &mut *stage {
        *joined = true;
        stage = call.done.wait(stage).expect("poisoned");
    }
    let end = mem::replace(&mut *stage, Stage::Over);
    drop(stage);
    match end {
        Stage::Done(Ok(Err(error))) if !error.is_cancelled() => Some(Failure::Error(
            error.raised_at(at).traced(site.frame(0), Vec::new()),
        )),
        Stage::Done(Err(payload)) => Some(Failure::Panic(payload)),
        _ => None,
    }
}

thread_local! {
    /// The call this thread is running, if it runs one for a loop.
    static CURRENT: RefCell<Option<Arc<dyn Cancellable>>> = const { RefCell::new(None) };
}

trait Cancellable: Send + Sync {
    fn cancelled(&self) -> &AtomicBool;
}

impl<F: Send, T: Send> Cancellable for Call<F, T> {
    fn cancelled(&self) -> &AtomicBool {
        &self.cancelled
    }
}

fn current_flag<R>(f: impl FnOnce(Option<&AtomicBool>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_deref().map(Cancellable::cancelled)))
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
    current_flag(|flag| flag.is_some_and(|c| c.load(Ordering::Relaxed)))
}

/// `Err` (a cancellation) if this thread's work was told to stop, for `?`.
///
/// ```
/// assert!(tinyio::thread::check().is_ok());
/// ```
pub fn check() -> Result<(), Error> {
    if is_cancelled() {
        Err(Error::cancelled())
    } else {
        Ok(())
    }
}

/// Sleeps like [`std::thread::sleep`], but returns `Err` (a cancellation) as soon as this
/// thread's work is told to stop.
///
/// ```
/// use std::time::Duration;
/// assert!(tinyio::thread::sleep(Duration::from_millis(1)).is_ok());
/// ```
pub fn sleep(duration: Duration) -> Result<(), Error> {
    let deadline = crate::time::after(duration);
    loop {
        check()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        if current_flag(|flag| flag.is_none()) {
            std::thread::sleep(deadline - now);
        } else {
            std::thread::park_timeout(deadline - now);
        }
    }
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
pub struct ThreadPool {
    queue: Arc<PoolQueue>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("max_threads", &self.queue.max_threads)
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
        assert!(
            max_threads > 0,
            "`ThreadPool::new(0)` could never run anything; use at least 1"
        );
        ThreadPool {
            queue: Arc::new(PoolQueue {
                max_threads,
                state: Mutex::new(PoolState {
                    calls: VecDeque::new(),
                    threads: 0,
                }),
                free: AtomicUsize::new(0),
                queued: CacheLine(AtomicUsize::new(0)),
            }),
        }
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
        ThreadCall::coroutine(&POOL_RUN, Some(self.queue.clone()), move || Ok(f()))
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
        let call = move || f().map_err(Error::new);
        ThreadCall::coroutine(&POOL_RUN, Some(self.queue.clone()), call)
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
        let calls: Vec<Coro<T>> = xs
            .into_iter()
            .map(|x| {
                let f = f.clone();
                self.run_in_thread(move || f(x))
            })
            .collect();
        coroutine(&POOL_RUN, move |co| async move {
            Ok(suspend(&co, calls, line!()).await?)
        })
    }
}

/// A pool's calls, in order, and the cache's threads that work through them, `max_threads` at
/// most. The protocol is the [`Cache`]'s, with a thread of the cache started (as a job) where the
/// cache starts a thread: a thread working for the pool is *free* when it is not inside a call,
/// and whenever the lock is released with calls queued and room for one more thread, one of
/// them is free. A thread that finds the queue empty lingers a moment for the next call (if no
/// other thread spins), then leaves. A call cancelled while queued stays in the queue with
/// nothing in it: its function was dropped by the cancel.
///
/// Aligned so that the `Arc`'s counts, which each call's leaf changes, are not on the cache line
/// of the lock that the pool's threads take.
#[repr(align(128))]
struct PoolQueue {
    max_threads: usize,
    state: Mutex<PoolState>,
    free: AtomicUsize,
    /// `calls.len()`, for a lingering thread to watch without the lock. A hint only (a lingering
    /// thread looks at the queue under the lock before it leaves), set by `push` after it unlocks
    /// and kept off the lock's cache line: a thread watching it does not take the line from a
    /// `push` in progress, nor contend for the lock while `push` holds it.
    queued: CacheLine<AtomicUsize>,
}

/// A value alone on its cache lines (two, for the adjacent-line prefetch).
#[repr(align(128))]
struct CacheLine<T>(T);

struct PoolState {
    calls: VecDeque<Arc<dyn Run>>,
    /// Threads working through the queue.
    threads: usize,
}

impl PoolQueue {
    fn push(self: &Arc<Self>, call: Arc<dyn Run>) {
        let mut state = lock(&self.state);
        state.calls.push_back(call);
        let queued = state.calls.len();
        self.start(state).expect(SPAWN_FAILED);
        // Possibly stale by now, but never zero where a call waits: a thread that took calls
        // stored their count under the lock, before this `push` took it.
        self.queued.0.store(queued, Ordering::Relaxed);
    }

    /// Starts one more thread if none is free and there is room. Releases the lock.
    fn start(self: &Arc<Self>, mut state: MutexGuard<'_, PoolState>) -> io::Result<()> {
        if self.free.load(Ordering::SeqCst) > 0 || state.threads == self.max_threads {
            return Ok(());
        }
        state.threads += 1;
        self.free.fetch_add(1, Ordering::SeqCst);
        drop(state);
        CACHE.push(Job::Pool(self.clone()))
    }

    /// A thread's turn at the queue; it starts free.
    fn work(self: Arc<Self>) {
        let mut may_linger = true;
        loop {
            let mut state = lock(&self.state);
            let Some(call) = state.calls.pop_front() else {
                if may_linger && !SPINNING.swap(true, Ordering::Acquire) {
                    drop(state);
                    may_linger = spin(&self.queued.0);
                    SPINNING.store(false, Ordering::Release);
                    continue;
                }
                self.free.fetch_sub(1, Ordering::SeqCst);
                state.threads -= 1;
                return;
            };
            self.queued.0.store(state.calls.len(), Ordering::Relaxed);
            self.free.fetch_sub(1, Ordering::SeqCst);
            if state.calls.is_empty() {
                drop(state);
            } else {
                // Should the cache fail to start a thread, this one serves the rest.
                let _ = self.start(state);
            }
            call.run(&|| {
                self.free.fetch_add(1, Ordering::SeqCst);
            });
            may_linger = true;
        }
    }
}

/// Whether a thread is spinning for work: a cache worker that ran out of it, or a thread
/// lingering at a pool's queue. One at most in the process, so that spinning never takes the
/// core a loop needs.
static SPINNING: AtomicBool = AtomicBool::new(false);

/// How long a thread that ran out of work spins before it parks or leaves a pool.
const SPIN: Duration = Duration::from_micros(30);

/// Watches a queue's length for [`SPIN`]: a loop that awaits one call at a time sends the next
/// call a few microseconds after the last result, and a thread spinning takes it at once, where
/// waking a parked one costs the loop a system call and the call tens of microseconds. Gives
/// whether work came.
fn spin(queued: &AtomicUsize) -> bool {
    static CORES: OnceLock<usize> = OnceLock::new();
    if *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from)) < 2 {
        return false; // whoever could push more work waits for this core
    }
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            if queued.load(Ordering::Relaxed) > 0 {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return false;
        }
    }
}

const SPAWN_FAILED: &str = "failed to spawn a thread for `run_in_thread`";

/// The cache of threads that run blocking calls for every loop in the process.
static CACHE: Cache = Cache::new(KEEP_ALIVE);

/// How long a thread with nothing to do waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Threads taking jobs from one queue, started on demand, leaving after `keep_alive` idle.
///
/// The hand-off protocol. A worker is *free* while it is awake and not inside a job: a free
/// worker always takes the lock and looks at the queue before it runs a job or sleeps. `free`
/// counts them. Whenever the lock is released, **if the queue is not empty then `free >= 1`**:
/// - `push` adds the job, and if no worker is free it *claims* one: pops the most recently idle
///   worker (LIFO, so the same warm threads serve), sets its `claimed` flag and counts it free,
///   then unparks it after unlocking; with none idle it starts a thread, free from the start;
/// - a free worker takes a job and stops being free; if jobs remain and it was the last free
///   one, it claims another before it enters its job, so no job waits behind a running one;
/// - a free worker that finds the queue empty first [`spin`]s, still free (one worker at most,
///   see [`SPINNING`]), then pushes itself on `idle` and stops being free;
/// - a worker counts itself free again as soon as its job has returned, before it wakes the
///   loop (without the lock: more free workers than counted only means an extra claim, never a
///   stranded job).
///
/// So a burst of short jobs is drained by the few workers already awake, one claim at a time,
/// not one wake-up per job. An idle worker parks until its flag is set. When its keep-alive
/// expires it takes the lock: if it was claimed meanwhile it works; if not, it takes itself off
/// `idle` and exits. Claim and expiry both happen under the lock, so exactly one of them wins.
struct Cache {
    state: Mutex<CacheState>,
    free: AtomicUsize,
    /// `jobs.len()`, for a spinning worker to watch without the lock.
    queued: AtomicUsize,
    keep_alive: Duration,
}

struct CacheState {
    jobs: VecDeque<Job>,
    /// Parked (or about to park) workers, most recently idle last.
    idle: Vec<Arc<Worker>>,
    /// Threads alive.
    threads: usize,
}

struct Worker {
    thread: Thread,
    claimed: AtomicBool,
}

impl Cache {
    const fn new(keep_alive: Duration) -> Self {
        Cache {
            state: Mutex::new(CacheState {
                jobs: VecDeque::new(),
                idle: Vec::new(),
                threads: 0,
            }),
            free: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            keep_alive,
        }
    }

    /// Queues a job. Should no thread be free and none start, the job stays queued for the next
    /// thread that is free.
    fn push(&'static self, job: Job) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.jobs.push_back(job);
        self.queued.store(state.jobs.len(), Ordering::Relaxed);
        if self.free.load(Ordering::SeqCst) > 0 {
            return Ok(());
        }
        self.claim(state)
    }

    /// Makes one more worker free: an idle one, or a new thread. Releases the lock.
    fn claim(&'static self, mut state: MutexGuard<'_, CacheState>) -> io::Result<()> {
        self.free.fetch_add(1, Ordering::SeqCst);
        if let Some(worker) = state.idle.pop() {
            worker.claimed.store(true, Ordering::Release);
            drop(state);
            worker.thread.unpark();
            return Ok(());
        }
        state.threads += 1;
        drop(state);
        let spawned = std::thread::Builder::new()
            .name("tinyio-blocking".into())
            .spawn(move || self.work());
        if let Err(error) = spawned {
            self.free.fetch_sub(1, Ordering::SeqCst);
            lock(&self.state).threads -= 1;
            return Err(error);
        }
        Ok(())
    }

    /// A worker's life; it starts free.
    fn work(&'static self) {
        let me = Arc::new(Worker {
            thread: std::thread::current(),
            claimed: AtomicBool::new(false),
        });
        let mut may_spin = true;
        loop {
            let mut state = lock(&self.state);
            let Some(job) = state.jobs.pop_front() else {
                if may_spin && !SPINNING.swap(true, Ordering::Acquire) {
                    // Still free: the next `push` needs no claim while this worker spins.
                    drop(state);
                    may_spin = spin(&self.queued);
                    SPINNING.store(false, Ordering::Release);
                    continue;
                }
                self.free.fetch_sub(1, Ordering::SeqCst);
                state.idle.push(me.clone());
                drop(state);
                if !self.idle(&me) {
                    return;
                }
                may_spin = true;
                continue;
            };
            self.queued.store(state.jobs.len(), Ordering::Relaxed);
            self.free.fetch_sub(1, Ordering::SeqCst);
            if !state.jobs.is_empty() && self.free.load(Ordering::SeqCst) == 0 {
                // Should no thread start, this one serves the rest after its job.
                let _ = self.claim(state);
            } else {
                drop(state);
            }
            let finished = || {
                self.free.fetch_add(1, Ordering::SeqCst);
            };
            match job {
                Job::Call(call) => call.run(&finished),
                Job::Pool(pool) => {
                    pool.work();
                    finished();
                }
            }
            may_spin = true;
        }
    }

    /// Waits to be claimed (true: free again), or for the keep-alive to pass (false: gone).
    fn idle(&self, me: &Arc<Worker>) -> bool {
        let deadline = Instant::now() + self.keep_alive;
        loop {
            if me.claimed.swap(false, Ordering::Acquire) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                let mut state = lock(&self.state);
                if me.claimed.swap(false, Ordering::Acquire) {
                    return true; // claimed as the keep-alive expired
                }
                state.idle.retain(|worker| !Arc::ptr_eq(worker, me));
                state.threads -= 1;
                return false;
            }
            std::thread::park_timeout(deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

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

    /// A job that counts how many times it ran.
    struct Tally(AtomicUsize);

    impl Run for Tally {
        fn run(self: Arc<Self>, finished: &dyn Fn()) {
            self.0.fetch_add(1, SeqCst);
            finished();
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
        // Idle workers leave at once (or after 50 us), so pushes at random gaps keep meeting a
        // worker whose keep-alive is expiring: every job must run exactly once, and every
        // thread must eventually leave with the books balanced.
        const JOBS: usize = 3000;
        for keep_alive in [Duration::ZERO, Duration::from_micros(20)] {
            let cache: &'static Cache = Box::leak(Box::new(Cache::new(keep_alive)));
            let tally = Arc::new(Tally(AtomicUsize::new(0)));
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            for _ in 0..JOBS {
                cache.push(Job::Call(tally.clone())).unwrap();
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Around the time a worker spins before it goes idle.
                let gap = SPIN.mul_f64((seed % 1000) as f64 / 500.0);
                let start = Instant::now();
                while start.elapsed() < gap {
                    std::hint::spin_loop();
                }
            }
            wait_until("every job to run", || tally.0.load(SeqCst) == JOBS);
            wait_until("every thread to leave", || {
                let state = lock(&cache.state);
                state.threads == 0 && state.idle.is_empty() && state.jobs.is_empty()
            });
            assert_eq!(tally.0.load(SeqCst), JOBS, "a job ran twice");
            assert_eq!(cache.free.load(SeqCst), 0);
        }
    }

    #[test]
    fn idle_threads_are_reused_then_leave() {
        let cache: &'static Cache = Box::leak(Box::new(Cache::new(ms(100))));
        let tally = Arc::new(Tally(AtomicUsize::new(0)));
        for round in 1..=20 {
            cache.push(Job::Call(tally.clone())).unwrap();
            wait_until("the job to run", || tally.0.load(SeqCst) == round);
        }
        assert_eq!(lock(&cache.state).threads, 1, "one thread served every job");
        wait_until("the idle thread to leave", || {
            lock(&cache.state).threads == 0
        });
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
        let out = Loop::new()
            .run(timeout((running, queued, held), ms(30)))
            .unwrap();
        assert!(out.is_none(), "timed out");
        assert!(
            ended.load(SeqCst),
            "the running call was joined before `run` returned"
        );
        assert_eq!(ran.load(SeqCst), 0, "no queued call ran");
        assert_eq!(
            dropped.load(SeqCst),
            5,
            "the queued calls were dropped by `run`"
        );
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

//! Blocking work on other threads, and what that work can ask about its own cancellation.
//!
//! Rust cannot raise an error inside another thread, so cancellation is cooperative: when the
//! loop crashes (or a [`timeout`](crate::timeout) expires), the thread's cancellation flag is set,
//! and the loop waits for the function to return before [`Loop::run`](crate::Loop::run) does.
//! Inside the function, [`is_cancelled`], [`check`] and [`sleep`] see that flag.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::Coro;
use crate::coro::{Coroutine, Cx, Leaf, Site, coroutine, suspend};
use crate::error::Error;
use crate::run::Failure;
use crate::sync::Semaphore;

static RUN_IN_THREAD: Site = Site {
    name: "run_in_thread",
    file: file!(),
    line: line!(),
};
static POOL_RUN: Site = Site {
    name: "ThreadPool::run_in_thread",
    file: file!(),
    line: line!(),
};

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
/// use std::time::{Duration, Instant};
/// use tinyio::{Loop, run_in_thread};
///
/// let start = Instant::now();
/// let calls: Vec<_> = (0..20u64)
///     .map(|i| run_in_thread(move || { std::thread::sleep(Duration::from_millis(50)); i * i }))
///     .collect();
/// let squares = Loop::new().run(calls).unwrap();
/// assert_eq!(squares[3], 9);
/// assert!(start.elapsed() < Duration::from_millis(50 * 20)); // concurrently, not one by one
/// ```
#[track_caller]
pub fn run_in_thread<T, F>(f: F) -> Coro<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    try_run_in_thread(move || Ok::<T, Error>(f()))
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
    let call = Arc::new(Call {
        result: Mutex::new(None),
        done: Condvar::new(),
        ..Call::default()
    });
    let job = Job {
        f: Some(f),
        call: call.clone(),
    };
    Coroutine::leaf(
        &RUN_IN_THREAD,
        ThreadCall {
            job: Some(job),
            call,
            at: Location::caller(),
        },
    )
}

type Outcome<T> = std::thread::Result<Result<T, Error>>;

/// What the loop and the thread share for one call.
struct Call<T> {
    result: Mutex<Option<Outcome<T>>>,
    done: Condvar,
    control: Control,
}

impl<T> Default for Call<T> {
    fn default() -> Self {
        Call {
            result: Mutex::new(None),
            done: Condvar::new(),
            control: Control::default(),
        }
    }
}

/// How the loop reaches a running call: its cancellation flag, its waker, its thread.
#[derive(Default)]
struct Control {
    cancelled: AtomicBool,
    waker: Mutex<Option<Waker>>,
    thread: Mutex<Option<Thread>>,
}

impl Control {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        if let Some(thread) = &*self.thread.lock().expect("poisoned") {
            thread.unpark();
        }
    }
}

struct Job<F, T> {
    f: Option<F>,
    call: Arc<Call<T>>,
}

impl<T, E, F> Job<F, T>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    fn run(mut self) {
        let call = self.call.clone();
        *call.control.thread.lock().expect("poisoned") = Some(std::thread::current());
        let f = self.f.take().expect("run once");
        let outcome = CURRENT.with(|current| {
            *current.borrow_mut() = Some(call.clone());
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| f().map_err(Error::new)));
            *current.borrow_mut() = None;
            outcome
        });
        *call.control.thread.lock().expect("poisoned") = None;
        *call.result.lock().expect("poisoned") = Some(outcome);
        call.done.notify_all();
        if let Some(waker) = call.control.waker.lock().expect("poisoned").take() {
            waker.wake();
        }
    }
}

struct ThreadCall<F, T> {
    job: Option<Job<F, T>>,
    call: Arc<Call<T>>,
    at: &'static Location<'static>,
}

impl<T, E, F> Leaf for ThreadCall<F, T>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    type Output = T;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<T, Error>> {
        if let Some(job) = self.job.take() {
            *self.call.control.waker.lock().expect("poisoned") = Some((cx.waker)());
            POOL.spawn(Box::new(move || job.run()));
            return Poll::Pending;
        }
        match self.call.result.lock().expect("poisoned").take() {
            None => Poll::Pending,
            Some(Ok(Ok(output))) => Poll::Ready(Ok(output)),
            Some(Ok(Err(error))) => Poll::Ready(Err(error.raised_at(self.at))),
            Some(Err(payload)) => panic::resume_unwind(payload),
        }
    }

    fn cancel(&mut self, cx: &mut Cx<'_>) {
        if self.job.take().is_some() {
            return; // never started
        }
        self.call.control.cancel();
        let call = self.call.clone();
        let at = self.at;
        cx.joins.push(Box::new(move || {
            let mut result = call.result.lock().expect("poisoned");
            while result.is_none() {
                result = call.done.wait(result).expect("poisoned");
            }
            match result.take().expect("checked") {
                Ok(Ok(_)) => None,
                Ok(Err(error)) if error.is_cancelled() => None,
                Ok(Err(error)) => Some(Failure::Error(
                    error
                        .raised_at(at)
                        .traced(RUN_IN_THREAD.frame(0), Vec::new()),
                )),
                Err(payload) => Some(Failure::Panic(payload)),
            }
        }));
    }
}

thread_local! {
    /// The call this thread is running, if it runs one for a loop.
    static CURRENT: RefCell<Option<Arc<dyn Cancellable>>> = const { RefCell::new(None) };
}

trait Cancellable: Send + Sync {
    fn control(&self) -> &Control;
}

impl<T: Send> Cancellable for Call<T> {
    fn control(&self) -> &Control {
        &self.control
    }
}

fn current_flag<R>(f: impl FnOnce(Option<&Control>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_deref().map(Cancellable::control)))
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
    current_flag(|control| control.is_some_and(|c| c.cancelled.load(Ordering::Relaxed)))
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
        if current_flag(|control| control.is_none()) {
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
#[derive(Clone, Debug)]
pub struct ThreadPool {
    permits: Semaphore,
}

impl ThreadPool {
    /// A pool running at most `max_threads` calls at once. Panics if `max_threads` is zero.
    pub fn new(max_threads: usize) -> Self {
        assert!(
            max_threads > 0,
            "`ThreadPool::new(0)` could never run anything; use at least 1"
        );
        ThreadPool {
            permits: Semaphore::new(max_threads),
        }
    }

    /// Like [`run_in_thread`], once a thread of this pool is free.
    #[track_caller]
    pub fn run_in_thread<T, F>(&self, f: F) -> Coro<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.through(run_in_thread(f))
    }

    /// Like [`try_run_in_thread`], once a thread of this pool is free.
    #[track_caller]
    pub fn try_run_in_thread<T, E, F>(&self, f: F) -> Coro<T>
    where
        T: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        self.through(try_run_in_thread(f))
    }

    /// Runs `f` on each of `xs` in this pool; the outputs come back in the order of `xs`.
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
        let line = Location::caller().line();
        coroutine(&POOL_RUN, move |co| async move {
            Ok(suspend(&co, calls, line).await?)
        })
    }

    #[track_caller]
    fn through<T: 'static>(&self, call: Coro<T>) -> Coro<T> {
        let permits = self.permits.clone();
        let line = Location::caller().line();
        coroutine(&POOL_RUN, move |co| async move {
            let _permit = suspend(&co, permits.acquire(), line).await?;
            Ok(suspend(&co, call, line).await?)
        })
    }
}

/// The cache of threads that run blocking calls for every loop in the process.
static POOL: Pool = Pool {
    state: Mutex::new(PoolState::new()),
    wake: Condvar::new(),
};

/// How long a thread with nothing to do waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Work = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    wake: Condvar,
}

struct PoolState {
    queue: VecDeque<Work>,
    /// Threads waiting for work and not yet claimed by a `spawn`.
    idle: usize,
    /// Claims on idle threads not yet taken up.
    notified: usize,
}

impl PoolState {
    const fn new() -> Self {
        PoolState {
            queue: VecDeque::new(),
            idle: 0,
            notified: 0,
        }
    }
}

impl Pool {
    fn spawn(&'static self, work: Work) {
        let mut state = self.state.lock().expect("poisoned");
        state.queue.push_back(work);
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            self.wake.notify_one();
        } else {
            drop(state);
            std::thread::Builder::new()
                .name("tinyio-blocking".into())
                .spawn(move || self.work())
                .expect("failed to spawn a thread for `run_in_thread`");
        }
    }

    fn work(&self) {
        let mut state = self.state.lock().expect("poisoned");
        loop {
            while let Some(work) = state.queue.pop_front() {
                drop(state);
                work();
                state = self.state.lock().expect("poisoned");
            }
            state.idle += 1;
            loop {
                let (next, waited) = self.wake.wait_timeout(state, KEEP_ALIVE).expect("poisoned");
                state = next;
                if state.notified > 0 {
                    state.notified -= 1;
                    break;
                }
                if waited.timed_out() {
                    state.idle -= 1;
                    return;
                }
            }
        }
    }
}

//! Async Rust both ways: a tinyio computation is a [`Future`], and a `Future` is a coroutine.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{Future, IntoFuture};
use std::panic;
use std::pin::Pin;
#[cfg(feature = "tokio")]
use std::sync::OnceLock;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::coro::{Coroutine, Cx, Leaf, SharedCoroutine, Site, site};
use crate::error::{Error, ErrorGroup};
use crate::event_loop::Session;
use crate::run::{Failure, Progress, Room};
use crate::wake::Remote;
use crate::yieldable::Yieldable;
#[cfg(feature = "tokio")]
use crate::{error::Frame, run::Join};

static FROM_FUTURE: Site = site!("from_future");

/// How many rounds of the loop one `poll` runs before handing the thread back to the executor.
const ROUNDS_PER_POLL: usize = 64;

/// Runs `y` (anything [`Yieldable`]) as a future, on any executor: `Output = Result<_, Error>`.
/// [`Coroutine`] and [`SharedCoroutine`] can be `.await`ed directly (they are `IntoFuture`).
///
/// Each `poll` runs the loop until it is blocked (or for a bounded number of rounds, so that
/// other tasks get their turn) and returns `Pending` while it waits: timers, threads and events
/// wake the task through its waker; nothing blocks the executor's thread. The future is not
/// `Send` (coroutines live on one thread): use a current-thread runtime or a `LocalSet`.
/// Dropping it before it finishes cancels the computation as a crash would, and joins its
/// threads.
///
/// ```
/// use std::time::Duration;
///
/// #[tinyio::coroutine]
/// fn slow_double(x: u32) -> u32 {
///     yield_!(tinyio::sleep(Duration::from_millis(5)));
///     2 * x
/// }
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let out = runtime.block_on(async { slow_double(21).await });
/// assert_eq!(out.unwrap(), 42);
/// let gathered = runtime.block_on(tinyio::to_future((slow_double(1), slow_double(2))));
/// assert_eq!(gathered.unwrap(), (2, 4));
/// ```
pub fn to_future<'a, Y: Yieldable + 'a>(y: Y) -> ToFuture<'a, Y> {
    ToFuture {
        y: Some(y),
        session: None,
        registered: None,
    }
}

/// The future of [`to_future`].
///
/// ```
/// use tinyio::{Coro, ToFuture};
///
/// #[tinyio::coroutine]
/// fn three() -> u8 {
///     3
/// }
///
/// let future: ToFuture<'static, Coro<u8>> = tinyio::to_future(three());
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// assert_eq!(runtime.block_on(future).unwrap(), 3);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct ToFuture<'a, Y: Yieldable> {
    y: Option<Y>,
    session: Option<Session<'a, Y>>,
    /// The deadline this future has asked the timer thread to wake it at.
    registered: Option<Instant>,
}

// Nothing is ever pinned inside: the session lives on the heap as plain data.
impl<Y: Yieldable> Unpin for ToFuture<'_, Y> {}

impl<'a, Y: Yieldable + 'a> Future for ToFuture<'a, Y> {
    type Output = Result<Y::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let session = this.session.get_or_insert_with(|| {
            let y = this.y.take().expect("polled after completion");
            Session::new(
                y,
                Arc::new(Remote::new()),
                ErrorGroup::Auto,
                Room::default(),
            )
        });
        session.run.remote().set_driver(cx.waker().clone());
        let progress = DRIVEN.with(|driven| {
            driven.set(driven.get() + 1);
            let progress = session.advance(ROUNDS_PER_POLL);
            driven.set(driven.get() - 1);
            progress
        });
        match progress {
            Ok(Progress::Finished(output)) => Poll::Ready(Ok(output)),
            Ok(Progress::Ready) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Ok(Progress::Blocked(deadline)) => {
                if let Some(deadline) = deadline
                    && this
                        .registered
                        .is_none_or(|r| deadline < r || r <= Instant::now())
                {
                    this.registered = Some(deadline);
                    wake_at(deadline, cx.waker().clone());
                }
                Poll::Pending
            }
            Err(Failure::Error(error)) => Poll::Ready(Err(error)),
            Err(Failure::Panic(payload)) => panic::resume_unwind(payload),
        }
    }
}

impl<'a, T: 'a> IntoFuture for Coroutine<'a, T> {
    type Output = Result<T, Error>;
    type IntoFuture = ToFuture<'a, Coroutine<'a, T>>;

    fn into_future(self) -> Self::IntoFuture {
        to_future(self)
    }
}

impl<'a, T: Clone + 'a> IntoFuture for SharedCoroutine<'a, T> {
    type Output = Result<T, Error>;
    type IntoFuture = ToFuture<'a, SharedCoroutine<'a, T>>;

    fn into_future(self) -> Self::IntoFuture {
        to_future(self)
    }
}

thread_local! {
    /// Whether this thread is inside a `ToFuture::poll`: an executor drives the loop here.
    static DRIVEN: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as blocked in `Loop::run` until dropped: whatever executor may be driving
/// an outer loop on this thread is not driving anything meanwhile.
pub(crate) struct Blocking(usize);

impl Blocking {
    pub(crate) fn enter() -> Self {
        Blocking(DRIVEN.with(|driven| driven.replace(0)))
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        DRIVEN.with(|driven| driven.set(self.0));
    }
}

/// Wakes `waker` at `deadline`, from one timer thread shared by every [`ToFuture`].
fn wake_at(deadline: Instant, waker: Waker) {
    struct Timer(Instant, Waker);
    impl PartialEq for Timer {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Timer {}
    impl PartialOrd for Timer {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Timer {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.cmp(&other.0)
        }
    }
    static HEAP: Mutex<BinaryHeap<Reverse<Timer>>> = Mutex::new(BinaryHeap::new());
    static CHANGED: Condvar = Condvar::new();
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let timer = move || {
            let mut heap = HEAP.lock().expect("poisoned");
            loop {
                let now = Instant::now();
                while heap.peek().is_some_and(|t| t.0.0 <= now) {
                    heap.pop().expect("peeked").0.1.wake();
                }
                let next = heap.peek().map(|t| t.0.0 - now);
                heap = match next {
                    Some(wait) => CHANGED.wait_timeout(heap, wait).expect("poisoned").0,
                    None => CHANGED.wait(heap).expect("poisoned"),
                };
            }
        };
        std::thread::Builder::new()
            .name("tinyio-timer".into())
            .spawn(timer)
            .expect("failed to spawn tinyio's timer thread");
    });
    let (heap, changed) = (&HEAP, &CHANGED);
    heap.lock()
        .expect("poisoned")
        .push(Reverse(Timer(deadline, waker)));
    changed.notify_one();
}

/// A coroutine that polls `future` inside the loop, woken by its waker (no busy polling), and
/// finishes with its output. Works with any future, `Send` or not; cancellation drops it. A
/// future that needs a tokio runtime (timers, sockets) wants `from_tokio` (feature `tokio`)
/// instead.
///
/// ```
/// use tinyio::{Loop, from_future};
///
/// #[tinyio::coroutine]
/// fn mixed() -> (u32, u32) {
///     let a = yield_!(from_future(async { 1 }));
///     let (b, c) = yield_!((from_future(std::future::ready(2)), from_future(async { 3 })));
///     (a + b, c)
/// }
///
/// assert_eq!(Loop::new().run(mixed()).unwrap(), (3, 3));
/// ```
#[track_caller]
pub fn from_future<'a, F: Future + 'a>(future: F) -> Coroutine<'a, F::Output> {
    Coroutine::leaf(
        &FROM_FUTURE,
        FromFuture {
            future: Box::pin(future),
            waker: None,
        },
    )
}

struct FromFuture<F> {
    future: Pin<Box<F>>,
    waker: Option<Waker>,
}

impl<F: Future> Leaf for FromFuture<F> {
    type Output = F::Output;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<F::Output, Error>> {
        let waker = self.waker.get_or_insert_with(|| (cx.waker)());
        self.future
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .map(Ok)
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_support::from_tokio;

#[cfg(feature = "tokio")]
mod tokio_support {
    use super::*;
    use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
    use tokio::task::JoinHandle;

    static FROM_TOKIO: Site = site!("from_tokio");

    /// A coroutine that runs `future` on a tokio runtime and finishes with its output: for
    /// futures that need tokio's timers or sockets.
    ///
    /// It runs on the ambient runtime when that runtime is certainly being driven (a
    /// multi-thread runtime, or the current-thread runtime whose task is awaiting this loop
    /// through [`to_future`]); otherwise on a small runtime of tinyio's own, with one worker
    /// thread. A panic in the task resumes in the loop.
    ///
    /// Cancelling the coroutine aborts the task and joins it like a thread call: `Loop::run`
    /// returns only once the future has been dropped, even if it was inside a poll. A loop driven
    /// through [`to_future`] cannot block its executor's thread, which the runtime may need to
    /// finish the abort; there the future is dropped when its runtime next gets to it, possibly
    /// after the loop's future has resolved.
    ///
    /// Some tokio futures need the runtime already when they are created (`tokio::time::sleep`
    /// does): create them inside an `async` block, which runs on the runtime.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tinyio::{Loop, from_tokio};
    ///
    /// #[tinyio::coroutine]
    /// fn uses_tokio() -> &'static str {
    ///     yield_!(from_tokio(async { tokio::time::sleep(Duration::from_millis(5)).await }));
    ///     "slept on tokio's timer"
    /// }
    ///
    /// assert_eq!(Loop::new().run(uses_tokio()).unwrap(), "slept on tokio's timer");
    /// ```
    #[track_caller]
    pub fn from_tokio<F>(future: F) -> Coroutine<'static, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Coroutine::leaf(
            &FROM_TOKIO,
            FromTokio {
                future: Some(future),
                task: None,
                waker: None,
                at: std::panic::Location::caller(),
            },
        )
    }

    /// tinyio's own runtime, for when no driven runtime is at hand.
    fn own_runtime() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tinyio-tokio")
                .enable_all()
                .build()
                .expect("failed to start tinyio's tokio runtime")
        })
    }

    fn driven_handle() -> Handle {
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() != RuntimeFlavor::CurrentThread => handle,
            Ok(handle) if DRIVEN.with(Cell::get) > 0 => handle,
            _ => own_runtime().handle().clone(),
        }
    }

    struct FromTokio<F: Future> {
        future: Option<F>,
        task: Option<JoinHandle<F::Output>>,
        waker: Option<Waker>,
        /// Where `from_tokio` was called, for the stall report.
        at: &'static std::panic::Location<'static>,
    }

    impl<F> Leaf for FromTokio<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        type Output = F::Output;

        fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<F::Output, Error>> {
            let waker = self.waker.get_or_insert_with(|| (cx.waker)());
            let future = &mut self.future;
            let task = self
                .task
                .get_or_insert_with(|| driven_handle().spawn(future.take().expect("spawned once")));
            match Pin::new(task).poll(&mut Context::from_waker(waker)) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(output)) => Poll::Ready(Ok(output)),
                Poll::Ready(Err(error)) if error.is_panic() => {
                    panic::resume_unwind(error.into_panic())
                }
                Poll::Ready(Err(error)) => Poll::Ready(Err(Error::new(error))),
            }
        }

        /// Aborts the task and, unless the loop is driven through [`to_future`] (whose executor
        /// may be the very runtime that must finish the abort, on this thread), joins it with the
        /// loop's threads: the future is dropped before the run returns.
        fn cancel(&mut self, cx: &mut Cx<'_>) {
            let Some(task) = self.task.take() else {
                return; // never spawned
            };
            task.abort();
            if DRIVEN.with(Cell::get) == 0 {
                let mut task = task;
                cx.joins.push(Join {
                    frame: Frame {
                        name: FROM_TOKIO.name,
                        file: self.at.file(),
                        line: self.at.line(),
                    },
                    wait: Box::new(move |deadline| join_aborted(&mut task, deadline)),
                });
            }
        }
    }

    /// Waits until an aborted task has ended (its future dropped), or until `deadline`
    /// passes (`Pending`); gives its panic, if it panicked before it saw the abort.
    fn join_aborted<T>(
        task: &mut JoinHandle<T>,
        deadline: Option<Instant>,
    ) -> Poll<Option<Failure>> {
        let waker = Waker::from(Arc::new(crate::wake::Unpark(std::thread::current())));
        loop {
            match Pin::new(&mut *task).poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(Err(error)) if error.is_panic() => {
                    return Poll::Ready(Some(Failure::Panic(error.into_panic())));
                }
                Poll::Ready(_) => return Poll::Ready(None),
                Poll::Pending => match deadline {
                    None => std::thread::park(),
                    Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                        Some(left) => std::thread::park_timeout(left),
                        None => return Poll::Pending,
                    },
                },
            }
        }
    }

    impl<F: Future> Drop for FromTokio<F> {
        fn drop(&mut self) {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
    }
}

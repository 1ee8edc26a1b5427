//! Foreign futures as coroutines: `from_future`, and `from_tokio` (feature `tokio`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::coro::{Coroutine, Cx, Leaf};
use crate::error::Error;
use crate::site::{Site, site};

static FROM_FUTURE: Site = site!("from_future");

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
    Coroutine::leaf(&FROM_FUTURE, FromFuture { future: Box::pin(future), waker: None })
}

struct FromFuture<F> {
    future: Pin<Box<F>>,
    waker: Option<Waker>,
}

impl<F: Future> Leaf for FromFuture<F> {
    type Output = F::Output;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<F::Output, Error>> {
        let waker = self.waker.get_or_insert_with(|| (cx.waker)());
        self.future.as_mut().poll(&mut Context::from_waker(waker)).map(Ok)
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_support::from_tokio;

#[cfg(feature = "tokio")]
mod tokio_support {
    use std::panic::{self, Location};
    use std::sync::LazyLock;
    use std::task::ready;

    use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::coro::{Failure, Join};
    use crate::error::Frame;
    use crate::event_loop::driven;
    use crate::thread::{block_until, drop_caught};

    static FROM_TOKIO: Site = site!("from_tokio");

    /// A coroutine that runs `future` on a tokio runtime and finishes with its output: for
    /// futures that need tokio's timers or sockets.
    ///
    /// It runs on the ambient runtime when that runtime is certainly being driven (a multi-thread
    /// runtime, or the current-thread runtime whose task is awaiting this loop through
    /// [`to_future`](crate::to_future)); otherwise on a small runtime of tinyio's own, with one
    /// worker thread. A panic in the task resumes in the loop.
    ///
    /// Cancelling the coroutine aborts the task and joins it like a thread call: `Loop::run`
    /// returns only once the future has been dropped, even if it was inside a poll. A loop driven
    /// through [`to_future`](crate::to_future) cannot block its executor's thread, which the
    /// runtime may need to finish the abort; there the future is dropped when its runtime next gets
    /// to it, possibly after the loop's future has resolved.
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
        F: Future<Output: Send + 'static> + Send + 'static,
    {
        let at = Location::caller();
        let frame = Frame { name: FROM_TOKIO.name, file: at.file(), line: at.line() };
        Coroutine::leaf(
            &FROM_TOKIO,
            FromTokio { future: Some(future), task: None, join: false, waker: None, frame },
        )
    }

    /// tinyio's own runtime, for when no driven runtime is at hand.
    static OWN_RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tinyio-tokio")
            .enable_all()
            .build()
            .expect("failed to start tinyio's tokio runtime")
    });

    fn driven_handle() -> Handle {
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() != RuntimeFlavor::CurrentThread => handle,
            Ok(handle) if driven() => handle,
            _ => OWN_RUNTIME.handle().clone(),
        }
    }

    struct FromTokio<F: Future> {
        future: Option<F>,
        task: Option<JoinHandle<F::Output>>,
        /// Whether a cancellation joins the task: not if the loop is driven through
        /// [`to_future`](crate::to_future), whose executor may be the very runtime that must
        /// finish the abort, on this thread. Known when it is spawned, as a run is driven one
        /// way throughout, and a `to_future` may be dropped outside its own `poll`.
        join: bool,
        waker: Option<Waker>,
        /// Where `from_tokio` was called, for the stall report.
        frame: Frame,
    }

    impl<F: Future<Output: Send + 'static> + Send + 'static> Leaf for FromTokio<F> {
        type Output = F::Output;

        fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<F::Output, Error>> {
            let waker = self.waker.get_or_insert_with(|| (cx.waker)());
            let (future, join) = (&mut self.future, &mut self.join);
            let task = self.task.get_or_insert_with(|| {
                *join = !driven();
                driven_handle().spawn(future.take().expect("spawned once"))
            });
            let joined = Pin::new(task).poll(&mut Context::from_waker(waker));
            joined.map(|joined| {
                joined.map_err(|error| match error.try_into_panic() {
                    Ok(payload) => panic::resume_unwind(payload),
                    Err(error) => Error::new(error),
                })
            })
        }

        /// Aborts the task and, unless the loop is driven through [`to_future`](crate::to_future)
        /// (whose executor may be the very runtime that must finish the abort, on this thread),
        /// joins it with the loop's threads: the future is dropped before the run returns.
        fn cancel(&mut self, cx: &mut Cx<'_>) {
            let Some(mut task) = self.task.take() else { return }; // never spawned
            task.abort();
            if !self.join {
                return;
            }
            // The join waits until the task has ended (its future dropped), and gives its
            // panic, if it panicked before it saw the abort.
            let wait = Box::new(move |deadline| {
                let joined = ready!(block_until(deadline, |cx| Pin::new(&mut task).poll(cx)));
                Poll::Ready(match joined {
                    // It finished before it saw the abort: its output is dropped here.
                    Ok(output) => drop_caught(output),
                    Err(error) => error.try_into_panic().ok().map(Failure::Panic),
                })
            });
            cx.joins.push(Join { frame: self.frame, wait });
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

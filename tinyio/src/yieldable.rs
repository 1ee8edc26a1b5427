//! What `yield_!` accepts, and what it evaluates to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::coro::{Co, Coroutine, Input, Request, SharedCoroutine, Submission};
use crate::error::Error;
use crate::wake::Cancel;

/// A value that `yield_!` accepts and [`Loop::run`](crate::Loop::run) runs.
///
/// | yielded | waits for | evaluates to |
/// |---|---|---|
/// | `()` | nothing: lets the others run | `()` |
/// | [`Coroutine<T>`](crate::Coroutine) | that coroutine | `T` |
/// | [`SharedCoroutine<T>`](crate::SharedCoroutine) | that coroutine, run once however many wait | `T` (a clone) |
/// | `Vec<Y>`, `[Y; N]` | all of them, concurrently | `Vec<Y::Output>`, `[Y::Output; N]` |
/// | `(A, B, ...)`, up to 12 | all of them, concurrently | `(A::Output, B::Output, ...)` |
/// | [`background(y)`](crate::background) | nothing: starts `y` and goes on | `()` |
/// | [`tx.send(v)`](crate::Sender::send), [`rx.recv()`](crate::Receiver::recv) | room, or a value (not at all if there is one now) | `Result<(), SendError<T>>`, `Option<T>` |
///
/// ```
/// use tinyio::Loop;
///
/// #[tinyio::coroutine]
/// fn id(x: u32) -> u32 { x }
///
/// #[tinyio::coroutine]
/// fn all() -> (u32, Vec<u32>, [u32; 2]) {
///     yield_!();
///     yield_!((id(1), vec![id(2), id(3)], [id(4), id(5)]))
/// }
///
/// assert_eq!(Loop::new().run(all()).unwrap(), (1, vec![2, 3], [4, 5]));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be yielded to a tinyio loop",
    label = "not a coroutine, nor a gather of coroutines",
    note = "`yield_!` accepts `()`, a `tinyio::Coro`, a `tinyio::Shared`, `tinyio::background(...)`, and `Vec`s, arrays and tuples of those",
    note = "to wait on a future, wrap it: `tinyio::from_future(fut)`; to run blocking code, `tinyio::run_in_thread(|| ...)`"
)]
pub trait Yieldable {
    /// What `yield_!` evaluates to once everything yielded has finished.
    type Output;
    /// What the suspended coroutine keeps to collect the output with.
    #[doc(hidden)]
    type Pending;
    /// Hands the coroutines inside to the loop.
    #[doc(hidden)]
    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's;
    /// Collects the output once every submitted coroutine has finished.
    #[doc(hidden)]
    fn collect(pending: Self::Pending) -> Self::Output;
    /// The output at once, if this can finish without waiting (a channel operation that finds
    /// room, or a value); else itself back, to submit. Called once by `yield_!`, before
    /// anything is submitted: `Ok` means the coroutine goes on without suspending.
    #[doc(hidden)]
    #[inline(always)]
    fn now(self) -> Result<Self::Output, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

/// A coroutine keeps itself, to read its output from once it has finished: a coroutine's is
/// moved out, a shared one's cloned.
macro_rules! handle {
    ($Handle:ident $(: $bound:ident)?, |$pending:ident| $collect:expr) => {
        impl<T $(: $bound)?> Yieldable for $Handle<'_, T> {
            type Output = T;
            type Pending = Self;

            #[inline(always)]
            fn submit<'s>(self, submission: &mut Submission<'s>) -> Self
            where
                Self: 's,
            {
                submission.push(self.node.clone());
                self
            }

            fn collect($pending: Self) -> T {
                $collect
            }
        }
    };
}

handle!(Coroutine, |pending| pending.node.take());
handle!(SharedCoroutine: Clone, |pending| T::clone(&pending.node.output()));

/// Starts `y` without waiting for it: `yield_!(background(y))` returns at once. The loop still
/// runs `y` to completion before [`Loop::run`](crate::Loop::run) returns, and an error in it
/// crashes the loop as any other. To read its output later, make it [`Shared`](crate::Shared)
/// and yield a clone.
///
/// ```
/// use tinyio::{background, Loop};
/// use std::cell::Cell;
///
/// #[tinyio::coroutine]
/// fn mark(cell: &Cell<u32>) -> () {
///     yield_!();
///     cell.set(cell.get() + 1);
/// }
///
/// #[tinyio::coroutine]
/// fn start<'a>(cell: &'a Cell<u32>) -> u32 {
///     yield_!(background(vec![mark(cell), mark(cell)]));
///     cell.get() // the background coroutines have not run yet
/// }
///
/// let cell = Cell::new(0);
/// assert_eq!(Loop::new().run(start(&cell)).unwrap(), 0);
/// assert_eq!(cell.get(), 2); // but `run` waited for them
/// ```
pub fn background<Y: Yieldable>(y: Y) -> Background<Y> {
    Background(y)
}

/// See [`background`].
///
/// ```
/// use tinyio::{Background, Loop, Shared, background};
///
/// #[tinyio::coroutine]
/// fn work() -> u32 {
///     1
/// }
///
/// #[tinyio::coroutine]
/// fn start() -> u32 {
///     let work = work().share();
///     let started: Background<Shared<u32>> = background(work.clone());
///     yield_!(started); // returns at once
///     yield_!(work) // the output, read later
/// }
///
/// assert_eq!(Loop::new().run(start()).unwrap(), 1);
/// ```
#[must_use = "yield it: `yield_!(background(...))`"]
#[derive(Debug)]
pub struct Background<Y>(Y);

impl<Y: Yieldable> Yieldable for Background<Y> {
    type Output = ();
    type Pending = ();

    fn submit<'s>(self, submission: &mut Submission<'s>)
    where
        Self: 's,
    {
        drop(submission.background(|submission| self.0.submit(submission)));
    }

    fn collect(_: ()) {}
}

impl<Y: Yieldable> Yieldable for Vec<Y> {
    type Output = Vec<Y::Output>;
    type Pending = Vec<Y::Pending>;

    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's,
    {
        // A gather knows how many it holds; a lone coroutine needs no box.
        if self.len() > 1 {
            submission.contents().rest.reserve(self.len());
        }
        self.into_iter().map(|y| y.submit(submission)).collect()
    }

    fn collect(pending: Self::Pending) -> Self::Output {
        pending.into_iter().map(Y::collect).collect()
    }
}

impl<Y: Yieldable, const N: usize> Yieldable for [Y; N] {
    type Output = [Y::Output; N];
    type Pending = [Y::Pending; N];

    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's,
    {
        self.map(|y| y.submit(submission))
    }

    fn collect(pending: Self::Pending) -> Self::Output {
        pending.map(Y::collect)
    }
}

/// Tuples of every length up to 12, `()` first (the empty tuple: a plain pause, which submits
/// nothing): the first arm implements one length, the second each length and then one more.
macro_rules! tuples {
    ([$($name:ident)*]) => {
        impl<$($name: Yieldable),*> Yieldable for ($($name,)*) {
            type Output = ($($name::Output,)*);
            type Pending = ($($name::Pending,)*);

            #[allow(non_snake_case, unused_variables, clippy::unused_unit)]
            fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
            where
                Self: 's,
            {
                let ($($name,)*) = self;
                ($($name.submit(submission),)*)
            }

            #[allow(non_snake_case, clippy::unused_unit)]
            fn collect(pending: Self::Pending) -> Self::Output {
                let ($($name,)*) = pending;
                ($($name::collect($name),)*)
            }
        }
    };
    ([$($done:ident)*] $next:ident $($rest:ident)*) => {
        tuples!([$($done)*]);
        tuples!([$($done)* $next] $($rest)*);
    };
}

tuples!([] A B C D E F G H I J K L);

/// One suspension point: hands `value`'s coroutines to the loop at once; the returned future,
/// awaited right away, waits until they are done (or until the loop delivers an error), then
/// collects their outputs. A value that can finish now ([`Yieldable::now`]) does, and the
/// coroutine goes on without suspending: the loop never hears of it. The future is opaque, not a
/// `Suspend<Y, _>`, whose bound on `Y` would report a value that cannot be yielded a second
/// time, naming `Suspend`.
#[doc(hidden)]
#[inline(always)]
pub fn suspend<'c, 'a, Y: Yieldable + 'a>(
    co: &'c Co<'a>,
    value: Y,
    line: u32,
) -> impl Future<Output = Result<Y::Output, Error>> + 'c {
    match value.now() {
        Ok(output) => Suspend::Done(output),
        Err(value) => suspend_until(co, value, None, None, line),
    }
}

/// Like [`suspend`], but gives up at `deadline`, or once `cancel` is cancelled: what was
/// submitted is then stopped (with a timeout error, or a cancellation), and this suspension
/// point gets a deadline error. To be awaited at once: the line goes to the loop with the
/// request, which the first poll hands over.
#[inline(always)]
pub(crate) fn suspend_until<'c, 'a, Y: Yieldable + 'a>(
    co: &'c Co<'a>,
    value: Y,
    deadline: Option<Instant>,
    cancel: Option<Arc<Cancel>>,
    line: u32,
) -> Suspend<Y, impl Future<Output = Input> + Unpin + 'c> {
    let mut submission = Submission::default();
    let pending = value.submit(&mut submission);
    if deadline.is_some() || cancel.is_some() {
        let contents = submission.contents();
        (contents.deadline, contents.cancel) = (deadline, cancel);
    }
    Suspend::Waiting(pending, co.0.yield_(Request::new(submission, line)))
}

/// The future of one suspension point: written out rather than `async`, as it is on the path
/// of every `yield_!`, where a hand-written one checks its stage once per poll.
#[doc(hidden)]
pub enum Suspend<Y: Yieldable, B> {
    /// Submitted: what to collect the output with, and the barrier, ready with the loop's
    /// input once the loop resumes the generator.
    Waiting(Y::Pending, B),
    /// Finished without suspending (see [`Yieldable::now`]).
    Done(Y::Output),
    /// The output was given.
    Over,
}

impl<Y: Yieldable, B: Unpin> Unpin for Suspend<Y, B> {}

impl<Y: Yieldable, B: Future<Output = Input> + Unpin> Future for Suspend<Y, B> {
    type Output = Result<Y::Output, Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Suspend::Waiting(_, barrier) = &mut *self {
            let input = std::task::ready!(Pin::new(barrier).poll(cx));
            if let Some(error) = input.error() {
                *self = Suspend::Over;
                return Poll::Ready(Err(error));
            }
        }
        Poll::Ready(match std::mem::replace(&mut *self, Suspend::Over) {
            Suspend::Waiting(pending, _) => Ok(Y::collect(pending)),
            Suspend::Done(output) => Ok(output),
            Suspend::Over => panic!("polled after completion"),
        })
    }
}

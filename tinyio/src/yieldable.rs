//! What `yield_!` accepts, and what it evaluates to.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::cancel::Cancel;
use crate::coro::{Coroutine, OutputOf, SharedCoroutine, Task};
use crate::run::Caught;

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
/// use tinyio::{Loop};
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

/// The coroutines one `yield_!` hands to the loop: nothing for a plain pause, the coroutine
/// itself when it is the one waited on, else a box made when a second coroutine (or a deadline,
/// or a background start) comes. Two words, as it travels through the generator at every
/// suspension; one coroutine, the commonest yield after a pause, needs no allocation.
#[doc(hidden)]
pub struct Submission<'s>(Inner<'s>);

enum Inner<'s> {
    /// One coroutine, waited on.
    One(Rc<dyn Task + 's>),
    /// Nothing, or whatever is more than one coroutine waited on.
    Other(Option<Box<Contents<'s>>>),
}

impl Default for Submission<'_> {
    fn default() -> Self {
        Submission(Inner::Other(None))
    }
}

#[derive(Default)]
struct Contents<'s> {
    /// The first coroutine waited on, filed before the others (even those started in the
    /// background ahead of it).
    first: Option<Rc<dyn Task + 's>>,
    rest: Vec<Submitted<'s>>,
    /// Whether coroutines pushed now start in the background.
    background: bool,
    /// For a timed wait (see `timeout`): when to give up.
    deadline: Option<Instant>,
    /// For a wait that can be cancelled on demand (see `cancellable`): the handle to arm.
    cancel: Option<Arc<Cancel>>,
    /// For the yield of an [`isolate`](crate::isolate): what the run leaves for the boundary
    /// to read when it resumes it.
    boundary: Option<Rc<Caught>>,
}

/// A submitted coroutine, and whether the yielding coroutine waits for it.
pub(crate) struct Submitted<'s> {
    pub(crate) task: Rc<dyn Task + 's>,
    pub(crate) wait: bool,
}

impl<'s> Submission<'s> {
    /// The box, made now if need be (taking in the one coroutine held so far).
    fn contents(&mut self) -> &mut Contents<'s> {
        if let Inner::One(_) | Inner::Other(None) = self.0 {
            let first = match std::mem::take(self).0 {
                Inner::One(task) => Some(task),
                Inner::Other(_) => None,
            };
            self.0 = Inner::Other(Some(Box::new(Contents {
                first,
                ..Contents::default()
            })));
        }
        match &mut self.0 {
            Inner::Other(Some(contents)) => contents,
            _ => unreachable!("boxed above"),
        }
    }

    /// Adds a coroutine, waited on unless pushed in the background.
    ///
    /// The first push into an empty submission (one coroutine yielded alone, the usual case) is
    /// inlined, as is `submit` for a coroutine, so that the submission is built in registers:
    /// built in memory by a call, it was read back in one piece from two separate writes, which
    /// the processor cannot forward to the read and stalls on (W6 and W3 -2 to -4% each).
    #[inline(always)]
    pub(crate) fn push(&mut self, task: Rc<dyn Task + 's>) {
        if let Inner::Other(None) = self.0 {
            self.0 = Inner::One(task);
        } else {
            self.push_more(task);
        }
    }

    #[inline(never)]
    fn push_more(&mut self, task: Rc<dyn Task + 's>) {
        let contents = match &mut self.0 {
            Inner::Other(Some(contents)) => contents,
            Inner::Other(None) | Inner::One(_) => self.contents(),
        };
        if contents.first.is_none() && !contents.background {
            contents.first = Some(task);
        } else {
            let wait = !contents.background;
            contents.rest.push(Submitted { task, wait });
        }
    }

    /// Pushes what `submit` pushes in the background, and returns what it returns.
    pub(crate) fn background<R>(&mut self, submit: impl FnOnce(&mut Self) -> R) -> R {
        let outer = std::mem::replace(&mut self.contents().background, true);
        let pending = submit(self);
        self.contents().background = outer;
        pending
    }

    /// Makes room for `additional` more coroutines (a gather knows how many it holds).
    fn reserve(&mut self, additional: usize) {
        if additional > 1 {
            self.contents().rest.reserve(additional);
        }
    }

    #[inline]
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        if deadline.is_some() {
            self.contents().deadline = deadline;
        }
    }

    /// Makes this a wait that `cancel` ends as a passed deadline would (see
    /// [`cancellable`](crate::cancellable)).
    #[inline]
    pub(crate) fn set_cancel(&mut self, cancel: Option<Arc<Cancel>>) {
        if cancel.is_some() {
            self.contents().cancel = cancel;
        }
    }

    /// Makes this the yield of an isolated scope's boundary (see [`isolate`](crate::isolate)).
    pub(crate) fn set_boundary(&mut self, caught: Rc<Caught>) {
        self.contents().boundary = Some(caught);
    }

    /// Takes what [`set_boundary`](Submission::set_boundary) set.
    #[inline]
    pub(crate) fn take_boundary(&mut self) -> Option<Rc<Caught>> {
        match &mut self.0 {
            Inner::Other(Some(contents)) => contents.boundary.take(),
            _ => None,
        }
    }

    /// When to give up on a timed wait, and the handle to arm for one that can be cancelled
    /// (which this takes).
    #[inline]
    pub(crate) fn take_limits(&mut self) -> (Option<Instant>, Option<Arc<Cancel>>) {
        match &mut self.0 {
            Inner::Other(Some(contents)) => (contents.deadline, contents.cancel.take()),
            _ => (None, None),
        }
    }

    /// Whether nothing was submitted: a plain pause.
    #[inline]
    pub(crate) fn is_pause(&self) -> bool {
        matches!(self.0, Inner::Other(None))
    }

    /// The one coroutine submitted, if that is all (waited on, with no deadline nor handle).
    #[inline]
    pub(crate) fn sole(&self) -> Option<&Rc<dyn Task + 's>> {
        match &self.0 {
            Inner::One(task) => Some(task),
            Inner::Other(Some(contents))
                if contents.rest.is_empty()
                    && contents.deadline.is_none()
                    && contents.cancel.is_none() =>
            {
                contents.first.as_ref()
            }
            Inner::Other(_) => None,
        }
    }

    /// Takes the coroutine [`sole`](Submission::sole) gave.
    pub(crate) fn into_sole(self) -> Rc<dyn Task + 's> {
        let sole = match self.0 {
            Inner::One(task) => Some(task),
            Inner::Other(contents) => contents.and_then(|contents| contents.first),
        };
        sole.expect("a sole coroutine")
    }

    /// The first coroutine waited on, and the others (waited on or not, in order).
    pub(crate) fn into_parts(self) -> (Option<Rc<dyn Task + 's>>, Vec<Submitted<'s>>) {
        match self.0 {
            Inner::One(task) => (Some(task), Vec::new()),
            Inner::Other(None) => Default::default(),
            Inner::Other(Some(contents)) => (contents.first, contents.rest),
        }
    }
}

impl Yieldable for () {
    type Output = ();
    type Pending = ();
    fn submit<'s>(self, _: &mut Submission<'s>)
    where
        Self: 's,
    {
    }
    fn collect(_: ()) {}
}

impl<'a, T> Yieldable for Coroutine<'a, T> {
    type Output = T;
    type Pending = OutputOf<'a, T>;

    #[inline(always)]
    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's,
    {
        submission.push(self.node.clone());
        OutputOf(self.node)
    }

    fn collect(node: Self::Pending) -> T {
        node.0.take()
    }
}

impl<'a, T: Clone> Yieldable for SharedCoroutine<'a, T> {
    type Output = T;
    type Pending = OutputOf<'a, T>;

    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's,
    {
        submission.push(self.node.clone());
        OutputOf(self.node)
    }

    fn collect(node: Self::Pending) -> T {
        let mut output = None;
        node.0.with_output(&mut |out| output = Some(out.clone()));
        output.expect("a finished coroutine has an output")
    }
}

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
        submission.reserve(self.len());
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

macro_rules! tuple {
    ($($name:ident)+) => {
        impl<$($name: Yieldable),+> Yieldable for ($($name,)+) {
            type Output = ($($name::Output,)+);
            type Pending = ($($name::Pending,)+);

            #[allow(non_snake_case)]
            fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
            where
                Self: 's,
            {
                let ($($name,)+) = self;
                ($($name.submit(submission),)+)
            }

            #[allow(non_snake_case)]
            fn collect(pending: Self::Pending) -> Self::Output {
                let ($($name,)+) = pending;
                ($($name::collect($name),)+)
            }
        }
    };
}

tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);
tuple!(A B C D E F G H I);
tuple!(A B C D E F G H I J);
tuple!(A B C D E F G H I J K);
tuple!(A B C D E F G H I J K L);

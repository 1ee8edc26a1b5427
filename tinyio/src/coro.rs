//! Coroutines as the loop sees them.
//!
//! A coroutine is one `Rc` allocation, a [`NodeCell`], holding its body (a generator, or a leaf
//! such as a timer or a thread) until it finishes and its output afterwards. The loop holds it
//! type-erased as `Rc<dyn Task>`; whoever awaits it holds the same allocation as
//! `Rc<dyn Node<T>>` and reads the typed output from it once resumed. No output is ever boxed.

use std::any::Any;
use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::future::Future;
use std::mem::{self, ManuallyDrop};
use std::ops::ControlFlow;
use std::panic;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use genawaiter::GeneratorState;
use genawaiter::rc::{Co as GenCo, Gen};

use crate::error::{Error, Frame, Raise};
use crate::site::{Called, Origin, Site};
use crate::wake::Cancel;

/// A coroutine producing `T`, made by calling a [`#[coroutine]`](crate::coroutine) function
/// (or [`sleep`](crate::sleep), [`run_in_thread`](crate::run_in_thread), ...). Nothing runs until a
/// loop schedules it: `yield_!` it inside another coroutine, or pass it to
/// [`Loop::run`](crate::Loop::run).
///
/// `'a` is what the coroutine borrows, as for an `async fn`'s future; most coroutines borrow
/// nothing and are written [`Coro<T>`]. To await one coroutine from several places, turn it into a
/// [`Shared`] with [`share`](Coroutine::share).
///
/// ```
/// use tinyio::{Coro, Loop};
///
/// #[tinyio::coroutine]
/// fn double(x: u32) -> u32 {
///     yield_!();
///     2 * x
/// }
///
/// let c: Coro<u32> = double(21);
/// assert_eq!(c.name(), "double");
/// assert_eq!(Loop::new().run(c).unwrap(), 42);
/// ```
#[must_use = "a coroutine does nothing until it is yielded (`yield_!(c)`) or run (`Loop::new().run(c)`)"]
pub struct Coroutine<'a, T> {
    pub(crate) node: Rc<dyn Node<T> + 'a>,
}

/// A coroutine that borrows nothing: the type most signatures name.
///
/// ```
/// use tinyio::{Coro, Loop};
/// use std::time::Duration;
///
/// let nap: Coro<()> = tinyio::sleep(Duration::from_millis(1));
/// Loop::new().run(nap).unwrap();
/// ```
pub type Coro<T> = Coroutine<'static, T>;

/// A coroutine that many may await: it is scheduled once, however many hold it, and each waiter
/// gets a clone of its output. Once finished it keeps its output, so yielding it again, in the
/// same run or a later one, returns at once.
///
/// A shared coroutine that did not finish (it failed, was cancelled when its run or its
/// [`isolate`](crate::isolate) failed, or was stopped by a [`timeout`](crate::timeout)) has no
/// output and is never started again: yielding it afterwards raises a cancellation that says which
/// of these happened.
///
/// ```
/// use tinyio::{Loop, Shared};
///
/// #[tinyio::coroutine]
/// fn expensive() -> String {
///     yield_!();
///     "result".to_string()
/// }
///
/// #[tinyio::coroutine]
/// fn use_twice(s: Shared<String>) -> usize {
///     let (a, b) = yield_!((s.clone(), s));
///     a.len() + b.len()
/// }
///
/// let s = expensive().share();
/// let lp = Loop::new();
/// assert_eq!(lp.run(use_twice(s.clone())).unwrap(), 12);
/// assert_eq!(lp.run(s).unwrap(), "result"); // already finished: not run again
/// ```
#[must_use = "a coroutine does nothing until it is yielded (`yield_!(c)`) or run (`Loop::new().run(c)`)"]
pub struct SharedCoroutine<'a, T> {
    pub(crate) node: Rc<dyn Node<T> + 'a>,
}

/// A [`SharedCoroutine`] that borrows nothing.
///
/// ```
/// use tinyio::{Loop, Shared};
///
/// #[tinyio::coroutine]
/// fn seven() -> u8 {
///     7
/// }
///
/// let s: Shared<u8> = seven().share();
/// assert_eq!(Loop::new().run((s.clone(), s)).unwrap(), (7, 7));
/// ```
pub type Shared<T> = SharedCoroutine<'static, T>;

impl<'a, T> Coroutine<'a, T> {
    /// Makes this coroutine awaitable from many places (diamonds), at the price of cloning its
    /// output for each waiter.
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn word() -> String {
    ///     "hi".to_string()
    /// }
    ///
    /// let shared = word().share();
    /// let lp = tinyio::Loop::new();
    /// assert_eq!(lp.run(shared.clone()).unwrap(), "hi");
    /// assert_eq!(lp.run(shared).unwrap(), "hi"); // kept, not run again
    /// ```
    pub fn share(self) -> SharedCoroutine<'a, T>
    where
        T: Clone,
    {
        SharedCoroutine { node: self.node }
    }

    /// The name of the function that made this coroutine.
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn fetch() -> u8 {
    ///     0
    /// }
    ///
    /// assert_eq!(fetch().name(), "fetch");
    /// assert_eq!(tinyio::sleep(std::time::Duration::ZERO).name(), "sleep");
    /// ```
    pub fn name(&self) -> &'static str {
        self.node.frame(0).name
    }

    fn from_body<B: Body<Output = T> + 'a, O: Origin + 'static>(origin: O, body: B) -> Self {
        let state = State::Body { key: UNSCHEDULED, started: false, body };
        Coroutine { node: Rc::new(NodeCell { origin, state: RefCell::new(state) }) }
    }

    /// A built-in leaf, placed where it was called (see [`Called`]). Inlined: it is on the path
    /// of every wait (an event's, a sleep's), whose caller knows the leaf's type.
    #[inline]
    #[track_caller]
    pub(crate) fn leaf<L: Leaf<Output = T> + 'a>(site: &'static Site, leaf: L) -> Self {
        Coroutine::from_body(Called::here(site), leaf)
    }

    /// A built-in leaf built after the call that asked for it, placed at that call, `at`
    /// (a `#[track_caller]` function's `Location::caller()`).
    pub(crate) fn leaf_at<L: Leaf<Output = T> + 'a>(
        site: &'static Site,
        at: &'static std::panic::Location<'static>,
        leaf: L,
    ) -> Self {
        Coroutine::from_body(Called { site, at }, leaf)
    }
}

impl<T> SharedCoroutine<'_, T> {
    /// The name of the function that made this coroutine.
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn fetch() -> u8 {
    ///     0
    /// }
    ///
    /// let shared = fetch().share();
    /// assert_eq!(shared.clone().name(), "fetch");
    /// ```
    pub fn name(&self) -> &'static str {
        self.node.frame(0).name
    }

    /// Whether both handles point at the same coroutine.
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn one() -> u8 { 1 }
    /// let a = one().share();
    /// assert!(a.ptr_eq(&a.clone()));
    /// assert!(!a.ptr_eq(&one().share()));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.node, &other.node)
    }
}

impl<T> Clone for SharedCoroutine<'_, T> {
    fn clone(&self) -> Self {
        SharedCoroutine { node: self.node.clone() }
    }
}

impl<T> fmt::Debug for Coroutine<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine").field("name", &self.name()).finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for SharedCoroutine<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCoroutine")
            .field("name", &self.name())
            .field("finished", &(self.node.owner() == Some(Owner::Finished)))
            .finish_non_exhaustive()
    }
}

/// Which run, if any, a coroutine belongs to, as its [`State`] tells it. Kept in the coroutine
/// so that the loop finds a shared coroutine's place in its run without hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Never scheduled.
    Fresh,
    /// Scheduled at `key` in the table of some run: a run believes it is in its own table only
    /// once it has found it there.
    Scheduled { key: u32 },
    /// Finished; its output is kept.
    Finished,
    /// Ended without an output, and never runs again.
    Dead(Ended),
}

/// How a coroutine ended without an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It failed or panicked.
    Failed,
    /// It was cancelled, when its run failed or was stopped.
    Cancelled,
    /// A timeout stopped it.
    TimedOut,
    /// A cancellation on demand stopped it (see [`cancellable`](crate::cancellable)).
    Withdrawn,
}

/// What the loop asks of a coroutine, whatever its output type.
pub(crate) trait Task {
    /// Its frame, suspended at `line` (0: not suspended yet); see [`Origin`].
    fn frame(&self, line: u32) -> Frame;
    /// Where it is, or how it ended; `None` while it runs (only it could be asking).
    fn owner(&self) -> Option<Owner>;
    /// It is scheduled at `key` in its run's table.
    fn schedule(&self, key: u32);
    /// It ended without an output: its body is dropped (a panic in a destructor unwinds from
    /// here).
    fn end(&self, ended: Ended);
    /// Whether the coroutine has run at all; one that has not is dropped, not resumed, on
    /// cancellation.
    fn started(&self) -> bool;
    /// Whether this is a leaf (polled like a future) rather than a generator.
    fn is_leaf(&self) -> bool;
    /// It is about to be stopped with the others its waiter waits on: work it has queued but
    /// not started must not start meanwhile (see [`Leaf::withdraw`]).
    fn withdraw(&self);
    /// Runs the coroutine until it next suspends, delivering `input` at its suspension point.
    /// Must not be called again once it returned `Done` or `Fail`, or panicked.
    fn resume<'s>(&self, input: Input, cx: &mut Cx<'_>) -> Step<'s>
    where
        Self: 's;
}

/// What the awaiting side asks of a coroutine: its output.
pub(crate) trait Node<T>: Task {
    /// Moves the output out. Called once, after the coroutine finished.
    fn take(&self) -> T;
    /// Lends the output, for shared coroutines.
    fn output(&self) -> Ref<'_, T>;
}

/// What the loop delivers at a suspension point: go on, or the error to return there. A plain
/// word rather than a `Result`: it travels through the generator at every resume.
///
/// A word, not a byte: genawaiter's airlock holds this or a request (two words) in one enum,
/// and a word keeps the request word-aligned there, so that its hand-over is copied whole.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Input {
    /// Go on.
    Go,
    /// The loop is cancelling everything.
    Cancel,
    /// A `timeout` around this coroutine expired.
    Timeout,
    /// This coroutine's own timed wait expired (it is the `timeout` wrapper).
    Deadline,
}

impl Input {
    #[inline]
    pub(crate) fn error(self) -> Option<Error> {
        match self {
            Input::Go => None,
            Input::Cancel => Some(Error::cancelled()),
            Input::Timeout => Some(Error::timeout()),
            Input::Deadline => Some(Error::deadline()),
        }
    }
}

/// The outcome of one resume.
pub(crate) enum Step<'s> {
    /// A generator suspended, asking the loop for what it yielded.
    Yield(Request<'s>),
    /// A leaf is waiting to be woken through its waker, or until the deadline.
    Park(Option<Instant>),
    /// Finished; the output is in the node.
    Done,
    /// Finished with an error.
    Fail(Error),
}

impl<'s> Step<'s> {
    /// What a yield submitted (nothing for any other step): to drop it when the yield is
    /// refused.
    pub(crate) fn into_submission(self) -> Submission<'s> {
        match self {
            Step::Yield(request) => request.into_submission(),
            _ => Submission::default(),
        }
    }
}

/// What a generator hands to the loop at a `yield_!`: the coroutines it waits on or starts in
/// the background; none for a plain pause.
///
/// It travels through genawaiter's airlock at every resume, so it is kept to two words and
/// without drop glue (the submission is `ManuallyDrop`): the airlock then moves it with a few
/// instructions instead of calling drop glue at each of its swaps. Whoever receives a request
/// takes the submission out with [`into_submission`](Request::into_submission); only a plain
/// pause, which holds nothing, may be dropped as it is. The line of the `yield_!` travels beside
/// it (see [`LINE`]).
pub(crate) struct Request<'a>(ManuallyDrop<Submission<'a>>);

thread_local! {
    /// The line of the `yield_!` a generator last suspended at on this thread: written as the
    /// generator makes its request, which it hands over at once, read by the loop as it
    /// receives the request, before anything else runs. A third word in the request would cost
    /// every pause (see [`Request`]).
    pub(crate) static LINE: Cell<u32> = const { Cell::new(0) };
}

impl<'a> Request<'a> {
    /// The request of the `yield_!` at `line`, whose line goes to [`LINE`]: to be handed over at
    /// once.
    #[inline]
    pub(crate) fn new(submission: Submission<'a>, line: u32) -> Self {
        LINE.set(line);
        Request(ManuallyDrop::new(submission))
    }

    pub(crate) fn into_submission(self) -> Submission<'a> {
        ManuallyDrop::into_inner(self.0)
    }
}

/// The coroutines one `yield_!` hands to the loop: nothing for a plain pause, the coroutine
/// itself when it is the one waited on, else a box made when a second coroutine (or a deadline,
/// or a background start) comes. Two words, as it travels through the generator at every
/// suspension; one coroutine, the commonest yield after a pause, needs no allocation. The run
/// matches on it: a pause and a lone leaf take their own short ways there.
#[doc(hidden)]
pub struct Submission<'s>(pub(crate) Inner<'s>);

pub(crate) enum Inner<'s> {
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

/// Everything a submission can hold, as it boxes it when it holds more than a lone coroutine
/// waited on.
#[derive(Default)]
pub(crate) struct Contents<'s> {
    /// The first coroutine waited on, filed before the others (even those started in the
    /// background ahead of it).
    pub(crate) first: Option<Rc<dyn Task + 's>>,
    /// The others, each with whether the yielding coroutine waits for it.
    pub(crate) rest: Vec<(Rc<dyn Task + 's>, bool)>,
    /// Whether coroutines pushed now start in the background.
    background: bool,
    /// For a timed wait (see `timeout`): when to give up.
    pub(crate) deadline: Option<Instant>,
    /// For a wait that can be cancelled on demand (see `cancellable`): the handle to arm.
    pub(crate) cancel: Option<Arc<Cancel>>,
    /// For the yield of an [`isolate`](crate::isolate): what the run leaves for the boundary
    /// to read when it resumes it.
    pub(crate) boundary: Option<Rc<Caught>>,
}

impl<'s> Submission<'s> {
    /// The box, made now if need be (taking in the one coroutine held so far).
    pub(crate) fn contents(&mut self) -> &mut Contents<'s> {
        if !matches!(self.0, Inner::Other(Some(_))) {
            self.0 = Inner::Other(Some(Box::new(mem::take(self).into_contents())));
        }
        let Inner::Other(Some(contents)) = &mut self.0 else { unreachable!("boxed above") };
        contents
    }

    /// Everything submitted, unboxed: nothing for a plain pause.
    pub(crate) fn into_contents(self) -> Contents<'s> {
        match self.0 {
            Inner::One(task) => Contents { first: Some(task), ..Contents::default() },
            Inner::Other(None) => Contents::default(),
            Inner::Other(Some(contents)) => *contents,
        }
    }

    /// Adds a coroutine, waited on unless pushed in the background.
    ///
    /// The first push into an empty submission (one coroutine yielded alone, the usual case) is
    /// inlined, as is `submit` for a coroutine, so that the submission is built in registers.
    #[inline(always)]
    pub(crate) fn push(&mut self, task: Rc<dyn Task + 's>) {
        match self.0 {
            Inner::Other(None) => self.0 = Inner::One(task),
            _ => self.push_more(task),
        }
    }

    #[inline(never)]
    fn push_more(&mut self, task: Rc<dyn Task + 's>) {
        let contents = self.contents();
        if contents.first.is_none() && !contents.background {
            contents.first = Some(task);
        } else {
            contents.rest.push((task, !contents.background));
        }
    }

    /// Pushes what `submit` pushes in the background, and returns what it returns.
    pub(crate) fn background<R>(&mut self, submit: impl FnOnce(&mut Self) -> R) -> R {
        let outer = mem::replace(&mut self.contents().background, true);
        let pending = submit(self);
        self.contents().background = outer;
        pending
    }
}

/// What an isolate's boundary reads when it is resumed: the error that failed its scope, and
/// threads a timeout inside told to stop, which it joins before it goes on (as any error they
/// end with belongs to the scope).
#[derive(Default)]
pub(crate) struct Caught {
    pub(crate) error: Cell<Option<Error>>,
    pub(crate) joins: RefCell<Vec<Join>>,
}

impl Caught {
    /// Joins the threads left, then gives the error that failed the scope, grouped with those
    /// the threads ended with as [`ErrorGroup::Auto`](crate::ErrorGroup::Auto) does, if any. A
    /// thread's panic resumes.
    pub(crate) fn take(&self) -> Option<Error> {
        let mut errors: Vec<Error> = self.error.take().into_iter().collect();
        // One at a time, with the list not borrowed meanwhile: after a panic, those left are
        // joined when this is dropped.
        let next = || self.joins.borrow_mut().pop();
        while let Some(join) = next() {
            match join.finish() {
                Some(Failure::Error(error)) => errors.push(error),
                Some(Failure::Panic(payload)) => panic::resume_unwind(payload),
                None => {}
            }
        }
        group(errors)
    }
}

impl Drop for Caught {
    /// No thread outlives its run, even if the boundary never read this (a panic elsewhere).
    fn drop(&mut self) {
        for join in self.joins.get_mut().drain(..) {
            drop(join.finish());
        }
    }
}

/// Why a run ended early. A panic resumes out of `run` once everything is cleaned up.
pub(crate) enum Failure {
    Error(Error),
    Panic(Box<dyn Any + Send>),
}

/// A thread call (or a foreign task) told to stop, which the run waits for before it returns.
pub(crate) struct Join {
    /// Where it was called, for the stall report.
    pub(crate) frame: Frame,
    /// Waits until it has ended, or until the deadline passes (`Pending`); once ended, gives
    /// what it failed with, if anything but its cancellation.
    pub(crate) wait: Box<dyn FnMut(Option<Instant>) -> Poll<Option<Failure>>>,
}

impl Join {
    /// Waits until it has ended; gives what it failed with, if anything but its cancellation.
    pub(crate) fn finish(mut self) -> Option<Failure> {
        let Poll::Ready(failure) = (self.wait)(None) else { unreachable!("no deadline to pass") };
        failure
    }
}

/// Errors as an isolated scope gives them, grouped as
/// [`ErrorGroup::Auto`](crate::ErrorGroup::Auto) does: the first alone, or a group if there are
/// more; `None` if there are none.
pub(crate) fn group(mut errors: Vec<Error>) -> Option<Error> {
    if errors.len() > 1 { Some(Error::from_group(errors)) } else { errors.pop() }
}

/// What a leaf can reach while it is polled.
pub(crate) struct Cx<'r> {
    /// Makes a waker for the leaf being polled (a leaf makes one, then keeps it).
    pub(crate) waker: &'r dyn Fn() -> std::task::Waker,
    /// Threads to join once everything has been told to stop.
    pub(crate) joins: &'r mut Vec<Join>,
    /// How many more rounds a generator may take in place by pausing again: the loop grants
    /// them when nothing else is ready and no timer is set, as it would then resume the same
    /// coroutine next anyway. Each pause taken so costs one.
    pub(crate) spare: &'r mut usize,
    /// Where wake-ups arrive: a wake-up (or a stop) ends the spare rounds.
    pub(crate) remote: &'r crate::wake::Remote,
    /// The clock as the loop last read it.
    pub(crate) now: Instant,
}

impl Cx<'_> {
    /// Whether `deadline` had passed at the loop's last reading of the clock. A leaf waiting
    /// for it sets a timer, so the loop reads the clock again before it next resumes anything:
    /// a deadline passed since is found then, and no leaf reads the clock itself.
    pub(crate) fn passed(&self, deadline: Instant) -> bool {
        self.now >= deadline
    }
}

/// The body of a coroutine: a generator, or a leaf polled like a future.
trait Body {
    type Output;
    const LEAF: bool;
    /// `Break` with the output once finished; else what the resume gave (never `Step::Done`).
    fn step<'s>(&mut self, input: Input, cx: &mut Cx<'_>) -> ControlFlow<Self::Output, Step<'s>>
    where
        Self: 's;
    /// See [`Task::withdraw`].
    fn withdraw(&mut self) {}
}

/// One coroutine: where it comes from, and its state.
struct NodeCell<B: Body, O> {
    origin: O,
    state: RefCell<State<B, B::Output>>,
}

/// The key of a coroutine no run has scheduled: never a table's key (the run keeps it for
/// itself, as its root).
const UNSCHEDULED: u32 = u32::MAX;

/// A coroutine's one state, from its making to its end.
enum State<B, T> {
    /// Not finished: its key in its run's table ([`UNSCHEDULED`]: not scheduled yet), whether
    /// it has been resumed at all, and its body. A key and a flag rather than an `Option` keep
    /// the state three words for a generator.
    Body { key: u32, started: bool, body: B },
    /// Finished: its output, until it is taken (a shared coroutine's is only lent).
    Finished(Option<T>),
    /// Ended without an output; never runs again.
    Dead(Ended),
}

impl<B: Body, O: Origin> Task for NodeCell<B, O> {
    fn frame(&self, line: u32) -> Frame {
        self.origin.frame(line)
    }

    fn owner(&self) -> Option<Owner> {
        Some(match &*self.state.try_borrow().ok()? {
            State::Body { key: UNSCHEDULED, .. } => Owner::Fresh,
            &State::Body { key, .. } => Owner::Scheduled { key },
            State::Finished(_) => Owner::Finished,
            &State::Dead(ended) => Owner::Dead(ended),
        })
    }

    fn schedule(&self, key: u32) {
        // A held leaf that failed, settled in the table to be traced, stays ended.
        if let State::Body { key: at, .. } = &mut *self.state.borrow_mut() {
            *at = key;
        }
    }

    fn end(&self, ended: Ended) {
        // The state is no longer borrowed when the body drops.
        let body = mem::replace(&mut *self.state.borrow_mut(), State::Dead(ended));
        drop(body);
    }

    fn started(&self) -> bool {
        matches!(*self.state.borrow(), State::Body { started: true, .. })
    }

    fn is_leaf(&self) -> bool {
        B::LEAF
    }

    fn withdraw(&self) {
        if let State::Body { body, .. } = &mut *self.state.borrow_mut() {
            body.withdraw();
        }
    }

    fn resume<'s>(&self, input: Input, cx: &mut Cx<'_>) -> Step<'s>
    where
        Self: 's,
    {
        // The body runs in place, with the state borrowed: nothing else reads this node's state
        // while it runs (a shared coroutine awaiting itself is caught as a cycle before any
        // output is read). After a panic the loop never resumes it again.
        let mut state = self.state.borrow_mut();
        let State::Body { started, body, .. } = &mut *state else {
            unreachable!("resumed a finished coroutine")
        };
        *started = true;
        let placing = if B::LEAF { None } else { self.origin.placing() };
        let step = body.step(input, cx);
        drop(placing);
        match step {
            ControlFlow::Break(output) => {
                // The body is dropped in place. Its drop cannot reach this node's state: only
                // the loop reads it, never from inside a resume.
                *state = State::Finished(Some(output));
                Step::Done
            }
            ControlFlow::Continue(Step::Fail(error)) => {
                drop(state);
                self.end(Ended::Failed);
                // Where a built-in's body raised is inside this crate: its frame says where.
                Step::Fail(if O::KEEPS_RAISED_AT { error } else { error.placed() })
            }
            ControlFlow::Continue(step) => step,
        }
    }
}

impl<B: Body, O: Origin> Node<B::Output> for NodeCell<B, O> {
    fn take(&self) -> B::Output {
        match &mut *self.state.borrow_mut() {
            State::Finished(output) => output.take().expect("taken once"),
            _ => unreachable!("took the output of an unfinished coroutine"),
        }
    }

    fn output(&self) -> Ref<'_, B::Output> {
        Ref::map(self.state.borrow(), |state| match state {
            State::Finished(Some(output)) => output,
            _ => unreachable!("read the output of an unfinished coroutine"),
        })
    }
}

/// The handle a coroutine body suspends through (the `__tinyio_co` of the expansion).
#[doc(hidden)]
pub struct Co<'a>(pub(crate) GenCo<Request<'a>, Input>);

/// A generator body: a genawaiter `rc` generator around the `async` block the macro writes.
struct Generator<'a, F: Future>(Gen<Request<'a>, Input, F>);

impl<'a, T, F: Future<Output = Result<T, Raise>>> Body for Generator<'a, F> {
    type Output = T;
    const LEAF: bool = false;

    fn step<'s>(&mut self, mut input: Input, cx: &mut Cx<'_>) -> ControlFlow<T, Step<'s>>
    where
        Self: 's,
    {
        loop {
            return match self.0.resume_with(input) {
                // A plain pause, with a spare round: resumed in place rather than through the
                // ready queue.
                GeneratorState::Yielded(request)
                    if matches!(request.0.0, Inner::Other(None))
                        && *cx.spare > 0
                        && !cx.remote.interrupted() =>
                {
                    *cx.spare -= 1;
                    input = Input::Go;
                    continue;
                }
                GeneratorState::Yielded(request) => ControlFlow::Continue(Step::Yield(request)),
                GeneratorState::Complete(Ok(output)) => ControlFlow::Break(output),
                GeneratorState::Complete(Err(Raise(error))) => {
                    ControlFlow::Continue(Step::Fail(error))
                }
            };
        }
    }
}

/// Builds a coroutine from the body the macro writes (`tinyio::__private::coroutine`).
#[doc(hidden)]
pub fn annotated<'a, T: 'a, F: Future<Output = Result<T, Raise>> + 'a>(
    site: &'static Site,
    body: impl FnOnce(Co<'a>) -> F,
) -> Coroutine<'a, T> {
    // The first resume of a genawaiter generator drops its argument (upstream issue #35): that
    // is fine here, as the first resume only starts the body, which reads no argument before
    // its first `yield_!`.
    Coroutine::from_body(site, Generator(Gen::new(|co| body(Co(co)))))
}

/// The tail of a `#[coroutine]` function declared without `-> T`, which must be `()` (or
/// diverge): rustc's own hint to add a return type is only given on a function's body.
#[doc(hidden)]
pub fn unit<T: NoReturnType>(_: T) {}

#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a `#[tinyio::coroutine]` function without `-> T` ends in `()`, not `{Self}`",
    label = "add `-> {Self}` to its signature, or end this with `;`"
)]
pub trait NoReturnType {}

impl NoReturnType for () {}

/// A diverging tail (`todo!()`): `!`, named through a function pointer's output type, as
/// `!` itself cannot be named in an impl on stable Rust.
#[diagnostic::do_not_recommend]
impl NoReturnType for <fn() -> ! as Returns>::Output {}

#[doc(hidden)]
pub trait Returns {
    type Output;
}

impl<R> Returns for fn() -> R {
    type Output = R;
}

/// Builds a built-in coroutine of this crate, placed where it was called (see [`Called`]).
#[track_caller]
pub(crate) fn coroutine<'a, T: 'a, F: Future<Output = Result<T, Raise>> + 'a>(
    site: &'static Site,
    body: impl FnOnce(Co<'a>) -> F,
) -> Coroutine<'a, T> {
    Coroutine::from_body(Called::here(site), Generator(Gen::new(|co| body(Co(co)))))
}

/// A leaf: a coroutine polled like a future rather than resumed like a generator. Timers,
/// threads, events and foreign futures are leaves.
pub(crate) trait Leaf {
    type Output;
    /// `Ready` finishes the coroutine; `Pending` parks it until its waker is woken or its
    /// [`deadline`](Leaf::deadline) passes.
    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<Self::Output, Error>>;
    /// The deadline to wake at while pending, if any.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Told before the leaf is dropped by a cancellation: a thread is told to stop here, and
    /// its join pushed to `cx.joins`.
    fn cancel(&mut self, _cx: &mut Cx<'_>) {}
    /// Told, before any of them is cancelled, that the leaf and the others its waiter waits on
    /// are about to be: a thread call still queued is dropped here, so that no thread freed by
    /// a sibling's stop starts it meanwhile.
    fn withdraw(&mut self) {}
}

impl<L: Leaf> Body for L {
    type Output = L::Output;
    const LEAF: bool = true;

    fn step<'s>(&mut self, input: Input, cx: &mut Cx<'_>) -> ControlFlow<L::Output, Step<'s>>
    where
        Self: 's,
    {
        if let Some(error) = input.error() {
            self.cancel(cx);
            return ControlFlow::Continue(Step::Fail(error));
        }
        match self.poll(cx) {
            Poll::Ready(Ok(output)) => ControlFlow::Break(output),
            Poll::Ready(Err(error)) => ControlFlow::Continue(Step::Fail(error)),
            Poll::Pending => ControlFlow::Continue(Step::Park(self.deadline())),
        }
    }

    fn withdraw(&mut self) {
        Leaf::withdraw(self);
    }
}

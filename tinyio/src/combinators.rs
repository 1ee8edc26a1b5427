//! Combinators over coroutines: [`as_completed`], [`isolate`], [`copy`].

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Range;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::coro::{Caught, Coroutine, Cx, Leaf, Request, Submission, coroutine};
use crate::error::{Error, Raise};
use crate::site::{Site, site};
use crate::wake::{blocked_beneath, current_run};
use crate::yieldable::{Yieldable, background, suspend};

static AS_COMPLETED: Site = site!("as_completed");
static COMPLETED: Site = site!("as_completed::next");

/// Starts every one of `ys` in the background and finishes at once with an iterator of
/// coroutines that resolve to their outputs in the order they complete: the first yields the
/// first output to arrive, and so on. They may be yielded in any order. As with [`copy`], an
/// error in one of `ys` is a failure where `as_completed` was yielded, and a completion whose
/// coroutine did not finish raises a cancellation rather than wait forever.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, as_completed, sleep};
///
/// #[tinyio::coroutine]
/// fn nap(ms: u64) -> u64 {
///     yield_!(sleep(Duration::from_millis(ms)));
///     ms
/// }
///
/// #[tinyio::coroutine]
/// fn in_order() -> Vec<u64> {
///     let mut seen = Vec::new();
///     for next in yield_!(as_completed(vec![nap(300), nap(100), nap(200)])) {
///         seen.push(yield_!(next));
///     }
///     seen
/// }
///
/// assert_eq!(Loop::new().run(in_order()).unwrap(), [100, 200, 300]);
/// ```
#[track_caller]
pub fn as_completed<'a, Y: Yieldable<Output: 'a> + 'a>(
    ys: impl IntoIterator<Item = Y>,
) -> Coroutine<'a, AsCompleted<'a, Y::Output>> {
    let state = Completions::new(&AS_COMPLETED);
    // A loop, not a closure: `#[track_caller]` does not reach into closures.
    let mut wrapped = Vec::new();
    for y in ys {
        wrapped.push(deliver(y, &state));
    }
    let indices = 0..wrapped.len();
    coroutine(&AS_COMPLETED, move |co| async move {
        state.borrow_mut().made_in = current_run();
        suspend(&co, background(wrapped), line!()).await?;
        Ok(AsCompleted { state, indices, _borrow: PhantomData })
    })
}

/// Outputs in completion order, and who waits for the ones not in yet: what [`as_completed`]
/// and [`copy`] hand their outputs over with.
struct Completions<T> {
    /// A cancellation stands for the output of a coroutine that did not finish, so that its
    /// receiver raises rather than wait forever.
    outputs: Vec<Option<Result<T, Error>>>,
    wakers: Vec<Option<Waker>>,
    /// The combinator, and the run its coroutines run in (see [`current_run`]).
    site: &'static Site,
    made_in: usize,
}

/// What the coroutines of a combinator and their receivers share.
type State<T> = Rc<RefCell<Completions<T>>>;

impl<T> Completions<T> {
    fn new(site: &'static Site) -> State<T> {
        let (outputs, wakers) = (Vec::new(), Vec::new());
        Rc::new(RefCell::new(Completions { outputs, wakers, site, made_in: 0 }))
    }
}

/// Runs `y`, then files its output (or its failure, which it raises too) as the next
/// completion.
#[track_caller]
fn deliver<'a, Y: Yieldable<Output: 'a> + 'a>(y: Y, state: &State<Y::Output>) -> Coroutine<'a, ()> {
    let (state, site) = (state.clone(), state.borrow().site);
    state.borrow_mut().wakers.push(None);
    coroutine(site, move |co| async move {
        let (delivered, outcome) = match suspend(&co, y, line!()).await {
            Ok(output) => (Ok(output), Ok(())),
            Err(error) => {
                let why = format!("the coroutine given to `{}` did not finish: {error}", site.name);
                (Err(Error::cancelled_because(why)), Err(Raise(error)))
            }
        };
        let mut state = state.borrow_mut();
        let index = state.outputs.len();
        state.outputs.push(Some(delivered));
        if let Some(waker) = state.wakers[index].take() {
            waker.wake();
        }
        outcome
    })
}

/// The iterator [`as_completed`] gives: one coroutine per input, the `i`-th resolving to the
/// `i`-th output to complete.
///
/// ```
/// use tinyio::{Loop, as_completed};
///
/// #[tinyio::coroutine]
/// fn id(x: u32) -> u32 {
///     x
/// }
///
/// #[tinyio::coroutine]
/// fn total() -> u32 {
///     let completions = yield_!(as_completed([id(1), id(2), id(3)]));
///     assert_eq!(completions.len(), 3);
///     let mut sum = 0;
///     for next in completions {
///         sum += yield_!(next);
///     }
///     sum
/// }
///
/// assert_eq!(Loop::new().run(total()).unwrap(), 6);
/// ```
pub struct AsCompleted<'a, T> {
    state: State<T>,
    /// The completions not handed out yet.
    indices: Range<usize>,
    _borrow: PhantomData<&'a ()>,
}

impl<'a, T: 'a> Iterator for AsCompleted<'a, T> {
    type Item = Coroutine<'a, T>;

    #[track_caller]
    fn next(&mut self) -> Option<Coroutine<'a, T>> {
        let index = self.indices.next()?;
        Some(Coroutine::leaf(&COMPLETED, Completion { state: self.state.clone(), index }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.indices.size_hint()
    }
}

impl<'a, T: 'a> ExactSizeIterator for AsCompleted<'a, T> {}

impl<T> std::fmt::Debug for AsCompleted<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.indices.len())
            .finish_non_exhaustive()
    }
}

struct Completion<T> {
    state: State<T>,
    index: usize,
}

impl<T> Leaf for Completion<T> {
    type Output = T;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<T, Error>> {
        let mut state = self.state.borrow_mut();
        if let Some(output) = state.outputs.get_mut(self.index) {
            return Poll::Ready(output.take().expect("each completion is taken once"));
        }
        // Made in a run that this one is nested in: that run cannot go on until this one
        // returns, so the wait would never end.
        if blocked_beneath(state.made_in) {
            return Poll::Ready(Err(Error::cancelled_because(format!(
                "the coroutines given to `{}` run in a loop that this one runs inside, which \
                 cannot go on until this one returns: receive in that loop, or in one beside it",
                state.site.name
            ))));
        }
        state.wakers[self.index] = Some((cx.waker)());
        Poll::Pending
    }
}

static ISOLATE: Site = site!("isolate");
static COPY: Site = site!("copy");
static COPIED: Site = site!("copy::receive");

/// Runs `y`, and everything it yields or starts, as an isolated part of this run: an error
/// inside cancels only that part and comes back as `Err`, while the rest of the run goes on.
/// `isolate` finishes once everything inside has finished (what `y` started in the background
/// too, as [`Loop::run`](crate::Loop::run) waits for it), with `Ok(output)`.
///
/// When something inside fails, every coroutine inside is resumed with a cancellation error
/// (one that never started is dropped), threads started inside are told to stop and are joined,
/// and then the original error comes back, traced from inside, with the errors met while
/// cancelling grouped after it as [`ErrorGroup::Auto`](crate::ErrorGroup::Auto) does. A panic
/// is still fatal to the whole run. A cancellation of the run, or a [`timeout`](crate::timeout)
/// around the `isolate`, stops everything inside. Isolates nest freely, to any depth: each one
/// is an entry of the run, like any coroutine, not a loop of its own.
///
/// Coroutines already scheduled outside cannot be yielded inside (nor the other way round):
/// their failure would not be isolated. Hand their results over with [`copy`].
///
/// ```
/// use tinyio::{Loop, isolate};
///
/// #[tinyio::coroutine]
/// fn flaky(fail: bool) -> u32 {
///     yield_!();
///     if fail {
///         tinyio::bail!("flaked");
///     }
///     7
/// }
///
/// #[tinyio::coroutine]
/// fn robust() -> (u32, String) {
///     let ok = yield_!(isolate(flaky(false)))?;
///     let err = yield_!(isolate(flaky(true))).unwrap_err();
///     (ok, err.to_string())
/// }
///
/// assert_eq!(Loop::new().run(robust()).unwrap(), (7, "flaked".to_string()));
/// ```
#[track_caller]
pub fn isolate<'a, Y: Yieldable<Output: 'a> + 'a>(y: Y) -> Coroutine<'a, Result<Y::Output, Error>> {
    coroutine(&ISOLATE, move |co| async move {
        // `y`'s coroutines are the first members of an isolated scope whose boundary is this
        // coroutine, which waits until every member has finished (what they started in the
        // background too): members, not children.
        let caught = Rc::new(Caught::default());
        let mut submission = Submission::default();
        let pending = submission.background(|submission| y.submit(submission));
        submission.contents().boundary = Some(caught.clone());
        let input = co.0.yield_(Request::new(submission, line!())).await;
        // The error that failed the scope, which the run has put in `caught` and cancelled the
        // scope for, once the threads a timeout inside stopped are joined (see [`Caught`]),
        // whatever comes.
        match (input.error(), caught.take()) {
            // Stopped from outside (the run has stopped the members too): an error a thread
            // ended with is news, the stop is not.
            (Some(stop), failed) => Err(Raise(failed.unwrap_or(stop))),
            (None, Some(failed)) => Ok(Err(failed)),
            (None, None) => Ok(Ok(Y::collect(pending))),
        }
    })
}

/// Runs `y` on this loop, in the background, and gives a fresh coroutine that finishes with the
/// very same output (moved, not cloned) once `y` has: a way to hand a result to another loop,
/// or into an [`isolate`]. If `y` fails, that is a failure where `copy` was yielded (the run,
/// or the isolate it is in), as any other; if `y` is cancelled, the fresh coroutine raises a
/// cancellation rather than wait forever.
///
/// The other loop gets the output once this one has made it: a later run, or a loop driven
/// beside this one (two [`to_future`](crate::to_future)s on one executor, or a `to_future`
/// polled by this loop through [`from_future`](crate::from_future)). A loop run from inside a
/// coroutine of this one blocks this one until it returns, so there a copy whose `y` has not
/// finished raises a cancellation that says so, rather than wait forever.
///
/// ```
/// use std::rc::Rc;
/// use tinyio::{Loop, copy, isolate};
///
/// #[tinyio::coroutine]
/// fn make() -> Rc<u32> {
///     yield_!();
///     Rc::new(5)
/// }
///
/// #[tinyio::coroutine]
/// fn main_coro() -> bool {
///     let original = make().share();
///     let copied = yield_!(copy(original.clone()));
///     let inside = yield_!(isolate(copied)).unwrap();
///     let outside = yield_!(original);
///     Rc::ptr_eq(&inside, &outside)
/// }
///
/// assert!(Loop::new().run(main_coro()).unwrap());
/// ```
#[track_caller]
pub fn copy<'a, Y: Yieldable<Output: 'a> + 'a>(y: Y) -> Coroutine<'a, Coroutine<'a, Y::Output>> {
    let state = Completions::new(&COPY);
    let (send, completions) = (deliver(y, &state), state.clone());
    // A coroutine around the leaf, as a stall report lists coroutines, not leaves.
    let delivered = Coroutine::leaf(&COPIED, Completion { state, index: 0 });
    let receive = coroutine(&COPIED, move |co| async move {
        suspend(&co, delivered, line!()).await.map_err(Raise)
    });
    coroutine(&COPY, move |co| async move {
        completions.borrow_mut().made_in = current_run();
        suspend(&co, background(send), line!()).await?;
        Ok(receive)
    })
}

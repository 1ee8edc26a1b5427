//! Combinators over coroutines: [`as_completed`], [`isolate`], [`copy`].

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::coro::{Caught, Co, Coroutine, Cx, Leaf, Request, Submission, coroutine};
use crate::error::{Error, Raise};
use crate::site::{Site, site};
use crate::sync::Event;
use crate::yieldable::{Yieldable, background, suspend};

static AS_COMPLETED: Site = site!("as_completed");
static COMPLETED: Site = site!("as_completed::next");

/// Starts every one of `ys` in the background and finishes at once with an iterator of
/// coroutines that resolve to their outputs in the order they complete: the first yields the
/// first output to arrive, and so on. They may be yielded in any order.
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
pub fn as_completed<'a, Y>(
    ys: impl IntoIterator<Item = Y>,
) -> Coroutine<'a, AsCompleted<'a, Y::Output>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let state = Rc::new(RefCell::new(Completions { outputs: Vec::new(), wakers: Vec::new() }));
    // A loop, not a closure: `#[track_caller]` does not reach into closures.
    let mut wrapped = Vec::new();
    for y in ys {
        wrapped.push(deliver(y, state.clone()));
    }
    let total = wrapped.len();
    coroutine(&AS_COMPLETED, move |co| async move {
        state.borrow_mut().wakers.resize_with(total, || None);
        suspend(&co, background(wrapped), line!()).await?;
        Ok(AsCompleted { state, next: 0, total, _borrow: std::marker::PhantomData })
    })
}

/// Outputs in completion order, and who waits for the ones not in yet.
struct Completions<T> {
    outputs: Vec<Option<T>>,
    wakers: Vec<Option<Waker>>,
}

/// Runs `y`, then files its output as the next completion.
#[track_caller]
fn deliver<'a, Y: Yieldable + 'a>(
    y: Y,
    state: Rc<RefCell<Completions<Y::Output>>>,
) -> Coroutine<'a, ()>
where
    Y::Output: 'a,
{
    coroutine(&AS_COMPLETED, move |co| async move {
        let output = suspend(&co, y, line!()).await?;
        let mut state = state.borrow_mut();
        let index = state.outputs.len();
        state.outputs.push(Some(output));
        if let Some(waker) = state.wakers[index].take() {
            waker.wake();
        }
        Ok(())
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
    state: Rc<RefCell<Completions<T>>>,
    next: usize,
    total: usize,
    _borrow: std::marker::PhantomData<&'a ()>,
}

impl<'a, T: 'a> Iterator for AsCompleted<'a, T> {
    type Item = Coroutine<'a, T>;

    #[track_caller]
    fn next(&mut self) -> Option<Coroutine<'a, T>> {
        if self.next == self.total {
            return None;
        }
        self.next += 1;
        Some(Coroutine::leaf(
            &COMPLETED,
            Completion { state: self.state.clone(), index: self.next - 1 },
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.total - self.next, Some(self.total - self.next))
    }
}

impl<'a, T: 'a> ExactSizeIterator for AsCompleted<'a, T> {}

impl<T> std::fmt::Debug for AsCompleted<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &(self.total - self.next))
            .finish_non_exhaustive()
    }
}

struct Completion<T> {
    state: Rc<RefCell<Completions<T>>>,
    index: usize,
}

impl<T> Leaf for Completion<T> {
    type Output = T;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<T, Error>> {
        let mut state = self.state.borrow_mut();
        match state.outputs.get_mut(self.index) {
            Some(output) => Poll::Ready(Ok(output.take().expect("each completion is taken once"))),
            None => {
                state.wakers[self.index] = Some((cx.waker)());
                Poll::Pending
            }
        }
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
pub fn isolate<'a, Y>(y: Y) -> Coroutine<'a, Result<Y::Output, Error>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    coroutine(
        &ISOLATE,
        move |co| async move { suspend_isolated(&co, y, line!()).await.map_err(Raise) },
    )
}

/// Runs `y` on this loop, in the background, and gives a fresh coroutine that finishes with the
/// very same output (moved, not cloned) once `y` has: a way to hand a result to another loop,
/// or into an [`isolate`]. If `y` fails, that is a failure where `copy` was yielded (the run,
/// or the isolate it is in), as any other; if `y` is cancelled, the fresh coroutine raises a
/// cancellation rather than wait forever.
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
pub fn copy<'a, Y>(y: Y) -> Coroutine<'a, Coroutine<'a, Y::Output>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let slot = Rc::new(RefCell::new(None));
    let done = Event::new();
    let send = {
        let (slot, done) = (slot.clone(), done.clone());
        coroutine(&COPY, move |co| async move {
            let output = suspend(&co, y, line!()).await;
            let (delivered, outcome) = match output {
                Ok(output) => (Ok(output), Ok(())),
                Err(error) => {
                    let why = format!("the copied coroutine did not finish: {error}");
                    (Err(Error::cancelled_because(why)), Err(Raise(error)))
                }
            };
            *slot.borrow_mut() = Some(delivered);
            done.set();
            outcome
        })
    };
    let receive = coroutine(&COPIED, move |co| async move {
        suspend(&co, done.wait(), line!()).await?;
        let output = slot.borrow_mut().take().expect("delivered once");
        Ok(output?)
    });
    coroutine(&COPY, move |co| async move {
        suspend(&co, background(send), line!()).await?;
        Ok(receive)
    })
}

/// The one suspension point of an [`isolate`]: starts `value` as the first
/// members of an isolated scope whose boundary is this coroutine, and waits until every member
/// has finished (what they started in the background too). Then gives `value`'s output, or the
/// error that failed the scope, which the run has put in `caught` and cancelled the scope for,
/// once it has joined the threads a timeout inside told to stop (see [`Caught`]).
pub(crate) async fn suspend_isolated<'a, Y: Yieldable + 'a>(
    co: &Co<'a>,
    value: Y,
    line: u32,
) -> Result<Result<Y::Output, Error>, Error> {
    let caught = Rc::new(Caught::default());
    let mut submission = Submission::default();
    // Members, not children: the boundary waits for all of them, `value`'s ones among them.
    let pending = submission.background(|submission| value.submit(submission));
    submission.set_boundary(caught.clone());
    crate::coro::LINE.set(line); // the yield below hands the request over at its first poll
    let input = co.0.yield_(Request::new(submission)).await;
    let failed = caught.take(); // joins the threads a timeout inside stopped, whatever comes
    if let Some(error) = input.error() {
        // Stopped from outside (the run has stopped the members too): an error a thread ended
        // with is news, the stop is not.
        return Err(failed.unwrap_or(error));
    }
    Ok(match failed {
        Some(error) => Err(error),
        None => Ok(Y::collect(pending)),
    })
}

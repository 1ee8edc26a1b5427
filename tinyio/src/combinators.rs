//! Combinators over coroutines: [`as_completed`].

use std::cell::RefCell;
use std::panic::Location;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::coro::{Coroutine, Cx, Leaf, Site, coroutine, suspend};
use crate::error::Error;
use crate::yieldable::{Yieldable, background};

static AS_COMPLETED: Site = Site { name: "as_completed", file: file!(), line: line!() };
static COMPLETED: Site = Site { name: "as_completed::next", file: file!(), line: line!() };

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
///     for next in yield_!(as_completed(vec![nap(30), nap(10), nap(20)])) {
///         seen.push(yield_!(next));
///     }
///     seen
/// }
///
/// assert_eq!(Loop::new().run(in_order()).unwrap(), [10, 20, 30]);
/// ```
#[track_caller]
pub fn as_completed<'a, Y>(ys: impl IntoIterator<Item = Y>) -> Coroutine<'a, AsCompleted<'a, Y::Output>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let line = Location::caller().line();
    let state = Rc::new(RefCell::new(Completions { outputs: Vec::new(), wakers: Vec::new() }));
    let wrapped: Vec<_> = ys.into_iter().map(|y| deliver(y, state.clone(), line)).collect();
    let total = wrapped.len();
    coroutine(&AS_COMPLETED, move |co| async move {
        state.borrow_mut().wakers.resize_with(total, || None);
        suspend(&co, background(wrapped), line).await?;
        Ok(AsCompleted { state, next: 0, total, _borrow: std::marker::PhantomData })
    })
}

/// Outputs in completion order, and who waits for the ones not in yet.
struct Completions<T> {
    outputs: Vec<Option<T>>,
    wakers: Vec<Option<Waker>>,
}

/// Runs `y`, then files its output as the next completion.
fn deliver<'a, Y: Yieldable + 'a>(y: Y, state: Rc<RefCell<Completions<Y::Output>>>, line: u32) -> Coroutine<'a, ()>
where
    Y::Output: 'a,
{
    coroutine(&AS_COMPLETED, move |co| async move {
        let output = suspend(&co, y, line).await?;
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
pub struct AsCompleted<'a, T> {
    state: Rc<RefCell<Completions<T>>>,
    next: usize,
    total: usize,
    _borrow: std::marker::PhantomData<&'a ()>,
}

impl<'a, T: 'a> Iterator for AsCompleted<'a, T> {
    type Item = Coroutine<'a, T>;

    fn next(&mut self) -> Option<Coroutine<'a, T>> {
        if self.next == self.total {
            return None;
        }
        self.next += 1;
        Some(Coroutine::leaf(&COMPLETED, Completion { state: self.state.clone(), index: self.next - 1 }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.total - self.next, Some(self.total - self.next))
    }
}

impl<'a, T: 'a> ExactSizeIterator for AsCompleted<'a, T> {}

impl<T> std::fmt::Debug for AsCompleted<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted").field("remaining", &(self.total - self.next)).finish_non_exhaustive()
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

//! Timers: `sleep`, `sleep_until`, `timeout`. Deadlines live in the loop's timer heap; no thread
//! sleeps for a coroutine.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::cancel::give_up;
use crate::coro::{Coroutine, Cx, Leaf, Site, site};
use crate::error::Error;
use crate::{Coro, Yieldable};

static SLEEP: Site = site!("sleep");
static TIMEOUT: Site = site!("timeout");

/// A coroutine that finishes after `duration`, without blocking the loop.
///
/// The loop wakes for a deadline within microseconds: it parks its thread until 100 us before
/// the deadline (a timed park wakes tens of microseconds late) and yields the thread for the
/// rest, which costs at most 100 us of a core per timed wake-up.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tinyio::Loop;
///
/// let start = Instant::now();
/// let naps: Vec<_> = (0..100).map(|_| tinyio::sleep(Duration::from_millis(20))).collect();
/// Loop::new().run(naps).unwrap(); // a hundred sleeps at once, on one thread
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> Coro<()> {
    sleep_until(after(duration))
}

/// A coroutine that finishes at `deadline` (at once if it has passed).
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let deadline = Instant::now() + Duration::from_millis(5);
/// tinyio::Loop::new().run(tinyio::sleep_until(deadline)).unwrap();
/// assert!(Instant::now() >= deadline);
/// ```
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Coro<()> {
    Coroutine::leaf(&SLEEP, Sleep(deadline))
}

/// `duration` from now, saturating far in the future.
pub(crate) fn after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 100))
}

struct Sleep(Instant);

impl Leaf for Sleep {
    type Output = ();

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<(), Error>> {
        if cx.passed(self.0) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.0)
    }
}

/// Runs `y` for at most `duration`: `Some(output)` if it finished in time, else `None`.
///
/// When time runs out, the work is stopped: each coroutine that only `y` was waiting on is
/// resumed with a timeout error at its suspension point (for which
/// [`Error::is_timeout`] is true), so its destructors run, as with a cancellation. Nothing
/// else is cancelled, and a coroutine someone else also waits on goes on. A thread it started
/// is told to stop, and joined before the run ends (or the [`isolate`](crate::isolate) it is
/// in), so that this gives `None` at the deadline even if the thread is slow to stop.
///
/// It is the wait of [`cancellable`](crate::cancellable), ended by a deadline rather than by a
/// [`CancelHandle`](crate::CancelHandle).
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, sleep, timeout};
///
/// let fast = timeout(sleep(Duration::from_millis(1)), Duration::from_secs(5));
/// let slow = timeout(sleep(Duration::from_secs(5)), Duration::from_millis(1));
/// assert_eq!(Loop::new().run((fast, slow)).unwrap(), (Some(()), None));
/// ```
#[track_caller]
pub fn timeout<'a, Y>(y: Y, duration: Duration) -> Coroutine<'a, Option<Y::Output>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    give_up(&TIMEOUT, y, Some(after(duration)), None)
}

/// The deadlines of a run, each with the wake token it fires, taken soonest first. Deadlines
/// mostly come in order (the same sleep or timeout, again and again): those go to the back of a
/// queue, in constant time, and only one earlier than the last queued goes to a heap.
#[derive(Default)]
pub(crate) struct Timers {
    in_order: VecDeque<(Instant, u64)>,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Timers {
    pub(crate) fn push(&mut self, deadline: Instant, token: u64) {
        match self.in_order.back() {
            Some(&(last, _)) if deadline < last => self.heap.push(Reverse((deadline, token))),
            _ => self.in_order.push_back((deadline, token)),
        }
    }

    /// The soonest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        let queued = self.in_order.front().map(|&(deadline, _)| deadline);
        let heaped = self.heap.peek().map(|&Reverse((deadline, _))| deadline);
        match (queued, heaped) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the token of the soonest deadline, if it is `now` or earlier.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u64> {
        let soonest = self.next().filter(|&deadline| deadline <= now)?;
        match self.in_order.front() {
            Some(&(deadline, token)) if deadline == soonest => {
                self.in_order.pop_front();
                Some(token)
            }
            _ => self.heap.pop().map(|Reverse((_, token))| token),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.in_order.is_empty() && self.heap.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.in_order.clear();
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a sorted list, on pseudo-random pushes (mostly in order, as in a loop) and
    /// pops at random clock readings.
    #[test]
    fn timers_give_due_deadlines_soonest_first() {
        let base = Instant::now();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let (mut timers, mut model) = (Timers::default(), Vec::new());
            let mut clock = 0;
            for token in 0..200 {
                if next(3) == 0 {
                    clock += next(50);
                    let now = base + Duration::from_micros(clock);
                    model.sort();
                    let due = model.iter().take_while(|&&(d, _)| d <= now).count();
                    let popped: Vec<_> = std::iter::from_fn(|| timers.pop_due(now)).collect();
                    let expected: Vec<_> = model.drain(..due).collect();
                    assert_eq!(popped.len(), expected.len());
                    // In the model's order, up to ties between equal deadlines.
                    for (token, (deadline, _)) in popped.iter().zip(&expected) {
                        assert!(
                            expected.contains(&(*deadline, *token)),
                            "{token} out of order"
                        );
                    }
                }
                // Mostly later than the last deadline, sometimes earlier.
                let at = clock + if next(4) == 0 { next(100) } else { 100 + token };
                let deadline = base + Duration::from_micros(at);
                timers.push(deadline, token);
                model.push((deadline, token));
                assert_eq!(timers.next(), model.iter().map(|&(d, _)| d).min());
            }
            assert_eq!(timers.is_empty(), model.is_empty());
            timers.clear();
            assert!(timers.is_empty() && timers.next().is_none());
        }
    }
}

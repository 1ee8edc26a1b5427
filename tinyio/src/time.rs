//! Timers: `sleep`, `sleep_until`, `timeout`. Deadlines live in the loop's timer heap; no thread
//! sleeps for a coroutine.

use std::task::Poll;
use std::time::{Duration, Instant};

use crate::cancel::give_up;
use crate::coro::{Coroutine, Cx, Leaf};
use crate::error::Error;
use crate::site::{Site, site};
use crate::{Coro, Yieldable};

static SLEEP: Site = site!("sleep");
static TIMEOUT: Site = site!("timeout");

/// A coroutine that finishes after `duration`, without blocking the loop.
///
/// The loop wakes for a deadline within microseconds: it parks its thread until 100 us before
/// the deadline (a timed park wakes 50-100 us late on Linux) and yields the thread for the
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
    now.checked_add(duration).unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 100))
}

struct Sleep(Instant);

impl Leaf for Sleep {
    type Output = ();

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<(), Error>> {
        if cx.passed(self.0) { Poll::Ready(Ok(())) } else { Poll::Pending }
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
    give_up(&TIMEOUT, y, Some(after(duration)), None, |output| output)
}

//! Giving up on work: `cancellable` (on demand) and `race` (when another finishes first). Both
//! are the timed wait of `timeout`: the wrapper's one `yield_!` carries a handle, which the run
//! arms with the wrapper's wake token when it files the yield; `cancel` wakes that token as a
//! passed deadline would, from any thread, and the run stops the work as it does at a deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::Yieldable;
use crate::coro::{Coroutine, Site, coroutine, site, suspend_until};
use crate::error::Raise;
use crate::event_loop::Remote;
use crate::run::CANCEL;

static CANCELLABLE: Site = site!("cancellable");
static RACE: Site = site!("race");

/// The shared state of a [`CancelHandle`].
#[derive(Default)]
pub(crate) struct Cancel(Mutex<State>);

#[derive(Default)]
struct State {
    cancelled: bool,
    /// While the work runs: the run it runs in, and the wake token of the wait on it. Cleared
    /// when the wait ends, so that a late `cancel` never wakes a token that has been reused.
    armed: Option<(Arc<Remote>, u64)>,
}

impl Cancel {
    /// The wait on the work has been filed as `token` of the run `remote` leads to.
    pub(crate) fn arm(&self, remote: &Arc<Remote>, token: u64) {
        let mut state = self.0.lock().expect("poisoned");
        if state.cancelled {
            remote.wake(token | CANCEL); // cancelled before it started: stop it at once
        } else {
            state.armed = Some((remote.clone(), token));
        }
    }

    fn cancel(&self) {
        let mut state = self.0.lock().expect("poisoned");
        state.cancelled = true;
        // Woken under the lock: the wait cannot end and its token be reused meanwhile.
        if let Some((remote, token)) = state.armed.take() {
            remote.wake(token | CANCEL);
        }
    }
}

/// Disarms the handle when the wait ends, however it ends (its wrapper dropped included).
struct Disarm(Arc<Cancel>);

impl Drop for Disarm {
    fn drop(&mut self) {
        let armed = self.0.0.lock().map(|mut state| state.armed.take());
        drop(armed); // the remote outside the lock
    }
}

/// Cancels the work of a [`cancellable`] from anywhere: a coroutine of any loop, or any thread.
///
/// ```
/// let (work, handle) = tinyio::cancellable(tinyio::sleep(std::time::Duration::from_secs(60)));
/// let other = handle.clone();
/// std::thread::spawn(move || other.cancel()).join().unwrap();
/// assert!(handle.is_cancelled());
/// assert_eq!(tinyio::Loop::new().run(work).unwrap(), None);
/// ```
#[derive(Clone, Default)]
pub struct CancelHandle(Arc<Cancel>);

impl CancelHandle {
    /// Stops the work, if it has not finished: each coroutine that only the work waits on is
    /// resumed with a cancellation error ([`Error::is_cancelled`](crate::Error::is_cancelled)) at its `yield_!`, threads it
    /// started are told to stop and joined, and the [`cancellable`] gives `None`. Before the
    /// work starts, it never starts; after it finished, or a second time, this does nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tinyio::{Loop, cancellable, sleep};
    ///
    /// #[tinyio::coroutine]
    /// fn press(handle: tinyio::CancelHandle) -> () {
    ///     yield_!(sleep(Duration::from_millis(5)));
    ///     handle.cancel();
    /// }
    ///
    /// let (work, handle) = cancellable(sleep(Duration::from_secs(60)));
    /// assert_eq!(Loop::new().run((work, press(handle))).unwrap(), (None, ()));
    /// ```
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether [`cancel`](CancelHandle::cancel) has been called (even if the work had already
    /// finished, and so was not stopped).
    ///
    /// ```
    /// let (work, handle) = tinyio::cancellable(());
    /// assert_eq!(tinyio::Loop::new().run(work).unwrap(), Some(()));
    /// assert!(!handle.is_cancelled());
    /// handle.cancel(); // too late: no effect on the work
    /// assert!(handle.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.0.0.lock().expect("poisoned").cancelled
    }
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cancelled = self.is_cancelled();
        f.debug_struct("CancelHandle")
            .field("cancelled", &cancelled)
            .finish()
    }
}

/// Runs `y` until it finishes, giving `Some(output)`, or until the handle is cancelled, giving
/// `None`. [`CancelHandle::cancel`] works from a coroutine of any loop or from any thread.
///
/// The work is stopped as [`timeout`](crate::timeout) stops it at its deadline (`timeout` is
/// this same wait, ended by a deadline): each coroutine that only `y` was waiting on is resumed
/// with a cancellation error at its suspension point, so its destructors run; a coroutine that
/// someone else also waits on goes on; threads are told to stop and joined before this gives
/// `None`. Nothing else is touched. A stall report shows the waiter as waiting on `cancellable`.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, cancellable, run_in_thread, sleep, thread};
///
/// #[tinyio::coroutine]
/// fn download() -> &'static str {
///     yield_!(run_in_thread(|| thread::sleep(Duration::from_secs(60))))?;
///     "done"
/// }
///
/// let (work, handle) = cancellable(download());
/// let (quick, _) = cancellable(sleep(Duration::from_millis(1)));
/// std::thread::spawn(move || handle.cancel()); // a user pressed "stop"
/// assert_eq!(Loop::new().run((work, quick)).unwrap(), (None, Some(())));
/// ```
#[track_caller]
pub fn cancellable<'a, Y>(y: Y) -> (Coroutine<'a, Option<Y::Output>>, CancelHandle)
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let handle = CancelHandle::default();
    let work = give_up(&CANCELLABLE, y, None, Some(handle.0.clone()));
    (work, handle)
}

/// The wait of [`timeout`](crate::timeout) and [`cancellable`]: `Some(output)`, or `None` once
/// the deadline passed or `cancel` was cancelled.
#[track_caller]
pub(crate) fn give_up<'a, Y>(
    site: &'static Site,
    y: Y,
    deadline: Option<Instant>,
    cancel: Option<Arc<Cancel>>,
) -> Coroutine<'a, Option<Y::Output>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    coroutine(site, move |co| async move {
        let _disarm = cancel.clone().map(Disarm);
        match suspend_until(&co, y, deadline, cancel, line!()).await {
            Ok(output) => Ok(Some(output)),
            Err(error) if error.is_deadline() => Ok(None),
            Err(error) => Err(Raise(error)),
        }
    })
}

/// Runs every one of `ys` at once, and gives `(index, output)` of the first to finish. The
/// others are cancelled as [`CancelHandle::cancel`] cancels (each coroutine only they waited on
/// resumed with a cancellation error, threads told to stop and joined) before the race gives
/// its winner. If several finish in the same round, the first of them in `ys` wins. An error in
/// any of them before a winner crashes the loop, as in a gather. Takes a `Vec` or an array.
///
/// # Panics
///
/// If `ys` is empty: a race without runners has no winner to give, and an empty list is a bug
/// of the caller rather than something to recover from at run time.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, race, sleep};
///
/// #[tinyio::coroutine]
/// fn mirror(name: &'static str, ms: u64) -> &'static str {
///     yield_!(sleep(Duration::from_millis(ms)));
///     name
/// }
///
/// let fastest = race([mirror("slow", 60_000), mirror("fast", 1)]);
/// assert_eq!(Loop::new().run(fastest).unwrap(), (1, "fast")); // the slow one is stopped
/// ```
#[track_caller]
pub fn race<'a, Y>(ys: impl IntoIterator<Item = Y>) -> Coroutine<'a, (usize, Y::Output)>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let ys: Vec<Y> = ys.into_iter().collect();
    assert!(
        !ys.is_empty(),
        "`tinyio::race` needs at least one yieldable: an empty race has no winner"
    );
    let field = Rc::new(Field {
        handles: (0..ys.len()).map(|_| CancelHandle::default()).collect(),
        winner: RefCell::new(None),
    });
    let runners: Vec<_> = (ys.into_iter().enumerate())
        .map(|(index, y)| runner(index, y, field.clone()))
        .collect();
    coroutine(&RACE, move |co| async move {
        suspend_until(&co, runners, None, None, line!())
            .await
            .map_err(Raise)?;
        let winner = field.winner.borrow_mut().take();
        Ok(winner.expect("a race ends when one of its runners has won"))
    })
}

/// What the runners of a race share.
struct Field<T> {
    /// One per runner, in order.
    handles: Vec<CancelHandle>,
    winner: RefCell<Option<(usize, T)>>,
}

/// One runner of a race: the wait of a [`cancellable`] on `y` which, if it finishes first,
/// records its output and cancels the others.
#[track_caller]
fn runner<'a, Y>(index: usize, y: Y, field: Rc<Field<Y::Output>>) -> Coroutine<'a, ()>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let cancel = field.handles[index].0.clone();
    coroutine(&RACE, move |co| async move {
        let _disarm = Disarm(cancel.clone());
        let output = match suspend_until(&co, y, None, Some(cancel), line!()).await {
            Ok(output) => output,
            Err(error) if error.is_deadline() => return Ok(()), // lost
            Err(error) => return Err(Raise(error)),
        };
        let mut winner = field.winner.borrow_mut();
        if winner.is_none() {
            *winner = Some((index, output));
            drop(winner);
            let others = field
                .handles
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != index);
            others.for_each(|(_, handle)| handle.cancel());
        }
        Ok(())
    })
}

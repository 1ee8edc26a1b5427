//! Wake-ups: how a run learns that a leaf may go on, from any thread.
//!
//! Every wake-up names a coroutine by its wake token (see `run.rs`) and lands in one place, the
//! [`Remote`] of the loop that runs it. A leaf is woken through a std [`Waker`] (a
//! [`LeafWaker`]: the remote and the token), and nothing else; a [`cancellable`] wait is ended
//! by waking its token with a flag, through a waker as well. How a wake-up travels:
//!
//! - From the loop's own thread while the run is advancing (an event set by a coroutine): into a
//!   queue of the thread, with no lock and no atomic operation; the run takes it in before it
//!   blocks or hands back to whoever drives it, so nobody needs waking.
//! - From anywhere else: into the remote's locked list, with the `posted` flag set, and the
//!   driver woken (the thread parked in `Loop::run`, or the task of the executor polling a
//!   `to_future`).
//!
//! The run takes both in at the start of every round (`take_woken`). A token names one use of a
//! table slot, so a late wake-up for a coroutine that has moved on is ignored.
//!
//! [`cancellable`]: crate::cancellable

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

/// Locks `mutex`, poisoned or not: what the crate's locks guard is whole between statements,
/// so a panic while one is held (a foreign waker's, say) leaves it consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where wake-ups from outside the loop's thread arrive: woken leaves' tokens, a stop request,
/// and the waker of whoever drives the loop (its thread, or a foreign executor's task).
#[derive(Default)]
pub(crate) struct Remote {
    woken: Mutex<Vec<u64>>,
    /// Whether `woken` may hold tokens: a wake-up from outside the run waits to be taken.
    /// Wake-ups the run makes itself wait in the thread's own queue instead ([`IN_RUN`]).
    posted: AtomicBool,
    pub(crate) stopped: AtomicBool,
    driver: Mutex<Driver>,
}

/// Who drives a run, to wake when a wake-up arrives from outside it.
#[derive(Default)]
pub(crate) enum Driver {
    #[default]
    None,
    /// The thread blocked in [`Loop::run`](crate::Loop::run).
    Thread(std::thread::Thread),
    /// The task of the executor polling a [`to_future`](crate::to_future).
    Task(Waker),
}

impl Remote {
    /// Whether a wake-up or a stop is waiting for the run this thread advances to look.
    #[inline]
    pub(crate) fn interrupted(&self) -> bool {
        self.posted.load(Ordering::Relaxed)
            || self.stopped.load(Ordering::Relaxed)
            || IN_RUN_ANY.with(Cell::get)
    }

    /// Wakes the leaf (or timed wait) `token` names, from any thread.
    pub(crate) fn wake(&self, token: u64) {
        // From inside the run itself (an event set by a coroutine, say): a queue of the thread,
        // without a lock or an atomic, which the run reads before it blocks or yields to its
        // executor, so that nobody needs waking.
        if ADVANCING.with(Cell::get) == std::ptr::from_ref(self).addr() {
            IN_RUN.with_borrow_mut(|woken| woken.push(token));
            IN_RUN_ANY.with(|any| any.set(true));
            return;
        }
        self.post(std::iter::once(token));
        self.wake_driver();
    }

    /// Files wake-ups for the run from outside it.
    fn post(&self, tokens: impl IntoIterator<Item = u64>) {
        lock(&self.woken).extend(tokens);
        self.posted.store(true, Ordering::Release);
    }

    /// Drops wake-ups left from an earlier run of the loop (a thread call that finished while
    /// its run was being cancelled, say): tokens name slots of that run, not of the next.
    pub(crate) fn forget_posted(&self) {
        if self.posted.swap(false, Ordering::Acquire) {
            lock(&self.woken).clear();
        }
    }

    /// Moves the wake-ups that have arrived to `into`; called by the run this thread advances.
    pub(crate) fn take_woken(&self, into: &mut Vec<u64>) {
        if IN_RUN_ANY.with(|any| any.replace(false)) {
            IN_RUN.with_borrow_mut(|woken| {
                if into.is_empty() {
                    std::mem::swap(into, woken); // usually: trade buffers rather than copy
                } else {
                    into.append(woken);
                }
            });
        }
        if self.posted.load(Ordering::Relaxed) && self.posted.swap(false, Ordering::Acquire) {
            into.append(&mut lock(&self.woken));
        }
    }

    /// Marks this thread as advancing the run that this remote serves, until the guard drops.
    /// `blocking`: the run is advanced by [`Loop::run`](crate::Loop::run), which returns only
    /// once it has finished, rather than polled as a future, which hands back whenever it waits.
    pub(crate) fn advancing(self: &Arc<Self>, blocking: bool) -> Advancing {
        let outer = ADVANCING.with(|a| a.replace(Arc::as_ptr(self).addr()));
        OUTER.with_borrow_mut(|runs| runs.push((outer, blocking)));
        Advancing {
            remote: self.clone(),
            outer_woken: take_in_run(),
            outer_cancelled: take_cancelled(),
        }
    }

    pub(crate) fn set_driver(&self, driver: Driver) {
        let mut current = lock(&self.driver);
        if let (Driver::Task(current), Driver::Task(new)) = (&*current, &driver)
            && current.will_wake(new)
        {
            return;
        }
        *current = driver;
    }

    pub(crate) fn clear_driver(&self) {
        *lock(&self.driver) = Driver::None;
    }

    /// Wakes whoever drives the run. That may be a foreign executor's waker, called from
    /// wherever the wake-up comes from: a thread of the cache, or an `Event::set` serving the
    /// waiters of other loops in turn. A panic in it is the executor's fault, not theirs, and
    /// must not cut their work short (a cache thread ended, the rest of a line left unwoken):
    /// it is caught here, once the panic hook has reported it. It is woken outside the lock, as
    /// it may wake this run again (set an event it waits on, say), which takes the lock. A
    /// thread is unparked under the lock: that takes no lock of ours, and needs no clone.
    pub(crate) fn wake_driver(&self) {
        let driver = lock(&self.driver);
        match &*driver {
            Driver::None => {}
            Driver::Thread(thread) => thread.unpark(),
            Driver::Task(waker) => {
                let waker = waker.clone();
                drop(driver);
                let _ = panic::catch_unwind(AssertUnwindSafe(|| waker.wake()));
            }
        }
    }

    /// Blocks the loop's thread until woken or until the deadline.
    ///
    /// A timed park wakes late by the kernel's timer slack and the scheduler's delay (50-100 us
    /// on Linux), and a burst of timers due one after another would pay that at every park. So
    /// the thread parks until [`SLACK`] before the deadline, and the last stretch is waited for
    /// by yielding the thread: a timer fires within microseconds, for at most `SLACK` of a
    /// core's time per timed wake-up.
    pub(crate) fn park(&self, deadline: Option<Instant>) {
        let interrupted =
            || self.posted.load(Ordering::Acquire) || self.stopped.load(Ordering::Relaxed);
        if interrupted() {
            return;
        }
        let Some(deadline) = deadline else {
            return std::thread::park();
        };
        let mut now = Instant::now();
        if deadline > now + SLACK {
            // The run looks again when this returns, and parks again for the rest.
            return std::thread::park_timeout(deadline - SLACK - now);
        }
        while now < deadline && !interrupted() {
            std::thread::yield_now();
            now = Instant::now();
        }
    }
}

/// How long before a deadline a parked loop wakes, to wait for the rest without the lateness
/// of a timed park (see [`Remote::park`]).
const SLACK: Duration = Duration::from_micros(100);

thread_local! {
    /// The address of the remote whose run this thread is advancing (0: none).
    static ADVANCING: Cell<usize> = const { Cell::new(0) };
    /// The runs this thread advanced before the one it advances now, outermost first (0: none),
    /// each with whether the run nested in it is advanced by a blocking `Loop::run`.
    static OUTER: RefCell<Vec<(usize, bool)>> = const { RefCell::new(Vec::new()) };
    /// Wake-ups the run being advanced on this thread made itself (see [`Remote::wake`]).
    static IN_RUN: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// Whether `IN_RUN` may hold tokens: read at every pause, so kept where reading costs one
    /// load.
    static IN_RUN_ANY: Cell<bool> = const { Cell::new(false) };
    /// Whether a [`Cancel`] was cancelled on this thread since the run last looked: a race won
    /// by the coroutine just resumed must stop the other runners before they run too.
    static CANCELLED: Cell<bool> = const { Cell::new(false) };
}

/// Whether a [`Cancel`] was cancelled on this thread since the last call.
#[inline]
pub(crate) fn take_cancelled() -> bool {
    CANCELLED.with(|cancelled| cancelled.replace(false))
}

/// The run this thread advances now, by the address of its remote (0: none).
pub(crate) fn current_run() -> usize {
    ADVANCING.get()
}

/// Whether `run` (an address from [`current_run`]) is blocked on this thread beneath the run it
/// advances now: nothing of it runs until that run returns. It is if a run above it is advanced
/// by a blocking `Loop::run`; a run polled as a future (a `to_future` inside a `from_future`)
/// hands back whenever it waits, and the run polling it goes on.
pub(crate) fn blocked_beneath(run: usize) -> bool {
    let mut blocked = false;
    run != 0
        && OUTER.with_borrow(|runs| {
            runs.iter().rev().any(|&(outer, blocking)| {
                blocked |= blocking;
                blocked && outer == run
            })
        })
}

/// The thread's in-run wake-ups, taken out (its queue keeps its buffer when it has none).
fn take_in_run() -> Vec<u64> {
    if IN_RUN_ANY.with(|any| any.replace(false)) {
        IN_RUN.with_borrow_mut(std::mem::take)
    } else {
        Vec::new()
    }
}

/// See [`Remote::advancing`]. When dropped, restores the outer run's mark and queue (a nested
/// run: a loop run inside a coroutine, or a `to_future` polled there). A run takes in its own
/// wake-ups before it hands back `Ready` or `Blocked`; any still queued (it left through an
/// error) are filed with the wake-ups from outside, so that none is lost whatever the way out.
pub(crate) struct Advancing {
    remote: Arc<Remote>,
    outer_woken: Vec<u64>,
    /// Whether the outer run's step had cancelled something: the outer run, not this one, stops
    /// that work once the step is over.
    outer_cancelled: bool,
}

impl Drop for Advancing {
    fn drop(&mut self) {
        let left = take_in_run();
        if !left.is_empty() {
            self.remote.post(left);
        }
        if !self.outer_woken.is_empty() {
            IN_RUN.with_borrow_mut(|woken| *woken = std::mem::take(&mut self.outer_woken));
            IN_RUN_ANY.with(|any| any.set(true));
        }
        let outer = OUTER.with_borrow_mut(Vec::pop).expect("pushed by `advancing`").0;
        ADVANCING.with(|a| a.set(outer));
        if self.outer_cancelled {
            CANCELLED.with(|cancelled| cancelled.set(true));
        }
    }
}

/// A waker that unparks this thread, which parks to wait: in a blocking channel operation, or
/// joining a thread call or an aborted tokio task.
pub(crate) fn this_thread() -> Waker {
    Waker::from(Arc::new(Unpark(std::thread::current())))
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The waker of one leaf.
pub(crate) struct LeafWaker {
    remote: Arc<Remote>,
    token: u64,
}

impl LeafWaker {
    pub(crate) fn new(remote: &Arc<Remote>, token: u64) -> Arc<Self> {
        Arc::new(LeafWaker { remote: remote.clone(), token })
    }

    /// A waker for `token`: `old` itself if it wakes `token` already; else `old` made new
    /// again if nobody else holds it (so no stale holder can ever wake the new owner), else a
    /// fresh one.
    pub(crate) fn reuse(old: Option<Arc<Self>>, remote: &Arc<Remote>, token: u64) -> Arc<Self> {
        match old {
            Some(waker) if waker.token == token => waker,
            Some(mut waker) => match Arc::get_mut(&mut waker) {
                Some(reused) => {
                    reused.token = token;
                    waker
                }
                None => Self::new(remote, token),
            },
            None => Self::new(remote, token),
        }
    }
}

impl Wake for LeafWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.remote.wake(self.token);
    }
}

/// The shared state of a [`CancelHandle`](crate::CancelHandle).
#[derive(Default)]
pub(crate) struct Cancel(Mutex<State>);

#[derive(Default)]
struct State {
    cancelled: bool,
    /// While the work runs: the waker that ends the wait on it. Cleared when the wait ends, so
    /// that a late `cancel` never wakes a token that has been reused.
    armed: Option<Waker>,
}

impl Cancel {
    /// The wait on the work has been filed: `waker` ends it.
    pub(crate) fn arm(&self, waker: Waker) {
        let mut state = lock(&self.0);
        if state.cancelled {
            waker.wake(); // cancelled before it started: stop it at once
        } else {
            state.armed = Some(waker);
        }
    }

    pub(crate) fn cancel(&self) {
        let mut state = lock(&self.0);
        state.cancelled = true;
        CANCELLED.with(|cancelled| cancelled.set(true));
        // Woken under the lock: the wait cannot end and its token be reused meanwhile.
        if let Some(waker) = state.armed.take() {
            waker.wake();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        lock(&self.0).cancelled
    }

    /// The wait has ended: a later `cancel` wakes nobody.
    pub(crate) fn disarm(&self) {
        let armed = lock(&self.0).armed.take();
        drop(armed); // the waker outside the lock
    }
}

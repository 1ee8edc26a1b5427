//! The drivers of a run: `Loop::run`, which blocks its thread, and `to_future`, which an async
//! executor polls.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::coro::{Coroutine, Failure, SharedCoroutine, Submission};
use crate::error::{Error, ErrorGroup};
use crate::run::{Origin, Progress, Room, Run, StallReport};
use crate::stall::Stall;
use crate::wake::{Driver, Remote, lock};
use crate::yieldable::Yieldable;

/// A single-threaded event loop for coroutines.
///
/// [`run`](Loop::run) schedules what it is given, and everything that yields, until all of it
/// has finished, and returns the output. A loop keeps nothing between runs but its settings and,
/// like a `Vec`'s capacity, the room its largest run needed for its table of coroutines (given
/// back when the loop is dropped); loops nest freely (a coroutine may run a fresh loop to
/// completion), and there is no global runtime. A loop is `Send`: it can be made on one thread
/// and run on another.
///
/// ```
/// use tinyio::Loop;
///
/// #[tinyio::coroutine]
/// fn add_one(x: u64) -> u64 {
///     yield_!();
///     x + 1
/// }
///
/// #[tinyio::coroutine]
/// fn add_two(x: u64) -> u64 {
///     let y = yield_!(add_one(x));
///     yield_!(add_one(y))
/// }
///
/// let lp = Loop::new();
/// assert_eq!(lp.run(add_two(4)).unwrap(), 6);
/// assert_eq!(lp.run((add_one(1), add_one(2))).unwrap(), (2, 3));
/// ```
#[derive(Default)]
pub struct Loop {
    running: Cell<bool>,
    error_group: ErrorGroup,
    /// Where other threads reach the loop; lives as long as the loop, for [`StopHandle`]s.
    remote: Arc<Remote>,
    /// After how long without progress to report, and to whom; lent to each run.
    stall: Cell<Option<StallReport>>,
    /// The table and queues of the last run, empty, for the next one.
    room: Cell<Room>,
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop")
            .field("running", &self.running.get())
            .field("error_group", &self.error_group)
            .finish_non_exhaustive()
    }
}

impl Loop {
    /// A loop with default settings.
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn answer() -> u32 {
    ///     42
    /// }
    ///
    /// assert_eq!(tinyio::Loop::new().run(answer()).unwrap(), 42);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that stops this loop from any thread; see [`StopHandle`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = tinyio::Loop::new();
    /// lp.stop_handle().stop(); // no run in progress: stops the next one
    /// assert!(lp.run(tinyio::sleep(Duration::from_secs(60))).unwrap_err().is_stopped());
    /// ```
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.remote.clone())
    }

    /// Sets what [`run`](Loop::run) returns when cancelling after a failure meets more errors.
    ///
    /// ```
    /// use tinyio::{ErrorGroup, Loop};
    ///
    /// #[tinyio::coroutine]
    /// fn fails() -> () {
    ///     tinyio::bail!("oh no");
    /// }
    ///
    /// let err = Loop::new().error_group(ErrorGroup::Always).run(fails()).unwrap_err();
    /// assert_eq!(err.group().unwrap().len(), 1);
    /// assert_eq!(err.group().unwrap()[0].to_string(), "oh no");
    /// ```
    pub fn error_group(mut self, mode: ErrorGroup) -> Self {
        self.error_group = mode;
        self
    }

    /// Runs `y` (a coroutine, a gather, anything [`Yieldable`]) and everything it starts, until
    /// all of it has finished, and returns `y`'s output.
    ///
    /// If anything fails, everything else is cancelled, threads are joined, and the original
    /// error is returned (see [`ErrorGroup`] for the errors met while cancelling). If anything
    /// panics, the same happens and then the panic resumes out of `run`.
    ///
    /// Calling `run` on a loop that is already running returns an error.
    ///
    /// ```
    /// use tinyio::Loop;
    ///
    /// #[tinyio::coroutine]
    /// fn reenter(lp: &Loop) -> bool {
    ///     let err = lp.run(()).unwrap_err();
    ///     err.to_string().contains("currently running")
    /// }
    ///
    /// let lp = Loop::new();
    /// assert!(lp.run(reenter(&lp)).unwrap());
    /// ```
    pub fn run<Y: Yieldable>(&self, y: Y) -> Result<Y::Output, Error> {
        if self.running.replace(true) {
            return Err(Error::msg(
                "cannot call `Loop::run` whilst the loop is currently running; \
                 yield the coroutine instead, or run it on a new `Loop`",
            ));
        }
        let _running = Running(&self.running, DRIVEN.replace(0));
        let remote = &self.remote;
        remote.set_driver(Driver::Thread(std::thread::current()));
        remote.forget_posted();
        let mut session = Session::new(y, remote.clone(), self.error_group, self.room.take());
        session.run.stall = self.stall.take();
        // For the stall report: when the loop last made progress, and whether it has reported.
        let (mut steps, mut idle_since, mut reported) = (0, Instant::now(), false);
        let outcome = loop {
            match session.advance(usize::MAX) {
                Ok(Progress::Ready) => {}
                Ok(Progress::Blocked(mut deadline)) => {
                    let now = Instant::now();
                    if session.run.steps != steps {
                        (steps, idle_since, reported) = (session.run.steps, now, false);
                    }
                    let mut panicked = None;
                    // A threshold too long to add to an instant is never reached.
                    if let Some((threshold, report)) = &session.run.stall
                        && !reported
                        && let Some(due) = idle_since.checked_add(*threshold)
                    {
                        reported = now >= due;
                        if reported {
                            let stall = session.run.stall(now - idle_since);
                            panicked =
                                panic::catch_unwind(AssertUnwindSafe(|| report(&stall))).err();
                        } else {
                            deadline = Some(deadline.map_or(due, |d| d.min(due)));
                        }
                    }
                    // A report that panics fails the run as a coroutine's panic does: the run is
                    // torn down (and the loop keeps its report and room), then the panic resumes.
                    if let Some(payload) = panicked {
                        session.ended = true;
                        break Err(session.run.crash(Origin::Outside, Failure::Panic(payload)));
                    }
                    remote.park(deadline);
                }
                Ok(Progress::Finished(output)) => break Ok(output),
                Err(failure) => break Err(failure),
            }
        };
        // The run has ended, and cleaned up after itself if it failed: keep its room.
        self.room.set(session.run.take_room());
        self.stall.set(session.run.stall.take());
        outcome.map_err(raise)
    }

    /// Calls `report` when the loop has had nothing to run for `threshold` while coroutines are
    /// still suspended: a forgotten [`Event::set`](crate::Event::set), a thread that never
    /// returns, a deadlock through events. The report lists every suspended coroutine, where it
    /// is suspended, and what it waits on. It is made once per stall.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use tinyio::{Event, Loop};
    ///
    /// #[tinyio::coroutine]
    /// fn waits(event: Event) -> () {
    ///     yield_!(event.wait());
    /// }
    ///
    /// let seen = Arc::new(Mutex::new(String::new()));
    /// let event = Event::new();
    /// let lp = Loop::new().stall_report(Duration::from_millis(20), {
    ///     let (seen, event) = (seen.clone(), event.clone());
    ///     move |stall| {
    ///         *seen.lock().unwrap() = stall.to_string();
    ///         event.set(); // the forgotten set, supplied by the report
    ///     }
    /// });
    /// lp.run(waits(event)).unwrap();
    /// let report = seen.lock().unwrap();
    /// assert!(report.contains("waits"), "{report}");
    /// assert!(report.contains("Event::wait"), "{report}");
    /// ```
    pub fn stall_report(
        mut self,
        threshold: Duration,
        report: impl Fn(&Stall) + Send + 'static,
    ) -> Self {
        self.stall = Cell::new(Some((threshold, Box::new(report))));
        self
    }
}

/// A run being driven: by [`Loop::run`], or by an async executor through
/// [`to_future`].
struct Session<'a, Y: Yieldable> {
    run: Run<'a>,
    /// What the root collects its output from; `None` once given out.
    pending: Option<Y::Pending>,
    /// Set once the run has ended, so that dropping the session does not cancel.
    ended: bool,
}

impl<'a, Y: Yieldable + 'a> Session<'a, Y> {
    fn new(y: Y, remote: Arc<Remote>, error_group: ErrorGroup, room: Room) -> Self {
        let mut run = Run::new(remote, error_group, room);
        let mut submission = Submission::default();
        let pending = Some(y.submit(&mut submission));
        run.submission = Some(submission);
        Session { run, pending, ended: false }
    }

    /// Runs up to `rounds` rounds: until everything has finished, nothing is ready, or the
    /// rounds are used up.
    fn advance(&mut self, rounds: usize) -> Result<Progress<Y::Output>, Failure> {
        let progress = self.run.advance(rounds);
        self.ended = !matches!(progress, Ok(Progress::Ready | Progress::Blocked(_)));
        match progress? {
            Progress::Finished(()) => self.run.finish_threads()?,
            Progress::Ready => return Ok(Progress::Ready),
            Progress::Blocked(deadline) => return Ok(Progress::Blocked(deadline)),
        }
        Ok(Progress::Finished(Y::collect(self.pending.take().expect("finished once"))))
    }
}

impl<Y: Yieldable> Drop for Session<'_, Y> {
    fn drop(&mut self) {
        // Whoever drove the run is not woken again: an event that outlives the run may keep
        // its remote (see `Event`), but not, through it, a foreign executor's task.
        self.run.remote.clear_driver();
        if !self.ended {
            // Abandoned half-way (a dropped future): cancel and join, as a crash would. A panic
            // met meanwhile resumes, unless one is already unwinding.
            if let Failure::Panic(payload) =
                self.run.crash(Origin::Outside, Failure::Error(Error::cancelled()))
                && !std::thread::panicking()
            {
                panic::resume_unwind(payload);
            }
        }
    }
}

/// The error a failed run returns; a panic resumes instead.
fn raise(failure: Failure) -> Error {
    match failure {
        Failure::Error(error) => error,
        Failure::Panic(payload) => panic::resume_unwind(payload),
    }
}

/// Until dropped, the loop of the cell is running, and this thread is blocked in `Loop::run`:
/// whatever executor may be driving an outer loop on this thread (its count of `DRIVEN`, kept
/// here) is not driving anything meanwhile.
struct Running<'a>(&'a Cell<bool>, usize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(false);
        DRIVEN.set(self.1);
    }
}

/// Stops a [`Loop`] from any thread: the run in progress (or, if none, the next one) cancels
/// everything, joins its threads, and returns an error for which
/// [`is_stopped`](Error::is_stopped) is true. The analogue of an interrupt: wire it to Ctrl-C.
///
/// ```
/// use std::time::Duration;
/// use tinyio::Loop;
///
/// #[tinyio::coroutine]
/// fn forever() -> () {
///     loop {
///         yield_!(tinyio::sleep(Duration::from_secs(1)));
///     }
/// }
///
/// let lp = Loop::new();
/// let stop = lp.stop_handle();
/// // Before or during the run: a stop made before `run` stops the next run.
/// std::thread::spawn(move || stop.stop());
/// assert!(lp.run(forever()).unwrap_err().is_stopped());
/// ```
#[derive(Clone)]
pub struct StopHandle(Arc<Remote>);

impl StopHandle {
    /// Asks the loop to stop.
    ///
    /// ```
    /// let lp = tinyio::Loop::new();
    /// let stop = lp.stop_handle();
    /// std::thread::spawn(move || stop.stop()).join().unwrap();
    /// assert!(lp.run(()).unwrap_err().is_stopped());
    /// ```
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Relaxed);
        self.0.wake_driver();
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle").finish_non_exhaustive()
    }
}

/// How many rounds of the loop one `poll` runs before handing the thread back to the executor.
const ROUNDS_PER_POLL: usize = 64;

/// Runs `y` (anything [`Yieldable`]) as a future, on any executor: `Output = Result<_, Error>`.
/// [`Coroutine`] and [`SharedCoroutine`] can be `.await`ed directly (they are `IntoFuture`).
///
/// Each `poll` runs the loop until it is blocked (or for a bounded number of rounds, so that
/// other tasks get their turn) and returns `Pending` while it waits: timers, threads and events
/// wake the task through its waker; nothing blocks the executor's thread. The future is not
/// `Send` (coroutines live on one thread): use a current-thread runtime or a `LocalSet`.
/// Dropping it before it finishes cancels the computation as a crash would, and joins its
/// threads. Like most futures, it panics if polled again once it has given its output (or its
/// error).
///
/// ```
/// use std::time::Duration;
///
/// #[tinyio::coroutine]
/// fn slow_double(x: u32) -> u32 {
///     yield_!(tinyio::sleep(Duration::from_millis(5)));
///     2 * x
/// }
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let out = runtime.block_on(async { slow_double(21).await });
/// assert_eq!(out.unwrap(), 42);
/// let gathered = runtime.block_on(tinyio::to_future((slow_double(1), slow_double(2))));
/// assert_eq!(gathered.unwrap(), (2, 4));
/// ```
pub fn to_future<'a, Y: Yieldable + 'a>(y: Y) -> ToFuture<'a, Y> {
    let session = Session::new(y, Arc::default(), ErrorGroup::Auto, Room::default());
    ToFuture { session, alarm: Alarm::default() }
}

/// The future of [`to_future`].
///
/// ```
/// use tinyio::{Coro, ToFuture};
///
/// #[tinyio::coroutine]
/// fn three() -> u8 {
///     3
/// }
///
/// let future: ToFuture<'static, Coro<u8>> = tinyio::to_future(three());
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// assert_eq!(runtime.block_on(future).unwrap(), 3);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct ToFuture<'a, Y: Yieldable> {
    session: Session<'a, Y>,
    /// The deadline this future has asked the timer thread to wake it at.
    alarm: Alarm,
}

// Nothing is ever pinned inside: the session lives on the heap as plain data.
impl<Y: Yieldable> Unpin for ToFuture<'_, Y> {}

impl<'a, Y: Yieldable + 'a> Future for ToFuture<'a, Y> {
    type Output = Result<Y::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ToFuture { session, alarm } = self.get_mut();
        // An ended run has nothing left to give: its output, or its error, was given already.
        assert!(!session.ended, "`ToFuture` polled after completion");
        session.run.remote.set_driver(Driver::Task(cx.waker().clone()));
        DRIVEN.set(DRIVEN.get() + 1);
        let progress = session.advance(ROUNDS_PER_POLL);
        DRIVEN.set(DRIVEN.get() - 1);
        // The timer thread is asked to wake the task only while it waits for a deadline.
        let deadline = if let Ok(Progress::Blocked(deadline)) = progress { deadline } else { None };
        alarm.set(deadline.map(|at| (at, &session.run.remote)));
        match progress {
            Ok(Progress::Finished(output)) => Poll::Ready(Ok(output)),
            Ok(Progress::Ready) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Ok(Progress::Blocked(_)) => Poll::Pending,
            Err(failure) => Poll::Ready(Err(raise(failure))),
        }
    }
}

macro_rules! into_future {
    ($($coroutine:ident<T: $($bound:ident)?>)+) => {$(
        impl<'a, T: $($bound +)? 'a> IntoFuture for $coroutine<'a, T> {
            type Output = Result<T, Error>;
            type IntoFuture = ToFuture<'a, Self>;

            fn into_future(self) -> Self::IntoFuture {
                to_future(self)
            }
        }
    )+};
}

into_future!(Coroutine<T:> SharedCoroutine<T: Clone>);

thread_local! {
    /// How many `ToFuture::poll`s this thread is inside (an executor drives a loop here); 0
    /// while a `Loop::run` blocks it (see `Running`).
    static DRIVEN: Cell<usize> = const { Cell::new(0) };
}

/// The deadline a blocked [`ToFuture`] waits for, filed with the one timer thread that serves
/// every `ToFuture` (see [`ALARMS`]): one entry per future at most, moved when its run's next
/// deadline moves and taken out when the future finishes or is dropped, so that the thread
/// keeps nothing of a future that is gone.
#[derive(Default)]
struct Alarm(Option<(Instant, usize)>);

impl Alarm {
    /// Files `deadline`, with the remote of the run whose driver to wake then, in place of the
    /// one filed before, if it differs.
    fn set(&mut self, deadline: Option<(Instant, &Arc<Remote>)>) {
        if deadline.map(|(at, _)| at) == self.0.map(|(at, _)| at) {
            return;
        }
        let mut due = lock(&ALARMS);
        if let Some(filed) = self.0.take() {
            due.remove(&filed);
        }
        if let Some((at, remote)) = deadline {
            let key = (at, Arc::as_ptr(remote).addr());
            due.insert(key, remote.clone());
            self.0 = Some(key);
            if due.first_key_value().is_some_and(|(first, _)| *first == key) {
                TIMER.get_or_init(spawn_timer).unpark(); // to look again
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.set(None);
    }
}

/// The timer thread's entries, soonest first: a deadline and the address of the remote of the
/// run whose driver to wake then (whoever polled it last), which the entry keeps alive, so that
/// it tells apart futures due at the same instant.
static ALARMS: Mutex<BTreeMap<(Instant, usize), Arc<Remote>>> = Mutex::new(BTreeMap::new());

/// The timer thread, started by the first [`Alarm`] filed, and unparked when an entry comes
/// first.
static TIMER: OnceLock<Thread> = OnceLock::new();

/// Starts the timer thread: it wakes each entry's driver once its deadline has passed, outside
/// the lock (a waker may poll the future, which files again).
fn spawn_timer() -> Thread {
    let timer = std::thread::Builder::new().name("tinyio-timer".into()).spawn(|| {
        loop {
            let mut due = lock(&ALARMS);
            let (now, next) = (Instant::now(), due.first_key_value().map(|(&(at, _), _)| at));
            if next.is_some_and(|at| at <= now) {
                let (_, remote) = due.pop_first().expect("due");
                drop(due);
                remote.wake_driver(); // which catches a foreign waker's panic
            } else {
                drop(due);
                std::thread::park_timeout(next.map_or(Duration::MAX, |at| at - now));
            }
        }
    });
    timer.expect("failed to spawn tinyio's timer thread").thread().clone()
}

/// Whether an executor drives a loop on this thread right now (inside `ToFuture::poll`, and not
/// in a `Loop::run` nested there).
pub(crate) fn driven() -> bool {
    DRIVEN.get() > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A future dropped while it waits for a deadline an hour away takes its entry out of the
    /// timer thread at once: nothing of its run (here, its remote) is kept until then.
    #[test]
    fn a_dropped_to_future_leaves_nothing_with_the_timer_thread() {
        let mut future = to_future(crate::sleep(Duration::from_secs(3600)));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        let remote = Arc::downgrade(&future.session.run.remote);
        assert!(future.alarm.0.is_some(), "the future waits for its deadline");
        drop(future);
        assert!(remote.upgrade().is_none(), "the timer thread keeps the run of a dropped future");
    }

    /// A deadline filed while the timer thread waits for a later one wakes its future in time:
    /// the thread looks again when an entry comes first.
    #[test]
    fn a_sooner_deadline_wakes_its_future_while_a_later_one_waits() {
        let mut later = to_future(crate::sleep(Duration::from_secs(3600)));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut later).poll(&mut cx).is_pending());

        struct Woken(std::sync::mpsc::Sender<()>);
        impl std::task::Wake for Woken {
            fn wake(self: Arc<Self>) {
                let _ = self.0.send(());
            }
        }
        let (woken, wakes) = std::sync::mpsc::channel();
        let waker = Waker::from(Arc::new(Woken(woken)));
        let mut sooner = to_future(crate::sleep(Duration::from_millis(1)));
        while Pin::new(&mut sooner).poll(&mut Context::from_waker(&waker)).is_pending() {
            // Generous: a missed wake-up would take the hour.
            wakes.recv_timeout(Duration::from_secs(60)).expect("the sooner deadline was missed");
        }
    }
}

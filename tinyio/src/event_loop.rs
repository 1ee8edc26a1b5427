//! `Loop`, and the sessions that drive a run: `Loop::run`, `to_future`; and where other threads
//! reach a running loop.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorGroup};
use crate::run::{Failure, Origin, Progress, Room, Run, StallReport};
use crate::stall::Stall;
use crate::yieldable::{Submission, Yieldable};

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
/// use tinyio::{Loop};
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

impl Default for Loop {
    fn default() -> Self {
        Loop {
            running: Cell::new(false),
            error_group: ErrorGroup::default(),
            remote: Arc::new(Remote::new()),
            stall: Cell::new(None),
            room: Cell::default(),
        }
    }
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
    /// use tinyio::{Loop};
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
        let _running = Reset(&self.running);
        let _blocking = crate::interop::Blocking::enter();
        let remote = &self.remote;
        remote.set_driver(Waker::from(Arc::new(Unpark(std::thread::current()))));
        remote.forget_posted();
        let mut session = Session::new(y, remote.clone(), self.error_group, self.room.take());
        session.run.stall = self.stall.take();
        // For the stall report: when the loop last made progress, and whether it has reported.
        let (mut steps, mut idle_since, mut reported) = (0, Instant::now(), false);
        let outcome = loop {
            match session.advance(usize::MAX) {
                Ok(Progress::Ready) => {}
                Ok(Progress::Blocked(deadline)) => {
                    let now = Instant::now();
                    if session.run.steps != steps {
                        (steps, idle_since, reported) = (session.run.steps, now, false);
                    }
                    let mut park_until = deadline;
                    if let Some((threshold, report)) = &session.run.stall
                        && !reported
                    {
                        let due = idle_since + *threshold;
                        if now >= due {
                            report(&session.run.stall(now - idle_since));
                            reported = true;
                        } else {
                            park_until = Some(deadline.map_or(due, |d| d.min(due)));
                        }
                    }
                    remote.park(park_until);
                }
                Ok(Progress::Finished(output)) => break Ok(output),
                Err(failure) => break Err(failure),
            }
        };
        // The run has ended, and cleaned up after itself if it failed: keep its room.
        self.room.set(session.run.take_room());
        self.stall.set(session.run.stall.take());
        match outcome {
            Ok(output) => Ok(output),
            Err(Failure::Error(error)) => Err(error),
            Err(Failure::Panic(payload)) => panic::resume_unwind(payload),
        }
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
/// [`to_future`](crate::to_future).
pub(crate) struct Session<'a, Y: Yieldable> {
    pub(crate) run: Run<'a>,
    /// What the root collects its output from; `None` once given out.
    pending: Option<Y::Pending>,
    /// Set once the run has ended, so that dropping the session does not cancel.
    ended: bool,
}

impl<'a, Y: Yieldable + 'a> Session<'a, Y> {
    pub(crate) fn new(y: Y, remote: Arc<Remote>, error_group: ErrorGroup, room: Room) -> Self {
        let mut run = Run::new(remote, error_group, room);
        let mut submission = Submission::default();
        let pending = Some(y.submit(&mut submission));
        run.submission = Some(submission);
        Session {
            run,
            pending,
            ended: false,
        }
    }

    /// Runs up to `rounds` rounds: until everything has finished, nothing is ready, or the
    /// rounds are used up.
    pub(crate) fn advance(&mut self, rounds: usize) -> Result<Progress<Y::Output>, Failure> {
        let progress = self
            .run
            .advance(rounds)
            .and_then(|progress| match progress {
                Progress::Finished(()) => self.run.finish_threads().map(Progress::Finished),
                Progress::Ready => Ok(Progress::Ready),
                Progress::Blocked(deadline) => Ok(Progress::Blocked(deadline)),
            });
        match progress {
            Ok(Progress::Finished(())) => {
                self.ended = true;
                let pending = self.pending.take().expect("finished once");
                Ok(Progress::Finished(Y::collect(pending)))
            }
            Ok(Progress::Ready) => Ok(Progress::Ready),
            Ok(Progress::Blocked(deadline)) => Ok(Progress::Blocked(deadline)),
            Err(failure) => {
                self.ended = true;
                Err(failure)
            }
        }
    }
}

impl<Y: Yieldable> Drop for Session<'_, Y> {
    fn drop(&mut self) {
        // Whoever drove the run is not woken again: an event that outlives the run may keep
        // its remote (see `Event`), but not, through it, a foreign executor's task.
        self.run.remote().clear_driver();
        if !self.ended {
            // Abandoned half-way (a dropped future): cancel and join, as a crash would. A panic
            // met meanwhile resumes, unless one is already unwinding.
            if let Failure::Panic(payload) = self
                .run
                .crash(Origin::Outside, Failure::Error(Error::cancelled()))
                && !std::thread::panicking()
            {
                panic::resume_unwind(payload);
            }
        }
    }
}

struct Reset<'a>(&'a Cell<bool>);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Where wake-ups from outside the loop's thread arrive: woken leaves' tokens, a stop request,
/// and the waker of whoever drives the loop (its thread, or a foreign executor's task).
pub(crate) struct Remote {
    woken: Mutex<Vec<u64>>,
    /// Whether `woken` may hold tokens: a wake-up from outside the run waits to be taken.
    /// Wake-ups the run makes itself wait in the thread's own queue instead ([`IN_RUN`]).
    posted: AtomicBool,
    pub(crate) stopped: AtomicBool,
    pub(crate) driver: Mutex<Option<Waker>>,
}

impl Remote {
    pub(crate) fn new() -> Self {
        Remote {
            woken: Mutex::new(Vec::new()),
            posted: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            driver: Mutex::new(None),
        }
    }

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
        self.woken.lock().expect("poisoned").extend(tokens);
        self.posted.store(true, Ordering::Release);
    }

    /// Drops wake-ups left from an earlier run of the loop (a thread call that finished while
    /// its run was being cancelled, say): tokens name slots of that run, not of the next.
    fn forget_posted(&self) {
        if self.posted.swap(false, Ordering::Acquire) {
            self.woken.lock().expect("poisoned").clear();
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
            into.append(&mut self.woken.lock().expect("poisoned"));
        }
    }

    /// Marks this thread as advancing the run that this remote serves, until the guard drops.
    pub(crate) fn advancing(self: &Arc<Self>) -> Advancing {
        Advancing {
            remote: self.clone(),
            outer: ADVANCING.with(|a| a.replace(Arc::as_ptr(self).addr())),
            outer_woken: take_in_run(),
        }
    }

    pub(crate) fn set_driver(&self, driver: Waker) {
        let mut current = self.driver.lock().expect("poisoned");
        if !current.as_ref().is_some_and(|c| c.will_wake(&driver)) {
            *current = Some(driver);
        }
    }

    fn clear_driver(&self) {
        self.driver.lock().expect("poisoned").take();
    }

    fn wake_driver(&self) {
        if let Some(driver) = &*self.driver.lock().expect("poisoned") {
            driver.wake_by_ref();
        }
    }

    /// Blocks the loop's thread until woken or until the deadline.
    ///
    /// A timed park wakes late by the kernel's timer slack and the scheduler's delay (50-100 us
    /// on Linux), and a burst of timers due one after another would pay that at every park. So
    /// the thread parks until [`SLACK`] before the deadline, and the last stretch is waited for
    /// by yielding the thread: a timer fires within microseconds, for at most `SLACK` of a
    /// core's time per timed wake-up.
    fn park(&self, deadline: Option<Instant>) {
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

/// Stops a [`Loop`] from any thread: the run in progress (or, if none, the next one) cancels
/// everything, joins its threads, and returns an error for which
/// [`is_stopped`](Error::is_stopped) is true. The analogue of an interrupt: wire it to Ctrl-C.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop};
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

thread_local! {
    /// The address of the remote whose run this thread is advancing (0: none).
    static ADVANCING: Cell<usize> = const { Cell::new(0) };
    /// Wake-ups the run being advanced on this thread made itself (see [`Remote::wake`]).
    static IN_RUN: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// Whether `IN_RUN` may hold tokens: read at every pause, so kept where reading costs one
    /// load.
    static IN_RUN_ANY: Cell<bool> = const { Cell::new(false) };
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
    outer: usize,
    outer_woken: Vec<u64>,
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
        ADVANCING.with(|a| a.set(self.outer));
    }
}

/// Wakes the thread blocked in [`Loop::run`].
pub(crate) struct Unpark(pub(crate) std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Wakes one leaf from any thread: what a [`LeafWaker`] does, for a leaf that needs no `Waker`.
pub(crate) struct Notify {
    remote: Arc<Remote>,
    token: u64,
}

impl Notify {
    pub(crate) fn new(remote: &Arc<Remote>, token: u64) -> Self {
        Notify {
            remote: remote.clone(),
            token,
        }
    }

    pub(crate) fn wake(&self) {
        self.remote.wake(self.token);
    }
}

/// The waker of one leaf.
pub(crate) struct LeafWaker {
    remote: Arc<Remote>,
    token: u64,
}

impl LeafWaker {
    pub(crate) fn new(remote: &Arc<Remote>, token: u64) -> Arc<Self> {
        Arc::new(LeafWaker {
            remote: remote.clone(),
            token,
        })
    }

    /// A waker for `token`: `old` made new again if nobody else holds it (so no stale holder
    /// can ever wake the new owner), else a fresh one.
    pub(crate) fn reuse(old: Option<Arc<Self>>, remote: &Arc<Remote>, token: u64) -> Arc<Self> {
        if let Some(mut waker) = old
            && let Some(reused) = Arc::get_mut(&mut waker)
        {
            reused.token = token;
            return waker;
        }
        Self::new(remote, token)
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

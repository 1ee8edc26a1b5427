//! `Loop`, and the sessions that drive a run: `Loop::run`, `to_future`; and where other threads
//! reach a running loop.

use std::cell::Cell;
use std::fmt;
use std::panic::{self};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorGroup};
use crate::run::{Failure, Origin, Progress, Room, Run, StallReport};
use crate::stall::Stall;
use crate::wake::{Remote, Unpark};
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

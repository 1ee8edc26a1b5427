//! What [`Loop::stall_report`](crate::Loop::stall_report) hands its callback.

use std::fmt;
use std::time::Duration;

use crate::error::Frame;

/// A loop with nothing to run: every suspended coroutine and what it waits on.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use tinyio::{Event, Loop, Stall};
///
/// #[tinyio::coroutine]
/// fn waits(event: Event) -> () {
///     yield_!(event.wait());
/// }
///
/// let (seen, event) = (Arc::new(Mutex::new(Vec::new())), Event::new());
/// let lp = Loop::new().stall_report(Duration::from_millis(10), {
///     let (seen, event) = (seen.clone(), event.clone());
///     move |stall: &Stall| {
///         let names = stall.coroutines().iter().map(|s| s.frame().name());
///         seen.lock().unwrap().push((stall.idle(), names.collect::<Vec<_>>()));
///         event.set(); // unstalls the loop
///     }
/// });
/// lp.run(waits(event)).unwrap();
/// let seen = seen.lock().unwrap();
/// assert_eq!(seen.len(), 1);
/// assert!(seen[0].0 >= Duration::from_millis(10));
/// assert_eq!(seen[0].1, ["waits"]);
/// ```
#[derive(Debug)]
pub struct Stall {
    pub(crate) idle: Duration,
    pub(crate) coroutines: Vec<Suspended>,
    pub(crate) joining: Vec<Frame>,
}

impl Stall {
    /// How long the loop has had nothing to run.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use std::time::Duration;
    /// # use tinyio::{Event, Loop};
    /// # #[tinyio::coroutine]
    /// # fn waits(event: Event) -> () {
    /// #     yield_!(event.wait());
    /// # }
    ///
    /// let (idle, event) = (Arc::new(Mutex::new(Duration::ZERO)), Event::new());
    /// let lp = Loop::new().stall_report(Duration::from_millis(10), {
    ///     let (idle, event) = (idle.clone(), event.clone());
    ///     move |stall| {
    ///         *idle.lock().unwrap() = stall.idle();
    ///         event.set();
    ///     }
    /// });
    /// lp.run(waits(event)).unwrap();
    /// assert!(*idle.lock().unwrap() >= Duration::from_millis(10));
    /// ```
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Every suspended coroutine (leaves such as timers and thread calls appear through their
    /// waiters).
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use std::time::Duration;
    /// # use tinyio::{Event, Loop};
    /// # #[tinyio::coroutine]
    /// # fn waits(event: Event) -> () {
    /// #     yield_!(event.wait());
    /// # }
    ///
    /// let (count, event) = (Arc::new(Mutex::new(0)), Event::new());
    /// let lp = Loop::new().stall_report(Duration::from_millis(10), {
    ///     let (count, event) = (count.clone(), event.clone());
    ///     move |stall| {
    ///         *count.lock().unwrap() = stall.coroutines().len();
    ///         event.set();
    ///     }
    /// });
    /// lp.run((waits(event.clone()), waits(event))).unwrap();
    /// assert_eq!(*count.lock().unwrap(), 2); // the `Event::wait` leaves are not listed
    /// ```
    pub fn coroutines(&self) -> &[Suspended] {
        &self.coroutines
    }

    /// The thread calls that the loop has told to stop and is waiting for, each named by its
    /// call site: a run that fails (or a [`timeout`](crate::timeout) that stopped a call) returns
    /// only once they have returned, so a function that ignores its cancellation holds the run
    /// up, and the report says where it was called.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use tinyio::{Event, Loop, run_in_thread};
    ///
    /// #[tinyio::coroutine]
    /// fn fails_once_running(running: Event) -> () {
    ///     yield_!(running.wait());
    ///     tinyio::bail!("failed");
    /// }
    ///
    /// let (running, release) = (Event::new(), Event::new());
    /// let (started, released) = (running.clone(), release.clone());
    /// // Ignores `tinyio::thread::is_cancelled`: returns only once the report releases it.
    /// let called_at = line!() + 1;
    /// let stubborn = run_in_thread(move || {
    ///     started.set();
    ///     while !released.is_set() {
    ///         std::thread::park_timeout(Duration::from_millis(1));
    ///     }
    /// });
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let lp = Loop::new().stall_report(Duration::from_millis(10), {
    ///     let seen = seen.clone();
    ///     move |stall| {
    ///         seen.lock().unwrap().extend(stall.joining().iter().map(|f| (f.name(), f.line())));
    ///         release.set();
    ///     }
    /// });
    /// let err = lp.run((stubborn, fails_once_running(running))).unwrap_err();
    /// assert_eq!(err.to_string(), "failed");
    /// assert_eq!(*seen.lock().unwrap(), [("run_in_thread", called_at)]);
    /// ```
    pub fn joining(&self) -> &[Frame] {
        &self.joining
    }
}

/// One suspended coroutine in a [`Stall`].
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
/// let (seen, event) = (Arc::new(Mutex::new(Vec::new())), Event::new());
/// let lp = Loop::new().stall_report(Duration::from_millis(10), {
///     let (seen, event) = (seen.clone(), event.clone());
///     move |stall| {
///         for s in stall.coroutines() {
///             seen.lock().unwrap().push((s.frame().name(), s.waits_on().to_vec()));
///         }
///         event.set();
///     }
/// });
/// lp.run(waits(event)).unwrap();
/// assert_eq!(*seen.lock().unwrap(), [("waits", vec!["Event::wait"])]);
/// ```
#[derive(Debug)]
pub struct Suspended {
    pub(crate) frame: Frame,
    pub(crate) waits_on: Vec<&'static str>,
}

impl Suspended {
    /// The coroutine's name, and the file and line it is suspended at.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use std::time::Duration;
    /// # use tinyio::{Event, Loop};
    /// # #[tinyio::coroutine]
    /// # fn waits(event: Event) -> () {
    /// #     yield_!(event.wait());
    /// # }
    ///
    /// let (frame, event) = (Arc::new(Mutex::new(None)), Event::new());
    /// let lp = Loop::new().stall_report(Duration::from_millis(10), {
    ///     let (frame, event) = (frame.clone(), event.clone());
    ///     move |stall| {
    ///         *frame.lock().unwrap() = Some(*stall.coroutines()[0].frame());
    ///         event.set();
    ///     }
    /// });
    /// lp.run(waits(event)).unwrap();
    /// let frame = frame.lock().unwrap().unwrap();
    /// assert_eq!((frame.name(), frame.file()), ("waits", file!()));
    /// ```
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The names of the coroutines it waits on: other coroutines, or leaves such as `sleep`
    /// (a timer), `Event::wait`, `run_in_thread`, `from_future`.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use std::time::Duration;
    /// # use tinyio::{Event, Loop};
    /// # #[tinyio::coroutine]
    /// # fn waits(event: Event) -> () {
    /// #     yield_!(event.wait());
    /// # }
    ///
    /// let (waits_on, event) = (Arc::new(Mutex::new(Vec::new())), Event::new());
    /// let lp = Loop::new().stall_report(Duration::from_millis(10), {
    ///     let (waits_on, event) = (waits_on.clone(), event.clone());
    ///     move |stall| {
    ///         *waits_on.lock().unwrap() = stall.coroutines()[0].waits_on().to_vec();
    ///         event.set();
    ///     }
    /// });
    /// lp.run(waits(event)).unwrap();
    /// assert_eq!(*waits_on.lock().unwrap(), ["Event::wait"]);
    /// ```
    pub fn waits_on(&self) -> &[&'static str] {
        &self.waits_on
    }
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tinyio loop stalled: nothing has run for {:?}", self.idle)?;
        if !self.coroutines.is_empty() {
            write!(f, "; suspended:")?;
        }
        for suspended in &self.coroutines {
            write!(f, "\n    {} waits on {}", suspended.frame, suspended.waits_on.join(", "))?;
        }
        let told = "it was told to stop (see `tinyio::thread::is_cancelled`)";
        for call in &self.joining {
            write!(f, "\n    waiting for {call} to return: {told}")?;
        }
        Ok(())
    }
}

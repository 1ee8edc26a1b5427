//! `tinyio::Error`: the original error, the chain of coroutines that led to it, and, when more went
//! wrong while cancelling, the group of everything that did.

use std::any::Any;
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::panic::Location;

/// The error returned by [`Loop::run`](crate::Loop::run) when anything in the loop fails.
///
/// It carries the original error (get it back with [`downcast_ref`](Error::downcast_ref)), the
/// [trace](Error::trace) of coroutines that led to it, and, in the modes described at
/// [`ErrorGroup`], the errors met while cancelling everything else.
///
/// `{}` prints the original message; `{:?}` and `{:#}` add the trace, outermost coroutine first.
///
/// ```
/// use tinyio::{Error, Loop};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("oh no")]
/// struct OhNo;
///
/// #[tinyio::coroutine]
/// fn inner() -> u32 {
///     yield_!();
///     Err(OhNo)?
/// }
///
/// #[tinyio::coroutine]
/// fn outer() -> u32 {
///     yield_!(inner())
/// }
///
/// let err: Error = Loop::new().run(outer()).unwrap_err();
/// assert!(err.downcast_ref::<OhNo>().is_some());
/// assert_eq!(err.to_string(), "oh no");
/// let names: Vec<&str> = err.trace().iter().map(|f| f.name()).collect();
/// assert_eq!(names, ["outer", "inner"]);
/// ```
pub struct Error(Repr);

/// The errors the loop delivers at a suspension point (a cancellation, a timeout) own no heap
/// memory until they are traced: a destructor that panics while one is being returned through
/// `?` makes rustc forget the value in flight, and a value with nothing on the heap leaks nothing.
enum Repr {
    Bare(&'static Inner),
    Full(Box<Inner>),
}

static CANCELLED: Inner = Inner::bare(Kind::Cancelled(Cow::Borrowed("cancelled")));
static TIMEOUT: Inner = Inner::bare(Kind::Timeout);
static DEADLINE: Inner = Inner::bare(Kind::Deadline);

struct Inner {
    kind: Kind,
    /// The coroutines that led here, outermost first.
    trace: Vec<Frame>,
    /// Where the error was raised (`?` or `bail!`) inside the innermost coroutine, until a loop
    /// has turned it into the innermost frame.
    raised_at: Option<&'static Location<'static>>,
}

impl Inner {
    const fn bare(kind: Kind) -> Self {
        Inner {
            kind,
            trace: Vec::new(),
            raised_at: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Kind {
    #[error("{0}")]
    Cancelled(Cow<'static, str>),
    #[error("timed out")]
    Timeout,
    /// Delivered to the coroutine whose own timed wait ran out (the `timeout` wrapper).
    #[error("deadline passed")]
    Deadline,
    #[error("the loop was stopped")]
    Stopped,
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Other(Box<dyn StdError + Send + Sync>),
    #[error(
        "{} more error{} occurred while cancelling the other coroutines; the original error: {}",
        .0.len() - 1,
        if .0.len() == 2 { "" } else { "s" },
        .0[0]
    )]
    Group(Vec<Error>),
}

impl Error {
    /// Wraps any error. `?` inside a coroutine does this for you.
    ///
    /// ```
    /// let err = tinyio::Error::new(std::io::Error::other("disk full"));
    /// assert_eq!(err.to_string(), "disk full");
    /// assert!(err.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        let mut slot = Some(error);
        if let Some(error) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Error>>() {
            return error.take().expect("just filled");
        }
        Self::from_kind(Kind::Other(Box::new(slot.expect("not taken"))))
    }

    /// An error with a message and no other payload. See also [`bail!`](crate::bail).
    ///
    /// ```
    /// let err = tinyio::Error::msg(format_args!("bad input {}", 3));
    /// assert_eq!(err.to_string(), "bad input 3");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::from_kind(Kind::Message(message.to_string()))
    }

    /// The error a coroutine receives at its suspension point when the loop cancels it.
    ///
    /// A coroutine that catches its cancellation with `try_yield!` should clean up and propagate
    /// this (or the one it received).
    ///
    /// ```
    /// assert!(tinyio::Error::cancelled().is_cancelled());
    /// ```
    pub fn cancelled() -> Self {
        Error(Repr::Bare(&CANCELLED))
    }

    pub(crate) fn cancelled_because(why: impl Into<String>) -> Self {
        Self::from_kind(Kind::Cancelled(Cow::Owned(why.into())))
    }

    pub(crate) fn timeout() -> Self {
        Error(Repr::Bare(&TIMEOUT))
    }

    pub(crate) fn deadline() -> Self {
        Error(Repr::Bare(&DEADLINE))
    }

    pub(crate) fn is_deadline(&self) -> bool {
        matches!(self.inner().kind, Kind::Deadline)
    }

    pub(crate) fn stopped() -> Self {
        Self::from_kind(Kind::Stopped)
    }

    pub(crate) fn from_group(errors: Vec<Error>) -> Self {
        debug_assert!(!errors.is_empty());
        Self::from_kind(Kind::Group(errors))
    }

    fn from_kind(kind: Kind) -> Self {
        Error(Repr::Full(Box::new(Inner::bare(kind))))
    }

    fn inner(&self) -> &Inner {
        match &self.0 {
            Repr::Bare(inner) => inner,
            Repr::Full(inner) => inner,
        }
    }

    /// The error's own state, moved to the heap first if it was bare.
    fn inner_mut(&mut self) -> &mut Inner {
        if let Repr::Bare(bare) = self.0 {
            let kind = match &bare.kind {
                Kind::Cancelled(why) => Kind::Cancelled(why.clone()),
                Kind::Timeout => Kind::Timeout,
                Kind::Deadline => Kind::Deadline,
                _ => unreachable!("only cancellations and timeouts are bare"),
            };
            self.0 = Repr::Full(Box::new(Inner::bare(kind)));
        }
        match &mut self.0 {
            Repr::Full(inner) => inner,
            Repr::Bare(_) => unreachable!("moved to the heap above"),
        }
    }

    /// The original error: itself, or the first member of a group.
    fn original(&self) -> &Error {
        match &self.inner().kind {
            Kind::Group(errors) => errors[0].original(),
            _ => self,
        }
    }

    /// Returns the original error as `E`, if it is one. On a group, looks at the original error
    /// (the group's first member).
    ///
    /// ```
    /// let err = tinyio::Error::new(std::fmt::Error);
    /// assert!(err.downcast_ref::<std::fmt::Error>().is_some());
    /// assert!(err.downcast_ref::<std::io::Error>().is_none());
    /// ```
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        match &self.original().inner().kind {
            Kind::Other(error) => error.downcast_ref(),
            _ => None,
        }
    }

    /// Whether the original error is a cancellation: the loop cancelled a coroutine because of an
    /// error elsewhere, or found a cycle, or a coroutine that had already started elsewhere.
    ///
    /// ```
    /// assert!(tinyio::Error::cancelled().is_cancelled());
    /// assert!(!tinyio::Error::msg("x").is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.original().inner().kind, Kind::Cancelled(_))
    }

    /// Whether the original error is a timeout, as delivered by [`timeout`](crate::timeout) to
    /// the work it stops.
    ///
    /// ```
    /// assert!(!tinyio::Error::cancelled().is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self.original().inner().kind, Kind::Timeout)
    }

    /// Whether the loop was stopped from outside by a [`StopHandle`](crate::StopHandle).
    ///
    /// ```
    /// assert!(!tinyio::Error::cancelled().is_stopped());
    /// ```
    pub fn is_stopped(&self) -> bool {
        matches!(self.original().inner().kind, Kind::Stopped)
    }

    /// The members of an error group, the original error first, or `None` if this is a single
    /// error. See [`ErrorGroup`] for when a loop returns a group.
    ///
    /// ```
    /// assert!(tinyio::Error::msg("alone").group().is_none());
    /// ```
    pub fn group(&self) -> Option<&[Error]> {
        match &self.inner().kind {
            Kind::Group(errors) => Some(errors),
            _ => None,
        }
    }

    /// The chain of coroutines that led to the original error, outermost first, ending at the
    /// coroutine (or thread) where it was raised. Empty for an error that never went through a
    /// loop.
    ///
    /// ```
    /// assert!(tinyio::Error::msg("fresh").trace().is_empty());
    /// ```
    pub fn trace(&self) -> &[Frame] {
        &self.original().inner().trace
    }

    /// Records where the error was raised, unless already known.
    pub(crate) fn raised_at(mut self, at: &'static Location<'static>) -> Self {
        // A bare error stays bare: it was delivered at the suspension point, which its trace
        // names already.
        if let Repr::Full(inner) = &mut self.0
            && inner.trace.is_empty()
            && inner.raised_at.is_none()
        {
            inner.raised_at = Some(at);
        }
        self
    }

    /// Adds the frame of the coroutine the error came out of, and the chain of its waiters
    /// (`outer`, outermost first), in front of the trace it already has.
    pub(crate) fn traced(mut self, innermost: Frame, outer: Vec<Frame>) -> Self {
        let inner = self.inner_mut();
        let innermost = match inner.raised_at.take() {
            Some(at) => Frame {
                line: at.line(),
                file: at.file(),
                ..innermost
            },
            None => innermost,
        };
        let mut trace = outer;
        trace.push(innermost);
        trace.append(&mut inner.trace);
        inner.trace = trace;
        self
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.original().inner().kind {
            Kind::Other(error) => error.source(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner().kind, f)?;
        if f.alternate() {
            self.write_trace(f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner().kind {
            Kind::Group(errors) => {
                write!(f, "{}", self.inner().kind)?;
                for (i, error) in errors.iter().enumerate() {
                    let role = if i == 0 {
                        "original error"
                    } else {
                        "while cancelling"
                    };
                    write!(f, "\n\n[{i}] {role}: {error:?}")?;
                }
                Ok(())
            }
            kind => {
                write!(f, "{kind}")?;
                self.write_trace(f)
            }
        }
    }
}

impl Error {
    fn write_trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trace = self.trace();
        if !trace.is_empty() {
            write!(f, "\ncoroutine trace, outermost first:")?;
            for frame in trace {
                write!(f, "\n    {frame}")?;
            }
        }
        Ok(())
    }
}

/// One coroutine (or thread) in an error's [trace](Error::trace): its name and where it was
/// suspended, or, for the last frame, where the error was raised.
///
/// ```
/// use tinyio::{Loop};
///
/// #[tinyio::coroutine]
/// fn fails() -> () {
///     tinyio::bail!("nope");
/// }
///
/// let err = Loop::new().run(fails()).unwrap_err();
/// let frame = &err.trace()[0];
/// assert_eq!(frame.name(), "fails");
/// assert!(frame.file().ends_with(".rs"));
/// assert!(frame.line() > 0);
/// assert_eq!(frame.to_string(), format!("fails at {}:{}", frame.file(), frame.line()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub(crate) name: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
}

impl Frame {
    /// The coroutine's function name (`run_in_thread` and similar for built-in leaves).
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn fails() -> () {
    ///     tinyio::bail!("nope");
    /// }
    ///
    /// let err = tinyio::Loop::new().run(fails()).unwrap_err();
    /// assert_eq!(err.trace()[0].name(), "fails");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The source file of the suspension point (see [`line`](Frame::line)).
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn fails() -> () {
    ///     tinyio::bail!("nope");
    /// }
    ///
    /// let err = tinyio::Loop::new().run(fails()).unwrap_err();
    /// assert_eq!(err.trace()[0].file(), file!());
    /// ```
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the suspension point: where the coroutine raised, or the `yield_!` it was
    /// suspended at. A coroutine that never ran (cancelled before its first resume) is placed at
    /// its function's definition, a built-in leaf (`sleep`, `run_in_thread`, ...) at its
    /// definition inside this crate, and a built-in coroutine (`timeout`, `as_completed`,
    /// `Lock::lock`, ...) at its suspension point inside this crate; the coroutine that yielded
    /// it gives the line in the caller's code.
    ///
    /// ```
    /// #[tinyio::coroutine]
    /// fn fails() -> () {
    ///     tinyio::bail!("nope");
    /// }
    /// let raised_at = line!() - 2;
    ///
    /// let err = tinyio::Loop::new().run(fails()).unwrap_err();
    /// assert_eq!(err.trace()[0].line(), raised_at);
    /// ```
    pub fn line(&self) -> u32 {
        self.line
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}:{}", self.name, self.file, self.line)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What [`Loop::run`](crate::Loop::run) returns when something fails and cancelling the rest
/// meets more errors. Set it with [`Loop::error_group`](crate::Loop::error_group).
///
/// ```
/// use tinyio::{ErrorGroup, Loop};
///
/// let lp = Loop::new().error_group(ErrorGroup::Always);
/// # let _ = lp;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorGroup {
    /// The original error alone if every other coroutine cancelled cleanly; otherwise a group
    /// whose first member is the original error, followed by the errors met while cancelling.
    #[default]
    Auto,
    /// Always the original error alone; errors met while cancelling are dropped.
    Never,
    /// Always a group: the original error, the errors met while cancelling, then one
    /// cancellation for every coroutine that was cancelled cleanly.
    Always,
}

/// Raises an error with a message from inside a coroutine (or any function returning
/// `Result<_, tinyio::Error>`).
///
/// ```
/// use tinyio::{Loop};
///
/// #[tinyio::coroutine]
/// fn check(x: u32) -> u32 {
///     if x > 3 {
///         tinyio::bail!("{x} is too big");
///     }
///     x
/// }
///
/// assert_eq!(Loop::new().run(check(2)).unwrap(), 2);
/// assert_eq!(Loop::new().run(check(5)).unwrap_err().to_string(), "5 is too big");
/// ```
#[macro_export]
macro_rules! bail {
    ($($message:tt)*) => {
        return ::core::result::Result::Err(::core::convert::From::from(
            $crate::Error::msg(::core::format_args!($($message)*)),
        ))
    };
}

/// What a coroutine body returns on `?`. Any `std::error::Error + Send + Sync + 'static`
/// converts into it, `tinyio::Error` included (unwrapped, not nested).
#[doc(hidden)]
pub struct Raise(pub(crate) Error);

impl<E: StdError + Send + Sync + 'static> From<E> for Raise {
    #[track_caller]
    fn from(error: E) -> Self {
        Raise(Error::new(error).raised_at(Location::caller()))
    }
}

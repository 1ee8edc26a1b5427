//! `tinyio::Error`: the original error, the chain of coroutines that led to it, and, when more went
//! wrong while cancelling, the group of everything that did.

use std::any::Any;
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::panic::Location;
use std::sync::OnceLock;

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
///
/// # With other error types
///
/// Inside a coroutine, `?` raises anything that converts into
/// `Box<dyn std::error::Error + Send + Sync>`: an error type, an `anyhow::Error`, a boxed error, a
/// `String`. [`downcast_ref`](Error::downcast_ref) gives an error type back, from a boxed error
/// too; a `tinyio::Error` (from a nested loop, say), boxed or not, is raised as itself, its trace
/// kept. An `anyhow::Error` keeps its message and its causes, but not its type: anyhow converts
/// it into a box of a wrapper of its own, which `downcast_ref` cannot see through, and a
/// `tinyio::Error` inside is raised as a new error, with its trace among the causes. To keep
/// either, take the error out first with `anyhow`'s `downcast`, as in
/// `e.downcast::<tinyio::Error>()`.
///
/// ```
/// use tinyio::Loop;
///
/// #[tinyio::coroutine]
/// fn parse(text: &'static str) -> u32 {
///     yield_!();
///     text.parse()?
/// }
///
/// #[tinyio::coroutine]
/// fn with_anyhow() -> u32 {
///     Err(anyhow::anyhow!("from anyhow"))?
/// }
///
/// #[tinyio::coroutine]
/// fn with_box() -> u32 {
///     let result: Result<u32, Box<dyn std::error::Error + Send + Sync>> = Err("boxed".into());
///     result?
/// }
///
/// #[tinyio::coroutine]
/// fn with_string() -> u32 {
///     Err(format!("{} out of range", 300))?
/// }
///
/// #[tinyio::coroutine]
/// fn nested() -> u32 {
///     Loop::new().run(parse("x"))?
/// }
///
/// let err = Loop::new().run(parse("x")).unwrap_err();
/// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
/// assert_eq!(Loop::new().run(with_anyhow()).unwrap_err().to_string(), "from anyhow");
/// assert_eq!(Loop::new().run(with_box()).unwrap_err().to_string(), "boxed");
/// assert_eq!(Loop::new().run(with_string()).unwrap_err().to_string(), "300 out of range");
///
/// let err = Loop::new().run(nested()).unwrap_err();
/// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
/// let names: Vec<&str> = err.trace().iter().map(|f| f.name()).collect();
/// assert_eq!(names, ["nested", "parse"]);
/// ```
///
/// The other way, a `tinyio::Error` is a `std::error::Error` and converts into `anyhow::Error`
/// or a `Box<dyn Error>` with `?`. Its source chain starts with its trace, displayed on one line,
/// followed by the original error's sources, so that a report such as `anyhow`'s `{:?}` shows
/// where the error went. Its own `{:?}`, which `fn main() -> Result<(), tinyio::Error>` prints,
/// shows the trace and then the causes.
///
/// ```
/// use tinyio::Loop;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("could not load the configuration")]
/// struct LoadError(#[source] std::io::Error);
///
/// #[tinyio::coroutine]
/// fn load() -> String {
///     yield_!();
///     Err(LoadError(std::io::Error::other("disk full")))?
/// }
///
/// fn run() -> anyhow::Result<String> {
///     Ok(Loop::new().run(load())?)
/// }
///
/// let report = format!("{:?}", run().unwrap_err());
/// assert!(report.starts_with("could not load the configuration\n\nCaused by:\n"), "{report}");
/// assert!(report.contains("    0: in coroutine load at "), "{report}");
/// assert!(report.contains("    1: disk full"), "{report}");
///
/// let err = Loop::new().run(load()).unwrap_err();
/// let debug = format!("{err:?}");
/// assert!(debug.starts_with("could not load the configuration\ncoroutine trace"), "{debug}");
/// assert!(debug.ends_with("\n\nCaused by:\n    disk full"), "{debug}");
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
    /// The coroutines that led here, innermost first: an error raised again further out (from
    /// an isolate, say) adds the frames above it at the end, in time proportional to those.
    frames: Vec<Frame>,
    /// The same, outermost first, as [`Error::trace`] lends it: made on its first call.
    trace: OnceLock<Vec<Frame>>,
    /// Where the error was raised (`?` or `bail!`) inside the innermost coroutine, until a loop
    /// has turned it into the innermost frame.
    raised_at: Option<&'static Location<'static>>,
}

impl Inner {
    const fn bare(kind: Kind) -> Self {
        Inner { kind, frames: Vec::new(), trace: OnceLock::new(), raised_at: None }
    }

    fn trace(&self) -> &[Frame] {
        self.trace.get_or_init(|| self.frames.iter().rev().copied().collect())
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
    /// Wraps any error: anything that converts into `Box<dyn std::error::Error + Send + Sync>`,
    /// such as an error type, an `anyhow::Error`, a `String` or a `&'static str`. `?` inside a
    /// coroutine does this for you. A `tinyio::Error` (boxed or not) comes back as itself, its
    /// trace kept; an error type can be had back with [`downcast_ref`](Error::downcast_ref).
    ///
    /// ```
    /// let err = tinyio::Error::new(std::io::Error::other("disk full"));
    /// assert_eq!(err.to_string(), "disk full");
    /// assert!(err.downcast_ref::<std::io::Error>().is_some());
    ///
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(std::fmt::Error);
    /// assert!(tinyio::Error::new(boxed).downcast_ref::<std::fmt::Error>().is_some());
    /// assert_eq!(tinyio::Error::new(String::from("no luck")).to_string(), "no luck");
    /// ```
    pub fn new<E: Into<Box<dyn StdError + Send + Sync>> + 'static>(error: E) -> Self {
        let mut slot = Some(error);
        if let Some(error) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Error>>() {
            return error.take().expect("just filled");
        }
        let boxed: Box<dyn StdError + Send + Sync> = slot.expect("not taken").into();
        match boxed.downcast::<Error>() {
            Ok(error) => *error,
            Err(other) => Self::from_kind(Kind::Other(other)),
        }
    }

    /// An error with a message and no other payload. See also [`bail!`](crate::bail).
    ///
    /// ```
    /// let err = tinyio::Error::msg(format_args!("bad input {}", 3));
    /// assert_eq!(err.to_string(), "bad input 3");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new(message.to_string())
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

    /// The original error: itself, or the first member of a group.
    fn original(&self) -> &Error {
        if let Kind::Group(errors) = &self.inner().kind { errors[0].original() } else { self }
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
        let kind = &self.original().inner().kind;
        if let Kind::Other(error) = kind { error.downcast_ref() } else { None }
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
        if let Kind::Group(errors) = &self.inner().kind { Some(errors) } else { None }
    }

    /// The chain of coroutines that led to the original error, outermost first, ending at the
    /// coroutine (or thread) where it was raised. Empty for an error that never went through a
    /// loop.
    ///
    /// ```
    /// assert!(tinyio::Error::msg("fresh").trace().is_empty());
    /// ```
    pub fn trace(&self) -> &[Frame] {
        self.original().inner().trace()
    }

    /// Records where the error was raised, unless already known.
    pub(crate) fn raised_at(mut self, at: &'static Location<'static>) -> Self {
        // A bare error stays bare: it was delivered at the suspension point, which its trace
        // names already.
        if let Repr::Full(inner) = &mut self.0
            && inner.frames.is_empty()
        {
            inner.raised_at.get_or_insert(at);
        }
        self
    }

    /// Forgets where the error was raised: for a built-in coroutine, whose frame says where it
    /// is better than a line inside this crate.
    pub(crate) fn placed(mut self) -> Self {
        if let Repr::Full(inner) = &mut self.0 {
            inner.raised_at = None;
        }
        self
    }

    /// Adds the frame of the coroutine the error came out of, and the chain of its waiters
    /// (`trace`, outermost first), in front of the trace it already has.
    /// A bare error moves to the heap here, with a copy of its kind.
    pub(crate) fn traced(self, innermost: Frame, trace: Vec<Frame>) -> Self {
        let mut inner = match self.0 {
            Repr::Full(inner) => inner,
            // A bare error is one of three statics: a cancellation, a timeout, a deadline.
            Repr::Bare(Inner { kind: Kind::Cancelled(why), .. }) => {
                Box::new(Inner::bare(Kind::Cancelled(why.clone())))
            }
            Repr::Bare(Inner { kind: Kind::Timeout, .. }) => Box::new(Inner::bare(Kind::Timeout)),
            Repr::Bare(_) => Box::new(Inner::bare(Kind::Deadline)),
        };
        inner.frames.push(match inner.raised_at.take() {
            Some(at) => Frame { line: at.line(), file: at.file(), ..innermost },
            None => innermost,
        });
        inner.frames.extend(trace.into_iter().rev());
        inner.trace = OnceLock::new();
        Error(Repr::Full(inner))
    }
}

// The source of an error that went through a loop is its trace (the `Inner` of its original
// error, displayed as one line), whose source is the original error's: so reports that print a
// source chain, such as `anyhow`'s, show where the error went.
impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let original = self.original().inner();
        if original.frames.is_empty() { original.kind.source() } else { Some(original) }
    }
}

impl StdError for Inner {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.kind.source()
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frames: Vec<String> = self.trace().iter().map(Frame::to_string).collect();
        write!(f, "in coroutine {}", frames.join(" -> "))
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `{:#}` adds the trace, outermost coroutine first.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner().kind, f)?;
        if f.alternate() { self.write_trace(f) } else { Ok(()) }
    }
}

/// A group lists its members; a single error adds its trace, then its causes as `anyhow`
/// prints them (numbered when there are several).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(errors) = self.group() {
            write!(f, "{self}")?;
            for (i, error) in errors.iter().enumerate() {
                let role = if i == 0 { "original error" } else { "while cancelling" };
                write!(f, "\n\n[{i}] {role}: {error:?}")?;
            }
            return Ok(());
        }
        write!(f, "{}", self.inner().kind)?;
        self.write_trace(f)?;
        let causes: Vec<_> =
            std::iter::successors(self.inner().kind.source(), |&cause| cause.source()).collect();
        for (i, cause) in causes.iter().enumerate() {
            let heading = if i == 0 { "\n\nCaused by:" } else { "" };
            let number = if causes.len() == 1 { String::new() } else { format!("{i}: ") };
            let cause = cause.to_string().replace('\n', "\n       ");
            write!(f, "{heading}\n    {number}{cause}")?;
        }
        Ok(())
    }
}

impl Error {
    /// The trace, a line per frame after a heading; nothing if it is empty.
    fn write_trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.trace().is_empty() {
            write!(f, "\ncoroutine trace, outermost first:")?;
        }
        self.trace().iter().try_for_each(|frame| write!(f, "\n    {frame}"))
    }
}

/// One coroutine (or thread) in an error's [trace](Error::trace): its name and where it was
/// suspended, or, for the last frame, where the error was raised.
///
/// ```
/// use tinyio::Loop;
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

    /// The source file of the suspension point (see [`line`](Frame::line)), as `file!()`
    /// gives it: for a built-in, the file that called it.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[tinyio::coroutine]
    /// fn fails() -> () {
    ///     tinyio::bail!("nope");
    /// }
    ///
    /// let err = tinyio::Loop::new().run(fails()).unwrap_err();
    /// assert_eq!(err.trace()[0].file(), file!());
    ///
    /// let hour = Duration::from_secs(3600);
    /// let err = tinyio::Loop::new().run(tinyio::timeout(fails(), hour)).unwrap_err();
    /// let (timeout, line) = (&err.trace()[0], line!() - 1);
    /// assert_eq!((timeout.name(), timeout.file(), timeout.line()), ("timeout", file!(), line));
    /// ```
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the suspension point: where the coroutine raised, or the `yield_!` it was
    /// suspended at. A coroutine that never ran (cancelled before its first resume) is placed at
    /// its function's definition. A built-in (`sleep`, `timeout`, `run_in_thread`,
    /// `Lock::lock`, ...) is placed where your code called it, never inside this crate.
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
/// use tinyio::Loop;
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

/// What a coroutine body returns on `?`: anything [`Error::new`] takes converts into it,
/// `tinyio::Error` included (unwrapped, not nested).
#[doc(hidden)]
pub struct Raise(pub(crate) Error);

impl<E: Into<Box<dyn StdError + Send + Sync>> + 'static> From<E> for Raise {
    #[track_caller]
    fn from(error: E) -> Self {
        Raise(Error::new(error).raised_at(Location::caller()))
    }
}

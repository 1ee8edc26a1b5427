#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without the `tokio` feature, `from_tokio` does not exist and its link below cannot resolve;
// docs.rs and CI build the docs with every feature, where every link is checked.
#![cfg_attr(not(feature = "tokio"), allow(rustdoc::broken_intra_doc_links))]
// The README is the crate page. Its links point to docs.rs, so that it renders on GitHub and
// crates.io; these definitions of the same labels come first, and Markdown keeps the first
// definition of a label, so rustdoc links to the items themselves (tests/readme.rs checks that
// both lists name the same items).
//! [`Loop`]: struct@Loop
//! [`Loop::run`]: method@Loop::run
//! [`Loop::stall_report`]: method@Loop::stall_report
//! [`StopHandle`]: struct@StopHandle
//! [`Coroutine<T>`]: struct@Coroutine
//! [`Coro<T>`]: tyalias@Coro
//! [`Shared`]: tyalias@Shared
//! [`Shared<T>`]: tyalias@Shared
//! [`background`]: fn@background
//! [`bail!`]: macro@bail
//! [`Error`]: struct@Error
//! [`Error::is_timeout`]: method@Error::is_timeout
//! [`Error::is_stopped`]: method@Error::is_stopped
//! [`ErrorGroup`]: enum@ErrorGroup
//! [`ErrorGroup::Auto`]: variant@ErrorGroup::Auto
//! [`ErrorGroup::Never`]: variant@ErrorGroup::Never
//! [`ErrorGroup::Always`]: variant@ErrorGroup::Always
//! [`sleep`]: fn@sleep
//! [`sleep_until`]: fn@sleep_until
//! [`timeout`]: fn@timeout
//! [`run_in_thread`]: fn@run_in_thread
//! [`try_run_in_thread`]: fn@try_run_in_thread
//! [`ThreadPool`]: struct@ThreadPool
//! [`thread::is_cancelled`]: fn@thread::is_cancelled
//! [`thread::check`]: fn@thread::check
//! [`thread::sleep`]: fn@thread::sleep
//! [`Event`]: struct@Event
//! [`Semaphore`]: struct@Semaphore
//! [`Lock`]: struct@Lock
//! [`Barrier`]: struct@Barrier
//! [`as_completed`]: fn@as_completed
//! [`isolate`]: fn@isolate
//! [`copy`]: fn@copy
//! [`from_future`]: fn@from_future
//! [`to_future`]: fn@to_future
//! [`from_tokio`]: fn@from_tokio
//! [`Stall`]: struct@Stall
//! [`Stall::joining`]: method@Stall::joining
//! [`channel`]: fn@channel
//! [`Sender`]: struct@Sender
//! [`Receiver`]: struct@Receiver
//! [`cancellable`]: fn@cancellable
//! [`CancelHandle`]: struct@CancelHandle
//! [`race`]: fn@race
#![doc = include_str!("../README.md")]

// Lets `#[tinyio::coroutine]` (which names `::tinyio`) work inside this crate too.
extern crate self as tinyio;

mod arrivals;
mod cancel;
mod channel;
mod combinators;
mod coro;
mod error;
mod event_loop;
mod interop;
mod run;
mod site;
mod stall;
mod sync;
pub mod thread;
mod time;
mod timers;
mod wake;
mod yieldable;

/// A small deterministic generator for the unit tests: each call gives a number in `0..n`.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

pub use crate::cancel::{
    CancelHandle, Race2, Race3, Race4, Race5, Race6, Race7, Race8, Race9, Race10, Race11, Race12,
    Racers, cancellable, race,
};
pub use crate::channel::{
    Receiver, Receiving, SendError, Sender, Sending, TryRecvError, TrySendError, channel,
};
pub use crate::combinators::{AsCompleted, as_completed, copy, isolate};
pub use crate::coro::{Coro, Coroutine, Shared, SharedCoroutine};
pub use crate::error::{Error, ErrorGroup, Frame};
pub use crate::event_loop::{Loop, StopHandle};
pub use crate::event_loop::{ToFuture, to_future};
pub use crate::interop::from_future;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use crate::interop::from_tokio;
pub use crate::stall::{Stall, Suspended};
pub use crate::sync::{Barrier, Event, Lock, LockGuard, Semaphore, SemaphoreGuard};
#[doc(inline)]
pub use crate::thread::{ThreadPool, run_in_thread, try_run_in_thread};
pub use crate::time::{sleep, sleep_until, timeout};
pub use crate::yieldable::{Background, Yieldable, background};

/// Turns a function into a coroutine: `#[coroutine] fn f(args) -> T` becomes
/// `fn f(args) -> Coroutine<T>`, whose body runs when a loop schedules it.
///
/// Inside, `yield_!(x)` suspends until `x` (anything [`Yieldable`]) is done and evaluates to its
/// output; `yield_!()` just lets the others run. `?` raises any error, anything that converts
/// into `Box<dyn std::error::Error + Send + Sync>` (the loop then cancels everything; see
/// [`Error`]); `try_yield!(x)` gives a `Result` instead, so a coroutine can see its own
/// cancellation and clean up before propagating it.
///
/// Write it with its path, `#[tinyio::coroutine]`: a bare `#[coroutine]`, even after
/// `use tinyio::coroutine`, names Rust's own unstable attribute (error E0659, then that
/// attribute's errors), and this one never runs.
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
/// assert_eq!(Loop::new().run(add_one(1)).unwrap(), 2);
/// ```
///
/// The expansion names the runtime crate as your Cargo.toml does, so a renamed dependency
/// (`tio = { package = "tinyio-loop", version = "0.1" }`, then `#[tio::coroutine]`) works. Where
/// the crate is reached some other way, such as a re-export, give its path (without quotes) with
/// `crate = path`:
///
/// ```
/// mod runtime {
///     pub use tinyio::*;
/// }
///
/// #[tinyio::coroutine(crate = runtime)]
/// fn two() -> u8 {
///     yield_!();
///     2
/// }
///
/// assert_eq!(tinyio::Loop::new().run(two()).unwrap(), 2);
/// ```
///
/// It is equivalent to writing the coroutine by hand through the hidden entry points that the
/// attribute calls (shown for reading, not as API):
///
/// ```
/// fn add_one(x: u64) -> tinyio::Coroutine<'static, u64> {
///     tinyio::__private::coroutine(
///         &tinyio::__private::Site { name: "add_one", file: file!(), line: line!() },
///         move |co| async move {
///             tinyio::__private::suspend(&co, (), line!()).await?;
///             Ok(x + 1)
///         },
///     )
/// }
///
/// assert_eq!(tinyio::Loop::new().run(add_one(1)).unwrap(), 2);
/// ```
pub use tinyio_macros::coroutine;

/// Suspends the coroutine until the value is done, and evaluates to its output. Only valid
/// directly inside a [`#[coroutine]`](coroutine) function, which rewrites it.
///
/// ```compile_fail
/// fn not_a_coroutine() {
///     tinyio::yield_!();
/// }
/// ```
#[macro_export]
macro_rules! yield_ {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`yield_!` can only be used directly in a `#[tinyio::coroutine]` function, not in a closure, async block or nested function"
        )
    };
}

/// Like `yield_!`, but evaluates to `Result<Output, tinyio::Error>`: `Err` when the loop
/// cancels this coroutine (or a [`timeout`] expires), so that it can clean up first. It must then
/// propagate the error; a coroutine that yields again or returns a value instead is reported.
///
/// ```compile_fail
/// fn not_a_coroutine() {
///     let _ = tinyio::try_yield!();
/// }
/// ```
#[macro_export]
macro_rules! try_yield {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`try_yield!` can only be used directly in a `#[tinyio::coroutine]` function, not in a closure, async block or nested function"
        )
    };
}

// Not public API: what `#[coroutine]` expands to.
#[doc(hidden)]
pub mod __private {
    pub use crate::coro::annotated as coroutine;
    pub use crate::coro::{Co, NoReturnType, Submission, unit};
    pub use crate::error::Raise;
    pub use crate::site::Site;
    pub use crate::yieldable::suspend;
}

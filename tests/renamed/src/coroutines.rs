//! Coroutines written against the runtime renamed to `tio`.

use std::time::Duration;

/// The runtime again, under a path of this crate, for `crate = path`.
pub mod runtime {
    pub use tio::*;
}

/// Waits, then adds one: `yield_!` and `?` through the renamed crate.
#[tio::coroutine]
pub fn add_one(x: u64) -> u64 {
    yield_!(tio::sleep(Duration::from_millis(1)));
    let parsed: u64 = "1".parse()?;
    x + parsed
}

/// Gathers two, and sees its own `try_yield!`.
#[tio::coroutine]
pub fn both(x: u64) -> (u64, u64) {
    let checked = try_yield!(add_one(x))?;
    yield_!((add_one(checked), add_one(x)))
}

/// Names the runtime by a path of this crate.
#[tio::coroutine(crate = self::runtime)]
pub fn through_path(x: u64) -> u64 {
    yield_!(add_one(x)) * 10
}

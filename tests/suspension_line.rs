//! An error's trace gives, for each coroutine it passed through, the line of the `yield_!` (or
//! `try_yield!`) that was waiting: the line of the macro's name, however the call is written.

use tinyio::{Error, Loop};

/// Raised with the line its caller passes.
#[derive(Debug, thiserror::Error)]
#[error("raised for line {0}")]
struct At(u32);

#[tinyio::coroutine]
fn fails(line: u32) -> () {
    yield_!();
    Err(At(line))?
}

/// Checks that the outermost frame is at the line that `fails` was given.
fn check(err: Error) {
    let at = err.downcast_ref::<At>().expect("the error is `At`");
    assert_eq!(err.trace()[0].line(), at.0, "{err}");
}

#[tinyio::coroutine]
fn bare() -> () {
    yield_!(fails(line!()));
}

#[tinyio::coroutine]
fn qualified_inside_another_macro() -> () {
    assert_eq!(tinyio::yield_!(fails(line!())), ());
}

#[rustfmt::skip]
#[tinyio::coroutine]
fn over_several_lines() -> () {
    yield_!(
        fails(line!() - 1)
    );
}

#[tinyio::coroutine]
fn with_try_yield() -> () {
    try_yield!(fails(line!()))?;
}

mod imported {
    #[tinyio::coroutine]
    pub(super) fn run() -> () {
        ::tinyio::yield_!(super::fails(line!()));
    }
}

#[test]
fn trace_lines_are_the_users() {
    let lp = Loop::new();
    check(lp.run(bare()).unwrap_err());
    check(lp.run(qualified_inside_another_macro()).unwrap_err());
    check(lp.run(over_several_lines()).unwrap_err());
    check(lp.run(with_try_yield()).unwrap_err());
    check(lp.run(imported::run()).unwrap_err());
}

//! A review of the sixth round: the nested-run check of `copy` and `as_completed`, and the one
//! failure walk.

mod common;

use common::within;
use tinyio::{Event, Loop, copy, from_future, to_future};

#[tinyio::coroutine]
fn waits_then(event: Event, x: u64) -> u64 {
    yield_!(event.wait());
    x
}

#[tinyio::coroutine]
fn sets_after_a_pause(event: Event) -> () {
    yield_!();
    event.set();
}

/// Receives a copy in a run that this one polls as a foreign future: that run hands back to
/// this one whenever it waits, so this one goes on, makes the output, and wakes it.
#[tinyio::coroutine]
fn copy_into_a_polled_run() -> u64 {
    let event = Event::new();
    let copied = yield_!(copy(waits_then(event.clone(), 7)));
    let (received, ()) = yield_!((from_future(to_future(copied)), sets_after_a_pause(event)));
    received?
}

#[test]
fn a_copy_received_by_a_run_polled_inside_its_maker_arrives() {
    assert_eq!(within(30, || Loop::new().run(copy_into_a_polled_run())).unwrap(), 7);
}

#[tinyio::coroutine]
fn receives_in_a_loop_of_its_own(copied: tinyio::Coro<u64>) -> u64 {
    Loop::new().run(copied)?
}

/// The same, but the polled run blocks in a `Loop::run` of its own: that blocks the maker too.
#[tinyio::coroutine]
fn copy_into_a_loop_run_by_a_polled_run() -> u64 {
    let copied = yield_!(copy(waits_then(Event::new(), 7)));
    yield_!(from_future(to_future(receives_in_a_loop_of_its_own(copied))))?
}

#[test]
fn a_copy_received_by_a_loop_blocking_a_run_polled_inside_its_maker_raises() {
    let message = within(30, || {
        Loop::new().run(copy_into_a_loop_run_by_a_polled_run()).unwrap_err().to_string()
    });
    assert!(message.contains("run in a loop that this one runs inside"), "{message}");
}

//! A senior pass over the round that shrank the runtime: a wait given up on before it starts
//! leaves its leaves unstarted, and another waiter of one of them (a `Shared`) still sees it run.

mod common;

use std::time::Duration;

use common::{ms, within};
use tinyio::{Loop, Shared, cancellable, timeout};

/// Waits on `wait`: resumed in the round after it was made.
#[tinyio::coroutine]
fn waits(wait: Shared<()>) -> u32 {
    yield_!(wait);
    1
}

/// A leaf left unstarted by a zero timeout, then waited on by another coroutine in the same
/// round, is started for that one: the stop of the timeout leaves it to its other waiter, and
/// nobody else would ever poll it.
#[test]
fn a_leaf_left_unstarted_by_a_wait_given_up_on_starts_for_its_other_waiter() {
    let out = within(20, || {
        let slept = tinyio::sleep(ms(1)).share();
        // The timeout files the leaf, then `waits` in the same round, before the next round's
        // stop of the timeout.
        Loop::new().run((timeout(slept.clone(), Duration::ZERO), waits(slept))).unwrap()
    });
    assert_eq!(out, (None, 1));
}

/// The same with a handle cancelled before the run.
#[test]
fn a_leaf_left_unstarted_by_a_cancelled_handle_starts_for_its_other_waiter() {
    let out = within(20, || {
        let slept = tinyio::sleep(ms(1)).share();
        let (work, handle) = cancellable(slept.clone());
        handle.cancel();
        Loop::new().run((work, waits(slept))).unwrap()
    });
    assert_eq!(out, (None, 1));
}

//! A review of the sixth round: which nested runs block the maker of a `copy`, and the one
//! failure walk meeting a panic.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use common::{CountDrops, head_start, within};
use tinyio::{Event, Loop, copy, from_future, isolate, sleep, timeout, to_future};

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

// --- A panic in a clean-up while a timeout stops its work ---------------------------------------

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("clean-up failed");
    }
}

#[tinyio::coroutine]
fn panics_when_stopped(guard: CountDrops) -> () {
    let (_guard, _panics) = (guard, PanicsOnDrop);
    yield_!(sleep(Duration::from_secs(3600)));
}

/// Holds its sleep in its own entry (a held leaf).
#[tinyio::coroutine]
fn sleeps(guard: CountDrops) -> () {
    let _guard = guard;
    yield_!(sleep(Duration::from_secs(3600)));
}

#[tinyio::coroutine]
fn waits_on(guard: CountDrops, shared: tinyio::Shared<()>) -> () {
    let _guard = guard;
    yield_!(shared);
}

#[tinyio::coroutine]
fn waits_for(guard: CountDrops, event: Event) -> () {
    let _guard = guard;
    yield_!(event.wait());
}

#[tinyio::coroutine]
fn work(drops: Rc<Cell<usize>>) -> () {
    let guard = || CountDrops(drops.clone());
    let shared = sleeps(guard()).share();
    let never = Event::new();
    let _ = yield_!((
        sleeps(guard()),
        panics_when_stopped(guard()),
        waits_on(guard(), shared.clone()),
        waits_on(guard(), shared),
        isolate(waits_for(guard(), never)),
    ));
}

#[tinyio::coroutine]
fn work_beside_a_timeout(drops: Rc<Cell<usize>>) -> () {
    let guard = || CountDrops(drops.clone());
    let never = Event::new();
    let _ = yield_!((
        timeout(work(drops.clone()), head_start()),
        sleeps(guard()),
        isolate((sleeps(guard()), waits_for(guard(), never))),
    ));
}

/// The timeout's walk meets a panic half-way; the run then crashes through the walk of a failed
/// scope, which finds what the timeout had not stopped yet, held leaves and isolates included:
/// every coroutine is cleaned up once, and the panic comes out of `run`.
#[test]
fn a_panic_in_a_clean_up_mid_timeout_cleans_up_everything_else_once() {
    let drops = Rc::new(Cell::new(0));
    let lp = Loop::new();
    let run = catch_unwind(AssertUnwindSafe(|| lp.run(work_beside_a_timeout(drops.clone()))));
    let payload = run.expect_err("the clean-up's panic resumes");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"clean-up failed"));
    assert_eq!(drops.get(), 9, "every coroutine's clean-up runs, once");
}

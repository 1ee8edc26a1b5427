//! No byte leaks when things go wrong: live heap bytes, counted by this binary's own global
//! allocator, are back to where they were after runs that fail while destructors panic.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::forever;
use tinyio::{Loop, sleep, timeout};

#[global_allocator]
static COUNTING: common::Counting = common::Counting;

/// Live bytes on this thread after `scenario` ran `times` times, minus before; one run first
/// warms up what is made once per thread (the panic machinery, thread-locals).
fn leaked_by(times: usize, scenario: impl Fn()) -> isize {
    scenario();
    let before = common::live();
    for _ in 0..times {
        scenario();
    }
    common::live() - before
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor panicked");
    }
}

#[tinyio::coroutine]
fn bad_cleanup() -> () {
    let _bomb = PanicOnDrop;
    loop {
        yield_!(sleep(Duration::from_secs(3600)));
    }
}

#[tinyio::coroutine]
fn fails() -> () {
    yield_!();
    tinyio::bail!("the original error");
}

/// Runs `f` with the panic messages of the scenarios' expected panics silenced, one test at a
/// time. The hook is the process's, installed once and never swapped (tests swapping it beside
/// each other would restore each other's), and it stays quiet only for the expected message.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: std::sync::Once = std::sync::Once::new();
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if common::payload_str(info.payload()) != "destructor panicked" {
                default(info);
            }
        }));
    });
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f()
}

#[test]
fn a_destructor_panicking_during_cancellation_leaks_nothing() {
    let leaked = quietly(|| {
        leaked_by(20, || {
            let run = (forever(()), bad_cleanup(), bad_cleanup(), fails());
            let outcome = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run)));
            assert!(outcome.is_err(), "the destructor's panic resumes out of `run`");
        })
    });
    assert_eq!(leaked, 0, "bytes leaked by 20 runs");
}

/// Starts `bad_cleanup` in the background first, so that the timeout stops a coroutine that is
/// suspended (and holds its bomb), not one that never started.
#[tinyio::coroutine]
fn times_out() -> Option<()> {
    let started = bad_cleanup().share();
    yield_!(tinyio::background(started.clone()));
    yield_!();
    yield_!(timeout(started, Duration::ZERO))
}

#[test]
fn a_destructor_panicking_when_a_timeout_stops_it_leaks_nothing() {
    let leaked = quietly(|| {
        leaked_by(20, || {
            let outcome = catch_unwind(AssertUnwindSafe(|| Loop::new().run(times_out())));
            assert!(outcome.is_err(), "the destructor's panic resumes out of `run`");
        })
    });
    assert_eq!(leaked, 0, "bytes leaked by 20 runs");
}

#[test]
fn a_failed_run_leaks_nothing() {
    let leaked = leaked_by(20, || {
        let error = Loop::new().run((forever(()), forever(()), fails())).unwrap_err();
        assert_eq!(error.to_string(), "the original error");
    });
    assert_eq!(leaked, 0, "bytes leaked by 20 runs");
}

/// Waits on an event nobody sets: the one leaf it yields is held in its entry.
#[tinyio::coroutine]
fn waits_for_nothing(event: tinyio::Event) -> () {
    yield_!(event.wait());
}

/// Times out `times` waits, one after the other, each stopping a coroutine that holds its leaf.
#[tinyio::coroutine]
fn times_out_held_waits(times: usize) -> () {
    let event = tinyio::Event::new();
    for _ in 0..times {
        // Started first, so that the timeout stops it while it holds its wait.
        let waiting = waits_for_nothing(event.clone()).share();
        yield_!(tinyio::background(waiting.clone()));
        yield_!();
        let out = yield_!(timeout(waiting, Duration::ZERO));
        assert!(out.is_none());
    }
}

/// The bytes a loop keeps after one run of `times` timeouts: the room of its table and queues,
/// which is as large as the run's table grew.
fn kept_after(times: usize) -> isize {
    let lp = Loop::new();
    let before = common::live();
    lp.run(times_out_held_waits(times)).unwrap();
    common::live() - before
}

#[test]
fn timeouts_one_after_the_other_reuse_the_table_slots_of_what_they_stopped() {
    // A handful of coroutines are in the table at any time, however many timeouts run: the
    // table, and the room the loop keeps of it, must not grow with their number.
    let (few, many) = (kept_after(100), kept_after(10_000));
    assert!(many <= few + 4096, "after 100 timeouts the loop keeps {few} B, after 10000 {many} B");
}

/// Holds a bomb, and yields again when it is told to stop instead of propagating the error: the
/// loop ends it, and its bomb goes off there.
#[tinyio::coroutine]
fn stubborn() -> () {
    let _bomb = PanicOnDrop;
    loop {
        let _ = tinyio::try_yield!(sleep(Duration::from_secs(3600)));
    }
}

#[tinyio::coroutine]
fn stubborn_times_out() -> Option<()> {
    let started = stubborn().share();
    yield_!(tinyio::background(started.clone()));
    yield_!();
    yield_!(timeout(started, Duration::ZERO))
}

#[tinyio::coroutine]
fn stubborn_in_a_failed_isolate() -> () {
    let out = yield_!(tinyio::isolate((stubborn(), fails())));
    assert!(out.is_err());
}

#[test]
fn a_destructor_panicking_as_the_loop_ends_a_misbehaving_coroutine_leaks_nothing() {
    let leaked = quietly(|| {
        leaked_by(20, || {
            for outcome in [
                catch_unwind(AssertUnwindSafe(|| Loop::new().run(stubborn_times_out()).map(drop))),
                catch_unwind(AssertUnwindSafe(|| Loop::new().run((stubborn(), fails())).map(drop))),
                catch_unwind(AssertUnwindSafe(|| Loop::new().run(stubborn_in_a_failed_isolate()))),
            ] {
                assert!(outcome.is_err(), "the destructor's panic resumes out of `run`");
            }
        })
    });
    assert_eq!(leaked, 0, "bytes leaked by 20 runs of each");
}

//! A tester's pass over the rewritten leaves and failure path: races decided in one round,
//! nested, timed out or failing while their losers are stopped; hand-overs (`copy`,
//! `as_completed`) whose inputs fail, are cancelled or never run.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use common::{DropGuard, dropped, forever, ms, names, within};
use tinyio::{Event, Loop, Race2, as_completed, copy, isolate, race, sleep, timeout};

#[tinyio::coroutine]
fn value<T>(x: T) -> T {
    yield_!();
    x
}

#[tinyio::coroutine]
fn after<T>(pauses: u32, x: T) -> T {
    for _ in 0..pauses {
        yield_!();
    }
    x
}

#[tinyio::coroutine]
fn mirror(name: &'static str, millis: u64) -> &'static str {
    yield_!(sleep(ms(millis)));
    name
}

/// Says it has started, then returns when stopped, instead of propagating its cancellation.
#[tinyio::coroutine]
fn stubborn(started: Event) -> () {
    started.set();
    let _ = try_yield!(sleep(Duration::from_secs(3600)));
}

/// A loser that misbehaves when the race stops it fails the run with a trace through the
/// coroutines that waited on it, as one stopped by a `timeout` is (see `tests/time.rs`): the
/// caller of the race, the race, down to the loser.
#[test]
fn a_loser_misbehaving_when_stopped_is_traced_through_the_race() {
    #[tinyio::coroutine]
    fn checks() -> () {
        let started = Event::new();
        let (index, ()) = yield_!(race(vec![stubborn(started.clone()), started.wait()]));
        unreachable!("the race gave {index}");
    }
    let err = within(30, || Loop::new().run(checks()).unwrap_err());
    let text = format!("{err:?}");
    assert!(text.contains("did not respond properly to cancellation"), "{text}");
    let names = names(&err);
    assert_eq!(names.last(), Some(&"stubborn"), "{text}");
    assert_eq!(names.first(), Some(&"checks"), "{text}");
    assert!(names.contains(&"race"), "{text}");
}

/// The same inside an isolate: the error it gives back is traced up to its boundary.
#[test]
fn a_loser_misbehaving_in_an_isolate_is_traced_through_the_race() {
    #[tinyio::coroutine]
    fn isolated() -> tinyio::Error {
        let started = Event::new();
        let losing = vec![stubborn(started.clone()), started.wait()];
        yield_!(isolate(race(losing))).expect_err("the loser misbehaves")
    }
    let err = within(30, || Loop::new().run(isolated()).unwrap());
    assert_eq!(names(&err), ["race", "race", "stubborn"], "{err:?}");
}

/// A completion handed out by `copy` whose coroutine was cancelled by a crash of its loop
/// raises where it is awaited, in another loop, rather than wait forever.
#[test]
fn a_copy_cancelled_by_a_crash_raises_in_another_loop() {
    #[tinyio::coroutine]
    fn stash(slot: Rc<RefCell<Option<tinyio::Coro<u32>>>>) -> () {
        let receive = yield_!(copy(value(5)));
        *slot.borrow_mut() = Some(receive);
        tinyio::bail!("the first loop fails");
    }
    let err = within(30, || {
        let slot = Rc::new(RefCell::new(None));
        let failed = Loop::new().run(stash(slot.clone())).unwrap_err();
        assert_eq!(failed.to_string(), "the first loop fails");
        let receive = slot.borrow_mut().take().expect("stashed");
        Loop::new().run(receive).unwrap_err().to_string()
    });
    assert!(err.contains("did not finish"), "{err}");
}

/// The same for `as_completed`: every completion of an input cancelled by a crash raises a
/// cancellation (before this round, each waited forever).
#[test]
fn as_completed_inputs_cancelled_by_a_crash_raise_in_another_loop() {
    #[tinyio::coroutine]
    fn stash(slot: Rc<RefCell<Option<tinyio::AsCompleted<'static, u32>>>>) -> () {
        let completions = yield_!(as_completed(vec![value(1), value(2)]));
        *slot.borrow_mut() = Some(completions);
        tinyio::bail!("the first loop fails");
    }
    let errs = within(30, || {
        let slot = Rc::new(RefCell::new(None));
        let failed = Loop::new().run(stash(slot.clone())).unwrap_err();
        assert_eq!(failed.to_string(), "the first loop fails");
        let completions = slot.borrow_mut().take().expect("stashed");
        let lp = Loop::new();
        completions.map(|next| lp.run(next).unwrap_err()).collect::<Vec<_>>()
    });
    assert_eq!(errs.len(), 2);
    assert!(errs.iter().all(tinyio::Error::is_cancelled), "{errs:?}");
}

/// A completion of an `as_completed` input that was cancelled while running raises a
/// cancellation that names `as_completed`, not `copy`.
#[test]
fn as_completed_input_cancelled_while_running_raises_a_cancellation() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn guarded(started: Event) -> u32 {
        started.set();
        yield_!(forever(DropGuard(&GUARDS)));
        0
    }
    #[tinyio::coroutine]
    fn inside(slot: Rc<RefCell<Option<tinyio::AsCompleted<'static, u32>>>>) -> () {
        let started = Event::new();
        let completions = yield_!(as_completed(vec![guarded(started.clone())]));
        *slot.borrow_mut() = Some(completions);
        yield_!(started.wait());
        tinyio::bail!("the isolate fails");
    }
    #[tinyio::coroutine]
    fn checks() -> String {
        let slot = Rc::new(RefCell::new(None));
        let failed = yield_!(isolate(inside(slot.clone()))).unwrap_err();
        assert_eq!(failed.to_string(), "the isolate fails");
        let mut completions = slot.borrow_mut().take().expect("stashed");
        let next = completions.next().expect("one input");
        // Its failure is a failure where it is awaited: isolated here, to look at it.
        let err = yield_!(isolate(next)).expect_err("its input was cancelled");
        assert!(err.is_cancelled(), "{err:?}");
        err.to_string()
    }
    let err = within(30, || Loop::new().run(checks()).unwrap());
    assert_eq!(dropped(&GUARDS), 1);
    assert!(!err.contains("copied"), "{err}");
}

/// A race timed out from outside stops its wait and every runner, and the timeout gives
/// `None`; the loop goes on.
#[test]
fn a_race_timed_out_from_outside_stops_every_runner() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn checks() -> (Option<(usize, ())>, usize, u32) {
        let runners = vec![forever(DropGuard(&GUARDS)), forever(DropGuard(&GUARDS))];
        let timed = yield_!(timeout(race(runners), ms(5)));
        let after = yield_!(value(3));
        (timed, dropped(&GUARDS), after)
    }
    assert_eq!(within(30, || Loop::new().run(checks()).unwrap()), (None, 2, 3));
}

/// A loser that someone outside the race also waits on is not stopped: it goes on, and its
/// other waiter gets its output.
#[test]
fn a_shared_loser_that_others_wait_on_goes_on() {
    #[tinyio::coroutine]
    fn checks() -> ((usize, &'static str), &'static str) {
        let slow = mirror("slow", 20).share();
        let fast = mirror("fast", 1);
        yield_!((race(vec![slow.clone(), fast.share()]), slow))
    }
    let out = within(30, || Loop::new().run(checks()).unwrap());
    assert_eq!(out, ((1, "fast"), "slow"));
}

/// An inner race and the outer race it runs in decided in the same round: the outer winner
/// is given, and the inner race is stopped or finished without panicking over its winner.
#[test]
fn inner_and_outer_races_decided_in_one_round() {
    #[tinyio::coroutine]
    fn checks() -> Vec<Race2<(usize, u32), u32>> {
        let mut seen = Vec::new();
        for pauses in 0..3 {
            let inner = race(vec![value(1), value(2)]);
            seen.push(yield_!(race((inner, after(pauses, 3)))));
        }
        seen
    }
    let out = within(30, || Loop::new().run(checks()).unwrap());
    for won in out {
        assert!(matches!(won, Race2::First((0, 1)) | Race2::Second(3)), "{won:?}");
    }
}

/// Runners that finish at once, all in the first round: the first in order wins, whatever
/// the race is made of.
#[test]
fn runners_that_all_finish_at_once() {
    let lp = Loop::new();
    assert_eq!(lp.run(race(vec![(), (), ()])).unwrap(), (0, ()));
    let done = value(7).share();
    assert_eq!(lp.run(done.clone()).unwrap(), 7);
    assert_eq!(lp.run(race([done.clone(), done])).unwrap(), (0, 7));
    assert_eq!(lp.run(race(((), value(1u8)))).unwrap(), Race2::First(()));
}

/// A runner that cancels the `cancellable` around its own race, then wins: the handle stops
/// the work or comes too late, and either way nothing panics over the race's winner.
#[test]
fn a_runner_cancels_the_cancellable_its_race_runs_in() {
    #[tinyio::coroutine]
    fn presses(slot: Rc<RefCell<Option<tinyio::CancelHandle>>>, then_wins: bool) -> u32 {
        yield_!();
        slot.borrow().as_ref().expect("filled before the run").cancel();
        if !then_wins {
            yield_!(forever(()));
        }
        1
    }
    for then_wins in [false, true] {
        let out = within(30, move || {
            let slot = Rc::new(RefCell::new(None));
            let runners = vec![presses(slot.clone(), then_wins), after(1, 2)];
            let (work, handle) = tinyio::cancellable(race(runners));
            *slot.borrow_mut() = Some(handle);
            Loop::new().run(work).unwrap()
        });
        match then_wins {
            false => assert!(matches!(out, None | Some((1, 2))), "{out:?}"),
            true => assert!(matches!(out, None | Some((0, 1) | (1, 2))), "{out:?}"),
        }
    }
}

/// Many `to_future` timers due at the same instant each wake their own task, and futures
/// dropped while their timers are filed hinder none of the others.
#[test]
fn to_future_timers_due_at_one_instant_all_fire() {
    within(30, || {
        let at = std::time::Instant::now() + ms(20);
        futures::executor::block_on(async {
            for _ in 0..10 {
                let mut dropped = Box::pin(tinyio::to_future(tinyio::sleep_until(at)));
                // Pending with its timer filed, unless this machine took 20 ms to get here:
                // either way it must hinder none of the others.
                let _ = futures::poll!(dropped.as_mut());
            }
            // More than `join_all` polls through one waker: each future has its own.
            let all = (0..50).map(|_| tinyio::to_future(tinyio::sleep_until(at)));
            let outs = futures::future::join_all(all).await;
            assert!(outs.iter().all(Result::is_ok));
            assert!(std::time::Instant::now() >= at);
        });
    });
}

//! `cancellable` (cancel on demand) and `race` (the first to finish wins, the others are
//! cancelled): both are the timed wait of `timeout`, ended by a handle instead of a deadline.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::{CountDrops, DropGuard, dropped, forever, ms, payload_str, within};
use tinyio::{CancelHandle, Event, Loop, cancellable, race, run_in_thread, sleep, thread, timeout};

#[tinyio::coroutine]
fn value<T>(x: T) -> T {
    yield_!();
    x
}

/// Sets `ran` if its body ever runs.
#[tinyio::coroutine]
fn marks(ran: Rc<Cell<bool>>) -> u32 {
    ran.set(true);
    yield_!();
    7
}

#[tinyio::coroutine]
fn press(handle: CancelHandle) -> () {
    yield_!();
    handle.cancel();
}

#[test]
fn cancel_before_the_work_starts_gives_none_and_the_work_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let (work, handle) = cancellable(marks(ran.clone()));
    handle.cancel();
    assert!(handle.is_cancelled());
    assert_eq!(Loop::new().run(work).unwrap(), None);
    assert!(!ran.get(), "the work started");
}

/// Waits on a sleep until cancelled; tells whether it saw a cancellation error (and not a
/// timeout) at its `yield_!`.
#[tinyio::coroutine]
fn sleeps_until_cancelled(saw: Rc<Cell<Option<bool>>>, drops: Rc<Cell<usize>>) -> () {
    let _guard = CountDrops(drops);
    let slept = try_yield!(sleep(Duration::from_secs(60)));
    let error = slept.expect_err("slept 60 s");
    saw.set(Some(error.is_cancelled() && !error.is_timeout()));
    Err(error)?
}

#[test]
fn cancel_while_the_work_runs_resumes_it_with_a_cancellation() {
    let (saw, drops) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(0)));
    let (work, handle) = cancellable(sleeps_until_cancelled(saw.clone(), drops.clone()));
    let out = Loop::new().run((work, press(handle.clone()))).unwrap();
    assert_eq!(out, (None, ()));
    assert_eq!(saw.get(), Some(true));
    assert_eq!(drops.get(), 1);
    handle.cancel(); // twice: nothing happens
    assert!(handle.is_cancelled());
}

#[test]
fn cancel_after_the_work_finished_or_twice_has_no_effect() {
    #[tinyio::coroutine]
    fn then_press(work: tinyio::Coro<Option<u32>>, handle: CancelHandle) -> Option<u32> {
        let out = yield_!(work);
        handle.cancel();
        handle.cancel();
        yield_!(sleep(ms(1))); // the run takes the wake-ups in, and ignores them
        out
    }
    let (work, handle) = cancellable(value(5));
    let out = Loop::new().run(then_press(work, handle.clone())).unwrap();
    assert_eq!(out, Some(5));
    assert!(handle.is_cancelled());
}

#[test]
fn cancel_from_another_thread_while_the_work_waits_on_a_sleep() {
    #[tinyio::coroutine]
    fn waits(started: mpsc::Sender<()>, stopped: Arc<AtomicBool>) -> () {
        let _guard = common::DropGuard(&STOPPED_GUARD);
        started.send(()).unwrap();
        let slept = try_yield!(sleep(Duration::from_secs(60)));
        stopped.store(slept.as_ref().is_err_and(|e| e.is_cancelled()), SeqCst);
        slept?
    }
    static STOPPED_GUARD: AtomicUsize = AtomicUsize::new(0);
    let out = within(30, || {
        let (started, on_start) = mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let (work, handle) = cancellable(waits(started, stopped.clone()));
        let button = std::thread::spawn(move || {
            on_start.recv().unwrap();
            handle.cancel();
        });
        let out = Loop::new().run(work).unwrap();
        button.join().unwrap();
        (out, stopped.load(SeqCst))
    });
    assert_eq!(out, (None, true));
    assert_eq!(dropped(&STOPPED_GUARD), 1);
}

#[test]
fn cancel_from_a_coroutine_of_another_loop() {
    #[tinyio::coroutine]
    fn nested_press(handle: CancelHandle) -> () {
        yield_!();
        Loop::new().run(press(handle))?;
    }
    let out = within(30, || {
        let (work, handle) = cancellable(forever(()));
        Loop::new().run((work, nested_press(handle))).unwrap()
    });
    assert_eq!(out, (None, ()));
}

/// The work's coroutines that someone else waits on go on; only what the work alone waited on
/// is stopped.
#[test]
fn cancel_leaves_what_others_wait_on_alone() {
    #[tinyio::coroutine]
    fn shared_nap() -> u32 {
        yield_!(sleep(ms(5)));
        3
    }
    #[tinyio::coroutine]
    fn both(nap: tinyio::Shared<u32>) -> (Option<u32>, u32) {
        let (work, handle) = cancellable(nap.clone());
        let (cancelled, (), out) = yield_!((work, press(handle), nap));
        (cancelled, out)
    }
    let out = Loop::new().run(both(shared_nap().share())).unwrap();
    assert_eq!(out, (None, 3));
}

/// A handle armed in one run of a loop, cancelled during a later run of the same loop (whose
/// tables start afresh, so the old wake token names a slot in use again), does nothing there.
#[test]
fn a_handle_from_an_earlier_run_does_not_touch_the_next() {
    #[tinyio::coroutine]
    fn victim(handle: CancelHandle) -> u32 {
        let ((), ()) = yield_!((sleep(ms(20)), press(handle)));
        1
    }
    let lp = Loop::new();
    let (work, handle) = cancellable(value(2));
    assert_eq!(lp.run(work).unwrap(), Some(2));
    assert_eq!(lp.run(victim(handle)).unwrap(), 1);
}

#[test]
fn a_handle_whose_loop_is_gone_can_still_be_cancelled() {
    let (work, handle) = cancellable(forever(()));
    let (stopper, stop) = cancellable(sleep(ms(1)));
    {
        let lp = Loop::new();
        // The work is stopped by an outer timeout: its handle never fires.
        let out = lp.run((timeout(work, ms(1)), stopper)).unwrap();
        assert_eq!(out, (None, Some(())));
    }
    handle.cancel();
    stop.cancel();
    assert!(handle.is_cancelled() && stop.is_cancelled());
}

#[test]
fn a_stall_report_names_cancellable_and_race() {
    #[tinyio::coroutine]
    fn waits(event: Event) -> (Option<()>, (usize, ())) {
        let (work, _handle) = cancellable(event.wait());
        yield_!((work, race([event.wait(), event.wait()])))
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let event = Event::new();
    let lp = Loop::new().stall_report(ms(10), {
        let (seen, event) = (seen.clone(), event.clone());
        move |stall| {
            let mut seen = seen.lock().unwrap();
            for suspended in stall.coroutines() {
                let waits_on = suspended.waits_on().iter().map(|s| s.to_string());
                seen.push((suspended.frame().name().to_string(), waits_on.collect()));
            }
            event.set();
        }
    });
    within(30, move || lp.run(waits(event)).unwrap());
    let seen: Vec<(String, Vec<String>)> = seen.lock().unwrap().clone();
    let waits = seen.iter().find(|(name, _)| name == "waits").expect("listed");
    assert_eq!(waits.1, ["cancellable", "race"], "{seen:?}");
}

// Races.

#[tinyio::coroutine]
fn mirror(name: &'static str, millis: u64) -> &'static str {
    yield_!(sleep(ms(millis)));
    name
}

#[test]
fn the_winner_can_be_at_any_index() {
    let won = Loop::new()
        .run(race(vec![mirror("a", 60_000), mirror("b", 60_000), mirror("c", 1)]))
        .unwrap();
    assert_eq!(won, (2, "c"));
    let won = Loop::new().run(race([value(1), value(2)])).unwrap();
    assert_eq!(won, (0, 1), "finished in the same round: the first in order wins");
}

#[test]
fn the_losers_are_dropped_before_race_returns() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn checks() -> usize {
        let losers = (0..5).map(|_| forever(DropGuard(&GUARDS)));
        let mut runners: Vec<tinyio::Coro<()>> = losers.collect();
        runners.insert(3, sleep(ms(1)));
        let (index, ()) = yield_!(race(runners));
        assert_eq!(index, 3);
        dropped(&GUARDS)
    }
    let at_return = within(30, || Loop::new().run(checks()).unwrap());
    assert_eq!(at_return, 5);
}

/// A call that tells `started` it runs, then sleeps (cancellably) for a minute; once told to
/// stop, it takes a little longer, then sets `returned`.
fn slow_call(started: Event, returned: Arc<AtomicBool>) -> tinyio::Coro<()> {
    run_in_thread(move || {
        started.set();
        let slept = thread::sleep(Duration::from_secs(60));
        std::thread::sleep(ms(20)); // still running when told to stop
        returned.store(slept.is_err(), SeqCst);
    })
}

#[test]
fn a_thread_that_loses_is_told_to_stop_and_joined_before_race_returns() {
    #[tinyio::coroutine]
    fn checks(returned: Arc<AtomicBool>) -> bool {
        let started = Event::new();
        let slow = slow_call(started.clone(), returned.clone());
        let (index, ()) = yield_!(race([slow, started.wait()]));
        assert_eq!(index, 1);
        returned.load(SeqCst)
    }
    let returned = Arc::new(AtomicBool::new(false));
    let at_return = within(30, move || Loop::new().run(checks(returned)).unwrap());
    assert!(at_return, "the thread had not returned when the race did");
}

#[test]
fn an_error_before_any_winner_is_an_error_of_the_race() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn fails() -> u32 {
        yield_!();
        tinyio::bail!("broken mirror");
    }
    #[tinyio::coroutine]
    fn slow() -> u32 {
        yield_!(forever(DropGuard(&GUARDS)));
        0
    }
    let err = Loop::new().run(race(vec![slow(), fails()])).unwrap_err();
    assert_eq!(err.to_string(), "broken mirror");
    assert!(common::names(&err).contains(&"race"), "{err:?}");
    assert_eq!(dropped(&GUARDS), 1);
}

#[test]
fn races_nest() {
    #[tinyio::coroutine]
    fn inner(base: u64) -> (usize, &'static str) {
        yield_!(race([mirror("slow", base + 60_000), mirror("fast", base)]))
    }
    let won = Loop::new().run(race([inner(60_000), inner(1), inner(60_000)])).unwrap();
    assert_eq!(won, (1, (1, "fast")));
}

#[test]
fn a_race_cancelled_from_outside_drops_every_runner() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn fails() -> () {
        yield_!(sleep(ms(1)));
        tinyio::bail!("outside");
    }
    let runners = || race([forever(DropGuard(&GUARDS)), forever(DropGuard(&GUARDS))]);
    let err = Loop::new().run((runners(), fails())).unwrap_err();
    assert_eq!(err.to_string(), "outside");
    assert_eq!(dropped(&GUARDS), 2);
}

#[test]
fn a_race_can_be_cancelled_on_demand() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    let (work, handle) =
        cancellable(race([forever(DropGuard(&GUARDS)), forever(DropGuard(&GUARDS))]));
    let out = Loop::new().run((work, press(handle))).unwrap();
    assert_eq!(out, (None, ()));
    assert_eq!(dropped(&GUARDS), 2);
}

#[test]
fn an_empty_race_panics_at_the_call() {
    let payload = std::panic::catch_unwind(|| {
        let empty: Vec<tinyio::Coro<()>> = Vec::new();
        drop(race(empty));
    })
    .unwrap_err();
    assert!(
        payload_str(&*payload).contains("an empty race has no winner"),
        "{}",
        payload_str(&*payload)
    );
}

#[test]
fn a_coroutine_stopped_by_a_cancel_says_so_when_yielded_again() {
    #[tinyio::coroutine]
    fn again() -> String {
        let work = forever(()).share();
        let (cancelled, handle) = cancellable(work.clone());
        handle.cancel();
        assert_eq!(yield_!(cancelled), None);
        let refused = try_yield!(work).expect_err("stopped");
        refused.to_string()
    }
    let err = Loop::new().run(again()).unwrap_err().to_string();
    assert!(err.contains("`forever` was cancelled (by a `CancelHandle` or a `race`)"), "{err}");
}

/// A thread told to stop by a cancellation that then fails with an error of its own fails the
/// run, as one stopped by a crash or a timeout does.
#[test]
fn a_thread_failing_after_its_cancellation_fails_the_run() {
    #[tinyio::coroutine]
    fn checks() -> () {
        let started = Event::new();
        let call_started = started.clone();
        let call = tinyio::try_run_in_thread(move || {
            call_started.set();
            let _ = thread::sleep(Duration::from_secs(60));
            Err::<(), _>(tinyio::Error::msg("the thread's own error"))
        });
        let (index, ()) = yield_!(race([call, started.wait()]));
        unreachable!("the race gave {index}");
    }
    let err = within(30, || Loop::new().run(checks()).unwrap_err().to_string());
    assert_eq!(err, "the thread's own error");
}

#[test]
fn a_tuple_race_gives_the_winner_as_the_variant_of_its_position() {
    use tinyio::{Race2, Race12};
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn guarded_forever() -> u32 {
        yield_!(forever(DropGuard(&GUARDS)));
        0
    }
    #[tinyio::coroutine]
    fn checks() -> (Race2<u32, &'static str>, usize) {
        let won = yield_!(race((guarded_forever(), mirror("b", 1))));
        (won, dropped(&GUARDS))
    }
    let out = within(30, || Loop::new().run(checks()).unwrap());
    assert_eq!(out, (Race2::Second("b"), 1));

    let won = within(30, || {
        let slow = || mirror("slow", 60_000);
        let twelve = (
            slow(),
            slow(),
            slow(),
            value(3u8),
            slow(),
            slow(),
            slow(),
            slow(),
            slow(),
            slow(),
            slow(),
            value('l'),
        );
        Loop::new().run(race(twelve)).unwrap()
    });
    assert_eq!(won, Race12::Fourth(3u8));
}

//! A coroutine that yields one fresh leaf alone (a thread call, an event wait, a foreign
//! future) is seen from outside exactly as one that waits on it through the table: errors are
//! traced through the leaf (innermost) and its holder above it, a stall report names the leaf
//! as what the holder waits on, a leaf that finishes, fails or panics at its first poll behaves
//! as any other, and stopping a holder (timeout, isolate failure) stops its leaf too.

mod common;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, ready};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::{CountDrops, forever, ms, names, payload_str, within};
use tinyio::{
    Event, Loop, Semaphore, background, from_future, isolate, timeout, try_run_in_thread,
};

#[derive(Debug, thiserror::Error)]
#[error("thread failed")]
struct ThreadFailed;

/// Yields a failing thread call alone: the leaf it holds fails.
#[tinyio::coroutine]
fn holder() -> () {
    yield_!(try_run_in_thread(|| Err::<(), _>(ThreadFailed))); // the held yield
}

/// The line of this file that ends with `marker`.
fn line_of(marker: &str) -> u32 {
    let source = include_str!("held_leaves.rs");
    let at = source.lines().position(|line| line.ends_with(marker));
    at.expect("marked") as u32 + 1
}

#[tinyio::coroutine]
fn outer() -> () {
    yield_!(holder());
}

#[test]
fn a_held_thread_call_that_fails_is_the_innermost_frame_below_its_holder() {
    let err = Loop::new().run(outer()).unwrap_err();
    assert!(err.downcast_ref::<ThreadFailed>().is_some(), "{err:?}");
    assert_eq!(names(&err), ["outer", "holder", "run_in_thread"], "{err:?}");
    let yielded = line_of("// the held yield");
    let [_, holder, at] = err.trace() else { unreachable!() };
    assert!(at.file().ends_with("held_leaves.rs"), "{at}");
    assert_eq!(at.line(), yielded, "the thread call is placed where it was made");
    assert_eq!(holder.line(), yielded, "its holder is suspended there");
}

#[tinyio::coroutine]
fn isolated_outer() -> Vec<&'static str> {
    let err = yield_!(isolate(holder())).unwrap_err();
    assert!(err.downcast_ref::<ThreadFailed>().is_some(), "{err:?}");
    err.trace().iter().map(|frame| frame.name()).collect()
}

#[test]
fn a_held_leaf_failing_inside_an_isolate_is_traced_and_caught_there() {
    let trace = Loop::new().run(isolated_outer()).unwrap();
    assert_eq!(trace.first(), Some(&"holder"), "{trace:?}");
    assert_eq!(trace.last(), Some(&"run_in_thread"), "{trace:?}");
}

#[test]
fn a_held_leaf_failing_under_a_timeout_is_traced_through_it() {
    let err = Loop::new().run(timeout(holder(), ms(600_000))).unwrap_err();
    assert!(err.downcast_ref::<ThreadFailed>().is_some(), "{err:?}");
    assert_eq!(names(&err).last(), Some(&"run_in_thread"), "{err:?}");
    assert!(names(&err).contains(&"holder"), "{err:?}");
}

#[tinyio::coroutine]
fn panics_at_first_poll(guard: CountDrops) -> () {
    let _guard = guard;
    yield_!(from_future(poll_fn(|_| -> Poll<()> { panic!("leaf panicked at once") })));
}

#[test]
fn a_held_leaf_that_panics_at_once_crashes_the_run_and_cleans_up() {
    let drops = Rc::new(Cell::new(0));
    let run = (forever(CountDrops(drops.clone())), panics_at_first_poll(CountDrops(drops.clone())));
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Loop::new().run(run)))
        .expect_err("the leaf's panic comes out of run");
    assert_eq!(payload_str(&*payload), "leaf panicked at once");
    assert_eq!(drops.get(), 2, "both coroutines were cleaned up");
}

#[tinyio::coroutine]
fn logs_around<'a>(log: &'a RefCell<Vec<&'static str>>, name: &'static str, leaf: bool) -> () {
    log.borrow_mut().push(name);
    if leaf {
        yield_!(from_future(ready(())));
    } else {
        yield_!();
    }
    log.borrow_mut().push(name);
}

#[test]
fn a_held_leaf_done_at_once_goes_to_the_back_of_the_queue() {
    let log = RefCell::new(Vec::new());
    Loop::new().run((logs_around(&log, "leaf", true), logs_around(&log, "pause", false))).unwrap();
    assert_eq!(*log.borrow(), ["leaf", "pause", "leaf", "pause"]);
}

#[tinyio::coroutine]
fn waits_on(event: Event) -> () {
    yield_!(event.wait());
}

#[tinyio::coroutine]
fn isolated_waits_on(event: Event) -> () {
    yield_!(timeout(isolate(waits_on(event)), ms(600_000))).unwrap().unwrap();
}

#[test]
fn a_stall_report_names_the_held_leaf_as_what_its_holder_waits_on() {
    for isolated in [false, true] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let event = Event::new();
        let lp = Loop::new().stall_report(ms(20), {
            let (seen, event) = (seen.clone(), event.clone());
            move |stall| {
                for s in stall.coroutines() {
                    let waits: Vec<_> = s.waits_on().to_vec();
                    seen.lock().unwrap().push((s.frame().name(), waits));
                }
                event.set();
            }
        });
        if isolated {
            lp.run(isolated_waits_on(event)).unwrap();
        } else {
            lp.run(waits_on(event)).unwrap();
        }
        let seen = seen.lock().unwrap();
        let holder = seen.iter().find(|(name, _)| *name == "waits_on");
        let (_, waits) = holder.unwrap_or_else(|| panic!("no `waits_on` in {seen:?}"));
        assert_eq!(waits, &["Event::wait"], "isolated: {isolated}: {seen:?}");
    }
}

/// A member of an isolate's scope that nothing waits on: the isolate must wait for it.
#[tinyio::coroutine]
fn member(release: Event, finished: Rc<Cell<u32>>) -> () {
    yield_!(release.wait());
    finished.set(finished.get() + 1);
}

#[tinyio::coroutine]
fn held_until_stopped(guard: CountDrops, event: Event) -> () {
    let _guard = guard;
    yield_!(event.wait());
}

#[tinyio::coroutine]
fn times_out_then_releases(drops: Rc<Cell<usize>>, never: Event, release: Event) -> bool {
    let out = yield_!(timeout(held_until_stopped(CountDrops(drops), never), ms(5)));
    release.set();
    out.is_none()
}

#[tinyio::coroutine]
fn scope_with_background(drops: Rc<Cell<usize>>, never: Event) -> (bool, u32, usize) {
    let (release, finished) = (Event::new(), Rc::new(Cell::new(0)));
    let work = (
        background(member(release.clone(), finished.clone())),
        times_out_then_releases(drops.clone(), never, release),
    );
    let ((), timed_out) = yield_!(isolate(work)).unwrap();
    (timed_out, finished.get(), drops.get())
}

#[test]
fn a_timeout_stops_a_held_leaf_inside_an_isolate_which_still_waits_for_its_members() {
    let (drops, never) = (Rc::new(Cell::new(0)), Event::new());
    let (timed_out, finished, dropped) =
        Loop::new().run(scope_with_background(drops.clone(), never.clone())).unwrap();
    assert!(timed_out);
    assert_eq!(finished, 1, "the isolate returned before its member finished");
    assert_eq!(dropped, 1, "the stopped holder cleaned up");
    never.set(); // its wait left the event's list when it was stopped
    assert!(Loop::new().run(never.wait_timeout(ms(0))).unwrap());
}

#[tinyio::coroutine]
fn many_waits(event: Event, plain: usize, timed: u64) -> (usize, usize) {
    let mut waits = Vec::new();
    let mut timeouts = Vec::new();
    for i in 0..plain {
        waits.push(event.wait());
        // Timed waits that leave the event's list in an order unlike the one they joined in.
        timeouts.push(event.wait_timeout(ms((i as u64 * 7) % timed + 1)));
    }
    let (woken, timed_out) = yield_!((waits, timeouts));
    let set = timed_out.iter().filter(|&&set| set).count();
    (woken.len(), set)
}

#[test]
fn one_event_many_loops_with_waits_leaving_in_any_order() {
    within(60, || {
        let event = Event::new();
        let loops = 4;
        let (stalled_send, stalled) = mpsc::channel();
        let threads: Vec<_> = (0..loops)
            .map(|_| {
                let (event, stalled_send) = (event.clone(), stalled_send.clone());
                std::thread::spawn(move || {
                    let lp = Loop::new().stall_report(ms(30), move |_| {
                        let _ = stalled_send.send(());
                    });
                    lp.run(many_waits(event, 50, 20)).unwrap()
                })
            })
            .collect();
        // Each loop reports a stall only once every timed wait has run out and left the list.
        for _ in 0..loops {
            stalled.recv().unwrap();
        }
        event.set();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), (50, 0));
        }
    });
}

#[tinyio::coroutine]
fn acquires<'a>(
    semaphore: &'a Semaphore,
    log: &'a RefCell<Vec<usize>>,
    i: usize,
    patience: Option<u64>,
) -> () {
    let permit = match patience {
        Some(patience) => yield_!(timeout(semaphore.acquire(), ms(patience))),
        None => Some(yield_!(semaphore.acquire())),
    };
    if let Some(_permit) = permit {
        log.borrow_mut().push(i);
        yield_!();
    }
}

#[tinyio::coroutine]
fn holds_then_releases<'a>(semaphore: &'a Semaphore, release: Event) -> () {
    let _a = yield_!(semaphore.acquire());
    let _b = yield_!(semaphore.acquire());
    yield_!(release.wait());
}

#[tinyio::coroutine]
fn releases_later(release: Event) -> () {
    yield_!(tinyio::sleep(ms(60)));
    release.set();
}

#[test]
fn semaphore_waiters_leaving_out_of_order_keep_the_permits_and_the_order() {
    let semaphore = Semaphore::new(2);
    let log = RefCell::new(Vec::new());
    let release = Event::new();
    // Odd waiters give up, in an order unlike the one they queued in; even ones wait.
    let patience = [None, Some(9), None, Some(3), None, Some(7), None, Some(1), None, Some(5)];
    let waiters: Vec<_> =
        (0..patience.len()).map(|i| acquires(&semaphore, &log, i, patience[i])).collect();
    Loop::new()
        .run((holds_then_releases(&semaphore, release.clone()), waiters, releases_later(release)))
        .unwrap();
    assert_eq!(*log.borrow(), [0, 2, 4, 6, 8]);
    assert_eq!(semaphore.available(), 2);
}

#[derive(Debug, thiserror::Error)]
#[error("clean-up failed")]
struct CleanupFailed;

/// Holds a thread call that, told to stop, ends with an error of its own.
#[tinyio::coroutine]
fn holds_stubborn_thread(started: Event) -> () {
    yield_!(try_run_in_thread(move || {
        started.set();
        match tinyio::thread::sleep(std::time::Duration::from_secs(600)) {
            Err(_) => Err(CleanupFailed),
            Ok(()) => Ok(()),
        }
    }));
}

#[tinyio::coroutine]
fn cancels_once_started(started: Event, handle: tinyio::CancelHandle) -> () {
    yield_!(started.wait());
    handle.cancel();
}

#[tinyio::coroutine]
fn cancel_inside_isolate() -> Result<(Option<()>, ()), tinyio::Error> {
    let started = Event::new();
    let (work, handle) = tinyio::cancellable(holds_stubborn_thread(started.clone()));
    yield_!(isolate((work, cancels_once_started(started, handle))))
}

#[test]
fn a_cancelled_held_thread_call_that_fails_fails_the_isolate_around_it() {
    let err = within(60, || {
        let out = Loop::new().run(cancel_inside_isolate()).unwrap();
        out.map(|_| ()).unwrap_err().to_string()
    });
    assert_eq!(err, "clean-up failed");
}

#[tinyio::coroutine]
fn holds_thread_until_told(started: Event, stopped: Arc<Mutex<bool>>) -> () {
    yield_!(tinyio::run_in_thread(move || {
        started.set();
        let told = tinyio::thread::sleep(std::time::Duration::from_secs(600)).is_err();
        *stopped.lock().unwrap() = told;
    }));
}

#[tinyio::coroutine]
fn race_against_held_thread(stopped: Arc<Mutex<bool>>) -> bool {
    let started = Event::new();
    let out = yield_!(tinyio::race((
        holds_thread_until_told(started.clone(), stopped.clone()),
        started.wait(),
    )));
    assert!(matches!(out, tinyio::Race2::Second(())));
    *stopped.lock().unwrap() // the loser's thread was joined before the race gave its winner
}

#[test]
fn a_race_joins_the_thread_a_losing_holder_holds_before_it_gives_its_winner() {
    let stopped = Arc::new(Mutex::new(false));
    let joined = within(60, move || Loop::new().run(race_against_held_thread(stopped)).unwrap());
    assert!(joined);
}

type Stash = Rc<RefCell<Vec<std::task::Waker>>>;

/// Foreign futures that keep their waker after they finish (as the `Waker` contract allows:
/// a waker may be woken at any time, any number of times).
#[tinyio::coroutine]
fn keeps_wakers(stash: Stash) -> () {
    let leaves: Vec<_> = (0..8)
        .map(|_| {
            let stash = stash.clone();
            from_future(poll_fn(move |cx| {
                stash.borrow_mut().push(cx.waker().clone());
                Poll::Ready(())
            }))
        })
        .collect();
    yield_!(leaves);
}

#[tinyio::coroutine]
fn returns_when_isolate_does(release: Event, finished: Rc<Cell<u32>>) -> u32 {
    let work = background(member(release, finished.clone()));
    yield_!(isolate(work)).unwrap();
    finished.get()
}

#[tinyio::coroutine]
fn wakes_old_wakers_then_releases(stash: Stash, release: Event) -> () {
    for _ in 0..3 {
        yield_!(); // the isolate and its member are suspended by now
    }
    for waker in stash.borrow().iter() {
        waker.wake_by_ref();
    }
    for _ in 0..3 {
        yield_!();
    }
    release.set();
}

#[test]
fn wakers_left_over_from_an_earlier_run_do_not_end_an_isolate_early() {
    let lp = Loop::new();
    let stash = Stash::default();
    lp.run(keeps_wakers(stash.clone())).unwrap();
    assert_eq!(stash.borrow().len(), 8);
    let (release, finished) = (Event::new(), Rc::new(Cell::new(0)));
    let (seen, ()) = lp
        .run((
            returns_when_isolate_does(release.clone(), finished.clone()),
            wakes_old_wakers_then_releases(stash, release),
        ))
        .unwrap();
    assert_eq!(seen, 1, "the isolate returned before its member finished");
}

/// A member of an isolate's scope that nothing waits on, and that fails once released.
#[tinyio::coroutine]
fn member_fails(release: Event) -> () {
    yield_!(release.wait());
    Err(ThreadFailed)?;
}

#[tinyio::coroutine]
fn isolate_error(release: Event) -> String {
    let out = yield_!(isolate(background(member_fails(release))));
    out.map_or_else(|error| error.to_string(), |()| "no error".to_owned())
}

#[test]
fn a_left_over_waker_does_not_keep_an_isolate_from_catching_its_member_error() {
    let lp = Loop::new();
    let stash = Stash::default();
    lp.run(keeps_wakers(stash.clone())).unwrap();
    let release = Event::new();
    let (caught, ()) = lp
        .run((isolate_error(release.clone()), wakes_old_wakers_then_releases(stash, release)))
        .unwrap();
    assert_eq!(caught, "thread failed");
}

#[tinyio::coroutine]
fn sets_then_clears(event: Event) -> () {
    yield_!(); // the waiter is registered by now
    event.set();
    event.clear();
}

#[test]
fn a_held_wait_woken_by_a_set_stays_woken_after_a_clear() {
    let event = Event::new();
    within(60, move || {
        Loop::new().run((waits_on(event.clone()), sets_then_clears(event.clone()))).unwrap();
        assert!(!event.is_set());
    });
}

#[tinyio::coroutine]
fn acquires_briefly(semaphore: Semaphore, patience: Option<u64>) -> () {
    let permit = match patience {
        Some(patience) => yield_!(timeout(semaphore.acquire(), ms(patience))),
        None => Some(yield_!(semaphore.acquire())),
    };
    if permit.is_some() {
        yield_!();
    }
}

#[test]
fn one_semaphore_many_loops_with_waiters_giving_up_keeps_its_permits() {
    let semaphore = Semaphore::new(3);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let semaphore = semaphore.clone();
            std::thread::spawn(move || {
                let all: Vec<_> = (0..60u64)
                    .map(|i| {
                        let patience = (i % 3 != 0).then_some((i * 7 + t) % 5);
                        acquires_briefly(semaphore.clone(), patience)
                    })
                    .collect();
                Loop::new().run(all).unwrap();
            })
        })
        .collect();
    within(60, move || threads.into_iter().for_each(|t| t.join().unwrap()));
    assert_eq!(semaphore.available(), 3);
}

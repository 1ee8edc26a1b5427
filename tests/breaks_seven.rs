//! A tester's pass on the one failure walk (a crash cancels through the walk of a failed
//! isolate), the run's one reusable leaf waker, `to_future`'s timer, and coroutines yielded into
//! a nested run.

mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{ms, payload_str, within};
use tinyio::{
    Error, ErrorGroup, Event, Loop, background, cancellable, isolate, race, sleep, timeout,
};

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[error("new error")]
struct NewError;

#[derive(Debug, thiserror::Error)]
#[error("original")]
struct Original;

thread_local! {
    /// What happened, in order: each guard's drop, each cancellation seen.
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(what: impl Into<String>) {
    LOG.with_borrow_mut(|log| log.push(what.into()));
}

fn take_log() -> Vec<String> {
    LOG.with_borrow_mut(std::mem::take)
}

/// How many times `what` is in the log.
fn count(log: &[String], what: &str) -> usize {
    log.iter().filter(|w| *w == what).count()
}

/// Logs `dropped NAME` when dropped, and runs its action first.
struct Guard {
    name: &'static str,
    action: Option<Box<dyn FnOnce()>>,
}

fn guard(name: &'static str) -> Guard {
    Guard { name, action: None }
}

fn guard_doing(name: &'static str, action: impl FnOnce() + 'static) -> Guard {
    Guard { name, action: Some(Box::new(action)) }
}

impl Drop for Guard {
    fn drop(&mut self) {
        log(format!("dropped {}", self.name));
        if let Some(action) = self.action.take() {
            action();
        }
    }
}

/// Waits on `event` (a held leaf: yielded alone), with `guard`.
#[tinyio::coroutine]
fn waits_on(event: Event, guard: Guard) -> () {
    let _guard = guard;
    yield_!(event.wait());
}

/// Sleeps an hour (a held leaf), with `guard`; answers a cancellation by raising `NewError`.
#[tinyio::coroutine]
fn raises_when_stopped(guard: Guard) -> () {
    let _guard = guard;
    if try_yield!(sleep(HOUR)).is_err() {
        log("raiser stopped");
        Err(NewError)?;
    }
}

/// Sets `started`, then sleeps an hour, with `guard`; on a cancellation, pauses again then goes.
#[tinyio::coroutine]
fn yields_when_stopped(started: Event, guard: Guard) -> () {
    let _guard = guard;
    started.set();
    if try_yield!(sleep(HOUR)).is_err() {
        yield_!();
    }
}

#[tinyio::coroutine]
fn fails_after(event: Event) -> () {
    yield_!(event.wait());
    Err(Original)?
}

#[tinyio::coroutine]
fn panics_after(event: Event) -> () {
    yield_!(event.wait());
    panic!("first panic");
}

// --- 1. A crash through the walk ----------------------------------------------------------------

/// A timeout stopping its work meets one that raises: the run crashes with that error while the
/// timeout's stop is half-way, and everything else (before it, after it, outside) is cancelled
/// exactly once.
#[tinyio::coroutine]
fn timeout_meets_a_raiser(release: Event) -> () {
    let work = (
        waits_on(release.clone(), guard("before")).share(),
        raises_when_stopped(guard("raiser")).share(),
        waits_on(release.clone(), guard("after")).share(),
    );
    // Started, and suspended, before the timeout is: it stops them however late it looks.
    yield_!(background(work.clone()));
    yield_!();
    yield_!(timeout(work, ms(5)));
}

#[test]
fn a_crash_while_a_timeout_stops_its_work_cancels_everything_once() {
    for mode in [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always] {
        let out = within(60, move || {
            let release = Event::new();
            let shared = waits_on(release.clone(), guard("shared")).share();
            let run = (
                timeout_meets_a_raiser(release.clone()),
                waits_on(release.clone(), guard("outside")),
                shared.clone(),
                shared,
                background(waits_on(release, guard("background"))),
            );
            let error = Loop::new().error_group(mode).run(run).unwrap_err();
            (error.downcast_ref::<NewError>().is_some(), format!("{error:?}"), take_log())
        });
        let (is_new, error, log) = out;
        assert!(is_new, "{mode:?}: {error}");
        for name in ["before", "raiser", "after", "outside", "shared", "background"] {
            assert_eq!(count(&log, &format!("dropped {name}")), 1, "{mode:?} {name}: {log:?}");
        }
        assert_eq!(count(&log, "raiser stopped"), 1, "{mode:?}: {log:?}");
    }
}

/// An isolate inside a timeout inside a race, with a crash from outside: each level's held
/// leaves, a yielder-again, and a destructor that sets an event, cancels a handle and sends on
/// a channel while it is being cancelled. Everything is cancelled once, and the error is the
/// original one.
#[tinyio::coroutine]
fn nested_levels(release: Event, handle_event: Event, started: Event) -> () {
    let (other, handle) = cancellable(waits_on(handle_event.clone(), guard("cancellable")));
    let (send, recv) = mpsc::channel::<&'static str>();
    let busy = guard_doing("busy", {
        let (release, handle) = (release.clone(), handle.clone());
        move || {
            release.set();
            handle.cancel();
            // The receiver may be gone already: its coroutine may be cancelled first.
            let _ = send.send("sent from a destructor");
        }
    });
    let inner = isolate((
        waits_on(release.clone(), busy),
        yields_when_stopped(started, guard("stubborn")),
        tinyio::run_in_thread(|| {
            while !tinyio::thread::is_cancelled() {
                std::thread::yield_now();
            }
            log("unreachable: thread-local log of another thread");
        }),
    ));
    let _recv = recv;
    yield_!(race((timeout(inner, HOUR), other, waits_on(release, guard("racer")))));
}

#[test]
fn a_crash_through_isolates_inside_timeouts_inside_races_cancels_everything_once() {
    for mode in [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always] {
        let (error, log) = within(60, move || {
            let (go, release, handle_event) = (Event::new(), Event::new(), Event::new());
            // It fails once the stubborn one, deepest, has suspended.
            let run = (nested_levels(release, handle_event, go.clone()), fails_after(go));
            let error = Loop::new().error_group(mode).run(run).unwrap_err();
            (error, take_log())
        });
        assert!(error.downcast_ref::<Original>().is_some(), "{mode:?}: {error:?}");
        for name in ["busy", "stubborn", "cancellable", "racer"] {
            assert_eq!(count(&log, &format!("dropped {name}")), 1, "{mode:?} {name}: {log:?}");
        }
        let group = error.group().map_or(0, <[Error]>::len);
        match mode {
            ErrorGroup::Never => assert_eq!(group, 0, "{error:?}"),
            // The original, and the stubborn one's misbehaviour.
            ErrorGroup::Auto => assert_eq!(group, 2, "{error:?}"),
            ErrorGroup::Always => {
                let group = error.group().unwrap();
                assert!(group[1].to_string().contains("did not respond properly"), "{error:?}");
                // No clean cancellation of the trace (`fails_after`) is listed again.
                assert!(
                    group[2..]
                        .iter()
                        .all(|e| e.is_cancelled()
                            && e.trace().iter().all(|f| f.name() != "fails_after")),
                    "{error:?}"
                );
            }
        }
    }
}

/// The first panic resumes once everything is cancelled, however many destructors panic while
/// the run is being cancelled.
#[test]
fn the_first_panic_resumes_after_every_coroutine_is_cancelled() {
    let log = within(60, || {
        let go = Event::new();
        let release = Event::new();
        let run = (
            waits_on(release.clone(), guard_doing("a", || panic!("second panic"))),
            panics_after(go.clone()),
            waits_on(release.clone(), guard_doing("b", || panic!("third panic"))),
            waits_on(release, guard("c")),
        );
        go.set();
        let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
        assert_eq!(payload_str(&*payload), "first panic");
        take_log()
    });
    for name in ["a", "b", "c"] {
        assert_eq!(count(&log, &format!("dropped {name}")), 1, "{name}: {log:?}");
    }
}

/// A destructor that panics while an isolate fails, in a run that then crashes with an error:
/// the panic resumes, and everything is cancelled once.
#[tinyio::coroutine]
fn isolate_with_a_panicking_destructor(release: Event, go: Event) -> () {
    let failing = (
        waits_on(release.clone(), guard_doing("bomb", || panic!("destructor panic"))),
        fails_after(go),
    );
    let _ = yield_!(isolate(failing));
    yield_!(waits_on(release, guard("after isolate")));
}

#[test]
fn a_destructor_that_panics_while_an_isolate_fails_crashes_the_run_once() {
    let log = within(60, || {
        let (go, release) = (Event::new(), Event::new());
        let run = (
            isolate_with_a_panicking_destructor(release.clone(), go.clone()),
            waits_on(release, guard("outside")),
        );
        go.set();
        let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
        assert_eq!(payload_str(&*payload), "destructor panic");
        take_log()
    });
    assert_eq!(count(&log, "dropped bomb"), 1, "{log:?}");
    assert_eq!(count(&log, "dropped outside"), 1, "{log:?}");
}

/// A stop request, or a `to_future` dropped mid-way, crashes through the same walk.
#[test]
fn a_stop_and_a_dropped_future_cancel_everything_once() {
    let log = within(60, || {
        let lp = Loop::new();
        let release = Event::new();
        let shared = waits_on(release.clone(), guard("shared")).share();
        let run = (
            waits_on(release.clone(), guard("stopper")),
            shared.clone(),
            timeout(isolate(shared), HOUR),
            isolate(timeout(waits_on(release.clone(), guard("deep")), HOUR)),
        );
        let stopping = lp.stop_handle();
        std::thread::spawn(move || stopping.stop());
        assert!(lp.run(run).unwrap_err().is_stopped());
        assert!(lp.run(()).is_ok());

        let mut future = tinyio::to_future((
            waits_on(release.clone(), guard("future a")),
            isolate(timeout(waits_on(release, guard("future b")), HOUR)),
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::Pin::new(&mut future).poll(&mut cx).is_pending());
        drop(future);
        take_log()
    });
    for name in ["shared", "stopper", "deep", "future a", "future b"] {
        assert_eq!(count(&log, &format!("dropped {name}")), 1, "{name}: {log:?}");
    }
}

/// A thread told to stop by a timeout inside an isolate, which panics once it sees that: the
/// run crashes with an error elsewhere before the isolate reads its joins, and the panic must
/// still resume out of the run once all is done (it is joined with the isolate's record).
#[tinyio::coroutine]
fn isolate_with_a_thread_its_timeout_stopped(stopped: Event, release: Event) -> () {
    // The loop waits for the thread to begin (a call still queued would be dropped unrun).
    let begun = Arc::new(common::Arrivals::new(1));
    let hold = begun.hold();
    let thread = tinyio::run_in_thread(move || {
        begun.arrive();
        while !tinyio::thread::is_cancelled() {
            std::thread::yield_now();
        }
        stopped.set();
        panic!("thread panic");
    });
    let work = (timeout((thread, hold), ms(1)), waits_on(release, guard("in isolate")));
    let _ = yield_!(isolate(work));
}

#[test]
fn a_thread_panic_joined_by_a_crash_inside_an_isolate_resumes() {
    let (payload, log) = within(60, || {
        let (stopped, release) = (Event::new(), Event::new());
        let run = (
            isolate_with_a_thread_its_timeout_stopped(stopped.clone(), release),
            fails_after(stopped),
        );
        let out = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run)));
        (out.map_err(|payload| payload_str(&*payload).to_owned()), take_log())
    });
    assert_eq!(count(&log, "dropped in isolate"), 1, "{log:?}");
    match payload {
        Err(payload) => assert_eq!(payload, "thread panic"),
        Ok(out) => panic!("the thread's panic was lost: the run gave {out:?}"),
    }
}

// --- 2. One reusable leaf waker per run -------------------------------------------------------

/// Pending until `ready` is set; each poll hands a clone of its waker to `wakers` (a thread
/// that wakes it, late and often, and drops it).
struct Handing {
    ready: Arc<std::sync::atomic::AtomicBool>,
    wakers: mpsc::Sender<Waker>,
}

impl std::future::Future for Handing {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let _ = self.wakers.send(cx.waker().clone());
        if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[tinyio::coroutine]
fn waits_then_logs(event: Event, name: &'static str) -> () {
    yield_!(event.wait());
    log(format!("{name} woke"));
}

#[tinyio::coroutine]
fn pauses_then_sets(event: Event, pauses: usize, name: &'static str) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    log(format!("{name} sets"));
    event.set();
}

/// Wakers handed to other threads wake late (after their leaf finished, its slot reused, and
/// in later runs of the same loop, whose tokens repeat) and concurrently with the run: no
/// coroutine waiting on an event goes on before the event is set, and every run finishes.
#[test]
fn late_and_foreign_wake_ups_never_resume_a_waiter_early() {
    within(120, || {
        let (wakers, handed) = mpsc::channel::<Waker>();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Wakes every waker it was handed, again and again, until the test is over.
        let waker_thread = std::thread::spawn({
            let done = done.clone();
            move || {
                let mut kept: Vec<Waker> = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    kept.extend(handed.try_iter());
                    kept.iter().for_each(Waker::wake_by_ref);
                    // Some are dropped at once (a waker reused), some kept (woken late).
                    if kept.len() > 64 {
                        kept.drain(..32);
                    }
                    std::thread::yield_now();
                }
            }
        });
        let lp = Loop::new();
        for round in 0..200 {
            let (a, b) = (Event::new(), Event::new());
            let ready = Arc::new(std::sync::atomic::AtomicBool::new(round % 2 == 0));
            let foreign = tinyio::from_future(Handing { ready, wakers: wakers.clone() });
            let run = (
                waits_then_logs(a.clone(), "a"),
                waits_then_logs(b.clone(), "b"),
                pauses_then_sets(a, 3, "a"),
                pauses_then_sets(b, 5, "b"),
                timeout(foreign, Duration::ZERO),
            );
            lp.run(run).unwrap();
            let log = take_log();
            assert_eq!(log, ["a sets", "a woke", "b sets", "b woke"], "round {round}");
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        waker_thread.join().unwrap();
    });
}

// --- 4. Coroutines and copies received in a nested run --------------------------------------

#[tinyio::coroutine]
fn waits_then_gives(event: Event, value: u32) -> u32 {
    yield_!(event.wait());
    value
}

#[tinyio::coroutine]
fn sets_after_pauses(event: Event) -> () {
    for _ in 0..3 {
        yield_!();
    }
    event.set();
}

/// A copy received by a `to_future` that this run polls (through `from_future`): the nested
/// run hands back `Pending`, so the maker's run goes on, makes the value, and the nested run
/// receives it. Nothing is blocked: it must not raise.
#[tinyio::coroutine]
fn copy_received_by_a_polled_future() -> u32 {
    let event = Event::new();
    let copied = yield_!(tinyio::copy(waits_then_gives(event.clone(), 7)));
    let received = tinyio::from_future(tinyio::to_future(copied));
    let (got, ()) = yield_!((received, sets_after_pauses(event)));
    got?
}

#[test]
fn a_copy_received_by_a_future_this_run_polls_arrives() {
    let out = within(30, || Loop::new().run(copy_received_by_a_polled_future()));
    assert_eq!(out.map_err(|e| e.to_string()), Ok(7));
}

/// The same with `as_completed`.
#[tinyio::coroutine]
fn as_completed_received_by_a_polled_future() -> u32 {
    let event = Event::new();
    let mut done = yield_!(tinyio::as_completed(vec![waits_then_gives(event.clone(), 8)]));
    let next = done.next().expect("one");
    let received = tinyio::from_future(tinyio::to_future(next));
    let (got, ()) = yield_!((received, sets_after_pauses(event)));
    got?
}

#[test]
fn an_as_completed_received_by_a_future_this_run_polls_arrives() {
    let out = within(30, || Loop::new().run(as_completed_received_by_a_polled_future()));
    assert_eq!(out.map_err(|e| e.to_string()), Ok(8));
}

/// But a `to_future` polled inside a `Loop::run` nested in the maker's run is blocked with it:
/// that raises rather than wait forever.
#[tinyio::coroutine]
fn copy_received_by_a_future_polled_in_a_nested_loop() -> u32 {
    let event = Event::new();
    let copied = yield_!(tinyio::copy(waits_then_gives(event.clone(), 7)));
    let received = tinyio::from_future(tinyio::to_future(copied));
    let got = Loop::new().run(received)?;
    event.set();
    got?
}

#[test]
fn a_copy_received_by_a_future_polled_in_a_nested_loop_raises() {
    let message = within(30, || {
        Loop::new().run(copy_received_by_a_future_polled_in_a_nested_loop()).unwrap_err()
    })
    .to_string();
    assert!(message.contains("`copy` run in a loop that this one runs inside"), "{message}");
}

// --- 3. `to_future`'s timer -----------------------------------------------------------------------

/// Sleeps through `naps` (in milliseconds, so that its next deadline moves later and earlier),
/// then gives `value`.
#[tinyio::coroutine]
fn naps_then_gives(naps: Vec<u64>, value: u32) -> u32 {
    for nap in naps {
        yield_!(sleep(ms(nap)));
    }
    value
}

/// Many futures with timers on one executor, some dropped half-way, one first polled by hand
/// with a waker that wakes nothing and then moved to the executor: each that is kept finishes
/// with its value, woken by the timer thread.
#[test]
fn many_to_futures_with_moving_deadlines_finish_and_dropped_ones_go() {
    within(60, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut moved = tinyio::to_future(naps_then_gives(vec![3, 1, 2], 1000));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::Pin::new(&mut moved).poll(&mut cx).is_pending());
        let local = tokio::task::LocalSet::new();
        let kept: Vec<_> = (0..40u32)
            .map(|i| {
                let naps = vec![u64::from(i % 7), u64::from(7 - i % 7), 1, u64::from(i % 3)];
                local.spawn_local(tinyio::to_future(naps_then_gives(naps, i)))
            })
            .collect();
        let dropped: Vec<_> = (0..40u32)
            .map(|i| {
                let future = tinyio::to_future(naps_then_gives(vec![1, 3600 * 1000], i));
                local.spawn_local(async move {
                    // Polled until it waits for its hour, then dropped with it.
                    let mut future = std::pin::pin!(future);
                    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
                        Poll::Ready(_) => Poll::Ready(false),
                        Poll::Pending => Poll::Ready(true),
                    })
                    .await
                })
            })
            .collect();
        let moved = local.spawn_local(moved);
        runtime.block_on(local.run_until(async move {
            for (i, kept) in kept.into_iter().enumerate() {
                assert_eq!(kept.await.unwrap().unwrap(), i as u32);
            }
            for dropped in dropped {
                assert!(dropped.await.unwrap());
            }
            assert_eq!(moved.await.unwrap().unwrap(), 1000);
        }));
    });
}

/// A shared coroutine suspended in this run, yielded into a loop nested in it (run there, or
/// polled there as a `to_future`), is refused there with the reason, whatever the nested
/// table holds at its key; and it still finishes here afterwards.
#[tinyio::coroutine]
fn yields_into_nested_runs(s: tinyio::Shared<u32>, release: Event) -> u32 {
    yield_!(background(s.clone()));
    yield_!();
    // The nested table's first keys hold other coroutines.
    let nested = (waits_then_gives(release.clone(), 1), s.clone());
    let message = Loop::new().run(nested).unwrap_err().to_string();
    assert!(message.contains("already started in another loop run"), "{message}");
    let polled = tinyio::from_future(tinyio::to_future((sleep(ms(0)), s.clone())));
    let message = yield_!(polled).unwrap_err().to_string();
    assert!(message.contains("already started in another loop run"), "{message}");
    release.set();
    yield_!(s)
}

#[test]
fn a_shared_coroutine_yielded_into_a_nested_run_is_refused_there_and_finishes_here() {
    let out = within(30, || {
        let release = Event::new();
        let s = waits_then_gives(release.clone(), 9).share();
        Loop::new().run(yields_into_nested_runs(s, release)).map_err(|e| e.to_string())
    });
    assert_eq!(out, Ok(9));
}

// --- Everything at once ---------------------------------------------------------------------------

thread_local! {
    /// Guards made by `node` and not yet dropped, by id; and how many were made.
    static ALIVE: RefCell<(std::collections::BTreeMap<u64, usize>, u64)> =
        const { RefCell::new((std::collections::BTreeMap::new(), 0)) };
}

/// Counted in `ALIVE`: made once, dropped once.
struct Counted(u64);

fn counted() -> Counted {
    ALIVE.with_borrow_mut(|(alive, made)| {
        *made += 1;
        alive.insert(*made, 1);
        Counted(*made)
    })
}

impl Drop for Counted {
    fn drop(&mut self) {
        ALIVE.with_borrow_mut(|(alive, _)| {
            let left = alive.get_mut(&self.0).expect("dropped once");
            *left -= 1;
            if *left == 0 {
                alive.remove(&self.0);
            }
        });
    }
}

fn next(rng: &mut u64) -> u64 {
    *rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *rng >> 33
}

/// A random tree of the combinators, with leaves that wait, raise, panic, yield again when
/// stopped, or call a thread; each node holds a counted guard.
#[tinyio::coroutine]
fn node(seed: u64, depth: u32, release: Event) -> () {
    let _guard = counted();
    let mut rng = seed;
    let kind = if depth == 0 { next(&mut rng) % 6 } else { next(&mut rng) % 18 };
    let child = |rng: &mut u64| node(next(rng), depth.saturating_sub(1), release.clone());
    match kind {
        0 => yield_!(release.wait()),
        1 => {
            if tinyio::try_yield!(release.wait()).is_err() {
                Err(NewError)?;
            }
        }
        2 => {
            if tinyio::try_yield!(release.wait()).is_err() {
                yield_!();
            }
        }
        3 => {
            for _ in 0..next(&mut rng) % 4 {
                yield_!();
            }
            if next(&mut rng).is_multiple_of(8) {
                panic!("chaos panic");
            }
            Err(Original)?;
        }
        4 => {
            let release = release.clone();
            yield_!(tinyio::run_in_thread(move || {
                while !tinyio::thread::is_cancelled() && !release.is_set() {
                    std::thread::yield_now();
                }
            }));
        }
        5 => {
            for _ in 0..next(&mut rng) % 3 {
                yield_!();
            }
        }
        6 | 7 => {
            let _ = yield_!(timeout(child(&mut rng), ms(next(&mut rng) % 3)));
        }
        8 => {
            let _ = yield_!(isolate(child(&mut rng)));
        }
        9 => {
            let _ = yield_!(race((child(&mut rng), child(&mut rng))));
        }
        10 => {
            yield_!((child(&mut rng), child(&mut rng)));
        }
        11 => {
            let shared = child(&mut rng).share();
            yield_!((shared.clone(), shared, child(&mut rng)));
        }
        12 => {
            yield_!(background(child(&mut rng)));
            yield_!(child(&mut rng));
        }
        13 => {
            // A destructor that cancels a handle and sets the event while it is cancelled.
            let (work, handle) = cancellable(child(&mut rng));
            let (release, panics) = (release.clone(), next(&mut rng).is_multiple_of(5));
            let _cancels = guard_doing("cancels", move || {
                handle.cancel();
                release.set();
                if panics {
                    panic!("chaos destructor panic");
                }
            });
            yield_!((work, child(&mut rng)));
        }
        14 => {
            // Run in a run of its own, which this one polls.
            let _ = yield_!(tinyio::from_future(tinyio::to_future(child(&mut rng))));
        }
        15 => {
            let copied = yield_!(tinyio::copy(child(&mut rng)));
            let _ = yield_!((isolate(copied), child(&mut rng)));
        }
        16 => {
            // A destructor that sends on a channel whose receiver waits in this run.
            let (send, receive) = tinyio::channel::<u32>(1);
            let _sends = guard_doing("sends", move || {
                let _ = send.try_send(1);
            });
            let receiver = race((receive.recv(), release.wait()));
            yield_!((receiver, child(&mut rng)));
        }
        _ => {
            let done = yield_!(tinyio::as_completed(vec![child(&mut rng), child(&mut rng)]));
            for next in done {
                yield_!(next);
            }
        }
    }
}

/// Whatever a random tree does, every guard is dropped exactly once by the time the run
/// returns (or its panic resumes), and the loop runs again afterwards.
#[test]
fn random_trees_of_combinators_drop_every_guard_exactly_once() {
    within(120, || {
        let modes = [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always];
        let loops = modes.map(|mode| Loop::new().error_group(mode));
        // `SEEDS=n` tries more trees.
        for seed in 0..std::env::var("SEEDS").map_or(400u64, |s| s.parse().unwrap()) {
            let lp = &loops[seed as usize % 3];
            let release = Event::new();
            let tree = node(seed.wrapping_mul(0x9E3779B97F4A7C15), 4, release.clone());
            let run = (tree, sleeps_then_sets(release, seed % 3));
            if seed % 4 == 3 {
                // Polled a few times by hand, then dropped half-way.
                let mut future = tinyio::to_future(run);
                let mut cx = Context::from_waker(Waker::noop());
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    for _ in 0..seed % 5 {
                        if std::pin::Pin::new(&mut future).poll(&mut cx).is_ready() {
                            break;
                        }
                    }
                    drop(future);
                }));
            } else {
                let _ = catch_unwind(AssertUnwindSafe(|| lp.run(run)));
            }
            take_log();
            let alive = ALIVE.with_borrow(|(alive, _)| alive.clone());
            assert!(alive.is_empty(), "seed {seed}: guards left alive: {alive:?}");
            lp.run(()).unwrap();
        }
    });
}

#[tinyio::coroutine]
fn sleeps_then_sets(release: Event, millis: u64) -> () {
    yield_!(sleep(ms(millis)));
    release.set();
}

#[tinyio::coroutine]
fn fails_at_once() -> () {
    Err(Original)?
}

/// A `to_future` polled again after it gave its error says it was misused, rather than give
/// `Ok` the second time.
#[test]
fn a_to_future_polled_after_its_error_panics_rather_than_succeed() {
    let mut future = tinyio::to_future(background(fails_at_once()));
    let mut cx = Context::from_waker(Waker::noop());
    let first = std::pin::Pin::new(&mut future).poll(&mut cx);
    assert!(matches!(&first, Poll::Ready(Err(e)) if e.downcast_ref::<Original>().is_some()));
    let again = catch_unwind(AssertUnwindSafe(|| std::pin::Pin::new(&mut future).poll(&mut cx)));
    match again {
        Err(payload) => assert!(payload_str(&*payload).contains("after completion")),
        Ok(again) => panic!("polled again, it gave {again:?}"),
    }
}

//! Timers: `sleep`, `sleep_until` and `timeout`, alone, nested, and around threads.
//!
//! Timing is checked only with generous bounds; precision belongs to the benchmarks.

mod common;

use common::{Arrivals, CountDrops, head_start, ms, names, under_valgrind, within};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tinyio::{Loop, Shared, run_in_thread, sleep, sleep_until, timeout};

type Log = Rc<RefCell<Vec<String>>>;

fn log(log: &Log, line: impl Into<String>) {
    log.borrow_mut().push(line.into());
}

#[tinyio::coroutine]
fn nap(millis: u64, log: Log) -> u64 {
    self::log(&log, format!("start {millis}"));
    yield_!(sleep(ms(millis)));
    self::log(&log, format!("end {millis}"));
    millis
}

#[test]
fn test_sleep() {
    let events = Log::default();
    let start = Instant::now();
    let out = Loop::new().run((nap(100, events.clone()), nap(50, events.clone()))).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out, (100, 50));
    // Both sleep at once: each starts before either ends, and the shorter ends first.
    assert_eq!(*events.borrow(), ["start 100", "start 50", "end 50", "end 100"]);
    assert!(elapsed >= ms(100), "woke early: {elapsed:?}");
    // Ten times the sleep: a loop that overslept (waited for some later wake-up) shows here, and
    // a busy machine does not. Under valgrind, whose threads wake late, only the order counts.
    if !under_valgrind() {
        assert!(elapsed < ms(1000), "about 0.1 s expected, took {elapsed:?}");
    }
}

#[test]
fn sleep_until_a_past_instant_returns_at_once() {
    let past = Instant::now() - ms(5);
    let start = Instant::now();
    // The timeout turns "never woken" into a `None` instead of a hang.
    let out = Loop::new().run(timeout(sleep_until(past), Duration::from_secs(5))).unwrap();
    assert_eq!(out, Some(()));
    if !under_valgrind() {
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    }
}

#[test]
fn sleep_until_a_future_instant_waits_for_it() {
    let deadline = Instant::now() + ms(50);
    Loop::new().run(sleep_until(deadline)).unwrap();
    assert!(Instant::now() >= deadline);
}

/// Sleeps, and records whether it was stopped by a timeout; its guard counts its clean-up.
#[tinyio::coroutine]
fn guarded_sleep(millis: u64, drops: Rc<Cell<usize>>, saw_timeout: Rc<Cell<bool>>) -> u64 {
    let _guard = CountDrops(drops);
    let slept = try_yield!(sleep(ms(millis)));
    if let Err(error) = &slept {
        saw_timeout.set(error.is_timeout());
    }
    slept?;
    millis
}

#[test]
fn test_timeout_in_time() {
    let (drops, saw_timeout) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let work = guarded_sleep(200, drops.clone(), saw_timeout.clone());
    // Far longer than the work: however late the loop wakes, the work ends first.
    let out = Loop::new().run(timeout(work, Duration::from_secs(10))).unwrap();
    assert_eq!(out, Some(200));
    assert_eq!(drops.get(), 1);
    assert!(!saw_timeout.get());
}

#[test]
fn test_timeout_expired() {
    let (drops, saw_timeout) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let work = guarded_sleep(60_000, drops.clone(), saw_timeout.clone());
    let out = Loop::new().run(timeout(work, head_start())).unwrap();
    assert_eq!(out, None);
    assert_eq!(drops.get(), 1, "the stopped coroutine's clean-up ran");
    assert!(saw_timeout.get(), "`try_yield!` inside saw `is_timeout()`");
}

#[test]
fn expired_timeout_does_not_wait_for_the_work_it_stopped() {
    let (drops, saw_timeout) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let work = guarded_sleep(30_000, drops.clone(), saw_timeout.clone());
    let start = Instant::now();
    assert_eq!(Loop::new().run(timeout(work, head_start())).unwrap(), None);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(drops.get(), 1);
    assert!(saw_timeout.get());
}

#[test]
fn timeout_not_reached_does_not_delay_the_run() {
    // The timeout's deadline stays far in the future; the run ends when the work does.
    let start = Instant::now();
    let out = Loop::new().run(timeout(sleep(ms(10)), Duration::from_secs(30))).unwrap();
    assert_eq!(out, Some(()));
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[tinyio::coroutine]
fn slow_value(log: Log) -> u64 {
    let slept = try_yield!(sleep(3 * head_start()));
    if slept.is_err() {
        self::log(&log, "shared stopped");
    }
    slept?;
    self::log(&log, "shared finished");
    7
}

/// Waits on a shared coroutine and on a sleep of its own.
#[tinyio::coroutine]
fn worker(shared: Shared<u64>, log: Log) -> u64 {
    let waited = try_yield!((shared, sleep(Duration::from_secs(30))));
    match &waited {
        Ok(_) => self::log(&log, "worker finished"),
        Err(error) => self::log(&log, format!("worker stopped, timeout: {}", error.is_timeout())),
    }
    waited?.0
}

#[tinyio::coroutine]
fn sibling(log: Log) -> u64 {
    yield_!(sleep(3 * head_start()));
    self::log(&log, "sibling finished");
    3
}

#[tinyio::coroutine]
fn also_waits(shared: Shared<u64>) -> u64 {
    yield_!(shared) + 1
}

#[test]
fn timeout_stops_only_its_own_subtree() {
    let events = Log::default();
    let shared = slow_value(events.clone()).share();
    let run = (
        timeout(worker(shared.clone(), events.clone()), head_start()),
        sibling(events.clone()),
        also_waits(shared),
    );
    let out = Loop::new().run(run).unwrap();
    assert_eq!(out, (None, 3, 8));
    let events = events.borrow();
    assert_eq!(events[0], "worker stopped, timeout: true");
    assert!(events.contains(&"shared finished".to_string()), "{events:?}");
    assert!(events.contains(&"sibling finished".to_string()), "{events:?}");
    assert!(!events.contains(&"shared stopped".to_string()), "{events:?}");
}

#[test]
fn nested_timeouts_inner_expires() {
    let (drops, saw_timeout) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let work = guarded_sleep(30_000, drops.clone(), saw_timeout.clone());
    let out =
        Loop::new().run(timeout(timeout(work, head_start()), Duration::from_secs(20))).unwrap();
    assert_eq!(out, Some(None));
    assert_eq!(drops.get(), 1);
    assert!(saw_timeout.get());
}

#[test]
fn nested_timeouts_outer_expires() {
    let (drops, saw_timeout) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let work = guarded_sleep(30_000, drops.clone(), saw_timeout.clone());
    let start = Instant::now();
    let out =
        Loop::new().run(timeout(timeout(work, Duration::from_secs(20)), head_start())).unwrap();
    assert_eq!(out, None);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(drops.get(), 1);
    assert!(saw_timeout.get());
}

#[test]
fn nested_timeouts_both_in_time() {
    let (drops, saw_timeout) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let work = guarded_sleep(10, drops.clone(), saw_timeout.clone());
    let start = Instant::now();
    let out = Loop::new()
        .run(timeout(timeout(work, Duration::from_secs(20)), Duration::from_secs(30)))
        .unwrap();
    assert_eq!(out, Some(Some(10)));
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert!(!saw_timeout.get());
}

/// Survives a timeout of its own, then is stopped by the one around it.
#[tinyio::coroutine]
fn two_stages(log: Log) -> () {
    let first = yield_!(timeout(sleep(Duration::from_secs(30)), ms(30)));
    self::log(&log, format!("first stage: {first:?}"));
    let second = try_yield!(sleep(Duration::from_secs(30)));
    if let Err(error) = &second {
        self::log(&log, format!("second stage stopped, timeout: {}", error.is_timeout()));
    }
    second?;
    self::log(&log, "second stage finished");
}

#[test]
fn timeout_inside_a_timeout() {
    let events = Log::default();
    let out = Loop::new().run(timeout(two_stages(events.clone()), ms(30) + head_start())).unwrap();
    assert_eq!(out, None);
    assert_eq!(*events.borrow(), ["first stage: None", "second stage stopped, timeout: true"]);
}

struct ThreadState {
    started: Arc<Arrivals>,
    saw_cancel: AtomicBool,
    ended: AtomicBool,
}

impl Default for ThreadState {
    fn default() -> Self {
        ThreadState {
            started: Arc::new(Arrivals::new(1)),
            saw_cancel: AtomicBool::default(),
            ended: AtomicBool::default(),
        }
    }
}

/// A thread that loops until told to stop, polling `is_cancelled` (or, should that never
/// come, for 10 s), then takes a while to clean up.
fn looping_thread(state: Arc<ThreadState>) -> tinyio::Coro<()> {
    run_in_thread(move || {
        state.started.arrive();
        let start = Instant::now();
        while !tinyio::thread::is_cancelled() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(ms(1)); // the polling period, not a wait for anything
        }
        state.saw_cancel.store(tinyio::thread::is_cancelled(), SeqCst);
        // Slow to clean up: `run` must wait for it (nothing waits on how long it takes).
        std::thread::sleep(ms(50));
        state.ended.store(true, SeqCst);
    })
}

/// Like [`looping_thread`], through the cancellable `thread::sleep`.
fn sleeping_thread(state: Arc<ThreadState>) -> tinyio::Coro<()> {
    run_in_thread(move || {
        state.started.arrive();
        let slept = tinyio::thread::sleep(Duration::from_secs(30));
        state.saw_cancel.store(slept.is_err(), SeqCst);
        std::thread::sleep(ms(50)); // slow to clean up, as above
        state.ended.store(true, SeqCst);
    })
}

#[test]
fn timeout_of_a_thread_call() {
    let state = Arc::new(ThreadState::default());
    let start = Instant::now();
    let hold = state.started.hold(); // keeps the loop until the call runs
    let out = Loop::new().run(timeout((looping_thread(state.clone()), hold), ms(50))).unwrap();
    assert_eq!(out, None);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert!(state.saw_cancel.load(SeqCst), "the thread was told to stop");
    assert!(state.ended.load(SeqCst), "the thread was joined before `run` returned");
}

/// Awaits a thread (and the hold that keeps the loop until it runs).
#[tinyio::coroutine]
fn awaits_thread(state: Arc<ThreadState>) -> () {
    let hold = state.started.hold();
    yield_!((sleeping_thread(state), hold));
}

#[test]
fn timeout_of_a_coroutine_awaiting_a_thread_leaves_siblings_alone() {
    let state = Arc::new(ThreadState::default());
    let events = Log::default();
    let out = Loop::new()
        .run((timeout(awaits_thread(state.clone()), head_start()), sibling(events.clone())))
        .unwrap();
    assert_eq!(out, (None, 3));
    assert_eq!(*events.borrow(), ["sibling finished"]);
    assert!(state.saw_cancel.load(SeqCst));
    assert!(state.ended.load(SeqCst));
}

#[tinyio::coroutine]
fn numbered_nap(i: u32) -> u32 {
    yield_!(sleep(ms(10)));
    i
}

#[test]
fn hundred_thousand_sleepers() {
    // A thousand under valgrind, where a hundred thousand would starve the other tests.
    let n: u32 = if under_valgrind() { 1_000 } else { 100_000 };
    let naps: Vec<_> = (0..n).map(numbered_nap).collect();
    let start = Instant::now();
    let out = Loop::new().run(naps).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out.len(), n as usize);
    assert!(out.iter().copied().eq(0..n));
    assert!(elapsed >= ms(10));
    eprintln!("{n} sleepers of 10 ms took {elapsed:?}");
}

#[tinyio::coroutine]
fn keeps_going_after_a_timeout() -> () {
    if tinyio::try_yield!(sleep(Duration::from_secs(60))).is_err() {
        yield_!(); // misbehaves: it was told to stop
    }
}

const TIMED_LINE: u32 = line!() + 4;

#[tinyio::coroutine]
fn times_a_stubborn_one() -> Option<()> {
    yield_!(timeout(keeps_going_after_a_timeout(), head_start()))
}

/// A coroutine that misbehaves when its timeout stops it fails the run with a trace through
/// the coroutines that were waiting on it, each once: the `timeout` where it was called, and
/// the user's coroutine at its `yield_!` (the same line here).
#[test]
fn misbehaving_on_a_timeout_is_traced_through_its_waiters() {
    let err = Loop::new().run(times_a_stubborn_one()).unwrap_err();
    assert!(err.to_string().contains("yielded again"), "{err}");
    assert_eq!(
        names(&err),
        ["times_a_stubborn_one", "timeout", "keeps_going_after_a_timeout"],
        "{err:?}"
    );
    let trace = err.trace();
    assert_eq!((trace[0].file(), trace[0].line()), (file!(), TIMED_LINE));
    assert_eq!((trace[1].file(), trace[1].line()), (file!(), TIMED_LINE));
    assert_eq!(trace[2].file(), file!());
}

/// A coroutine yielded twice in one timed gather has one waiter, listed twice: when the time
/// runs out it is stopped, not left running as if someone else waited on it.
#[test]
fn timeout_stops_a_shared_coroutine_it_gathered_twice() {
    within(30, || {
        let long = sleep(Duration::from_secs(60)).share();
        let started = Instant::now();
        let out = Loop::new().run(timeout((long.clone(), long), ms(5))).unwrap();
        assert_eq!(out, None);
        assert!(started.elapsed() < Duration::from_secs(30));
    });
}

/// A coroutine two levels below a timeout that returns a value when stopped, instead of
/// propagating the timeout: the run fails with that misbehaviour, traced as far as the waiter
/// that was still there, rather than panicking over the waiter the timeout had already stopped.
#[test]
fn misbehaving_below_a_stopped_waiter_is_reported() {
    #[tinyio::coroutine]
    fn returns_instead() -> u32 {
        let _ = try_yield!(sleep(Duration::from_secs(3600)));
        5
    }

    #[tinyio::coroutine]
    fn waits_on_it() -> u32 {
        yield_!(returns_instead())
    }

    // The timeout must find `returns_instead` started: give it a head start.
    let error = Loop::new().run(timeout(waits_on_it(), common::head_start())).unwrap_err();
    assert!(error.to_string().contains("did not respond properly to cancellation"), "{error:?}");
    assert_eq!(names(&error).last(), Some(&"returns_instead"), "{error:?}");
}

//! `StopHandle`: stopping a loop from outside (the analogue of Python's KeyboardInterrupt).

mod common;

use common::{Arrivals, CountDrops, ms};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tinyio::{Coro, ErrorGroup, Loop, StopHandle, ThreadPool, run_in_thread, sleep};

/// What the threads report: started, told to stop, ended.
struct ThreadState {
    started: Arrivals,
    saw_cancel: AtomicUsize,
    ended: AtomicUsize,
}

impl ThreadState {
    /// For `expected` calls of [`blocking_loop`](Self::blocking_loop).
    fn expecting(expected: usize) -> Arc<Self> {
        Arc::new(ThreadState {
            started: Arrivals::new(expected),
            saw_cancel: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
        })
    }

    /// Blocks until told to stop (or, should that never come, for 10 s), then takes a while to
    /// clean up.
    fn blocking_loop(&self) {
        self.started.arrive();
        if tinyio::thread::sleep(Duration::from_secs(10)).is_err() {
            self.saw_cancel.fetch_add(1, SeqCst);
        }
        // Slow to clean up: `run` must wait for it (nothing waits on how long it takes).
        std::thread::sleep(ms(30));
        self.ended.fetch_add(1, SeqCst);
    }

    fn counts(&self) -> (usize, usize, usize) {
        (self.started.count(), self.saw_cancel.load(SeqCst), self.ended.load(SeqCst))
    }
}

fn blocking_loop(state: &Arc<ThreadState>) -> Coro<()> {
    let state = state.clone();
    run_in_thread(move || state.blocking_loop())
}

/// Stops the loop from another thread once every call of `state` has started (a call still
/// queued when the loop stops is dropped unrun).
fn stop_once_started(stop: StopHandle, state: &Arc<ThreadState>) -> std::thread::JoinHandle<()> {
    let state = state.clone();
    std::thread::spawn(move || {
        state.started.block_until_all();
        stop.stop();
    })
}

#[test]
fn stop_a_loop_blocked_on_a_thread() {
    let state = ThreadState::expecting(1);
    let lp = Loop::new();
    let stopper = stop_once_started(lp.stop_handle(), &state);
    let start = Instant::now();
    // Nothing but the thread: the loop sleeps with no deadline until the stop wakes it.
    let err = lp.run(blocking_loop(&state)).unwrap_err();
    let elapsed = start.elapsed();
    stopper.join().unwrap();
    assert!(err.is_stopped(), "{err:?}");
    assert!(!err.is_cancelled());
    assert_eq!(err.to_string(), "the loop was stopped");
    assert_eq!(state.counts(), (1, 1, 1), "told to stop, and joined before `run` returned");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tinyio::coroutine]
fn sleeps_forever(drops: Rc<Cell<usize>>) -> () {
    let _guard = CountDrops(drops);
    loop {
        yield_!(sleep(Duration::from_secs(1)));
    }
}

#[tinyio::coroutine]
fn workers(state: Arc<ThreadState>, drops: Rc<Cell<usize>>) -> () {
    let pool = ThreadPool::new(2);
    let pooled = {
        let state = state.clone();
        pool.map(move |_| state.blocking_loop(), 0..4)
    };
    let plain: Vec<_> = (0..3).map(|_| blocking_loop(&state)).collect();
    // The sleeper first: it is suspended before any thread can start, and so before the stop.
    yield_!((sleeps_forever(drops), pooled, plain));
}

#[test]
fn stop_cancels_coroutines_and_joins_every_thread() {
    let state = ThreadState::expecting(5);
    let drops = Rc::new(Cell::new(0));
    let lp = Loop::new();
    let stopper = stop_once_started(lp.stop_handle(), &state);
    let err = lp.run(workers(state.clone(), drops.clone())).unwrap_err();
    stopper.join().unwrap();
    assert!(err.is_stopped(), "{err:?}");
    assert!(err.group().is_none(), "everything stopped cleanly: {err:?}");
    // Three plain calls and the two the pool let in; the other two pooled calls never started.
    // (Under valgrind, the loop may take longer to cancel them all than a pooled call takes to
    // stop, and the pool then starts the next: only that each call started was stopped holds.)
    if common::under_valgrind() {
        let (started, saw_cancel, ended) = state.counts();
        assert!(started >= 5 && saw_cancel == started && ended == started);
    } else {
        assert_eq!(state.counts(), (5, 5, 5));
    }
    assert_eq!(drops.get(), 1);
}

#[test]
fn stop_in_always_group_mode_lists_the_stop_first() {
    let state = ThreadState::expecting(1);
    let drops = Rc::new(Cell::new(0));
    let lp = Loop::new().error_group(ErrorGroup::Always);
    let stopper = stop_once_started(lp.stop_handle(), &state);
    // The sleeper first: it is suspended before the thread can start, and so before the stop.
    let err = lp.run((sleeps_forever(drops.clone()), blocking_loop(&state))).unwrap_err();
    stopper.join().unwrap();
    assert!(err.is_stopped());
    let group = err.group().expect("always a group");
    assert!(group[0].is_stopped());
    assert!(group.len() >= 2, "{err:?}");
    assert!(group[1..].iter().all(|e| e.is_cancelled()), "{err:?}");
    assert_eq!(state.counts(), (1, 1, 1));
}

#[test]
fn stop_before_run_stops_the_next_run() {
    let lp = Loop::new();
    lp.stop_handle().stop();
    let start = Instant::now();
    let err = lp.run(sleep(Duration::from_secs(30))).unwrap_err();
    assert!(err.is_stopped(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    // The stop was used up: the run after it goes through.
    lp.run(sleep(ms(1))).unwrap();
}

#[test]
fn stop_reaches_only_its_own_loop() {
    let (stopped, other) = (Loop::new(), Loop::new());
    stopped.stop_handle().stop();
    assert_eq!(other.run(run_in_thread(|| 5)).unwrap(), 5);
    assert!(stopped.run(()).unwrap_err().is_stopped());
}

#[tinyio::coroutine]
fn stops_its_own_loop(stop: StopHandle, drops: Rc<Cell<usize>>) -> () {
    let _guard = CountDrops(drops);
    yield_!(sleep(ms(10)));
    stop.stop();
    loop {
        yield_!();
    }
}

#[test]
fn stop_from_inside_the_loop() {
    let drops = Rc::new(Cell::new(0));
    let lp = Loop::new();
    let err = lp.run(stops_its_own_loop(lp.stop_handle(), drops.clone())).unwrap_err();
    assert!(err.is_stopped(), "{err:?}");
    assert_eq!(drops.get(), 1);
}

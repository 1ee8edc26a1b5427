//! Blocking work on threads: `run_in_thread`, `try_run_in_thread`, `ThreadPool`, and how errors,
//! panics and cancellation cross between the loop and its threads.
//!
//! Timing is checked only with generous bounds; precision belongs to the benchmarks. Work that
//! must have started before a failure or a timeout stops it (a call still queued is dropped
//! unrun) is waited for through `Arrivals`, never by a sleep.

mod common;

use common::{Arrivals, CountDrops, head_start, ms, within};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::error::Error as _;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tinyio::{Coro, ErrorGroup, Loop, ThreadPool, run_in_thread, try_run_in_thread};

/// How many calls run at once, and the most seen. The first `meeting` calls wait inside until
/// they are all in: that many at once, whatever the timing (and a pool that let fewer in would
/// fail the wait).
struct Checker {
    now: AtomicUsize,
    most: AtomicUsize,
    meeting: Arrivals,
}

impl Checker {
    fn meeting(calls: usize) -> Arc<Self> {
        Arc::new(Checker {
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            meeting: Arrivals::new(calls),
        })
    }

    fn call(self: &Arc<Self>, i: u64) -> u64 {
        let inside = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(inside, SeqCst);
        if (i as usize) < self.meeting.expected() {
            self.meeting.arrive();
            self.meeting.block_until_all();
        }
        // Busy for a while, so that the calls a pool lets in overlap.
        std::thread::sleep(ms(5));
        self.now.fetch_sub(1, SeqCst);
        i
    }

    fn most(&self) -> usize {
        self.most.load(SeqCst)
    }
}

#[test]
fn test_thread_calls_run_concurrently() {
    // Every call waits for all the others to be inside at once: one by one would never finish.
    let calls = || {
        let all_inside = Arc::new(Barrier::new(100));
        (0..100u64)
            .map(|i| {
                let all_inside = all_inside.clone();
                run_in_thread(move || {
                    std::thread::sleep(ms(100)); // busy for a while
                    all_inside.wait();
                    i
                })
            })
            .collect::<Vec<_>>()
    };
    let start = Instant::now();
    let out = within(30, move || Loop::new().run(calls()).unwrap());
    let elapsed = start.elapsed();
    assert!(out.iter().copied().eq(0..100));
    assert!(elapsed >= ms(100), "{elapsed:?}");
}

fn pool_calls(pool: &ThreadPool, checker: &Arc<Checker>, n: u64) -> Vec<Coro<u64>> {
    (0..n)
        .map(|i| {
            let checker = checker.clone();
            pool.run_in_thread(move || checker.call(i))
        })
        .collect()
}

#[test]
fn test_thread_pool() {
    let checker = Checker::meeting(2);
    let out = Loop::new().run(pool_calls(&ThreadPool::new(2), &checker, 50)).unwrap();
    assert!(out.iter().copied().eq(0..50), "results in order: {out:?}");
    assert!(checker.most() <= 2, "{} at once", checker.most());
    assert_eq!(checker.most(), 2);
}

#[test]
fn test_thread_pool_map() {
    let checker = Checker::meeting(2);
    let calls = {
        let checker = checker.clone();
        ThreadPool::new(2).map(move |i| checker.call(i), 0..50)
    };
    let out = Loop::new().run(calls).unwrap();
    assert!(out.iter().copied().eq(0..50), "results in order: {out:?}");
    assert!(checker.most() <= 2, "{} at once", checker.most());
    assert_eq!(checker.most(), 2);
}

#[test]
fn test_thread_pool_of_three() {
    let checker = Checker::meeting(3);
    let out = Loop::new().run(pool_calls(&ThreadPool::new(3), &checker, 50)).unwrap();
    assert!(out.iter().copied().eq(0..50));
    assert_eq!(checker.most(), 3);
}

#[test]
fn thousand_calls_through_a_pool_of_eight() {
    let checker = Checker::meeting(0);
    let start = Instant::now();
    let out = Loop::new().run(pool_calls(&ThreadPool::new(8), &checker, 1000)).unwrap();
    eprintln!("1000 calls of 5 ms through a pool of 8 took {:?}", start.elapsed());
    assert!(out.iter().copied().eq(0..1000));
    assert!(checker.most() <= 8, "{} at once", checker.most());
}

#[test]
#[should_panic(expected = "ThreadPool::new(0)")]
fn thread_pool_of_zero_panics() {
    let _ = ThreadPool::new(0);
}

/// Fails once every call of `state` has started.
#[tinyio::coroutine]
fn raises_once_started(state: Arc<ThreadState>) -> u64 {
    yield_!(state.started.all());
    tinyio::bail!("oh no");
}

/// What a thread reports about itself: running now, started, told to stop, ended.
struct ThreadState {
    running: AtomicUsize,
    started: Arc<Arrivals>,
    saw_cancel: AtomicUsize,
    ended: AtomicUsize,
}

impl ThreadState {
    /// For `expected` calls of [`blocking_loop`](Self::blocking_loop).
    fn expecting(expected: usize) -> Arc<Self> {
        Arc::new(ThreadState {
            running: AtomicUsize::new(0),
            started: Arc::new(Arrivals::new(expected)),
            saw_cancel: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
        })
    }

    /// Blocks until told to stop (or, should that never come, for 10 s), then takes a while to
    /// clean up. Gives whether it was told to stop.
    fn blocking_loop(&self) -> bool {
        self.running.fetch_add(1, SeqCst);
        self.started.arrive();
        let cancelled = tinyio::thread::sleep(Duration::from_secs(10)).is_err();
        if cancelled {
            self.saw_cancel.fetch_add(1, SeqCst);
        }
        // Slow to clean up: `run` must wait for it (nothing waits on how long it takes).
        std::thread::sleep(ms(30));
        self.ended.fetch_add(1, SeqCst);
        self.running.fetch_sub(1, SeqCst);
        cancelled
    }

    fn get(field: &AtomicUsize) -> usize {
        field.load(SeqCst)
    }
}

fn blocking_loop(state: &Arc<ThreadState>) -> Coro<bool> {
    let state = state.clone();
    run_in_thread(move || state.blocking_loop())
}

/// The thread is told to stop when a sibling fails, whichever order they were gathered in, and
/// `run` returns the sibling's error only once the thread has ended.
fn error_to_thread(thread_first: bool) {
    let state = ThreadState::expecting(1);
    let start = Instant::now();
    let lp = Loop::new();
    let err = if thread_first {
        lp.run((blocking_loop(&state), raises_once_started(state.clone()))).unwrap_err()
    } else {
        lp.run((raises_once_started(state.clone()), blocking_loop(&state))).unwrap_err()
    };
    assert_eq!(err.to_string(), "oh no");
    assert!(err.group().is_none(), "the thread stopped cleanly: {err:?}");
    assert_eq!(ThreadState::get(&state.saw_cancel), 1, "the thread saw the cancellation");
    assert_eq!(ThreadState::get(&state.ended), 1, "`run` returned only after the thread ended");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}

#[test]
fn test_error_to_thread() {
    error_to_thread(true);
}

#[test]
fn test_error_to_thread_other_order() {
    error_to_thread(false);
}

#[derive(Debug, thiserror::Error)]
#[error("clean-up failed")]
struct CleanupFailed;

/// A thread that answers its cancellation with an error of its own.
fn answers_with_error(state: &Arc<ThreadState>) -> Coro<bool> {
    let state = state.clone();
    try_run_in_thread(move || {
        state.blocking_loop();
        Err::<bool, _>(CleanupFailed)
    })
}

#[test]
fn test_thread_answers_cancellation_with_another_error() {
    let state = ThreadState::expecting(1);
    let err = Loop::new()
        .run((answers_with_error(&state), raises_once_started(state.clone())))
        .unwrap_err();
    assert!(err.to_string().contains("oh no"), "{err}");
    let group = err.group().expect("the thread's error joins the group");
    assert_eq!(group[0].to_string(), "oh no", "the original comes first");
    let cleanup: Vec<_> =
        group.iter().filter(|e| e.downcast_ref::<CleanupFailed>().is_some()).collect();
    assert_eq!(cleanup.len(), 1, "{err:?}");
    // The original still comes first for the helpers that look at it.
    assert!(err.downcast_ref::<CleanupFailed>().is_none());
    assert_eq!(ThreadState::get(&state.ended), 1);
}

#[test]

fn thread_error_met_while_cancelling_has_a_trace() {
    let state = ThreadState::expecting(1);
    let err = Loop::new()
        .run((answers_with_error(&state), raises_once_started(state.clone())))
        .unwrap_err();
    let group = err.group().expect("the thread's error joins the group");
    let cleanup = group
        .iter()
        .find(|e| e.downcast_ref::<CleanupFailed>().is_some())
        .unwrap_or_else(|| panic!("{err:?}"));
    let at = cleanup.trace().last().unwrap_or_else(|| panic!("no trace: {err:?}"));
    assert_eq!(at.name(), "run_in_thread");
    assert!(at.file().ends_with("threads.rs"), "{at}");
}

#[test]
fn thread_error_after_a_timeout_told_it_to_stop_fails_the_run() {
    let state = ThreadState::expecting(1);
    let run = tinyio::timeout((answers_with_error(&state), state.started.hold()), ms(50));
    let err = Loop::new().run(run).unwrap_err();
    assert!(err.downcast_ref::<CleanupFailed>().is_some(), "{err:?}");
    assert_eq!(ThreadState::get(&state.saw_cancel), 1);
    assert_eq!(ThreadState::get(&state.ended), 1);
}

#[test]

fn thread_error_after_a_timeout_told_it_to_stop_has_a_trace() {
    let state = ThreadState::expecting(1);
    let run = tinyio::timeout((answers_with_error(&state), state.started.hold()), ms(50));
    let err = Loop::new().run(run).unwrap_err();
    let at = err.trace().last().unwrap_or_else(|| panic!("no trace: {err:?}"));
    assert_eq!(at.name(), "run_in_thread");
    assert!(at.file().ends_with("threads.rs"), "{at}");
}

#[test]
fn thread_answering_cancellation_with_another_error_never_group() {
    let state = ThreadState::expecting(1);
    let lp = Loop::new().error_group(ErrorGroup::Never);
    let err = lp.run((answers_with_error(&state), raises_once_started(state.clone()))).unwrap_err();
    assert_eq!(err.to_string(), "oh no");
    assert!(err.group().is_none());
    assert_eq!(ThreadState::get(&state.ended), 1);
}

#[test]
fn thread_answering_cancellation_with_a_cancellation_is_clean() {
    let state = ThreadState::expecting(1);
    let call = {
        let state = state.clone();
        try_run_in_thread(move || {
            state.blocking_loop();
            tinyio::thread::check()?;
            Ok::<_, tinyio::Error>(())
        })
    };
    let err = Loop::new().run((call, raises_once_started(state.clone()))).unwrap_err();
    assert_eq!(err.to_string(), "oh no");
    assert!(err.group().is_none(), "{err:?}");
    assert_eq!(ThreadState::get(&state.saw_cancel), 1);
}

#[derive(Debug, thiserror::Error)]
#[error("could not load the data")]
struct LoadError {
    #[source]
    source: std::io::Error,
}

#[tinyio::coroutine]
fn load(drops: Rc<Cell<usize>>) -> u64 {
    let _guard = CountDrops(drops);
    yield_!(try_run_in_thread(|| {
        std::thread::sleep(ms(20)); // busy for a while; nothing waits on how long
        Err::<u64, _>(LoadError { source: std::io::Error::other("disk on fire") })
    }))
}

#[tinyio::coroutine]
fn pauses_forever(drops: Rc<Cell<usize>>) -> () {
    let _guard = CountDrops(drops);
    loop {
        yield_!();
    }
}

#[tinyio::coroutine]
fn outer(drops: Rc<Cell<usize>>) -> u64 {
    let (loaded, ()) = yield_!((load(drops.clone()), pauses_forever(drops)));
    loaded
}

#[test]
fn test_error_from_thread() {
    let drops = Rc::new(Cell::new(0));
    let err = Loop::new().run(outer(drops.clone())).unwrap_err();
    assert_eq!(err.to_string(), "could not load the data");
    assert!(err.downcast_ref::<LoadError>().is_some());
    assert!(err.group().is_none(), "{err:?}");
    let names: Vec<_> = err.trace().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["outer", "load", "run_in_thread"]);
    let at = err.trace().last().unwrap();
    assert!(at.file().ends_with("threads.rs"), "the thread's frame is the call site: {at}");
    // The source chain is kept, after the trace.
    let trace = err.source().expect("the trace");
    assert!(trace.to_string().starts_with("in coroutine outer at "), "{trace}");
    let source = trace.source().expect("the original's source");
    assert_eq!(source.to_string(), "disk on fire");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    assert!(source.source().is_none());
    // `load` and the sibling that paused forever were both cleaned up.
    assert_eq!(drops.get(), 2);
}

#[derive(Debug, thiserror::Error)]
#[error("thread {0} failed")]
struct Failed(usize);

#[test]
fn several_threads_failing_at_once() {
    const N: usize = 3;
    let barrier = Arc::new(Barrier::new(N));
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let barrier = barrier.clone();
            try_run_in_thread(move || {
                barrier.wait();
                Err::<(), _>(Failed(i))
            })
        })
        .collect();
    let err = Loop::new().run(calls).unwrap_err();
    let group = err.group().unwrap_or_else(|| panic!("a group expected: {err:?}"));
    let failed: BTreeSet<usize> =
        group.iter().filter_map(|e| e.downcast_ref::<Failed>()).map(|f| f.0).collect();
    assert!(failed.len() > 1, "{err:?}");
    assert_eq!(failed, BTreeSet::from([0, 1, 2]), "{err:?}");
    assert!(err.downcast_ref::<Failed>().is_some(), "the original is one of them");
}

#[test]
fn panic_in_a_thread_resumes_out_of_run_after_cancelling() {
    let drops = Rc::new(Cell::new(0));
    let state = ThreadState::expecting(1);
    // Explodes once the other call runs, which must then be told to stop.
    let explode = {
        let state = state.clone();
        run_in_thread(move || -> u64 {
            state.started.block_until_all();
            panic!("thread exploded")
        })
    };
    let run = (explode, pauses_forever(drops.clone()), blocking_loop(&state));
    let payload = panic::catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"thread exploded"));
    assert_eq!(drops.get(), 1, "the sibling was cancelled first");
    assert_eq!(ThreadState::get(&state.saw_cancel), 1, "the other thread was told to stop");
    assert_eq!(ThreadState::get(&state.ended), 1, "and joined");
}

#[test]
fn no_thread_call_outlives_a_successful_run() {
    let state = ThreadState::expecting(3);
    let quick: Vec<_> = (0..20u64)
        .map(|i| {
            let state = state.clone();
            run_in_thread(move || {
                state.running.fetch_add(1, SeqCst);
                std::thread::sleep(ms(10)); // busy for a while
                state.running.fetch_sub(1, SeqCst);
                i
            })
        })
        .collect();
    let stopped = tinyio::timeout(blocking_loop(&state), ms(50));
    let pool = ThreadPool::new(2);
    let pooled: Vec<_> = (0..2)
        .map(|_| {
            let state = state.clone();
            pool.run_in_thread(move || state.blocking_loop())
        })
        .collect();
    // The hold starts after the pooled calls, once the plain one has been started too.
    let pooled = tinyio::timeout((pooled, state.started.hold()), ms(50));
    let (quick, stopped, pooled) = Loop::new().run((quick, stopped, pooled)).unwrap();
    assert!(quick.iter().copied().eq(0..20));
    assert_eq!((stopped, pooled), (None, None));
    assert_eq!(state.started.count(), 3);
    assert_eq!(ThreadState::get(&state.saw_cancel), 3);
    assert_eq!(ThreadState::get(&state.running), 0);
}

#[test]
fn no_thread_call_outlives_a_failed_run() {
    let state = ThreadState::expecting(12);
    let plain: Vec<_> = (0..10).map(|_| blocking_loop(&state)).collect();
    let pooled = {
        let state = state.clone();
        ThreadPool::new(2).map(move |_| state.blocking_loop(), 0..10)
    };
    let err = Loop::new().run((plain, pooled, raises_once_started(state.clone()))).unwrap_err();
    assert_eq!(err.to_string(), "oh no");
    // The ten plain calls and the two the pool let in; the other eight never started.
    assert_eq!(state.started.count(), 12);
    assert_eq!(ThreadState::get(&state.saw_cancel), 12);
    assert_eq!(ThreadState::get(&state.running), 0);
}

#[test]
fn no_thread_call_outlives_a_panicking_run() {
    let state = ThreadState::expecting(5);
    let plain: Vec<_> = (0..5).map(|_| blocking_loop(&state)).collect();
    // Explodes once the others run.
    let explode = {
        let state = state.clone();
        run_in_thread(move || -> () {
            state.started.block_until_all();
            panic!("thread exploded")
        })
    };
    let payload =
        panic::catch_unwind(AssertUnwindSafe(|| Loop::new().run((plain, explode)))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"thread exploded"));
    assert_eq!(state.started.count(), 5);
    assert_eq!(ThreadState::get(&state.running), 0);
}

#[test]
fn is_cancelled_outside_a_thread_call_is_false() {
    assert!(!tinyio::thread::is_cancelled());
    assert!(tinyio::thread::check().is_ok());
    let inside = Loop::new().run(run_in_thread(tinyio::thread::is_cancelled)).unwrap();
    assert!(!inside);
}

/// Waits on a thread (and on the hold that keeps the loop until it runs); answers a timeout with
/// an error of its own.
#[tinyio::coroutine]
fn answers_timeout_with_error(state: Arc<ThreadState>) -> bool {
    match tinyio::try_yield!((blocking_loop(&state), state.started.hold())) {
        Ok((stopped, ())) => stopped,
        Err(error) => {
            assert!(error.is_timeout(), "{error:?}");
            Err::<bool, _>(CleanupFailed)?
        }
    }
}

/// The coroutine fails while it still holds the thread it waited on: the thread is told to
/// stop and joined all the same, before `run` returns.
#[test]
fn thread_of_a_coroutine_failing_on_its_timeout_is_stopped_and_joined() {
    let state = ThreadState::expecting(1);
    let run = tinyio::timeout(answers_timeout_with_error(state.clone()), head_start());
    let err = Loop::new().run(run).unwrap_err();
    assert!(err.downcast_ref::<CleanupFailed>().is_some(), "{err:?}");
    assert_eq!(ThreadState::get(&state.saw_cancel), 1);
    assert_eq!(ThreadState::get(&state.ended), 1);
}

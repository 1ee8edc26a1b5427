//! Destructors: every coroutine's state is dropped exactly once, when it finishes or is
//! cancelled (or, if it never started, when the loop gives up on it), and nothing the loop holds
//! keeps a finished coroutine alive. Each test counts drops with its own static counter.

mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{DropGuard, dropped};
use tinyio::{Event, Loop, Shared, background, sleep, timeout};

/// Holds `guard`, makes a second one after a pause, and returns `x`.
#[tinyio::coroutine]
fn worker(x: u64, guard: DropGuard) -> u64 {
    let _guard = guard;
    yield_!();
    let _second = DropGuard(_guard.0);
    yield_!(sleep(Duration::ZERO));
    x
}

/// Holds `guard` and never finishes on its own.
#[tinyio::coroutine]
fn forever(guard: DropGuard) -> () {
    let _guard = guard;
    loop {
        yield_!(sleep(Duration::from_secs(3600)));
    }
}

#[tinyio::coroutine]
fn fail_after(pauses: u32) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    tinyio::bail!("crash");
}

#[test]
fn after_a_successful_run() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn root(shared: Shared<u64>) -> u64 {
        // Two guards per worker: its argument and its second local.
        let one = yield_!(worker(1, DropGuard(&DROPS)));
        assert_eq!(dropped(&DROPS), 2, "a finished coroutine's locals are dropped at once");
        let many = yield_!((0..10).map(|x| worker(x, DropGuard(&DROPS))).collect::<Vec<_>>());
        assert_eq!(dropped(&DROPS), 22);
        let (a, b) = yield_!((shared.clone(), shared));
        assert_eq!(dropped(&DROPS), 24);
        one + many.iter().sum::<u64>() + a + b
    }
    let shared = worker(100, DropGuard(&DROPS)).share();
    let out = Loop::new().run(root(shared.clone())).unwrap();
    assert_eq!(out, 1 + 45 + 200);
    assert_eq!(dropped(&DROPS), 24);
    drop(shared);
    assert_eq!(dropped(&DROPS), 24);
}

#[test]
fn after_a_crash() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    /// Holds a coroutine it never yields.
    #[tinyio::coroutine]
    fn holder(guard: DropGuard) -> () {
        let _guard = guard;
        let _never_yielded = worker(0, DropGuard(&DROPS));
        yield_!(forever(DropGuard(&DROPS)));
    }
    #[tinyio::coroutine]
    fn waits_on(shared: Shared<()>, guard: DropGuard) -> () {
        let _guard = guard;
        yield_!(shared)
    }
    #[tinyio::coroutine]
    fn starts_in_background(guard: DropGuard) -> () {
        let _guard = guard;
        yield_!(background((forever(DropGuard(&DROPS)), worker(0, DropGuard(&DROPS)))));
        yield_!(forever(DropGuard(&DROPS)));
    }
    static STARTED: AtomicBool = AtomicBool::new(false);
    #[tinyio::coroutine]
    fn never_started(guard: DropGuard) -> () {
        let _guard = guard;
        STARTED.store(true, Ordering::SeqCst);
        yield_!();
    }
    /// Starts `never_started` in the round where `fail_after(3)` fails, just before it.
    #[tinyio::coroutine]
    fn late(guard: DropGuard) -> () {
        let _guard = guard;
        for _ in 0..3 {
            yield_!();
        }
        yield_!(background(never_started(DropGuard(&DROPS))));
        yield_!(forever(DropGuard(&DROPS)));
    }
    let shared = forever(DropGuard(&DROPS)).share();
    let run = (
        (
            forever(DropGuard(&DROPS)),
            holder(DropGuard(&DROPS)),
            waits_on(shared.clone(), DropGuard(&DROPS)),
            waits_on(shared.clone(), DropGuard(&DROPS)),
            starts_in_background(DropGuard(&DROPS)),
            late(DropGuard(&DROPS)),
        ),
        fail_after(3),
    );
    assert_eq!(dropped(&DROPS), 0);
    let err = Loop::new().run(run).unwrap_err();
    assert_eq!(err.to_string(), "crash");
    assert!(!STARTED.load(Ordering::SeqCst));
    // forever: 1; holder: 1 + its unyielded worker 1 + its forever 1; the shared forever: 1;
    // waits_on: 2; starts_in_background: 1 + its two forevers 2 + its worker 2; late: 1 +
    // never_started 1.
    assert_eq!(dropped(&DROPS), 14);
    drop(shared);
    assert_eq!(dropped(&DROPS), 14);
}

#[test]
fn never_started_coroutines_are_dropped() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    // The expansion binds the diverging body in a `let`: clippy then flags the user's code.
    #[allow(clippy::diverging_sub_expression)]
    fn fails_at_once() -> () {
        tinyio::bail!("at once");
    }
    let run = (fails_at_once(), (0..100).map(|x| worker(x, DropGuard(&DROPS))).collect::<Vec<_>>());
    let err = Loop::new().run(run).unwrap_err();
    assert_eq!(err.to_string(), "at once");
    assert_eq!(dropped(&DROPS), 100);
}

#[test]
fn dropped_without_running() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let coro = worker(1, DropGuard(&DROPS));
    let shared = worker(2, DropGuard(&DROPS)).share();
    let copy = shared.clone();
    assert_eq!(dropped(&DROPS), 0);
    drop(coro);
    assert_eq!(dropped(&DROPS), 1);
    drop(shared);
    assert_eq!(dropped(&DROPS), 1);
    drop(copy);
    assert_eq!(dropped(&DROPS), 2);
}

#[test]
fn long_sleep_in_the_timer_heap_when_the_run_fails() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn root() -> () {
        yield_!(background(forever(DropGuard(&DROPS))));
        yield_!(worker(1, DropGuard(&DROPS)));
        // `worker` is gone although the hour-long sleep still sits in the timer heap.
        assert_eq!(dropped(&DROPS), 2);
        tinyio::bail!("crash");
    }
    let start = Instant::now();
    let lp = Loop::new();
    let err = lp.run(root()).unwrap_err();
    assert_eq!(err.to_string(), "crash");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(dropped(&DROPS), 3);
    // The loop lives on, holding nothing of that run.
    lp.run(sleep(Duration::ZERO)).unwrap();
    assert_eq!(dropped(&DROPS), 3);
}

#[test]
fn long_timeout_in_the_timer_heap() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn root() -> u64 {
        let x = yield_!(timeout(worker(7, DropGuard(&DROPS)), Duration::from_secs(3600)));
        // Finished in time; its deadline is still in the heap, but nothing else of it.
        assert_eq!(dropped(&DROPS), 2);
        let none = yield_!(timeout(forever(DropGuard(&DROPS)), Duration::from_millis(1)));
        // Stopped by the timeout: dropped at once.
        assert_eq!(none, None);
        assert_eq!(dropped(&DROPS), 3);
        x.unwrap()
    }
    let start = Instant::now();
    assert_eq!(Loop::new().run(root()).unwrap(), 7);
    // The stale hour-long deadline does not keep the loop waiting.
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(dropped(&DROPS), 3);
}

#[test]
fn gc_after_event() {
    // After Python's `test_gc_after_event`: `f1` finishes before `f2`, whose later deadline
    // sits in the heap before it; `f1` must be freed while the run goes on.
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn wait(event: Event, wait_time: Duration, guard: DropGuard) -> bool {
        let _guard = guard;
        yield_!(event.wait_timeout(wait_time))
    }
    #[tinyio::coroutine]
    fn set_event(event: Event) -> () {
        for _ in 0..20 {
            yield_!();
        }
        event.set();
    }
    #[tinyio::coroutine]
    fn baz() -> u64 {
        let (event1, event2) = (Event::new(), Event::new());
        let f1 = wait(event1.clone(), Duration::from_secs(10), DropGuard(&DROPS));
        let f2 = wait(event2.clone(), Duration::from_secs(2), DropGuard(&DROPS)).share();
        yield_!(background(f2.clone()));
        let (set, ()) = yield_!((f1, set_event(event1)));
        assert!(set);
        assert_eq!(dropped(&DROPS), 1);
        event2.set();
        assert!(yield_!(f2));
        3
    }
    assert_eq!(Loop::new().run(baz()).unwrap(), 3);
    assert_eq!(dropped(&DROPS), 2);
}

#[test]
fn shared_output_freed_with_the_last_handle() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn make() -> Rc<DropGuard> {
        yield_!();
        Rc::new(DropGuard(&DROPS))
    }
    #[tinyio::coroutine]
    fn read(shared: Shared<Rc<DropGuard>>) -> usize {
        let out = yield_!(shared);
        Rc::strong_count(&out)
    }
    let lp = Loop::new();
    let shared = make().share();
    // While a handle lives, the output is kept (one count there, one in `read`).
    assert_eq!(lp.run(read(shared.clone())).unwrap(), 2);
    assert_eq!(dropped(&DROPS), 0);
    drop(shared);
    assert_eq!(dropped(&DROPS), 1);
}

#[test]
fn output_of_a_plain_coroutine_moves_out() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn make() -> DropGuard {
        yield_!();
        DropGuard(&DROPS)
    }
    let out = Loop::new().run((make(), make())).unwrap();
    assert_eq!(dropped(&DROPS), 0);
    drop(out);
    assert_eq!(dropped(&DROPS), 2);
}

#[test]
fn unused_argument_lives_as_long_as_the_coroutine() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn holds(_guard: DropGuard) -> () {
        yield_!();
    }
    let coro = holds(DropGuard(&DROPS));
    // As for an `async fn`, the argument belongs to the coroutine until it ends.
    assert_eq!(dropped(&DROPS), 0);
    Loop::new().run(coro).unwrap();
    assert_eq!(dropped(&DROPS), 1);
}

//! Synchronisation: `Semaphore`, `Lock`, `Barrier` and `Event`, between coroutines and from
//! other threads.
//!
//! Timing is checked only with generous bounds; precision belongs to the benchmarks. A set from
//! another thread that must find the loop waiting is made once the loop reports a stall.

mod common;

use common::{ms, on_stall};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tinyio::{Barrier, Event, Lock, Loop, Semaphore, run_in_thread, sleep, timeout};

type Log<T = String> = Rc<RefCell<Vec<T>>>;

/// How many coroutines are inside a guarded section, and the most seen at once.
#[derive(Default)]
struct Checker {
    now: Cell<usize>,
    most: Cell<usize>,
}

impl Checker {
    fn enter(&self) {
        self.now.set(self.now.get() + 1);
        self.most.set(self.most.get().max(self.now.get()));
    }

    fn leave(&self) {
        self.now.set(self.now.get() - 1);
    }
}

// --- Semaphore -------------------------------------------------------------------------------

#[tinyio::coroutine]
fn inside_semaphore(semaphore: Semaphore, checker: Rc<Checker>, i: usize) -> usize {
    let _permit = yield_!(semaphore.acquire());
    checker.enter();
    for _ in 0..=i % 3 {
        yield_!();
    }
    checker.leave();
    i
}

fn semaphore_run(permits: usize, n: usize) -> (Vec<usize>, usize, Semaphore) {
    let semaphore = Semaphore::new(permits);
    let checker = Rc::new(Checker::default());
    let all: Vec<_> =
        (0..n).map(|i| inside_semaphore(semaphore.clone(), checker.clone(), i)).collect();
    let out = Loop::new().run(all).unwrap();
    (out, checker.most.get(), semaphore)
}

#[test]
fn test_semaphore() {
    let (out, most, semaphore) = semaphore_run(2, 50);
    assert!(out.iter().copied().eq(0..50), "results in order: {out:?}");
    assert!(most <= 2, "{most} inside at once");
    assert_eq!(most, 2);
    assert_eq!(semaphore.available(), 2, "every permit was given back");
}

#[test]
fn test_semaphore_of_three() {
    let (out, most, semaphore) = semaphore_run(3, 50);
    assert!(out.iter().copied().eq(0..50));
    assert_eq!(most, 3);
    assert_eq!(semaphore.available(), 3);
}

#[test]
fn ten_thousand_coroutines_through_a_semaphore() {
    let start = Instant::now();
    let (out, most, semaphore) = semaphore_run(4, 10_000);
    eprintln!("10^4 coroutines through a semaphore of 4 took {:?}", start.elapsed());
    assert!(out.iter().copied().eq(0..10_000));
    assert_eq!(most, 4);
    assert_eq!(semaphore.available(), 4);
}

#[tinyio::coroutine]
fn hold(semaphore: Semaphore, pauses: usize) -> () {
    let _permit = yield_!(semaphore.acquire());
    for _ in 0..pauses {
        yield_!();
    }
}

#[tinyio::coroutine]
fn queue_up(
    semaphore: Semaphore,
    id: usize,
    pauses: usize,
    arrived: Log<usize>,
    acquired: Log<usize>,
) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    arrived.borrow_mut().push(id);
    let _permit = yield_!(semaphore.acquire());
    acquired.borrow_mut().push(id);
    yield_!();
}

#[test]
fn semaphore_is_first_come_first_served() {
    let semaphore = Semaphore::new(1);
    let (arrived, acquired) = (Log::default(), Log::default());
    // Listed 0..10, they arrive in the opposite order while the holder keeps the permit.
    let queued: Vec<_> = (0..10)
        .map(|id| queue_up(semaphore.clone(), id, 10 - id, arrived.clone(), acquired.clone()))
        .collect();
    Loop::new().run((hold(semaphore.clone(), 20), queued)).unwrap();
    assert_eq!(*arrived.borrow(), (0..10).rev().collect::<Vec<_>>());
    assert_eq!(*acquired.borrow(), *arrived.borrow(), "acquired in order of arrival");
}

#[tinyio::coroutine]
fn acquire_within(semaphore: Semaphore, millis: u64, log: Log, name: &'static str) -> bool {
    let permit = yield_!(timeout(semaphore.acquire(), ms(millis)));
    log.borrow_mut()
        .push(format!("{name}: {}", if permit.is_some() { "acquired" } else { "gave up" }));
    permit.is_some()
}

#[tinyio::coroutine]
fn hold_for(semaphore: Semaphore, millis: u64) -> () {
    let _permit = yield_!(semaphore.acquire());
    yield_!(sleep(ms(millis)));
}

#[test]
fn cancelled_queued_acquire_leaves_the_queue() {
    let semaphore = Semaphore::new(1);
    let log = Log::default();
    let out = Loop::new()
        .run((
            hold_for(semaphore.clone(), 100),
            acquire_within(semaphore.clone(), 30, log.clone(), "impatient"),
            acquire_within(semaphore.clone(), 5_000, log.clone(), "patient"),
        ))
        .unwrap();
    assert_eq!(out, ((), false, true));
    assert_eq!(*log.borrow(), ["impatient: gave up", "patient: acquired"]);
    assert_eq!(semaphore.available(), 1);
}

/// Holds the permit while the others queue, then blocks the loop's thread past the first
/// waiter's deadline before giving the permit back: the permit is handed to that waiter, which
/// is stopped by its timeout before it runs, and must pass the permit on.
#[tinyio::coroutine]
fn hold_then_block(semaphore: Semaphore) -> () {
    let permit = yield_!(semaphore.acquire());
    yield_!(sleep(ms(10)));
    // The loop's thread is busy past the deadline of 50 ms: that is what this checks.
    std::thread::sleep(ms(100));
    drop(permit);
}

#[test]
fn cancelled_acquire_passes_on_a_permit_handed_to_it() {
    let semaphore = Semaphore::new(1);
    let log = Log::default();
    let out = Loop::new()
        .run((
            hold_then_block(semaphore.clone()),
            acquire_within(semaphore.clone(), 50, log.clone(), "impatient"),
            acquire_within(semaphore.clone(), 5_000, log.clone(), "patient"),
        ))
        .unwrap();
    assert_eq!(out, ((), false, true));
    assert_eq!(*log.borrow(), ["impatient: gave up", "patient: acquired"]);
    assert_eq!(semaphore.available(), 1);
}

#[test]
#[should_panic(expected = "`Semaphore::new(0)` would block every `acquire` forever")]
fn semaphore_of_zero_panics() {
    let _ = Semaphore::new(0);
}

// --- Lock ------------------------------------------------------------------------------------

#[tinyio::coroutine]
fn inside_lock(lock: &Lock, checker: &Checker, i: usize) -> usize {
    let _guard = yield_!(lock.lock());
    checker.enter();
    for _ in 0..=i % 3 {
        yield_!();
    }
    checker.leave();
    i
}

#[test]
fn test_lock() {
    let (lock, checker) = (Lock::new(), Checker::default());
    let all: Vec<_> = (0..50).map(|i| inside_lock(&lock, &checker, i)).collect();
    let out = Loop::new().run(all).unwrap();
    assert!(out.iter().copied().eq(0..50));
    assert_eq!(checker.most.get(), 1);
}

/// Reads, lets the others run, then writes: without the lock, updates would be lost.
#[tinyio::coroutine]
fn increment(counter: &Lock<u64>) -> () {
    let mut guard = yield_!(counter.lock());
    let seen = *guard;
    yield_!();
    *guard = seen + 1;
}

#[test]
fn lock_guards_its_data() {
    let counter = Lock::with_data(0u64);
    let all: Vec<_> = (0..50).map(|_| increment(&counter)).collect();
    Loop::new().run(all).unwrap();
    assert_eq!(counter.into_inner(), Some(50));
}

/// A coroutine may own its handle to the lock and yield `lock()` on it.
#[tinyio::coroutine]
fn owns_its_handle(lock: Lock, inside: Rc<Cell<usize>>, most: Rc<Cell<usize>>) -> () {
    let _guard = yield_!(lock.acquire());
    inside.set(inside.get() + 1);
    most.set(most.get().max(inside.get()));
    yield_!();
    inside.set(inside.get() - 1);
}

#[test]
fn lock_handles_are_clones_of_one_lock() {
    let (lock, inside, most) = (Lock::new(), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let all: Vec<_> =
        (0..10).map(|_| owns_its_handle(lock.clone(), inside.clone(), most.clone())).collect();
    Loop::new().run(all).unwrap();
    assert_eq!(most.get(), 1);
    assert_eq!(inside.get(), 0);
    let other = lock.clone();
    assert_eq!(lock.into_inner(), None); // `other` still holds the lock
    assert_eq!(other.into_inner(), Some(()));
}

/// A guard dropped by a cancellation gives the data back.
#[tinyio::coroutine]
fn holds_then_fails(counter: Lock<u64>) -> () {
    let mut guard = yield_!(counter.lock());
    *guard += 1;
    yield_!();
    tinyio::bail!("failed while holding the lock");
}

#[test]
fn data_survives_a_crash_while_locked() {
    let counter = Lock::with_data(41u64);
    assert!(Loop::new().run(holds_then_fails(counter.clone())).is_err());
    assert_eq!(counter.into_inner(), Some(42));
}

// --- Barrier ---------------------------------------------------------------------------------

#[tinyio::coroutine]
fn arrive(
    barrier: Barrier,
    pauses: usize,
    arrived: Rc<Cell<usize>>,
    seen_on_passing: Log<usize>,
) -> usize {
    for _ in 0..pauses {
        yield_!();
    }
    arrived.set(arrived.get() + 1);
    let index = yield_!(barrier.wait());
    seen_on_passing.borrow_mut().push(arrived.get());
    index
}

#[test]
fn test_barrier() {
    let barrier = Barrier::new(3);
    for generation in 0..2 {
        let (arrived, seen) = (Rc::new(Cell::new(0)), Log::default());
        let all =
            [0, 5, 10].map(|pauses| arrive(barrier.clone(), pauses, arrived.clone(), seen.clone()));
        let indices = Loop::new().run(all).unwrap();
        assert_eq!(indices, [0, 1, 2], "generation {generation}: indices in order of arrival");
        assert_eq!(*seen.borrow(), [3, 3, 3], "generation {generation}: nobody passed early");
    }
}

// --- Event -----------------------------------------------------------------------------------

#[tinyio::coroutine]
fn wait_and_log(event: Event, log: Log) -> () {
    yield_!(event.wait());
    log.borrow_mut().push("woken".into());
}

#[tinyio::coroutine]
fn set_after_pauses(event: Event, pauses: usize, log: Log) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    log.borrow_mut().push("setting".into());
    event.set();
    log.borrow_mut().push("set".into());
}

#[test]
fn test_event() {
    let event = Event::new();
    let log = Log::default();
    Loop::new()
        .run((
            wait_and_log(event.clone(), log.clone()),
            set_after_pauses(event.clone(), 5, log.clone()),
        ))
        .unwrap();
    assert_eq!(*log.borrow(), ["setting", "set", "woken"]);
    assert!(event.is_set());
}

#[test]
fn waiting_on_a_set_event_returns_at_once() {
    let event = Event::new();
    event.set();
    let start = Instant::now();
    let out = Loop::new()
        .run((timeout(event.wait(), ms(5_000)), event.wait_timeout(Duration::ZERO)))
        .unwrap();
    assert_eq!(out, (Some(()), true));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}

#[test]
fn event_set_from_a_timer_thread_wakes_the_loop() {
    let event = Event::new();
    let (lp, stalled) = on_stall(Loop::new(), ms(50));
    let setter = {
        let event = event.clone();
        std::thread::spawn(move || {
            stalled.recv().unwrap();
            event.set();
        })
    };
    let start = Instant::now();
    // Without a wake-up, only the 10 s timeout would end the wait (with `None`).
    let out = lp.run(timeout(event.wait(), Duration::from_secs(10))).unwrap();
    let elapsed = start.elapsed();
    setter.join().unwrap();
    assert_eq!(out, Some(()));
    assert!(elapsed >= ms(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn two_simultaneous_waits_both_finish() {
    let event = Event::new();
    let log = Log::default();
    Loop::new()
        .run((
            wait_and_log(event.clone(), log.clone()),
            wait_and_log(event.clone(), log.clone()),
            set_after_pauses(event.clone(), 3, log.clone()),
        ))
        .unwrap();
    assert_eq!(*log.borrow(), ["setting", "set", "woken", "woken"]);
}

/// A hundred threads set `event` at once, once they pass `go` (which the test opens when the
/// loop waits).
#[tinyio::coroutine]
fn set_from_hundred_threads(event: Event, go: Arc<std::sync::Barrier>) -> () {
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (event, go) = (event.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                event.set();
            })
        })
        .collect();
    let woken = yield_!(timeout(event.wait(), Duration::from_secs(60)));
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(woken, Some(()));
}

#[test]
fn hundred_threads_set_one_event() {
    let event = Event::new();
    let go = Arc::new(std::sync::Barrier::new(101));
    let (lp, stalled) = on_stall(Loop::new(), ms(10));
    let opener = {
        let go = go.clone();
        std::thread::spawn(move || {
            stalled.recv().unwrap();
            go.wait();
        })
    };
    let start = Instant::now();
    lp.run(set_from_hundred_threads(event.clone(), go)).unwrap();
    opener.join().unwrap();
    assert!(event.is_set());
    // Under valgrind, starting a hundred threads alone takes seconds.
    if !common::under_valgrind() {
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    }
}

#[tinyio::coroutine]
fn set_then_clear(event: Event, log: Log) -> () {
    // Let both waiters reach their wait first.
    for _ in 0..5 {
        yield_!();
    }
    event.set();
    event.clear();
    log.borrow_mut().push("set and cleared".into());
}

#[test]
fn clear_is_not_strict() {
    let event = Event::new();
    let log = Log::default();
    let out = Loop::new().run((
        timeout(wait_and_log(event.clone(), log.clone()), Duration::from_secs(5)),
        timeout(wait_and_log(event.clone(), log.clone()), Duration::from_secs(5)),
        set_then_clear(event.clone(), log.clone()),
    ));
    assert_eq!(out.unwrap(), (Some(()), Some(()), ()));
    assert_eq!(*log.borrow(), ["set and cleared", "woken", "woken"]);
    assert!(!event.is_set());
}

/// A semaphore made of a counter and an event that is set while permits are free.
struct EventSemaphore {
    free: Cell<usize>,
    event: Event,
}

impl EventSemaphore {
    fn new(permits: usize) -> Self {
        let event = Event::new();
        event.set();
        EventSemaphore { free: Cell::new(permits), event }
    }

    fn release(&self) {
        self.free.set(self.free.get() + 1);
        self.event.set();
    }
}

#[tinyio::coroutine]
fn acquire_by_event(semaphore: &EventSemaphore) -> () {
    loop {
        yield_!(semaphore.event.wait());
        // Woken by a `set` that another waiter may have used up already: look again.
        if semaphore.free.get() > 0 {
            break;
        }
    }
    semaphore.free.set(semaphore.free.get() - 1);
    if semaphore.free.get() == 0 {
        semaphore.event.clear();
    }
}

#[tinyio::coroutine]
fn inside_event_semaphore(semaphore: &EventSemaphore, checker: &Checker, i: usize) -> usize {
    yield_!(acquire_by_event(semaphore));
    checker.enter();
    yield_!(sleep(ms(1 + i as u64 % 3)));
    checker.leave();
    semaphore.release();
    i
}

#[test]
fn semaphore_built_from_an_event() {
    let (semaphore, checker) = (EventSemaphore::new(2), Checker::default());
    let all: Vec<_> = (0..50).map(|i| inside_event_semaphore(&semaphore, &checker, i)).collect();
    let out = Loop::new().run(timeout(all, Duration::from_secs(20))).unwrap().expect("no hang");
    assert!(out.iter().copied().eq(0..50));
    assert_eq!(checker.most.get(), 2);
    assert_eq!(semaphore.free.get(), 2);
}

// --- Event waits with timeouts, inside a gather ------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Act {
    Set,
    Clear,
}

/// Sets and clears `event` at the given times (milliseconds from `start`).
#[tinyio::coroutine]
fn script(event: Event, start: Instant, steps: Vec<(u64, Act)>) -> () {
    for (at, act) in steps {
        yield_!(tinyio::sleep_until(start + ms(at)));
        match act {
            Act::Set => event.set(),
            Act::Clear => event.clear(),
        }
    }
}

/// Waits for `event` from `start_ms` after `start`, for at most `timeout_ms`.
#[tinyio::coroutine]
fn wait_from(event: Event, start: Instant, start_ms: u64, timeout_ms: u64) -> bool {
    yield_!(tinyio::sleep_until(start + ms(start_ms)));
    yield_!(event.wait_timeout(ms(timeout_ms)))
}

fn event_timeout_case(steps: Vec<(u64, Act)>) -> ((bool, bool, ()), bool) {
    let event = Event::new();
    // One waiter from the start for 100 ms; one from 160 ms (after any clear at 150 ms). The
    // times count from one instant, so that the order of the steps does not depend on when
    // each coroutine started.
    let start = Instant::now();
    let run = (
        wait_from(event.clone(), start, 0, 100),
        wait_from(event.clone(), start, 160, 100),
        script(event.clone(), start, steps),
    );
    let out = Loop::new().run(run).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    (out, event.is_set())
}

#[test]
fn event_timeout_fires_then_set() {
    let ((first, second, ()), set) = event_timeout_case(vec![(150, Act::Set)]);
    assert!(!first, "timed out before the set");
    assert!(second, "set by the time the second waiter looks");
    assert!(set);
}

#[test]
fn event_set_then_timeout() {
    let ((first, second, ()), set) = event_timeout_case(vec![(50, Act::Set)]);
    assert!(first && second);
    assert!(set);
}

#[test]
fn event_set_timeout_clear() {
    let ((first, second, ()), set) = event_timeout_case(vec![(50, Act::Set), (150, Act::Clear)]);
    assert!(first, "set before its timeout");
    assert!(!second, "cleared before the second waiter looked, and never set again");
    assert!(!set);
}

#[test]
fn event_set_timeout_clear_set() {
    let steps = vec![(50, Act::Set), (150, Act::Clear), (200, Act::Set)];
    let ((first, second, ()), set) = event_timeout_case(steps);
    assert!(first);
    assert!(second, "set again while the second waiter waited");
    assert!(set);
}

#[test]
fn zero_timeout_wait_and_a_thread_set_are_all_the_loop_runs() {
    let event = Event::new();
    let (lp, stalled) = on_stall(Loop::new(), ms(100));
    let setter = {
        let event = event.clone();
        std::thread::spawn(move || {
            stalled.recv().unwrap();
            event.set();
        })
    };
    let start = Instant::now();
    let run = timeout((event.wait_timeout(Duration::ZERO), event.wait()), Duration::from_secs(10));
    let out = lp.run(run).unwrap();
    let elapsed = start.elapsed();
    setter.join().unwrap();
    assert_eq!(out, Some((false, ())));
    assert!(elapsed >= ms(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "the loop slept until the 10 s timeout: {elapsed:?}");
}

#[test]
fn zero_timeout_wait_and_a_set_from_run_in_thread() {
    let event = Event::new();
    let (lp, stalled) = on_stall(Loop::new(), ms(100));
    let setter = {
        let event = event.clone();
        run_in_thread(move || {
            stalled.recv().unwrap();
            event.set();
        })
    };
    let start = Instant::now();
    let out = lp.run((event.wait_timeout(Duration::ZERO), setter, event.wait())).unwrap();
    assert_eq!(out, (false, (), ()));
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}

// --- How an event keeps its waiters -------------------------------------------------------------
// An event lists its waiters in the order they came, whatever loop or thread they wait in; a
// wait that ends early (timed out, cancelled) leaves the list.

/// Waits, then logs `name` and whether the wait saw the event set.
#[tinyio::coroutine]
fn wait_named(
    event: Event,
    within_ms: u64,
    name: &'static str,
    log: Log<(&'static str, bool)>,
) -> () {
    let woken = yield_!(event.wait_timeout(ms(within_ms)));
    log.borrow_mut().push((name, woken));
}

/// Waits twice at once, in one gather, then logs `name`.
#[tinyio::coroutine]
fn wait_twice(event: Event, name: &'static str, log: Log<(&'static str, bool)>) -> () {
    yield_!((event.wait(), event.wait()));
    log.borrow_mut().push((name, true));
}

#[tinyio::coroutine]
fn set_after(event: Event, after_ms: u64) -> () {
    yield_!(sleep(ms(after_ms)));
    event.set();
}

#[test]
fn waiters_wake_in_the_order_they_came_and_one_that_left_is_not_woken() {
    let event = Event::new();
    let log = Log::default();
    // `x` times out and leaves the list before the set; `twice` waits on two leaves of its own.
    Loop::new()
        .run((
            wait_named(event.clone(), 5_000, "a", log.clone()),
            wait_named(event.clone(), 5_000, "b", log.clone()),
            wait_named(event.clone(), 20, "x", log.clone()),
            wait_twice(event.clone(), "twice", log.clone()),
            wait_named(event.clone(), 5_000, "c", log.clone()),
            set_after(event.clone(), 200),
        ))
        .unwrap();
    // All five leaves are woken in the order they came. A coroutine waiting on one leaf goes on
    // as soon as its leaf is polled; `twice` waits for its two leaves to finish first, so it is
    // resumed one round later.
    assert_eq!(
        *log.borrow(),
        [("x", false), ("a", true), ("b", true), ("c", true), ("twice", true)]
    );
}

#[test]
fn a_waiter_that_left_gives_its_place_to_the_next() {
    // `a` times out and leaves; `b` then waits alone, and is woken.
    let event = Event::new();
    let log = Log::default();
    Loop::new()
        .run((
            wait_named(event.clone(), 10, "a", log.clone()),
            sleep_then_wait(event.clone(), log.clone()),
            set_after(event.clone(), 200),
        ))
        .unwrap();
    assert_eq!(*log.borrow(), [("a", false), ("b", true)]);
}

#[tinyio::coroutine]
fn sleep_then_wait(event: Event, log: Log<(&'static str, bool)>) -> () {
    yield_!(sleep(ms(50)));
    yield_!(wait_named(event, 5_000, "b", log));
}

#[test]
fn one_event_waited_on_by_several_loops_at_once() {
    common::within(20, || {
        let event = Event::new();
        let (ready_send, ready) = std::sync::mpsc::channel();
        // Four loops on four threads wait on one event. Each also waits for a second, unset event with a timeout. The
        // event is set once every loop has stalled, which is only after its timeout: its
        // threshold of 20 ms counts from the last thing it ran.
        let loops: Vec<_> = (0..4)
            .map(|_| {
                let (event, ready_send) = (event.clone(), ready_send.clone());
                std::thread::spawn(move || {
                    let lp = Loop::new().stall_report(ms(20), move |_| {
                        let _ = ready_send.send(());
                    });
                    lp.run((event.wait(), event.wait(), Event::new().wait_timeout(ms(10)))).unwrap()
                })
            })
            .collect();
        for _ in 0..4 {
            ready.recv().unwrap();
        }
        event.set();
        for handle in loops {
            assert_eq!(handle.join().unwrap(), ((), (), false));
        }
    });
}

#[test]
fn an_event_outlives_its_home_loop() {
    // The first loop to wait on the event is gone; later loops wait on it as well.
    common::within(20, || {
        let event = Event::new();
        {
            let first = Loop::new();
            assert!(!first.run(event.wait_timeout(ms(1))).unwrap());
        }
        for _ in 0..3 {
            event.clear();
            let setter = event.clone();
            // Set once the loop waits.
            let (lp, stalled) = on_stall(Loop::new(), ms(10));
            let out = lp
                .run((
                    event.wait(),
                    event.wait_timeout(ms(5_000)),
                    run_in_thread(move || {
                        stalled.recv().unwrap();
                        setter.set();
                    }),
                ))
                .unwrap();
            assert_eq!(out, ((), true, ()));
        }
    });
}

/// Waits on `first` for at most `within`, then on `second` for at most 100 ms.
#[tinyio::coroutine]
fn wait_one_then_another(first: Event, second: Event, within: Duration) -> (bool, bool) {
    let one = yield_!(first.wait_timeout(within));
    let two = yield_!(second.wait_timeout(ms(100)));
    (one, two)
}

/// Pauses until `at`, then sets `event` at once: in the same round as the waiter's timer
/// fires, before the waiter is polled, when the two fall together.
#[tinyio::coroutine]
fn set_at(event: Event, at: Instant) -> () {
    while Instant::now() < at {
        yield_!();
    }
    event.set();
}

#[test]
fn a_wake_up_meant_for_an_earlier_wait_does_not_end_the_next() {
    // The waiter's first wait runs out, and in the same round, before it is polled, the event
    // is set and takes it off: a wake-up for the waiter is then on its way while it already
    // waits on the second event. That wake-up must not pass for the second event's `set`.
    for _ in 0..20 {
        let (first, second) = (Event::new(), Event::new());
        let at = Instant::now() + ms(5);
        let (out, ()) = Loop::new()
            .run((
                wait_one_then_another(first.clone(), second.clone(), ms(5)),
                set_at(first.clone(), at),
            ))
            .unwrap();
        assert!(out.0, "the first event was set");
        assert!(!out.1, "the second event was never set");
    }
}

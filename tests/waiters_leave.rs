//! Many waiters leaving one thing at once: cancelled while they wait on one event, semaphore,
//! lock or barrier, or timed out together. Each leaves without a scan of the others, so the
//! whole costs about n log n: each test runs its scenario at n and at 10 n and checks that the
//! larger costs less than `FACTOR` times the smaller (a scan per waiter makes it about 100x).
//! A run cancels coroutines in the order of its table, not in the order they began to wait, so
//! the scenarios make those orders differ: a waiter then leaves from the middle of its queue.
//!
//! Setting `TINYIO_UNDER_VALGRIND` skips the timing: each scenario then runs once, at n / 10
//! (it checks what the run leaves behind, not how long it takes).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Instant;

use common::{CountDrops, ms};
use tinyio::{Barrier, Coro, Event, Lock, Loop, Semaphore, timeout};

/// The smaller size, for most scenarios; the larger is ten times it.
const N: usize = 10_000;

/// Ten times the waiters may cost at most this many times the time. Linear work gives about
/// 10-12x; a scan per waiter gives about 100x. The margin is wide because timings vary on a
/// busy machine (other builds, other test binaries): each size is also timed more than once
/// and its best time kept.
const FACTOR: u32 = 30;

/// One scaling measurement at a time: tests of this file running side by side would time each
/// other.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `scenario` at `n` and `10 n`, and checks that the larger costs at most `FACTOR` times
/// the smaller.
fn scales_linearly(what: &str, n: usize, scenario: impl Fn(usize)) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if std::env::var_os("TINYIO_UNDER_VALGRIND").is_some() {
        scenario(n / 10);
        return;
    }
    let best = |size: usize, times: usize| {
        let time = || {
            let start = Instant::now();
            scenario(size);
            start.elapsed()
        };
        (0..times)
            .map(|_| time())
            .min()
            .expect("timed at least once")
    };
    let small = best(n, 3);
    let large = best(10 * n, 2);
    eprintln!("{what}: {n} in {small:?}, {} in {large:?}", 10 * n);
    assert!(
        large <= small * FACTOR,
        "{what}: {n} took {small:?}, {} took {large:?}: more than {FACTOR}x for 10x the size",
        10 * n
    );
}

/// Fails once all `n` waiters wait, so that the run cancels them all.
#[tinyio::coroutine]
fn fail_once_all_wait(started: Rc<Cell<usize>>, n: usize) -> () {
    while started.get() < n {
        yield_!();
    }
    // One more round: a waiter's wait may be a coroutine of its own (a lock's, a barrier's),
    // which the waiter's yield scheduled behind this one.
    yield_!();
    tinyio::bail!("raised");
}

/// What a waiter is given: whether it arrives a round late, a counter of those that began to
/// wait, and a guard that counts its clean-up.
struct Waiter {
    late: bool,
    started: Rc<Cell<usize>>,
    _guard: CountDrops,
}

impl Waiter {
    /// Called by the waiter just before it waits.
    fn start(&self) {
        self.started.set(self.started.get() + 1);
    }
}

/// Runs `n` waiters and a coroutine that fails once they all wait; checks that the run returns
/// that error and that every waiter was cleaned up.
///
/// Every other waiter arrives a round late, so that the order they wait in (by arrival) is not
/// the order the run cancels them in (by their place in its table): most leave from the middle
/// of the queue, where a scan or a shift of the queue would cost the most.
fn cancel_waiters(n: usize, waiter: impl Fn(Waiter) -> Coro<()>) {
    let (started, drops) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let waiters: Vec<_> = (0..n)
        .map(|i| {
            waiter(Waiter {
                late: i % 2 == 1,
                started: started.clone(),
                _guard: CountDrops(drops.clone()),
            })
        })
        .collect();
    let err = Loop::new()
        .run((waiters, fail_once_all_wait(started, n)))
        .unwrap_err();
    assert_eq!(err.to_string(), "raised");
    assert_eq!(drops.get(), n, "every waiter cleaned up");
}

#[tinyio::coroutine]
fn wait_event(event: Event, waiter: Waiter) -> () {
    if waiter.late {
        yield_!();
    }
    waiter.start();
    yield_!(event.wait());
    unreachable!("the event is never set");
}

#[test]
fn cancelling_waiters_of_one_event_scales_linearly() {
    scales_linearly("event waiters cancelled", N, |n| {
        let event = Event::new();
        cancel_waiters(n, |waiter| wait_event(event.clone(), waiter));
        // Nobody is left on the event: a new wait and a set work as ever.
        event.set();
        Loop::new().run(event.wait()).unwrap();
    });
}

#[tinyio::coroutine]
fn acquire(semaphore: Semaphore, waiter: Waiter) -> () {
    if waiter.late {
        yield_!();
    }
    waiter.start();
    let _permit = yield_!(semaphore.acquire());
    unreachable!("the only permit is never given back");
}

#[test]
fn cancelling_waiters_of_one_semaphore_scales_linearly() {
    // Twice the usual size: shifting a queue of three words per waiter is a cheap memmove, so
    // in a debug build its n^2 outweighs the rest of the work clearly only past 10^5 waiters.
    scales_linearly("semaphore waiters cancelled", 2 * N, |n| {
        let semaphore = Semaphore::new(1);
        let permit = Loop::new().run(semaphore.acquire()).unwrap();
        cancel_waiters(n, |waiter| acquire(semaphore.clone(), waiter));
        // The queue is empty: the permit goes back to the pool, not to a waiter that left.
        drop(permit);
        assert_eq!(semaphore.available(), 1);
    });
}

#[tinyio::coroutine]
fn lock(lock: Lock, waiter: Waiter) -> () {
    if waiter.late {
        yield_!();
    }
    waiter.start();
    let _held = yield_!(lock.lock());
    unreachable!("the lock is never released");
}

/// The lock's own coroutines, which queue at its semaphore, are filed in the order they begin to
/// wait: a run cancels them from the front of the queue, which a shifting queue did cheaply too.
/// The semaphore's test above covers waiters leaving from the middle.
#[test]
fn cancelling_waiters_of_one_lock_scales_linearly() {
    scales_linearly("lock waiters cancelled", N, |n| {
        let shared = Lock::new();
        let held = Loop::new().run(shared.lock()).unwrap();
        cancel_waiters(n, |waiter| lock(shared.clone(), waiter));
        drop(held);
        assert!(format!("{shared:?}").contains("locked: false"));
        let _again = Loop::new().run(shared.lock()).unwrap();
    });
}

#[tinyio::coroutine]
fn arrive(barrier: Barrier, waiter: Waiter) -> () {
    if waiter.late {
        yield_!();
    }
    waiter.start();
    yield_!(barrier.wait());
    unreachable!("one arrival short");
}

#[test]
fn cancelling_waiters_of_one_barrier_scales_linearly() {
    scales_linearly("barrier waiters cancelled", N, |n| {
        let barrier = Barrier::new(n + 1);
        cancel_waiters(n, |waiter| arrive(barrier.clone(), waiter));
        // Each of them arrived, and so waited on the barrier's event, before the failure.
        assert_eq!(
            format!("{barrier:?}"),
            format!("Barrier {{ n: {}, arrived: {n} }}", n + 1)
        );
    });
}

/// Starts its timed wait when it first runs: the waits of one round all join the event before
/// the loop next looks at its timers, however long the round takes.
#[tinyio::coroutine]
fn wait_a_little(event: Event) -> bool {
    yield_!(event.wait_timeout(ms(5)))
}

#[test]
fn event_waits_timing_out_together_scale_linearly() {
    scales_linearly("event waits timed out", N, |n| {
        let event = Event::new();
        let waits: Vec<_> = (0..n).map(|_| wait_a_little(event.clone())).collect();
        let woken = Loop::new().run(waits).unwrap();
        assert_eq!(woken.len(), n);
        assert!(woken.iter().all(|&set| !set), "none was set");
    });
}

#[test]
fn timeouts_over_one_shared_coroutine_scale_linearly() {
    scales_linearly("timeouts over one shared", N, |n| {
        let event = Event::new();
        let shared = event.wait().share();
        let timeouts: Vec<_> = (0..n).map(|_| timeout(shared.clone(), ms(5))).collect();
        let outputs = Loop::new().run(timeouts).unwrap();
        assert_eq!(outputs.len(), n);
        assert!(outputs.iter().all(Option::is_none), "all timed out");
    });
}

//! Many waiters leaving one thing at once: cancelled while they wait on one event, semaphore,
//! lock, barrier or channel, or timed out together. Each leaves without a scan of the others, so the
//! whole costs about n log n. Each test runs its scenario with every waiter on one shared thing,
//! and a control with every waiter on a thing of its own (an event each: the same number of
//! coroutines and cancellations, no shared queue to leave), both at n and at 10 n. Ten times the
//! waiters may make the shared run grow at most `FACTOR` times as much as the control grows: a
//! scan per waiter makes it grow about ten times as much. Comparing growth with the control's,
//! measured in turns, keeps the check steady on a busy machine, where the load and the caches
//! slow the larger size for both alike.
//!
//! A run cancels coroutines in the order of its table, not in the order they began to wait, so
//! the scenarios make those orders differ: a waiter then leaves from the middle of its queue.
//!
//! Setting `TINYIO_UNDER_VALGRIND` skips the timing: each scenario then runs once, at n / 10
//! (it checks what the run leaves behind, not how long it takes).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{CountDrops, ms};
use tinyio::{Barrier, Coro, Event, Lock, Loop, Receiver, Semaphore, channel, timeout};

/// The smaller size; the larger is ten times it. Larger in a release build, where 10^4 waiters
/// take a few milliseconds: too short to time steadily on a busy machine.
const N: usize = if cfg!(debug_assertions) { 10_000 } else { 30_000 };

/// How many times as much the shared run may grow as the control grows, for ten times the
/// waiters. Leaving in O(log n) gives about 1; a scan per waiter gives 4 to 10 and more.
const FACTOR: f64 = 2.5;

/// One measurement at a time: tests of this file running side by side would time each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `scenario` with a shared thing (`true`) and as the control (`false`), at `n` and `10 n`,
/// in turns, keeping each best time; checks how the shared run grows against the control.
fn costs_like_its_control(what: &str, n: usize, scenario: impl Fn(usize, bool)) {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if common::under_valgrind() {
        scenario(n / 10, true);
        return;
    }
    let best = |size: usize, rounds: usize| {
        let time = |shared: bool| {
            let start = Instant::now();
            scenario(size, shared);
            start.elapsed()
        };
        let (mut shared, mut control) = (Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            control = control.min(time(false));
            shared = shared.min(time(true));
        }
        (shared.as_secs_f64(), control.as_secs_f64())
    };
    let (small, small_control) = best(n, 5);
    let (large, large_control) = best(10 * n, 3);
    let (grew, control_grew) = (large / small, large_control / small_control);
    eprintln!(
        "{what}: shared {small:.4}s -> {large:.4}s ({grew:.1}x), control {small_control:.4}s -> \
         {large_control:.4}s ({control_grew:.1}x)"
    );
    assert!(
        grew <= control_grew * FACTOR,
        "{what}: from {n} to {} waiters the shared run grew {grew:.1}x, the control {control_grew:.1}x",
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
    let err = Loop::new().run((waiters, fail_once_all_wait(started, n))).unwrap_err();
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
fn cancelling_waiters_of_one_event_cost_like_their_control() {
    costs_like_its_control("event waiters cancelled", N, |n, shared| {
        let event = Event::new();
        let each = |_| if shared { event.clone() } else { Event::new() };
        cancel_waiters(n, |waiter| wait_event(each(()), waiter));
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
fn cancelling_waiters_of_one_semaphore_cost_like_their_control() {
    costs_like_its_control("semaphore waiters cancelled", N, |n, shared| {
        let semaphore = Semaphore::new(1);
        let permit = Loop::new().run(semaphore.acquire()).unwrap();
        cancel_waiters(n, |waiter| match shared {
            true => acquire(semaphore.clone(), waiter),
            false => wait_event(Event::new(), waiter),
        });
        // The queue is empty: the permit goes back to the pool, not to a waiter that left.
        drop(permit);
        assert_eq!(semaphore.available(), 1);
    });
}

#[tinyio::coroutine]
fn receive(rx: Receiver<u32>, waiter: Waiter) -> () {
    if waiter.late {
        yield_!();
    }
    waiter.start();
    let _ = yield_!(rx.recv());
    unreachable!("nothing is ever sent");
}

#[test]
fn cancelling_receivers_of_one_channel_cost_like_their_control() {
    costs_like_its_control("channel receivers cancelled", N, |n, shared| {
        let (tx, rx) = channel::<u32>(1);
        cancel_waiters(n, |waiter| match shared {
            true => receive(rx.clone(), waiter),
            false => wait_event(Event::new(), waiter),
        });
        // Nobody is left in line: a value sent now waits in the buffer for the next receive.
        tx.try_send(7).unwrap();
        assert_eq!(Loop::new().run(rx.recv()).unwrap(), Some(7));
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
fn cancelling_waiters_of_one_lock_cost_like_their_control() {
    costs_like_its_control("lock waiters cancelled", N, |n, shared| {
        let one = Lock::new();
        let held = Loop::new().run(one.lock()).unwrap();
        cancel_waiters(n, |waiter| match shared {
            true => lock(one.clone(), waiter),
            false => wait_event(Event::new(), waiter),
        });
        drop(held);
        assert!(format!("{one:?}").contains("locked: false"));
        let _again = Loop::new().run(one.lock()).unwrap();
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
fn cancelling_waiters_of_one_barrier_cost_like_their_control() {
    costs_like_its_control("barrier waiters cancelled", N, |n, shared| {
        let barrier = Barrier::new(n + 1);
        cancel_waiters(n, |waiter| match shared {
            true => arrive(barrier.clone(), waiter),
            false => wait_event(Event::new(), waiter),
        });
        // Each of them arrived, and so waited on the barrier's event, before the failure.
        let arrived = if shared { n } else { 0 };
        assert_eq!(
            format!("{barrier:?}"),
            format!("Barrier {{ n: {}, arrived: {arrived} }}", n + 1)
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
    costs_like_its_control("event waits timed out", N, |n, shared| {
        let event = Event::new();
        let each = || if shared { event.clone() } else { Event::new() };
        let waits: Vec<_> = (0..n).map(|_| wait_a_little(each())).collect();
        let woken = Loop::new().run(waits).unwrap();
        assert_eq!(woken.len(), n);
        assert!(woken.iter().all(|&set| !set), "none was set");
    });
}

#[test]
fn timeouts_over_one_shared_coroutine_scale_linearly() {
    costs_like_its_control("timeouts over one shared", N, |n, one| {
        let event = Event::new();
        let shared = event.wait().share();
        let each = || {
            if one { shared.clone() } else { Event::new().wait().share() }
        };
        let timeouts: Vec<_> = (0..n).map(|_| timeout(each(), ms(5))).collect();
        let outputs = Loop::new().run(timeouts).unwrap();
        assert_eq!(outputs.len(), n);
        assert!(outputs.iter().all(Option::is_none), "all timed out");
    });
}

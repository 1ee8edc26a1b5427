//! A tester's pass over thread calls, pools and the waiter queues of `Semaphore`, `Event`,
//! `Lock` and `Barrier`: cancellations in every order and at every stage, from other threads,
//! racing the releases and the ends they cancel. Each test checks what must hold whatever the
//! interleaving: every call ran once or was dropped unrun, none outlives its run, no permit is
//! lost or given twice, and every run returns (`within` fails a hang).

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::within;
use tinyio::{
    Barrier, CancelHandle, Coro, Event, Lock, Loop, Semaphore, SemaphoreGuard, ThreadPool,
    cancellable, channel, thread, timeout,
};

/// A small deterministic generator: `next(n)` in `0..n`.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

fn spin(micros: u64) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

/// Counts its drops: a call's function owns one, so that a call dropped unrun counts too.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

// --- Semaphore ---------------------------------------------------------------------------------

type Log = Rc<RefCell<Vec<usize>>>;

#[tinyio::coroutine]
fn take_and_log(semaphore: Semaphore, i: usize, log: Log) -> () {
    let _permit = yield_!(semaphore.acquire());
    log.borrow_mut().push(i);
    yield_!();
}

/// Lets the waiters queue, then cancels `order` one after the other without yielding, giving
/// the held permit back before the cancel at index `release_at` (or after all of them).
#[tinyio::coroutine]
fn cancel_in_order(
    holder: SemaphoreGuard,
    handles: Vec<CancelHandle>,
    order: Vec<usize>,
    release_at: usize,
) -> () {
    yield_!();
    yield_!();
    let mut holder = Some(holder);
    for (k, &i) in order.iter().enumerate() {
        if k == release_at {
            holder = None;
        }
        handles[i].cancel();
    }
    drop(holder);
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

#[test]
fn semaphore_waiters_cancelled_in_every_order_around_a_release() {
    const N: usize = 4;
    for permits in [1, 2] {
        for subset in 1u32..(1 << N) {
            let cancelled: Vec<usize> = (0..N).filter(|i| subset & (1 << i) != 0).collect();
            for order in permutations(&cancelled) {
                for release_at in 0..=order.len() {
                    let semaphore = Semaphore::new(permits);
                    let lp = Loop::new();
                    let held: Vec<_> = (0..permits).map(|_| semaphore.acquire()).collect();
                    let mut held = lp.run(held).unwrap();
                    let holder = held.pop().unwrap();
                    let log = Log::default();
                    let (waiters, handles): (Vec<_>, Vec<_>) = (0..N)
                        .map(|i| cancellable(take_and_log(semaphore.clone(), i, log.clone())))
                        .unzip();
                    let control = cancel_in_order(holder, handles, order.clone(), release_at);
                    let (outs, ()) = lp.run((waiters, control)).unwrap();
                    let what =
                        format!("{permits} permits, cancel {order:?}, release at {release_at}");
                    let log = log.borrow();
                    assert!(log.windows(2).all(|w| w[0] < w[1]), "{what}: not in order {log:?}");
                    for (i, out) in outs.iter().enumerate() {
                        assert_eq!(out.is_some(), log.contains(&i), "{what}: waiter {i}");
                        if !cancelled.contains(&i) {
                            assert!(out.is_some(), "{what}: waiter {i} was never served");
                        }
                    }
                    drop(held);
                    assert_eq!(semaphore.available(), permits, "{what}: a permit was lost");
                }
            }
        }
    }
}

#[tinyio::coroutine]
fn cancel_as_released(handle: CancelHandle, go: Arc<std::sync::Barrier>) -> () {
    yield_!();
    yield_!();
    go.wait();
    handle.cancel();
}

#[test]
fn permit_given_back_from_another_thread_as_the_first_waiter_is_cancelled() {
    within(120, || {
        let mut next = xorshift(0x1234_5678_9abc_def1);
        for _ in 0..1000 {
            let semaphore = Semaphore::new(1);
            let holder = Loop::new().run(semaphore.acquire()).unwrap();
            let go = Arc::new(std::sync::Barrier::new(2));
            let delay = next(30);
            let releaser = {
                let go = go.clone();
                std::thread::spawn(move || {
                    go.wait();
                    spin(delay);
                    drop(holder);
                })
            };
            let log = Log::default();
            let (first, handle) = cancellable(take_and_log(semaphore.clone(), 0, log.clone()));
            let second = take_and_log(semaphore.clone(), 1, log.clone());
            let third = timeout(take_and_log(semaphore.clone(), 2, log.clone()), Duration::ZERO);
            let out = Loop::new().run((first, second, third, cancel_as_released(handle, go)));
            let (first, (), third, ()) = out.unwrap();
            releaser.join().unwrap();
            assert_eq!(third, None);
            let expected: &[usize] = if first.is_some() { &[0, 1] } else { &[1] };
            assert_eq!(*log.borrow(), expected);
            assert_eq!(semaphore.available(), 1, "a permit was lost or given twice");
        }
    });
}

#[tinyio::coroutine]
fn contend(lock: Lock<u64>, hold: usize) -> () {
    let mut guard = yield_!(lock.lock());
    *guard += 1;
    for _ in 0..hold {
        yield_!();
    }
}

#[test]
fn lock_under_many_contenders_with_timeouts() {
    within(120, || {
        let mut next = xorshift(0xdead_beef_cafe_f00d);
        for round in 0..20 {
            let lock = Lock::with_data(0u64);
            let contenders: Vec<_> = (0..300)
                .map(|_| {
                    let hold = next(3) as usize;
                    let wait = Duration::from_micros(next(2000));
                    timeout(contend(lock.clone(), hold), wait)
                })
                .collect();
            let outs = Loop::new().run(contenders).unwrap();
            let finished = outs.iter().filter(|out| out.is_some()).count() as u64;
            assert!(format!("{lock:?}").contains("locked: false"), "round {round}");
            let count = lock.into_inner().unwrap();
            // A contender timed out while holding the lock counted too.
            assert!(count >= finished, "round {round}: {count} < {finished}");
        }
    });
}

// --- Barrier -----------------------------------------------------------------------------------

/// Arrives (its arrival counts), then is cancelled while it waits.
#[tinyio::coroutine]
fn arrive_then_cancel(barrier: Barrier) -> Option<usize> {
    let (waiting, handle) = cancellable(barrier.wait());
    yield_!((waiting, cancel_soon(handle))).0
}

#[tinyio::coroutine]
fn cancel_soon(handle: CancelHandle) -> () {
    yield_!();
    handle.cancel();
}

#[test]
fn barrier_reused_over_many_generations_with_cancelled_waiters() {
    let barrier = Barrier::new(3);
    let lp = Loop::new();
    for generation in 0..2000 {
        // The first arrival is cancelled before the others come; they still make three.
        let cancelled = lp.run(arrive_then_cancel(barrier.clone())).unwrap();
        assert_eq!(cancelled, None, "generation {generation}");
        assert!(format!("{barrier:?}").contains("arrived: 1"), "generation {generation}");
        let mut rest = lp.run([barrier.wait(), barrier.wait()]).unwrap();
        rest.sort();
        assert_eq!(rest, [1, 2], "generation {generation}");
        assert!(format!("{barrier:?}").contains("arrived: 0"), "generation {generation}");
    }
}

// --- Event -------------------------------------------------------------------------------------

#[test]
fn event_toggled_from_other_threads_while_waits_time_out() {
    within(120, || {
        let event = Event::new();
        let stop = Arc::new(AtomicBool::new(false));
        let togglers: Vec<_> = (0..2)
            .map(|t| {
                let (event, stop) = (event.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut next = xorshift(0x51 + t);
                    while !stop.load(SeqCst) {
                        event.set();
                        spin(next(50));
                        event.clear();
                        spin(next(50));
                    }
                })
            })
            .collect();
        let mut next = xorshift(0x77);
        for _ in 0..200 {
            let waits: Vec<_> =
                (0..50).map(|_| event.wait_timeout(Duration::from_micros(next(300)))).collect();
            Loop::new().run(waits).unwrap();
        }
        stop.store(true, SeqCst);
        togglers.into_iter().for_each(|t| t.join().unwrap());
        // Cleared for good: a wait now times out, and one on a set event passes.
        event.clear();
        assert!(!Loop::new().run(event.wait_timeout(Duration::from_millis(1))).unwrap());
        event.set();
        Loop::new().run(event.wait()).unwrap();
    });
}

// --- Thread calls ------------------------------------------------------------------------------

/// What the calls of a test did: started, ended, and their functions dropped (run or not).
#[derive(Default)]
struct Books {
    started: AtomicUsize,
    running: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

/// A call of kind `kind`: spins a while, blocks on a channel, sleeps, or waits for its
/// cancellation. All but the first end only when cancelled.
fn call(pool: &ThreadPool, books: &Arc<Books>, kind: u64, micros: u64) -> Coro<bool> {
    let (books, guard) = (books.clone(), Dropped(books.dropped.clone()));
    pool.run_in_thread(move || {
        let _guard = guard;
        books.started.fetch_add(1, SeqCst);
        books.running.fetch_add(1, SeqCst);
        let told = match kind {
            0 => {
                let start = std::time::Instant::now();
                while start.elapsed() < Duration::from_micros(micros) && !thread::is_cancelled() {
                    std::hint::spin_loop();
                }
                thread::is_cancelled()
            }
            1 => {
                let (_tx, rx) = channel::<u8>(1);
                rx.recv_blocking().is_none() && thread::is_cancelled()
            }
            2 => {
                let (tx, _rx) = channel::<u8>(1);
                tx.try_send(0).unwrap();
                tx.send_blocking(1).unwrap_err().is_cancelled()
            }
            3 => thread::sleep(Duration::from_secs(600)).is_err(),
            _ => {
                while !thread::is_cancelled() {
                    std::thread::park();
                }
                true
            }
        };
        books.running.fetch_sub(1, SeqCst);
        told
    })
}

/// Runs `n` calls of random kinds through `pool`, each cancelled by a thread at a random moment
/// (the blocking kinds would never end otherwise).
fn calls_cancelled_by_another_thread(pool: &ThreadPool, n: usize, seed: u64) {
    let books = Arc::new(Books::default());
    let mut next = xorshift(seed);
    let mut calls = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..n {
        let kind = next(5);
        let (work, handle) = cancellable(call(pool, &books, kind, next(100)));
        calls.push(work);
        handles.push(handle);
    }
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, next(i as u64 + 1) as usize);
    }
    let gaps: Vec<u64> = (0..n).map(|_| next(60)).collect();
    let canceller = std::thread::spawn(move || {
        for (i, gap) in order.into_iter().zip(gaps) {
            spin(gap);
            handles[i].cancel();
        }
    });
    let outs = Loop::new().run(calls).unwrap();
    canceller.join().unwrap();
    assert_eq!(books.running.load(SeqCst), 0, "a call outlived its run");
    assert_eq!(books.dropped.load(SeqCst), n, "each function is dropped once, run or not");
    let done = outs.iter().filter(|out| out.is_some()).count();
    assert!(books.started.load(SeqCst) >= done);
}

#[test]
fn pool_of_one_with_calls_cancelled_queued_running_and_ending() {
    within(300, || {
        let pool = ThreadPool::new(1);
        for seed in 1..=40 {
            calls_cancelled_by_another_thread(&pool, 30, seed);
        }
        let after = pool.map(|x: u64| x * 2, 0..5);
        assert_eq!(Loop::new().run(after).unwrap(), [0, 2, 4, 6, 8]);
    });
}

#[test]
fn loops_on_several_threads_share_one_pool() {
    within(300, || {
        let pool = ThreadPool::new(2);
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..4u64)
            .map(|t| {
                let (pool, now, most) = (pool.clone(), now.clone(), most.clone());
                std::thread::spawn(move || {
                    let mut next = xorshift(0x99 + t);
                    for _ in 0..30 {
                        let calls: Vec<_> = (0..8)
                            .map(|_| {
                                let (now, most, length) = (now.clone(), most.clone(), next(200));
                                let work = pool.run_in_thread(move || {
                                    most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                                    let start = std::time::Instant::now();
                                    while start.elapsed() < Duration::from_micros(length)
                                        && !thread::is_cancelled()
                                    {
                                        std::hint::spin_loop();
                                    }
                                    now.fetch_sub(1, SeqCst);
                                });
                                timeout(work, Duration::from_micros(next(400)))
                            })
                            .collect();
                        Loop::new().run(calls).unwrap();
                    }
                    calls_cancelled_by_another_thread(&pool, 20, 0x5eed + t);
                })
            })
            .collect();
        loops.into_iter().for_each(|t| t.join().unwrap());
        assert!(most.load(SeqCst) <= 2, "more calls at once than the pool allows");
        assert_eq!(now.load(SeqCst), 0);
        let after = pool.map(|x: u64| x + 1, 0..4);
        assert_eq!(Loop::new().run(after).unwrap(), [1, 2, 3, 4]);
    });
}

#[test]
fn calls_without_a_pool_cancelled_by_another_thread() {
    within(300, || {
        // A pool as large as the test ever needs behaves as the cache itself: use both.
        for seed in 1..=20 {
            calls_cancelled_by_another_thread(&ThreadPool::new(64), 20, seed);
        }
    });
}

#[test]
fn a_panicking_pool_call_keeps_the_pool_working() {
    within(120, || {
        let pool = ThreadPool::new(1);
        for round in 0..50 {
            let (ran, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let boom = pool.run_in_thread(|| -> u8 { panic!("boom") });
            let queued: Vec<_> = (0..5)
                .map(|_| {
                    let (ran, guard) = (ran.clone(), Dropped(dropped.clone()));
                    pool.run_in_thread(move || {
                        let _guard = guard;
                        ran.fetch_add(1, SeqCst);
                    })
                })
                .collect();
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Loop::new().run((boom, queued))
            }));
            let payload = caught.expect_err("the call's panic comes out of run");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"), "round {round}");
            assert_eq!(dropped.load(SeqCst), 5, "round {round}: every queued call dropped once");
            let after = pool.run_in_thread(move || round);
            assert_eq!(Loop::new().run(after).unwrap(), round);
        }
    });
}

#[test]
fn a_pool_dropped_with_calls_queued_still_runs_or_drops_them() {
    within(120, || {
        let (ran, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls: Vec<Coro<usize>> = {
            let pool = ThreadPool::new(1);
            (0..20)
                .map(|i| {
                    let (ran, guard) = (ran.clone(), Dropped(dropped.clone()));
                    pool.run_in_thread(move || {
                        let _guard = guard;
                        ran.fetch_add(1, SeqCst);
                        i
                    })
                })
                .collect()
            // The pool handle is dropped here: its calls keep its queue alive.
        };
        let outs = Loop::new().run(calls).unwrap();
        assert_eq!(outs, (0..20).collect::<Vec<_>>());
        assert_eq!(ran.load(SeqCst), 20);
        assert_eq!(dropped.load(SeqCst), 20);
    });
}

#[tinyio::coroutine]
fn cancel_when_told(handle: CancelHandle, started: Arc<common::Arrivals>) -> () {
    yield_!(started.all());
    handle.cancel();
}

#[test]
fn thread_sleep_is_cut_short_by_a_cancel() {
    within(120, || {
        for _ in 0..100 {
            let started = Arc::new(common::Arrivals::new(1));
            let arrived = started.clone();
            let (work, handle) = cancellable(tinyio::run_in_thread(move || {
                arrived.arrive();
                thread::sleep(Duration::from_secs(600))
            }));
            let (out, ()) = Loop::new().run((work, cancel_when_told(handle, started))).unwrap();
            assert!(out.is_none());
        }
    });
}

// --- Across loops on several threads -----------------------------------------------------------

#[tinyio::coroutine]
fn inside_for(
    semaphore: Semaphore,
    inside: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    turns: u64,
) -> () {
    let _permit = yield_!(semaphore.acquire());
    most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
    // Dropped before the permit, also when a timeout stops this at its `yield_!`.
    let _leaving = Leaving(inside);
    for _ in 0..turns {
        yield_!();
    }
}

/// Counts one out of the section on drop.
struct Leaving(Arc<AtomicUsize>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[test]
fn one_semaphore_shared_by_loops_on_several_threads_with_timeouts() {
    within(300, || {
        for permits in [1, 3] {
            let semaphore = Semaphore::new(permits);
            let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let loops: Vec<_> = (0..4u64)
                .map(|t| {
                    let (semaphore, inside, most) =
                        (semaphore.clone(), inside.clone(), most.clone());
                    std::thread::spawn(move || {
                        let mut next = xorshift(0xabc + t);
                        for _ in 0..100 {
                            let visitors: Vec<_> = (0..20)
                                .map(|_| {
                                    let visit = inside_for(
                                        semaphore.clone(),
                                        inside.clone(),
                                        most.clone(),
                                        next(3),
                                    );
                                    timeout(visit, Duration::from_micros(next(300)))
                                })
                                .collect();
                            Loop::new().run(visitors).unwrap();
                        }
                    })
                })
                .collect();
            loops.into_iter().for_each(|t| t.join().unwrap());
            assert!(most.load(SeqCst) <= permits, "more inside than permits");
            assert_eq!(inside.load(SeqCst), 0);
            assert_eq!(semaphore.available(), permits, "a permit was lost or given twice");
        }
    });
}

#[tinyio::coroutine]
fn add_one(lock: Lock<u64>, added: Arc<AtomicUsize>, turns: u64) -> () {
    let mut guard = yield_!(lock.lock());
    for _ in 0..turns {
        yield_!();
    }
    *guard += 1;
    added.fetch_add(1, SeqCst);
}

#[test]
fn one_lock_shared_by_loops_on_several_threads_with_timeouts() {
    within(300, || {
        let lock = Lock::with_data(0u64);
        let added = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..4u64)
            .map(|t| {
                let (lock, added) = (lock.clone(), added.clone());
                std::thread::spawn(move || {
                    let mut next = xorshift(0xfeed + t);
                    for _ in 0..100 {
                        let adders: Vec<_> = (0..20)
                            .map(|_| {
                                let add = add_one(lock.clone(), added.clone(), next(3));
                                timeout(add, Duration::from_micros(next(300)))
                            })
                            .collect();
                        Loop::new().run(adders).unwrap();
                    }
                })
            })
            .collect();
        loops.into_iter().for_each(|t| t.join().unwrap());
        assert!(format!("{lock:?}").contains("locked: false"));
        assert_eq!(lock.into_inner(), Some(added.load(SeqCst) as u64));
    });
}

#[test]
fn event_set_by_another_thread_as_many_waits_time_out() {
    within(300, || {
        let mut next = xorshift(0x4242);
        for round in 0..300 {
            let event = Event::new();
            let go = Arc::new(std::sync::Barrier::new(2));
            let delay = next(200);
            let setter = {
                let (event, go) = (event.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    spin(delay);
                    event.set();
                })
            };
            let waits: Vec<_> =
                (0..40).map(|i| event.wait_timeout(Duration::from_micros(i * 5))).collect();
            let patient = event.wait();
            let lp = Loop::new();
            let started = tinyio::from_future(async move {
                go.wait();
            });
            let (outs, (), ()) = lp.run((waits, started, patient)).unwrap();
            setter.join().unwrap();
            // Once one timed wait saw the flag, every later deadline saw it too: they were all
            // queued before the set.
            let first_true = outs.iter().position(|&o| o).unwrap_or(outs.len());
            assert!(outs[first_true..].iter().all(|&o| o), "round {round}: {outs:?}");
        }
    });
}

/// A call that, once told to stop, panics instead of returning.
fn panics_when_cancelled(pool: &ThreadPool, started: &Arc<common::Arrivals>) -> Coro<()> {
    let started = started.clone();
    pool.run_in_thread(move || {
        started.arrive();
        while !thread::is_cancelled() {
            std::thread::park();
        }
        panic!("stopped badly");
    })
}

#[test]
fn a_call_panicking_as_it_is_cancelled_resumes_out_of_run() {
    within(120, || {
        let pool = ThreadPool::new(1);
        for by_timeout in [false, true] {
            let started = Arc::new(common::Arrivals::new(1));
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if by_timeout {
                    // The hold keeps the loop's thread until the call runs: the timeout meets it
                    // running, not queued.
                    let call = panics_when_cancelled(&pool, &started);
                    Loop::new()
                        .run(timeout((call, started.hold()), Duration::from_millis(1)))
                        .map(drop)
                } else {
                    let (call, handle) = cancellable(panics_when_cancelled(&pool, &started));
                    Loop::new().run((call, cancel_when_told(handle, started.clone()))).map(drop)
                }
            }));
            let payload = caught.expect_err("the panic comes out of run");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"stopped badly"), "{by_timeout}");
            assert_eq!(Loop::new().run(pool.run_in_thread(|| 7)).unwrap(), 7);
        }
    });
}

#[test]
fn one_barrier_for_loops_on_several_threads_over_many_generations() {
    within(300, || {
        const THREADS: usize = 4;
        const GENERATIONS: usize = 500;
        let barrier = Barrier::new(THREADS);
        let loops: Vec<_> = (0..THREADS)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let lp = Loop::new();
                    (0..GENERATIONS).map(|_| lp.run(barrier.wait()).unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        let indices: Vec<Vec<usize>> = loops.into_iter().map(|t| t.join().unwrap()).collect();
        for generation in 0..GENERATIONS {
            let mut got: Vec<usize> = indices.iter().map(|mine| mine[generation]).collect();
            got.sort();
            assert_eq!(got, [0, 1, 2, 3], "generation {generation}");
        }
    });
}

#[tinyio::coroutine]
fn cancel_these(handles: Vec<CancelHandle>) -> () {
    for handle in handles {
        handle.cancel();
    }
}

#[test]
fn a_pool_of_one_runs_its_calls_in_order_around_cancelled_ones() {
    within(120, || {
        let pool = ThreadPool::new(1);
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Event::new();
        let first = {
            let gate = gate.clone();
            // Holds the pool's thread until the others are queued and some are cancelled.
            pool.run_in_thread(move || {
                let waited = Loop::new().run(timeout(gate.wait(), Duration::from_secs(30)));
                waited.unwrap().is_some()
            })
        };
        let mut next = xorshift(0x0dd);
        let (mut calls, mut cancelled) = (Vec::new(), Vec::new());
        for i in 0..300usize {
            let ran = ran.clone();
            let (work, handle) =
                cancellable(pool.run_in_thread(move || ran.lock().unwrap().push(i)));
            calls.push(work);
            if next(3) == 0 {
                cancelled.push(handle);
            }
        }
        #[tinyio::coroutine]
        fn then_open(cancel: Coro<()>, gate: Event) -> () {
            yield_!(cancel);
            gate.set();
        }
        let n_cancelled = cancelled.len();
        let (opened, outs, ()) =
            Loop::new().run((first, calls, then_open(cancel_these(cancelled), gate))).unwrap();
        assert!(opened);
        let ran = ran.lock().unwrap();
        assert!(ran.windows(2).all(|w| w[0] < w[1]), "out of order: {ran:?}");
        assert_eq!(ran.len(), 300 - n_cancelled);
        assert_eq!(outs.iter().filter(|out| out.is_some()).count(), ran.len());
    });
}

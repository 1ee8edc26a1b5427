//! A tester's pass on what changed in the seventh round: thread calls whose join parks its
//! thread (calls ending as they are cancelled, outputs whose drop panics, a pool of one under
//! storms of cancels, `thread::sleep` woken by a cancel, many loops on many threads sharing the
//! cache, loops nested in calls), `to_future` under several executors (many deadlines, futures
//! dropped mid-way, a sooner deadline racing the timer thread's park, a waker that panics,
//! futures outliving their executor, `from_tokio` inside, wakers that wake their own run
//! again), and the failure walk (a crash, an isolate's failure, a timeout and a cancel in one
//! round, with background, shared and held work; errors met while cancelling under every
//! `ErrorGroup`, from coroutines and from several stopped threads, inside nested isolates; stall
//! reports, and reports that panic, while joining threads that ignore their cancellation).

mod common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{DropGuard, dropped, forever, ms, payload_str, within};
use tinyio::{
    CancelHandle, Coro, ErrorGroup, Event, Loop, ThreadPool, background, cancellable, isolate,
    run_in_thread, sleep, thread, timeout, to_future,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A tiny deterministic generator of numbers below its argument.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}

// --- 1. Thread calls ---------------------------------------------------------------------------

/// An output whose drop counts itself, then panics.
struct PanicsOnDrop(&'static AtomicUsize);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("output dropped");
    }
}

/// A cancel from another thread at the moment a call returns an output whose drop panics: the
/// run either gives the output, or (the join dropped it) resumes that panic; never loses it.
/// The same loop and the cache go on working after every round.
#[test]
fn a_cancel_racing_the_end_of_a_call_whose_output_panics_when_dropped() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        let lp = Loop::new();
        let (mut given, mut panicked) = (0, 0);
        for round in 0..300 {
            let meet = Arc::new(Barrier::new(2));
            let at_the_end = meet.clone();
            let (work, handle) = cancellable(run_in_thread(move || {
                at_the_end.wait();
                MADE.fetch_add(1, SeqCst);
                PanicsOnDrop(&DROPS)
            }));
            let canceller = std::thread::spawn(move || {
                meet.wait();
                handle.cancel();
            });
            match catch_unwind(AssertUnwindSafe(|| lp.run(work))) {
                Ok(Ok(Some(out))) => {
                    given += 1;
                    let payload = catch_unwind(AssertUnwindSafe(|| drop(out))).unwrap_err();
                    assert_eq!(payload_str(payload.as_ref()), "output dropped");
                }
                Ok(Ok(None)) => panic!("round {round}: the call ran, yet its output was lost"),
                Ok(Err(err)) => panic!("round {round}: {err:?}"),
                Err(payload) => {
                    panicked += 1;
                    assert_eq!(payload_str(payload.as_ref()), "output dropped");
                }
            }
            canceller.join().unwrap();
            assert_eq!(MADE.load(SeqCst), round + 1, "the call was not joined");
            assert_eq!(dropped(&DROPS), round + 1, "an output was dropped twice or never");
            assert_eq!(lp.run(run_in_thread(move || round)).unwrap(), round);
        }
        assert_eq!(given + panicked, 300);
    });
}

/// Waits until told to stop, for at most a minute (a lost cancel fails rather than hangs).
fn until_cancelled() -> bool {
    thread::sleep(Duration::from_secs(60)).is_err()
}

/// A pool of one under storms of cancels from another thread, at random points: never two
/// calls at once, no call outlives its run, every call that ran either gave its output or saw
/// its cancel, and the pool's one thread serves the next run.
#[test]
fn a_pool_of_one_under_storms_of_cancels() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        let pool = ThreadPool::new(1);
        let lp = Loop::new();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..60u64 {
            let ran = Arc::new(AtomicUsize::new(0));
            let mut works = Vec::new();
            let mut handles: Vec<CancelHandle> = Vec::new();
            for i in 0..12u64 {
                let (ran, waits) = (ran.clone(), next(3) == 0);
                let call = pool.run_in_thread(move || {
                    let now = RUNNING.fetch_add(1, SeqCst) + 1;
                    MOST.fetch_max(now, SeqCst);
                    ran.fetch_add(1, SeqCst);
                    // Some wait for their cancel (which the last handle always brings).
                    let told = waits && until_cancelled();
                    RUNNING.fetch_sub(1, SeqCst);
                    (i, told)
                });
                let (work, handle) = cancellable(call);
                works.push(work);
                handles.push(handle);
            }
            // Cancelled in a shuffled order, with random gaps of spinning in between.
            let mut order: Vec<usize> = (0..handles.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, next(i as u64 + 1) as usize);
            }
            let gaps: Vec<u64> = order.iter().map(|_| next(50)).collect();
            let storm = std::thread::spawn(move || {
                for (i, gap) in order.into_iter().zip(gaps) {
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_micros(gap) {
                        std::hint::spin_loop();
                    }
                    handles[i].cancel();
                }
            });
            let outs = lp.run(works).unwrap();
            storm.join().unwrap();
            assert_eq!(RUNNING.load(SeqCst), 0, "round {round}: a call outlived its run");
            let given = outs.iter().flatten().count();
            assert!(given <= ran.load(SeqCst), "round {round}: an output of a call never run");
            for (i, out) in outs.iter().enumerate() {
                if let Some((j, _)) = out {
                    assert_eq!(*j, i as u64, "round {round}: outputs in the wrong places");
                }
            }
        }
        // A busy machine may see every call cancelled before the pool's thread takes one.
        assert!(MOST.load(SeqCst) <= 1, "two calls of a pool of one ran at once");
        assert_eq!(lp.run(pool.map(|x: u32| x * 2, 0..5)).unwrap(), [0, 2, 4, 6, 8]);
    });
}

/// `thread::sleep` of an hour ends as soon as its call is told to stop, whether the cancel
/// comes before the sleep starts, as it parks or while it sleeps; also after a loop nested in
/// the call has used (and may have taken the wake-up of) the thread's park.
#[test]
fn thread_sleep_is_woken_by_its_cancel_at_any_moment() {
    within(60, || {
        let lp = Loop::new();
        let told = Arc::new(AtomicUsize::new(0));
        for round in 0..400u64 {
            let told = told.clone();
            let nested = round % 2 == 1;
            let call = run_in_thread(move || {
                if nested {
                    Loop::new().run(sleep(Duration::from_micros(round % 7))).unwrap();
                }
                if thread::sleep(HOUR).is_err() {
                    told.fetch_add(1, SeqCst);
                }
            });
            let out = lp.run(timeout(call, Duration::from_micros(round % 40))).unwrap();
            assert!(out.is_none(), "round {round}: an hour's sleep finished");
        }
        // Every call started: an hour's sleep could only end by its cancel. Calls stopped
        // while still queued never ran.
        assert!(told.load(SeqCst) <= 400);
    });
}

/// A loop nested in a thread call whose coroutines look at the call's cancellation, and which
/// runs thread calls of its own that the outer cancel does not reach: it stops them itself
/// (its own timeout), joins them on the outer call's thread, and returns.
#[test]
fn a_loop_nested_in_a_thread_call_sees_the_calls_cancel_and_joins_its_own_threads() {
    #[tinyio::coroutine]
    fn watches_outer() -> u32 {
        let mut rounds = 0;
        while !thread::is_cancelled() {
            yield_!(sleep(Duration::from_micros(200)));
            rounds += 1;
        }
        rounds
    }
    within(60, || {
        for _ in 0..20 {
            let (started, heard) = mpsc::channel();
            let inner_ended = Arc::new(AtomicUsize::new(0));
            let ended = inner_ended.clone();
            let call = run_in_thread(move || {
                let (inner_started, inner_heard) = mpsc::channel();
                let inner = run_in_thread(move || {
                    inner_started.send(()).unwrap();
                    let told = until_cancelled();
                    ended.fetch_add(1, SeqCst);
                    told
                });
                let inner_held = tinyio::from_future(async move { inner_heard.recv().unwrap() });
                started.send(()).unwrap();
                let inner = timeout((inner, inner_held), ms(1));
                Loop::new().run((watches_outer(), inner)).unwrap()
            });
            // Held in the same gather as the call, so that it starts right after the call.
            let held = tinyio::from_future(async move { heard.recv().unwrap() });
            let out = Loop::new().run(timeout((call, held), ms(2))).unwrap();
            assert!(out.is_none());
            assert_eq!(inner_ended.load(SeqCst), 1, "the nested loop's call outlived it");
        }
    });
}

/// Many loops on many threads at once, sharing the cache and one pool, half their calls
/// stopped by timeouts: every call that started ended before its run returned.
#[test]
fn many_loops_on_many_threads_share_the_cache() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        let pool = ThreadPool::new(3);
        let start = Arc::new(Barrier::new(6));
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let (pool, start) = (pool.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let lp = Loop::new();
                    for round in 0..40u64 {
                        let call = |i: u64| {
                            move || {
                                RUNNING.fetch_add(1, SeqCst);
                                let stopped = i % 2 == 1 && until_cancelled();
                                RUNNING.fetch_sub(1, SeqCst);
                                (i, stopped)
                            }
                        };
                        let own: Vec<Coro<(u64, bool)>> =
                            (0..4).map(|i| run_in_thread(call(i))).collect();
                        let pooled: Vec<Coro<(u64, bool)>> =
                            (0..4).map(|i| pool.run_in_thread(call(i))).collect();
                        let length = Duration::from_micros((t * 31 + round * 17) % 300);
                        let out = lp.run((timeout(own, length), timeout(pooled, length)));
                        // Odd calls wait for their cancel: neither gather can finish.
                        assert_eq!(out.unwrap(), (None, None));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Each run joined what it started; runs on other threads may still be going only
        // until the last joins, which has happened.
        assert_eq!(RUNNING.load(SeqCst), 0, "a call outlived its run");
        assert_eq!(Loop::new().run(pool.map(|x: u8| x, 0..3)).unwrap(), [0, 1, 2]);
    });
}

// --- 2. to_future --------------------------------------------------------------------------------

#[tinyio::coroutine]
fn sleeps_then_gives(micros: u64, value: u64, guard: DropGuard) -> u64 {
    let _guard = guard;
    yield_!(sleep(Duration::from_micros(micros)));
    value
}

/// A future that finishes at once, for `select` to drop the other side mid-way.
fn ready_after_polls(polls: u32) -> impl Future<Output = ()> {
    let mut left = polls;
    std::future::poll_fn(move |cx| {
        if left == 0 {
            return Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Many futures with deadlines on futures' `LocalPool`, tokio's current-thread runtime and
/// smol's `block_on`, half of them dropped after a random number of polls: every kept one gives
/// its value, every dropped one's coroutine is dropped, and nothing is left with the timer.
#[test]
fn many_deadlines_under_three_executors_some_dropped_mid_way() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    const N: u64 = 200;
    within(60, || {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut make = |i: u64| {
            let future = to_future(sleeps_then_gives(next(3000), i, DropGuard(&GUARDS)));
            let dropped_after = (i % 2 == 1).then(|| next(6) as u32);
            async move {
                match dropped_after {
                    None => Some(future.await.unwrap()),
                    Some(polls) => {
                        let keep = Box::pin(future);
                        match futures::future::select(keep, Box::pin(ready_after_polls(polls)))
                            .await
                        {
                            futures::future::Either::Left((out, _)) => Some(out.unwrap()),
                            futures::future::Either::Right(_) => None,
                        }
                    }
                }
            }
        };
        let check = |outs: Vec<Option<u64>>| {
            for (i, out) in outs.into_iter().enumerate() {
                if i % 2 == 0 {
                    assert_eq!(out, Some(i as u64));
                } else if let Some(out) = out {
                    assert_eq!(out, i as u64);
                }
            }
        };

        let futures: Vec<_> = (0..N).map(&mut make).collect();
        let mut pool = futures::executor::LocalPool::new();
        check(pool.run_until(futures::future::join_all(futures)));
        assert_eq!(dropped(&GUARDS), N as usize);

        let futures: Vec<_> = (0..N).map(&mut make).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        let outs = local.block_on(&runtime, async move {
            let tasks: Vec<_> = futures.into_iter().map(tokio::task::spawn_local).collect();
            let mut outs = Vec::new();
            for task in tasks {
                outs.push(task.await.unwrap());
            }
            outs
        });
        check(outs);
        assert_eq!(dropped(&GUARDS), 2 * N as usize);

        let futures: Vec<_> = (0..N).map(&mut make).collect();
        check(smol::block_on(futures::future::join_all(futures)));
        assert_eq!(dropped(&GUARDS), 3 * N as usize);
    });
}

/// Sooner and sooner deadlines filed from many threads while a far one is filed, so that one
/// often comes as the timer thread is about to park for a later one: none is missed.
#[test]
fn sooner_deadlines_racing_the_timer_threads_park_are_never_missed() {
    within(60, || {
        let mut far = to_future(sleep(HOUR));
        assert!(Pin::new(&mut far).poll(&mut Context::from_waker(Waker::noop())).is_pending());
        let start = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for round in 0..150u64 {
                        // Decreasing lengths, one thread's between another's.
                        let micros = 3000 - ((round * 4 + t) * 5) % 3000;
                        futures::executor::block_on(to_future(sleep(Duration::from_micros(
                            micros,
                        ))))
                        .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(far);
    });
}

/// A waker that says it was woken, then panics.
struct PanickingWaker(mpsc::Sender<()>);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.send(());
        panic!("waker");
    }
}

/// A to_future whose executor's waker panics, woken by the timer thread, a thread call and an
/// event set from another thread: the panic strands nothing; the timer thread and the cache
/// still serve later futures, and the future finishes once polled with a sound waker.
#[test]
fn a_waker_that_panics_strands_neither_the_timer_thread_nor_the_cache() {
    #[tinyio::coroutine]
    fn waits_on_all(event: Event) -> u32 {
        yield_!(sleep(ms(1)));
        let n = yield_!(run_in_thread(|| 5u32));
        yield_!(event.wait());
        n
    }
    within(60, || {
        for _ in 0..20 {
            let (woken, wakes) = mpsc::channel();
            let waker = Waker::from(Arc::new(PanickingWaker(woken)));
            let event = Event::new();
            let mut future = to_future(waits_on_all(event.clone()));
            let mut polls = 0;
            loop {
                match Pin::new(&mut future).poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(out) => {
                        assert_eq!(out.unwrap(), 5);
                        break;
                    }
                    Poll::Pending => {}
                }
                polls += 1;
                assert!(polls < 10_000, "no progress");
                if polls == 3 {
                    // By now it waits on the event (or still on the call or timer, which
                    // wake it): set it from another thread.
                    let event = event.clone();
                    std::thread::spawn(move || event.set()).join().unwrap();
                }
                wakes.recv_timeout(Duration::from_secs(30)).expect("a wake-up was lost");
            }
            // Both the timer thread and the cache still serve a sound future.
            let later = futures::executor::block_on(to_future(sleeps_then_gives(
                500,
                9,
                DropGuard(&NOTHING),
            )));
            assert_eq!(later.unwrap(), 9);
            assert_eq!(futures::executor::block_on(to_future(run_in_thread(|| 3))).unwrap(), 3);
        }
    });
    static NOTHING: AtomicUsize = AtomicUsize::new(0);
}

/// A future polled by one executor that is dropped (a tokio runtime, a `LocalPool`) while the
/// future waits on a timer, a thread call and a tokio timer, then finished by another.
#[test]
fn futures_outlive_their_executor_and_finish_under_another() {
    #[tinyio::coroutine]
    fn mixed(release: Event) -> u32 {
        yield_!(sleep(ms(2)));
        yield_!(tinyio::from_tokio(async { tokio::time::sleep(ms(2)).await }));
        yield_!(release.wait());
        yield_!(run_in_thread(|| 1u32)) + 1
    }
    within(60, || {
        for round in 0..10 {
            let release = Event::new();
            let mut future = Box::pin(to_future(mixed(release.clone())));
            if round % 2 == 0 {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    let polled = futures::poll!(future.as_mut());
                    assert!(polled.is_pending());
                    tokio::task::yield_now().await;
                });
                drop(runtime);
            } else {
                let mut pool = futures::executor::LocalPool::new();
                pool.run_until(async {
                    assert!(futures::poll!(future.as_mut()).is_pending());
                });
                drop(pool);
            }
            release.set();
            assert_eq!(smol::block_on(future).unwrap(), 2);
        }
    });
}

#[tinyio::coroutine]
fn on_tokio(micros: u64, guard: DropGuard) -> u64 {
    let _guard = guard;
    yield_!(tinyio::from_tokio(async move {
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }));
    micros
}

/// `from_tokio` inside `to_future`, driven by a current-thread runtime (which polls it), a
/// multi-thread one (its `block_on`) and futures' `block_on` (no runtime at all), some dropped by `select!`
/// outside their own poll: every one finishes or is dropped, nothing blocks.
#[test]
fn from_tokio_inside_to_future_under_each_driver_some_dropped() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut made = 0;
        for round in 0..30u64 {
            let micros = round * 37 % 500;
            made += 3;
            let raced = async move {
                tokio::select! {
                    out = to_future(on_tokio(micros, DropGuard(&GUARDS))) => Some(out.unwrap()),
                    () = tokio::time::sleep(Duration::from_micros(250)) => None,
                }
            };
            if let Some(out) = current.block_on(raced) {
                assert_eq!(out, micros);
            }
            let on_multi = multi.block_on(to_future(on_tokio(micros, DropGuard(&GUARDS))));
            assert_eq!(on_multi.unwrap(), micros);
            let alone =
                futures::executor::block_on(to_future(on_tokio(micros, DropGuard(&GUARDS))));
            assert_eq!(alone.unwrap(), micros);
            assert_eq!(dropped(&GUARDS), made, "round {round}");
        }
    });
}

// --- 3. The failure walk -----------------------------------------------------------------------

/// Waits for `go`, then does `what`.
#[tinyio::coroutine]
fn on_go(go: Event, what: &'static str, handle: Option<CancelHandle>, guard: DropGuard) -> u32 {
    let _guard = guard;
    yield_!(go.wait()); // a lone wait: a held leaf
    match what {
        "crash" => tinyio::bail!("crash"),
        "fail inside" => tinyio::bail!("fail inside"),
        "cancel" => {
            handle.expect("a handle").cancel();
            yield_!(sleep(HOUR));
        }
        _ => yield_!(sleep(HOUR)),
    }
    0
}

/// Takes its cancel badly: raises an error of its own.
#[tinyio::coroutine]
fn raises_while_cancelled(guard: DropGuard) -> () {
    let _guard = guard;
    if try_yield!(sleep(HOUR)).is_err() {
        tinyio::bail!("while cancelling");
    }
}

#[tinyio::coroutine]
fn isolated_then_waits(inner: Coro<u32>, guard: DropGuard) -> u32 {
    let _guard = guard;
    let failed = yield_!(isolate(inner));
    assert_eq!(failed.unwrap_err().to_string(), "fail inside");
    yield_!(sleep(HOUR));
    0
}

#[tinyio::coroutine]
fn shares(shared: tinyio::Shared<u32>) -> u32 {
    yield_!(shared)
}

#[tinyio::coroutine]
fn sets_after(go: Event) -> () {
    yield_!();
    go.set();
}

/// A crash, an isolate's failure, a timeout's expiry and a cancel on demand, all in the round
/// after one event is set, in every order the waiters can be queued, with background work, a
/// shared coroutine finished in an earlier run, held leaves, a thread call that ignores its
/// cancel for a while and a coroutine that raises while cancelled; under each `ErrorGroup`.
/// The error is the crash's, the group as the mode says; everything is dropped and joined, and
/// the shared output survives for the next run.
#[test]
fn a_crash_an_isolate_failure_a_timeout_and_a_cancel_in_one_round() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        let mut made = 0;
        for mode in [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always] {
            let lp = Loop::new().error_group(mode);
            let shared = run_in_thread(|| 41u32).share();
            assert_eq!(lp.run(shared.clone()).unwrap(), 41);
            for rotation in 0..4 {
                let go = Event::new();
                let (cancelled_work, handle) = cancellable(forever(DropGuard(&GUARDS)));
                let mut actors: Vec<Coro<u32>> = vec![
                    on_go(go.clone(), "crash", None, DropGuard(&GUARDS)),
                    isolated_then_waits(
                        on_go(go.clone(), "fail inside", None, DropGuard(&GUARDS)),
                        DropGuard(&GUARDS),
                    ),
                    on_go(go.clone(), "cancel", Some(handle), DropGuard(&GUARDS)),
                    on_go(go.clone(), "wait", None, DropGuard(&GUARDS)),
                ];
                actors.rotate_left(rotation);
                made += 8;
                let (started, heard) = mpsc::channel();
                let ignores = run_in_thread(move || {
                    started.send(()).unwrap();
                    while !thread::is_cancelled() {
                        std::hint::spin_loop();
                    }
                    // Ignores its cancel a moment longer, then ends.
                    let _ = Loop::new().run(sleep(ms(2)));
                    THREADS.fetch_add(1, SeqCst);
                });
                let held = tinyio::from_future(async move { heard.recv().unwrap() });
                let expired = timeout(go.wait(), Duration::ZERO);
                let work = (
                    background(forever(DropGuard(&GUARDS))),
                    shares(shared.clone()),
                    (ignores, held),
                    raises_while_cancelled(DropGuard(&GUARDS)),
                    cancelled_work,
                    expired,
                    actors,
                    sets_after(go.clone()),
                );
                let err = lp.run(work).unwrap_err();
                let original = err.group().map_or(&err, |group| &group[0]);
                assert_eq!(original.to_string(), "crash", "{mode:?} {rotation}: {err:?}");
                assert_eq!(original.trace().last().map(|f| f.name()), Some("on_go"));
                let others: Vec<String> = err
                    .group()
                    .unwrap_or_default()
                    .iter()
                    .skip(1)
                    .filter(|e| !e.is_cancelled())
                    .map(|e| e.to_string())
                    .collect();
                match mode {
                    ErrorGroup::Never => assert!(err.group().is_none(), "{err:?}"),
                    ErrorGroup::Auto | ErrorGroup::Always => {
                        assert_eq!(others, ["while cancelling"], "{mode:?} {rotation}: {err:?}");
                    }
                }
                if mode == ErrorGroup::Always {
                    let clean = err.group().unwrap().iter().filter(|e| e.is_cancelled()).count();
                    assert!(clean >= 3, "the clean cancellations are listed: {err:?}");
                }
                assert_eq!(dropped(&GUARDS), made, "{mode:?} {rotation}: a guard was kept");
                assert_eq!(THREADS.load(SeqCst), made / 8, "the call was not joined");
                assert_eq!(lp.run(shared.clone()).unwrap(), 41, "the shared output was lost");
            }
        }
    });
}

/// A run that fails while thread calls ignore their cancel: with a tiny threshold the stall
/// report names every call still joined, once, and may release them; with a huge one (and with
/// `Duration::MAX`) it never reports, and the calls are released from outside.
#[test]
fn stall_reports_while_joining_threads_that_ignore_their_cancel() {
    #[tinyio::coroutine]
    fn fails_once(started: Arc<common::Arrivals>) -> () {
        yield_!(started.all());
        tinyio::bail!("fails");
    }
    within(60, || {
        for threshold in [Duration::ZERO, Duration::from_nanos(1), ms(1)] {
            let release = Arc::new(Mutex::new(Vec::<mpsc::Sender<()>>::new()));
            let joinings = Arc::new(Mutex::new(Vec::new()));
            let lp = Loop::new().stall_report(threshold, {
                let (release, joinings) = (release.clone(), joinings.clone());
                move |stall| {
                    if !stall.joining().is_empty() {
                        let names: Vec<_> = stall.joining().iter().map(|f| f.name()).collect();
                        joinings.lock().unwrap().push(names);
                        for send in release.lock().unwrap().drain(..) {
                            send.send(()).unwrap();
                        }
                    }
                }
            });
            let started = Arc::new(common::Arrivals::new(3));
            let calls: Vec<Coro<()>> = (0..3)
                .map(|_| {
                    let (send, recv) = mpsc::channel();
                    release.lock().unwrap().push(send);
                    let started = started.clone();
                    run_in_thread(move || {
                        started.arrive();
                        recv.recv().unwrap(); // ignores its cancel until released
                    })
                })
                .collect();
            let err = lp.run((calls, fails_once(started))).unwrap_err();
            assert_eq!(err.to_string(), "fails");
            let joinings = joinings.lock().unwrap();
            assert_eq!(joinings.len(), 1, "{threshold:?}: one report per join: {joinings:?}");
            assert_eq!(joinings[0], ["run_in_thread"; 3]);
        }
        for threshold in [HOUR, Duration::MAX] {
            let reports = Arc::new(AtomicUsize::new(0));
            let lp = Loop::new().stall_report(threshold, {
                let reports = reports.clone();
                move |_| {
                    reports.fetch_add(1, SeqCst);
                }
            });
            let started = Arc::new(common::Arrivals::new(2));
            let told = Arc::new(Barrier::new(3));
            let (release, released) = mpsc::channel::<()>();
            let released = Arc::new(Mutex::new(released));
            let calls: Vec<Coro<()>> = (0..2)
                .map(|_| {
                    let (started, told, released) =
                        (started.clone(), told.clone(), released.clone());
                    run_in_thread(move || {
                        started.arrive();
                        while !thread::is_cancelled() {
                            std::hint::spin_loop();
                        }
                        told.wait();
                        released.lock().unwrap().recv().unwrap();
                    })
                })
                .collect();
            let releaser = std::thread::spawn(move || {
                told.wait(); // both were told to stop: the run is joining them
                release.send(()).unwrap();
                release.send(()).unwrap();
            });
            let err = lp.run((calls, fails_once(started))).unwrap_err();
            assert_eq!(err.to_string(), "fails");
            releaser.join().unwrap();
            assert_eq!(reports.load(SeqCst), 0, "{threshold:?} was reached");
        }
    });
}

/// Errors met while cancelling from a thread call and from coroutines, under each mode, when
/// the failure comes from a timeout stopping work inside an isolate: the isolate gives the
/// group (always as `Auto`), the run goes on, and the run's own mode does not apply.
#[test]
fn errors_met_while_a_timeout_stops_work_inside_an_isolate() {
    #[derive(Debug, thiserror::Error)]
    #[error("thread clean-up failed")]
    struct CleanupFailed;
    #[tinyio::coroutine]
    fn inside(started: Arc<common::Arrivals>, ended: Arc<AtomicBool>) -> u32 {
        let call = tinyio::try_run_in_thread(move || {
            started.arrive();
            while !thread::is_cancelled() {
                std::hint::spin_loop();
            }
            ended.store(true, SeqCst);
            Err::<(), _>(CleanupFailed)
        });
        yield_!((call, raises_while_cancelled(DropGuard(&IGNORED))));
        1
    }
    #[tinyio::coroutine]
    fn fails_after(started: Arc<common::Arrivals>) -> u32 {
        yield_!(started.all());
        tinyio::bail!("inner failure");
    }
    static IGNORED: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        for mode in [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always] {
            let started = Arc::new(common::Arrivals::new(1));
            let ended = Arc::new(AtomicBool::new(false));
            let work = (inside(started.clone(), ended.clone()), fails_after(started));
            let out = Loop::new().error_group(mode).run(isolate(work)).unwrap();
            let err = out.unwrap_err();
            assert!(ended.load(SeqCst), "the call was joined");
            let group = err.group().expect("errors met while cancelling: a group");
            assert_eq!(group[0].to_string(), "inner failure");
            let mut others: Vec<String> = group[1..].iter().map(|e| e.to_string()).collect();
            others.sort();
            assert_eq!(others, ["thread clean-up failed", "while cancelling"], "{mode:?}");
        }
    });
}

#[derive(Debug, thiserror::Error)]
#[error("clean-up {0} failed")]
struct CleanupFailed(u32);

/// A thread call that waits for its cancel (a minute at most), then says so and ends as `end`
/// says: an error of its own, or a panic.
fn fails_once_told(n: u32, panics: bool, started: Arc<common::Arrivals>) -> Coro<()> {
    tinyio::try_run_in_thread(move || {
        started.arrive();
        let _ = thread::sleep(Duration::from_secs(60));
        if panics {
            panic!("thread {n} panicked while stopping");
        }
        Err::<(), _>(CleanupFailed(n))
    })
}

#[tinyio::coroutine]
fn cancels_once_all_started(started: Arc<common::Arrivals>, handle: CancelHandle) -> () {
    yield_!(started.all());
    handle.cancel();
}

/// Thread calls stopped by a timeout (joined at the end of the run) or by a handle (joined at
/// once) where the first joined fails with an error and a later one panics: the panic is
/// fatal, as a thread's panic always is, and resumes from `run`; it is not dropped behind the
/// first failure.
#[test]
fn a_thread_panicking_after_another_fails_while_stopped_is_not_lost() {
    within(60, || {
        for by_handle in [false, true] {
            let started = Arc::new(common::Arrivals::new(2));
            let started_too = started.clone();
            let calls = (
                fails_once_told(1, false, started.clone()),
                fails_once_told(2, true, started.clone()),
                started.hold(),
            );
            let lp = Loop::new();
            let ran = catch_unwind(AssertUnwindSafe(|| {
                if by_handle {
                    let (work, handle) = cancellable(calls);
                    lp.run((work, cancels_once_all_started(started_too, handle))).map(drop)
                } else {
                    lp.run(timeout(calls, ms(1))).map(drop)
                }
            }));
            let payload = match ran {
                Err(payload) => payload,
                Ok(out) => panic!("by handle {by_handle}: the panic was lost: {out:?}"),
            };
            assert_eq!(payload_str(payload.as_ref()), "thread 2 panicked while stopping");
        }
    });
}

/// A stall report that panics while the run joins a thread that ignores its cancel: the panic
/// comes out of `run`, but only once the thread has been joined (no thread outlives its run).
#[test]
fn a_stall_report_that_panics_while_joining_still_joins_the_thread() {
    #[tinyio::coroutine]
    fn fails_once(started: Arc<common::Arrivals>) -> () {
        yield_!(started.all());
        tinyio::bail!("fails");
    }
    within(60, || {
        for round in 0..5 {
            let ended = Arc::new(AtomicBool::new(false));
            let (release, released) = mpsc::channel::<()>();
            let release = Mutex::new(Some(release));
            let lp = Loop::new().stall_report(Duration::ZERO, move |stall| {
                if !stall.joining().is_empty() {
                    release.lock().unwrap().take().map(|send| send.send(()));
                    panic!("report");
                }
            });
            let started = Arc::new(common::Arrivals::new(1));
            let call = {
                let (started, ended) = (started.clone(), ended.clone());
                run_in_thread(move || {
                    started.arrive();
                    released.recv().unwrap(); // ignores its cancel until the report
                    // A clean-up that takes a moment: a run that did not join would be back
                    // well before it ends.
                    std::thread::sleep(ms(50));
                    ended.store(true, SeqCst);
                })
            };
            let ran = catch_unwind(AssertUnwindSafe(|| lp.run((call, fails_once(started)))));
            let payload = ran.map(|out| out.map(drop)).unwrap_err();
            assert_eq!(payload_str(payload.as_ref()), "report");
            assert!(ended.load(SeqCst), "round {round}: the thread outlived its run");
        }
    });
}

/// A stall report that panics while the loop waits: the panic comes out of `run` (the run torn
/// down: its coroutines dropped, its threads joined), and the loop keeps its report for the
/// next run.
#[test]
fn a_stall_report_that_panics_while_the_loop_waits_is_kept_for_the_next_run() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        let (calls, again) = (Arc::new(AtomicUsize::new(0)), Event::new());
        let lp = Loop::new().stall_report(ms(1), {
            let (calls, again) = (calls.clone(), again.clone());
            move |_| {
                if calls.fetch_add(1, SeqCst) == 0 {
                    panic!("first report");
                }
                again.set();
            }
        });
        let (ended, started) =
            (Arc::new(AtomicBool::new(false)), Arc::new(common::Arrivals::new(1)));
        let call = {
            let (ended, started) = (ended.clone(), started.clone());
            run_in_thread(move || {
                started.arrive();
                let told = until_cancelled();
                ended.store(true, SeqCst);
                told
            })
        };
        // The call has started before the loop idles: the report cannot come while it is queued.
        let work = (forever(DropGuard(&GUARDS)), call, started.hold());
        let ran = catch_unwind(AssertUnwindSafe(|| lp.run(work)));
        let payload = ran.map(|out| out.map(drop)).unwrap_err();
        assert_eq!(payload_str(payload.as_ref()), "first report");
        assert_eq!(dropped(&GUARDS), 1, "the run was not torn down");
        assert!(ended.load(SeqCst), "the thread outlived its run");
        // The next run still reports: the report sets the event it waits on.
        let out = lp.run(timeout(again.wait(), Duration::from_secs(30))).unwrap();
        assert!(out.is_some(), "the loop lost its stall report");
        assert_eq!(calls.load(SeqCst), 2);
    });
}

/// Two thread calls that each fail with an error of their own once stopped by a timeout (joined
/// as the run ends) or a handle (joined at once): under `ErrorGroup::Auto` both errors come out,
/// as they do when a crash stops them; under `Never` the first alone.
#[test]
fn several_threads_failing_once_stopped_by_a_timeout_or_a_handle_are_all_reported() {
    within(60, || {
        for by_handle in [false, true] {
            for mode in [ErrorGroup::Auto, ErrorGroup::Never] {
                let started = Arc::new(common::Arrivals::new(2));
                let started_too = started.clone();
                let calls = (
                    fails_once_told(1, false, started.clone()),
                    fails_once_told(2, false, started.clone()),
                    started.hold(),
                );
                let lp = Loop::new().error_group(mode);
                let err = if by_handle {
                    let (work, handle) = cancellable(calls);
                    lp.run((work, cancels_once_all_started(started_too, handle))).map(drop)
                } else {
                    lp.run(timeout(calls, ms(1))).map(drop)
                }
                .unwrap_err();
                let mut all: Vec<String> = match err.group() {
                    Some(group) => group.iter().map(|e| e.to_string()).collect(),
                    None => vec![err.to_string()],
                };
                all.sort();
                let want: &[&str] = match mode {
                    ErrorGroup::Never => &["clean-up 1 failed"],
                    _ => &["clean-up 1 failed", "clean-up 2 failed"],
                };
                assert_eq!(all, want, "by handle {by_handle}, {mode:?}: {err:?}");
            }
        }
    });
}

#[tinyio::coroutine]
fn times_out_then_waits(call: Coro<()>, hold: Coro<()>) -> () {
    // Held in the same gather as the call, so that it starts right after the call.
    let out = yield_!(timeout((call, hold), ms(1)));
    assert!(out.is_none());
    yield_!(sleep(HOUR));
}

#[tinyio::coroutine]
fn fails_after_set(go: Event) -> () {
    yield_!(go.wait());
    tinyio::bail!("outer failure");
}

/// A timeout inside an isolate stops a thread call, whose join waits for the isolate to end;
/// then a failure outside crashes the run, which stops the isolate: the call's panic (or error)
/// met while it is joined is not dropped with the isolate (it held: the crash joins them).
#[test]
fn a_thread_failing_while_joined_by_an_isolate_stopped_from_outside_is_not_lost() {
    within(60, || {
        for panics in [true, false] {
            let started = Arc::new(common::Arrivals::new(1));
            let go = Event::new();
            let call = {
                let (started, go) = (started.clone(), go.clone());
                tinyio::try_run_in_thread(move || {
                    started.arrive();
                    let _ = thread::sleep(Duration::from_secs(60));
                    go.set(); // stopped: now the outside fails
                    if panics {
                        panic!("thread panicked while stopping");
                    }
                    Err::<(), _>(CleanupFailed(7))
                })
            };
            let inside = times_out_then_waits(call, started.hold());
            let ran = catch_unwind(AssertUnwindSafe(|| {
                Loop::new().run((isolate(inside), fails_after_set(go))).map(drop)
            }));
            match ran {
                Err(payload) => {
                    assert!(panics);
                    assert_eq!(payload_str(payload.as_ref()), "thread panicked while stopping");
                }
                Ok(out) => {
                    assert!(!panics, "the thread's panic was lost: {out:?}");
                    let err = out.unwrap_err();
                    let all: Vec<String> =
                        err.group().unwrap_or_default().iter().map(|e| e.to_string()).collect();
                    assert_eq!(all, ["outer failure", "clean-up 7 failed"], "{err:?}");
                }
            }
        }
    });
}

/// A timeout inside an isolate stops a thread call that ignores its cancel, and the isolate
/// then ends (its work done, or failed): the isolate joins the call before it goes on, and the
/// stall report names that call meanwhile, as it does for the joins of a failed run.
#[test]
#[ignore = "bug: an isolate joins the calls a timeout inside stopped in `Caught::take` (and \
            `Caught`'s drop), with no deadline: the stall report never fires meanwhile, though \
            the whole loop is blocked there; the boundary's body has no way to the run's report"]
fn a_stall_report_names_the_calls_an_isolate_joins() {
    #[tinyio::coroutine]
    fn then(call: Coro<()>, hold: Coro<()>, fails: bool) -> () {
        let out = yield_!(timeout((call, hold), ms(1)));
        assert!(out.is_none());
        if fails {
            tinyio::bail!("inside");
        }
    }
    within(60, || {
        for fails in [false, true] {
            let joinings = Arc::new(Mutex::new(Vec::new()));
            let (release, released) = mpsc::channel::<()>();
            let release = Mutex::new(Some(release));
            let lp = Loop::new().stall_report(ms(1), {
                let joinings = joinings.clone();
                move |stall| {
                    if !stall.joining().is_empty() {
                        let names: Vec<_> = stall.joining().iter().map(|f| f.name()).collect();
                        joinings.lock().unwrap().push(names);
                        release.lock().unwrap().take().map(|send| send.send(()));
                    }
                }
            });
            let started = Arc::new(common::Arrivals::new(1));
            let call = {
                let started = started.clone();
                run_in_thread(move || {
                    started.arrive();
                    // Ignores its cancel until the report (or, should none come, 10 s).
                    let _ = released.recv_timeout(Duration::from_secs(10));
                })
            };
            let out = lp.run(isolate(then(call, started.hold(), fails))).unwrap();
            assert_eq!(out.is_err(), fails);
            let joinings = joinings.lock().unwrap();
            assert_eq!(*joinings, [["run_in_thread"]], "fails {fails}: no report while joining");
        }
    });
}

/// A waker whose wake-up sets an event of the run it wakes (once per poll), as a waker may do
/// anything: woken by the timer thread and by a thread call, it wakes the same run again from
/// inside its own wake-up, and must neither deadlock the waking thread (the timer thread serves
/// every `to_future` of the process) nor lose a wake-up.
#[test]
fn a_waker_that_wakes_the_run_it_is_woken_for_again() {
    #[tinyio::coroutine]
    fn two_stages(event: Event) -> u32 {
        // The timer's wake-up sets the event waited on beside it.
        yield_!((sleep(ms(1)), event.wait()));
        event.clear();
        // The call's wake-up sets it again.
        let (n, ()) = yield_!((run_in_thread(|| 4u32), event.wait()));
        n
    }
    struct SetsOnWake {
        event: Event,
        armed: AtomicBool,
        woken: Mutex<mpsc::Sender<()>>,
    }
    impl Wake for SetsOnWake {
        fn wake(self: Arc<Self>) {
            if self.armed.swap(false, SeqCst) {
                self.event.set(); // which wakes this run, and so this waker, again
            }
            let _ = self.woken.lock().unwrap().send(());
        }
    }
    within(20, || {
        for _ in 0..20 {
            let event = Event::new();
            let (woken, wakes) = mpsc::channel();
            let woken = Mutex::new(woken);
            let sets = Arc::new(SetsOnWake { event: event.clone(), armed: false.into(), woken });
            let waker = Waker::from(sets.clone());
            let mut future = to_future(two_stages(event));
            loop {
                sets.armed.store(true, SeqCst);
                match Pin::new(&mut future).poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(out) => break assert_eq!(out.unwrap(), 4),
                    Poll::Pending => {
                        wakes.recv_timeout(Duration::from_secs(10)).expect("a lost wake-up")
                    }
                }
            }
        }
        // The timer thread still serves others.
        futures::executor::block_on(to_future(sleep(ms(1)))).unwrap();
    });
}

#[tinyio::coroutine]
fn crashes_once_all_arrived(arrivals: Arc<common::Arrivals>) -> () {
    yield_!(arrivals.all());
    tinyio::bail!("crash");
}

/// Says it is there, then takes its cancel badly, as `raises_while_cancelled`.
#[tinyio::coroutine]
fn arrives_then_raises_while_cancelled(arrivals: Arc<common::Arrivals>, guard: DropGuard) -> () {
    let _guard = guard;
    arrivals.arrive();
    if try_yield!(sleep(HOUR)).is_err() {
        tinyio::bail!("while cancelling");
    }
}

/// A crash stops coroutines inside nested isolates that raise errors of their own while being
/// cancelled, and a thread call there fails once stopped: every one is among the errors met
/// while cancelling (`Auto`), none under `Never`, each beside the clean ones under `Always`.
#[test]
fn errors_met_while_a_crash_cancels_inside_nested_isolates() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);
    within(60, || {
        for mode in [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always] {
            let started = Arc::new(common::Arrivals::new(1));
            let there = Arc::new(common::Arrivals::new(2));
            let inner = isolate((
                arrives_then_raises_while_cancelled(there.clone(), DropGuard(&GUARDS)),
                forever(()),
            ));
            // Held in the same gather as the call, so that it starts right after the call.
            let inside = (
                fails_once_told(3, false, started.clone()),
                started.hold(),
                arrives_then_raises_while_cancelled(there.clone(), DropGuard(&GUARDS)),
                inner,
            );
            let work = (isolate(inside), crashes_once_all_arrived(there));
            let err = Loop::new().error_group(mode).run(work).unwrap_err();
            let all: Vec<String> = match err.group() {
                Some(group) => {
                    group.iter().filter(|e| !e.is_cancelled()).map(|e| e.to_string()).collect()
                }
                None => vec![err.to_string()],
            };
            let mut others = all[1..].to_vec();
            others.sort();
            assert_eq!(all[0], "crash", "{mode:?}: {err:?}");
            match mode {
                ErrorGroup::Never => assert!(others.is_empty(), "{err:?}"),
                _ => assert_eq!(
                    others,
                    ["clean-up 3 failed", "while cancelling", "while cancelling"],
                    "{mode:?}: {err:?}"
                ),
            }
        }
        assert_eq!(dropped(&GUARDS), 6);
    });
}

/// A waker that sets, at every wake-up, the event its run waits on, woken by a `set` of that
/// event from another thread: the `set` wakes the run's waker, which sets the event again.
#[test]
#[ignore = "bug: `Event::set` wakes its waiters under the event's lock (so that a wait leaving \
            meanwhile has left or is served); a driver's waker that sets the same event again \
            re-enters that lock on the same thread and deadlocks it"]
fn a_waker_that_sets_the_event_it_is_woken_by() {
    struct SetsOnWake(Event, Mutex<mpsc::Sender<()>>);
    impl Wake for SetsOnWake {
        fn wake(self: Arc<Self>) {
            self.0.set();
            let _ = self.1.lock().unwrap().send(());
        }
    }
    within(20, || {
        let event = Event::new();
        let (woken, wakes) = mpsc::channel();
        let waker = Waker::from(Arc::new(SetsOnWake(event.clone(), Mutex::new(woken))));
        let mut future = to_future(event.wait());
        assert!(Pin::new(&mut future).poll(&mut Context::from_waker(&waker)).is_pending());
        let setter = std::thread::spawn(move || event.set());
        wakes.recv_timeout(Duration::from_secs(10)).expect("a lost wake-up");
        setter.join().unwrap();
        let polled = Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_ready());
    });
}

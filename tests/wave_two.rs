//! A tester's pass over the shared waiter line, the failure path and the event loop's timer
//! thread: each test tries to make a unit, a wake-up or a trace go missing.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::ms;
use tinyio::{Coro, ToFuture, sleep, to_future};

/// A waker that reports each wake-up on a channel.
struct Tell(mpsc::Sender<()>);

impl Wake for Tell {
    fn wake(self: Arc<Self>) {
        let _ = self.0.send(());
    }
}

/// A `to_future` of a sleep, polled with each of the wakers `make` gives and still pending after
/// the last poll, with what `make` gave beside them. A busy machine may take longer than a
/// short sleep between two polls: the sleep is made longer and the polls made again until they
/// come in time.
fn polled_pending<T>(
    mut make: impl FnMut() -> (Vec<Waker>, T),
) -> (Pin<Box<ToFuture<'static, Coro<()>>>>, T) {
    let mut wait = ms(20);
    loop {
        let (wakers, kept) = make();
        let mut future = Box::pin(to_future(sleep(wait)));
        let mut pending = wakers.iter().map(|w| future.as_mut().poll(&mut Context::from_waker(w)));
        if pending.all(|poll| poll.is_pending()) {
            return (future, kept);
        }
        wait *= 4;
    }
}

/// A `to_future` polled once with one waker, then with another (as `now_or_never` before an
/// `.await`, or a future handed from one task to another, does) must wake the latest waker
/// when its timer is due: the future contract says only the waker of the latest poll counts.
#[test]
fn a_to_future_timer_wakes_the_waker_of_the_latest_poll() {
    let (mut future, (woken, latest)) = polled_pending(|| {
        let (tell, woken) = mpsc::channel();
        let latest = Waker::from(Arc::new(Tell(tell)));
        (vec![Waker::noop().clone(), latest.clone()], (woken, latest))
    });
    // Generous: the timer is due within a second; only a waker never registered misses it.
    let wake = woken.recv_timeout(Duration::from_secs(10));
    assert!(wake.is_ok(), "the timer woke only the waker of the first poll");
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(&latest)) {
            break out.unwrap();
        }
        woken.recv().unwrap();
    }
}

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use common::{CountDrops, names, payload_str};
use tinyio::{
    CancelHandle, Event, Loop, Race2, Semaphore, SemaphoreGuard, cancellable, channel, race,
    timeout,
};

#[derive(Debug)]
struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops while cleaning up")
    }
}

impl std::error::Error for Oops {}

/// Answers its cancellation (a timeout's) with an error of its own.
#[tinyio::coroutine]
fn stubborn() -> () {
    if try_yield!(sleep(Duration::from_secs(3600))).is_err() {
        Err(Oops)?;
    }
}

#[tinyio::coroutine]
fn middle() -> () {
    yield_!(stubborn())
}

#[tinyio::coroutine]
fn top() -> Option<()> {
    yield_!(timeout(middle(), ms(1)))
}

/// A timeout stops `middle` (it leaves the table) and then `stubborn`, which fails while being
/// stopped: the trace still runs through `middle` and the timeout, each at its suspension point.
#[test]
fn a_failure_while_a_timeout_stops_is_traced_through_what_it_stopped_above() {
    let err = Loop::new().run(top()).unwrap_err();
    assert!(err.downcast_ref::<Oops>().is_some(), "{err:?}");
    assert_eq!(names(&err), ["top", "timeout", "middle", "stubborn"], "{err:?}");
    assert!(err.trace().iter().all(|frame| frame.file() == file!()), "{err:?}");
    let lines: Vec<u32> = err.trace().iter().map(|frame| frame.line()).collect();
    let here = line!();
    // top's yield_ (also where the timeout was called), middle's yield_, stubborn's `?`.
    assert_eq!(lines, [here - 12, here - 12, here - 17, here - 23], "{err:?}");
}

/// A holder whose destructor panics: the crash's `end()` path.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("bomb went off");
        }
    }
}

#[tinyio::coroutine]
fn hold_permit(semaphore: Semaphore, bomb: bool, drops: Rc<Cell<usize>>) -> () {
    let _count = CountDrops(drops);
    let _bomb = bomb.then(|| Bomb);
    let _permit: SemaphoreGuard = yield_!(semaphore.acquire());
    yield_!(sleep(Duration::from_secs(3600)));
}

#[tinyio::coroutine]
fn fail_after(pauses: u32) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    Err(Oops)?;
}

/// A crash cancels holders of permits and waiters in line (some handed a permit as a holder
/// before them gives theirs back), one of whose destructors panics: every permit comes back,
/// every holder and waiter is dropped, and the panic comes out.
#[test]
fn permits_come_back_when_a_crash_cancels_holders_whose_destructors_panic() {
    for bomb_at in 0..6 {
        let semaphore = Semaphore::new(2);
        let drops = Rc::new(Cell::new(0));
        let holders: Vec<_> =
            (0..6).map(|i| hold_permit(semaphore.clone(), i == bomb_at, drops.clone())).collect();
        let lp = Loop::new();
        let out = catch_unwind(AssertUnwindSafe(|| lp.run((holders, fail_after(3)))));
        let payload = out.expect_err("the destructor's panic comes out");
        assert_eq!(payload_str(&*payload), "bomb went off");
        assert_eq!(semaphore.available(), 2, "bomb at {bomb_at}: a permit was lost");
        assert_eq!(drops.get(), 6, "bomb at {bomb_at}: every holder's and waiter's clean-up ran");
        // And the semaphore still works.
        let both = lp.run((semaphore.acquire(), semaphore.acquire())).unwrap();
        assert_eq!(semaphore.available(), 0);
        drop(both);
    }
}

#[tinyio::coroutine]
fn toggles(event: Event, rounds: u32) -> u32 {
    let mut set = 0;
    for _ in 0..rounds {
        set += u32::from(yield_!(event.wait_timeout(Duration::from_micros(50))));
    }
    yield_!(event.wait());
    set
}

/// Waits that time out while threads set and clear the event: each wait ends (by its timeout
/// or by a set), none is woken twice into a stale line, and a final set reaches every waiter.
#[test]
fn event_waits_time_out_while_threads_set_and_clear() {
    let event = Event::new();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let togglers: Vec<_> = (0..2)
        .map(|_| {
            let (event, done) = (event.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    event.set();
                    event.clear();
                }
            })
        })
        .collect();
    let waiters: Vec<_> = (0..8).map(|_| toggles(event.clone(), 200)).collect();
    let stop = stop_toggling(event.clone(), done, togglers);
    let (got, ()) = Loop::new().run((waiters, stop)).unwrap();
    assert_eq!(got.len(), 8);
    assert!(event.is_set());
}

/// Lets the togglers run a while, stops and joins them, then sets the event for good.
#[tinyio::coroutine]
fn stop_toggling(
    event: Event,
    done: Arc<std::sync::atomic::AtomicBool>,
    togglers: Vec<std::thread::JoinHandle<()>>,
) -> () {
    yield_!(sleep(ms(20)));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    yield_!(tinyio::run_in_thread(move || togglers.into_iter().for_each(|t| t.join().unwrap())));
    event.set();
}

#[tinyio::coroutine]
fn cancel_then_nest(go: Event, handle: CancelHandle, nest: bool) -> () {
    yield_!(go.wait());
    handle.cancel();
    if nest {
        // A loop run inside this step, after the cancel: it must not swallow the cancel.
        let inner = race((pause_once(), sleep(Duration::from_secs(3600))));
        assert!(matches!(Loop::new().run(inner), Ok(Race2::First(()))));
    }
}

#[tinyio::coroutine]
fn pause_once() -> () {
    yield_!();
}

#[tinyio::coroutine]
fn kick(go: Event, tx: tinyio::Sender<u32>) -> () {
    go.set();
    tx.try_send(5).unwrap();
}

/// A coroutine cancels a `cancellable` receive that is ready in the same round, then runs a
/// nested loop: the receive is stopped before it runs, as it is without the nested loop, so
/// the value stays in the channel.
#[test]
fn a_nested_loop_after_a_cancel_does_not_let_the_cancelled_work_run_first() {
    let mut outcomes = Vec::new();
    for nest in [false, true] {
        let (tx, rx) = channel(1);
        let go = Event::new();
        let (work, handle) = cancellable(rx.recv());
        let lp = Loop::new();
        let (_, got, _) =
            lp.run((cancel_then_nest(go.clone(), handle, nest), work, kick(go, tx))).unwrap();
        let left = rx.try_recv().ok();
        assert!(
            got.flatten().is_some() != left.is_some(),
            "value lost or doubled: {got:?} {left:?}"
        );
        outcomes.push((got, left));
    }
    assert_eq!(outcomes[0], outcomes[1], "a nested loop changed what the cancel stopped");
}

#[tinyio::coroutine]
fn send_then_cancel(tx: tinyio::Sender<u32>, handle: CancelHandle, value: u32) -> () {
    yield_!(tx.send(value)).unwrap();
    handle.cancel();
}

/// A coroutine of one loop sends a value and cancels the receive of another loop's work, on
/// another thread, at every phase of it: the value is received, or left in the channel, once.
#[test]
fn a_cancel_from_another_loop_leaves_the_value_or_takes_it_once() {
    for round in 0..200u32 {
        let (tx, rx) = channel(1);
        let (ready_tx, ready) = mpsc::channel();
        let remote = std::thread::spawn(move || {
            let (work, handle) = cancellable(rx.recv());
            ready_tx.send(handle).unwrap();
            let got = Loop::new().run(work).unwrap();
            (got, rx.try_recv().ok())
        });
        let handle = ready.recv().unwrap();
        Loop::new().run(send_then_cancel(tx, handle, round)).unwrap();
        let (got, left) = remote.join().unwrap();
        match (got, left) {
            (Some(Some(v)), None) | (None, Some(v)) => assert_eq!(v, round),
            other => panic!("round {round}: lost or doubled: {other:?}"),
        }
    }
}

#[tinyio::coroutine]
fn contend(semaphore: Semaphore, inside: Arc<std::sync::atomic::AtomicUsize>, seed: u64) -> u32 {
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut held = 0;
    for _ in 0..100 {
        let wait = Duration::from_micros(next(300));
        if let Some(_permit) = yield_!(timeout(semaphore.acquire(), wait)) {
            let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            assert!(now <= 2, "{now} holders of 2 permits");
            for _ in 0..next(3) {
                yield_!();
            }
            inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            held += 1;
        }
    }
    held
}

/// Two loops on two threads share a semaphore of 2 whose acquires time out at every point:
/// never more than 2 holders, and every permit is back at the end.
#[test]
fn a_semaphore_shared_by_two_loops_with_timed_out_acquires_keeps_its_permits() {
    let semaphore = Semaphore::new(2);
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let other = {
        let (semaphore, inside) = (semaphore.clone(), inside.clone());
        std::thread::spawn(move || {
            let all: Vec<_> =
                (0..6).map(|i| contend(semaphore.clone(), inside.clone(), 100 + i)).collect();
            Loop::new().run(all).unwrap()
        })
    };
    let here: Vec<_> = (0..6).map(|i| contend(semaphore.clone(), inside.clone(), i)).collect();
    let held: u32 = Loop::new().run(here).unwrap().into_iter().sum();
    let held_there: u32 = other.join().unwrap().into_iter().sum();
    assert!(held + held_there > 0);
    assert_eq!(semaphore.available(), 2, "a permit was lost or made up");
}

#[tinyio::coroutine]
fn receive_then_hold(rx: tinyio::Receiver<u32>, semaphore: Semaphore) -> u32 {
    let _permit = yield_!(semaphore.acquire());
    let value = yield_!(rx.recv()).unwrap();
    yield_!(sleep(Duration::from_secs(3600)));
    value
}

/// `to_future`s dropped between polls, after a value was handed to their receive and a permit
/// to their acquire: the value stays in the channel for the next receiver, the permit comes back.
#[test]
fn dropped_to_futures_hand_back_the_value_and_the_permit_they_were_handed() {
    let (tx, rx) = channel(4);
    let semaphore = Semaphore::new(1);
    let noop = &mut Context::from_waker(Waker::noop());
    // The first holds the permit and waits in the receive line; the second waits in the
    // semaphore's line.
    let mut first = Box::pin(to_future(receive_then_hold(rx.clone(), semaphore.clone())));
    let mut second = Box::pin(to_future(receive_then_hold(rx.clone(), semaphore.clone())));
    assert!(first.as_mut().poll(noop).is_pending());
    assert!(second.as_mut().poll(noop).is_pending());
    assert_eq!(semaphore.available(), 0);
    // From another thread: the value is handed to the first's receive.
    std::thread::spawn(move || tx.send_blocking(7).unwrap()).join().unwrap();
    drop(first); // before it runs again: it hands the value on, and gives the permit back
    assert_eq!(rx.try_recv(), Ok(7), "the value handed to a dropped future is lost");
    // The permit went to the second, in line: dropping it gives it back.
    drop(second);
    assert_eq!(semaphore.available(), 1, "a permit handed to a dropped future is lost");
}

#[tinyio::coroutine]
fn armed(bomb: Bomb, count: CountDrops, semaphore: Semaphore) -> () {
    let _armed = (count, bomb); // dropped in order: the count, then the bomb
    let _permit = yield_!(semaphore.acquire());
    yield_!(sleep(Duration::from_secs(3600)));
}

#[tinyio::coroutine]
fn bomb_below_timeout(semaphore: Semaphore, drops: Rc<Cell<usize>>, started: bool) -> () {
    let inner = armed(Bomb, CountDrops(drops), semaphore);
    // A zero timeout is due before the work ever runs: it is dropped unstarted.
    yield_!(timeout(inner, if started { ms(1) } else { Duration::ZERO }));
}

/// A timeout stops work whose destructor panics (started, holding a permit; or never started,
/// its arguments dropped): the panic comes out of the run, after every other coroutine was
/// cancelled, each destructor ran once, and every permit came back.
#[test]
fn a_destructor_panicking_while_a_timeout_stops_its_work_still_cleans_up_everything() {
    for started in [true, false] {
        let (payload, drops, available) = common::within(60, move || {
            let semaphore = Semaphore::new(2);
            let drops = Rc::new(Cell::new(0));
            let others: Vec<_> =
                (0..3).map(|_| hold_permit(semaphore.clone(), false, drops.clone())).collect();
            let work = bomb_below_timeout(semaphore.clone(), drops.clone(), started);
            let out = catch_unwind(AssertUnwindSafe(|| Loop::new().run((others, work))));
            let payload = out.expect_err("the destructor's panic comes out");
            (payload_str(&*payload).to_string(), drops.get(), semaphore.available())
        });
        assert_eq!(payload, "bomb went off");
        assert_eq!(drops, 4, "started: {started}: a destructor did not run");
        assert_eq!(available, 2, "started: {started}: a permit was lost");
    }
}

#[tinyio::coroutine]
fn nap(micros: u64) -> u64 {
    yield_!(sleep(Duration::from_micros(micros)));
    micros
}

/// Many `to_future` timers, some due at the same instant, driven by two executors on two
/// threads at once, with half of the futures dropped after their first poll: every future
/// kept finishes (the shared timer thread wakes each one), on both.
#[test]
fn many_to_future_timers_on_two_executors_with_dropped_futures_all_finish() {
    fn work(seed: u64) -> impl Future<Output = u64> {
        let mut kept = Vec::new();
        for i in 0..64u64 {
            let micros = 200 + (i * 37 + seed) % 1500;
            let same = i % 8 == 0; // several due together
            let mut future = Box::pin(to_future(nap(if same { 1000 } else { micros })));
            if i % 2 == 0 {
                kept.push(future);
            } else {
                // Polled once, then dropped: its timer stays registered.
                let first = future.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                assert!(first.is_pending());
            }
        }
        async move { futures::future::join_all(kept).await.into_iter().map(Result::unwrap).sum() }
    }
    let other = std::thread::spawn(|| {
        let mut pool = futures::executor::LocalPool::new();
        pool.run_until(work(1))
    });
    let here = common::within(120, || {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(work(0))
    });
    assert!(here > 0 && other.join().unwrap() > 0);
}

#[tinyio::coroutine]
fn pauses(n: u32) -> u32 {
    for _ in 0..n {
        yield_!();
    }
    n
}

#[tinyio::coroutine]
fn send_after(tx: tinyio::Sender<u32>, pauses: u32) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    tx.try_send(9).unwrap();
}

#[tinyio::coroutine]
fn race_in_race(p: u32, rx: tinyio::Receiver<u32>) -> Race2<Race2<u32, ()>, Option<u32>> {
    let inner = race((pauses(p), sleep(Duration::from_secs(3600))));
    yield_!(race((inner, rx.recv())))
}

/// A race won by an inner race (whose own win stops its loser through the cancel taken in at
/// once) against a receive whose value comes in any round around it: if the inner race wins,
/// the receive has not taken the value; if the receive wins, it has.
#[test]
fn a_race_won_by_an_inner_race_leaves_the_losing_receive_value_in_the_channel() {
    for p in 0..6 {
        for q in 0..6 {
            let (tx, rx) = channel(1);
            let (won, ()) =
                Loop::new().run((race_in_race(p, rx.clone()), send_after(tx, q))).unwrap();
            let left = rx.try_recv().ok();
            match won {
                Race2::First(_) => assert_eq!(left, Some(9), "{p} {q}: the loser took the value"),
                Race2::Second(got) => assert_eq!((got, left), (Some(9), None), "{p} {q}"),
            }
        }
    }
}

/// A waker that reports its wake-up, then panics: an executor's bug, not the loop's.
struct Explode(mpsc::Sender<()>);

impl Wake for Explode {
    fn wake(self: Arc<Self>) {
        let _ = self.0.send(());
        panic!("a foreign waker panics");
    }
}

/// The timer thread that every `to_future` shares outlives a waker that panics when it fires:
/// a later `to_future` still gets its wake-up (rather than a panic, or a hang).
#[test]
fn a_panicking_waker_leaves_the_to_future_timer_thread_running() {
    let (_first, boom) = polled_pending(|| {
        let (exploded, boom) = mpsc::channel();
        (vec![Waker::from(Arc::new(Explode(exploded)))], boom)
    });
    boom.recv_timeout(Duration::from_secs(10)).expect("the timer fired");
    let (_second, woken) = polled_pending(|| {
        let (tell, woken) = mpsc::channel();
        (vec![Waker::from(Arc::new(Tell(tell)))], woken)
    });
    woken.recv_timeout(Duration::from_secs(10)).expect("the timer thread still runs");
}

//! A tester's pass on units (a channel's values and room, a semaphore's permits, an event's
//! wake-ups) under cancellation: none is lost or given twice, whatever ends the wait.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tinyio::{
    Event, Lock, Loop, Race2, Receiver, Semaphore, Sender, ThreadPool, as_completed, channel,
    isolate, race, run_in_thread, timeout,
};

/// A select over two empty channels: both receives wait in line, then a thread sends one value
/// to each without a pause between. Both waits are handed a value in the same round; the race
/// gives one, and the other must still be queued in its channel.
#[test]
fn a_race_over_two_waiting_channels_fed_at_once_loses_neither_value() {
    #[tinyio::coroutine]
    fn select(a: Receiver<u32>, b: Receiver<u32>) -> Race2<Option<u32>, Option<u32>> {
        yield_!(race((a.recv(), b.recv())))
    }
    #[tinyio::coroutine]
    fn feed(a: Sender<u32>, b: Sender<u32>) -> () {
        yield_!();
        yield_!();
        yield_!(run_in_thread(move || {
            a.try_send(1).unwrap();
            b.try_send(2).unwrap();
        }));
    }
    for _ in 0..20 {
        let ((tx_a, rx_a), (tx_b, rx_b)) = (channel(1), channel(1));
        let lp = Loop::new();
        let (won, ()) = lp.run((select(rx_a.clone(), rx_b.clone()), feed(tx_a, tx_b))).unwrap();
        let mut got = vec![match won {
            Race2::First(v) | Race2::Second(v) => v.unwrap(),
        }];
        got.extend(rx_a.try_recv().ok());
        got.extend(rx_b.try_recv().ok());
        got.sort();
        assert_eq!(got, [1, 2], "a value was lost or doubled");
    }
}

/// The same with two sends on full channels, room made in both at once from a thread: the
/// loser queues nothing (its value would be queued unreported).
#[test]
fn a_race_of_two_waiting_sends_given_room_at_once_queues_one_value() {
    #[tinyio::coroutine]
    fn select(a: Sender<u32>, b: Sender<u32>) -> Race2<bool, bool> {
        match yield_!(race((a.send(1), b.send(2)))) {
            Race2::First(r) => Race2::First(r.is_ok()),
            Race2::Second(r) => Race2::Second(r.is_ok()),
        }
    }
    #[tinyio::coroutine]
    fn drain(a: Receiver<u32>, b: Receiver<u32>) -> () {
        yield_!();
        yield_!();
        yield_!(run_in_thread(move || {
            assert_eq!(a.try_recv(), Ok(0));
            assert_eq!(b.try_recv(), Ok(0));
        }));
    }
    for _ in 0..20 {
        let ((tx_a, rx_a), (tx_b, rx_b)) = (channel(1), channel(1));
        tx_a.try_send(0).unwrap();
        tx_b.try_send(0).unwrap();
        let lp = Loop::new();
        let (won, ()) = lp
            .run((select(tx_a.clone(), tx_b.clone()), drain(rx_a.clone(), rx_b.clone())))
            .unwrap();
        let queued = (rx_a.try_recv().ok(), rx_b.try_recv().ok());
        match won {
            Race2::First(true) => assert_eq!(queued, (Some(1), None)),
            Race2::Second(true) => assert_eq!(queued, (None, Some(2))),
            other => panic!("{other:?}"),
        }
    }
}

/// `Sending` and `Receiving` made and dropped without being yielded touch nothing.
#[test]
fn operations_dropped_unyielded_take_no_unit() {
    let (tx, rx) = channel(1);
    drop(tx.send(1));
    drop(rx.recv());
    assert_eq!(tx.try_send(2), Ok(()));
    drop(rx.recv());
    drop(tx.send(3));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(tinyio::TryRecvError::Empty));
}

/// `as_completed` over three receives and two values, then the last sender drops: two
/// completions give the values, the third sees the end, and nothing is left queued.
#[test]
fn as_completed_receives_share_out_values_then_see_the_end() {
    #[tinyio::coroutine]
    fn three(rx: Receiver<u32>, tx: Sender<u32>) -> Vec<Option<u32>> {
        let completions = yield_!(as_completed(vec![rx.recv(), rx.recv(), rx.recv()]));
        yield_!(tx.send(1)).unwrap();
        yield_!(tx.send(2)).unwrap();
        drop(tx);
        let mut got = Vec::new();
        for next in completions {
            got.push(yield_!(next));
        }
        got
    }
    let (tx, rx) = channel(2);
    let mut got = Loop::new().run(three(rx.clone(), tx)).unwrap();
    got.sort();
    assert_eq!(got, [None, Some(1), Some(2)]);
    assert_eq!(rx.try_recv(), Err(tinyio::TryRecvError::Closed));
}

/// Two acquires raced on a semaphore of two whose permits are both taken; a thread gives both
/// back at once. The winner holds one, the loser's permit goes back: two are free afterwards.
#[test]
fn a_race_of_two_acquires_given_permits_at_once_keeps_the_count() {
    #[tinyio::coroutine]
    fn select(sem: Semaphore) -> usize {
        let guard = match yield_!(race((sem.acquire(), sem.acquire()))) {
            Race2::First(guard) | Race2::Second(guard) => guard,
        };
        let held = sem.available();
        drop(guard);
        held
    }
    #[tinyio::coroutine]
    fn give_back(guards: Vec<tinyio::SemaphoreGuard>) -> () {
        yield_!();
        yield_!();
        yield_!(run_in_thread(move || drop(guards)));
    }
    #[tinyio::coroutine]
    fn take_two(sem: Semaphore) -> (usize, ()) {
        let guards = yield_!(vec![sem.acquire(), sem.acquire()]);
        yield_!((select(sem.clone()), give_back(guards)))
    }
    for _ in 0..20 {
        let sem = Semaphore::new(2);
        let (held, ()) = Loop::new().run(take_two(sem.clone())).unwrap();
        // The loser may still hold its permit for a moment after the race returns (it is torn
        // down after the winner goes on), so only the count at the end is exact.
        assert!(held <= 1, "the winner has no permit");
        assert_eq!(sem.available(), 2, "a permit was lost or made up");
    }
}

/// A receive inside `isolate`, handed a value and then cancelled from outside (a timeout on the
/// isolate) before it ran: the value stays queued.
#[test]
fn a_receive_in_an_isolate_stopped_by_a_timeout_loses_no_value() {
    #[tinyio::coroutine]
    fn wait_then_send(
        tx: Sender<u32>,
        rx: Receiver<u32>,
    ) -> Option<Result<Option<u32>, tinyio::Error>> {
        let waiting = timeout(isolate(rx.recv()), common::head_start());
        let ((), got) = yield_!((send_late(tx), waiting));
        got
    }
    #[tinyio::coroutine]
    fn send_late(tx: Sender<u32>) -> () {
        yield_!();
        tx.try_send(7).unwrap();
    }
    let (tx, rx) = channel(1);
    let got = Loop::new().run(wait_then_send(tx, rx.clone())).unwrap();
    match got {
        Some(Ok(Some(7))) => assert!(rx.try_recv().is_err()),
        None => assert_eq!(rx.try_recv(), Ok(7), "the value was lost"),
        other => panic!("{other:?}"),
    }
}

/// A pool of one whose running call is stopped by a timeout: the call goes on until it sees
/// that, and the next call on the pool must not start before it returns.
#[test]
fn a_pool_keeps_its_limit_while_a_stopped_call_winds_down() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    fn enter() {
        let now = RUNNING.fetch_add(1, SeqCst) + 1;
        MOST.fetch_max(now, SeqCst);
    }
    #[tinyio::coroutine]
    fn two(pool: ThreadPool, started: Event) -> Option<()> {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let first = pool.run_in_thread(move || {
            enter();
            started.set();
            while tinyio::thread::sleep(std::time::Duration::from_secs(60)).is_ok() {}
            // Told to stop: still running, and so still counted, until it returns.
            let _ = wait.recv_timeout(std::time::Duration::from_millis(50));
            RUNNING.fetch_sub(1, SeqCst);
        });
        let second = pool.run_in_thread(move || {
            enter();
            let _ = go.send(());
            RUNNING.fetch_sub(1, SeqCst);
        });
        let stopped = yield_!(timeout(first, common::head_start()));
        yield_!(second);
        stopped
    }
    let pool = ThreadPool::new(1);
    assert_eq!(Loop::new().run(two(pool, Event::new())).unwrap(), None);
    assert_eq!(MOST.load(SeqCst), 1, "two calls ran at once on a pool of one");
}

/// A semaphore guard taken in a coroutine and dropped on another thread lets the next waiter in.
#[test]
fn a_semaphore_guard_dropped_on_another_thread_lets_the_next_in() {
    #[tinyio::coroutine]
    fn hand_off(sem: Semaphore) -> usize {
        let guard = yield_!(sem.acquire());
        let ((), second) = yield_!((run_in_thread(move || drop(guard)), sem.acquire(),));
        drop(second);
        sem.available()
    }
    let sem = Semaphore::new(1);
    assert_eq!(Loop::new().run(hand_off(sem.clone())).unwrap(), 1);
}

/// A `Lock<T>` guard held across `yield_!` when the loop crashes: the data it changed goes home,
/// and the lock is free for the next run.
#[test]
fn a_lock_guard_held_across_a_crash_gives_back_its_data_and_the_lock() {
    #[tinyio::coroutine]
    fn hold(lock: Lock<Vec<u32>>, held: Event) -> () {
        let mut guard = yield_!(lock.lock());
        guard.push(1);
        held.set();
        loop {
            yield_!();
        }
    }
    #[tinyio::coroutine]
    fn crash(held: Event) -> () {
        yield_!(held.wait());
        tinyio::bail!("boom");
    }
    #[tinyio::coroutine]
    fn read(lock: Lock<Vec<u32>>) -> Vec<u32> {
        let guard = yield_!(lock.lock());
        guard.clone()
    }
    let (lock, held, lp) = (Lock::with_data(Vec::new()), Event::new(), Loop::new());
    assert!(lp.run((hold(lock.clone(), held.clone()), crash(held))).is_err());
    assert_eq!(lp.run(read(lock.clone())).unwrap(), [1]);
}

/// Many coroutines take permits under short timeouts and give them back from other threads:
/// at most `permits` are ever held at once, and every permit is back at the end.
#[test]
fn permits_taken_under_timeouts_and_given_back_from_threads_are_all_counted() {
    static HELD: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn take(sem: Semaphore, wait_us: u64) -> bool {
        let wait = std::time::Duration::from_micros(wait_us);
        let Some(guard) = yield_!(timeout(sem.acquire(), wait)) else { return false };
        let now = HELD.fetch_add(1, SeqCst) + 1;
        MOST.fetch_max(now, SeqCst);
        yield_!();
        yield_!(run_in_thread(move || {
            HELD.fetch_sub(1, SeqCst);
            drop(guard);
        }));
        true
    }
    let sem = Semaphore::new(3);
    let takers: Vec<_> = (0..60).map(|i| take(sem.clone(), (i % 7) * 150)).collect();
    let took = Loop::new().run(takers).unwrap();
    assert!(took.iter().any(|&t| t));
    assert!(MOST.load(SeqCst) <= 3, "more holders than permits: {}", MOST.load(SeqCst));
    assert_eq!(sem.available(), 3, "a permit was lost or made up");
}

/// The stall report names a send waiting for room, inside a race and inside a timeout.
#[test]
fn the_stall_report_names_sends_waiting_inside_race_and_timeout() {
    use std::sync::Mutex;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = channel::<u32>(1);
    tx.try_send(0).unwrap();
    let lp = Loop::new().stall_report(common::ms(20), {
        let (seen, rx) = (seen.clone(), rx.clone());
        move |stall| {
            for s in stall.coroutines() {
                seen.lock().unwrap().extend(s.waits_on().iter().copied());
            }
            let _ = rx.try_recv(); // unstalls the loop
        }
    });
    #[tinyio::coroutine]
    fn waits(tx: Sender<u32>) -> () {
        let raced = race((tx.send(1), Event::new().wait()));
        assert!(matches!(yield_!(raced), Race2::First(Ok(()))));
        let timed = timeout(tx.send(2), std::time::Duration::from_secs(3600));
        assert!(matches!(yield_!(timed), Some(Ok(()))));
    }
    lp.run(waits(tx)).unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.iter().filter(|&&name| name == "Sender::send").count() >= 2, "{seen:?}");
}

/// An item of a pool's `map` that, when dropped unrun (its call cancelled while queued), holds
/// the loop there until a call that should never start does (or 2 s pass): the loop cancels
/// a map's calls one by one, and this opens the gap in which a pool thread, its call told to
/// stop and returned, takes a sibling still queued.
struct Item;

static STARTED_AFTER: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>> =
    std::sync::Mutex::new(None);

impl Drop for Item {
    fn drop(&mut self) {
        if let Some(started) = STARTED_AFTER.lock().unwrap().take() {
            let _ = started.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// A pool's `map` stopped once its first calls run: the calls that started are told to stop,
/// and no queued call may start after that.
#[test]
fn a_pool_map_stopped_midway_starts_no_queued_call() {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn stop_when_in(all_in: Arc<common::Arrivals>, handle: tinyio::CancelHandle) -> () {
        yield_!(all_in.all());
        handle.cancel();
    }
    #[tinyio::coroutine]
    fn stopped(
        pool: ThreadPool,
        all_in: Arc<common::Arrivals>,
        started: std::sync::mpsc::Sender<()>,
    ) -> Option<Vec<()>> {
        let arrive = all_in.clone();
        let started = std::sync::Mutex::new(started);
        let work = pool.map(
            move |item: Item| {
                std::mem::forget(item); // ran: not dropped unrun
                if STARTED.fetch_add(1, SeqCst) >= 2 {
                    let _ = started.lock().unwrap().send(());
                }
                arrive.arrive();
                while tinyio::thread::sleep(std::time::Duration::from_secs(60)).is_ok() {}
            },
            (0..10).map(|_| Item),
        );
        let (work, handle) = tinyio::cancellable(work);
        let (out, ()) = yield_!((work, stop_when_in(all_in, handle)));
        out
    }
    let (started, heard) = std::sync::mpsc::channel();
    *STARTED_AFTER.lock().unwrap() = Some(heard);
    let pool = ThreadPool::new(2);
    let all_in = Arc::new(common::Arrivals::new(2));
    assert_eq!(Loop::new().run(stopped(pool, all_in, started)).unwrap(), None);
    assert_eq!(STARTED.load(SeqCst), 2, "a queued call started after the map was stopped");
}

/// A plain thread blocked in `send_blocking` on a full channel whose only receiver is dropped by
/// a crashing loop gets its value back as "closed", not as a cancellation, and never hangs.
#[test]
fn a_plain_thread_blocked_sending_hears_the_receiver_dropped_by_a_crash() {
    #[tinyio::coroutine]
    fn hold_then_crash(rx: Receiver<u32>) -> () {
        yield_!();
        let _rx = rx;
        tinyio::bail!("crash");
    }
    let (tx, rx) = channel(1);
    tx.try_send(0).unwrap();
    let sender = std::thread::spawn(move || tx.send_blocking(1));
    assert!(Loop::new().run(hold_then_crash(rx)).is_err());
    let refused = sender.join().unwrap().unwrap_err();
    assert!(!refused.is_cancelled());
    assert_eq!(refused.into_inner(), 1);
}

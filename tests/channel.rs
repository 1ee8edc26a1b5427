//! `channel`: bounded, multi-producer, multi-consumer, between coroutines and from threads.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{DropGuard, dropped, forever, head_start, ms, within};
use proptest::prelude::*;
use tinyio::{
    Event, Loop, Receiver, Sender, TryRecvError, TrySendError, channel, run_in_thread, timeout,
};

#[tinyio::coroutine]
fn fails_after_pauses(pauses: usize) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    tinyio::bail!("failed");
}

#[tinyio::coroutine]
fn blocked_send(tx: Sender<u32>, value: u32, guard: DropGuard) -> () {
    let _guard = guard;
    yield_!(tx.send(value)).unwrap();
}

#[tinyio::coroutine]
fn blocked_recv(rx: Receiver<u32>, guard: DropGuard) -> Option<u32> {
    let _guard = guard;
    yield_!(rx.recv())
}

#[test]
fn coroutines_blocked_in_send_and_recv_are_cancelled_and_leave_their_queues() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (full_tx, full_rx) = channel::<u32>(1);
    full_tx.try_send(0).unwrap();
    let (empty_tx, empty_rx) = channel::<u32>(1);
    let senders: Vec<_> =
        (1..=3).map(|i| blocked_send(full_tx.clone(), i, DropGuard(&DROPS))).collect();
    let receivers: Vec<_> =
        (0..3).map(|_| blocked_recv(empty_rx.clone(), DropGuard(&DROPS))).collect();
    let err = Loop::new().run((senders, receivers, fails_after_pauses(3))).unwrap_err();
    assert_eq!(err.to_string(), "failed");
    assert_eq!(dropped(&DROPS), 6, "every blocked coroutine was cancelled");
    // Nobody is left waiting: room and values go to whoever asks next.
    assert_eq!(full_rx.try_recv(), Ok(0));
    assert_eq!(full_tx.try_send(9), Ok(()));
    assert_eq!(full_rx.try_recv(), Ok(9));
    empty_tx.try_send(5).unwrap();
    assert_eq!(Loop::new().run(empty_rx.recv()).unwrap(), Some(5));
}

#[test]
fn receivers_see_the_end_once_every_sender_is_gone_and_senders_once_every_receiver_is() {
    #[tinyio::coroutine]
    fn drain(rx: Receiver<u32>) -> Vec<u32> {
        let mut seen = Vec::new();
        while let Some(x) = yield_!(rx.recv()) {
            seen.push(x);
        }
        seen
    }
    #[tinyio::coroutine]
    fn send_then_drop(tx: Sender<u32>, xs: Vec<u32>) -> () {
        for x in xs {
            yield_!(tx.send(x)).unwrap();
        }
    }
    let (tx, rx) = channel(1);
    let (seen, (), ()) = Loop::new()
        .run((drain(rx), send_then_drop(tx.clone(), vec![1, 2]), send_then_drop(tx, vec![3])))
        .unwrap();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3]);

    #[tinyio::coroutine]
    fn send_until_refused(tx: Sender<u32>) -> u32 {
        let mut x = 0;
        loop {
            match yield_!(tx.send(x)) {
                Ok(()) => x += 1,
                Err(refused) => return refused.into_inner(),
            }
        }
    }
    #[tinyio::coroutine]
    fn take_two_and_leave(rx: Receiver<u32>) -> () {
        yield_!(rx.recv());
        yield_!(rx.recv());
    }
    let (tx, rx) = channel(1);
    let (refused, ()) = Loop::new().run((send_until_refused(tx), take_two_and_leave(rx))).unwrap();
    // 0 is sent in place; 1 waits for room, which the receiver makes taking 0 in place; 2 waits
    // for the room the receiver makes taking 1, and is refused as the receiver leaves.
    assert_eq!(refused, 2, "values 0 and 1 taken, 2 waiting for room when the receiver left");
}

#[test]
fn a_pool_of_workers_shares_one_receiver() {
    #[tinyio::coroutine]
    fn worker(rx: Receiver<u64>, done: Rc<RefCell<Vec<u64>>>) -> usize {
        let mut count = 0;
        while let Some(job) = yield_!(rx.recv()) {
            yield_!();
            done.borrow_mut().push(job * job);
            count += 1;
        }
        count
    }
    #[tinyio::coroutine]
    fn feed(tx: Sender<u64>) -> () {
        for job in 0..100 {
            yield_!(tx.send(job)).unwrap();
        }
    }
    let (tx, rx) = channel(4);
    let done = Rc::new(RefCell::new(Vec::new()));
    let workers: Vec<_> = (0..4).map(|_| worker(rx.clone(), done.clone())).collect();
    drop(rx);
    let (counts, ()) = Loop::new().run((workers, feed(tx))).unwrap();
    assert_eq!(counts.iter().sum::<usize>(), 100);
    assert!(counts.iter().all(|&c| c > 0), "every worker took jobs: {counts:?}");
    let mut done = done.take();
    done.sort();
    assert_eq!(done, (0..100).map(|j| j * j).collect::<Vec<_>>());
}

/// A thread feeding a loop through `send_blocking`, and a thread call whose `send_blocking`
/// returns as soon as the call is told to stop.
#[test]
fn threads_send_into_a_loop_and_stop_when_cancelled() {
    let (tx, rx) = channel(2);
    let producer = std::thread::spawn(move || {
        for x in 0..1000u64 {
            tx.send_blocking(x).unwrap();
        }
    });
    #[tinyio::coroutine]
    fn sum(rx: Receiver<u64>) -> u64 {
        let mut total = 0;
        while let Some(x) = yield_!(rx.recv()) {
            total += x;
        }
        total
    }
    assert_eq!(Loop::new().run(sum(rx)).unwrap(), 999 * 1000 / 2);
    producer.join().unwrap();

    // The channel is full and nobody receives: the call blocks until the loop fails.
    let (tx, _rx) = channel(1);
    tx.try_send(0).unwrap();
    let blocked = Event::new();
    let outcome = Arc::new(Mutex::new(None));
    #[tinyio::coroutine]
    fn fails_once(blocked: Event) -> () {
        yield_!(blocked.wait());
        tinyio::bail!("stop");
    }
    let err = within(30, {
        let outcome = outcome.clone();
        move || {
            let call = {
                let blocked = blocked.clone();
                run_in_thread(move || {
                    blocked.set();
                    let refused = tx.send_blocking(1).unwrap_err();
                    *outcome.lock().unwrap() = Some((refused.is_cancelled(), refused.into_inner()));
                })
            };
            Loop::new().run((call, fails_once(blocked))).unwrap_err().to_string()
        }
    });
    assert_eq!(err, "stop");
    assert_eq!(*outcome.lock().unwrap(), Some((true, 1)));
}

/// A thread call told to stop refuses to send even where there is room, but still receives a
/// value that is there: neither waits.
#[test]
fn a_thread_call_told_to_stop_refuses_to_send_but_receives_what_is_there() {
    let (tx, rx) = channel(4);
    tx.try_send(7).unwrap();
    let started = Event::new();
    let outcome = Arc::new(Mutex::new(None));
    #[tinyio::coroutine]
    fn fails_once(started: Event) -> () {
        yield_!(started.wait());
        tinyio::bail!("stop");
    }
    let err = within(30, {
        let outcome = outcome.clone();
        move || {
            let call = {
                let started = started.clone();
                run_in_thread(move || {
                    started.set();
                    // Returns once the failure tells the call to stop.
                    assert!(tinyio::thread::sleep(Duration::from_secs(3600)).is_err());
                    let refused = tx.send_blocking(1).unwrap_err();
                    let received = rx.recv_blocking();
                    *outcome.lock().unwrap() = Some((refused.is_cancelled(), received));
                })
            };
            Loop::new().run((call, fails_once(started))).unwrap_err().to_string()
        }
    });
    assert_eq!(err, "stop");
    assert_eq!(*outcome.lock().unwrap(), Some((true, Some(7))));
}

#[test]
fn the_stall_report_names_channel_waits() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = channel::<u32>(1);
    let lp = Loop::new().stall_report(ms(20), {
        let (seen, tx) = (seen.clone(), tx.clone());
        move |stall| {
            for s in stall.coroutines() {
                seen.lock().unwrap().extend(s.waits_on().iter().copied());
            }
            let _ = tx.try_send(1); // unstalls the loop
        }
    });
    #[tinyio::coroutine]
    fn waits(rx: Receiver<u32>) -> Option<u32> {
        yield_!(rx.recv())
    }
    assert_eq!(lp.run(waits(rx)).unwrap(), Some(1));
    assert_eq!(*seen.lock().unwrap(), ["Receiver::recv"]);
    drop(tx);
}

/// A channel driven by one coroutine's `try_send` and `try_recv` behaves as a bounded
/// `VecDeque`.
#[derive(Clone, Debug)]
enum TryOp {
    Send(u8),
    Recv,
    DropReceiver,
}

fn try_op() -> impl Strategy<Value = TryOp> {
    prop_oneof![
        6 => any::<u8>().prop_map(TryOp::Send),
        6 => Just(TryOp::Recv),
        1 => Just(TryOp::DropReceiver),
    ]
}

/// One actor of a random crowd around one channel.
#[derive(Clone, Debug)]
enum Actor {
    /// Sends its values in order; some sends give up at once if there is no room (a zero
    /// timeout), and it pauses between sends.
    Sender { values: Vec<(bool, u8)>, pause: bool },
    /// Receives up to `count` values; some receives give up at once (a zero timeout).
    Receiver { receives: Vec<bool>, pause: bool },
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        prop::collection::vec((any::<bool>(), any::<u8>()), 0..8).prop_flat_map(|values| {
            any::<bool>().prop_map(move |pause| Actor::Sender { values: values.clone(), pause })
        }),
        prop::collection::vec(any::<bool>(), 0..8).prop_flat_map(|receives| any::<bool>()
            .prop_map(move |pause| Actor::Receiver { receives: receives.clone(), pause })),
    ]
}

#[tinyio::coroutine]
fn send_all(tx: Sender<(usize, u8)>, me: usize, values: Vec<(bool, u8)>, pause: bool) -> Vec<u8> {
    let mut sent = Vec::new();
    for (impatient, value) in values {
        let done = if impatient {
            yield_!(timeout(tx.send((me, value)), Duration::ZERO)).is_some()
        } else {
            yield_!(tx.send((me, value))).unwrap();
            true
        };
        if done {
            sent.push(value);
        }
        if pause {
            yield_!();
        }
    }
    sent
}

#[tinyio::coroutine]
fn receive_some(
    rx: Receiver<(usize, u8)>,
    receives: Vec<bool>,
    pause: bool,
    capacity: usize,
) -> Vec<(usize, u8)> {
    let mut got = Vec::new();
    for impatient in receives {
        let value = if impatient {
            yield_!(timeout(rx.recv(), Duration::ZERO)).flatten()
        } else {
            match yield_!(timeout(rx.recv(), Duration::from_secs(30))) {
                Some(value) => value,
                None => panic!("a receive waited 30 s: a value or the end was lost"),
            }
        };
        assert!(rx.len() <= capacity);
        got.extend(value);
        if pause {
            yield_!();
        }
    }
    got
}

/// What one receiver got: (sender, value) pairs, in the order received.
type Seen = Vec<(usize, u8)>;

/// Waits for the receivers, then takes what is left until every sender is gone: a sender
/// blocked on a full channel is never stranded.
#[tinyio::coroutine]
fn then_drain(receivers: Vec<tinyio::Coro<Seen>>, rx: Receiver<(usize, u8)>) -> (Vec<Seen>, Seen) {
    let received = yield_!(receivers);
    let mut left = Vec::new();
    while let Some(value) = yield_!(rx.recv()) {
        left.push(value);
    }
    (received, left)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn try_send_and_try_recv_match_a_bounded_vecdeque(
        capacity in 1..5usize,
        ops in prop::collection::vec(try_op(), 0..40),
    ) {
        let (tx, rx) = channel::<u8>(capacity);
        let mut rx = Some(rx);
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                TryOp::Send(x) => {
                    let got = tx.try_send(x);
                    let expected = if rx.is_none() {
                        Err(TrySendError::Closed(x))
                    } else if model.len() == capacity {
                        Err(TrySendError::Full(x))
                    } else {
                        model.push_back(x);
                        Ok(())
                    };
                    prop_assert_eq!(got, expected);
                }
                TryOp::Recv => {
                    if let Some(rx) = &rx {
                        let expected = model.pop_front().ok_or(TryRecvError::Empty);
                        prop_assert_eq!(rx.try_recv(), expected);
                    }
                }
                TryOp::DropReceiver => rx = None,
            }
            prop_assert_eq!(tx.len(), model.len());
        }
    }

    /// Random senders and receivers, some giving up: every value sent is received once or is
    /// still queued at the end, none that was given up on arrives, each sender's values arrive
    /// in its order, and the channel never holds more than its capacity.
    #[test]
    fn a_random_crowd_loses_nothing_and_keeps_each_senders_order(
        capacity in 1..4usize,
        actors in prop::collection::vec(actor(), 1..10),
    ) {
        let crowd = actors.clone();
        let (sent, received, left) = within(60, move || {
            let (tx, rx) = channel::<(usize, u8)>(capacity);
            let mut senders = Vec::new();
            let mut receivers = Vec::new();
            for (me, actor) in crowd.into_iter().enumerate() {
                match actor {
                    Actor::Sender { values, pause } => {
                        senders.push(send_all(tx.clone(), me, values, pause));
                    }
                    Actor::Receiver { receives, pause } => {
                        receivers.push(receive_some(rx.clone(), receives, pause, capacity));
                    }
                }
            }
            // Receivers that never get a value must see the end, not wait forever.
            drop(tx);
            let (sent, (received, left)) = Loop::new()
                .run((senders, then_drain(receivers, rx)))
                .unwrap();
            (sent, received, left)
        });
        let sender_ids: Vec<usize> = actors
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Actor::Sender { .. }))
            .map(|(i, _)| i)
            .collect();
        let got: Vec<(usize, u8)> = received.iter().flatten().chain(&left).copied().collect();
        for (values, me) in sent.iter().zip(&sender_ids) {
            let mut arrived: Vec<u8> = got.iter().filter(|(s, _)| s == me).map(|(_, v)| *v).collect();
            arrived.sort();
            let mut sent_sorted = values.clone();
            sent_sorted.sort();
            prop_assert_eq!(arrived, sent_sorted, "sender {}", me);
            // What each receiver (and what is left) saw of this sender is in its order.
            for seen in received.iter().chain([&left]) {
                let mut rest = values.iter();
                for (_, v) in seen.iter().filter(|(s, _)| s == me) {
                    prop_assert!(rest.any(|x| x == v), "sender {}: {:?} out of order", me, seen);
                }
            }
        }
        prop_assert_eq!(got.len(), sent.iter().map(Vec::len).sum::<usize>());
    }
}

#[test]
fn a_loop_failing_while_a_coroutine_waits_to_send_drops_the_value() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tinyio::coroutine]
    fn send_guard(tx: Sender<DropGuard>) -> () {
        yield_!(tx.send(DropGuard(&DROPS))).unwrap();
    }
    let (tx, rx) = channel(1);
    tx.try_send(DropGuard(&DROPS)).unwrap();
    let err = Loop::new().run((send_guard(tx), forever(()), fails_after_pauses(2))).unwrap_err();
    assert_eq!(err.to_string(), "failed");
    assert_eq!(dropped(&DROPS), 1, "the value that was never sent was dropped");
    drop(rx);
    assert_eq!(dropped(&DROPS), 2);
}

/// A coroutine whose channel is always ready finishes most operations in place, without
/// suspending, but not all of them: after a run of them one suspends, and every other ready
/// coroutine gets a round. Counted in rounds of a coroutine that pauses beside it.
#[test]
fn operations_that_need_not_wait_finish_in_place_but_let_the_others_run() {
    const N: usize = 1000;
    #[tinyio::coroutine]
    fn sends_then_receives(
        tx: Sender<usize>,
        rx: Receiver<usize>,
        rounds: Rc<Cell<usize>>,
        done: Rc<Cell<bool>>,
    ) -> (usize, usize) {
        let start = rounds.get();
        for i in 0..N {
            yield_!(tx.send(i)).unwrap(); // room for all of them
        }
        let while_sending = rounds.get() - start;
        let start = rounds.get();
        for i in 0..N {
            assert_eq!(yield_!(rx.recv()), Some(i));
        }
        done.set(true);
        (while_sending, rounds.get() - start)
    }
    #[tinyio::coroutine]
    fn pauses(rounds: Rc<Cell<usize>>, done: Rc<Cell<bool>>) -> () {
        while !done.get() {
            rounds.set(rounds.get() + 1);
            yield_!();
        }
    }
    let (tx, rx) = channel(N);
    let (rounds, done) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let ((while_sending, while_receiving), ()) = Loop::new()
        .run((sends_then_receives(tx, rx, rounds.clone(), done.clone()), pauses(rounds, done)))
        .unwrap();
    // One round per operation that suspended: one in every 65 (64 in place, then one through
    // the loop), give or take the run of in-place operations this thread had already begun.
    for rounds in [while_sending, while_receiving] {
        assert!(
            (N / 65 - 1..=N / 64 + 1).contains(&rounds),
            "{while_sending} rounds while sending, {while_receiving} while receiving"
        );
    }
}

/// An operation that finds the channel ready does not overtake a coroutine already waiting in
/// line on the same side: the value (or the room) was promised to the one in line.
#[test]
fn an_operation_in_place_does_not_overtake_a_waiter() {
    // A receiver in line gets the first value, though the sender receives right after sending.
    #[tinyio::coroutine]
    fn echo(tx: Sender<u32>, rx: Receiver<u32>) -> u32 {
        let first = yield_!(rx.recv()).unwrap(); // waits in line: the channel is empty
        yield_!(tx.send(first + 1)).unwrap();
        first
    }
    #[tinyio::coroutine]
    fn send_then_receive(tx: Sender<u32>, rx: Receiver<u32>) -> u32 {
        yield_!(tx.send(1)).unwrap(); // hands 1 to `echo`, in line
        yield_!(rx.recv()).unwrap() // 1 is promised: this waits, and gets 2
    }
    // Within a time limit: a value taken out of turn would leave a coroutine waiting forever.
    let got = within(30, || {
        let (tx, rx) = channel(1);
        Loop::new().run((echo(tx.clone(), rx.clone()), send_then_receive(tx, rx))).unwrap()
    });
    assert_eq!(got, (1, 2));

    // A sender in line gets the room first, though the receiver sends right after receiving.
    #[tinyio::coroutine]
    fn send_and_drain(tx: Sender<u32>, rx: Receiver<u32>) -> u32 {
        yield_!(tx.send(1)).unwrap(); // waits in line: the channel is full
        yield_!(rx.recv()).unwrap()
    }
    #[tinyio::coroutine]
    fn receive_then_send(tx: Sender<u32>, rx: Receiver<u32>) -> (u32, u32) {
        let first = yield_!(rx.recv()).unwrap(); // makes room, promised to `send_and_drain`
        yield_!(tx.send(2)).unwrap(); // waits until `send_and_drain` has sent and taken 1
        (first, yield_!(rx.recv()).unwrap())
    }
    let got = within(30, || {
        let (tx, rx) = channel(1);
        tx.try_send(0).unwrap();
        Loop::new()
            .run((send_and_drain(tx.clone(), rx.clone()), receive_then_send(tx, rx)))
            .unwrap()
    });
    assert_eq!(got, (1, (0, 2)));
}

/// Values received in place inside a race or a timeout are the coroutine's, and the race or
/// timeout that stops it afterwards takes nothing more from the channel: every value is
/// either received or still queued.
#[test]
fn values_received_in_place_inside_a_race_or_a_timeout_are_not_lost() {
    #[tinyio::coroutine]
    fn take_all(rx: Receiver<u32>, got: Rc<RefCell<Vec<u32>>>) -> () {
        while let Some(value) = yield_!(rx.recv()) {
            got.borrow_mut().push(value); // the first three in place, then it waits
        }
    }
    #[tinyio::coroutine]
    fn after_pauses(pauses: usize) -> () {
        for _ in 0..pauses {
            yield_!();
        }
    }
    #[tinyio::coroutine]
    fn race_then_timeout(
        tx: Sender<u32>,
        rx: Receiver<u32>,
        got: Rc<RefCell<Vec<u32>>>,
    ) -> Option<()> {
        for value in 0..3 {
            yield_!(tx.send(value)).unwrap();
        }
        let winner = yield_!(tinyio::race((take_all(rx.clone(), got.clone()), after_pauses(3))));
        assert!(matches!(winner, tinyio::Race2::Second(())));
        for value in 3..6 {
            yield_!(tx.send(value)).unwrap();
        }
        yield_!(timeout(take_all(rx, got), head_start()))
    }
    let (tx, rx) = channel(8);
    let got = Rc::new(RefCell::new(Vec::new()));
    let timed_out =
        Loop::new().run(race_then_timeout(tx.clone(), rx.clone(), got.clone())).unwrap();
    assert_eq!(timed_out, None);
    assert_eq!(*got.borrow(), [0, 1, 2, 3, 4, 5]);
    tx.try_send(6).unwrap();
    assert_eq!(rx.try_recv(), Ok(6), "the stopped receivers left the line");

    // A receive yielded inside a race takes its turn through the loop: it wins with a value
    // there, and, losing, leaves the value that comes later queued.
    #[tinyio::coroutine]
    fn races(tx: Sender<u32>, rx: Receiver<u32>) -> (Option<u32>, bool) {
        yield_!(tx.send(7)).unwrap();
        let won = match yield_!(tinyio::race((rx.recv(), after_pauses(1)))) {
            tinyio::Race2::First(value) => value,
            tinyio::Race2::Second(()) => None,
        };
        let lost = matches!(
            yield_!(tinyio::race((rx.recv(), after_pauses(1)))),
            tinyio::Race2::Second(())
        );
        (won, lost)
    }
    let (tx, rx) = channel(1);
    assert_eq!(Loop::new().run(races(tx.clone(), rx.clone())).unwrap(), (Some(7), true));
    tx.try_send(8).unwrap();
    // A receive made but never yielded takes nothing.
    drop(rx.recv());
    assert_eq!(rx.try_recv(), Ok(8));
}

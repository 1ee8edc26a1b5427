//! A tester's pass over channels after the rewrite: values never lost or duplicated, in races,
//! timeouts, gathers and across threads.

mod common;

use tinyio::{Loop, Race2, Receiver, Sender, channel, race};

/// Two receives raced on one channel that holds two values: one wins with a value, and the
/// loser takes nothing, so the other value is still queued.
#[test]
fn a_race_of_two_receives_takes_one_value() {
    #[tinyio::coroutine]
    fn first_of_two(rx: Receiver<u32>) -> u32 {
        match yield_!(race((rx.recv(), rx.recv()))) {
            Race2::First(value) | Race2::Second(value) => value.unwrap(),
        }
    }
    let (tx, rx) = channel(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(Loop::new().run(first_of_two(rx.clone())).unwrap(), 1);
    assert_eq!(rx.try_recv(), Ok(2), "the losing receive took nothing");
}

/// The usual select over two channels, each holding a value: the race gives one of them, and
/// the other stays in its channel.
#[test]
fn a_race_over_two_channels_that_both_hold_a_value_loses_neither() {
    #[tinyio::coroutine]
    fn select(a: Receiver<u32>, b: Receiver<u32>) -> Race2<Option<u32>, Option<u32>> {
        yield_!(race((a.recv(), b.recv())))
    }
    let ((tx_a, rx_a), (tx_b, rx_b)) = (channel(1), channel(1));
    tx_a.try_send(1).unwrap();
    tx_b.try_send(2).unwrap();
    let won = Loop::new().run(select(rx_a.clone(), rx_b.clone())).unwrap();
    assert_eq!(won, Race2::First(Some(1)));
    assert_eq!(rx_b.try_recv(), Ok(2), "the losing receive took nothing");
}

/// The same with sends: one of two raced sends queues its value, the other none.
#[test]
fn a_race_of_two_sends_queues_one_value() {
    #[tinyio::coroutine]
    fn first_of_two(tx: Sender<u32>) -> () {
        let won = yield_!(race((tx.send(1), tx.send(2))));
        assert!(matches!(won, Race2::First(Ok(()))));
    }
    let (tx, rx) = channel(2);
    Loop::new().run(first_of_two(tx.clone())).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(tinyio::TryRecvError::Empty), "the losing send queued nothing");
}

/// Two receives raced on an empty channel both wait in line; two values sent at once go to
/// them, one each. The winner's value comes out of the race, and the loser's stays queued.
#[test]
fn a_race_of_two_waiting_receives_loses_no_value() {
    #[tinyio::coroutine]
    fn first_of_two(rx: Receiver<u32>) -> u32 {
        match yield_!(race((rx.recv(), rx.recv()))) {
            Race2::First(value) | Race2::Second(value) => value.unwrap(),
        }
    }
    #[tinyio::coroutine]
    fn send_two(tx: Sender<u32>) -> () {
        yield_!();
        yield_!();
        yield_!(tx.send(1)).unwrap();
        yield_!(tx.send(2)).unwrap();
    }
    let (tx, rx) = channel(2);
    let (won, ()) = Loop::new().run((first_of_two(rx.clone()), send_two(tx.clone()))).unwrap();
    assert_eq!(won, 1);
    assert_eq!(rx.try_recv(), Ok(2), "the losing receive took nothing");
}

/// A receive that is cancelled right after a value was handed to it, before it ran again:
/// the value is either delivered or left queued, never dropped.
#[test]
fn a_receive_cancelled_after_being_handed_a_value_leaves_it_queued() {
    #[tinyio::coroutine]
    fn send_then_cancel(tx: Sender<u32>, handle: tinyio::CancelHandle) -> () {
        yield_!();
        yield_!();
        yield_!(tx.send(1)).unwrap(); // in place: handed to the receive in line
        handle.cancel();
    }
    let (tx, rx) = channel(1);
    let (receive, handle) = tinyio::cancellable(rx.recv());
    let (got, ()) = Loop::new().run((receive, send_then_cancel(tx.clone(), handle))).unwrap();
    let left = rx.try_recv().ok();
    assert!(
        matches!((got, left), (Some(Some(1)), None) | (None, Some(1))),
        "received {got:?}, left {left:?}"
    );
}

/// The same for a send cancelled right after it was handed room.
#[test]
fn a_send_cancelled_after_being_handed_room_queues_nothing_unreported() {
    #[tinyio::coroutine]
    fn receive_then_cancel(rx: Receiver<u32>, handle: tinyio::CancelHandle) -> Option<u32> {
        yield_!();
        yield_!();
        let first = yield_!(rx.recv()); // in place: hands the room to the send in line
        handle.cancel();
        first
    }
    let (tx, rx) = channel(1);
    tx.try_send(0).unwrap();
    let (send, handle) = tinyio::cancellable(tx.send(1));
    let (sent, first) = Loop::new().run((send, receive_then_cancel(rx.clone(), handle))).unwrap();
    assert_eq!(first, Some(0));
    let left = rx.try_recv().ok();
    assert!(
        matches!((&sent, left), (Some(Ok(())), Some(1)) | (None, None)),
        "sent {sent:?}, left {left:?}"
    );
}

/// A receive under a timeout whose deadline has already passed: the value there is either
/// received or left queued.
#[test]
fn a_receive_under_a_passed_deadline_loses_no_value() {
    #[tinyio::coroutine]
    fn receive(rx: Receiver<u32>) -> Option<Option<u32>> {
        yield_!(tinyio::timeout(rx.recv(), std::time::Duration::ZERO))
    }
    let (tx, rx) = channel(1);
    tx.try_send(1).unwrap();
    let got = Loop::new().run(receive(rx.clone())).unwrap();
    let left = rx.try_recv().ok();
    assert!(matches!((got, left), (Some(Some(1)), None) | (None, Some(1))), "{got:?} {left:?}");
}

/// A waiting receive, under `cancellable` directly or inside a coroutine, cancelled at every
/// round around the moment a value comes: the value is received or left queued, never dropped.
#[test]
fn a_receive_cancelled_at_any_round_around_a_value_loses_nothing() {
    #[tinyio::coroutine]
    fn receive(rx: Receiver<u32>) -> Option<u32> {
        yield_!(rx.recv())
    }
    #[tinyio::coroutine]
    fn send_later(tx: Sender<u32>) -> () {
        yield_!();
        yield_!();
        yield_!(tx.send(1)).unwrap();
    }
    #[tinyio::coroutine]
    fn cancel_after(pauses: usize, handle: tinyio::CancelHandle) -> () {
        for _ in 0..pauses {
            yield_!();
        }
        handle.cancel();
    }
    for pauses in 0..8 {
        for nested in [false, true] {
            let (tx, rx) = channel(1);
            let (got, handle) = if nested {
                tinyio::cancellable(receive(rx.clone()))
            } else {
                tinyio::cancellable(rx.recv())
            };
            let run = (got, send_later(tx.clone()), cancel_after(pauses, handle));
            let (got, (), ()) = Loop::new().run(run).unwrap();
            let left = rx.try_recv().ok();
            assert!(
                matches!((got, left), (Some(Some(1)), None) | (None, Some(1))),
                "after {pauses} pauses (nested: {nested}): received {got:?}, left {left:?}"
            );
        }
    }
}

/// Threads blocked in `send_blocking` and `recv_blocking` racing coroutines on both sides of
/// a channel of one: every value is received exactly once, and everyone sees the end.
#[test]
fn blocking_threads_and_coroutines_on_both_sides_lose_and_duplicate_nothing() {
    const PER: u32 = 300;
    #[tinyio::coroutine]
    fn send_all(tx: Sender<u32>, from: u32) -> () {
        for value in from..from + PER {
            yield_!(tx.send(value)).unwrap();
        }
    }
    #[tinyio::coroutine]
    fn receive_all(rx: Receiver<u32>) -> Vec<u32> {
        let mut got = Vec::new();
        while let Some(value) = yield_!(rx.recv()) {
            got.push(value);
        }
        got
    }
    let got = common::within(60, || {
        let (tx, rx) = channel(1);
        let senders: Vec<_> = (0..3)
            .map(|i| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    (i * PER..(i + 1) * PER).for_each(|value| tx.send_blocking(value).unwrap())
                })
            })
            .collect();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    std::iter::from_fn(|| rx.recv_blocking()).collect::<Vec<u32>>()
                })
            })
            .collect();
        let coroutines = (send_all(tx.clone(), 3 * PER), send_all(tx, 4 * PER));
        let (((), ()), mut got) =
            Loop::new().run((coroutines, [receive_all(rx.clone()), receive_all(rx)])).unwrap();
        senders.into_iter().for_each(|sender| sender.join().unwrap());
        for receiver in receivers {
            got[0].extend(receiver.join().unwrap());
        }
        got.concat()
    });
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..5 * PER).collect::<Vec<_>>(), "each value once");
}

/// A coroutine whose channel operations always finish in place still lets a timer, a thread
/// call and an event set from another thread wake the others.
#[test]
fn an_always_ready_channel_does_not_starve_timers_threads_or_remote_wakeups() {
    use std::cell::Cell;
    use std::rc::Rc;
    #[tinyio::coroutine]
    fn spin(tx: Sender<u32>, rx: Receiver<u32>, woken: Rc<Cell<usize>>) -> u64 {
        let mut operations = 0;
        while woken.get() < 3 {
            yield_!(tx.send(1)).unwrap();
            yield_!(rx.recv()).unwrap();
            operations += 2;
        }
        operations
    }
    #[tinyio::coroutine]
    fn after<Y: tinyio::Yieldable<Output = ()>>(y: Y, woken: Rc<Cell<usize>>) -> () {
        yield_!(y);
        woken.set(woken.get() + 1);
    }
    common::within(60, || {
        let (tx, rx) = channel(1);
        let woken = Rc::new(Cell::new(0));
        let event = tinyio::Event::new();
        let remote = event.clone();
        let setter = std::thread::spawn(move || remote.set());
        let (operations, ..) = Loop::new()
            .run((
                spin(tx, rx, woken.clone()),
                after(tinyio::sleep(common::ms(1)), woken.clone()),
                after(run_in_thread_unit(), woken.clone()),
                after(event.wait(), woken.clone()),
            ))
            .unwrap();
        setter.join().unwrap();
        assert!(operations > 0);
    });
}

fn run_in_thread_unit() -> tinyio::Coro<()> {
    tinyio::run_in_thread(|| ())
}

/// A receive awaited through `to_future`, polled until it waits in line, then dropped by its
/// executor: it leaves the line, so the next value is free for anyone, and a second receive
/// that waited behind it gets the value.
#[test]
fn a_receive_in_a_dropped_to_future_leaves_the_line() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let (tx, rx) = channel(1);
    let mut cx = Context::from_waker(Waker::noop());
    let mut first = Box::pin(tinyio::to_future(rx.recv()));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let mut second = Box::pin(tinyio::to_future(rx.recv()));
    assert!(second.as_mut().poll(&mut cx).is_pending());
    tx.try_send(1).unwrap(); // handed to the first in line
    drop(first);
    assert!(matches!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(Some(1)))));
    let mut third = Box::pin(tinyio::to_future(rx.recv()));
    assert!(third.as_mut().poll(&mut cx).is_pending());
    drop(third);
    tx.try_send(2).unwrap();
    assert_eq!(rx.try_recv(), Ok(2), "nobody is left in line");
}

/// A value that records its own drop.
struct Token(u32, std::rc::Rc<std::cell::RefCell<Vec<u32>>>);

impl Drop for Token {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

/// Senders and receivers on one channel, each cancelled at its own round (or never): every
/// value a sender was told it sent is received or still queued, never dropped; and no value is
/// received twice.
#[test]
fn senders_and_receivers_cancelled_at_every_round_lose_no_sent_value() {
    use std::cell::RefCell;
    use std::rc::Rc;
    type Log = Rc<RefCell<Vec<u32>>>;
    #[tinyio::coroutine]
    fn send_some(tx: Sender<Token>, from: u32, dropped: Log, sent: Log) -> () {
        for id in from..from + 4 {
            if yield_!(tx.send(Token(id, dropped.clone()))).is_ok() {
                sent.borrow_mut().push(id);
            }
            yield_!();
        }
    }
    #[tinyio::coroutine]
    fn receive_some(rx: Receiver<Token>, got: Rc<RefCell<Vec<Token>>>) -> () {
        for _ in 0..3 {
            match yield_!(rx.recv()) {
                Some(token) => got.borrow_mut().push(token),
                None => return,
            }
        }
    }
    #[tinyio::coroutine]
    fn cancel_at(round: usize, handle: tinyio::CancelHandle) -> () {
        for _ in 0..round {
            yield_!();
        }
        handle.cancel();
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    for case in 0..300 {
        let (dropped, sent): (Log, Log) = Default::default();
        let got = Rc::new(RefCell::new(Vec::new()));
        let (tx, rx) = channel(1 + next(2));
        let mut actors = Vec::new();
        let mut cancels = Vec::new();
        for i in 0..3 {
            let (work, handle) =
                tinyio::cancellable(send_some(tx.clone(), 10 * i, dropped.clone(), sent.clone()));
            actors.push(work);
            cancels.push(cancel_at(next(16), handle));
            let (work, handle) = tinyio::cancellable(receive_some(rx.clone(), got.clone()));
            actors.push(work);
            cancels.push(cancel_at(next(16), handle));
        }
        Loop::new().run((actors, cancels)).unwrap();
        while let Ok(token) = rx.try_recv() {
            got.borrow_mut().push(token);
        }
        let received: Vec<u32> = got.borrow().iter().map(|token| token.0).collect();
        let mut unique = received.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), received.len(), "case {case}: received twice: {received:?}");
        for id in sent.borrow().iter() {
            assert!(
                received.contains(id) && !dropped.borrow().contains(id),
                "case {case}: {id} was sent, but neither received nor left queued: {received:?}"
            );
        }
    }
}

/// A thread call parked in `recv_blocking` on an empty channel returns `None` once the loop
/// fails, and leaves the line: the next value is free for anyone.
#[test]
fn a_thread_call_parked_in_recv_blocking_leaves_the_line_when_told_to_stop() {
    use std::sync::{Arc, Mutex};
    #[tinyio::coroutine]
    fn fails_once(waiting: tinyio::Event) -> () {
        yield_!(waiting.wait());
        tinyio::bail!("stop");
    }
    let (tx, rx) = channel::<u32>(1);
    let outcome = Arc::new(Mutex::new(None));
    let err = common::within(30, {
        let (outcome, rx) = (outcome.clone(), rx.clone());
        move || {
            let waiting = tinyio::Event::new();
            let call = {
                let waiting = waiting.clone();
                tinyio::run_in_thread(move || {
                    waiting.set();
                    *outcome.lock().unwrap() = Some(rx.recv_blocking());
                })
            };
            Loop::new().run((call, fails_once(waiting))).unwrap_err().to_string()
        }
    });
    assert_eq!(err, "stop");
    assert_eq!(*outcome.lock().unwrap(), Some(None));
    tx.try_send(3).unwrap();
    assert_eq!(rx.try_recv(), Ok(3), "the stopped call left the line");
}

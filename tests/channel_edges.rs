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

//! Bounded channels between coroutines, and from threads into a loop: [`channel`].

// A channel is one queue under one lock. A send and a receive are one operation on two sides
// (`Side`): a send takes a unit of room and gives the receivers a value, a receive takes a value
// and gives the senders a unit of room. Each side counts its units as a semaphore counts permits
// (`Line`, in arrivals.rs): a unit that comes is handed to the first waiter in line, or else kept
// free; a waiter takes the unit it was handed, or a free one. A unit handed over is nobody else's,
// so a waiter that comes late cannot overtake the ones in line, and a waiter that gives up after it
// was handed one (it was cancelled) hands it on. A waiter leaves its line in O(log n).
//
// A `yield_!(tx.send(v))` or `yield_!(rx.recv())` that need not wait (a free unit, or the other
// side gone) finishes in place, as `try_send` / `try_recv` would, without suspending; one that must
// wait becomes a leaf coroutine that joins the line (`Wait`, as a semaphore's acquire does), as a
// `*_blocking` call does on its thread. So that a coroutine on an always-ready channel still lets
// the others run, one count per thread limits how many operations in a row finish in place (see
// `now` in `operation!`).

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex};

use crate::Coro;
use crate::arrivals::{Line, Side, Wait};
use crate::coro::{Coroutine, Submission};
use crate::site::{Site, site};
use crate::wake::lock;
use crate::yieldable::Yieldable;

static SEND: Site = site!("Sender::send");
static RECV: Site = site!("Receiver::recv");

/// A bounded channel that holds up to `capacity` values: any number of [`Sender`]s and
/// [`Receiver`]s (both `Clone`) share it, from coroutines of any loop or from plain threads.
///
/// `yield_!(tx.send(v))` waits for room and gives `Err` with the value back once every receiver is
/// gone; `yield_!(rx.recv())` waits for a value and gives `None` once every sender is gone and
/// the channel is empty. Waiters on each side are served first come, first served; a waiter that
/// is cancelled leaves the queue at once. Panics if `capacity` is zero.
///
/// ```
/// use tinyio::{Loop, Receiver, Sender, channel};
///
/// #[tinyio::coroutine]
/// fn produce(tx: Sender<u32>) -> () {
///     for i in 0..5 {
///         yield_!(tx.send(i)).unwrap();
///     }
/// } // `tx` drops here: the consumer sees the end
///
/// #[tinyio::coroutine]
/// fn consume(rx: Receiver<u32>) -> u32 {
///     let mut total = 0;
///     while let Some(i) = yield_!(rx.recv()) {
///         total += i;
///     }
///     total
/// }
///
/// let (tx, rx) = channel(2);
/// assert_eq!(Loop::new().run((produce(tx), consume(rx))).unwrap(), ((), 10));
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "`channel(0)` could never hold a value; use a capacity of at least 1");
    let chan = Arc::new(Mutex::new(Chan {
        queue: VecDeque::new(),
        capacity,
        senders: 1,
        receivers: 1,
        receiving: Line::default(),
        sending: Line::new(capacity),
    }));
    (Sender(chan.clone()), Receiver(chan))
}

struct Chan<T> {
    queue: VecDeque<T>,
    capacity: usize,
    /// Live `Sender`s; at zero, receivers see the end once the queue is empty.
    senders: usize,
    /// Live `Receiver`s; at zero, sending fails.
    receivers: usize,
    /// Receivers waiting; its units are the queued values.
    receiving: Line,
    /// Senders waiting; its units are the free slots.
    sending: Line,
}

/// A send, with its value.
struct Put<T>(T);

/// A receive.
struct Take;

impl<T> Side<Chan<T>> for Put<T> {
    type Output = Result<(), SendError<T>>;

    fn line(chan: &mut Chan<T>) -> &mut Line {
        &mut chan.sending
    }

    #[inline]
    fn finish(self, chan: &mut Chan<T>, ticket: &mut u64) -> Result<Self::Output, Self> {
        if chan.receivers == 0 {
            Ok(Err(SendError { value: self.0, cancelled: false }))
        } else if chan.sending.take(ticket) {
            chan.queue.push_back(self.0);
            chan.receiving.release();
            Ok(Ok(()))
        } else {
            Err(self)
        }
    }
}

impl<T> Side<Chan<T>> for Take {
    type Output = Option<T>;

    fn line(chan: &mut Chan<T>) -> &mut Line {
        &mut chan.receiving
    }

    #[inline]
    fn finish(self, chan: &mut Chan<T>, ticket: &mut u64) -> Result<Option<T>, Self> {
        if chan.receiving.take(ticket) {
            chan.sending.release();
            Ok(chan.queue.pop_front())
        } else if chan.senders == 0 {
            Ok(None)
        } else {
            Err(self)
        }
    }
}

/// The sending side of a [`channel`]. Cloning gives another sender; when the last one drops,
/// receivers see the end of the channel.
///
/// ```
/// let (tx, rx) = tinyio::channel(1);
/// let tx2 = tx.clone();
/// tx2.try_send(7).unwrap();
/// drop((tx, tx2));
/// assert_eq!(rx.try_recv(), Ok(7));
/// assert_eq!(rx.try_recv(), Err(tinyio::TryRecvError::Closed));
/// ```
pub struct Sender<T>(Arc<Mutex<Chan<T>>>);

/// The receiving side of a [`channel`]. Cloning gives another receiver (a pool of workers can
/// share one channel, each value going to one of them); when the last one drops, sending fails.
///
/// ```
/// let (tx, rx) = tinyio::channel::<u8>(1);
/// drop(rx);
/// assert_eq!(tx.try_send(1).unwrap_err().into_inner(), 1);
/// ```
pub struct Receiver<T>(Arc<Mutex<Chan<T>>>);

impl<T> Sender<T> {
    /// Sends `value` once yielded: `yield_!(tx.send(v))` waits for room, then queues `value`,
    /// and gives the value back in `Err` if every receiver is gone (before or while it waits).
    /// With room now, it finishes at once, without suspending (see [`Sending`]).
    ///
    /// ```
    /// use tinyio::{Loop, channel};
    ///
    /// let (tx, rx) = channel(1);
    /// Loop::new().run(tx.send("hello")).unwrap().unwrap();
    /// assert_eq!(rx.try_recv(), Ok("hello"));
    /// drop(rx);
    /// let refused = Loop::new().run(tx.send("again")).unwrap().unwrap_err();
    /// assert_eq!(refused.into_inner(), "again");
    /// ```
    #[track_caller]
    pub fn send(&self, value: T) -> Sending<T> {
        Sending(Op { chan: self.0.clone(), kind: Put(value), at: Location::caller() })
    }

    /// Queues `value` if there is room now.
    ///
    /// ```
    /// use tinyio::TrySendError;
    ///
    /// let (tx, _rx) = tinyio::channel(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match Put(value).finish(&mut lock(&self.0), &mut 0) {
            Ok(sent) => sent.map_err(|closed| TrySendError::Closed(closed.value)),
            Err(Put(value)) => Err(TrySendError::Full(value)),
        }
    }

    /// Blocks this thread until there is room, then queues `value`: for plain threads and
    /// [`run_in_thread`](crate::run_in_thread) calls, never inside a coroutine (use `send`).
    /// Gives the value back in `Err` if every receiver is gone, or, inside a thread call, as
    /// soon as the call is told to stop ([`SendError::is_cancelled`]).
    ///
    /// ```
    /// use tinyio::{Loop, channel, run_in_thread};
    ///
    /// #[tinyio::coroutine]
    /// fn sum(rx: tinyio::Receiver<u64>) -> u64 {
    ///     let mut total = 0;
    ///     while let Some(x) = yield_!(rx.recv()) {
    ///         total += x;
    ///     }
    ///     total
    /// }
    ///
    /// let (tx, rx) = channel(4);
    /// let producer = run_in_thread(move || {
    ///     for x in 1..=100 {
    ///         tx.send_blocking(x).unwrap();
    ///     }
    /// });
    /// assert_eq!(Loop::new().run((producer, sum(rx))).unwrap(), ((), 5050));
    /// ```
    pub fn send_blocking(&self, value: T) -> Result<(), SendError<T>> {
        // Told to stop, it sends nothing, even with room (a closed channel is said first).
        if crate::thread::is_cancelled() && lock(&self.0).receivers > 0 {
            return Err(SendError { value, cancelled: true });
        }
        block(&self.0, Put(value))
            .unwrap_or_else(|Put(value)| Err(SendError { value, cancelled: true }))
    }

    /// How many values the channel holds at most.
    ///
    /// ```
    /// let (tx, _rx) = tinyio::channel(3);
    /// tx.try_send(()).unwrap();
    /// assert_eq!((tx.len(), tx.capacity()), (1, 3));
    /// ```
    pub fn capacity(&self) -> usize {
        lock(&self.0).capacity
    }
}

impl<T> Receiver<T> {
    /// Receives once yielded: `yield_!(rx.recv())` waits for a value and gives it, or `None`
    /// once every sender is gone and the channel is empty. With a value there now, it finishes
    /// at once, without suspending (see [`Receiving`]).
    ///
    /// ```
    /// use tinyio::{Loop, channel};
    ///
    /// let (tx, rx) = channel(2);
    /// tx.try_send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(Loop::new().run(rx.recv()).unwrap(), Some(1));
    /// assert_eq!(Loop::new().run(rx.recv()).unwrap(), None);
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Receiving<T> {
        Receiving(Op { chan: self.0.clone(), kind: Take, at: Location::caller() })
    }

    /// Takes a value if one is queued now.
    ///
    /// ```
    /// use tinyio::TryRecvError;
    ///
    /// let (tx, rx) = tinyio::channel(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.try_send('x').unwrap();
    /// assert_eq!(rx.try_recv(), Ok('x'));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match Take.finish(&mut lock(&self.0), &mut 0) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(TryRecvError::Closed),
            Err(Take) => Err(TryRecvError::Empty),
        }
    }

    /// Blocks this thread until a value comes (or every sender is gone: `None`): for plain
    /// threads and [`run_in_thread`](crate::run_in_thread) calls, never inside a coroutine (use
    /// `recv`). Inside a thread call told to stop, it no longer waits: it still takes a value
    /// that is queued, else gives `None` at once.
    ///
    /// ```
    /// let (tx, rx) = tinyio::channel(1);
    /// let consumer = std::thread::spawn(move || rx.recv_blocking());
    /// tx.try_send(5).unwrap();
    /// assert_eq!(consumer.join().unwrap(), Some(5));
    /// ```
    pub fn recv_blocking(&self) -> Option<T> {
        block(&self.0, Take).unwrap_or(None)
    }
}

/// `len`, `is_empty`, `Clone`, `Drop` and `Debug` of the two ends, which differ only in the
/// count they keep and the line they wake when the last of them is gone.
macro_rules! end {
    ($End:ident, $count:ident, $other_line:ident) => {
        impl<T> $End<T> {
            /// How many values are queued now.
            ///
            /// ```
            /// let (tx, rx) = tinyio::channel(2);
            /// tx.try_send(1).unwrap();
            /// assert_eq!((tx.len(), rx.len()), (1, 1));
            /// ```
            pub fn len(&self) -> usize {
                lock(&self.0).queue.len()
            }

            /// Whether no value is queued now.
            ///
            /// ```
            /// let (tx, rx) = tinyio::channel::<u8>(1);
            /// assert!(tx.is_empty() && rx.is_empty());
            /// ```
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }

        impl<T> Clone for $End<T> {
            fn clone(&self) -> Self {
                lock(&self.0).$count += 1;
                $End(self.0.clone())
            }
        }

        impl<T> Drop for $End<T> {
            fn drop(&mut self) {
                let mut chan = lock(&self.0);
                chan.$count -= 1;
                if chan.$count == 0 {
                    chan.$other_line.wake(true, false);
                }
            }
        }

        impl<T> fmt::Debug for $End<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let chan = lock(&self.0);
                let (len, capacity) = (chan.queue.len(), chan.capacity);
                let mut f = f.debug_struct(stringify!($End));
                f.field("len", &len).field("capacity", &capacity).finish_non_exhaustive()
            }
        }
    };
}

end!(Sender, senders, receiving);
end!(Receiver, receivers, sending);

/// What [`Sender::send`] gives: yield it to send. `yield_!` finishes it at once when the
/// channel has room that nobody waiting was promised (or has no receiver left), and the
/// coroutine goes on without suspending; otherwise it waits in line for room. Like any
/// yieldable it also goes into gathers, [`timeout`](crate::timeout) and
/// [`background`](crate::background), where it takes its turn through the loop, and into a
/// [`race`](crate::race), where it may finish at once too: raced directly, it never loses a
/// value, as the runners a race stops have not taken one.
///
/// After a run of operations that all finished at once (64 on this thread), the next one
/// suspends whatever the channel holds, so that a coroutine on a channel that is always ready
/// still lets the others run.
///
/// ```
/// use tinyio::{Loop, Sending, channel, timeout};
/// use std::time::Duration;
///
/// #[tinyio::coroutine]
/// fn fill(tx: tinyio::Sender<u32>) -> bool {
///     let first: Sending<u32> = tx.send(1);
///     yield_!(first).unwrap(); // room: finishes at once
///     // The channel is full now: the second send waits, and the timeout stops it.
///     yield_!(timeout(tx.send(2), Duration::from_millis(1))).is_none()
/// }
///
/// let (tx, rx) = channel(1);
/// assert!(Loop::new().run(fill(tx)).unwrap());
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
#[must_use = "a send does nothing until it is yielded: `yield_!(tx.send(v))`"]
pub struct Sending<T>(Op<T, Put<T>>);

/// What [`Receiver::recv`] gives: yield it to receive. `yield_!` finishes it at once when the
/// channel holds a value that nobody waiting was promised (or is empty with no sender left), and
/// the coroutine goes on without suspending; otherwise it waits in line for a value. Like any
/// yieldable it also goes into gathers, [`timeout`](crate::timeout) and
/// [`background`](crate::background), where it takes its turn through the loop, and into a
/// [`race`](crate::race), where it may finish at once too: raced directly, it never loses a
/// value, as the runners a race stops have not taken one.
///
/// After a run of operations that all finished at once (64 on this thread), the next one
/// suspends whatever the channel holds, so that a coroutine on a channel that is always ready
/// still lets the others run.
///
/// ```
/// use tinyio::{Loop, Race2, Receiving, channel, race, sleep};
/// use std::time::Duration;
///
/// #[tinyio::coroutine]
/// fn first(rx: tinyio::Receiver<u32>) -> Option<u32> {
///     let next: Receiving<u32> = rx.recv();
///     let a = yield_!(next); // a value is there: finishes at once
///     // None left: the sleep wins the race, and the value that comes later stays queued.
///     match yield_!(race((rx.recv(), sleep(Duration::from_millis(1))))) {
///         Race2::First(_) => None,
///         Race2::Second(()) => a,
///     }
/// }
///
/// let (tx, rx) = channel(2);
/// tx.try_send(7).unwrap();
/// assert_eq!(Loop::new().run(first(rx.clone())).unwrap(), Some(7));
/// tx.try_send(8).unwrap();
/// assert_eq!(rx.try_recv(), Ok(8));
/// ```
#[must_use = "a receive does nothing until it is yielded: `yield_!(rx.recv())`"]
pub struct Receiving<T>(Op<T, Take>);

/// A send or a receive, not yet yielded.
struct Op<T, K> {
    chan: Arc<Mutex<Chan<T>>>,
    kind: K,
    /// Where `send` or `recv` was called, to place the leaf it may become.
    at: &'static Location<'static>,
}

/// How many channel operations in a row finish in place on one thread before one is made to
/// suspend.
const IN_PLACE: u32 = 64;

thread_local! {
    /// Channel operations that finished in place on this thread since one last suspended.
    static IN_A_ROW: Cell<u32> = const { Cell::new(0) };
}

/// `Yieldable` and `Debug` of the two operations, which differ only in their output and site.
macro_rules! operation {
    ($Op:ident, $Output:ty, $site:ident) => {
        impl<T: 'static> Yieldable for $Op<T> {
            type Output = $Output;
            type Pending = <Coro<$Output> as Yieldable>::Pending;

            /// Finishes in place, as `try_send` / `try_recv` would, unless the operations before
            /// it used up this thread's run of them ([`IN_PLACE`]). An operation that does not
            /// finish in place (it must wait, or the run is used up) suspends through the loop,
            /// where every other ready coroutine runs first: that starts a new run.
            #[inline(always)]
            fn now(self) -> Result<$Output, Self> {
                let done = IN_A_ROW.get();
                let outcome = if done < IN_PLACE {
                    let outcome = self.0.kind.finish(&mut lock(&self.0.chan), &mut 0);
                    outcome.map_err(|kind| $Op(Op { kind, ..self.0 }))
                } else {
                    Err(self)
                };
                IN_A_ROW.set(if outcome.is_ok() { done + 1 } else { 0 });
                outcome
            }

            fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
            where
                Self: 's,
            {
                let Op { chan, kind, at } = self.0;
                Coroutine::leaf_at(&$site, at, Wait::new(chan, kind)).submit(submission)
            }

            fn collect(pending: Self::Pending) -> $Output {
                <Coro<$Output> as Yieldable>::collect(pending)
            }
        }

        impl<T> fmt::Debug for $Op<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($Op)).finish_non_exhaustive()
            }
        }
    };
}

operation!(Sending, Result<(), SendError<T>>, SEND);
operation!(Receiving, Option<T>, RECV);

/// Runs `op` on this thread, parking while it waits: until it finishes, or until the thread
/// call this runs in is told to stop (then `op` comes back).
fn block<T, K: Side<Chan<T>>>(chan: &Arc<Mutex<Chan<T>>>, op: K) -> Result<K::Output, K> {
    let mut wait = Wait::new(chan.clone(), op);
    loop {
        if let Some(output) = wait.step(crate::wake::this_thread) {
            return Ok(output);
        }
        if crate::thread::is_cancelled() {
            return Err(wait.op.take().expect("it waits"));
        }
        std::thread::park();
    }
}

const CLOSED: &str = "sending on a channel whose receivers are all gone";
const CANCELLED: &str = "sending was cancelled: the thread call was told to stop";

/// A value that could not be sent, given back: every receiver was gone, or (for
/// [`Sender::send_blocking`] inside a thread call) the call was told to stop.
///
/// ```
/// let (tx, rx) = tinyio::channel(1);
/// drop(rx);
/// let error = tx.send_blocking(String::from("lost")).unwrap_err();
/// assert!(!error.is_cancelled());
/// assert_eq!(error.to_string(), "sending on a channel whose receivers are all gone");
/// assert_eq!(error.into_inner(), "lost");
/// ```
#[derive(PartialEq, Eq, thiserror::Error)]
#[error("{}", if *.cancelled { CANCELLED } else { CLOSED })]
pub struct SendError<T> {
    value: T,
    cancelled: bool,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, rx) = tinyio::channel(1);
    /// drop(rx);
    /// assert_eq!(tx.send_blocking(3).unwrap_err().into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Whether sending stopped because the thread call it ran in was told to stop, rather than
    /// because every receiver was gone.
    ///
    /// ```
    /// let (tx, rx) = tinyio::channel(1);
    /// drop(rx);
    /// assert!(!tx.send_blocking(()).unwrap_err().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError").field("cancelled", &self.cancelled).finish_non_exhaustive()
    }
}

/// Why [`Sender::try_send`] could not queue a value now; the value comes back.
///
/// ```
/// use tinyio::TrySendError;
///
/// let (tx, rx) = tinyio::channel(1);
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// drop(rx);
/// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
/// ```
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError<T> {
    /// The channel holds `capacity` values already.
    #[error("the channel is full")]
    Full(T),
    /// Every receiver is gone.
    #[error("{CLOSED}")]
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, _rx) = tinyio::channel(1);
    /// tx.try_send('a').unwrap();
    /// assert_eq!(tx.try_send('b').unwrap_err().into_inner(), 'b');
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Closed(value) => value,
        }
    }
}

/// Why [`Receiver::try_recv`] gave no value.
///
/// ```
/// use tinyio::TryRecvError;
///
/// let (tx, rx) = tinyio::channel::<u8>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is queued now.
    #[error("the channel is empty")]
    Empty,
    /// Nothing is queued, and every sender is gone.
    #[error("the channel is empty and its senders are all gone")]
    Closed,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Wake, Waker};

    use super::*;

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(SeqCst)
    }

    fn waiting<K: Side<Chan<u32>>>(
        chan: &Arc<Mutex<Chan<u32>>>,
        op: K,
        waker: Waker,
    ) -> Wait<Chan<u32>, K> {
        let mut wait = Wait::new(chan.clone(), op);
        assert!(wait.step(|| waker).is_none(), "it waits");
        wait
    }

    #[test]
    fn a_receiver_chosen_for_a_value_that_gives_up_passes_it_on() {
        let (tx, rx) = channel::<u32>(1);
        let ((a, wa), (b, wb)) = (counting(), counting());
        let first = waiting(&rx.0, Take, wa);
        let mut second = waiting(&rx.0, Take, wb);
        tx.try_send(7).unwrap();
        assert_eq!((woken(&a), woken(&b)), (1, 0), "the first in line is chosen");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "the value is promised");
        drop(first); // cancelled before it took the value
        assert_eq!(woken(&b), 1, "the promise went to the next in line");
        assert!(matches!(Take.finish(&mut lock(&rx.0), &mut second.ticket), Ok(Some(7))));
        drop(second);
        let chan = lock(&rx.0);
        assert_eq!((chan.receiving.free, chan.sending.free), (0, 1), "no unit lost or made up");
    }

    #[test]
    fn a_sender_chosen_for_room_that_gives_up_passes_it_on() {
        let (tx, rx) = channel::<u32>(1);
        tx.try_send(0).unwrap();
        let ((a, wa), (b, wb)) = (counting(), counting());
        let first = waiting(&tx.0, Put(1), wa);
        let mut second = waiting(&tx.0, Put(2), wb);
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!((woken(&a), woken(&b)), (1, 0), "the first in line is chosen");
        assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)), "the room is promised");
        drop(first);
        assert_eq!(woken(&b), 1, "the promise went to the next in line");
        let op = second.op.take().unwrap();
        assert!(matches!(op.finish(&mut lock(&tx.0), &mut second.ticket), Ok(Ok(()))));
        drop(second);
        assert_eq!(rx.try_recv(), Ok(2));
        let chan = lock(&tx.0);
        assert_eq!((chan.receiving.free, chan.sending.free), (0, 1), "no unit lost or made up");
    }

    #[test]
    fn a_waiter_that_leaves_the_line_wakes_nobody() {
        let (tx, rx) = channel::<u32>(1);
        let ((a, wa), (b, wb)) = (counting(), counting());
        let first = waiting(&rx.0, Take, wa);
        let second = waiting(&rx.0, Take, wb);
        drop(first);
        assert_eq!((woken(&a), woken(&b)), (0, 0));
        tx.try_send(5).unwrap();
        assert_eq!((woken(&a), woken(&b)), (0, 1), "the second is first in line now");
        assert!(lock(&rx.0).receiving.is_empty());
        drop(second);
        assert_eq!(rx.try_recv(), Ok(5), "the value handed to the second is free again");
    }

    #[test]
    fn a_receiver_woken_by_the_end_takes_a_value_that_a_send_in_flight_queues_after() {
        let (tx, rx) = channel::<u32>(1);
        let (a, wa) = counting();
        let mut waiter = waiting(&rx.0, Take, wa);
        let sending = tx.send(7); // made before the last sender drops, yielded after
        drop(tx);
        assert_eq!(woken(&a), 1, "the end wakes the receiver");
        assert!(matches!(Yieldable::now(sending), Ok(Ok(()))), "a receiver is still there");
        assert_eq!(waiter.step(|| unreachable!()), Some(Some(7)), "the value, not the end");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn a_receiver_woken_by_the_end_leaves_the_value_handed_to_another() {
        let (tx, rx) = channel::<u32>(1);
        let ((_, wa), (b, wb)) = (counting(), counting());
        let mut first = waiting(&rx.0, Take, wa);
        let mut second = waiting(&rx.0, Take, wb);
        tx.try_send(7).unwrap(); // handed to the first
        drop(tx);
        assert_eq!(woken(&b), 1, "the end wakes everyone in line");
        assert_eq!(second.step(|| unreachable!()), Some(None), "the second sees the end");
        assert_eq!(first.step(|| unreachable!()), Some(Some(7)), "the first takes its value");
        let chan = lock(&rx.0);
        assert_eq!((chan.receiving.free, chan.sending.free), (0, 1), "no unit lost or made up");
    }

    /// The error types are errors whatever they carry, as before they were derived.
    #[test]
    fn errors_need_no_debug_value() {
        struct Opaque;
        fn is_error<E: std::error::Error>() {}
        is_error::<SendError<Opaque>>();
        is_error::<TryRecvError>();
    }
}

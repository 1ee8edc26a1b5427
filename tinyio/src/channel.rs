//! Bounded channels between coroutines, and from threads into a loop: [`channel`].

// A channel is one queue under one lock, with the waiters of each side in arrival order. A
// waiter leaves its line in O(log n). Waking a waiter takes it out of the line and promises it
// one value (or one slot of room): `chosen` counts the promises not yet used, and nobody else
// may take what is promised, so a waiter that comes late cannot overtake the ones in line. A
// chosen waiter that gives up (it was cancelled) passes its promise to the next in line.
//
// A `yield_!(tx.send(v))` or `yield_!(rx.recv())` that need not wait (room, or a value, that
// nobody in line was promised) finishes in place, as `try_send` / `try_recv` would, without
// suspending; one that must wait becomes a leaf coroutine that joins the line. So that a
// coroutine on an always-ready channel still lets the others run, one count per thread limits
// how many operations in a row finish in place (see `in_place`).

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use crate::Coro;
use crate::coro::Submission;
use crate::coro::{Coroutine, Cx, Leaf};
use crate::error::Error;
use crate::site::{Site, site};
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
        receiving: Waiters::default(),
        sending: Waiters::default(),
    }));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    queue: VecDeque<T>,
    capacity: usize,
    /// Live `Sender`s; at zero, receivers see the end once the queue is empty.
    senders: usize,
    /// Live `Receiver`s; at zero, sending fails.
    receivers: usize,
    /// Receivers waiting for a value.
    receiving: Waiters,
    /// Senders waiting for room.
    sending: Waiters,
}

fn lock<T>(chan: &Mutex<Chan<T>>) -> MutexGuard<'_, Chan<T>> {
    // A panic while the lock is held leaves the queue and counts consistent.
    chan.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Chan<T> {
    /// Takes a value for a receiver (in line with `ticket`, or not in line): the one promised
    /// to it if it was chosen, or one promised to nobody. Out of the line once it has one.
    #[inline]
    fn take(&mut self, ticket: &mut Option<u64>) -> Option<T> {
        self.receiving.claim(ticket);
        if self.queue.len() <= self.receiving.chosen {
            return None;
        }
        self.receiving.leave(ticket);
        let value = self.queue.pop_front();
        self.sending.wake_one();
        value
    }

    /// Queues a value for a sender (in line with `ticket`, or not in line), into the room
    /// promised to it if it was chosen, or into room promised to nobody; else gives it back.
    #[inline]
    fn put(&mut self, value: T, ticket: &mut Option<u64>) -> Result<(), T> {
        self.sending.claim(ticket);
        if self.queue.len() + self.sending.chosen >= self.capacity {
            return Err(value);
        }
        self.sending.leave(ticket);
        self.queue.push_back(value);
        self.receiving.wake_one();
        Ok(())
    }

    /// A receiver that gives up leaves the line, or passes on the value promised to it.
    fn stop_receiving(&mut self, ticket: &mut Option<u64>) {
        if self.receiving.leave(ticket) && self.queue.len() > self.receiving.chosen {
            self.receiving.wake_one();
        }
    }

    /// A sender that gives up leaves the line, or passes on the room promised to it.
    fn stop_sending(&mut self, ticket: &mut Option<u64>) {
        if self.sending.leave(ticket) && self.queue.len() + self.sending.chosen < self.capacity {
            self.sending.wake_one();
        }
    }
}

/// Waiters of one side, by ticket: first come, first served.
#[derive(Default)]
struct Waiters {
    next: u64,
    queue: BTreeMap<u64, Waker>,
    /// Waiters woken with a promise (a value, or room) that they have not used yet.
    chosen: usize,
}

impl Waiters {
    /// Joins the line, or, if still in it, keeps its place with the newest waker.
    fn wait(&mut self, ticket: &mut Option<u64>, waker: impl FnOnce() -> Waker) {
        if let Some(queued) = ticket.and_then(|t| self.queue.get_mut(&t)) {
            let waker = waker();
            if !queued.will_wake(&waker) {
                *queued = waker;
            }
            return;
        }
        let t = self.next;
        self.next += 1;
        self.queue.insert(t, waker());
        *ticket = Some(t);
    }

    /// A waiter that was chosen takes its promise back into the common pool, to use it now:
    /// it is out of the line (its ticket cleared).
    #[inline]
    fn claim(&mut self, ticket: &mut Option<u64>) {
        if ticket.is_some_and(|t| !self.queue.contains_key(&t)) {
            *ticket = None;
            self.chosen = self.chosen.saturating_sub(1);
        }
    }

    /// Leaves the line; true if the waiter had been chosen instead (its promise then ends).
    #[inline]
    fn leave(&mut self, ticket: &mut Option<u64>) -> bool {
        let chosen = ticket.take().is_some_and(|t| self.queue.remove(&t).is_none());
        if chosen {
            self.chosen = self.chosen.saturating_sub(1);
        }
        chosen
    }

    /// Wakes the first in line, with a promise.
    #[inline]
    fn wake_one(&mut self) {
        if self.queue.is_empty() {
            return; // the common case, checked without the map's descent to its first leaf
        }
        if let Some((_, waker)) = self.queue.pop_first() {
            self.chosen += 1;
            waker.wake();
        }
    }

    /// Wakes everyone in line, to see that the other side is gone: no promise is made, and
    /// `claim` and `leave` saturate for them.
    fn wake_all(&mut self) {
        for waker in std::mem::take(&mut self.queue).into_values() {
            waker.wake();
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
pub struct Sender<T> {
    chan: Arc<Mutex<Chan<T>>>,
}

/// The receiving side of a [`channel`]. Cloning gives another receiver (a pool of workers can
/// share one channel, each value going to one of them); when the last one drops, sending fails.
///
/// ```
/// let (tx, rx) = tinyio::channel::<u8>(1);
/// drop(rx);
/// assert_eq!(tx.try_send(1).unwrap_err().into_inner(), 1);
/// ```
pub struct Receiver<T> {
    chan: Arc<Mutex<Chan<T>>>,
}

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
        Sending { chan: self.chan.clone(), value, at: Location::caller() }
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
        let mut chan = lock(&self.chan);
        if chan.receivers == 0 {
            return Err(TrySendError::Closed(value));
        }
        chan.put(value, &mut None).map_err(TrySendError::Full)
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
        let (mut ticket, mut value) = (None, value);
        let mut chan = lock(&self.chan);
        loop {
            if chan.receivers == 0 || crate::thread::is_cancelled() {
                chan.stop_sending(&mut ticket);
                let cancelled = chan.receivers > 0;
                return Err(SendError { value, cancelled });
            }
            match chan.put(value, &mut ticket) {
                Ok(()) => return Ok(()),
                Err(back) => value = back,
            }
            chan.sending.wait(&mut ticket, thread_waker);
            drop(chan);
            std::thread::park();
            chan = lock(&self.chan);
        }
    }

    /// How many values are queued now.
    ///
    /// ```
    /// let (tx, _rx) = tinyio::channel(3);
    /// tx.try_send(()).unwrap();
    /// assert_eq!((tx.len(), tx.capacity()), (1, 3));
    /// ```
    pub fn len(&self) -> usize {
        lock(&self.chan).queue.len()
    }

    /// Whether no value is queued now.
    ///
    /// ```
    /// let (tx, _rx) = tinyio::channel::<u8>(1);
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many values the channel holds at most.
    ///
    /// ```
    /// let (tx, _rx) = tinyio::channel::<u8>(8);
    /// assert_eq!(tx.capacity(), 8);
    /// ```
    pub fn capacity(&self) -> usize {
        lock(&self.chan).capacity
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
        Receiving { chan: self.chan.clone(), at: Location::caller() }
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
        let mut chan = lock(&self.chan);
        match chan.take(&mut None) {
            Some(value) => Ok(value),
            None if chan.senders == 0 => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Blocks this thread until a value comes (or every sender is gone: `None`): for plain
    /// threads and [`run_in_thread`](crate::run_in_thread) calls, never inside a coroutine (use
    /// `recv`). Inside a thread call, gives `None` as soon as the call is told to stop.
    ///
    /// ```
    /// let (tx, rx) = tinyio::channel(1);
    /// let consumer = std::thread::spawn(move || rx.recv_blocking());
    /// tx.try_send(5).unwrap();
    /// assert_eq!(consumer.join().unwrap(), Some(5));
    /// ```
    pub fn recv_blocking(&self) -> Option<T> {
        let mut ticket = None;
        let mut chan = lock(&self.chan);
        loop {
            if let Some(value) = chan.take(&mut ticket) {
                return Some(value);
            }
            if chan.senders == 0 || crate::thread::is_cancelled() {
                chan.stop_receiving(&mut ticket);
                return None;
            }
            chan.receiving.wait(&mut ticket, thread_waker);
            drop(chan);
            std::thread::park();
            chan = lock(&self.chan);
        }
    }

    /// How many values are queued now.
    ///
    /// ```
    /// let (tx, rx) = tinyio::channel(2);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        lock(&self.chan).queue.len()
    }

    /// Whether no value is queued now.
    ///
    /// ```
    /// let (_tx, rx) = tinyio::channel::<u8>(1);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn thread_waker() -> Waker {
    Waker::from(Arc::new(crate::wake::Unpark(std::thread::current())))
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.chan).senders += 1;
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        lock(&self.chan).receivers += 1;
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut chan = lock(&self.chan);
        chan.senders -= 1;
        if chan.senders == 0 {
            chan.receiving.wake_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut chan = lock(&self.chan);
        chan.receivers -= 1;
        if chan.receivers == 0 {
            chan.sending.wake_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chan = lock(&self.chan);
        f.debug_struct("Sender")
            .field("len", &chan.queue.len())
            .field("capacity", &chan.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chan = lock(&self.chan);
        f.debug_struct("Receiver")
            .field("len", &chan.queue.len())
            .field("capacity", &chan.capacity)
            .finish_non_exhaustive()
    }
}

/// What [`Sender::send`] gives: yield it to send. `yield_!` finishes it at once when the
/// channel has room that nobody waiting was promised (or has no receiver left), and the
/// coroutine goes on without suspending; otherwise it waits in line for room. Like any
/// yieldable it also goes into gathers, [`race`](crate::race), [`timeout`](crate::timeout) and
/// [`background`](crate::background), where it always takes its turn through the loop.
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
pub struct Sending<T> {
    chan: Arc<Mutex<Chan<T>>>,
    value: T,
    /// Where `send` was called, to place the leaf it may become.
    at: &'static Location<'static>,
}

/// What [`Receiver::recv`] gives: yield it to receive. `yield_!` finishes it at once when the
/// channel holds a value that nobody waiting was promised (or is empty with no sender left), and
/// the coroutine goes on without suspending; otherwise it waits in line for a value. Like any
/// yieldable it also goes into gathers, [`race`](crate::race), [`timeout`](crate::timeout) and
/// [`background`](crate::background), where it always takes its turn through the loop.
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
pub struct Receiving<T> {
    chan: Arc<Mutex<Chan<T>>>,
    /// Where `recv` was called, to place the leaf it may become.
    at: &'static Location<'static>,
}

/// How many channel operations in a row finish in place on one thread before one is made to
/// suspend.
const IN_PLACE: u32 = 64;

thread_local! {
    /// Channel operations that finished in place on this thread since one last suspended.
    static IN_A_ROW: Cell<u32> = const { Cell::new(0) };
}

/// Runs `op` in place, unless the operations before it used up this thread's run of them
/// ([`IN_PLACE`]). An operation that does not finish in place (it must wait, or the run is used
/// up) suspends through the loop, where every other ready coroutine runs first: that starts a
/// new run.
#[inline(always)]
fn in_place<Y: Yieldable>(
    y: Y,
    op: impl FnOnce(Y) -> Result<Y::Output, Y>,
) -> Result<Y::Output, Y> {
    let done = IN_A_ROW.get();
    let outcome = if done < IN_PLACE { op(y) } else { Err(y) };
    IN_A_ROW.set(if outcome.is_ok() { done + 1 } else { 0 });
    outcome
}

impl<T: 'static> Yieldable for Sending<T> {
    type Output = Result<(), SendError<T>>;
    type Pending = <Coro<Self::Output> as Yieldable>::Pending;

    #[inline]
    fn now(self) -> Result<Self::Output, Self> {
        in_place(self, |this| {
            let mut chan = lock(&this.chan);
            if chan.receivers == 0 {
                drop(chan);
                let (value, cancelled) = (this.value, false);
                return Ok(Err(SendError { value, cancelled }));
            }
            match chan.put(this.value, &mut None) {
                Ok(()) => Ok(Ok(())),
                Err(value) => {
                    drop(chan);
                    Err(Sending { value, ..this })
                }
            }
        })
    }

    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's,
    {
        let leaf = SendLeaf { chan: self.chan, value: Some(self.value), ticket: None };
        Coroutine::leaf_at(&SEND, self.at, leaf).submit(submission)
    }

    fn collect(pending: Self::Pending) -> Self::Output {
        <Coro<Self::Output> as Yieldable>::collect(pending)
    }
}

impl<T: 'static> Yieldable for Receiving<T> {
    type Output = Option<T>;
    type Pending = <Coro<Self::Output> as Yieldable>::Pending;

    #[inline]
    fn now(self) -> Result<Self::Output, Self> {
        in_place(self, |this| {
            let mut chan = lock(&this.chan);
            match chan.take(&mut None) {
                Some(value) => Ok(Some(value)),
                None if chan.senders == 0 => Ok(None),
                None => {
                    drop(chan);
                    Err(this)
                }
            }
        })
    }

    fn submit<'s>(self, submission: &mut Submission<'s>) -> Self::Pending
    where
        Self: 's,
    {
        let leaf = RecvLeaf { chan: self.chan, ticket: None };
        Coroutine::leaf_at(&RECV, self.at, leaf).submit(submission)
    }

    fn collect(pending: Self::Pending) -> Self::Output {
        <Coro<Self::Output> as Yieldable>::collect(pending)
    }
}

impl<T> fmt::Debug for Sending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sending").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiving<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiving").finish_non_exhaustive()
    }
}

/// The leaf of a [`Sending`] that waits.
struct SendLeaf<T> {
    chan: Arc<Mutex<Chan<T>>>,
    /// Until queued (or given back).
    value: Option<T>,
    /// Once waiting for room: its place in line.
    ticket: Option<u64>,
}

impl<T> Leaf for SendLeaf<T> {
    type Output = Result<(), SendError<T>>;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<Self::Output, Error>> {
        let mut chan = lock(&self.chan);
        let value = self.value.take().expect("polled after it finished");
        if chan.receivers == 0 {
            chan.stop_sending(&mut self.ticket);
            let cancelled = false;
            return Poll::Ready(Ok(Err(SendError { value, cancelled })));
        }
        match chan.put(value, &mut self.ticket) {
            Ok(()) => Poll::Ready(Ok(Ok(()))),
            Err(value) => {
                self.value = Some(value);
                chan.sending.wait(&mut self.ticket, || (cx.waker)());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for SendLeaf<T> {
    fn drop(&mut self) {
        if self.ticket.is_some() {
            lock(&self.chan).stop_sending(&mut self.ticket);
        }
    }
}

/// The leaf of a [`Receiving`] that waits.
struct RecvLeaf<T> {
    chan: Arc<Mutex<Chan<T>>>,
    /// Once waiting for a value: its place in line.
    ticket: Option<u64>,
}

impl<T> Leaf for RecvLeaf<T> {
    type Output = Option<T>;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<Option<T>, Error>> {
        let mut chan = lock(&self.chan);
        if let Some(value) = chan.take(&mut self.ticket) {
            return Poll::Ready(Ok(Some(value)));
        }
        if chan.senders == 0 {
            chan.stop_receiving(&mut self.ticket);
            return Poll::Ready(Ok(None));
        }
        chan.receiving.wait(&mut self.ticket, || (cx.waker)());
        Poll::Pending
    }
}

impl<T> Drop for RecvLeaf<T> {
    fn drop(&mut self) {
        if self.ticket.is_some() {
            lock(&self.chan).stop_receiving(&mut self.ticket);
        }
    }
}

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
#[derive(PartialEq, Eq)]
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

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.cancelled {
            "sending was cancelled: the thread call was told to stop"
        } else {
            "sending on a channel whose receivers are all gone"
        })
    }
}

impl<T> std::error::Error for SendError<T> {}

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
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel holds `capacity` values already.
    Full(T),
    /// Every receiver is gone.
    Closed(T),
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "the channel is full",
            TrySendError::Closed(_) => "sending on a channel whose receivers are all gone",
        })
    }
}

impl<T: fmt::Debug> std::error::Error for TrySendError<T> {}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued, and every sender is gone.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "the channel is empty",
            TryRecvError::Closed => "the channel is empty and its senders are all gone",
        })
    }
}

impl std::error::Error for TryRecvError {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Wake;

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

    #[test]
    fn a_receiver_chosen_for_a_value_that_gives_up_passes_it_on() {
        let (tx, rx) = channel::<u32>(1);
        let ((a, wa), (b, wb)) = (counting(), counting());
        let mut first = RecvLeaf { chan: rx.chan.clone(), ticket: None };
        let mut second = RecvLeaf { chan: rx.chan.clone(), ticket: None };
        lock(&rx.chan).receiving.wait(&mut first.ticket, || wa);
        lock(&rx.chan).receiving.wait(&mut second.ticket, || wb);
        tx.try_send(7).unwrap();
        assert_eq!((woken(&a), woken(&b)), (1, 0), "the first in line is chosen");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "the value is promised");
        drop(first); // cancelled before it took the value
        assert_eq!(woken(&b), 1, "the promise went to the next in line");
        assert_eq!(lock(&rx.chan).take(&mut second.ticket), Some(7));
        drop(second);
        assert_eq!(lock(&rx.chan).receiving.chosen, 0);
    }

    #[test]
    fn a_sender_chosen_for_room_that_gives_up_passes_it_on() {
        let (tx, rx) = channel::<u32>(1);
        tx.try_send(0).unwrap();
        let ((a, wa), (b, wb)) = (counting(), counting());
        let mut first = SendLeaf { chan: tx.chan.clone(), value: Some(1), ticket: None };
        let mut second = SendLeaf { chan: tx.chan.clone(), value: Some(2), ticket: None };
        lock(&tx.chan).sending.wait(&mut first.ticket, || wa);
        lock(&tx.chan).sending.wait(&mut second.ticket, || wb);
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!((woken(&a), woken(&b)), (1, 0), "the first in line is chosen");
        assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)), "the room is promised");
        drop(first);
        assert_eq!(woken(&b), 1, "the promise went to the next in line");
        let value = second.value.take().unwrap();
        assert_eq!(lock(&tx.chan).put(value, &mut second.ticket), Ok(()));
        assert_eq!(rx.try_recv(), Ok(2));
    }

    #[test]
    fn a_waiter_that_leaves_the_line_wakes_nobody() {
        let (_tx, rx) = channel::<u32>(1);
        let ((a, wa), (b, wb)) = (counting(), counting());
        let mut first = RecvLeaf { chan: rx.chan.clone(), ticket: None };
        let mut second = RecvLeaf { chan: rx.chan.clone(), ticket: None };
        lock(&rx.chan).receiving.wait(&mut first.ticket, || wa);
        lock(&rx.chan).receiving.wait(&mut second.ticket, || wb);
        drop(first);
        assert_eq!((woken(&a), woken(&b)), (0, 0));
        assert_eq!(lock(&rx.chan).receiving.queue.len(), 1);
        drop(second);
        assert!(lock(&rx.chan).receiving.queue.is_empty());
    }
}

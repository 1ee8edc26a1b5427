//! Queues in order of arrival that any entry can leave: [`Line`], the waiters of events,
//! semaphores and channels, and [`Wait`], the leaf that waits in one. And, for the run's table,
//! [`Few`] in two shapes: [`Waiters`] (the waiters of a coroutine) and [`Keys`] (wake tokens).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::coro::{Cx, Leaf};
use crate::error::Error;
use crate::wake::lock;

/// Waiters for units of something (a semaphore's permits, a channel's values or its room), first
/// come first served, and the units that nobody waiting was handed. A unit that comes goes to
/// the first in line, else it is kept free, so no unit is free while anyone waits and a waiter
/// that comes late cannot overtake the line. The owner guards a line with its lock. An event's
/// line has no units: its `set` serves everyone in it.
///
/// A waiter holds a ticket while in line (0: none); tickets only grow, from 1. The line is
/// served from the front, so a ticket up to `served` was handed a unit and is off the line. One
/// that leaves early is marked gone in place, found by binary search; the marks are passed
/// over when the front is served, and swept in one go once they outnumber the waiters still in:
/// O(log n) amortised each, and no allocation per waiter once the buffer has grown.
#[derive(Default)]
pub(crate) struct Line {
    /// Tickets and wakers, first come first; `None`: gone.
    waiting: VecDeque<(u64, Option<Waker>)>,
    /// Wakers in `waiting`.
    live: usize,
    /// The last ticket handed out.
    last: u64,
    /// The last ticket handed a unit.
    pub(crate) served: u64,
    /// Units handed to nobody: the supply less the units handed out and not yet taken.
    pub(crate) free: usize,
}

impl Line {
    /// A line of nobody, with `free` units.
    pub(crate) fn new(free: usize) -> Self {
        Line { free, ..Line::default() }
    }

    /// Takes a unit for the holder of `ticket`: the one it was handed (then it is out of the
    /// line, `ticket` 0), or a free one (no unit is free while anyone is in line, so it is not:
    /// it never was, or a wake-up that served nobody took it off).
    #[inline]
    pub(crate) fn take(&mut self, ticket: &mut u64) -> bool {
        if self.served(*ticket) {
            *ticket = 0;
        } else if self.free > 0 {
            self.free -= 1;
        } else {
            return false;
        }
        true
    }

    /// Joins the line to be woken by `waker`, unless in it already.
    pub(crate) fn join(&mut self, ticket: &mut u64, waker: impl FnOnce() -> Waker) {
        if *ticket == 0 {
            self.last += 1;
            self.waiting.push_back((self.last, Some(waker())));
            self.live += 1;
            *ticket = self.last;
        }
    }

    /// A unit comes: handed to the first in line, else kept free.
    #[inline]
    pub(crate) fn release(&mut self) {
        if self.live == 0 {
            self.free += 1;
        } else {
            self.wake(false, true);
        }
    }

    /// Wakes the first in line, or everyone in it (`all`), handing each a unit if `serve`
    /// (an event's `set` serves everyone; the end of a channel's other side serves nobody, and
    /// nobody joins the line after that).
    #[inline(never)]
    pub(crate) fn wake(&mut self, all: bool, serve: bool) {
        while let Some((ticket, waker)) = self.waiting.pop_front() {
            let Some(waker) = waker else { continue };
            self.live -= 1;
            if serve {
                self.served = ticket;
            }
            waker.wake();
            if !all {
                break;
            }
        }
    }

    /// Takes the holder of `ticket` (0: none) off the line; true if it had been handed a unit,
    /// which is its to hand on.
    pub(crate) fn leave(&mut self, ticket: u64) -> bool {
        if self.served(ticket) {
            return true;
        }
        let found = self.waiting.binary_search_by_key(&ticket, |&(t, _)| t);
        if found.is_ok_and(|i| self.waiting[i].1.take().is_some()) {
            self.live -= 1;
            if self.waiting.len() > 2 * self.live + 16 {
                self.waiting.retain(|(_, waker)| waker.is_some());
            }
        }
        false
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    #[cfg(test)]
    fn contains(&self, ticket: u64) -> bool {
        let found = self.waiting.binary_search_by_key(&ticket, |&(t, _)| t);
        found.is_ok_and(|i| self.waiting[i].1.is_some())
    }

    fn served(&self, ticket: u64) -> bool {
        ticket != 0 && ticket <= self.served
    }
}

/// An operation on `S`, a state under a lock with a [`Line`] to wait in for a unit.
pub(crate) trait Side<S>: Sized {
    type Output;
    /// The line this operation waits in.
    fn line(state: &mut S) -> &mut Line;
    /// Finishes, for a waiter with `ticket` (0: not in line), with a unit of its line or with
    /// no need of one (a channel's other side is gone); else gives itself back.
    fn finish(self, state: &mut S, ticket: &mut u64) -> Result<Self::Output, Self>;
}

/// An operation that waits in line: as a leaf, or in a call that parks its thread. Dropped
/// while in line (cancelled), it leaves the line, or hands on the unit it was handed meanwhile.
pub(crate) struct Wait<S, K: Side<S>> {
    state: Arc<Mutex<S>>,
    /// Until it finishes.
    pub(crate) op: Option<K>,
    /// Its ticket while it waits in line (0: none).
    pub(crate) ticket: u64,
}

impl<S, K: Side<S>> Wait<S, K> {
    pub(crate) fn new(state: Arc<Mutex<S>>, op: K) -> Self {
        Wait { state, op: Some(op), ticket: 0 }
    }

    /// Tries once; if it must wait, gets in line to be woken by `waker`.
    pub(crate) fn step(&mut self, waker: impl FnOnce() -> Waker) -> Option<K::Output> {
        let mut state = lock(&self.state);
        let op = self.op.take().expect("polled after it finished");
        match op.finish(&mut state, &mut self.ticket) {
            Ok(output) => Some(output),
            Err(op) => {
                self.op = Some(op);
                K::line(&mut state).join(&mut self.ticket, waker);
                None
            }
        }
    }
}

impl<S, K: Side<S>> Leaf for Wait<S, K> {
    type Output = K::Output;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<K::Output, Error>> {
        self.step(cx.waker).map_or(Poll::Pending, |output| Poll::Ready(Ok(output)))
    }
}

impl<S, K: Side<S>> Drop for Wait<S, K> {
    fn drop(&mut self) {
        if self.ticket != 0 {
            let mut state = lock(&self.state);
            let line = K::line(&mut state);
            if line.leave(self.ticket) {
                line.release();
            }
        }
    }
}

/// None, one or many: usually one; many are boxed, to keep the entries that hold them small.
#[derive(Default)]
pub(crate) enum Few<K, M> {
    #[default]
    None,
    One(K),
    Many(Box<M>),
}

/// Tokens of coroutines.
pub(crate) type Keys<K> = Few<K, Vec<K>>;

/// Who waits on a coroutine, each once, in the order they came. A waiter that stops waiting
/// while the coroutine goes on (its timed wait ran out) leaves in O(log n).
pub(crate) type Waiters = Few<u32, Arrivals>;

/// Many waiters: each by the ticket of its arrival, and the ticket of each. Both always hold
/// the same waiters, so adding, finding and taking out any one cost O(log n): n waiters that
/// leave one by one cost O(n log n) in all, where a list scanned for each would cost O(n^2).
#[derive(Default)]
pub(crate) struct Arrivals {
    order: BTreeMap<u64, u32>,
    tickets: BTreeMap<u32, u64>,
}

impl<K: Copy> Keys<K> {
    pub(crate) fn push(&mut self, key: K) {
        match self {
            Keys::None => *self = Keys::One(key),
            Keys::One(first) => *self = Keys::Many(Box::new(vec![*first, key])),
            Keys::Many(keys) => keys.push(key),
        }
    }

    pub(crate) fn as_slice(&self) -> &[K] {
        match self {
            Keys::None => &[],
            Keys::One(key) => std::slice::from_ref(key),
            Keys::Many(keys) => keys,
        }
    }
}

impl Waiters {
    /// Adds `waiter` at the back; false if it waits here already (it counts once).
    pub(crate) fn push(&mut self, waiter: u32) -> bool {
        match self {
            Waiters::None => *self = Waiters::One(waiter),
            Waiters::One(first) if *first == waiter => return false,
            Waiters::One(first) => {
                let mut many = Box::<Arrivals>::default();
                many.push(*first);
                many.push(waiter);
                *self = Waiters::Many(many);
            }
            Waiters::Many(many) => return many.push(waiter),
        }
        true
    }

    pub(crate) fn remove(&mut self, waiter: u32) {
        match self {
            Waiters::One(one) if *one == waiter => *self = Waiters::None,
            Waiters::Many(many) => {
                if let Some(ticket) = many.tickets.remove(&waiter) {
                    many.order.remove(&ticket);
                }
            }
            _ => {}
        }
    }

    /// Whether anyone but `waiter` waits here.
    pub(crate) fn others_than(&self, waiter: u32) -> bool {
        match self {
            Waiters::None => false,
            Waiters::One(one) => *one != waiter,
            Waiters::Many(many) => {
                many.tickets.len() > usize::from(many.tickets.contains_key(&waiter))
            }
        }
    }

    /// The waiters, first come first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> {
        let (one, many) = match self {
            Waiters::None => (None, None),
            Waiters::One(one) => (Some(*one), None),
            Waiters::Many(many) => (None, Some(many.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

impl Arrivals {
    /// Adds `waiter` at the back, unless it is here already (then it keeps its place: false).
    fn push(&mut self, waiter: u32) -> bool {
        if self.tickets.contains_key(&waiter) {
            return false;
        }
        let ticket = self.order.last_key_value().map_or(0, |(last, _)| last + 1);
        self.order.insert(ticket, waiter);
        self.tickets.insert(waiter, ticket);
        true
    }

    /// The waiters, first come first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> {
        self.order.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Wake;

    use super::*;

    fn order(waiters: &Waiters) -> Vec<u32> {
        waiters.iter().collect()
    }

    #[test]
    fn waiters_leave_from_anywhere_and_the_rest_keep_their_order() {
        let mut waiters = Waiters::None;
        assert!(!waiters.others_than(7) && order(&waiters).is_empty());
        assert!(waiters.push(5) && !waiters.push(5), "one waiter counts once");
        assert!(!waiters.others_than(5) && waiters.others_than(1));
        for waiter in [1, 9, 3] {
            assert!(waiters.push(waiter));
        }
        assert!(!waiters.push(1), "a waiter already here is not added again");
        assert_eq!(order(&waiters), [5, 1, 9, 3]);
        waiters.remove(9);
        waiters.remove(9);
        assert_eq!(order(&waiters), [5, 1, 3]);
        assert!(waiters.push(9), "a waiter that left comes back at the back");
        assert_eq!(order(&waiters), [5, 1, 3, 9]);
        for waiter in [5, 1, 3] {
            waiters.remove(waiter);
        }
        assert!(!waiters.others_than(9) && waiters.others_than(2));
        waiters.remove(9);
        assert!(!waiters.others_than(9) && order(&waiters).is_empty());
        assert!(waiters.push(3) && waiters.push(9) && waiters.push(4));
        waiters.remove(4);
        assert!(waiters.push(6), "after the last left, a new one still comes last");
        assert_eq!(order(&waiters), [3, 9, 6]);
    }

    #[test]
    fn a_line_keeps_order_and_lets_any_leave() {
        let (mut line, mut model) = (Line::default(), Vec::new());
        let (count, waker) = counting();
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            match next(4) {
                0 | 1 => {
                    let mut ticket = 0;
                    line.join(&mut ticket, || waker.clone());
                    model.push(ticket);
                }
                2 if !model.is_empty() => {
                    let ticket = model.remove(next(model.len() as u64) as usize);
                    assert!(line.contains(ticket) && !line.leave(ticket));
                    assert!(!line.contains(ticket) && !line.leave(ticket));
                }
                _ => {
                    let before = count.0.load(SeqCst);
                    line.wake(false, true);
                    let woken = count.0.load(SeqCst) - before;
                    if model.is_empty() {
                        assert_eq!(woken, 0);
                    } else {
                        assert_eq!((woken, line.served), (1, model.remove(0)), "the first in");
                    }
                }
            }
            assert_eq!(line.live, model.len());
            assert!(line.waiting.len() <= 2 * line.live + 16);
            if let Some(&ticket) = model.first() {
                assert!(line.contains(ticket));
            }
        }
        // Waiters leaving from the middle, between one that stays at the front and one at the
        // back: their marks are swept, not kept.
        let mut last = 0;
        line.join(&mut last, || waker.clone());
        for _ in 0..1_000 {
            let mut next = 0;
            line.join(&mut next, || waker.clone());
            assert!(!line.leave(std::mem::replace(&mut last, next)));
            assert!(line.waiting.len() <= 2 * line.live + 16);
        }
    }

    /// A waker that counts its wake-ups, and the count.
    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn woken(counts: &[&Arc<Count>]) -> Vec<usize> {
        counts.iter().map(|count| count.0.load(SeqCst)).collect()
    }

    #[test]
    fn a_line_hands_each_unit_to_one_waiter_first_come_first_served() {
        let mut line = Line::new(1);
        let ((a, wa), (b, wb), (c, wc)) = (counting(), counting(), counting());
        let (mut first, mut second, mut third) = (0, 0, 0);
        assert!(line.take(&mut first) && line.free == 0, "a free unit, taken out of line");
        assert!(!line.take(&mut second));
        line.join(&mut second, || wa);
        line.join(&mut second, || unreachable!("in line already"));
        line.join(&mut third, || wb);
        line.release();
        assert_eq!(woken(&[&a, &b]), [1, 0], "the unit goes to the first in line");
        assert!(!line.take(&mut first) && line.free == 0, "and nobody else can take it");
        assert!(line.leave(second), "the first gives up after it was handed the unit");
        line.release(); // so it hands it on
        assert_eq!(woken(&[&a, &b]), [1, 1]);
        assert!(line.take(&mut third) && third == 0);
        line.release();
        assert_eq!(line.free, 1, "with nobody in line, a unit is kept free");

        let (mut late, mut gone) = (0, 0);
        line.free = 0;
        line.join(&mut late, || wc);
        line.wake(true, false);
        assert_eq!(woken(&[&c]), [1]);
        assert!(!line.take(&mut late), "woken without a unit (the other side is gone)");
        assert!(!line.leave(late) && !line.leave(gone) && line.free == 0);
        let (d, wd) = counting();
        line.join(&mut gone, || wd);
        line.wake(true, true);
        assert!(woken(&[&d]) == [1] && line.take(&mut gone), "woken and served (an event)");
    }
}

//! The run's timers: deadlines, each with the wake token it ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

/// The deadlines of a run, each with the wake token it fires, taken soonest first. Deadlines
/// mostly come in order (the same sleep or timeout, again and again): those go to the back of a
/// queue, in constant time, and only one earlier than the last queued goes to a heap.
#[derive(Default)]
pub(crate) struct Timers {
    in_order: VecDeque<(Instant, u64)>,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Timers {
    pub(crate) fn push(&mut self, deadline: Instant, token: u64) {
        match self.in_order.back() {
            Some(&(last, _)) if deadline < last => self.heap.push(Reverse((deadline, token))),
            _ => self.in_order.push_back((deadline, token)),
        }
    }

    /// The soonest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        let queued = self.in_order.front().map(|&(deadline, _)| deadline);
        queued.into_iter().chain(self.heap.peek().map(|&Reverse((deadline, _))| deadline)).min()
    }

    /// Takes the token of the soonest deadline, if it is `now` or earlier.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u64> {
        let soonest = self.next().filter(|&deadline| deadline <= now)?;
        let front = self.in_order.front().is_some_and(|&(deadline, _)| deadline == soonest);
        let due = if front {
            self.in_order.pop_front()
        } else {
            self.heap.pop().map(|Reverse(timer)| timer)
        };
        due.map(|(_, token)| token)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.in_order.is_empty() && self.heap.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.in_order.clear();
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Against a sorted list, on pseudo-random pushes (mostly in order, as in a loop) and
    /// pops at random clock readings.
    #[test]
    fn timers_give_due_deadlines_soonest_first() {
        let base = Instant::now();
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..200 {
            let (mut timers, mut model) = (Timers::default(), Vec::new());
            let mut clock = 0;
            for token in 0..200 {
                if next(3) == 0 {
                    clock += next(50);
                    let now = base + Duration::from_micros(clock);
                    model.sort();
                    let due = model.iter().take_while(|&&(d, _)| d <= now).count();
                    let popped: Vec<_> = std::iter::from_fn(|| timers.pop_due(now)).collect();
                    let expected: Vec<_> = model.drain(..due).collect();
                    assert_eq!(popped.len(), expected.len());
                    // In the model's order, up to ties between equal deadlines.
                    for (token, (deadline, _)) in popped.iter().zip(&expected) {
                        assert!(expected.contains(&(*deadline, *token)), "{token} out of order");
                    }
                }
                // Mostly later than the last deadline, sometimes earlier.
                let at = clock + if next(4) == 0 { next(100) } else { 100 + token };
                let deadline = base + Duration::from_micros(at);
                timers.push(deadline, token);
                model.push((deadline, token));
                assert_eq!(timers.next(), model.iter().map(|&(d, _)| d).min());
            }
            assert_eq!(timers.is_empty(), model.is_empty());
            timers.clear();
            assert!(timers.is_empty() && timers.next().is_none());
        }
    }
}

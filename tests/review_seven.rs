//! A senior pass over the round's changes: the cycle check of a wait on a coroutine already
//! scheduled costs the smaller side, link by link, even where one coroutine on the far side
//! waits on many.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::assert_linear;
use tinyio::{Event, Loop, Shared};

#[global_allocator]
static COUNTING: common::Counting = common::Counting;

/// Waits on `n` waits of `made` at once, as `n` children in the table.
#[tinyio::coroutine]
fn waits_on_many(n: u32, made: Event) -> u64 {
    let waits: Vec<_> = (0..n).map(|_| made.wait()).collect();
    yield_!(waits);
    1
}

#[tinyio::coroutine]
fn reads(shared: Shared<u64>) -> u64 {
    yield_!(shared)
}

#[tinyio::coroutine]
fn sets(made: Event) -> () {
    made.set();
}

/// `n` coroutines, each waited on by the root alone, wait on one shared coroutine that waits
/// on `n` children: each wait's cycle check finds nothing above its waiter at once, and must
/// not look through all `n` below.
#[test]
fn many_waits_on_one_shared_coroutine_with_many_children_take_linear_work() {
    assert_linear("many waits on a wide shared coroutine", 1_000, |n| {
        let made = Event::new();
        let shared = waits_on_many(n, made.clone()).share();
        let readers: Vec<_> = (0..n).map(|_| reads(shared.clone())).collect();
        let (one, read, ()) = Loop::new().run((shared, readers, sets(made))).unwrap();
        assert_eq!(one, 1);
        assert_eq!(read.iter().sum::<u64>(), u64::from(n));
    });
}

type Slot = Rc<RefCell<Option<Shared<u64>>>>;

/// Waits on whatever `next` holds by then.
#[tinyio::coroutine]
fn link(next: Slot) -> u64 {
    yield_!();
    let next = next.borrow_mut().take().expect("filled before the run");
    yield_!(next) + 1
}

/// A ring of seven: the last wait closes it, and the two searches meet half-way round. The
/// message names the whole ring, each once, and the waiter again at the end.
#[test]
fn a_long_cycle_is_named_whole() {
    let slots: Vec<Slot> = (0..7).map(|_| Rc::default()).collect();
    let links: Vec<_> = slots.iter().map(|slot| link(slot.clone()).share()).collect();
    for (i, slot) in slots.iter().enumerate() {
        *slot.borrow_mut() = Some(links[(i + 1) % links.len()].clone());
    }
    let err = Loop::new().run(links).unwrap_err();
    let message = err.to_string();
    assert!(err.is_cancelled() && message.contains("cycle detected"), "{message}");
    assert_eq!(message.matches("`link`").count(), 8, "{message}");
}

//! Random crowds at a semaphore: some wait as long as it takes, some give up after a few
//! milliseconds (cancelled while queued, or just as a permit is handed to them). Whatever the
//! mix: never more holders than permits, everyone who waits without a limit gets in, and every
//! permit is back at the end (a permit handed to a waiter that gave up is passed on).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::{ms, within};
use proptest::prelude::*;
use tinyio::{Coro, Loop, Semaphore, sleep, timeout};

#[derive(Clone, Debug)]
struct Visitor {
    /// Pauses before it asks.
    arrives_after: usize,
    /// How long it waits for a permit at most (milliseconds), if it gives up at all.
    gives_up_after: Option<u64>,
    /// How long it holds the permit (milliseconds; 0 is a zero sleep).
    holds_for: u64,
}

fn visitor() -> impl Strategy<Value = Visitor> {
    (0..4usize, prop::option::of(0..4u64), 0..3u64).prop_map(
        |(arrives_after, gives_up_after, holds_for)| Visitor {
            arrives_after,
            gives_up_after,
            holds_for,
        },
    )
}

#[derive(Default)]
struct Inside {
    now: Cell<usize>,
    most: Cell<usize>,
}

/// Returns whether it got in.
#[tinyio::coroutine]
fn visit(semaphore: Semaphore, visitor: Visitor, inside: Rc<Inside>) -> bool {
    for _ in 0..visitor.arrives_after {
        yield_!();
    }
    let permit = match visitor.gives_up_after {
        None => yield_!(semaphore.acquire()),
        Some(limit) => match yield_!(timeout(semaphore.acquire(), ms(limit))) {
            Some(permit) => permit,
            None => return false,
        },
    };
    inside.now.set(inside.now.get() + 1);
    inside.most.set(inside.most.get().max(inside.now.get()));
    yield_!(sleep(ms(visitor.holds_for)));
    inside.now.set(inside.now.get() - 1);
    drop(permit);
    true
}

fn check(permits: usize, visitors: Vec<Visitor>) -> Result<(), TestCaseError> {
    let description = format!("{permits} permits, {visitors:?}");
    let (got_in, most, available) = within(20, move || {
        let semaphore = Semaphore::new(permits);
        let inside = Rc::new(Inside::default());
        let all: Vec<Coro<bool>> =
            visitors.iter().map(|v| visit(semaphore.clone(), v.clone(), inside.clone())).collect();
        let got_in = Loop::new().run(all).unwrap();
        let patient: Vec<bool> = visitors.iter().map(|v| v.gives_up_after.is_none()).collect();
        (
            got_in.into_iter().zip(patient).collect::<Vec<_>>(),
            inside.most.get(),
            semaphore.available(),
        )
    });
    prop_assert!(most <= permits, "{most} inside at once; {description}");
    prop_assert_eq!(available, permits, "permits lost; {}", description);
    for (i, (got_in, patient)) in got_in.into_iter().enumerate() {
        prop_assert!(got_in || !patient, "visitor {i} waited and never got in; {description}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn permits_are_never_exceeded_lost_or_withheld(
        permits in 1..4usize,
        visitors in prop::collection::vec(visitor(), 1..24),
    ) {
        check(permits, visitors)?;
    }
}

#[test]
fn a_crowd_that_mostly_gives_up_at_once() {
    // Zero limits: each either passes at once or is cancelled in the queue straight away.
    let visitors = (0..200)
        .map(|i| Visitor {
            arrives_after: i % 3,
            gives_up_after: (i % 4 != 0).then_some(0),
            holds_for: (i % 2) as u64,
        })
        .collect();
    check(2, visitors).unwrap();
}

#[test]
fn sanity_one_permit_many_patient_visitors() {
    let started = std::time::Instant::now();
    let visitors = vec![Visitor { arrives_after: 0, gives_up_after: None, holds_for: 1 }; 10];
    check(1, visitors).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(10), "they took turns");
}

//! Random rings of coroutines passing a baton through events, driven by `Loop::run` or through
//! `to_future`, with nested runs (`Loop::run` inside a coroutine, `isolate`) in between the
//! passes. Wake-ups a run makes itself take a path of their own (a queue of the thread, saved
//! and restored around nested runs, handed over when a run stops half-way): a lost or misfiled
//! wake-up shows here as a hang, a pass out of order, or a wrong count.

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use common::within;
use proptest::prelude::*;
use tinyio::{Coro, Event, Loop, isolate, sleep, to_future};

/// What a ring member does between receiving the baton and passing it on.
#[derive(Clone, Copy, Debug)]
enum Between {
    Nothing,
    Pause,
    Sleep0,
    /// A ring of its own, of this many members, run by a nested `Loop::run`.
    NestedLoop(usize),
    /// The same, through `isolate`.
    Isolated(usize),
}

#[derive(Clone, Debug)]
struct Ring {
    members: usize,
    laps: usize,
    /// For member `i`, lap `j`: `between[(i * laps + j) % len]`.
    between: Vec<Between>,
    /// Whether a member passes the baton before what it does in between (so that a nested
    /// run starts with the outer run's wake-up still to be taken) or after.
    pass_first: bool,
    /// Driven through `to_future`, polled by hand with a waker that re-polls, rather than
    /// `Loop::run`.
    as_future: bool,
}

fn between() -> impl Strategy<Value = Between> {
    prop_oneof![
        4 => Just(Between::Nothing),
        2 => Just(Between::Pause),
        1 => Just(Between::Sleep0),
        1 => (2..4usize).prop_map(Between::NestedLoop),
        1 => (2..4usize).prop_map(Between::Isolated),
    ]
}

fn ring() -> impl Strategy<Value = Ring> {
    (
        2..6usize,
        1..12usize,
        prop::collection::vec(between(), 1..8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(members, laps, between, pass_first, as_future)| Ring {
            members,
            laps,
            between,
            pass_first,
            as_future,
        })
}

type Log = Rc<RefCell<Vec<usize>>>;

/// Member `me` of a ring: waits for its event, logs, does what `between` says and passes the
/// baton to the next member, in the order `pass_first` says.
#[tinyio::coroutine]
fn member(
    me: usize,
    events: Vec<Event>,
    laps: usize,
    between: Vec<Between>,
    pass_first: bool,
    log: Log,
) -> () {
    let next = (me + 1) % events.len();
    for lap in 0..laps {
        yield_!(events[me].wait());
        events[me].clear();
        log.borrow_mut().push(me);
        if pass_first {
            events[next].set();
        }
        match between[(me * laps + lap) % between.len()] {
            Between::Nothing => {}
            Between::Pause => yield_!(),
            Between::Sleep0 => yield_!(sleep(std::time::Duration::ZERO)),
            Between::NestedLoop(n) => {
                let (inner, passes) = plain_ring(n, 3);
                Loop::new().run(inner)?;
                assert_eq!(passes.borrow().len(), n * 3, "nested ring");
            }
            Between::Isolated(n) => {
                let (inner, passes) = plain_ring(n, 3);
                yield_!(isolate(inner))?;
                assert_eq!(passes.borrow().len(), n * 3, "isolated ring");
            }
        }
        if !pass_first {
            events[next].set();
        }
    }
}

/// A ring of `n` members and `laps` laps with nothing in between, and its log.
fn plain_ring(n: usize, laps: usize) -> (Vec<Coro<()>>, Log) {
    let ring = Ring {
        members: n,
        laps,
        between: vec![Between::Nothing],
        pass_first: false,
        as_future: false,
    };
    build(&ring)
}

fn build(ring: &Ring) -> (Vec<Coro<()>>, Log) {
    let events: Vec<Event> = (0..ring.members).map(|_| Event::new()).collect();
    events[0].set();
    let log = Log::default();
    let members = (0..ring.members)
        .map(|me| {
            member(
                me,
                events.clone(),
                ring.laps,
                ring.between.clone(),
                ring.pass_first,
                log.clone(),
            )
        })
        .collect();
    (members, log)
}

/// Polls `future` to completion on this thread, polling again only when woken.
fn drive<F: Future>(future: F) -> F::Output {
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let flag = Arc::new(Flag(true.into()));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if flag.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if let Poll::Ready(out) = Pin::new(&mut future).poll(&mut cx) {
                return out;
            }
        } else {
            // Nothing woke it: a timer (a zero sleep) is due at once, so poll again shortly.
            std::thread::sleep(std::time::Duration::from_micros(50));
            flag.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn check(ring: Ring) -> Result<(), TestCaseError> {
    let description = format!("{ring:?}");
    let log = within(10, move || {
        let (members, log) = build(&ring);
        if ring.as_future {
            drive(to_future(members)).unwrap();
        } else {
            Loop::new().run(members).unwrap();
        }
        (
            Rc::try_unwrap(log).unwrap().into_inner(),
            ring.members,
            ring.laps,
        )
    });
    let (log, members, laps) = log;
    let expected: Vec<usize> = (0..members * laps).map(|i| i % members).collect();
    prop_assert_eq!(log, expected, "{}", description);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batons_go_round_in_order_whatever_runs_in_between(ring in ring()) {
        check(ring)?;
    }
}

/// The harness itself: a ring with every kind of step in between, driven both ways, passing
/// the baton before and after.
#[test]
fn every_kind_of_step_in_one_ring() {
    for (pass_first, as_future) in [(false, false), (false, true), (true, false), (true, true)] {
        check(Ring {
            members: 3,
            laps: 5,
            between: vec![
                Between::Nothing,
                Between::Pause,
                Between::Sleep0,
                Between::NestedLoop(2),
                Between::Isolated(3),
            ],
            pass_first,
            as_future,
        })
        .unwrap();
    }
}

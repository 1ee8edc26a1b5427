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
use std::sync::atomic::{AtomicBool, Ordering};
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
    (2..6usize, 1..12usize, prop::collection::vec(between(), 1..8), any::<bool>(), any::<bool>())
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

/// Polls `future` to completion on this thread, polling again only when woken: the thread parks
/// in between, so a lost wake-up hangs (and the watchdog fails the test).
fn drive<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread, AtomicBool);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.1.store(true, Ordering::SeqCst);
            self.0.unpark();
        }
    }
    let woken = Arc::new(Unpark(std::thread::current(), AtomicBool::new(true)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if woken.1.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(out) = Pin::new(&mut future).poll(&mut cx) {
                return out;
            }
        } else {
            std::thread::park();
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
        (Rc::try_unwrap(log).unwrap().into_inner(), ring.members, ring.laps)
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

// --- Rings across loops on several threads -------------------------------------------------------
// An event keeps the first waiter of its home loop apart and lists the others; waiters of
// other loops are always listed, and woken from whichever thread sets the event.

#[derive(Clone, Debug)]
struct SpreadRing {
    /// Member `i` runs on loop `loop_of[i]` (one loop per thread).
    loop_of: Vec<usize>,
    laps: usize,
    /// Members that wait through `wait_timeout` (with a long timeout) rather than `wait`.
    timed: Vec<bool>,
    /// How many extra waiters wait on each event, on a loop of their own, until the end.
    bystanders: usize,
}

fn spread_ring() -> impl Strategy<Value = SpreadRing> {
    (2..6usize, 1..4usize, 1..10usize, 0..3usize).prop_flat_map(
        |(members, loops, laps, bystanders)| {
            (
                prop::collection::vec(0..loops, members),
                prop::collection::vec(any::<bool>(), members),
            )
                .prop_map(move |(loop_of, timed)| SpreadRing {
                    loop_of,
                    laps,
                    timed,
                    bystanders,
                })
        },
    )
}

type SharedLog = Arc<std::sync::Mutex<Vec<usize>>>;

#[tinyio::coroutine]
fn spread_member(me: usize, events: Vec<Event>, laps: usize, timed: bool, log: SharedLog) -> () {
    let next = (me + 1) % events.len();
    for _ in 0..laps {
        if timed {
            assert!(yield_!(events[me].wait_timeout(std::time::Duration::from_secs(60))));
        } else {
            yield_!(events[me].wait());
        }
        events[me].clear();
        log.lock().unwrap().push(me);
        events[next].set();
    }
}

/// Waits on `event` again and again until `done` is set: woken by the batons too, it keeps
/// joining and leaving the event's waiters while the rings run on other threads.
#[tinyio::coroutine]
fn bystander(event: Event, done: Event) -> () {
    while !done.is_set() {
        yield_!(event.wait());
        yield_!();
    }
}

fn check_spread(ring: SpreadRing) -> Result<(), TestCaseError> {
    let description = format!("{ring:?}");
    let members = ring.loop_of.len();
    let log = within(20, move || {
        let events: Vec<Event> = (0..members).map(|_| Event::new()).collect();
        let log = SharedLog::default();
        let loops = ring.loop_of.iter().copied().max().unwrap_or(0) + 1;
        let threads: Vec<_> = (0..loops)
            .map(|l| {
                let mine: Vec<usize> = (0..members).filter(|&i| ring.loop_of[i] == l).collect();
                let (events, log, timed) = (events.clone(), log.clone(), ring.timed.clone());
                let laps = ring.laps;
                std::thread::spawn(move || {
                    let coros: Vec<Coro<()>> = mine
                        .into_iter()
                        .map(|me| spread_member(me, events.clone(), laps, timed[me], log.clone()))
                        .collect();
                    Loop::new().run(coros).unwrap();
                })
            })
            .collect();
        // Bystanders on a loop of their own, waiting on every event until the rings finish.
        let done = Event::new();
        let watchers = {
            let (events, done) = (events.clone(), done.clone());
            let bystanders = ring.bystanders;
            std::thread::spawn(move || {
                let coros: Vec<Coro<()>> = (0..bystanders)
                    .flat_map(|_| events.iter().map(|e| bystander(e.clone(), done.clone())))
                    .collect();
                Loop::new().run((coros, done.wait())).unwrap();
            })
        };
        events[0].set();
        for thread in threads {
            thread.join().unwrap();
        }
        done.set();
        for event in &events {
            event.set(); // lets the bystanders see `done`
        }
        watchers.join().unwrap();
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    });
    let expected: Vec<usize> = (0..members * ring.laps).map(|i| i % members).collect();
    prop_assert_eq!(log, expected, "{}", description);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batons_go_round_in_order_across_loops_and_threads(ring in spread_ring()) {
        check_spread(ring)?;
    }
}

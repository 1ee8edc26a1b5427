//! A coroutine that pauses with nothing else ready is resumed in place, without going through
//! the ready queue. These check that everything that must interrupt such a run of pauses still
//! does: a wake-up from a thread, a due timer, a stop, another coroutine made ready, and, under
//! a foreign executor, the executor's other tasks.

mod common;

use common::{ms, within};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;

use tinyio::{Coro, Event, Loop, run_in_thread, sleep};

/// Pauses until `flag` is set, at most `limit` times (a few seconds' worth at full speed), and
/// says how many pauses it took.
#[tinyio::coroutine]
fn pause_until(flag: Rc<Cell<bool>>, limit: u64) -> u64 {
    let mut pauses = 0;
    while !flag.get() {
        assert!(pauses < limit, "paused {limit} times: nothing interrupted it");
        yield_!();
        pauses += 1;
    }
    pauses
}

const LIMIT: u64 = 100_000_000;

/// Pauses once, tells `pausing`, then pauses until `flag` is set: by the time a thread hears
/// from it, it pauses alone (the other coroutine of the test waits by then).
#[tinyio::coroutine]
fn tell_then_pause_until(flag: Rc<Cell<bool>>, pausing: mpsc::Sender<()>) -> u64 {
    yield_!();
    pausing.send(()).unwrap();
    yield_!(pause_until(flag, LIMIT)) + 1
}

#[test]
fn a_thread_wake_up_interrupts_a_coroutine_pausing_alone() {
    #[tinyio::coroutine]
    fn after_thread(flag: Rc<Cell<bool>>, pausing: mpsc::Receiver<()>) -> () {
        yield_!(run_in_thread(move || pausing.recv().unwrap()));
        flag.set(true);
    }

    let flag = Rc::new(Cell::new(false));
    let (pausing, paused) = mpsc::channel();
    let (pauses, ()) = Loop::new()
        .run((tell_then_pause_until(flag.clone(), pausing), after_thread(flag, paused)))
        .unwrap();
    assert!(pauses > 0);
}

#[test]
fn an_event_set_from_a_thread_interrupts_a_coroutine_pausing_alone() {
    #[tinyio::coroutine]
    fn after_event(event: Event, flag: Rc<Cell<bool>>) -> () {
        yield_!(event.wait());
        flag.set(true);
    }

    let (event, flag) = (Event::new(), Rc::new(Cell::new(false)));
    let setter = event.clone();
    let (pausing, paused) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        paused.recv().unwrap();
        setter.set();
    });
    Loop::new()
        .run((tell_then_pause_until(flag.clone(), pausing), after_event(event, flag)))
        .unwrap();
    thread.join().unwrap();
}

#[test]
fn a_due_timer_interrupts_a_coroutine_pausing_alone() {
    #[tinyio::coroutine]
    fn after_sleep(flag: Rc<Cell<bool>>) -> () {
        yield_!(sleep(ms(2)));
        flag.set(true);
    }

    let flag = Rc::new(Cell::new(false));
    Loop::new().run((pause_until(flag.clone(), LIMIT), after_sleep(flag))).unwrap();
}

#[test]
fn a_stop_from_a_thread_interrupts_a_coroutine_pausing_forever() {
    /// Pauses forever, and tells `pausing` after its first pause.
    #[tinyio::coroutine]
    fn forever(pausing: mpsc::Sender<()>) -> () {
        yield_!();
        pausing.send(()).unwrap();
        loop {
            yield_!();
        }
    }

    let err = within(20, || {
        let lp = Loop::new();
        let stop = lp.stop_handle();
        let (pausing, paused) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            paused.recv().unwrap();
            stop.stop();
        });
        let err = lp.run(forever(pausing)).unwrap_err();
        thread.join().unwrap();
        err.to_string()
    });
    assert!(err.contains("stopped"), "{err}");
}

#[test]
fn pausing_coroutines_take_turns_in_order() {
    #[tinyio::coroutine]
    fn turns(name: char, n: usize, log: Rc<RefCell<String>>) -> () {
        for _ in 0..n {
            log.borrow_mut().push(name);
            yield_!();
        }
    }

    // They alternate while both are ready; `x` goes on alone once `y` is done.
    let log = Rc::new(RefCell::new(String::new()));
    Loop::new().run((turns('x', 4, log.clone()), turns('y', 2, log.clone()))).unwrap();
    assert_eq!(*log.borrow(), "xyxyxx");
}

#[test]
fn a_coroutine_pausing_under_tokio_lets_the_other_tasks_run() {
    let flag = Rc::new(Cell::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pauses = tokio::task::LocalSet::new().block_on(&runtime, {
        let flag = flag.clone();
        async move {
            let other = tokio::task::spawn_local({
                let flag = flag.clone();
                async move { flag.set(true) }
            });
            let pauses = pause_until(flag, LIMIT).await.unwrap();
            other.await.unwrap();
            pauses
        }
    });
    assert!(pauses > 0);
}

/// The same inside `isolate`: the outer loop's other coroutines keep running.
#[test]
fn a_coroutine_pausing_in_isolation_lets_the_outer_loop_run() {
    #[tinyio::coroutine]
    fn set_later(flag: Rc<Cell<bool>>) -> () {
        yield_!();
        flag.set(true);
    }

    #[tinyio::coroutine]
    fn outer(flag: Rc<Cell<bool>>) -> u64 {
        let isolated: Coro<Result<u64, tinyio::Error>> =
            tinyio::isolate(pause_until(flag.clone(), LIMIT));
        let (pauses, ()) = yield_!((isolated, set_later(flag)));
        pauses.unwrap()
    }

    let flag = Rc::new(Cell::new(false));
    assert!(Loop::new().run(outer(flag)).unwrap() > 0);
}

/// Coroutines started together and pausing different numbers of times take turns in rounds:
/// in each round, every one that still runs logs once, in the order they were started. Pauses
/// resumed in place must never reorder that.
mod rounds {
    use super::*;
    use proptest::prelude::*;

    #[tinyio::coroutine]
    fn logger(id: usize, pauses: usize, log: Rc<RefCell<Vec<usize>>>) -> () {
        log.borrow_mut().push(id);
        for _ in 0..pauses {
            yield_!();
            log.borrow_mut().push(id);
        }
    }

    fn model(pauses: &[usize]) -> Vec<usize> {
        let rounds = pauses.iter().copied().max().unwrap_or(0);
        (0..=rounds)
            .flat_map(|round| (0..pauses.len()).filter(move |&id| pauses[id] >= round))
            .collect()
    }

    proptest! {
        #[test]
        fn pauses_interleave_in_rounds(pauses in proptest::collection::vec(0usize..6, 1..8)) {
            let log = Rc::new(RefCell::new(Vec::new()));
            let all: Vec<Coro<()>> = pauses
                .iter()
                .enumerate()
                .map(|(id, &n)| logger(id, n, log.clone()))
                .collect();
            Loop::new().run(all).unwrap();
            prop_assert_eq!(&*log.borrow(), &model(&pauses));
        }
    }
}

/// A wake-up made while the loop takes in a timeout (here by a coroutine's clean-up, when the
/// timeout stops it) must still be seen under a foreign executor: the loop makes no driver wake
/// for wake-ups from inside itself, so it must look again before it reports itself blocked.
#[test]
fn a_wake_up_made_while_a_timeout_is_taken_in_is_not_lost() {
    #[tinyio::coroutine]
    fn cleans_up_by_setting(event: Event) -> () {
        if let Err(stopped) = try_yield!(sleep(std::time::Duration::from_secs(60))) {
            event.set();
            Err(stopped)?
        }
    }

    // Also waits on `done`, so that nothing is ready once the timeout has been taken in.
    #[tinyio::coroutine]
    fn times_out(event: Event, done: Event) -> bool {
        let timeout = tinyio::timeout(cleans_up_by_setting(event), common::head_start());
        let (stopped, ()) = yield_!((timeout, done.wait()));
        stopped.is_none()
    }

    #[tinyio::coroutine]
    fn waits(event: Event, done: Event) -> &'static str {
        yield_!(event.wait());
        done.set();
        "woken"
    }

    let (event, done) = (Event::new(), Event::new());
    let both = (times_out(event.clone(), done.clone()), waits(event, done));
    assert_eq!(on_tokio_without_stalling(both).unwrap(), (true, "woken"));
}

/// Wake-ups across an `isolate` boundary, both ways, under a foreign executor: an outer
/// coroutine wakes an isolated one, which then wakes the outer one back.
#[test]
fn wake_ups_cross_an_isolate_boundary_under_tokio() {
    #[tinyio::coroutine]
    fn inner(ping: Event, pong: Event) -> u32 {
        yield_!(ping.wait());
        pong.set();
        7
    }

    #[tinyio::coroutine]
    fn outer(ping: Event, pong: Event) -> u32 {
        yield_!(sleep(ms(1)));
        ping.set();
        yield_!(pong.wait());
        1
    }

    #[tinyio::coroutine]
    fn both(ping: Event, pong: Event) -> u32 {
        let isolated = tinyio::isolate(inner(ping.clone(), pong.clone()));
        let (a, b) = yield_!((isolated, outer(ping, pong)));
        a.unwrap() + b
    }

    let out = on_tokio_without_stalling(both(Event::new(), Event::new()));
    assert_eq!(out.unwrap(), 8);
}

/// Runs `y` as a future on a tokio current-thread runtime, failing if it stalls. A missed
/// wake-up shows as a wait until something else polls the future, here only a 10 s guard: so
/// anything over 5 s is one. (Under valgrind, whose timeouts here last 5 s, only the guard, of
/// 60 s, counts.)
fn on_tokio_without_stalling<Y: tinyio::Yieldable + 'static>(
    y: Y,
) -> Result<Y::Output, tinyio::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let start = std::time::Instant::now();
    let guard = std::time::Duration::from_secs(if common::under_valgrind() { 60 } else { 10 });
    let out = runtime.block_on(async { tokio::time::timeout(guard, tinyio::to_future(y)).await });
    let elapsed = start.elapsed();
    if !common::under_valgrind() {
        assert!(elapsed < std::time::Duration::from_secs(5), "stalled for {elapsed:?}");
    }
    out.expect("the loop missed a wake-up and stalled")
}

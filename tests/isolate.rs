//! `isolate` and `copy`: an isolated part of a run, whose errors stay inside it, and the
//! hand-over of results into it.
//!
//! Tests that could hang if the loops did not make progress together run under a watchdog
//! thread, so that a hang fails the test instead of stalling the suite.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{DropGuard, dropped, forever, on_a_small_stack, payload_str, raises_again, within};
use tinyio::{Coro, Event, Loop, Shared, background, copy, isolate, run_in_thread, sleep};

// ---------------------------------------------------------------------------------------------
// Ping-pong through one-slot queues.

/// A queue holding at most one item. `put` waits while it is full, `take` while it is empty,
/// each through an event the other side sets: the waits are real suspensions woken across loops.
#[derive(Clone, Default)]
struct OneSlot {
    item: Arc<Mutex<Option<u32>>>,
    /// Set when an item is put in.
    filled: Event,
    /// Set when the item is taken out.
    emptied: Event,
}

#[tinyio::coroutine]
fn put(queue: OneSlot, x: u32) -> () {
    loop {
        {
            let mut item = queue.item.lock().unwrap();
            if item.is_none() {
                *item = Some(x);
                queue.emptied.clear();
                queue.filled.set();
                break;
            }
        }
        yield_!(queue.emptied.wait());
    }
}

#[tinyio::coroutine]
fn take(queue: OneSlot) -> u32 {
    loop {
        {
            let taken = queue.item.lock().unwrap().take();
            if let Some(x) = taken {
                queue.filled.clear();
                queue.emptied.set();
                break x;
            }
        }
        yield_!(queue.filled.wait());
    }
}

const ROUNDS: u32 = 50;

/// Sends 0, 1, 2, ... on `to` and checks that each comes back plus one on `from`.
#[tinyio::coroutine]
fn ping(to: OneSlot, from: OneSlot) -> u32 {
    let mut sum = 0;
    for i in 0..ROUNDS {
        yield_!(put(to.clone(), i));
        let back = yield_!(take(from.clone()));
        assert_eq!(back, i + 1);
        sum += back;
    }
    sum
}

/// Answers each number from `from` with that number plus one on `to`.
#[tinyio::coroutine]
fn pong(from: OneSlot, to: OneSlot) -> u32 {
    let mut count = 0;
    for _ in 0..ROUNDS {
        let x = yield_!(take(from.clone()));
        yield_!(put(to.clone(), x + 1));
        count += 1;
    }
    count
}

/// Yields `c` directly, or inside `isolate`.
#[tinyio::coroutine]
fn maybe_isolated(c: Coro<u32>, isolated: bool) -> u32 {
    if isolated { yield_!(isolate(c))? } else { yield_!(c) }
}

fn ping_pong(isolate_ping: bool, isolate_pong: bool) {
    let (a, b) = within(20, move || {
        let (there, back) = (OneSlot::default(), OneSlot::default());
        let both = (
            maybe_isolated(ping(there.clone(), back.clone()), isolate_ping),
            maybe_isolated(pong(there, back), isolate_pong),
        );
        Loop::new().run(both).unwrap()
    });
    assert_eq!(a, (1..=ROUNDS).sum::<u32>());
    assert_eq!(b, ROUNDS);
}

#[test]
fn ping_pong_neither_isolated() {
    ping_pong(false, false);
}

#[test]
fn ping_pong_first_isolated() {
    ping_pong(true, false);
}

#[test]
fn ping_pong_second_isolated() {
    ping_pong(false, true);
}

#[test]
fn ping_pong_both_isolated() {
    ping_pong(true, true);
}

/// Two isolated groups on one outer loop, each pair talking across the isolation boundary:
/// two nested loops and the outer one all step each other.
#[test]
fn ping_pong_across_two_isolated_groups_and_the_outer_loop() {
    let out = within(20, || {
        let (q1, q2, q3, q4) =
            (OneSlot::default(), OneSlot::default(), OneSlot::default(), OneSlot::default());
        // ping(q1 -> q2) isolated, pong(q1 -> q2) outside; ping(q3 -> q4) outside, pong isolated.
        let all = (
            isolate(ping(q1.clone(), q2.clone())),
            pong(q1, q2),
            ping(q3.clone(), q4.clone()),
            isolate(pong(q3, q4)),
        );
        Loop::new().run(all).unwrap()
    });
    let sum = (1..=ROUNDS).sum::<u32>();
    assert_eq!(out.0.unwrap(), sum);
    assert_eq!(out.1, ROUNDS);
    assert_eq!(out.2, sum);
    assert_eq!(out.3.unwrap(), ROUNDS);
}

// ---------------------------------------------------------------------------------------------
// Errors stay inside the isolated group.

#[tinyio::coroutine]
fn fail_after(pauses: u32) -> () {
    for _ in 0..pauses {
        yield_!();
    }
    tinyio::bail!("inner failure");
}

/// Holds `guard` and pauses `n` times, then returns `n`.
#[tinyio::coroutine]
fn pauses(n: u32, guard: DropGuard) -> u32 {
    let _guard = guard;
    for _ in 0..n {
        yield_!();
    }
    n
}

#[test]
fn an_error_inside_cancels_only_the_isolated_group() {
    static INNER: AtomicUsize = AtomicUsize::new(0);
    static OUTER: AtomicUsize = AtomicUsize::new(0);

    /// The isolated group: one coroutine fails, the others are cancelled.
    #[tinyio::coroutine]
    fn group() -> () {
        yield_!((
            fail_after(3),
            forever(DropGuard(&INNER)),
            forever(DropGuard(&INNER)),
            pauses(1000, DropGuard(&INNER))
        ));
    }

    #[tinyio::coroutine]
    fn guarded_isolate() -> String {
        let result = yield_!(isolate(group()));
        // By the time the error comes back the whole group has been cleaned up...
        assert_eq!(dropped(&INNER), 3, "every inner coroutine's destructors ran");
        // ...while the outer sibling, started alongside, is still going.
        assert_eq!(dropped(&OUTER), 0, "the outer sibling was not cancelled");
        let error = result.unwrap_err();
        assert!(!error.is_cancelled(), "the original error comes back, not a cancellation");
        error.to_string()
    }

    #[tinyio::coroutine]
    fn root() -> (String, u32, u32) {
        let (message, a, b) = yield_!((
            guarded_isolate(),
            pauses(50, DropGuard(&OUTER)),
            pauses(100, DropGuard(&OUTER))
        ));
        // The outer loop goes on after the inner error.
        let c = yield_!(pauses(2, DropGuard(&OUTER)));
        (message, a + b, c)
    }

    let out = within(20, || Loop::new().run(root()).unwrap());
    assert_eq!(out, ("inner failure".to_string(), 150, 2));
    assert_eq!(dropped(&INNER), 3);
    assert_eq!(dropped(&OUTER), 3, "the outer coroutines finished normally");
}

#[test]
fn an_error_inside_keeps_its_trace_and_type() {
    #[derive(Debug, thiserror::Error, PartialEq)]
    #[error("typed failure {0}")]
    struct Typed(u32);

    #[tinyio::coroutine]
    fn raises() -> u32 {
        yield_!();
        Err(Typed(7))?;
        0
    }

    #[tinyio::coroutine]
    fn middle() -> u32 {
        yield_!(raises())
    }

    #[tinyio::coroutine]
    fn root() -> Result<u32, tinyio::Error> {
        yield_!(isolate(middle()))
    }

    let error = Loop::new().run(root()).unwrap().unwrap_err();
    assert_eq!(error.downcast_ref::<Typed>(), Some(&Typed(7)));
    let names = common::names(&error);
    assert_eq!(names.last(), Some(&"raises"), "{names:?}");
    assert!(names.contains(&"middle"), "{names:?}");
}

/// A panic inside an isolated group is fatal: the outer loop is cancelled too, and the panic
/// resumes out of `Loop::run` with its payload.
#[test]
fn a_panic_inside_isolate_is_fatal() {
    static OUTER: AtomicUsize = AtomicUsize::new(0);
    static INNER: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn panics() -> u32 {
        yield_!();
        yield_!();
        panic!("boom inside isolate");
    }

    #[tinyio::coroutine]
    fn root() -> () {
        let isolated = isolate((panics(), forever(DropGuard(&INNER))));
        let (result, ()) = yield_!((isolated, forever(DropGuard(&OUTER))));
        // Never reached: the panic is not turned into an `Err`.
        let _ = result;
        unreachable!("a panic inside isolate came back as a value");
    }

    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(root()))).unwrap_err();
    assert_eq!(payload_str(&*payload), "boom inside isolate");
    assert_eq!(dropped(&INNER), 1, "the isolated group was cleaned up");
    assert_eq!(dropped(&OUTER), 1, "the outer loop was cleaned up");
}

// ---------------------------------------------------------------------------------------------
// Cancellation of the outer loop reaches inside.

#[test]
fn outer_cancellation_reaches_an_isolated_loop_in_the_background() {
    static INNER: AtomicUsize = AtomicUsize::new(0);
    static SAW_CANCELLATION: AtomicUsize = AtomicUsize::new(0);
    static THREAD_STOPPED: AtomicBool = AtomicBool::new(false);

    /// Sees its cancellation, records it, and propagates it.
    #[tinyio::coroutine]
    fn watches(guard: DropGuard) -> () {
        let _guard = guard;
        let result = try_yield!(sleep(Duration::from_secs(3600)));
        if let Err(error) = &result {
            assert!(error.is_cancelled(), "{error}");
            SAW_CANCELLATION.fetch_add(1, Ordering::SeqCst);
        }
        result?;
    }

    /// A thread inside the isolated loop, that sets `running` and runs until told to stop.
    fn until_stopped(running: Event) -> Coro<()> {
        run_in_thread(move || {
            running.set();
            while tinyio::thread::sleep(Duration::from_secs(3600)).is_ok() {}
            // Slow to stop: `run` must wait for it (nothing waits on how long it takes).
            std::thread::sleep(Duration::from_millis(20));
            THREAD_STOPPED.store(true, Ordering::SeqCst);
        })
    }

    #[tinyio::coroutine]
    fn inner(running: Event) -> () {
        yield_!((watches(DropGuard(&INNER)), forever(DropGuard(&INNER)), until_stopped(running)));
    }

    /// Fails once the inner thread runs (a call still queued would be dropped unrun).
    #[tinyio::coroutine]
    fn root() -> () {
        let running = Event::new();
        yield_!(background(isolate(inner(running.clone()))));
        yield_!(running.wait());
        tinyio::bail!("outer failure");
    }

    let error = within(20, || Loop::new().run(root()).unwrap_err());
    assert_eq!(error.to_string(), "outer failure");
    assert_eq!(dropped(&INNER), 2, "the inner coroutines' destructors ran");
    assert_eq!(
        SAW_CANCELLATION.load(Ordering::SeqCst),
        1,
        "the inner coroutine was resumed with a cancellation"
    );
    assert!(
        THREAD_STOPPED.load(Ordering::SeqCst),
        "the inner thread was told to stop and joined before run returned"
    );
}

#[test]
fn stopping_the_outer_loop_reaches_inside() {
    static INNER: AtomicUsize = AtomicUsize::new(0);

    /// Tells `inside` once it runs inside the isolated loop.
    #[tinyio::coroutine]
    fn tells(inside: std::sync::mpsc::Sender<()>) -> () {
        inside.send(()).unwrap();
    }

    #[tinyio::coroutine]
    fn root(inside: std::sync::mpsc::Sender<()>) -> () {
        yield_!(isolate((forever(DropGuard(&INNER)), forever(DropGuard(&INNER)), tells(inside))))?;
    }

    let error = within(20, || {
        let lp = Loop::new();
        let stop = lp.stop_handle();
        let (inside, running) = std::sync::mpsc::channel();
        // Stops the outer loop once the isolated one runs.
        let stopper = std::thread::spawn(move || {
            running.recv().unwrap();
            stop.stop();
        });
        let error = lp.run(root(inside)).unwrap_err();
        stopper.join().unwrap();
        error
    });
    assert!(error.is_stopped(), "{error}");
    assert_eq!(dropped(&INNER), 2);
}

// ---------------------------------------------------------------------------------------------
// copy, and isolate with copied inputs.

#[tinyio::coroutine]
fn add_one(x: u32) -> u32 {
    yield_!();
    x + 1
}

/// Fails when its input is 3.
#[tinyio::coroutine]
fn unreliable_add_two(get_x: Coro<u32>) -> u32 {
    let x = yield_!(get_x);
    if x == 3 {
        tinyio::bail!("got three");
    }
    let y = yield_!(add_one(x));
    y + 1
}

/// Computes `x + 1` on the outer loop, then `+ 2` in isolation from a copy of it.
#[tinyio::coroutine]
fn try_add_three(x: u32) -> (Result<u32, String>, u32) {
    let original = add_one(x).share();
    let copied = yield_!(copy(original.clone()));
    let result = yield_!(isolate(unreliable_add_two(copied)));
    // The original is still usable on the outer loop.
    let x_plus_one = yield_!(original);
    (result.map_err(|e| e.to_string()), x_plus_one)
}

#[test]
fn isolate_with_copied_inputs_succeeds_or_fails_with_the_inner_work() {
    let out = Loop::new()
        .run([try_add_three(0), try_add_three(1), try_add_three(2), try_add_three(5)])
        .unwrap();
    assert_eq!(
        out,
        [(Ok(3), 1), (Ok(4), 2), (Err("got three".to_string()), 3), (Ok(8), 6)],
        "only the input 2 (which becomes 3) fails, and only its own isolated group"
    );
}

#[test]
fn copy_gives_the_very_same_value() {
    struct NotClone(#[allow(dead_code)] u64);

    #[tinyio::coroutine]
    fn make(value: Rc<NotClone>) -> Rc<NotClone> {
        yield_!();
        value
    }

    /// An output that cannot be cloned at all: moved through the copy.
    #[tinyio::coroutine]
    fn boxed() -> Box<NotClone> {
        yield_!();
        Box::new(NotClone(9))
    }

    #[tinyio::coroutine]
    fn root(value: Rc<NotClone>) -> () {
        // Through a shared coroutine: the copy, the isolated loop and the original agree.
        let original: Shared<Rc<NotClone>> = make(value.clone()).share();
        let copied = yield_!(copy(original.clone()));
        let inside = yield_!(isolate(copied))?;
        let outside = yield_!(original);
        assert!(Rc::ptr_eq(&inside, &outside));
        assert!(Rc::ptr_eq(&inside, &value));

        // Through a plain coroutine: the output is moved, not cloned.
        let copied = yield_!(copy(make(value.clone())));
        let moved = yield_!(copied);
        assert!(Rc::ptr_eq(&moved, &value));

        // A value without Clone, observed by its heap address.
        let copied = yield_!(copy(boxed()));
        let inside = yield_!(isolate(copied))?;
        let address = &*inside as *const NotClone;
        let again = inside;
        assert_eq!(&*again as *const NotClone, address);
    }

    let value = Rc::new(NotClone(1));
    Loop::new().run(root(value.clone())).unwrap();
    assert_eq!(Rc::strong_count(&value), 1, "nothing kept a copy of the value");
}

#[test]
fn copy_of_a_failing_coroutine_raises_inside() {
    #[tinyio::coroutine]
    fn fails() -> u32 {
        yield_!();
        tinyio::bail!("copied failure");
    }

    #[tinyio::coroutine]
    fn root() -> String {
        let copied = yield_!(copy(fails()));
        let result = yield_!(isolate(copied));
        result.unwrap_err().to_string()
    }

    // The copied coroutine fails on the outer loop, which crashes it.
    let error = Loop::new().run(root()).unwrap_err();
    assert_eq!(error.to_string(), "copied failure");
}

/// A shared coroutine scheduled by the outer run belongs to that run: yielding it inside an
/// isolated loop is an error, which stays inside the isolated loop.
#[test]
fn yielding_inside_isolate_a_shared_coroutine_the_outer_run_scheduled() {
    /// Still running when the isolated loop yields it, however late that loop runs.
    #[tinyio::coroutine]
    fn slow() -> u32 {
        yield_!(sleep(common::head_start()));
        11
    }

    #[tinyio::coroutine]
    fn uses(s: Shared<u32>) -> u32 {
        yield_!(s)
    }

    #[tinyio::coroutine]
    fn root() -> (String, u32, u32) {
        let s = slow().share();
        yield_!(background(s.clone()));
        let error = yield_!(isolate(uses(s.clone()))).unwrap_err();
        // The right way: copy.
        let copied = yield_!(copy(s.clone()));
        let via_copy = yield_!(isolate(copied))?;
        let direct = yield_!(s);
        (error.to_string(), via_copy, direct)
    }

    let (message, via_copy, direct) = within(20, || Loop::new().run(root()).unwrap());
    assert!(message.contains("has already started"), "{message}");
    assert!(message.contains("slow"), "the message names the coroutine: {message}");
    assert_eq!((via_copy, direct), (11, 11));
}

/// The inner loop's timers and threads wake the outer loop, which does not spin meanwhile.
#[test]
fn isolated_timers_and_threads_wake_the_outer_loop() {
    #[tinyio::coroutine]
    fn inner() -> u32 {
        yield_!(sleep(Duration::from_millis(50)));
        yield_!(run_in_thread(|| {
            std::thread::sleep(Duration::from_millis(50)); // busy for a while
            1
        }))
    }

    let start = std::time::Instant::now();
    let out = within(20, || Loop::new().run(isolate(inner())).unwrap().unwrap());
    let elapsed = start.elapsed();
    assert_eq!(out, 1);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // 50x the work: a loop that spun, or missed a wake-up, would take far longer or hang (the
    // `within` above). Not under valgrind, which slows everything past any such bound.
    if !common::under_valgrind() {
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}

#[test]
fn isolate_nests() {
    #[tinyio::coroutine]
    fn nested(depth: u32) -> u32 {
        if depth == 0 {
            yield_!();
            tinyio::bail!("deepest");
        }
        let inner = yield_!(isolate(nested(depth - 1)));
        match inner {
            Ok(x) => x,
            Err(e) if depth == 1 => {
                assert_eq!(e.to_string(), "deepest");
                depth
            }
            Err(e) => Err(e)?,
        }
    }

    assert_eq!(within(20, || Loop::new().run(nested(5)).unwrap()), 1);
}

/// A timeout around an isolated loop stops it like any other work: the inner coroutines are
/// cancelled and cleaned up, and the outer loop goes on.
#[test]
fn a_timeout_around_isolate_cancels_the_inner_loop() {
    static INNER: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn root() -> (bool, usize, u32) {
        let inner = isolate((forever(DropGuard(&INNER)), forever(DropGuard(&INNER))));
        let timed_out = yield_!(tinyio::timeout(inner, Duration::from_millis(30))).is_none();
        let drops = dropped(&INNER);
        let after = yield_!(add_one(1));
        (timed_out, drops, after)
    }

    let out = within(20, || Loop::new().run(root()).unwrap());
    assert_eq!(out, (true, 2, 2));
}

// ---------------------------------------------------------------------------------------------
// Nesting at depth: an isolated scope is an entry of the one run, not a loop stepped from
// inside another loop's step, so no level recurses on the thread's stack.

const DEEP: u32 = 100_000;

/// `depth` isolates, each around the next; the innermost pauses and returns 0.
#[tinyio::coroutine]
fn nest(depth: u32) -> u32 {
    if depth == 0 {
        yield_!();
        return 0;
    }
    yield_!(isolate(nest(depth - 1)))? + 1
}

#[test]
fn isolate_nests_a_hundred_thousand_deep_on_a_small_stack() {
    let out = on_a_small_stack(|| Loop::new().run(nest(DEEP)).unwrap());
    assert_eq!(out, DEEP);
}

/// The innermost of `depth` nested isolates fails: the level above gets the error as `Err`,
/// and every level above that counts itself.
#[tinyio::coroutine]
fn failing_nest(depth: u32) -> u32 {
    if depth == 0 {
        yield_!();
        tinyio::bail!("deepest");
    }
    match yield_!(isolate(failing_nest(depth - 1))) {
        Ok(levels) => levels + 1,
        Err(error) => {
            assert_eq!(depth, 1, "only the innermost isolate fails");
            assert_eq!(error.to_string(), "deepest");
            1
        }
    }
}

#[test]
fn the_innermost_of_a_hundred_thousand_nested_isolates_fails_into_an_err() {
    let out = on_a_small_stack(|| Loop::new().run(failing_nest(DEEP)).unwrap());
    assert_eq!(out, DEEP);
}

/// Every level re-raises the error it gets: each isolate in turn catches it and gives it to the
/// level above, up to the run.
#[test]
fn an_error_raised_again_at_every_level_reaches_the_top() {
    const LEVELS: u32 = 1_000;

    let error = on_a_small_stack(|| Loop::new().run(raises_again(LEVELS)).unwrap_err());
    assert_eq!(error.to_string(), "deepest");
    let names = common::names(&error);
    let levels = names.iter().filter(|&&name| name == "raises_again").count();
    assert_eq!(levels, LEVELS as usize + 1, "every level is on the trace");
}

/// Nested isolates, each starting a coroutine that never ends in the background: a failure of
/// the whole run cancels every one of them, at every depth.
#[test]
fn a_failure_outside_cancels_a_hundred_thousand_nested_isolates() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn nest_forever(depth: u32, started: Event) -> () {
        yield_!(background(forever(DropGuard(&GUARDS))));
        if depth == 0 {
            started.set();
            return;
        }
        yield_!(isolate(nest_forever(depth - 1, started)))?;
    }

    #[tinyio::coroutine]
    fn root() -> () {
        let started = Event::new();
        yield_!(background(isolate(nest_forever(DEEP, started.clone()))));
        yield_!(started.wait());
        tinyio::bail!("outer failure");
    }

    let error = on_a_small_stack(|| Loop::new().run(root()).unwrap_err());
    assert_eq!(error.to_string(), "outer failure");
    assert_eq!(dropped(&GUARDS), DEEP as usize + 1);
}

/// The same, stopped by a timeout around the outermost isolate, once every level has started:
/// only that work is stopped, background work at every depth included.
#[test]
fn a_timeout_stops_a_hundred_thousand_nested_isolates_and_their_background_work() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn nest_forever(depth: u32, started: Event) -> () {
        yield_!(background(forever(DropGuard(&GUARDS))));
        if depth == 0 {
            started.set();
            return;
        }
        yield_!(isolate(nest_forever(depth - 1, started)))?;
    }

    #[tinyio::coroutine]
    fn outermost(started: Event) -> bool {
        yield_!(isolate(nest_forever(DEEP, started))).is_ok()
    }

    #[tinyio::coroutine]
    fn root() -> (bool, usize, u32) {
        let started = Event::new();
        let isolated = outermost(started.clone()).share();
        // Started in the background, which does not wait on it: the timeout alone will.
        yield_!(background(isolated.clone()));
        yield_!(started.wait());
        let timed_out = yield_!(tinyio::timeout(isolated, Duration::from_millis(1))).is_none();
        (timed_out, dropped(&GUARDS), yield_!(add_one(1)))
    }

    let out = on_a_small_stack(|| Loop::new().run(root()).unwrap());
    assert_eq!(out, (true, DEEP as usize + 1, 2));
}

/// A coroutine inside that catches its cancellation and pauses again, instead of propagating
/// it, is stopped and reported with the original error, never resumed further. The failure
/// comes from a coroutine resumed alone (nothing else ready, no timer), which the loop lets
/// pause in place: that licence must not pass to the coroutines being cancelled.
#[test]
fn a_coroutine_inside_that_pauses_after_its_cancellation_is_reported() {
    static PAUSES: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn misbehaves(event: Event) -> () {
        let _ = try_yield!(event.wait());
        loop {
            PAUSES.fetch_add(1, Ordering::SeqCst);
            yield_!();
        }
    }

    #[tinyio::coroutine]
    fn group() -> () {
        let event = Event::new();
        yield_!((misbehaves(event.clone()), fail_after(2)));
        event.set();
    }

    let error = within(20, || Loop::new().run(isolate(group())).unwrap().unwrap_err());
    let group = error.group().expect("the misbehaviour is grouped after the original");
    assert_eq!(group[0].to_string(), "inner failure");
    assert!(
        group[1].to_string().contains("did not respond properly to cancellation"),
        "{}",
        group[1]
    );
    assert_eq!(PAUSES.load(Ordering::SeqCst), 1, "resumed once, with its cancellation");
}

// ---------------------------------------------------------------------------------------------
// The scope of an isolate: everything started inside, background work included.

#[test]
fn isolate_waits_for_what_was_started_inside_in_the_background() {
    #[tinyio::coroutine]
    fn late(flag: Rc<std::cell::Cell<bool>>) -> () {
        yield_!();
        yield_!();
        flag.set(true);
    }

    #[tinyio::coroutine]
    fn starts(flag: Rc<std::cell::Cell<bool>>) -> u32 {
        yield_!(background(late(flag)));
        7
    }

    #[tinyio::coroutine]
    fn root() -> (u32, bool) {
        let flag = Rc::new(std::cell::Cell::new(false));
        let out = yield_!(isolate(starts(flag.clone())))?;
        (out, flag.get())
    }

    assert_eq!(Loop::new().run(root()).unwrap(), (7, true));
}

/// A coroutine started in the background inside fails: the rest inside is cancelled, its
/// thread told to stop and joined, all before the error comes back.
#[test]
fn a_failure_in_the_background_inside_fails_the_isolate_after_joining_its_thread() {
    static THREAD_ENDED: AtomicBool = AtomicBool::new(false);

    #[tinyio::coroutine]
    fn fails_once(running: Event) -> () {
        yield_!(running.wait());
        tinyio::bail!("background failure");
    }

    #[tinyio::coroutine]
    fn group() -> () {
        let running = Event::new();
        yield_!(background(fails_once(running.clone())));
        yield_!(run_in_thread(move || {
            running.set();
            let slept = tinyio::thread::sleep(Duration::from_secs(3600)); // until cancelled
            THREAD_ENDED.store(true, Ordering::SeqCst);
            slept
        }))?;
    }

    #[tinyio::coroutine]
    fn root() -> (String, bool) {
        let error = yield_!(isolate(group())).unwrap_err();
        (error.to_string(), THREAD_ENDED.load(Ordering::SeqCst))
    }

    let out = within(20, || Loop::new().run(root()).unwrap());
    assert_eq!(out, ("background failure".to_string(), true));
}

/// A shared coroutine running inside an isolate cannot be yielded outside it, nor inside a
/// sibling isolate: it is refused there, as one of another run is, and nothing hangs.
#[test]
fn a_shared_coroutine_running_inside_an_isolate_is_refused_elsewhere() {
    #[tinyio::coroutine]
    fn gated(gate: Event) -> u32 {
        yield_!(gate.wait());
        3
    }

    #[tinyio::coroutine]
    fn starts(s: Shared<u32>, started: Event) -> u32 {
        yield_!(background(s.clone()));
        started.set();
        yield_!(s)
    }

    #[tinyio::coroutine]
    fn first_part(s: Shared<u32>, started: Event) -> u32 {
        yield_!(isolate(starts(s, started))).unwrap()
    }

    #[tinyio::coroutine]
    fn uses(s: Shared<u32>) -> u32 {
        yield_!(s)
    }

    #[tinyio::coroutine]
    fn sibling() -> (u32, String) {
        let (gate, started) = (Event::new(), Event::new());
        let s = gated(gate.clone()).share();
        let first = first_part(s.clone(), started.clone()).share();
        yield_!(background(first.clone()));
        yield_!(started.wait());
        let refused = yield_!(isolate(uses(s))).unwrap_err();
        gate.set();
        (yield_!(first), refused.to_string())
    }

    #[tinyio::coroutine]
    fn outside() -> u32 {
        let (gate, started) = (Event::new(), Event::new());
        let s = gated(gate).share();
        yield_!(background(first_part(s.clone(), started.clone())));
        yield_!(started.wait());
        yield_!(s) // refused: the run fails
    }

    let (out, message) = within(20, || Loop::new().run(sibling()).unwrap());
    assert_eq!(out, 3, "the isolate that started it finishes it");
    assert!(message.contains("has already started"), "{message}");
    assert!(message.contains("gated"), "{message}");

    let error = within(20, || Loop::new().run(outside()).unwrap_err());
    assert!(error.to_string().contains("has already started"), "{error}");
}

/// A timeout inside an isolate stops its work, and a coroutine there answers with a value
/// instead of propagating the timeout: that fails the isolate, which stops everything inside,
/// including what the timeout had not stopped yet (a nested isolate's background work).
#[test]
fn misbehaviour_met_by_a_timeout_inside_fails_that_isolate_and_stops_all_of_it() {
    static GUARDS: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn returns_instead(started: Event) -> u32 {
        started.set();
        let _ = try_yield!(sleep(Duration::from_secs(3600)));
        5
    }

    #[tinyio::coroutine]
    fn nested(started: Event) -> () {
        yield_!(background(forever(DropGuard(&GUARDS))));
        started.set();
        yield_!(forever(DropGuard(&GUARDS)));
    }

    #[tinyio::coroutine]
    fn work(a: Event, b: Event) -> () {
        let (_, _) = yield_!((isolate(nested(a)), returns_instead(b)));
    }

    #[tinyio::coroutine]
    fn group() -> () {
        let (a, b) = (Event::new(), Event::new());
        let work = work(a.clone(), b.clone()).share();
        yield_!(background(work.clone()));
        yield_!((a.wait(), b.wait()));
        yield_!(tinyio::timeout(work, Duration::from_millis(1)));
    }

    #[tinyio::coroutine]
    fn root() -> (String, usize, u32) {
        let error = yield_!(isolate(group())).unwrap_err();
        (error.to_string(), dropped(&GUARDS), yield_!(add_one(1)))
    }

    let (message, drops, after) = within(20, || Loop::new().run(root()).unwrap());
    assert!(message.contains("did not respond properly"), "{message}");
    assert_eq!((drops, after), (2, 2));
}

/// A stall report lists the coroutines inside an isolate too, and the isolate as waiting on
/// what it started.
#[test]
fn a_stall_report_shows_what_an_isolate_waits_on() {
    #[tinyio::coroutine]
    fn inside(event: Event) -> () {
        yield_!(event.wait());
    }

    #[tinyio::coroutine]
    fn starts(event: Event) -> () {
        yield_!(background(inside(event.clone())));
        yield_!(inside(event));
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let event = Event::new();
    let lp = Loop::new().stall_report(Duration::from_millis(20), {
        let (seen, event) = (seen.clone(), event.clone());
        move |stall| {
            let coroutines = stall.coroutines().iter();
            let waits = coroutines.map(|c| (c.frame().name(), c.waits_on().to_vec()));
            seen.lock().unwrap().extend(waits);
            event.set();
        }
    });
    within(20, move || lp.run(isolate(starts(event))).unwrap().unwrap());
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("inside", vec!["Event::wait"]),
            ("inside", vec!["Event::wait"]),
            ("isolate", vec!["starts", "inside", "inside"]),
            ("starts", vec!["inside"]),
        ]
    );
}

/// Twenty thousand coroutines inside an isolate wait on one shared coroutine, twenty times each,
/// when another fails: cancelling them is linear in the waits (each coroutine is stopped once,
/// without searching who else waits on it). The watchdog is a hang guard: a walk that searched
/// would take hours here.
#[test]
fn a_failed_isolate_cancels_many_waits_on_one_shared_coroutine_in_linear_time() {
    // A hundredth under valgrind, which checks what is left behind, not how long it takes.
    let waiters_count: usize = if common::under_valgrind() { 200 } else { 20_000 };
    static GUARDS: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn waits(s: Shared<()>, guard: DropGuard) -> () {
        let _guard = guard;
        yield_!(vec![s; 20]);
    }

    #[tinyio::coroutine]
    fn fails_when(ready: Event) -> () {
        yield_!(ready.wait());
        tinyio::bail!("inner failure");
    }

    #[tinyio::coroutine]
    fn group(count: usize) -> () {
        let (ready, never) = (Event::new(), Event::new());
        let s = never.wait().share();
        let waiters: Vec<_> = (0..count).map(|_| waits(s.clone(), DropGuard(&GUARDS))).collect();
        yield_!(background(fails_when(ready.clone())));
        ready.set(); // after the waiters have all started: its wake-up queues behind them
        yield_!(waiters);
    }

    let error =
        within(60, move || Loop::new().run(isolate(group(waiters_count))).unwrap().unwrap_err());
    assert_eq!(error.to_string(), "inner failure");
    assert_eq!(dropped(&GUARDS), waiters_count);
}

/// A thread that a timeout inside an isolate told to stop answers with an error of its own: it
/// is joined before the isolate finishes, and its error comes back from the isolate, as any
/// error inside does, rather than failing the whole run when it ends.
#[test]
fn a_thread_stopped_by_a_timeout_inside_fails_that_isolate_only() {
    #[tinyio::coroutine]
    fn blocking(running: Event) -> () {
        yield_!(tinyio::try_run_in_thread(move || {
            running.set();
            let _ = tinyio::thread::sleep(Duration::from_secs(3600)); // until told to stop
            Err::<(), _>(tinyio::Error::msg("the thread's own error"))
        }));
    }

    #[tinyio::coroutine]
    fn group() -> bool {
        let running = Event::new();
        let work = blocking(running.clone()).share();
        yield_!(background(work.clone()));
        yield_!(running.wait());
        yield_!(tinyio::timeout(work, Duration::from_millis(1))).is_none()
    }

    #[tinyio::coroutine]
    fn root() -> (Result<bool, String>, u32) {
        let result = yield_!(isolate(group())).map_err(|error| error.to_string());
        (result, yield_!(add_one(1)))
    }

    let out = within(20, || Loop::new().run(root()).unwrap());
    assert_eq!(out, (Err("the thread's own error".to_string()), 2));
}

/// A thread that a timeout inside an isolate told to stop, still running, is joined before an
/// error comes back: the isolate's own failure (with the thread's error grouped after it), or
/// the failure of the whole run.
#[test]
fn a_thread_stopped_by_a_timeout_inside_is_joined_before_any_failure_comes_back() {
    static ENDED: AtomicUsize = AtomicUsize::new(0);

    /// Runs until told to stop, then ends with an error of its own once `release` is set.
    #[tinyio::coroutine]
    fn blocking(running: Event, release: Event) -> () {
        yield_!(tinyio::try_run_in_thread(move || {
            running.set();
            let _ = tinyio::thread::sleep(Duration::from_secs(3600)); // until told to stop
            while !release.is_set() {
                std::thread::yield_now();
            }
            ENDED.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(tinyio::Error::msg("the thread's own error"))
        }));
    }

    /// Times the thread call out, then fails while it still runs.
    #[tinyio::coroutine]
    fn group(release: Event) -> () {
        let running = Event::new();
        let work = blocking(running.clone(), release.clone()).share();
        yield_!(background(work.clone()));
        yield_!(running.wait());
        assert!(yield_!(tinyio::timeout(work, Duration::from_millis(1))).is_none());
        release.set();
        tinyio::bail!("inner failure");
    }

    #[tinyio::coroutine]
    fn isolated() -> (usize, String, String) {
        let error = yield_!(isolate(group(Event::new()))).unwrap_err();
        let group = error.group().expect("the thread's error is grouped");
        let ended = ENDED.load(Ordering::SeqCst);
        (ended, group[0].to_string(), group[1].to_string())
    }

    let out = within(20, || Loop::new().run(isolated()).unwrap());
    let expected = ("inner failure", "the thread's own error");
    assert_eq!(out, (1, expected.0.to_string(), expected.1.to_string()));

    /// The whole run fails while the isolate has the stopped thread still to join.
    #[tinyio::coroutine]
    fn outer(release: Event, timed_out: Event) -> () {
        yield_!(timed_out.wait());
        release.set();
        tinyio::bail!("outer failure");
    }

    #[tinyio::coroutine]
    fn times_out(release: Event, timed_out: Event) -> () {
        let running = Event::new();
        let work = blocking(running.clone(), release).share();
        yield_!(background(work.clone()));
        yield_!(running.wait());
        yield_!(tinyio::timeout(work, Duration::from_millis(1)));
        timed_out.set();
        yield_!(forever(()));
    }

    let error = within(20, || {
        let (release, timed_out) = (Event::new(), Event::new());
        let inner = isolate(times_out(release.clone(), timed_out.clone()));
        Loop::new().run((inner, outer(release, timed_out))).unwrap_err()
    });
    assert_eq!(ENDED.load(Ordering::SeqCst), 2, "joined before run returned");
    let group = error.group().expect("the thread's error is grouped");
    assert_eq!(group[0].to_string(), "outer failure");
    assert_eq!(group[1].to_string(), "the thread's own error");
}

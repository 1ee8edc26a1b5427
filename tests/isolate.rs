//! `isolate` and `copy`: a nested loop stepped by the outer one, whose errors stay inside it,
//! and the hand-over of results between loops.
//!
//! Tests that could hang if the loops did not make progress together run under a watchdog
//! thread, so that a hang fails the test instead of stalling the suite.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{DropGuard, dropped, forever, payload_str, within};
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
    if isolated {
        yield_!(isolate(c))?
    } else {
        yield_!(c)
    }
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
        let (q1, q2, q3, q4) = (
            OneSlot::default(),
            OneSlot::default(),
            OneSlot::default(),
            OneSlot::default(),
        );
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
        assert_eq!(
            dropped(&INNER),
            3,
            "every inner coroutine's destructors ran"
        );
        // ...while the outer sibling, started alongside, is still going.
        assert_eq!(dropped(&OUTER), 0, "the outer sibling was not cancelled");
        let error = result.unwrap_err();
        assert!(
            !error.is_cancelled(),
            "the original error comes back, not a cancellation"
        );
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
        yield_!((
            watches(DropGuard(&INNER)),
            forever(DropGuard(&INNER)),
            until_stopped(running)
        ));
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
        yield_!(isolate((
            forever(DropGuard(&INNER)),
            forever(DropGuard(&INNER)),
            tells(inside)
        )))?;
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
        .run([
            try_add_three(0),
            try_add_three(1),
            try_add_three(2),
            try_add_three(5),
        ])
        .unwrap();
    assert_eq!(
        out,
        [
            (Ok(3), 1),
            (Ok(4), 2),
            (Err("got three".to_string()), 3),
            (Ok(8), 6)
        ],
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
    assert_eq!(
        Rc::strong_count(&value),
        1,
        "nothing kept a copy of the value"
    );
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
    assert!(
        message.contains("slow"),
        "the message names the coroutine: {message}"
    );
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
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
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

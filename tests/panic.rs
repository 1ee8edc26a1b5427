//! Panics are fatal: the loop cancels everything else, then resumes the panic out of `Loop::run`
//! with its original payload, as `std::thread::scope` does. The loop is usable afterwards.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{dropped, forever, payload_str};
use tinyio::{Loop, background, sleep};

/// Counts its drop, and records whether a panic was unwinding through it then: a coroutine
/// cancelled by the loop is dropped before the panic resumes out of `run`, so never while
/// unwinding.
struct Witness {
    drops: &'static AtomicUsize,
    dropped_while_unwinding: &'static AtomicBool,
}

impl Drop for Witness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dropped_while_unwinding.store(true, Ordering::SeqCst);
        }
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[tinyio::coroutine]
fn pauser(witness: Witness) -> () {
    let _witness = witness;
    loop {
        yield_!();
    }
}

#[tinyio::coroutine]
fn panics_after(pauses: u32) -> u32 {
    for _ in 0..pauses {
        yield_!();
    }
    panic!("boom");
}

#[test]
fn panic_resumes_with_the_original_payload_after_cancelling_the_rest() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static UNWINDING: AtomicBool = AtomicBool::new(false);
    let witness = || Witness { drops: &DROPS, dropped_while_unwinding: &UNWINDING };
    #[tinyio::coroutine]
    fn outer(w1: Witness, w2: Witness) -> (u32, ()) {
        let _w1 = w1;
        yield_!((panics_after(3), forever(w2)))
    }
    let run = (outer(witness(), witness()), pauser(witness()), panics_after(1000));
    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    // All three witnesses (and the never-finished `panics_after(1000)`) were dropped by the
    // cancellation, not by the unwinding.
    assert_eq!(dropped(&DROPS), 3);
    assert!(!UNWINDING.load(Ordering::SeqCst));
}

#[test]
fn panic_payload_of_any_type() {
    #[derive(Debug, PartialEq)]
    struct Payload(u32);
    #[tinyio::coroutine]
    fn panics() -> () {
        yield_!();
        std::panic::panic_any(Payload(7));
    }
    let payload = catch_unwind(AssertUnwindSafe(|| {
        Loop::new().run((panics(), sleep(Duration::from_secs(3600))))
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(7)));
}

#[test]
fn panic_in_a_coroutine_that_never_yields() {
    #[tinyio::coroutine]
    // The expansion binds the diverging body in a `let`: clippy then flags the user's code.
    #[allow(clippy::diverging_sub_expression)]
    fn panics() -> u32 {
        panic!("at once {}", 1);
    }
    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(panics()))).unwrap_err();
    assert_eq!(payload_str(&*payload), "at once 1");
}

#[test]
fn panic_wins_over_errors() {
    #[tinyio::coroutine]
    fn fails() -> () {
        yield_!();
        yield_!();
        tinyio::bail!("an error after the panic");
    }
    let payload =
        catch_unwind(AssertUnwindSafe(|| Loop::new().run((panics_after(1), fails())))).unwrap_err();
    assert_eq!(payload_str(&*payload), "boom");
}

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

#[test]
fn panic_in_a_destructor_during_cancellation() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static UNWINDING: AtomicBool = AtomicBool::new(false);
    let witness = || Witness { drops: &DROPS, dropped_while_unwinding: &UNWINDING };
    #[tinyio::coroutine]
    fn bad_cleanup() -> () {
        let _bomb = PanicOnDrop("destructor panicked");
        loop {
            yield_!(sleep(Duration::from_secs(3600)));
        }
    }
    #[tinyio::coroutine]
    fn fails() -> () {
        yield_!();
        tinyio::bail!("the original error");
    }
    let run = (forever(witness()), bad_cleanup(), pauser(witness()), fails());
    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
    assert_eq!(payload_str(&*payload), "destructor panicked");
    // The others were still cancelled, before the panic resumed.
    assert_eq!(dropped(&DROPS), 2);
    assert!(!UNWINDING.load(Ordering::SeqCst));
}

#[test]

fn panic_in_a_destructor_of_a_never_started_coroutine() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static UNWINDING: AtomicBool = AtomicBool::new(false);
    let witness = || Witness { drops: &DROPS, dropped_while_unwinding: &UNWINDING };
    #[tinyio::coroutine]
    fn holds(bomb: PanicOnDrop) -> () {
        let _bomb = bomb;
        yield_!();
    }
    #[tinyio::coroutine]
    // The expansion binds the diverging body in a `let`: clippy then flags the user's code.
    #[allow(clippy::diverging_sub_expression)]
    fn fails() -> () {
        tinyio::bail!("the original error");
    }
    // `fails` fails at its first resume: `holds` and the last `sleeper` never start.
    let run = (
        forever(witness()),
        fails(),
        holds(PanicOnDrop("destructor panicked")),
        forever(witness()),
    );
    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
    assert_eq!(payload_str(&*payload), "destructor panicked");
    assert_eq!(dropped(&DROPS), 2);
    assert!(!UNWINDING.load(Ordering::SeqCst));
}

#[test]
fn panic_inside_a_nested_loop() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static UNWINDING: AtomicBool = AtomicBool::new(false);
    #[tinyio::coroutine]
    fn inner() -> () {
        yield_!(background(forever(Witness {
            drops: &DROPS,
            dropped_while_unwinding: &UNWINDING
        })));
        yield_!(panics_after(2));
    }
    #[tinyio::coroutine]
    fn outer() -> () {
        yield_!();
        Loop::new().run(inner())?;
    }
    let run = (outer(), pauser(Witness { drops: &DROPS, dropped_while_unwinding: &UNWINDING }));
    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(run))).unwrap_err();
    assert_eq!(payload_str(&*payload), "boom");
    // The inner loop's sleeper and the outer loop's pauser.
    assert_eq!(dropped(&DROPS), 2);
    assert!(!UNWINDING.load(Ordering::SeqCst));
}

#[test]
fn loop_usable_after_a_panic() {
    let lp = Loop::new();
    for _ in 0..3 {
        let payload = catch_unwind(AssertUnwindSafe(|| lp.run(panics_after(2)))).unwrap_err();
        assert_eq!(payload_str(&*payload), "boom");
        #[tinyio::coroutine]
        fn fine() -> u32 {
            yield_!(sleep(Duration::from_millis(1)));
            5
        }
        assert_eq!(lp.run(fine()).unwrap(), 5);
    }
}

#[test]
fn panic_in_a_shared_coroutine() {
    // Two waiters on a shared coroutine that panics: the panic comes out once, and the shared
    // coroutine is dead afterwards, not resumed again.
    #[tinyio::coroutine]
    fn wait(s: tinyio::Shared<u32>) -> u32 {
        yield_!(s)
    }
    let s = panics_after(2).share();
    let lp = Loop::new();
    let run = (wait(s.clone()), wait(s.clone()));
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(run))).unwrap_err();
    assert_eq!(payload_str(&*payload), "boom");
    let err = lp.run(s).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
}

#[test]

fn panic_dropping_an_unread_output() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static UNWINDING: AtomicBool = AtomicBool::new(false);
    #[tinyio::coroutine]
    fn output_bomb() -> PanicOnDrop {
        yield_!();
        PanicOnDrop("output destructor panicked")
    }
    #[tinyio::coroutine]
    fn root() -> () {
        // Nobody reads the output: the loop drops it when the coroutine finishes.
        yield_!(background(output_bomb()));
        yield_!(forever(Witness { drops: &DROPS, dropped_while_unwinding: &UNWINDING }));
    }
    let lp = Loop::new();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(root()))).unwrap_err();
    assert_eq!(payload_str(&*payload), "output destructor panicked");
    assert_eq!(dropped(&DROPS), 1);
    assert!(!UNWINDING.load(Ordering::SeqCst));
}

/// A future that is ready at once and panics when dropped.
struct ReadyThenBomb;

impl std::future::Future for ReadyThenBomb {
    type Output = u32;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u32> {
        std::task::Poll::Ready(7)
    }
}

impl Drop for ReadyThenBomb {
    fn drop(&mut self) {
        panic!("finished leaf's destructor panicked");
    }
}

#[test]
fn panic_dropping_a_leaf_that_just_finished() {
    // The leaf's body is dropped as it finishes, held by its waiter or alone in the table
    // (beside a sibling in a gather); either way the panic resumes out of `run`, after the
    // rest is cancelled, and the loop runs again afterwards.
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static UNWINDING: AtomicBool = AtomicBool::new(false);
    #[tinyio::coroutine]
    fn held() -> u32 {
        yield_!(tinyio::from_future(ReadyThenBomb))
    }
    #[tinyio::coroutine]
    fn in_a_gather() -> u32 {
        let (x, ()) = yield_!((tinyio::from_future(ReadyThenBomb), sleep(Duration::ZERO)));
        x
    }
    let lp = Loop::new();
    for (i, root) in [held(), in_a_gather()].into_iter().enumerate() {
        let witness = forever(Witness { drops: &DROPS, dropped_while_unwinding: &UNWINDING });
        let payload = catch_unwind(AssertUnwindSafe(|| lp.run((root, witness)))).unwrap_err();
        assert_eq!(payload_str(&*payload), "finished leaf's destructor panicked");
        assert_eq!(dropped(&DROPS), i + 1, "the rest was cancelled");
    }
    assert!(!UNWINDING.load(Ordering::SeqCst));
    assert_eq!(lp.run(sleep(Duration::ZERO)).unwrap(), ());
}

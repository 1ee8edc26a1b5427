//! A second tester's pass over the one-state coroutine: shared coroutines yielded again after
//! they ended in every way, from a loop nested in their own body; destructors that panic while
//! a misbehaving coroutine is ended; events set from other threads while their waits time out;
//! wakers kept and woken after their wait ended.

mod common;

use std::cell::RefCell;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::time::Duration;

use common::payload_str;
use tinyio::{Error, Event, Loop, Race2, Shared, cancellable, isolate, race, sleep, timeout};

thread_local! {
    static ME: RefCell<Option<Shared<u32>>> = const { RefCell::new(None) };
}

/// Reads its own handle, formats it, and runs it in a loop nested in its own body.
#[tinyio::coroutine]
fn selfish() -> u32 {
    let me = ME.with_borrow(|me| me.clone()).expect("set before the run");
    let shown = format!("{me:?}");
    assert!(shown.contains("finished: false"), "{shown}");
    let error = Loop::new().run(me).unwrap_err();
    assert!(
        error.to_string().contains("`selfish` is running: this loop runs inside it"),
        "from inside its own body: {error}"
    );
    yield_!();
    7
}

#[test]
fn a_shared_coroutine_yielded_from_a_loop_nested_in_its_own_body() {
    let me = selfish().share();
    ME.with_borrow_mut(|slot| *slot = Some(me.clone()));
    let lp = Loop::new();
    assert_eq!(lp.run(me.clone()).unwrap(), 7);
    assert_eq!(lp.run(me.clone()).unwrap(), 7, "kept");
    assert_eq!(Loop::new().run(me.clone()).unwrap(), 7, "kept, in another loop");
    assert!(format!("{me:?}").contains("finished: true"));
    ME.with_borrow_mut(|slot| *slot = None);
}

#[test]
fn a_shared_leaf_yielded_from_a_loop_nested_in_its_own_poll() {
    let slot: std::rc::Rc<RefCell<Option<Shared<u32>>>> = Default::default();
    let inside = slot.clone();
    let me = tinyio::from_future(poll_fn(move |_| {
        let me = inside.borrow().clone().expect("set before the run");
        assert!(format!("{me:?}").contains("finished: false"));
        let error = Loop::new().run(me).unwrap_err();
        assert!(error.to_string().contains("is running: this loop runs inside it"), "{error}");
        Poll::Ready(3)
    }))
    .share();
    *slot.borrow_mut() = Some(me.clone());
    assert_eq!(Loop::new().run((me.clone(), me.clone())).unwrap(), (3, 3));
    *slot.borrow_mut() = None;
}

#[tinyio::coroutine]
fn fails_later() -> u32 {
    yield_!();
    tinyio::bail!("it failed");
}

#[tinyio::coroutine]
fn never() -> u32 {
    loop {
        yield_!(sleep(Duration::from_secs(3600)));
    }
}

/// Yields `s` in an isolate and gives the error it raised.
#[tinyio::coroutine]
fn again(s: Shared<u32>) -> String {
    let error: Error = yield_!(isolate(s)).unwrap_err();
    error.to_string()
}

/// `s` yielded again: in the same run (through `first`, which ended it), a later run of the same
/// loop, and another loop; each error must contain `says`.
fn check_yielded_again(s: &Shared<u32>, lp: &Loop, says: &str) {
    for message in [
        lp.run(again(s.clone())).unwrap(),
        Loop::new().run(again(s.clone())).unwrap(),
        lp.run(s.clone()).unwrap_err().to_string(),
    ] {
        assert!(message.contains(says), "{says:?} not in {message:?}");
    }
}

#[test]
fn shared_coroutines_yielded_again_after_they_ended_every_way() {
    // Failed: its run failed with its error.
    let lp = Loop::new();
    let s = fails_later().share();
    assert_eq!(lp.run(s.clone()).unwrap_err().to_string(), "it failed");
    check_yielded_again(&s, &lp, "failed, so it has no output");

    // Cancelled when its run failed.
    let s = never().share();
    #[tinyio::coroutine]
    fn gather(s: Shared<u32>) -> (u32, u32) {
        yield_!((s, fails_later()))
    }
    assert!(lp.run(gather(s.clone())).is_err());
    check_yielded_again(&s, &lp, "cancelled when its run");

    // Stopped by a timeout, then yielded again in the same run.
    let s = never().share();
    #[tinyio::coroutine]
    fn timed(s: Shared<u32>) -> String {
        yield_!(tinyio::background(s.clone()));
        yield_!();
        assert_eq!(yield_!(timeout(s.clone(), Duration::ZERO)), None);
        yield_!(again(s))
    }
    let message = lp.run(timed(s.clone())).unwrap();
    assert!(message.contains("stopped by a timeout"), "{message}");
    check_yielded_again(&s, &lp, "stopped by a timeout");

    // Withdrawn by its handle.
    let s = never().share();
    #[tinyio::coroutine]
    fn withdrawn(s: Shared<u32>) -> String {
        let (wait, handle) = cancellable(s.clone());
        yield_!(tinyio::background(s.clone()));
        yield_!();
        handle.cancel();
        assert_eq!(yield_!(wait), None);
        yield_!(again(s))
    }
    let message = lp.run(withdrawn(s.clone())).unwrap();
    assert!(message.contains("`CancelHandle` or a `race`"), "{message}");
    check_yielded_again(&s, &lp, "`CancelHandle` or a `race`");

    // Lost a race.
    let s = never().share();
    #[tinyio::coroutine]
    fn raced(s: Shared<u32>) -> String {
        let won = yield_!(race((s.clone(), sleep(Duration::ZERO))));
        assert!(matches!(won, Race2::Second(())));
        yield_!(again(s))
    }
    let message = lp.run(raced(s.clone())).unwrap();
    assert!(message.contains("`CancelHandle` or a `race`"), "{message}");
    check_yielded_again(&s, &lp, "`CancelHandle` or a `race`");
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor panicked");
    }
}

/// Holds a bomb, and yields again when it is told to stop instead of propagating the error.
#[tinyio::coroutine]
fn stubborn() -> u32 {
    let _bomb = PanicOnDrop;
    loop {
        let _ = tinyio::try_yield!(sleep(Duration::from_secs(3600)));
    }
}

/// Holds a bomb, and returns a value when it is told to stop.
#[tinyio::coroutine]
fn returns_anyway() -> u32 {
    let _bomb = PanicOnDrop;
    let _ = tinyio::try_yield!(sleep(Duration::from_secs(3600)));
    std::mem::forget(_bomb);
    5
}

/// Runs `y` and expects the destructor's panic to resume out of `run`, silencing its message.
fn expect_bomb<Y: tinyio::Yieldable>(case: &str, y: Y)
where
    Y::Output: std::fmt::Debug,
{
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if payload_str(info.payload()) != "destructor panicked" {
                default(info);
            }
        }));
    });
    let payload = match catch_unwind(AssertUnwindSafe(|| Loop::new().run(y))) {
        Ok(outcome) => panic!("{case}: no panic, but {outcome:?}"),
        Err(payload) => payload,
    };
    assert_eq!(payload_str(&*payload), "destructor panicked");
}

#[tinyio::coroutine]
fn under_timeout(s: Shared<u32>) -> Option<u32> {
    yield_!(tinyio::background(s.clone()));
    yield_!();
    yield_!(timeout(s, Duration::ZERO))
}

#[tinyio::coroutine]
fn fails_soon() -> u32 {
    yield_!();
    yield_!();
    tinyio::bail!("the original error");
}

#[test]
fn a_misbehaving_coroutine_whose_destructor_panics_as_it_is_ended() {
    // Stopped by a timeout: it yields again, and is ended.
    expect_bomb("under_timeout(stubborn().share())", under_timeout(stubborn().share()));
    // Cancelled by a crash: it yields again, and is ended.
    expect_bomb("(stubborn(), fails_soon())", (stubborn(), fails_soon()));
    // Cancelled by its isolate's failure.
    #[tinyio::coroutine]
    fn isolated() -> u32 {
        let out = yield_!(isolate((stubborn(), fails_soon())));
        assert!(out.is_err());
        0
    }
    expect_bomb("isolated()", isolated());
    // Withdrawn by a race it lost.
    #[tinyio::coroutine]
    fn loses() -> () {
        yield_!(race((stubborn(), sleep(Duration::ZERO))));
    }
    expect_bomb("loses()", loses());
    // Never started, cancelled by a crash: dropped, not resumed.
    #[tinyio::coroutine]
    #[allow(clippy::diverging_sub_expression)]
    fn fails_now() -> u32 {
        tinyio::bail!("the original error");
    }
    #[tinyio::coroutine]
    fn holds(bomb: PanicOnDrop) -> u32 {
        let _bomb = bomb;
        yield_!();
        0
    }
    expect_bomb("(fails_now(), holds(..))", (fails_now(), holds(PanicOnDrop)));
    // Never started, cancelled by its isolate's failure.
    #[tinyio::coroutine]
    fn isolated_never_started() -> u32 {
        let out = yield_!(isolate((fails_now(), holds(PanicOnDrop))));
        assert!(out.is_err());
        0
    }
    expect_bomb("isolate((fails_now(), holds(..)))", isolated_never_started());
    // Never started, withdrawn by a race another runner won at its first resume.
    #[tinyio::coroutine]
    fn loses_unstarted() -> () {
        yield_!(race((sleep(Duration::ZERO), holds(PanicOnDrop))));
    }
    expect_bomb("race((sleep, holds(..)))", loses_unstarted());
    // Returns a value after its cancellation: the misbehaviour is an error, not a panic.
    let error = Loop::new().run((returns_anyway(), fails_soon())).unwrap_err();
    assert!(format!("{error:?}").contains("the original error"), "{error:?}");
}

#[test]
fn events_set_from_other_threads_while_their_waits_time_out() {
    let lp = Loop::new();
    for round in 0..2000 {
        let event = Event::new();
        let (go, started) = mpsc::channel::<()>();
        let setter = {
            let event = event.clone();
            std::thread::spawn(move || {
                started.recv().unwrap();
                event.set();
            })
        };
        #[tinyio::coroutine]
        fn waits(event: Event, go: mpsc::Sender<()>, round: u64) -> bool {
            go.send(()).unwrap();
            // Alternate the held wait with one in the table beside a pause.
            if round.is_multiple_of(2) {
                yield_!(event.wait_timeout(Duration::from_micros(round % 50)))
            } else {
                let (set, ()) = yield_!((
                    event.wait_timeout(Duration::from_micros(round % 50)),
                    sleep(Duration::ZERO)
                ));
                set
            }
        }
        let set = lp.run(waits(event.clone(), go, round)).unwrap();
        setter.join().unwrap();
        // Whatever the timing, a wait now sees the event set at once.
        assert!(lp.run(event.wait_timeout(Duration::ZERO)).unwrap(), "{round}");
        lp.run(event.wait()).unwrap();
        let _ = set;
    }
}

/// Keeps the waker it is polled with, and is done at once.
fn keeps_its_waker(kept: Arc<Mutex<Option<Waker>>>) -> tinyio::Coro<()> {
    tinyio::from_future(poll_fn(move |cx| {
        *kept.lock().unwrap() = Some(cx.waker().clone());
        Poll::Ready(())
    }))
}

#[test]
fn a_waker_kept_after_its_wait_ended_wakes_nothing_wrongly() {
    for held in [true, false] {
        let kept: Arc<Mutex<Option<Waker>>> = Default::default();
        let (event, other) = (Event::new(), Event::new());
        let (to_waker, waking) = mpsc::channel::<()>();
        let (done_waking, waked) = mpsc::channel::<()>();
        let thread = {
            let (kept, event) = (kept.clone(), event.clone());
            std::thread::spawn(move || {
                waking.recv().unwrap();
                let waker = kept.lock().unwrap().clone().unwrap();
                for _ in 0..10_000 {
                    waker.wake_by_ref();
                }
                done_waking.send(()).unwrap();
                // The last wake-up comes after the set: the wait has ended by then, or not.
                event.set();
                waker.wake();
            })
        };
        #[tinyio::coroutine]
        fn waits(
            kept: Arc<Mutex<Option<Waker>>>,
            event: Event,
            other: Event,
            go: mpsc::Sender<()>,
            waked: mpsc::Receiver<()>,
            held: bool,
        ) -> bool {
            // Held: the same token, so the very same waker, is handed to the event.
            if held {
                yield_!(keeps_its_waker(kept));
            } else {
                yield_!((keeps_its_waker(kept), sleep(Duration::ZERO)));
            }
            go.send(()).unwrap();
            let out = if held {
                yield_!(event.wait_timeout(Duration::from_secs(3600)))
            } else {
                let (a, b) = yield_!((
                    event.wait_timeout(Duration::from_secs(3600)),
                    tinyio::timeout(other.wait(), Duration::from_secs(3600))
                ));
                assert_eq!(b, Some(()));
                a
            };
            // The wait ended only once the event was set, after every stale wake-up.
            waked.try_recv().expect("woken by the set, not by a stale waker");
            out
        }
        #[tinyio::coroutine]
        fn sets_other(other: Event, event: Event) -> () {
            yield_!(event.wait());
            other.set();
        }
        let lp = Loop::new();
        let out = lp
            .run((
                waits(kept.clone(), event.clone(), other.clone(), to_waker, waked, held),
                sets_other(other.clone(), event.clone()),
            ))
            .unwrap();
        assert!(out.0);
        thread.join().unwrap();
        // And in a later run of the same loop, where tokens repeat.
        let waker = kept.lock().unwrap().clone().unwrap();
        let late = Event::new();
        #[tinyio::coroutine]
        fn wakes_then_sets(waker: Waker, late: Event) -> () {
            for _ in 0..100 {
                waker.wake_by_ref();
                yield_!();
            }
            late.set();
        }
        let (set, ()) = lp
            .run((
                late.wait_timeout(Duration::from_secs(3600)),
                wakes_then_sets(waker, late.clone()),
            ))
            .unwrap();
        assert!(set);
    }
}

#[test]
fn a_held_channel_receive_or_semaphore_acquire_woken_by_a_stale_waker_keeps_its_place() {
    let kept: Arc<Mutex<Option<Waker>>> = Default::default();
    let (tx, rx) = tinyio::channel::<u32>(1);
    let semaphore = tinyio::Semaphore::new(1);
    let order: std::rc::Rc<RefCell<Vec<&'static str>>> = Default::default();
    #[tinyio::coroutine]
    fn first(
        rx: tinyio::Receiver<u32>,
        semaphore: tinyio::Semaphore,
        order: std::rc::Rc<RefCell<Vec<&'static str>>>,
    ) -> (Option<u32>, ()) {
        let got = yield_!(rx.recv());
        let _permit = yield_!(semaphore.acquire());
        order.borrow_mut().push("first");
        yield_!();
        (got, ())
    }
    #[tinyio::coroutine]
    fn stale(
        kept: Arc<Mutex<Option<Waker>>>,
        rx: tinyio::Receiver<u32>,
        semaphore: tinyio::Semaphore,
        order: std::rc::Rc<RefCell<Vec<&'static str>>>,
    ) -> (Option<u32>, ()) {
        yield_!(keeps_its_waker(kept)); // held: its waker is the one its next waits get
        yield_!();
        let got = yield_!(rx.recv()); // in line after `first`
        let _permit = yield_!(semaphore.acquire());
        order.borrow_mut().push("stale");
        (got, ())
    }
    #[tinyio::coroutine]
    fn driver(
        kept: Arc<Mutex<Option<Waker>>>,
        tx: tinyio::Sender<u32>,
        semaphore: tinyio::Semaphore,
    ) -> () {
        let permit = yield_!(semaphore.acquire());
        for _ in 0..10 {
            yield_!(); // both receivers queue up, `first` ahead
        }
        let waker = kept.lock().unwrap().clone().unwrap();
        yield_!(tx.send(1)).unwrap();
        for _ in 0..10 {
            waker.wake_by_ref(); // `stale` polled again: the value is promised to `first`
            yield_!();
        }
        yield_!(tx.send(2)).unwrap();
        for _ in 0..10 {
            yield_!(); // both queue for the permit, `first` ahead
        }
        drop(permit);
        for _ in 0..10 {
            waker.wake_by_ref();
            yield_!();
        }
    }
    let ((a, ()), (b, ()), ()) = Loop::new()
        .run((
            first(rx.clone(), semaphore.clone(), order.clone()),
            stale(kept.clone(), rx, semaphore.clone(), order.clone()),
            driver(kept, tx, semaphore),
        ))
        .unwrap();
    assert_eq!((a, b), (Some(1), Some(2)), "first in line, first served");
    assert_eq!(*order.borrow(), ["first", "stale"]);
}

thread_local! {
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// On drop, formats its coroutine's own handle and yields it from a new loop.
struct LooksBack(std::rc::Rc<RefCell<Option<Shared<u32>>>>);

impl Drop for LooksBack {
    fn drop(&mut self) {
        let me = self.0.borrow_mut().take().expect("set before the run");
        let shown = format!("{me:?}");
        let error = Loop::new().run(me).unwrap_err().to_string();
        SEEN.with_borrow_mut(|seen| seen.extend([shown, error]));
    }
}

#[tinyio::coroutine]
fn looks_back(me: std::rc::Rc<RefCell<Option<Shared<u32>>>>) -> u32 {
    let _guard = LooksBack(me);
    loop {
        yield_!(sleep(Duration::from_secs(3600)));
    }
}

#[test]
fn a_coroutine_cleaning_up_after_a_timeout_is_seen_as_running_by_its_own_destructors() {
    let slot: std::rc::Rc<RefCell<Option<Shared<u32>>>> = Default::default();
    let me = looks_back(slot.clone()).share();
    *slot.borrow_mut() = Some(me.clone());
    assert_eq!(Loop::new().run(under_timeout(me)).unwrap(), None);
    let seen = SEEN.with_borrow_mut(std::mem::take);
    assert!(seen[0].contains("finished: false"), "{seen:?}");
    // Its locals drop as its body propagates the timeout: it is still running.
    assert!(seen[1].contains("is running: this loop runs inside it"), "{seen:?}");
}

#[test]
fn a_coroutine_cleaning_up_after_a_crash_is_seen_as_running_by_its_own_destructors() {
    let slot: std::rc::Rc<RefCell<Option<Shared<u32>>>> = Default::default();
    let me = looks_back(slot.clone()).share();
    *slot.borrow_mut() = Some(me.clone());
    let error = Loop::new().run((me, fails_soon())).unwrap_err();
    assert_eq!(error.to_string(), "the original error");
    let seen = SEEN.with_borrow_mut(std::mem::take);
    assert!(seen[1].contains("is running: this loop runs inside it"), "{seen:?}");
}

/// Holds a guard that looks back at it, and yields again when it is told to stop: the loop
/// then ends it, dropping the guard.
#[tinyio::coroutine]
fn stubborn_looks_back(me: std::rc::Rc<RefCell<Option<Shared<u32>>>>) -> u32 {
    let _guard = LooksBack(me);
    loop {
        let _ = tinyio::try_yield!(sleep(Duration::from_secs(3600)));
    }
}

#[tinyio::coroutine]
fn withdraws(s: Shared<u32>) -> Option<u32> {
    let (wait, handle) = cancellable(s.clone());
    yield_!(tinyio::background(s));
    yield_!();
    handle.cancel();
    yield_!(wait)
}

/// A misbehaving coroutine is ended by the loop (not by its own body): its destructors see how
/// it ended, which must be what stopped it, not a failed run or isolate.
#[test]
fn a_misbehaving_coroutine_ended_by_a_timeout_or_a_handle_is_seen_so_by_its_destructors() {
    type Stop = fn(Shared<u32>) -> tinyio::Coro<Option<u32>>;
    let cases: [(Stop, &str); 2] =
        [(under_timeout, "stopped by a timeout"), (withdraws, "`CancelHandle` or a `race`")];
    for (stop, says) in cases {
        let slot: std::rc::Rc<RefCell<Option<Shared<u32>>>> = Default::default();
        let me = stubborn_looks_back(slot.clone()).share();
        *slot.borrow_mut() = Some(me.clone());
        let error = Loop::new().run(stop(me)).unwrap_err();
        assert!(error.to_string().contains("did not respond properly"), "{error}");
        let seen = SEEN.with_borrow_mut(std::mem::take);
        assert!(seen[1].contains(says), "{says:?} not in {seen:?}");
    }
}

/// Returns a value when it is told to stop, instead of propagating the error.
#[tinyio::coroutine]
fn answers_anyway() -> u32 {
    let _ = tinyio::try_yield!(sleep(Duration::from_secs(3600)));
    5
}

/// A shared coroutine that returned a value after a timeout stopped it misbehaved: it failed
/// its run or its isolate, and has no output to give afterwards.
#[test]
fn a_shared_coroutine_that_returns_after_a_timeout_gives_no_output_afterwards() {
    #[tinyio::coroutine]
    fn isolated(s: Shared<u32>) -> String {
        let out = yield_!(isolate(under_timeout(s.clone())));
        assert!(out.unwrap_err().to_string().contains("did not respond properly"));
        yield_!(again(s))
    }
    let lp = Loop::new();
    let s = answers_anyway().share();
    let message = lp.run(isolated(s.clone())).unwrap();
    assert!(message.contains("no output to give"), "{message}");
    assert!(!format!("{s:?}").contains("finished: true"));
    let s = answers_anyway().share();
    let error = lp.run(under_timeout(s.clone())).unwrap_err();
    assert!(error.to_string().contains("did not respond properly"), "{error}");
    check_yielded_again(&s, &lp, "no output to give");
}

struct BombFuture(Arc<std::sync::atomic::AtomicUsize>);

impl std::future::Future for BombFuture {
    type Output = u32;
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<u32> {
        Poll::Ready(1)
    }
}

impl Drop for BombFuture {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        panic!("destructor panicked");
    }
}

/// A finished leaf whose future panics as it is dropped: dropped once, the panic resumes out of
/// the run, and a shared one is failed afterwards.
#[test]
fn a_leaf_whose_future_panics_on_drop_once_it_is_ready() {
    for shared in [false, true] {
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        #[tinyio::coroutine]
        fn waits(f: tinyio::Coro<u32>) -> u32 {
            yield_!(f)
        }
        let leaf = tinyio::from_future(BombFuture(drops.clone()));
        if shared {
            let s = leaf.share();
            expect_bomb("shared", (s.clone(), s.clone()));
            let error = Loop::new().run(s).unwrap_err().to_string();
            assert!(error.contains("failed, so it has no output"), "{error}");
        } else {
            expect_bomb("held", waits(leaf));
        }
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

#[tinyio::coroutine]
fn until(event: Event) -> u32 {
    yield_!(event.wait());
    5
}

#[tinyio::coroutine]
fn trivial() -> () {}

/// Runs a nested loop that yields `shared`, suspended in the outer run, behind enough
/// coroutines of its own that the nested table holds one of them at `shared`'s key there.
#[tinyio::coroutine]
fn nested_yield(shared: Shared<u32>, event: Event) -> () {
    yield_!(); // `shared` is scheduled and suspended in the outer run by now
    let own: Vec<_> = (0..8).map(|_| trivial()).collect();
    let error = Loop::new().run((own, shared)).unwrap_err();
    assert!(
        error.to_string().contains("`until` has already started in another loop run"),
        "a coroutine of the outer run, yielded where the nested table's slot is taken: {error}"
    );
    event.set();
}

#[test]
fn a_coroutine_of_an_outer_run_is_refused_by_a_nested_one_whose_table_is_fuller() {
    let event = Event::new();
    let shared = until(event.clone()).share();
    let lp = Loop::new();
    let (five, ()) = lp.run((shared.clone(), nested_yield(shared, event))).unwrap();
    assert_eq!(five, 5);
}

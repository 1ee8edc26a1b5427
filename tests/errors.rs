//! Errors and cancellation, ported from Python tinyio's `tests/test_errors.py` (names follow the
//! Python ones, without the `test_` prefix): cycles, misbehaving cancellation, propagation with its
//! trace in the three error-group modes, and what an error value can do.

mod common;

use std::cell::{Cell, RefCell};
use std::error::Error as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use common::{DropGuard, dropped, names};
use tinyio::{Error, ErrorGroup, Event, Loop, Shared, background, isolate, sleep, timeout};

const MODES: [ErrorGroup; 3] = [ErrorGroup::Auto, ErrorGroup::Never, ErrorGroup::Always];

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("oh no")]
struct OhNo;

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("kapow")]
struct Kapow;

type Slot = Rc<RefCell<Option<Shared<u32>>>>;

fn slot() -> Slot {
    Rc::new(RefCell::new(None))
}

/// Waits on whatever `next` holds by then.
#[tinyio::coroutine]
fn cycle_a(next: Slot, guard: DropGuard) -> u32 {
    let _guard = guard;
    yield_!();
    let next = next.borrow_mut().take().expect("filled before the run");
    yield_!(next) + 1
}

#[tinyio::coroutine]
fn cycle_b(next: Slot, guard: DropGuard) -> u32 {
    let _guard = guard;
    yield_!();
    let next = next.borrow_mut().take().expect("filled before the run");
    yield_!(next) + 1
}

#[tinyio::coroutine]
fn cycle_c(next: Slot, guard: DropGuard) -> u32 {
    let _guard = guard;
    yield_!();
    let next = next.borrow_mut().take().expect("filled before the run");
    yield_!(next) + 1
}

#[test]
fn cycle() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    for mode in MODES {
        let (to_b, to_a) = (slot(), slot());
        let a = cycle_a(to_b.clone(), DropGuard(&DROPS)).share();
        let b = cycle_b(to_a.clone(), DropGuard(&DROPS)).share();
        *to_b.borrow_mut() = Some(b.clone());
        *to_a.borrow_mut() = Some(a.clone());
        let before = dropped(&DROPS);
        let err = Loop::new().error_group(mode).run((a, b)).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("cycle detected"), "{message}");
        assert!(message.contains("cycle_a") && message.contains("cycle_b"), "{message}");
        match mode {
            ErrorGroup::Always => {
                assert!(err.group().unwrap()[1..].iter().all(Error::is_cancelled))
            }
            _ => assert!(err.group().is_none(), "{err:?}"),
        }
        // Both were cancelled, so the reference cycle through their bodies is broken.
        assert_eq!(dropped(&DROPS) - before, 2);
        assert!(to_a.borrow().is_none() && to_b.borrow().is_none());
    }
}

#[test]
fn cycle_of_three() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (to_b, to_c, to_a) = (slot(), slot(), slot());
    let a = cycle_a(to_b.clone(), DropGuard(&DROPS)).share();
    let b = cycle_b(to_c.clone(), DropGuard(&DROPS)).share();
    let c = cycle_c(to_a.clone(), DropGuard(&DROPS)).share();
    *to_b.borrow_mut() = Some(b);
    *to_c.borrow_mut() = Some(c);
    *to_a.borrow_mut() = Some(a.clone());
    // Only `a` is given to the run: `b` and `c` are found through it.
    let err = Loop::new().run(a).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cycle detected"), "{message}");
    for name in ["cycle_a", "cycle_b", "cycle_c"] {
        assert!(message.contains(name), "{name} missing in: {message}");
    }
    assert_eq!(dropped(&DROPS), 3);
}

#[test]
fn cycle_through_itself() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let me = slot();
    let a = cycle_a(me.clone(), DropGuard(&DROPS)).share();
    *me.borrow_mut() = Some(a.clone());
    let err = Loop::new().run(a).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cycle detected"), "{message}");
    assert!(message.contains("cycle_a"), "{message}");
    assert_eq!(dropped(&DROPS), 1);
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    YieldAgain,
    ReturnValue,
    NewError,
}

#[derive(Debug, thiserror::Error)]
#[error("raised while cancelled")]
struct NewError;

#[derive(Debug, thiserror::Error)]
#[error("the original error")]
struct Original;

/// Catches its cancellation and answers it with `answer` instead of propagating it.
#[tinyio::coroutine]
fn stubborn(answer: Answer, guard: DropGuard) -> u32 {
    let _guard = guard;
    match try_yield!(sleep(Duration::from_secs(60))) {
        Ok(()) => 0,
        Err(cancelled) => {
            assert!(cancelled.is_cancelled(), "{cancelled:?}");
            match answer {
                Answer::YieldAgain => {
                    yield_!();
                    1
                }
                Answer::ReturnValue => 2,
                Answer::NewError => Err::<u32, _>(NewError)?,
            }
        }
    }
}

/// Waits on a cycle, and answers the cancellation with `answer`.
#[tinyio::coroutine]
fn cycle_wrapper(answer: Answer, a: Shared<u32>, b: Shared<u32>) -> u32 {
    match try_yield!((a, b)) {
        Ok((a, b)) => a + b,
        Err(cancelled) => {
            assert!(cancelled.is_cancelled(), "{cancelled:?}");
            match answer {
                Answer::YieldAgain => {
                    yield_!();
                    1
                }
                Answer::ReturnValue => 2,
                Answer::NewError => Err::<u32, _>(NewError)?,
            }
        }
    }
}

#[test]
fn cycle_misbehaving_coroutine() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    for answer in [Answer::YieldAgain, Answer::ReturnValue, Answer::NewError] {
        for mode in MODES {
            let (to_b, to_a) = (slot(), slot());
            let a = cycle_a(to_b.clone(), DropGuard(&DROPS)).share();
            let b = cycle_b(to_a.clone(), DropGuard(&DROPS)).share();
            *to_b.borrow_mut() = Some(b.clone());
            *to_a.borrow_mut() = Some(a.clone());
            let run = cycle_wrapper(answer, a, b);
            let err = Loop::new().error_group(mode).run(run).unwrap_err();
            let context = format!("{answer:?} in {mode:?}: {err:?}");
            assert!(err.is_cancelled(), "{context}");
            assert!(err.to_string().contains("cycle detected"), "{context}");
            match (mode, err.group()) {
                (ErrorGroup::Never, group) => assert!(group.is_none(), "{context}"),
                (_, Some(group)) => {
                    assert!(group[0].to_string().contains("cycle detected"), "{context}");
                    assert!(!group[1].is_cancelled(), "{context}");
                    assert_eq!(names(&group[1]), ["cycle_wrapper"], "{context}");
                }
                (_, None) => panic!("the misbehaviour is not reported: {context}"),
            }
        }
    }
}

#[tinyio::coroutine]
fn fails_after_a_pause() -> u32 {
    yield_!();
    Err(Original)?
}

#[test]
fn misbehaving_cancellation() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    for answer in [Answer::YieldAgain, Answer::ReturnValue, Answer::NewError] {
        for mode in MODES {
            let before = dropped(&DROPS);
            let run = (fails_after_a_pause(), stubborn(answer, DropGuard(&DROPS)));
            let err = Loop::new().error_group(mode).run(run).unwrap_err();
            let context = format!("{answer:?} in {mode:?}: {err:?}");
            // The original error still comes out, and the coroutine was dropped, not left hanging.
            assert!(err.downcast_ref::<Original>().is_some(), "{context}");
            assert_eq!(names(&err), ["fails_after_a_pause"], "{context}");
            assert_eq!(dropped(&DROPS) - before, 1, "{context}");
            if let ErrorGroup::Never = mode {
                assert!(err.group().is_none(), "{context}");
                continue;
            }
            let group = err.group().expect(&context);
            assert!(group[0].downcast_ref::<Original>().is_some(), "{context}");
            let report = &group[1];
            match answer {
                Answer::NewError => {
                    assert!(report.downcast_ref::<NewError>().is_some(), "{context}")
                }
                Answer::YieldAgain | Answer::ReturnValue => {
                    let message = report.to_string();
                    assert!(
                        message.contains("did not respond properly to cancellation"),
                        "{context}"
                    );
                    assert!(message.contains("stubborn"), "{context}");
                    let what = match answer {
                        Answer::YieldAgain => "yielded again",
                        _ => "returned a value",
                    };
                    assert!(message.contains(what), "{context}");
                    assert!(!report.is_cancelled(), "{context}");
                }
            }
            assert_eq!(names(report), ["stubborn"], "{context}");
            match mode {
                ErrorGroup::Auto => assert_eq!(group.len(), 2, "{context}"),
                // Then the clean cancellations: the 60 s sleep, which never started.
                ErrorGroup::Always => {
                    assert_eq!(group.len(), 3, "{context}");
                    assert!(group[2].is_cancelled(), "{context}");
                    assert_eq!(names(&group[2]), ["sleep"], "{context}");
                }
                ErrorGroup::Never => unreachable!(),
            }
        }
    }
}

#[test]
fn misbehaving_cancellation_does_not_hang() {
    // Yielding something long-running again must not keep the loop waiting on it.
    #[tinyio::coroutine]
    fn stubborn_sleeper() -> () {
        if try_yield!(sleep(Duration::from_secs(60))).is_err() {
            yield_!(sleep(Duration::from_secs(60)));
        }
    }
    let start = std::time::Instant::now();
    let err = Loop::new().run((fails_after_a_pause(), stubborn_sleeper())).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(err.downcast_ref::<Original>().is_some(), "{err:?}");
    let group = err.group().expect("the misbehaviour is reported");
    assert!(group[1].to_string().contains("did not respond properly"), "{err:?}");
}

#[test]
fn what_a_misbehaving_coroutine_yields_when_cancelled_is_dropped() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);

    #[tinyio::coroutine]
    fn holds(guard: DropGuard) -> () {
        let _guard = guard;
        yield_!();
    }

    #[tinyio::coroutine]
    fn stubborn_yielder() -> () {
        if try_yield!(sleep(Duration::from_secs(60))).is_err() {
            yield_!(holds(DropGuard(&DROPS)));
        }
    }

    // Cancelled because another coroutine failed.
    let before = dropped(&DROPS);
    let err = Loop::new().run((fails_after_a_pause(), stubborn_yielder())).unwrap_err();
    assert!(err.downcast_ref::<Original>().is_some(), "{err:?}");
    assert_eq!(dropped(&DROPS) - before, 1, "{err:?}");

    // Stopped by a timeout.
    let before = dropped(&DROPS);
    let err =
        Loop::new().run(tinyio::timeout(stubborn_yielder(), common::head_start())).unwrap_err();
    assert!(err.to_string().contains("did not respond properly"), "{err:?}");
    assert_eq!(dropped(&DROPS) - before, 1, "{err:?}");
}

#[tinyio::coroutine]
fn f() -> u32 {
    yield_!(g())
}

#[tinyio::coroutine]
fn g() -> u32 {
    yield_!(g2())
}

#[tinyio::coroutine]
fn g2() -> u32 {
    yield_!(h())
}

#[tinyio::coroutine]
fn h() -> u32 {
    yield_!(i())
}

static RAISED_AT: AtomicU32 = AtomicU32::new(0);

#[tinyio::coroutine]
fn i() -> u32 {
    RAISED_AT.store(line!() + 1, Ordering::SeqCst);
    Err(OhNo)?
}

fn check_propagated(err: &Error) {
    assert_eq!(err.downcast_ref::<OhNo>(), Some(&OhNo));
    assert_eq!(names(err), ["f", "g", "g2", "h", "i"]);
    for frame in err.trace() {
        assert!(frame.file().ends_with("errors.rs"), "{frame}");
    }
    assert_eq!(err.trace()[4].line(), RAISED_AT.load(Ordering::SeqCst));
}

#[test]
fn propagation() {
    for mode in [ErrorGroup::Auto, ErrorGroup::Never] {
        let err = Loop::new().error_group(mode).run(f()).unwrap_err();
        assert!(err.group().is_none(), "{err:?}");
        check_propagated(&err);
    }
}

#[test]

fn propagation_always_group() {
    let err = Loop::new().error_group(ErrorGroup::Always).run(f()).unwrap_err();
    check_propagated(&err);
    let group = err.group().expect("always a group");
    assert_eq!(group.len(), 1, "{err:?}");
    check_propagated(&group[0]);
}

#[tinyio::coroutine]
fn sibling_f(cancelled: Rc<Cell<bool>>, guard: DropGuard) -> ((), ()) {
    yield_!((sibling_g(), sibling_h(cancelled, guard)))
}

#[tinyio::coroutine]
fn sibling_g() -> () {
    yield_!(sibling_i())
}

#[tinyio::coroutine]
fn sibling_h(cancelled: Rc<Cell<bool>>, guard: DropGuard) -> () {
    let _guard = guard;
    loop {
        if let Err(e) = try_yield!(sleep(Duration::from_secs(1))) {
            assert!(e.is_cancelled(), "{e:?}");
            cancelled.set(true);
            return Err(e)?;
        }
    }
}

#[tinyio::coroutine]
fn sibling_i() -> () {
    yield_!();
    Err(Kapow)?
}

fn check_kapow(err: &Error) {
    assert_eq!(err.downcast_ref::<Kapow>(), Some(&Kapow), "{err:?}");
    assert!(err.to_string().contains("kapow"), "{err}");
    assert_eq!(names(err), ["sibling_f", "sibling_g", "sibling_i"]);
}

#[test]
fn cancelling_coroutines_not_affecting_current_error() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    for mode in [ErrorGroup::Auto, ErrorGroup::Never] {
        let before = dropped(&DROPS);
        let cancelled = Rc::new(Cell::new(false));
        let err = Loop::new()
            .error_group(mode)
            .run(sibling_f(cancelled.clone(), DropGuard(&DROPS)))
            .unwrap_err();
        assert!(cancelled.get());
        assert_eq!(dropped(&DROPS) - before, 1);
        assert!(err.group().is_none(), "{err:?}");
        check_kapow(&err);
    }
}

fn cancellation_names(group: &[Error]) -> Vec<Vec<&'static str>> {
    let mut out: Vec<_> = group.iter().map(names).collect();
    out.sort();
    out
}

#[test]
fn cancelling_coroutines_always_group_lists_cancellations() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let cancelled = Rc::new(Cell::new(false));
    let err = Loop::new()
        .error_group(ErrorGroup::Always)
        .run(sibling_f(cancelled.clone(), DropGuard(&DROPS)))
        .unwrap_err();
    assert!(cancelled.get());
    assert_eq!(dropped(&DROPS), 1);
    check_kapow(&err);
    let group = err.group().expect("always a group");
    check_kapow(&group[0]);
    assert!(group[1..].iter().all(Error::is_cancelled), "{err:?}");
    // `sibling_h` and its sleep were cancelled; so were `sibling_f` and `sibling_g`, but the
    // trace of the original error already stands for them.
    let cancelled_names = cancellation_names(&group[1..]);
    assert!(cancelled_names.contains(&vec!["sibling_h"]), "{err:?}");
    assert!(cancelled_names.contains(&vec!["sleep"]), "{err:?}");
}

#[test]

fn cancelling_coroutines_always_group_exact() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let cancelled = Rc::new(Cell::new(false));
    let err = Loop::new()
        .error_group(ErrorGroup::Always)
        .run(sibling_f(cancelled, DropGuard(&DROPS)))
        .unwrap_err();
    let group = err.group().expect("always a group");
    assert_eq!(cancellation_names(&group[1..]), [vec!["sibling_h"], vec!["sleep"]], "{err:?}");
}

#[tinyio::coroutine]
fn new_cancel_f(ready: Event) -> ((), ()) {
    yield_!((new_cancel_g(ready.clone()), new_cancel_h(ready)))
}

#[tinyio::coroutine]
fn new_cancel_g(ready: Event) -> () {
    yield_!(new_cancel_i(ready))
}

#[tinyio::coroutine]
fn new_cancel_h(ready: Event) -> () {
    ready.set();
    loop {
        if try_yield!(sleep(Duration::from_secs(1))).is_err() {
            return Err(Error::cancelled())?;
        }
    }
}

#[tinyio::coroutine]
fn new_cancel_i(ready: Event) -> () {
    yield_!(ready.wait());
    Err(Kapow)?
}

#[test]
fn catch_cancelled_raise_new_cancelled() {
    for mode in MODES {
        let err = Loop::new().error_group(mode).run(new_cancel_f(Event::new())).unwrap_err();
        assert_eq!(err.downcast_ref::<Kapow>(), Some(&Kapow), "{err:?}");
        assert_eq!(names(&err), ["new_cancel_f", "new_cancel_g", "new_cancel_i"]);
        match mode {
            ErrorGroup::Auto | ErrorGroup::Never => assert!(err.group().is_none(), "{err:?}"),
            ErrorGroup::Always => {
                let group = err.group().unwrap();
                assert_eq!(group[0].downcast_ref::<Kapow>(), Some(&Kapow));
                assert!(group[1..].iter().all(Error::is_cancelled), "{err:?}");
                let cancelled = cancellation_names(&group[1..]);
                assert!(cancelled.contains(&vec!["new_cancel_h"]), "{err:?}");
                assert!(cancelled.contains(&vec!["sleep"]), "{err:?}");
            }
        }
    }
}

#[test]

fn catch_cancelled_raise_new_cancelled_always_group_exact() {
    let err =
        Loop::new().error_group(ErrorGroup::Always).run(new_cancel_f(Event::new())).unwrap_err();
    let group = err.group().unwrap();
    assert_eq!(cancellation_names(&group[1..]), [vec!["new_cancel_h"], vec!["sleep"]], "{err:?}");
}

#[test]
fn errors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
    let err = Loop::new().run(f()).unwrap_err();
    let (display, trace) =
        std::thread::spawn(move || (err.to_string(), names(&err))).join().unwrap();
    assert_eq!(display, "oh no");
    assert_eq!(trace, ["f", "g", "g2", "h", "i"]);
}

#[test]
fn formatting() {
    let err = Loop::new().run(f()).unwrap_err();
    assert_eq!(err.to_string(), "oh no");
    let debug = format!("{err:?}");
    let alternate = format!("{err:#}");
    for text in [&debug, &alternate] {
        assert!(text.starts_with("oh no"), "{text}");
        // The trace, outermost first, one line per frame.
        let positions: Vec<usize> = err
            .trace()
            .iter()
            .map(|frame| {
                let line = format!("{} at {}:{}", frame.name(), frame.file(), frame.line());
                text.find(&line).unwrap_or_else(|| panic!("{line} missing in {text}"))
            })
            .collect();
        assert!(positions.is_sorted(), "{text}");
    }
}

#[test]
fn formatting_a_group() {
    let err = Loop::new()
        .error_group(ErrorGroup::Always)
        .run(sibling_f(Rc::new(Cell::new(false)), DropGuard(&NO_COUNT)))
        .unwrap_err();
    let count = err.group().unwrap().len() - 1;
    let display = err.to_string();
    assert!(display.contains("kapow"), "{display}");
    assert!(display.contains(&count.to_string()), "{display}");
    let debug = format!("{err:?}");
    assert!(debug.contains("original error"), "{debug}");
    assert!(debug.contains("sibling_i at"), "{debug}");
    assert!(debug.contains("sibling_h at"), "{debug}");
}

static NO_COUNT: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, thiserror::Error)]
#[error("could not load the configuration")]
struct LoadError {
    #[source]
    source: std::io::Error,
}

#[tinyio::coroutine]
fn load() -> String {
    yield_!();
    let io = std::io::Error::new(std::io::ErrorKind::NotFound, "config.toml is missing");
    Err(LoadError { source: io })?
}

#[test]
fn source_chain_kept() {
    for mode in MODES {
        let err = Loop::new().error_group(mode).run((load(), fails_after_a_pause())).unwrap_err();
        // `load` fails first: `fails_after_a_pause` is cancelled before it can.
        assert_eq!(err.group().is_some(), mode == ErrorGroup::Always, "{err:?}");
        assert!(err.to_string().contains("could not load"), "{err}");
        let load = err.downcast_ref::<LoadError>().expect("the original error");
        assert_eq!(load.source.kind(), std::io::ErrorKind::NotFound);
        // The trace comes first in the chain, then the original's sources.
        let trace = err.source().expect("the trace");
        assert_eq!(trace.to_string(), format!("in coroutine {}", err.trace()[0]));
        let source = trace.source().expect("the original's source");
        let io = source.downcast_ref::<std::io::Error>().expect("an io::Error");
        assert_eq!(io.to_string(), "config.toml is missing");
        assert!(source.source().is_none());
    }
}

#[test]
fn downcast() {
    let err = Loop::new().run(f()).unwrap_err();
    assert_eq!(err.downcast_ref::<OhNo>(), Some(&OhNo));
    assert!(err.downcast_ref::<Kapow>().is_none());
    assert!(err.downcast_ref::<std::io::Error>().is_none());
    assert!(!err.is_cancelled() && !err.is_timeout() && !err.is_stopped());
}

#[test]
fn bail() {
    #[tinyio::coroutine]
    fn check(x: u32) -> u32 {
        yield_!();
        if x > 3 {
            tinyio::bail!("{x} is too big, max {}", 3);
        }
        x
    }
    #[tinyio::coroutine]
    fn outer(x: u32) -> u32 {
        yield_!(check(x)) + 1
    }
    assert_eq!(Loop::new().run(outer(2)).unwrap(), 3);
    let err = Loop::new().run(outer(5)).unwrap_err();
    assert_eq!(err.to_string(), "5 is too big, max 3");
    assert_eq!(names(&err), ["outer", "check"]);
    assert!(err.downcast_ref::<OhNo>().is_none());
    assert!(!err.is_cancelled());
}

#[test]
fn question_mark_on_tinyio_error_is_not_nested() {
    #[tinyio::coroutine]
    fn nested_run() -> u32 {
        yield_!();
        Loop::new().run(f())?
    }
    let err = Loop::new().run(nested_run()).unwrap_err();
    assert_eq!(err.downcast_ref::<OhNo>(), Some(&OhNo));
    assert_eq!(err.to_string(), "oh no");
    // The trace of the inner loop is kept, after the coroutine of the outer loop.
    assert_eq!(names(&err), ["nested_run", "f", "g", "g2", "h", "i"]);
}

#[tinyio::coroutine]
fn fails_at_once() -> u32 {
    tinyio::bail!("at once")
}

const NEVER_STARTED_LINE: u32 = line!() + 2;
#[tinyio::coroutine]
fn never_started() -> u32 {
    1
}

#[tinyio::coroutine]
fn fails_before_its_sibling_starts() -> (u32, u32) {
    yield_!((fails_at_once(), never_started()))
}

#[test]
fn a_coroutine_cancelled_before_it_started_is_placed_at_its_definition() {
    let err = Loop::new()
        .error_group(ErrorGroup::Always)
        .run(fails_before_its_sibling_starts())
        .unwrap_err();
    let group = err.group().expect("always a group");
    let never = group[1..]
        .iter()
        .find(|e| names(e) == ["never_started"])
        .unwrap_or_else(|| panic!("never_started is listed as cancelled: {err:?}"));
    let frame = &never.trace()[0];
    assert_eq!((frame.file(), frame.line()), (file!(), NEVER_STARTED_LINE));
}

/// Ten thread calls that answer their cancellation with an error of their own, and one coroutine
/// that fails once all ten are running: each thread is one member of the group, as its own
/// error in every mode that lists errors, never again as a clean cancellation.
#[test]
fn a_thread_answering_cancellation_with_an_error_is_listed_once() {
    #[derive(Debug, thiserror::Error)]
    #[error("thread {0} gave up")]
    struct GaveUp(usize);

    #[tinyio::coroutine]
    fn fails_when_all_run(running: Event) -> () {
        yield_!(running.wait());
        tinyio::bail!("the original error");
    }

    for mode in MODES {
        let running = Event::new();
        let started = std::sync::Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let (running, started) = (running.clone(), started.clone());
                tinyio::try_run_in_thread(move || {
                    if started.fetch_add(1, Ordering::SeqCst) == 9 {
                        running.set();
                    }
                    while !tinyio::thread::is_cancelled() {
                        std::thread::park();
                    }
                    Err::<(), _>(GaveUp(i))
                })
            })
            .collect();
        let err =
            Loop::new().error_group(mode).run((calls, fails_when_all_run(running))).unwrap_err();
        assert!(err.to_string().contains("the original error"), "{err:?}");
        match mode {
            ErrorGroup::Never => assert!(err.group().is_none(), "{err:?}"),
            ErrorGroup::Auto | ErrorGroup::Always => {
                let group = err.group().expect("ten threads failed while cancelling");
                assert_eq!(group[0].to_string(), "the original error");
                assert_eq!(group.len(), 11, "{err:?}");
                let mut gave_up: Vec<_> = group[1..]
                    .iter()
                    .map(|e| e.downcast_ref::<GaveUp>().expect("a thread's own error").0)
                    .collect();
                gave_up.sort();
                assert_eq!(gave_up, (0..10).collect::<Vec<_>>());
            }
        }
    }
}

/// A coroutine that answers its cancellation with a timeout error (one caught earlier) has not
/// propagated its cancellation: the error is listed beside the original one, as any other
/// error would be, whether the whole run fails or only an isolate.
#[test]
fn a_timeout_error_does_not_answer_a_cancellation() {
    type Stash = Rc<RefCell<Option<Error>>>;
    /// Stopped by a timeout: keeps the timeout error, and fails with another.
    #[tinyio::coroutine]
    fn keeps_its_timeout(stash: Stash, started: Event) -> () {
        started.set();
        let timeout = try_yield!(sleep(Duration::from_secs(3600))).unwrap_err();
        assert!(timeout.is_timeout(), "{timeout:?}");
        *stash.borrow_mut() = Some(timeout);
        Err(Original)?
    }
    /// Answers its cancellation with the error kept by then.
    #[tinyio::coroutine]
    fn answers_with(stash: Stash) -> () {
        let cancelled = try_yield!(sleep(Duration::from_secs(3600))).unwrap_err();
        assert!(cancelled.is_cancelled(), "{cancelled:?}");
        Err(stash.borrow_mut().take().expect("kept"))?
    }
    #[tinyio::coroutine]
    fn times_out(stash: Stash) -> () {
        let started = Event::new();
        let keeps = keeps_its_timeout(stash, started.clone()).share();
        // Started first, so that the timeout stops it suspended rather than never started.
        yield_!(background(keeps.clone()));
        yield_!(started.wait());
        yield_!(timeout(keeps, Duration::ZERO));
    }
    #[tinyio::coroutine]
    fn isolated(stash: Stash) -> Error {
        yield_!(isolate((times_out(stash.clone()), answers_with(stash)))).unwrap_err()
    }
    let stash = Stash::default();
    let crashed = Loop::new().run((times_out(stash.clone()), answers_with(stash))).unwrap_err();
    let stash = Stash::default();
    let caught = Loop::new().run(isolated(stash)).unwrap();
    for err in [crashed, caught] {
        let group = err.group().unwrap_or_else(|| panic!("not listed: {err:?}"));
        assert_eq!(group.len(), 2, "{err:?}");
        assert!(group[0].downcast_ref::<Original>().is_some(), "{err:?}");
        assert!(group[1].is_timeout(), "{err:?}");
        assert_eq!(names(&group[1]), ["answers_with"], "{err:?}");
    }
}

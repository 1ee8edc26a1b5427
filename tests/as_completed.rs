//! `as_completed`: outputs in the order they complete, whatever order the handles are awaited in.
//!
//! The naps end at times counted from one instant, taken before the run: their order does not
//! depend on how far apart the loop starts them.

mod common;

use common::under_valgrind;
use std::time::{Duration, Instant};

use tinyio::{Coro, Loop, as_completed, sleep_until};

/// Sleeps until `millis` after `start`.
#[tinyio::coroutine]
fn nap(start: Instant, millis: u64) -> u64 {
    yield_!(sleep_until(start + Duration::from_millis(millis)));
    millis
}

/// A nap for each of `millis`, from now.
fn naps(millis: Vec<u64>) -> impl Iterator<Item = Coro<u64>> {
    let start = Instant::now();
    millis.into_iter().map(move |m| nap(start, m))
}

#[tinyio::coroutine]
fn in_completion_order(millis: Vec<u64>) -> Vec<u64> {
    let mut seen = Vec::new();
    for next in yield_!(as_completed(naps(millis))) {
        seen.push(yield_!(next));
    }
    seen
}

#[test]
fn test_as_completed() {
    let start = Instant::now();
    let out = Loop::new().run(in_completion_order(vec![300, 100, 200])).unwrap();
    let elapsed = start.elapsed();
    // In completion order; one after the other would have given the order asked.
    assert_eq!(out, [100, 200, 300]);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    // A loop that slept past its timers would show here; under valgrind only the order counts.
    if !under_valgrind() {
        assert!(elapsed < Duration::from_secs(5), "about 0.3 s expected, took {elapsed:?}");
    }
}

/// Takes every handle first, then awaits them last to first.
#[tinyio::coroutine]
fn awaited_in_reverse(millis: Vec<u64>) -> Vec<u64> {
    let handles: Vec<Coro<u64>> = yield_!(as_completed(naps(millis))).collect();
    let mut seen = Vec::new();
    for handle in handles.into_iter().rev() {
        seen.push(yield_!(handle));
    }
    seen
}

#[test]
fn test_as_completed_out_of_order() {
    let out = Loop::new().run(awaited_in_reverse(vec![300, 100, 200])).unwrap();
    // The last handle is the last to complete, whenever it is awaited.
    assert_eq!(out, [300, 200, 100]);
}

#[tinyio::coroutine]
fn awaited_together(millis: Vec<u64>) -> Vec<u64> {
    let handles: Vec<_> = yield_!(as_completed(naps(millis))).collect();
    yield_!(handles)
}

#[test]
fn as_completed_handles_gathered() {
    let out = Loop::new().run(awaited_together(vec![30, 10, 20])).unwrap();
    assert_eq!(out, [10, 20, 30]);
}

#[tinyio::coroutine]
fn count_empty() -> usize {
    let completions = yield_!(as_completed(Vec::<Coro<u64>>::new()));
    assert_eq!(completions.len(), 0);
    completions.count()
}

#[test]
fn as_completed_of_nothing() {
    assert_eq!(Loop::new().run(count_empty()).unwrap(), 0);
}

#[tinyio::coroutine]
fn first_only(millis: Vec<u64>) -> u64 {
    let mut completions = yield_!(as_completed(naps(millis)));
    assert_eq!(completions.len(), 3);
    let first = yield_!(completions.next().unwrap());
    assert_eq!(completions.len(), 2);
    first
}

#[test]
fn as_completed_runs_the_rest_even_if_only_the_first_is_awaited() {
    let start = Instant::now();
    assert_eq!(Loop::new().run(first_only(vec![150, 10, 100])).unwrap(), 10);
    // The others were started in the background: the run still waits for them.
    assert!(start.elapsed() >= Duration::from_millis(150), "{:?}", start.elapsed());
}

/// A completion whose coroutine did not finish (here it failed inside an isolate, which keeps
/// the failure) raises a cancellation where it is awaited, rather than wait forever.
#[test]
fn a_completion_of_a_coroutine_that_did_not_finish_raises() {
    use std::cell::RefCell;
    use std::rc::Rc;

    #[tinyio::coroutine]
    fn fails() -> u64 {
        yield_!();
        tinyio::bail!("lost");
    }

    #[tinyio::coroutine]
    fn hands_out(out: Rc<RefCell<Vec<Coro<u64>>>>) -> () {
        let completions = yield_!(as_completed(vec![fails()]));
        out.borrow_mut().extend(completions);
    }

    #[tinyio::coroutine]
    fn awaits_after_the_failure() -> u64 {
        let out = Rc::new(RefCell::new(Vec::new()));
        let failed = yield_!(tinyio::isolate(hands_out(out.clone()))).unwrap_err();
        assert_eq!(failed.to_string(), "lost");
        let next = out.borrow_mut().pop().expect("handed out");
        yield_!(next)
    }

    let err = common::within(20, || Loop::new().run(awaits_after_the_failure()).unwrap_err());
    assert!(err.is_cancelled(), "{err:?}");
    assert!(err.to_string().contains("did not finish"), "{err}");
}

//! A new user's pass over the API: errors mixed with `anyhow` and boxed errors both ways, the
//! combinators nested in each other, and what a stall report says about them.

mod common;

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ms, names, within};
use tinyio::{Error, Event, Loop, isolate, timeout};

#[derive(Debug, thiserror::Error)]
#[error("oh no")]
struct OhNo;

#[tinyio::coroutine]
fn fails() -> u32 {
    yield_!();
    Err(OhNo)?
}

// --- Stall reports ------------------------------------------------------------------------------

/// What a stall report says about each suspended coroutine, as `(name, waits_on)`, once the loop
/// running `y` stalls; the report sets `release`, which `y` waits on, to end the run.
fn stalled_on<Y: tinyio::Yieldable>(
    release: &Event,
    y: Y,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lp = Loop::new().stall_report(ms(20), {
        let (seen, release) = (seen.clone(), release.clone());
        move |stall| {
            let mut seen = seen.lock().unwrap();
            if seen.is_empty() {
                for s in stall.coroutines() {
                    seen.push((s.frame().name(), s.waits_on().to_vec()));
                }
            }
            release.set();
        }
    });
    lp.run(y).unwrap();
    seen.lock().unwrap().clone()
}

#[tinyio::coroutine]
fn waits_in_isolate(release: Event) -> () {
    yield_!(isolate(release.wait()))?;
}

#[test]
fn a_stalled_isolate_names_the_leaf_it_runs() {
    let release = Event::new();
    let seen = within(60, move || stalled_on(&release.clone(), waits_in_isolate(release)));
    assert_eq!(
        seen,
        [("waits_in_isolate", vec!["isolate"]), ("isolate", vec!["Event::wait"])],
        "an isolate that waits on a leaf says which, rather than \"waits on \" and nothing"
    );
}

#[tinyio::coroutine]
fn waits_in_nested_combinators(release: Event) -> () {
    let hour = Duration::from_secs(3600);
    let (work, _handle) = tinyio::cancellable(timeout(isolate(release.wait()), hour));
    yield_!(work);
}

#[test]
fn a_stall_inside_nested_combinators_names_every_level() {
    let release = Event::new();
    let seen =
        within(60, move || stalled_on(&release.clone(), waits_in_nested_combinators(release)));
    assert_eq!(
        seen,
        [
            ("waits_in_nested_combinators", vec!["cancellable"]),
            ("cancellable", vec!["timeout"]),
            ("timeout", vec!["isolate"]),
            ("isolate", vec!["Event::wait"]),
        ]
    );
}

// --- Errors mixed with `anyhow` and boxed errors ------------------------------------------------

/// Runs `fails` in a loop of its own, and raises what comes out, through a `Box<dyn Error>`.
#[tinyio::coroutine]
fn reraises_boxed() -> u32 {
    let result: Result<u32, Box<dyn StdError + Send + Sync>> =
        Loop::new().run(fails()).map_err(Into::into);
    result?
}

#[test]
fn a_tinyio_error_raised_back_through_a_box_keeps_its_type_and_its_trace() {
    let err = Loop::new().run(reraises_boxed()).unwrap_err();
    assert!(err.downcast_ref::<OhNo>().is_some());
    assert_eq!(names(&err), ["reraises_boxed", "fails"]);
    let boxed: Box<dyn StdError + Send + Sync> = err.into();
    let err = boxed.downcast_ref::<Error>().expect("the very same tinyio::Error");
    assert_eq!(names(err), ["reraises_boxed", "fails"]);
    // Its source chain: the trace on one line, then the original error's own sources (none).
    let chain: Vec<String> =
        std::iter::successors(boxed.source(), |&e| e.source()).map(ToString::to_string).collect();
    assert_eq!(chain.len(), 1, "{chain:?}");
    assert!(chain[0].starts_with("in coroutine reraises_boxed at "), "{chain:?}");
    assert!(chain[0].contains(" -> fails at "), "{chain:?}");
}

/// Raises an `anyhow::Error` that holds `OhNo`.
#[tinyio::coroutine]
fn fails_with_anyhow() -> u32 {
    yield_!();
    Err(anyhow::Error::new(OhNo))?
}

/// Runs `fails` in a loop of its own behind a function returning `anyhow::Result`, and raises
/// what comes out as the error docs of `tinyio::Error` advise: taken out of the `anyhow::Error`.
#[tinyio::coroutine]
fn reraises_from_anyhow() -> u32 {
    fn helper() -> anyhow::Result<u32> {
        Ok(Loop::new().run(fails())?)
    }
    helper().map_err(|e| e.downcast::<Error>().unwrap_or_else(Error::new))?
}

#[test]
fn an_anyhow_error_keeps_its_message_and_its_chain_and_hides_its_type() {
    // As the docs of `tinyio::Error` say: anyhow boxes its error behind a private wrapper.
    let err = Loop::new().run(fails_with_anyhow()).unwrap_err();
    assert_eq!(err.to_string(), "oh no");
    assert_eq!(names(&err), ["fails_with_anyhow"]);
    assert!(err.downcast_ref::<OhNo>().is_none());
    // The way round it: take the error out of the anyhow::Error before raising it.
    let err = Loop::new().run(reraises_from_anyhow()).unwrap_err();
    assert!(err.downcast_ref::<OhNo>().is_some());
    assert_eq!(names(&err), ["reraises_from_anyhow", "fails"]);
}

#[test]
fn a_tinyio_error_in_an_anyhow_report_shows_its_trace_among_the_causes() {
    #[derive(Debug, thiserror::Error)]
    #[error("could not start")]
    struct Start(#[source] OhNo);

    #[tinyio::coroutine]
    fn start() -> u32 {
        yield_!();
        Err(Start(OhNo))?
    }

    let err = anyhow::Error::from(Loop::new().run(start()).unwrap_err()).context("booting");
    let line = format!("{err:#}");
    assert!(line.starts_with("booting: could not start: in coroutine start at "), "{line}");
    assert!(line.ends_with(": oh no"), "{line}");
    let tinyio_err = err.downcast_ref::<Error>().expect("anyhow finds it under its context");
    assert_eq!(names(tinyio_err), ["start"]);
    assert!(tinyio_err.downcast_ref::<Start>().is_some());
    let alternate = format!("{tinyio_err:#}");
    assert!(alternate.starts_with("could not start\ncoroutine trace, outermost first:\n"));
}

// --- copy into a nested loop ----------------------------------------------------------------------

#[tinyio::coroutine]
fn nap(millis: u64) -> u64 {
    yield_!(tinyio::sleep(ms(millis)));
    millis
}

/// Receives a copy in a loop nested in the very loop that makes it, which the nested run blocks:
/// the advice of the "already started in another loop run" error for a `Shared`, taken here.
#[tinyio::coroutine]
fn copy_into_a_nested_loop() -> u64 {
    let copied = yield_!(tinyio::copy(nap(5)));
    Loop::new().run(copied)?
}

#[test]
fn a_copy_received_by_a_loop_nested_in_its_maker_raises_rather_than_hang() {
    let message =
        within(30, || Loop::new().run(copy_into_a_nested_loop()).unwrap_err().to_string());
    assert!(message.contains("copy"), "{message}");
}

/// The same for `as_completed`: its completions are made by the loop that runs it.
#[tinyio::coroutine]
fn as_completed_into_a_nested_loop() -> u64 {
    let mut done = yield_!(tinyio::as_completed(vec![nap(5)]));
    Loop::new().run(done.next().expect("one"))?
}

#[test]
fn an_as_completed_received_by_a_loop_nested_in_its_maker_raises_rather_than_hang() {
    let message =
        within(30, || Loop::new().run(as_completed_into_a_nested_loop()).unwrap_err().to_string());
    assert!(
        message.contains("`as_completed` run in a loop that this one runs inside"),
        "{message}"
    );
}

/// Received in its maker's loop, after a nested loop has come and gone, it still arrives.
#[tinyio::coroutine]
fn copy_received_after_a_nested_loop() -> u64 {
    let copied = yield_!(tinyio::copy(nap(5)));
    Loop::new().run(nap(1))?;
    yield_!(copied)
}

#[test]
fn a_copy_received_in_its_makers_loop_after_a_nested_loop_arrives() {
    assert_eq!(within(30, || Loop::new().run(copy_received_after_a_nested_loop()).unwrap()), 5);
}

// --- Combinators nested in each other -------------------------------------------------------------

#[tinyio::coroutine]
fn receive_or_fail(rx: tinyio::Receiver<u32>, fail: bool) -> Option<u32> {
    let got = yield_!(rx.recv());
    if fail {
        tinyio::bail!("failed after receiving {got:?}");
    }
    got
}

/// A race of timeouts of isolates of channel receives: the first to finish wins, with an error
/// caught by its isolate as its output; the losers are stopped without taking a value.
#[tinyio::coroutine]
fn race_of_timeouts_of_isolates() -> (usize, String, Option<u32>, Option<u32>) {
    let hour = Duration::from_secs(3600);
    let (tx_a, rx_a) = tinyio::channel::<u32>(1);
    let (tx_b, rx_b) = tinyio::channel::<u32>(1);
    tx_b.try_send(9).unwrap();
    let (winner, output) = yield_!(tinyio::race([
        timeout(isolate(receive_or_fail(rx_a.clone(), false)), hour),
        timeout(isolate(receive_or_fail(rx_b.clone(), true)), hour),
    ]));
    let caught = output.expect("in time").expect_err("its isolate caught the error");
    // The loser, stopped while it waited, left its place: a value sent now stays in the channel.
    tx_a.try_send(5).unwrap();
    tx_b.try_send(6).unwrap();
    (winner, caught.to_string(), rx_a.try_recv().ok(), rx_b.try_recv().ok())
}

#[test]
fn a_race_of_timeouts_of_isolates_of_receives() {
    let (winner, caught, a, b) =
        within(60, || Loop::new().run(race_of_timeouts_of_isolates()).unwrap());
    assert_eq!(
        (winner, caught.as_str(), a, b),
        (1, "failed after receiving Some(9)", Some(5), Some(6))
    );
}

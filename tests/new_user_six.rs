//! A new user's pass over the API: errors mixed with `anyhow` and boxed errors both ways, the
//! combinators nested in each other, and what a stall report says about them.

mod common;

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ms, names, within};
use tinyio::{Error, Event, Loop, isolate, sleep, timeout};

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
    let seen = seen.lock().unwrap().clone();
    seen
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

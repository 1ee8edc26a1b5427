//! Error traces and stall reports place the built-in coroutines (`sleep`, `timeout`,
//! `Lock::lock`, ...) where the user's code called them: here, never inside tinyio.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tinyio::{
    Barrier, Coro, ErrorGroup, Event, Frame, Lock, Loop, Semaphore, ThreadPool, as_completed, copy,
    from_future, isolate, run_in_thread, sleep, sleep_until, thread, timeout, try_run_in_thread,
};

const HOUR: Duration = Duration::from_secs(3600);
const SOURCE: &str = include_str!("caller_sites.rs");

/// What the line of a frame of `name` must call, in this file.
fn calls_of(name: &str) -> &'static [&'static str] {
    match name {
        "sleep" => &["sleep(", "sleep_until("],
        "timeout" => &["timeout("],
        // Also the events a barrier and a copy wait on, placed at the barrier's `wait` and at
        // the `copy`.
        "Event::wait" => &[".wait()", ".wait_timeout(", "copy("],
        // Also the semaphore of a lock, placed at the lock's `lock`.
        "Semaphore::acquire" => &[".acquire()", ".lock()"],
        "Lock::lock" => &[".lock()", ".acquire()"],
        "Barrier::wait" => &[".wait()"],
        "as_completed" => &["as_completed("],
        "as_completed::next" => &["for next in"],
        "isolate" => &["isolate("],
        "copy" | "copy::receive" => &["copy("],
        "from_future" => &["from_future("],
        "from_tokio" => &["from_tokio("],
        "run_in_thread" => &["run_in_thread("],
        "ThreadPool::run_in_thread" => &["run_in_thread(", ".map("],
        // The coroutines of this file are suspended at a `yield_!`, or raised with `bail!`.
        _ => &["yield_!", "bail!"],
    }
}

fn assert_placed(frame: &Frame) {
    assert_eq!(frame.file(), file!(), "{frame}");
    let line = SOURCE.lines().nth(frame.line() as usize - 1).unwrap();
    let calls = calls_of(frame.name());
    assert!(
        calls.iter().any(|call| line.contains(call)),
        "{frame} is placed at `{}`, which calls none of {calls:?}",
        line.trim()
    );
}

#[tinyio::coroutine]
fn on<T: 'static>(c: Coro<T>) -> () {
    yield_!(c);
}

#[tinyio::coroutine]
fn holds<T: 'static>(guard: Coro<T>, release: Event) -> () {
    let _guard = yield_!(guard);
    yield_!(release.wait());
}

#[tinyio::coroutine]
fn copied() -> () {
    let receive = yield_!(copy(sleep(HOUR)));
    yield_!(receive);
}

#[tinyio::coroutine]
fn completions() -> () {
    let completions = yield_!(as_completed(vec![sleep(HOUR)]));
    for next in completions {
        yield_!(next);
    }
}

#[tinyio::coroutine]
fn fails_when(go: Event) -> () {
    yield_!(go.wait());
    tinyio::bail!("boom");
}

#[test]
fn built_ins_are_placed_where_they_are_called() {
    let (sem, lock, never) = (Semaphore::new(1), Lock::with_data(0u8), Event::new());
    let (barrier, pool, go) = (Barrier::new(2), ThreadPool::new(1), Event::new());
    let everything: Vec<Coro<()>> = vec![
        holds(sem.acquire(), never.clone()),
        holds(lock.lock(), never.clone()),
        on(sleep(HOUR)),
        on(sleep_until(Instant::now() + HOUR)),
        on(timeout(never.wait(), HOUR)),
        on(never.wait_timeout(HOUR)),
        on(sem.acquire()),
        on(lock.lock()),
        on(lock.acquire()),
        on(barrier.wait()),
        on(isolate(sleep(HOUR))),
        copied(),
        completions(),
        on(from_future(std::future::pending::<()>())),
        on(tinyio::from_tokio(std::future::pending::<()>())),
        on(run_in_thread(|| thread::sleep(HOUR))),
        on(try_run_in_thread(|| thread::sleep(HOUR))),
        on(pool.run_in_thread(|| thread::sleep(HOUR))),
        on(pool.map(|_| thread::sleep(HOUR), 0..2)),
        fails_when(go.clone()),
    ];
    // Once everything is suspended, the loop stalls: the report lets the last one fail, which
    // cancels the rest, each listed in the error group with its frame.
    let stalled = Arc::new(Mutex::new(Vec::new()));
    let lp = Loop::new().error_group(ErrorGroup::Always).stall_report(Duration::from_millis(1), {
        let stalled = stalled.clone();
        move |stall| {
            let frames = stall.coroutines().iter().map(|s| *s.frame());
            stalled.lock().unwrap().extend(frames);
            go.set();
        }
    });
    let err = lp.run(everything).unwrap_err();
    let group = err.group().expect("a group");
    assert_eq!(group[0].to_string(), "boom");

    let stalled = stalled.lock().unwrap();
    let traced = group.iter().flat_map(|member| member.trace());
    let mut names = BTreeSet::new();
    for frame in stalled.iter().chain(traced) {
        assert_placed(frame);
        names.insert(frame.name());
    }
    for name in [
        "sleep",
        "timeout",
        "Event::wait",
        "Semaphore::acquire",
        "Lock::lock",
        "Barrier::wait",
        "as_completed",
        "as_completed::next",
        "isolate",
        "copy",
        "copy::receive",
        "from_future",
        "from_tokio",
        "run_in_thread",
        "ThreadPool::run_in_thread",
    ] {
        assert!(names.contains(name), "no frame of {name} in {names:?}");
    }
    let stalled: BTreeSet<_> = stalled.iter().map(|frame| frame.name()).collect();
    for name in ["timeout", "Lock::lock", "Barrier::wait", "copy::receive"] {
        assert!(stalled.contains(name), "{name} not in the stall report");
    }
}

#[tinyio::coroutine]
fn inner_fails() -> u8 {
    yield_!();
    tinyio::bail!("inner");
}

#[tinyio::coroutine]
fn waits_with_timeout() -> Option<u8> {
    yield_!(timeout(inner_fails(), HOUR))
}

#[test]
fn a_trace_through_a_built_in_names_the_call() {
    let err = Loop::new().run(waits_with_timeout()).unwrap_err();
    let names: Vec<_> = err.trace().iter().map(Frame::name).collect();
    assert_eq!(names, ["waits_with_timeout", "timeout", "inner_fails"]);
    err.trace().iter().for_each(assert_placed);
}

#[test]
fn an_error_from_a_thread_is_placed_at_its_call() {
    #[tinyio::coroutine]
    fn fails_in_thread() -> u8 {
        yield_!(try_run_in_thread(|| Err::<u8, _>(std::fmt::Error)))
    }
    let err = Loop::new().run(fails_in_thread()).unwrap_err();
    let names: Vec<_> = err.trace().iter().map(Frame::name).collect();
    assert_eq!(names, ["fails_in_thread", "run_in_thread"]);
    err.trace().iter().for_each(assert_placed);
}

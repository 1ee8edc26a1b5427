//! `Loop::stall_report`: when the loop has had nothing to run for longer than the threshold
//! while coroutines are still suspended, the callback gets every suspended coroutine, where it
//! is suspended and what it waits on; once per stall.
//!
//! As documented, "nothing to run" is all that counts: a loop whose only work is a timer longer
//! than the threshold is reported too (the report then names `sleep`).

mod common;

use common::{ms, under_valgrind, within};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tinyio::{Event, Loop, Stall, run_in_thread, sleep, sleep_until};

/// One suspended coroutine of a report, as plain data.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    name: &'static str,
    file: &'static str,
    line: u32,
    waits_on: Vec<&'static str>,
}

/// One report, as plain data.
#[derive(Clone, Debug)]
struct Report {
    idle: Duration,
    coroutines: Vec<Seen>,
    text: String,
}

impl Report {
    fn of(stall: &Stall) -> Self {
        let coroutines = stall
            .coroutines()
            .iter()
            .map(|s| Seen {
                name: s.frame().name(),
                file: s.frame().file(),
                line: s.frame().line(),
                waits_on: s.waits_on().to_vec(),
            })
            .collect();
        Report { idle: stall.idle(), coroutines, text: stall.to_string() }
    }

    fn find(&self, name: &str) -> &Seen {
        self.coroutines
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("`{name}` is not in the report:\n{}", self.text))
    }
}

/// A loop whose reports are collected; the receiver hears of each report once it is collected.
fn reporting(threshold: Duration) -> (Loop, Arc<Mutex<Vec<Report>>>, Receiver<()>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let (reported, stalls) = channel();
    let lp = Loop::new().stall_report(threshold, {
        let reports = reports.clone();
        move |stall| {
            reports.lock().unwrap().push(Report::of(stall));
            let _ = reported.send(());
        }
    });
    (lp, reports, stalls)
}

/// Sets `event` from a thread, the set that was "forgotten" for a while: once the loop has
/// reported its stall, and `lasting` later, so that the stall goes on long after its report
/// (long enough for a second report, if the loop wrongly made one). Gives when it set it.
fn set_after_the_report(
    event: &Event,
    stalls: Receiver<()>,
    lasting: Duration,
) -> std::thread::JoinHandle<Instant> {
    let event = event.clone();
    std::thread::spawn(move || {
        stalls.recv().expect("a report");
        std::thread::sleep(lasting); // the stall goes on; nothing waits on how long exactly
        let at = Instant::now();
        event.set();
        at
    })
}

static WAIT_LINE: AtomicU32 = AtomicU32::new(0);

#[tinyio::coroutine]
fn waits_for_event(event: Event) -> &'static str {
    WAIT_LINE.store(line!() + 1, Ordering::SeqCst);
    yield_!(event.wait());
    "set at last"
}

#[test]
fn a_forgotten_event_set_is_reported_once() {
    let (out, reports, elapsed, set_after) = within(30, || {
        let (lp, reports, stalls) = reporting(ms(30));
        let event = Event::new();
        // Set only after the report and ten times the threshold more: one stall, one report.
        let setter = set_after_the_report(&event, stalls, ms(300));
        let start = Instant::now();
        let out = lp.run(waits_for_event(event)).unwrap();
        let set_at = setter.join().unwrap();
        let reports = reports.lock().unwrap().clone();
        (out, reports, start.elapsed(), set_at - start)
    });
    assert_eq!(out, "set at last");
    assert!(elapsed >= ms(330));
    assert_eq!(reports.len(), 1, "one report per stall: {reports:#?}");
    let report = &reports[0];
    assert!(report.idle >= ms(30), "{:?}", report.idle);
    assert!(report.idle < set_after, "reported only when the stall ended? {:?}", report.idle);

    let seen = report.find("waits_for_event");
    assert!(seen.file.ends_with("stall.rs"), "{}", seen.file);
    assert_eq!(seen.line, WAIT_LINE.load(Ordering::SeqCst), "the line of the `yield_!`");
    assert_eq!(seen.waits_on, ["Event::wait"]);
    // Leaves appear through their waiters, not on their own.
    assert_eq!(report.coroutines.len(), 1, "{}", report.text);

    let location = format!("{}:{}", seen.file, seen.line);
    assert!(report.text.contains("waits_for_event"), "{}", report.text);
    assert!(report.text.contains(&location), "{} not in:\n{}", location, report.text);
    assert!(report.text.contains("Event::wait"), "{}", report.text);
}

#[test]
fn the_callback_can_end_the_stall() {
    let event = Event::new();
    let calls = Arc::new(AtomicU32::new(0));
    let lp = Loop::new().stall_report(ms(20), {
        let (event, calls) = (event.clone(), calls.clone());
        move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            event.set();
        }
    });
    let start = Instant::now();
    assert_eq!(lp.run(waits_for_event(event)).unwrap(), "set at last");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(start.elapsed() >= ms(20));
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Every suspended coroutine is listed, each with what it waits on: other coroutines, a timer, a
/// thread, an event.
#[test]
fn the_report_lists_every_suspended_coroutine() {
    #[tinyio::coroutine]
    fn inner(event: Event) -> () {
        yield_!(event.wait());
    }

    #[tinyio::coroutine]
    fn sleeper() -> () {
        yield_!(sleep(Duration::from_secs(3600)));
    }

    /// A thread call that returns once released (or told to stop).
    #[tinyio::coroutine]
    fn threaded(release: Receiver<()>) -> () {
        yield_!(run_in_thread(move || {
            while let Err(RecvTimeoutError::Timeout) = release.recv_timeout(ms(1)) {
                if tinyio::thread::is_cancelled() {
                    break;
                }
            }
        }));
    }

    #[tinyio::coroutine]
    fn outer(event: Event, release: Receiver<()>) -> () {
        yield_!((inner(event), threaded(release)));
    }

    #[tinyio::coroutine]
    fn root(event: Event, release: Receiver<()>) -> () {
        yield_!((outer(event, release), tinyio::background(sleeper())));
    }

    let reports = within(30, || {
        let event = Event::new();
        let (release, released) = channel();
        let reports = Arc::new(Mutex::new(Vec::<Report>::new()));
        let lp = Loop::new();
        let handle = lp.stop_handle();
        // The first report releases the event and the thread call; once the sleeper is all that
        // is left, the next stall stops the loop.
        let lp = lp.stall_report(ms(30), {
            let (reports, event) = (reports.clone(), event.clone());
            move |stall| {
                let mut reports = reports.lock().unwrap();
                reports.push(Report::of(stall));
                if reports.len() == 1 {
                    event.set();
                    let _ = release.send(());
                } else if reports.last().unwrap().coroutines.len() == 1 {
                    handle.stop();
                }
            }
        });
        let error = lp.run(root(event, released)).unwrap_err();
        assert!(error.is_stopped(), "{error}");
        reports.lock().unwrap().clone()
    });
    // The stall once the event was released lists the sleeper alone.
    let last = reports.last().unwrap();
    assert_eq!(last.find("sleeper").waits_on, ["sleep"]);
    assert_eq!(last.coroutines.len(), 1, "{}", last.text);
    let report = &reports[0];
    assert_eq!(report.find("root").waits_on, ["outer"]);
    assert_eq!(report.find("outer").waits_on, ["inner", "threaded"]);
    assert_eq!(report.find("inner").waits_on, ["Event::wait"]);
    assert_eq!(report.find("threaded").waits_on, ["run_in_thread"]);
    assert_eq!(report.find("sleeper").waits_on, ["sleep"]);
    assert_eq!(report.coroutines.len(), 5, "{}", report.text);
    for seen in &report.coroutines {
        assert!(seen.file.ends_with("stall.rs"), "{seen:?}");
    }
}

#[test]
fn a_busy_loop_is_not_a_stall() {
    #[tinyio::coroutine]
    fn busy(until: Instant) -> u32 {
        let mut pauses = 0;
        while Instant::now() < until {
            yield_!();
            pauses += 1;
        }
        pauses
    }

    let (lp, reports, _) = reporting(ms(20));
    let until = Instant::now() + ms(200);
    assert!(lp.run((busy(until), busy(until))).unwrap().0 > 0);
    assert!(reports.lock().unwrap().is_empty(), "{:#?}", reports.lock().unwrap());
}

#[test]
fn short_waits_are_not_a_stall() {
    #[tinyio::coroutine]
    fn naps() -> () {
        for _ in 0..20 {
            yield_!(sleep(ms(5)));
            yield_!(run_in_thread(|| std::thread::sleep(ms(5)))); // a short wait
        }
    }

    // A waker that is late on a busy machine is still far from the threshold.
    let (lp, reports, _) = reporting(ms(1000));
    lp.run(naps()).unwrap();
    assert!(reports.lock().unwrap().is_empty(), "{:#?}", reports.lock().unwrap());
}

/// The threshold counts from the last progress, not from the start of the run: a loop that was
/// busy for a while and then waits for less than the threshold is not reported.
#[test]
fn the_threshold_counts_from_the_last_progress() {
    #[tinyio::coroutine]
    fn busy_then_wait(until: Instant, event: Event) -> () {
        while Instant::now() < until {
            yield_!();
        }
        yield_!(event.wait());
    }

    /// Sets `event` at `at`, by a timer of the loop: the loop takes in a due timer before it
    /// looks for a stall, so however late it wakes, the wait ends without a report.
    #[tinyio::coroutine]
    fn set_at(event: Event, at: Instant) -> () {
        yield_!(sleep_until(at));
        event.set();
    }

    let reports = within(30, || {
        let (lp, reports, _) = reporting(ms(150));
        let event = Event::new();
        // Busy for 200 ms, then waits 60 ms: well under the threshold of 150 ms.
        let start = Instant::now();
        lp.run((busy_then_wait(start + ms(200), event.clone()), set_at(event, start + ms(260))))
            .unwrap();
        reports.lock().unwrap().clone()
    });
    assert!(reports.is_empty(), "{reports:#?}");
}

/// As documented: nothing to run for longer than the threshold is a stall, even if a timer will
/// end it. Each sleep longer than the threshold is one stall, reported once.
#[test]
fn a_sleep_longer_than_the_threshold_is_reported_once_per_sleep() {
    // Each sleep is ten times the threshold (more under valgrind, whose threads wake late): a
    // loop that wakes late for its report must still find the sleep going on.
    let nap = if under_valgrind() { ms(2000) } else { ms(200) };

    #[tinyio::coroutine]
    fn naps(nap: Duration) -> () {
        for _ in 0..3 {
            yield_!(sleep(nap));
        }
    }

    let (lp, reports) = within(30, move || {
        let (lp, reports, _) = reporting(ms(20));
        lp.run(naps(nap)).unwrap();
        (lp, reports)
    });
    drop(lp);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 3, "{reports:#?}");
    for report in reports.iter() {
        assert_eq!(report.find("naps").waits_on, ["sleep"]);
        assert!(report.idle >= ms(20) && report.idle < nap, "{:?}", report.idle);
    }
}

/// Progress between two stalls makes them two stalls.
#[test]
fn each_stall_is_reported_once() {
    #[tinyio::coroutine]
    fn twice(first: Event, second: Event) -> () {
        yield_!(first.wait());
        yield_!(second.wait());
    }

    let reports = within(30, || {
        let (lp, reports, stalls) = reporting(ms(30));
        let (first, second) = (Event::new(), Event::new());
        // Each event is set once its stall has been reported, and some time later: the stall
        // goes on long after its report (nothing waits on how long exactly).
        let setter = {
            let (first, second) = (first.clone(), second.clone());
            std::thread::spawn(move || {
                stalls.recv().unwrap();
                std::thread::sleep(ms(200));
                first.set();
                stalls.recv().unwrap();
                std::thread::sleep(ms(200));
                second.set();
            })
        };
        lp.run(twice(first, second)).unwrap();
        setter.join().unwrap();
        reports.lock().unwrap().clone()
    });
    assert_eq!(reports.len(), 2, "{reports:#?}");
    let (a, b) = (reports[0].find("twice"), reports[1].find("twice"));
    assert_eq!(b.line, a.line + 1, "the second report is at the second `yield_!`");
}

/// A deadlock through events: each waits on an event only the other would set.
#[test]
fn a_deadlock_through_events_is_reported() {
    #[tinyio::coroutine]
    fn left(mine: Event, theirs: Event) -> () {
        yield_!(theirs.wait());
        mine.set();
    }

    #[tinyio::coroutine]
    fn right(mine: Event, theirs: Event) -> () {
        yield_!(theirs.wait());
        mine.set();
    }

    let (a, b) = (Event::new(), Event::new());
    let lp = Loop::new().stall_report(ms(20), {
        let reports_seen = (a.clone(), b.clone());
        move |stall| {
            let text = stall.to_string();
            assert!(text.contains("left"), "{text}");
            assert!(text.contains("right"), "{text}");
            // Break the deadlock.
            reports_seen.0.set();
        }
    });
    within(30, move || lp.run((left(a.clone(), b.clone()), right(b, a))).unwrap());
}

/// A thread call that ignores its cancellation until released: the call, the event that
/// releases it, and the line it was called at.
fn stubborn_call(running: &Event) -> (tinyio::Coro<()>, Event, u32) {
    let (running, release) = (running.clone(), Event::new());
    let released = release.clone();
    let called_at = line!() + 1;
    let call = run_in_thread(move || {
        running.set();
        while !released.is_set() {
            std::thread::park_timeout(ms(1));
        }
    });
    (call, release, called_at)
}

/// What a report said of the thread calls it waits for: (name, file, line) each, and its text.
type JoinReports = Arc<Mutex<Vec<(Vec<(&'static str, &'static str, u32)>, String)>>>;

/// A loop whose stall report records the thread calls it waits for, then releases them.
fn reporting_joins(release: Event) -> (Loop, JoinReports) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let lp = Loop::new().stall_report(ms(20), {
        let reports = reports.clone();
        move |stall: &Stall| {
            let joining = stall.joining().iter().map(|f| (f.name(), f.file(), f.line())).collect();
            reports.lock().unwrap().push((joining, stall.to_string()));
            release.set();
        }
    });
    (lp, reports)
}

#[tinyio::coroutine]
fn fails_once_set(running: Event) -> () {
    yield_!(running.wait());
    tinyio::bail!("failed");
}

/// A run that failed waits for its thread calls to return; one that ignores its cancellation
/// holds `run` up, and the stall report names it by its call site.
#[test]
fn a_thread_ignoring_its_cancellation_is_reported_while_the_run_waits() {
    let (err, reports, called_at) = within(30, || {
        let running = Event::new();
        let (call, release, called_at) = stubborn_call(&running);
        let (lp, reports) = reporting_joins(release);
        let err = lp.run((call, fails_once_set(running))).unwrap_err();
        let reports = reports.lock().unwrap().clone();
        (err.to_string(), reports, called_at)
    });
    assert_eq!(err, "failed");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (joining, text) = &reports[0];
    assert_eq!(*joining, [("run_in_thread", file!(), called_at)]);
    let expected = format!("waiting for run_in_thread at {}:{called_at} to return", file!());
    assert!(text.contains(&expected), "{text}");
}

/// A thread call stopped by a timeout is joined once everything else has finished; if it
/// ignores its cancellation, the report names it there too.
#[test]
fn a_thread_stopped_by_a_timeout_and_ignoring_it_is_reported() {
    #[tinyio::coroutine]
    fn stops(call: tinyio::Coro<()>, running: Event) -> Option<()> {
        let started = call.share();
        yield_!(tinyio::background(started.clone()));
        yield_!(running.wait());
        yield_!(tinyio::timeout(started, Duration::ZERO))
    }
    let (out, reports, called_at) = within(30, || {
        let running = Event::new();
        let (call, release, called_at) = stubborn_call(&running);
        let (lp, reports) = reporting_joins(release);
        let out = lp.run(stops(call, running)).unwrap();
        let reports = reports.lock().unwrap().clone();
        (out, reports, called_at)
    });
    assert_eq!(out, None);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].0, [("run_in_thread", file!(), called_at)]);
}

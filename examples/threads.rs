//! Blocking work on threads: `run_in_thread` runs every call at once, a `ThreadPool` at most a
//! few at once. The same eight calls of 200 ms each go through both, with timings.
//!
//! Run with `cargo run --example threads`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tinyio::{Loop, ThreadPool, run_in_thread};

const CALLS: u64 = 8;
const CALL: Duration = Duration::from_millis(200);

/// Stands in for blocking work (a file read, a C library call): sleeps, and counts how many
/// calls are running at the same time.
fn blocking_square(x: u64, running: &AtomicUsize, most: &AtomicUsize) -> u64 {
    let now = running.fetch_add(1, SeqCst) + 1;
    most.fetch_max(now, SeqCst);
    std::thread::sleep(CALL);
    running.fetch_sub(1, SeqCst);
    x * x
}

fn main() -> Result<(), tinyio::Error> {
    let lp = Loop::new();
    println!("{CALLS} blocking calls of {} ms each:", CALL.as_millis());

    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let calls: Vec<_> = (0..CALLS)
        .map(|x| {
            let (running, most) = (running.clone(), most.clone());
            run_in_thread(move || blocking_square(x, &running, &most))
        })
        .collect();
    let start = Instant::now();
    let squares = lp.run(calls)?;
    println!(
        "  run_in_thread:     {:>4} ms, at most {} at once -> {squares:?}",
        start.elapsed().as_millis(),
        most.load(SeqCst)
    );

    for threads in [2, 4] {
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool = ThreadPool::new(threads);
        let calls = {
            let most = most.clone();
            pool.map(move |x| blocking_square(x, &running, &most), 0..CALLS)
        };
        let start = Instant::now();
        let squares = lp.run(calls)?;
        println!(
            "  ThreadPool::new({threads}): {:>4} ms, at most {} at once -> {squares:?}",
            start.elapsed().as_millis(),
            most.load(SeqCst)
        );
    }

    println!(
        "expected: about {} ms, then {} ms, then {} ms",
        CALL.as_millis(),
        4 * CALL.as_millis(),
        2 * CALL.as_millis()
    );
    Ok(())
}

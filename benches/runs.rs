//! Runs of one loop after another: what a loop keeps between runs (its table and queues, see
//! `Room` in tinyio/src/run.rs) matters here, and in no workload of `peers.rs`, which runs each
//! loop once.
//!
//! `cargo bench --bench runs`: the median of 9 repetitions of each workload, timed with the
//! loop's drop, on one line:
//!
//! - A: one loop, 10^4 runs of a gather of 4 coroutines that each pause once (ns per run).
//! - B: a fresh loop, one run of 10^5 such coroutines (ns per coroutine).
//! - C: one loop, 10 runs of 10^5 (ns per coroutine).
//! - D: one loop, a run of 10^5 then 10^4 runs of 4 (us in all).

use std::time::{Duration, Instant};
use tinyio::{Coro, Loop};

#[tinyio::coroutine]
fn pauses(i: usize) -> usize {
    yield_!();
    i
}

#[tinyio::coroutine]
fn gather(n: usize) -> usize {
    let children: Vec<Coro<usize>> = (0..n).map(pauses).collect();
    yield_!(children).iter().sum()
}

/// Runs `lp` on a gather of `n`, `runs` times, and checks the output.
fn runs(lp: &Loop, runs: usize, n: usize) {
    for _ in 0..runs {
        assert_eq!(lp.run(gather(n)).unwrap(), n * (n - 1) / 2);
    }
}

/// The median of 9 timings of `work`, given a fresh loop to drop.
fn median(work: impl Fn(Loop)) -> Duration {
    let mut times: Vec<Duration> = (0..9)
        .map(|_| {
            let start = Instant::now();
            work(Loop::new());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let per = |d: Duration, n: f64| d.as_secs_f64() * 1e9 / n;
    let a = median(|lp| runs(&lp, 10_000, 4));
    let b = median(|lp| runs(&lp, 1, 100_000));
    let c = median(|lp| runs(&lp, 10, 100_000));
    let d = median(|lp| {
        runs(&lp, 1, 100_000);
        runs(&lp, 10_000, 4);
    });
    println!(
        "A 10^4 runs of 4: {:.0} ns/run | B 1 run of 10^5: {:.1} ns/coro | \
         C 10 runs of 10^5: {:.1} ns/coro | D 10^5 then 10^4 runs of 4: {:.0} us",
        per(a, 1e4),
        per(b, 1e5),
        per(c, 1e6),
        d.as_secs_f64() * 1e6,
    );
}

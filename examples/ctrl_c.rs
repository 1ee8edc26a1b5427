//! A long-running loop with worker threads that stops cleanly on Ctrl-C: the handler calls
//! `StopHandle::stop`, the loop cancels its coroutines, tells its threads to stop, waits for
//! them to clean up, and `run` returns an error for which `is_stopped()` is true.
//!
//! With no Ctrl-C, it stops itself the same way after a few seconds, so that it can run
//! unattended.
//!
//! Run with `cargo run --example ctrl_c`, and press Ctrl-C (or wait).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tinyio::{Coro, Loop, run_in_thread, sleep};

const STOP_BY_ITSELF_AFTER: Duration = Duration::from_secs(3);

/// Works in units of 100 ms until told to stop, then takes a moment to clean up.
fn worker(id: usize, units: Arc<AtomicUsize>) -> Coro<()> {
    run_in_thread(move || {
        let mut mine = 0;
        // `thread::sleep` returns `Err` as soon as the loop tells this thread to stop.
        while tinyio::thread::sleep(Duration::from_millis(100)).is_ok() {
            mine += 1;
            units.fetch_add(1, SeqCst);
        }
        println!("  worker {id}: told to stop after {mine} units of work; cleaning up");
        std::thread::sleep(Duration::from_millis(150));
        println!("  worker {id}: cleaned up");
    })
}

/// Prints when dropped, which cancellation does.
struct Announce(&'static str);

impl Drop for Announce {
    fn drop(&mut self) {
        println!("  {}: cancelled", self.0);
    }
}

#[tinyio::coroutine]
fn heartbeat(start: Instant, units: Arc<AtomicUsize>) -> () {
    let _announce = Announce("heartbeat");
    loop {
        yield_!(sleep(Duration::from_millis(500)));
        println!(
            "  {:.1} s: {} units of work done",
            start.elapsed().as_secs_f64(),
            units.load(SeqCst)
        );
    }
}

#[tinyio::coroutine]
fn service(start: Instant, units: Arc<AtomicUsize>) -> () {
    let workers: Vec<_> = (0..3).map(|id| worker(id, units.clone())).collect();
    yield_!((workers, heartbeat(start, units)));
}

fn main() {
    let lp = Loop::new();
    let interrupted = Arc::new(AtomicBool::new(false));

    let stop = lp.stop_handle();
    let on_ctrl_c = interrupted.clone();
    ctrlc::set_handler(move || {
        on_ctrl_c.store(true, SeqCst);
        println!("\nCtrl-C: stopping the loop");
        stop.stop();
    })
    .expect("could not install the Ctrl-C handler");

    // With no Ctrl-C, stop by itself after a while, through the same handle.
    let stop = lp.stop_handle();
    let watched = interrupted.clone();
    std::thread::spawn(move || {
        std::thread::sleep(STOP_BY_ITSELF_AFTER);
        if !watched.load(SeqCst) {
            println!("no Ctrl-C within {} s: stopping by itself", STOP_BY_ITSELF_AFTER.as_secs());
            stop.stop();
        }
    });

    println!(
        "three workers and a heartbeat are running; press Ctrl-C to stop them (or wait {} s)",
        STOP_BY_ITSELF_AFTER.as_secs()
    );
    let units = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    match lp.run(service(start, units.clone())) {
        Err(err) if err.is_stopped() => {
            let how = if interrupted.load(SeqCst) { "by Ctrl-C" } else { "by itself" };
            println!(
                "stopped {how} after {:.1} s: {err}; every worker had cleaned up before `run` returned \
                 ({} units of work in all)",
                start.elapsed().as_secs_f64(),
                units.load(SeqCst)
            );
        }
        Err(err) => println!("failed: {err:?}"),
        Ok(()) => println!("finished (unexpected: the service runs until stopped)"),
    }
}

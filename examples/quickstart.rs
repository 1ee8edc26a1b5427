//! The tour in one file: coroutines, a gather, a shared coroutine (a diamond), a thread, and an
//! error that cancels everything else and comes out with its trace.
//!
//! Run with `cargo run --example quickstart`.

use std::time::{Duration, Instant};

use tinyio::{Loop, Shared, run_in_thread, sleep};

#[tinyio::coroutine]
fn slow_add_one(x: u64) -> u64 {
    yield_!(sleep(Duration::from_millis(200)));
    x + 1
}

/// Two slow additions at once: 200 ms in total, not 400.
#[tinyio::coroutine]
fn both() -> (u64, u64) {
    yield_!((slow_add_one(3), slow_add_one(4)))
}

/// A diamond: two coroutines await the same shared one, which runs once.
#[tinyio::coroutine]
fn scaled(base: Shared<u64>, factor: u64) -> u64 {
    yield_!(base) * factor
}

#[tinyio::coroutine]
fn diamond() -> u64 {
    let base = slow_add_one(2).share();
    let (a, b) = yield_!((scaled(base.clone(), 1), scaled(base, 2)));
    a + b
}

/// Blocking work goes to a thread; the loop keeps running meanwhile.
#[tinyio::coroutine]
fn checksum(data: Vec<u8>) -> u32 {
    yield_!(run_in_thread(move || data.iter().map(|&b| u32::from(b)).sum()))
}

#[derive(Debug, thiserror::Error)]
#[error("the sensor is offline")]
struct Offline;

#[tinyio::coroutine]
fn read_sensor() -> f64 {
    yield_!(sleep(Duration::from_millis(50)));
    Err(Offline)?
}

#[tinyio::coroutine]
fn poll_forever(label: &'static str) -> () {
    let _announce = OnDrop(label);
    loop {
        yield_!(sleep(Duration::from_millis(10)));
    }
}

/// Prints when dropped: shows that cancellation runs destructors.
struct OnDrop(&'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        println!("  cancelled and cleaned up: {}", self.0);
    }
}

#[tinyio::coroutine]
fn monitor() -> f64 {
    let (reading, ()) = yield_!((read_sensor(), poll_forever("the poller")));
    reading
}

fn main() -> Result<(), tinyio::Error> {
    let lp = Loop::new();

    let start = Instant::now();
    let (four, five) = lp.run(both())?;
    println!(
        "gather: ({four}, {five}) in {} ms (two 200 ms sleeps at once)",
        start.elapsed().as_millis()
    );

    println!("diamond: 3*1 + 3*2 = {}", lp.run(diamond())?);

    println!("checksum of 1..=100 on a thread: {}", lp.run(checksum((1..=100).collect()))?);

    println!("an error anywhere cancels everything else:");
    let err = lp.run(monitor()).unwrap_err();
    println!("  error: {err}");
    println!("  is it `Offline`? {}", err.downcast_ref::<Offline>().is_some());
    println!("  {err:?}");
    Ok(())
}

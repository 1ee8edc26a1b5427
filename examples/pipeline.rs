//! A small pipeline: a producer thread feeds jobs into a channel, a few worker coroutines take
//! them; meanwhile a race between two mirrors fetches an index (the slower mirror is stopped the
//! moment the faster one answers), and a "cancel" button pressed from another thread stops a
//! long upload half-way, which cleans up after itself.
//!
//! ```text
//! cargo run --example pipeline
//! ```

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tinyio::{CancelHandle, Loop, Receiver, cancellable, channel, race, run_in_thread, sleep};

/// When the program started: read by the loop's thread, the producer and the button.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Prints with the time since the start, in milliseconds.
fn log(message: impl std::fmt::Display) {
    let ms = START.elapsed().as_millis();
    println!("[{ms:>4} ms] {message}");
}

/// Takes jobs until the channel is closed and empty; gives how many it did.
#[tinyio::coroutine]
fn worker(id: u32, jobs: Receiver<u32>) -> u32 {
    let mut done = 0;
    while let Some(job) = yield_!(jobs.recv()) {
        yield_!(sleep(Duration::from_millis(2))); // the work itself
        log(format_args!("worker {id} finished job {job}"));
        done += 1;
    }
    done
}

#[tinyio::coroutine]
fn mirror(name: &'static str, delay_ms: u64) -> String {
    let _request = Request(name);
    yield_!(sleep(Duration::from_millis(delay_ms)));
    format!("index from {name}")
}

/// An open request to a mirror: closed when the mirror answers, or is stopped.
struct Request(&'static str);

impl Drop for Request {
    fn drop(&mut self) {
        log(format_args!("request to {} closed", self.0));
    }
}

/// Uploads in chunks until it is done, or cancelled at one of its `yield_!`s.
#[tinyio::coroutine]
fn upload(chunks: u32) -> u32 {
    let _request = Request("the upload server");
    for chunk in 1..=chunks {
        yield_!(sleep(Duration::from_millis(10)));
        log(format_args!("uploaded chunk {chunk}/{chunks}"));
    }
    chunks
}

/// A button that someone presses after a while, on a thread of its own.
fn press_later(button: CancelHandle, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        log("cancel button pressed");
        button.cancel();
    })
}

#[tinyio::coroutine]
fn pipeline() -> (u32, (usize, String), Option<u32>) {
    let (tx, rx) = channel(4);
    let producer = run_in_thread(move || {
        for job in 1..=12 {
            tx.send_blocking(job).expect("the workers are listening");
        }
        log("producer done");
    }); // the sender drops here: the workers see the end of the jobs
    let workers: Vec<_> = (1..=3).map(|id| worker(id, rx.clone())).collect();
    drop(rx);
    let fetch = race([mirror("the far mirror", 500), mirror("the near mirror", 15)]);
    let (upload, button) = cancellable(upload(100));
    let pressing = press_later(button, Duration::from_millis(45));
    let ((), done, index, uploaded) = yield_!((producer, workers, fetch, upload));
    pressing.join().expect("the button thread");
    (done.iter().sum(), index, uploaded)
}

fn main() -> Result<(), tinyio::Error> {
    LazyLock::force(&START); // the clock starts now
    let (jobs, (mirror, index), uploaded) = Loop::new().run(pipeline())?;
    log(format_args!("{jobs} jobs done by the workers"));
    log(format_args!("race won by runner {mirror}: {index}"));
    match uploaded {
        Some(chunks) => log(format_args!("upload finished: {chunks} chunks")),
        None => log("upload cancelled, and cleaned up"),
    }
    assert_eq!((jobs, mirror, uploaded), (12, 1, None));
    Ok(())
}

//! Helpers shared by the behaviour tests. Each test file uses only some of them.
#![allow(dead_code)]

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// `millis` milliseconds.
pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Runs `f` on a fresh thread and fails if it takes longer than `secs` (a hang: a blocked
/// executor, a lost wake-up, loops that do not make progress together); a panic in `f` resumes
/// here with its payload.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, recv) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = send.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match recv.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(out)) => {
            thread.join().unwrap();
            out
        }
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("did not finish within {secs} s: something hangs"),
    }
}

/// Counts its drops in a shared cell, to see that a cancelled coroutine's clean-up ran.
pub struct CountDrops(pub Rc<Cell<usize>>);

impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Counts its own destruction in a static counter; give each test its own counter.
#[derive(Debug)]
pub struct DropGuard(pub &'static AtomicUsize);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// How many guards of this counter have been dropped.
pub fn dropped(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// The names in an error's trace, outermost first.
pub fn names(err: &tinyio::Error) -> Vec<&'static str> {
    err.trace().iter().map(|frame| frame.name()).collect()
}

/// Holds `guard` and never finishes on its own: cancellation is its only way out.
#[tinyio::coroutine]
pub fn forever<G>(guard: G) -> () {
    let _guard = guard;
    loop {
        yield_!(tinyio::sleep(Duration::from_secs(3600)));
    }
}

/// A panic payload as text (`panic!` gives a `&str` or a `String`).
pub fn payload_str(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

//! Helpers shared by the behaviour tests. Each test file uses only some of them.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

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

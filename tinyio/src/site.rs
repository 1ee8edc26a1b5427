//! Where a coroutine's frames are placed, in error traces and stall reports.

use std::cell::Cell;
use std::panic::Location;

use crate::error::Frame;

/// Where a coroutine comes from: its function's name, file and line.
#[doc(hidden)]
#[derive(Debug)]
pub struct Site {
    pub name: &'static str,
    pub file: &'static str,
    pub line: u32,
}

/// The [`Site`] of a coroutine made by this crate: `name`, and the file and line of the `site!`
/// itself, which a built-in's frames never show (see [`Called`]).
macro_rules! site {
    ($name:literal) => {
        $crate::site::Site { name: $name, file: file!(), line: line!() }
    };
}
pub(crate) use site;

impl Site {
    pub(crate) fn frame(&'static self, line: u32) -> Frame {
        Frame { name: self.name, file: self.file, line }
    }
}

/// Where a coroutine's frames are placed, in error traces and stall reports.
pub(crate) trait Origin {
    /// Whether a failure keeps where the body raised it (the `?` or `bail!`).
    const KEEPS_RAISED_AT: bool = true;

    /// The frame of the coroutine suspended at `line` (0: it has not suspended yet).
    fn frame(&self, line: u32) -> Frame;

    /// Held while the coroutine's generator body runs.
    fn placing(&self) -> Option<Placing> {
        None
    }
}

/// A coroutine written with `#[coroutine]` is placed in its function: at its definition until it
/// first suspends, then at the `yield_!` it is suspended at.
impl Origin for &'static Site {
    fn frame(&self, line: u32) -> Frame {
        Frame { name: self.name, file: self.file, line: if line == 0 { self.line } else { line } }
    }
}

/// A coroutine built by this crate (`sleep`, `timeout`, `Lock::lock`, ...) is placed where the
/// user's code called the function that built it, found through `#[track_caller]` on that
/// function and every one it calls on the way; never inside this crate, whose paths mean
/// nothing to the user (and are absolute for a dependency). The coroutines a built-in's body
/// builds for itself (a `Barrier::wait`'s event wait) are placed where the built-in is.
#[derive(Clone, Copy)]
pub(crate) struct Called {
    pub(crate) site: &'static Site,
    pub(crate) at: &'static Location<'static>,
}

impl Called {
    #[track_caller]
    pub(crate) fn here(site: &'static Site) -> Self {
        // Called directly: `Location::caller` passed as a function would name `core`.
        Called { site, at: PLACING.get().unwrap_or(Location::caller()) }
    }
}

impl Origin for Called {
    const KEEPS_RAISED_AT: bool = false;

    fn frame(&self, _: u32) -> Frame {
        Frame { name: self.site.name, file: self.at.file(), line: self.at.line() }
    }

    fn placing(&self) -> Option<Placing> {
        Some(Placing(PLACING.replace(Some(self.at))))
    }
}

thread_local! {
    /// While a built-in's generator body runs: where it is placed.
    static PLACING: Cell<Option<&'static Location<'static>>> = const { Cell::new(None) };
}

/// Restores [`PLACING`] when a built-in's body stops running, even by a panic.
pub(crate) struct Placing(Option<&'static Location<'static>>);

impl Drop for Placing {
    fn drop(&mut self) {
        PLACING.set(self.0);
    }
}

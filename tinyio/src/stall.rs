//! What [`Loop::stall_report`](crate::Loop::stall_report) hands its callback.

use std::fmt;
use std::time::Duration;

use crate::error::Frame;

/// A loop with nothing to run: every suspended coroutine and what it waits on.
#[derive(Debug)]
pub struct Stall {
    pub(crate) idle: Duration,
    pub(crate) coroutines: Vec<Suspended>,
}

impl Stall {
    /// How long the loop has had nothing to run.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Every suspended coroutine (leaves such as timers and thread calls appear through their
    /// waiters).
    pub fn coroutines(&self) -> &[Suspended] {
        &self.coroutines
    }
}

/// One suspended coroutine in a [`Stall`].
#[derive(Debug)]
pub struct Suspended {
    pub(crate) frame: Frame,
    pub(crate) waits_on: Vec<&'static str>,
}

impl Suspended {
    /// The coroutine's name, and the file and line it is suspended at.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The names of the coroutines it waits on: other coroutines, or leaves such as `sleep`
    /// (a timer), `Event::wait`, `run_in_thread`, `from_future`.
    pub fn waits_on(&self) -> &[&'static str] {
        &self.waits_on
    }
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tinyio loop stalled: nothing has run for {:?}; suspended:",
            self.idle
        )?;
        for suspended in &self.coroutines {
            write!(
                f,
                "\n    {} waits on {}",
                suspended.frame,
                suspended.waits_on.join(", ")
            )?;
        }
        Ok(())
    }
}

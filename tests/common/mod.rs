//! Helpers shared by the behaviour tests. Each test file uses only some of them.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tinyio::{Event, Loop};

/// `millis` milliseconds.
pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Whether the tests run under valgrind, as the environment variable `TINYIO_UNDER_VALGRIND`
/// says (any value): a thread may then take longer to start than a short timer takes to expire,
/// so the few checks that depend on how long things take are skipped.
pub fn under_valgrind() -> bool {
    std::env::var_os("TINYIO_UNDER_VALGRIND").is_some()
}

/// How long a timeout waits when the work it stops must have started, and suspended, before it
/// fires. A coroutine starts within microseconds of its timeout, but a busy machine can hold
/// the loop's thread for tens of milliseconds in between, and valgrind (which runs one thread at
/// a time, not fairly) for seconds.
pub fn head_start() -> Duration {
    if under_valgrind() { Duration::from_secs(5) } else { Duration::from_millis(100) }
}

/// Counts arrivals (thread calls that have started, say) and sets an event once `expected` have
/// arrived: a test acts on "they are all running" by waiting on that event, not by sleeping.
#[derive(Debug)]
pub struct Arrivals {
    count: AtomicUsize,
    expected: usize,
    all: Event,
}

impl Arrivals {
    pub fn new(expected: usize) -> Self {
        Arrivals { count: AtomicUsize::new(0), expected, all: Event::new() }
    }

    /// One more has arrived.
    pub fn arrive(&self) {
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 >= self.expected {
            self.all.set();
        }
    }

    /// How many are expected.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// How many have arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Finishes once all have arrived: yield it from a coroutine, or await it.
    pub fn all(&self) -> tinyio::Coro<()> {
        self.all.wait()
    }

    /// A leaf that, when started, holds the loop's thread until all have arrived. Leaves start
    /// as they are yielded, in order: yielded together after thread calls (in one gather), it
    /// starts right after them, before the loop looks at a timer again, so that no timeout can
    /// stop a call still queued (which would drop it unrun).
    pub fn hold(self: &Arc<Self>) -> tinyio::Coro<()> {
        let arrivals = self.clone();
        tinyio::from_future(async move { arrivals.block_until_all() })
    }

    /// Blocks this thread until all have arrived (a nested run). Panics after 30 s rather than
    /// hang, should they never come.
    pub fn block_until_all(&self) {
        let all = tinyio::timeout(self.all.wait(), Duration::from_secs(30));
        let arrived = Loop::new().run(all).unwrap();
        assert!(arrived.is_some(), "{} of {} arrived", self.count(), self.expected);
    }
}

/// `lp` with a stall report that signals the receiver each time the loop has had nothing to run
/// for `threshold`: a thread that waits on it acts only once every coroutine of the loop is
/// suspended, which no sleep can promise.
pub fn on_stall(lp: Loop, threshold: Duration) -> (Loop, mpsc::Receiver<()>) {
    let (send, recv) = mpsc::channel();
    let lp = lp.stall_report(threshold, move |_| {
        let _ = send.send(()); // no one listens any more once the test has what it needs
    });
    (lp, recv)
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

/// A global allocator that counts, per thread, the bytes allocated (a realloc counts what it grows
/// by) and the bytes live: per thread, so that the tests of one binary running beside each other
/// do not disturb each other's counts. A test file installs it with
/// `#[global_allocator] static COUNTING: common::Counting = common::Counting;`.
pub struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(grown: isize) {
    // `try_with`: a thread being torn down has no counters left, and frees nothing counted.
    let _ = ALLOCATED.try_with(|allocated| allocated.set(allocated.get() + grown.max(0) as usize));
    let _ = LIVE.try_with(|live| live.set(live.get() + grown));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The bytes this thread has allocated so far (with [`Counting`] installed).
pub fn allocated() -> usize {
    ALLOCATED.with(Cell::get)
}

/// The bytes this thread has allocated and not freed (with [`Counting`] installed).
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Runs `f` on a thread with a 2 MiB stack (what `std::thread::spawn` gives by default, far too
/// small for recursion per level of a 10^5-deep nest), and gives its result; a panic in `f`
/// resumes here.
pub fn on_a_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap();
    thread.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

/// Checks that `scenario` at `10 n` allocates about ten times what it does at `n` (a quadratic
/// cost would make it a hundredfold), each on a fresh thread (with [`Counting`] installed).
pub fn assert_linear(name: &str, n: u32, scenario: fn(u32)) {
    let work = |n| {
        on_a_small_stack(move || {
            scenario(n);
            allocated()
        })
    };
    let (small, large) = (work(n), work(10 * n));
    let ratio = large as f64 / small as f64;
    eprintln!("{name}: {small} bytes at {n}, {large} at {}: x{ratio:.1}", 10 * n);
    assert!(ratio < 25.0, "{name}: the work grew x{ratio:.1} for ten times the size");
}

/// `depth` isolates, each raising again what the one inside gave back; the innermost fails with
/// "deepest".
#[tinyio::coroutine]
pub fn raises_again(depth: u32) -> u32 {
    if depth == 0 {
        yield_!();
        tinyio::bail!("deepest");
    }
    yield_!(tinyio::isolate(raises_again(depth - 1)))? + 1
}

/// A chain `depth` coroutines long, each waiting on the next, whose bottom fails with "bottom".
#[tinyio::coroutine]
pub fn failing_chain(depth: u32) -> u64 {
    if depth == 0 {
        yield_!();
        tinyio::bail!("bottom");
    }
    yield_!(failing_chain(depth - 1)) + 1
}

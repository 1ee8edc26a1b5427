//! Scale: a million-deep chain and a million-wide gather in bounded native stack, a cancellation
//! storm, and many sleepers.
//!
//! The million-scale tests run at full scale in debug too: about 5-15 s each there on a shared
//! two-core machine, about 1-2 s in release.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use common::{DropGuard, dropped};
use tinyio::{Coro, Loop, sleep, sleep_until};

/// Coroutines in the chain and the gather.
const MILLION: u32 = 1_000_000;

/// A stack far too small for a million nested frames: recursion per coroutine would overflow it.
const SMALL_STACK: usize = 256 * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[tinyio::coroutine]
fn chain(depth: u32) -> u64 {
    if depth == 0 {
        yield_!();
        return 0;
    }
    yield_!(chain(depth - 1)) + 1
}

#[test]
fn deep_chain() {
    let start = Instant::now();
    let out = on_small_stack(|| Loop::new().run(chain(MILLION)).unwrap());
    assert_eq!(out, u64::from(MILLION));
    eprintln!("deep_chain: {:?}", start.elapsed());
}

#[tinyio::coroutine]
fn failing_chain(depth: u32) -> u64 {
    if depth == 0 {
        yield_!();
        tinyio::bail!("bottom");
    }
    yield_!(failing_chain(depth - 1)) + 1
}

#[test]
fn deep_chain_failing_at_the_bottom() {
    let start = Instant::now();
    let (message, trace) = on_small_stack(|| {
        let err = Loop::new().run(failing_chain(MILLION)).unwrap_err();
        (err.to_string(), err.trace().len())
    });
    assert_eq!(message, "bottom");
    assert_eq!(trace, MILLION as usize + 1);
    eprintln!("deep_chain_failing_at_the_bottom: {:?}", start.elapsed());
}

#[tinyio::coroutine]
fn id(x: u32) -> u32 {
    x
}

#[test]
fn wide_gather() {
    let start = Instant::now();
    let out = on_small_stack(|| {
        let coros: Vec<Coro<u32>> = (0..MILLION).map(id).collect();
        Loop::new().run(coros).unwrap()
    });
    assert_eq!(out.len(), MILLION as usize);
    assert!(out.iter().enumerate().all(|(i, &x)| i as u32 == x));
    eprintln!("wide_gather: {:?}", start.elapsed());
}

#[test]
fn cancellation_storm() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    const N: usize = 100_000;
    #[tinyio::coroutine]
    fn suspended(guard: DropGuard) -> () {
        let _guard = guard;
        loop {
            yield_!(sleep(Duration::from_secs(3600)));
        }
    }
    static FAILED_AT: Mutex<Option<Instant>> = Mutex::new(None);
    #[tinyio::coroutine]
    fn fails() -> () {
        // Everyone else is suspended by now.
        yield_!();
        yield_!();
        *FAILED_AT.lock().unwrap() = Some(Instant::now());
        tinyio::bail!("storm");
    }
    let start = Instant::now();
    let err = on_small_stack(|| {
        let all: Vec<_> = (0..N).map(|_| suspended(DropGuard(&DROPS))).collect();
        Loop::new().run((all, fails())).unwrap_err().to_string()
    });
    let end = Instant::now();
    assert_eq!(err, "storm");
    assert_eq!(dropped(&DROPS), N);
    let failed_at = FAILED_AT.lock().unwrap().expect("failed");
    eprintln!(
        "cancellation_storm: {:?} (cancelling: {:?})",
        end - start,
        end - failed_at
    );
}

#[test]
fn many_sleepers() {
    const N: u32 = 100_000;
    /// Far enough ahead that every sleeper is parked before the first deadline (setting up takes
    /// about 0.15 s in release, 0.7 s in debug).
    const AHEAD: Duration = Duration::from_millis(if cfg!(debug_assertions) { 2500 } else { 1000 });
    type Log = Rc<RefCell<Vec<(Instant, Instant)>>>;
    #[tinyio::coroutine]
    fn sleeper(deadline: Instant, log: Log) -> () {
        let parked = Instant::now();
        yield_!(sleep_until(deadline));
        log.borrow_mut().push((parked, deadline));
        assert!(Instant::now() >= deadline, "woken early");
    }
    let start = Instant::now();
    let base = start + AHEAD;
    let log = Log::default();
    // Deadlines spread over 100 ms, in a scrambled order.
    let sleepers: Vec<_> = (0..N)
        .map(|i| base + Duration::from_micros(u64::from(i.wrapping_mul(7919) % 100_000)))
        .map(|deadline| sleeper(deadline, log.clone()))
        .collect();
    Loop::new().run(sleepers).unwrap();
    let elapsed = start.elapsed();
    let log = log.borrow();
    assert_eq!(log.len(), N as usize);
    let last_parked = log.iter().map(|&(parked, _)| parked).max().unwrap();
    assert!(
        last_parked < base,
        "setting up took {:?}",
        last_parked - start
    );
    // Woken in deadline order.
    assert!(log.iter().map(|&(_, deadline)| deadline).is_sorted());
    assert!(elapsed >= AHEAD + Duration::from_millis(99), "{elapsed:?}");
    eprintln!(
        "many_sleepers: {elapsed:?} (setting up: {:?})",
        last_parked - start
    );
}

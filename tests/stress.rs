//! Scale: a million-deep chain and a million-wide gather in bounded native stack, a cancellation
//! storm, and many sleepers.
//!
//! The million-scale tests run at full scale in debug too: about 5-15 s each there on a shared
//! two-core machine, about 1-2 s in release. Under valgrind (`TINYIO_UNDER_VALGRIND`), some fifty
//! times slower, every size is a hundredth: still far deeper than the small stack could hold in
//! recursion.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use common::{DropGuard, dropped, failing_chain, under_valgrind};
use tinyio::{Coro, Loop, sleep, sleep_until};

/// `n`, or a hundredth of it under valgrind.
fn scaled(n: u32) -> u32 {
    if under_valgrind() { n / 100 } else { n }
}

/// Coroutines in the chain and the gather.
fn million() -> u32 {
    scaled(1_000_000)
}

/// A stack far too small for a million nested frames: recursion per coroutine would overflow it.
const SMALL_STACK: usize = 256 * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(SMALL_STACK).spawn(f).unwrap().join().unwrap()
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
    let out = on_small_stack(|| Loop::new().run(chain(million())).unwrap());
    assert_eq!(out, u64::from(million()));
    eprintln!("deep_chain: {:?}", start.elapsed());
}

#[test]
fn deep_chain_failing_at_the_bottom() {
    let start = Instant::now();
    let (message, trace) = on_small_stack(|| {
        let err = Loop::new().run(failing_chain(million())).unwrap_err();
        (err.to_string(), err.trace().len())
    });
    assert_eq!(message, "bottom");
    assert_eq!(trace, million() as usize + 1);
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
        let coros: Vec<Coro<u32>> = (0..million()).map(id).collect();
        Loop::new().run(coros).unwrap()
    });
    assert_eq!(out.len(), million() as usize);
    assert!(out.iter().enumerate().all(|(i, &x)| i as u32 == x));
    eprintln!("wide_gather: {:?}", start.elapsed());
}

#[test]
fn cancellation_storm() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let n = scaled(100_000) as usize;
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
    let err = on_small_stack(move || {
        let all: Vec<_> = (0..n).map(|_| suspended(DropGuard(&DROPS))).collect();
        Loop::new().run((all, fails())).unwrap_err().to_string()
    });
    let end = Instant::now();
    assert_eq!(err, "storm");
    assert_eq!(dropped(&DROPS), n);
    let failed_at = FAILED_AT.lock().unwrap().expect("failed");
    eprintln!("cancellation_storm: {:?} (cancelling: {:?})", end - start, end - failed_at);
}

#[test]
fn many_sleepers() {
    let n = scaled(100_000);
    // Far enough ahead that every sleeper is parked before the first deadline (setting up takes
    // about 0.15 s in release, 0.7 s in debug). A busy machine may take longer: the run then
    // tells how long, and is made again twice as far ahead.
    let mut ahead = Duration::from_millis(if cfg!(debug_assertions) { 2500 } else { 1000 });
    while let Err(setting_up) = sleepers_in_deadline_order(n, ahead) {
        eprintln!("many_sleepers: setting up took {setting_up:?}, over {ahead:?}: again");
        ahead *= 2;
        assert!(ahead < Duration::from_secs(300), "setting up never ends");
    }
}

/// `n` sleepers with deadlines spread over 100 ms, `ahead` from now, in a scrambled order: they
/// wake in deadline order. `Err` (how long setting up took) if they were not all parked before
/// the first deadline, which the order needs.
fn sleepers_in_deadline_order(n: u32, ahead: Duration) -> Result<(), Duration> {
    type Log = Rc<RefCell<Vec<(Instant, Instant)>>>;
    #[tinyio::coroutine]
    fn sleeper(deadline: Instant, log: Log) -> () {
        let parked = Instant::now();
        yield_!(sleep_until(deadline));
        log.borrow_mut().push((parked, deadline));
        assert!(Instant::now() >= deadline, "woken early");
    }
    let start = Instant::now();
    let base = start + ahead;
    let log = Log::default();
    // Deadlines spread over 100 ms, in a scrambled order.
    let sleepers: Vec<_> = (0..n)
        .map(|i| base + Duration::from_micros(u64::from(i.wrapping_mul(7919) % 100_000)))
        .map(|deadline| sleeper(deadline, log.clone()))
        .collect();
    Loop::new().run(sleepers).unwrap();
    let elapsed = start.elapsed();
    let log = log.borrow();
    assert_eq!(log.len(), n as usize);
    let last_parked = log.iter().map(|&(parked, _)| parked).max().unwrap();
    if last_parked >= base {
        return Err(last_parked - start);
    }
    // Woken in deadline order.
    assert!(log.iter().map(|&(_, deadline)| deadline).is_sorted());
    assert!(elapsed >= ahead + Duration::from_millis(99), "{elapsed:?}");
    eprintln!("many_sleepers: {elapsed:?} (setting up: {:?})", last_parked - start);
    Ok(())
}

//! A tester's pass on the guarantees under faults: panics where tinyio calls foreign code from
//! a thread of its own (a waker handed to `to_future`), or drops a value a thread call returned
//! while cancelling; and at scale, a failure reaching a long chain through every way of
//! stopping work.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{DropGuard, dropped, ms, payload_str, within};
use tinyio::{Loop, run_in_thread};

/// The tests that count on the thread cache being idle but for them take turns: a thread call
/// of another test could otherwise hand a stuck job to a thread of its own.
fn threads_alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A waker that says it was woken, then panics: an executor's bug, met on a thread of tinyio's.
struct Bomb(Mutex<mpsc::Sender<()>>);

impl Wake for Bomb {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
        panic!("the executor's waker panicked");
    }
}

#[test]
fn a_to_future_waker_panicking_on_a_thread_call_thread_does_not_stall_later_thread_calls() {
    let _alone = threads_alone();
    let (woken, wakes) = mpsc::channel();
    let bomb = Waker::from(Arc::new(Bomb(Mutex::new(woken))));
    let mut future = tinyio::to_future(run_in_thread(|| 5));
    let pending = Pin::new(&mut future).poll(&mut Context::from_waker(&bomb));
    assert!(pending.is_pending(), "the call runs on a thread");
    // The call's thread has finished it and woken the future's task with the bomb.
    wakes.recv().unwrap();
    // Every later call runs: the cache has not lost count of its threads.
    let out = within(30, || {
        let calls: Vec<_> = (0..4u32).map(|i| run_in_thread(move || i)).collect();
        Loop::new().run(calls).unwrap()
    });
    assert_eq!(out, [0, 1, 2, 3]);
    // And the future itself finishes, polled with a waker that works (its call is over).
    assert_eq!(futures::executor::block_on(future).unwrap(), 5);
}

#[test]
fn a_to_future_waker_panicking_on_a_pool_thread_does_not_stall_the_pool() {
    let _alone = threads_alone();
    let pool = tinyio::ThreadPool::new(1);
    let (woken, wakes) = mpsc::channel();
    let bomb = Waker::from(Arc::new(Bomb(Mutex::new(woken))));
    let mut future = tinyio::to_future(pool.run_in_thread(|| 5));
    let pending = Pin::new(&mut future).poll(&mut Context::from_waker(&bomb));
    assert!(pending.is_pending(), "the call runs on a thread");
    wakes.recv().unwrap();
    let out = within(30, move || Loop::new().run(pool.map(|i: u32| i * 2, 0..4)).unwrap());
    assert_eq!(out, [0, 2, 4, 6]);
}

/// A value whose drop says so, then panics.
#[derive(Debug)]
struct PanicsOnDrop(mpsc::Sender<()>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
        panic!("dropping the output of a cancelled thread call");
    }
}

#[tinyio::coroutine]
fn fails_once_returned(returned: mpsc::Receiver<()>, started: mpsc::Receiver<()>) -> () {
    yield_!();
    started.recv().unwrap();
    // The first call's function has returned (its sender went with it).
    assert!(returned.recv().is_err());
    tinyio::bail!("failed while the first call's output waited to be taken");
}

#[test]
fn a_panic_dropping_a_cancelled_calls_output_still_joins_every_other_thread() {
    let _alone = threads_alone();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let finished = Arc::new(AtomicBool::new(false));
    let (dropping, dropped_output) = mpsc::channel();
    let (returns, returned) = mpsc::channel::<()>();
    let (starts, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let first = run_in_thread(move || {
        let _returns = returns;
        PanicsOnDrop(dropping)
    });
    let second = run_in_thread({
        let finished = finished.clone();
        move || {
            let _guard = DropGuard(&DROPS);
            starts.send(()).unwrap();
            while tinyio::thread::sleep(Duration::from_secs(3600)).is_ok() {}
            // Told to stop: it cleans up once the first call's output is gone, and once the
            // loop, joining it, has had nothing to do for a while (its stall report).
            dropped_output.recv().unwrap();
            released.recv().unwrap();
            finished.store(true, Ordering::SeqCst);
        }
    });
    let lp = Loop::new().stall_report(ms(50), move |_| {
        let _ = release.send(());
    });
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        lp.run((first, second, fails_once_returned(returned, started)))
    }));
    let payload = panicked.expect_err("the panic of the drop resumes out of run");
    assert_eq!(payload_str(&*payload), "dropping the output of a cancelled thread call");
    assert!(finished.load(Ordering::SeqCst), "a thread call outlived its run");
    assert_eq!(dropped(&DROPS), 1);
}

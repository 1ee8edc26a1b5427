//! tinyio against its peers, side by side in one process (issue 6).
//!
//! `cargo bench --bench peers` runs every workload on every system, interleaving the systems
//! within each repetition, and prints a table and then one JSON line per (workload, system):
//!
//! ```text
//! {"workload":"W1","system":"tinyio","ns_per_op":41.2}
//! {"workload":"W4","system":"tinyio","ns_per_op":240.1,"p50_late_us":55.2,"p99_late_us":80.3}
//! {"workload":"W7","system":"tinyio","bytes_per_task":93.0,"allocs_per_task":1.00}
//! ```
//!
//! Systems: `tinyio`; `tokio` (current_thread runtime + `LocalSet`); `smol` (`LocalExecutor`
//! under `smol::block_on`); `futures` (`LocalPool`); `genawaiter`, the floor: a bare genawaiter
//! `rc::Gen`, type-erased as `Box<dyn Resume>` (the concrete `Gen<_, _, F>` behind a vtable, as a
//! loop holding many coroutine types must erase it), resumed in a plain loop.
//!
//! Workloads (full sizes; `--quick` divides every size by 10 and runs 3 repetitions):
//! - W1 one coroutine pausing 10^6 times (`yield_!()` / `yield_now().await` / `Gen::resume`).
//! - W2 spawn-and-gather of 10^5 trivial coroutines (each returns its argument without pausing);
//!   W2x10 the same with 10^6.
//! - W3 a chain 10^4 deep: each coroutine spawns the next and awaits it.
//! - W4 10^4 concurrent 10 ms sleeps: ns_per_op = (wall - 10 ms) / sleepers, and the p50 / p99 of
//!   each sleeper's lateness (Instant after its sleep minus Instant before it, minus 10 ms);
//!   W4x10 the same with 10^5.
//! - W5 10^3 trivial blocking calls gathered concurrently: tinyio `run_in_thread`, tokio
//!   `spawn_blocking`, smol `unblock`. W5pool the same through a 2-thread pool: tinyio
//!   `ThreadPool::new(2)`, futures' `ThreadPool` with `pool_size(2)`.
//! - W6 ping-pong, 10^5 round trips between two coroutines: tinyio two `Event`s (set + clear),
//!   tokio two `Notify`s, smol and futures two `async_channel::bounded(1)` channels (`smol::channel`).
//! - W7 heap bytes per suspended trivial coroutine, 10^5 of them suspended at once, counted by the
//!   counting global allocator below (requested bytes, net live, divided by 10^5).
//!   W7event the same with every coroutine suspended waiting on one shared event: tinyio
//!   `yield_!(event.wait())` on one `Event`; tokio tasks awaiting one `Notify::notified()`; smol
//!   and futures tasks awaiting `recv` on one `smol::channel` (an event-listener `Event` inside,
//!   as in W8). Once measured, the event is set (the channel closed) and every waiter finishes.
//! - W8 10^5 waiters on one event, all cancelled: tinyio `Event::wait`s gathered with a
//!   coroutine that raises, so the run cancels them; tokio `JoinSet` tasks awaiting one `Notify`,
//!   then `JoinSet::shutdown` (abort all, wait for them); smol tasks awaiting `recv` on one
//!   channel (an event-listener `Event` inside), then dropped. ns_per_op = wall / waiters, from
//!   the first spawn until the last waiter is gone.
//! - W9 a channel passing 10^6 integers from one coroutine to another, capacity 64 everywhere:
//!   tinyio `channel`, tokio `mpsc::channel`, smol `smol::channel::bounded` (`async_channel`),
//!   futures `futures::channel::mpsc::channel` on its `LocalPool`. ns_per_op = wall / integers.
//!
//! Flags (after `--`): `--quick`, `--reps N`, `--only W1,W6` (workload names, prefix match),
//! `--systems tinyio,tokio`, `--allocs` (also count allocation calls per op: slower, for profiling).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::executor::LocalPool;
use futures::task::{LocalSpawnExt, SpawnExt};
use genawaiter::GeneratorState;
use genawaiter::rc::Gen;
use tinyio::{Coro, Event, Loop, Receiver, Sender, ThreadPool};

// ---------------------------------------------------------------------------------------------
// Counting allocator: counts only while `COUNTING` is on, so the timed runs pay one relaxed load.

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Net bytes allocated while counting.
static BYTES: AtomicIsize = AtomicIsize::new(0);
/// Net live allocations made while counting.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Calls to alloc / realloc while counting.
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if COUNTING.load(Relaxed) && !p.is_null() {
            BYTES.fetch_add(layout.size() as isize, Relaxed);
            LIVE.fetch_add(1, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if COUNTING.load(Relaxed) && !p.is_null() {
            BYTES.fetch_add(layout.size() as isize, Relaxed);
            LIVE.fetch_add(1, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Relaxed) {
            BYTES.fetch_sub(layout.size() as isize, Relaxed);
            LIVE.fetch_sub(1, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if COUNTING.load(Relaxed) && !p.is_null() {
            BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy)]
struct Heap {
    bytes: isize,
    live: isize,
}

fn heap_now() -> Heap {
    Heap { bytes: BYTES.load(Relaxed), live: LIVE.load(Relaxed) }
}

fn counting(on: bool) {
    COUNTING.store(on, Relaxed);
}

// ---------------------------------------------------------------------------------------------
// What one measurement gives.

#[derive(Clone, Copy, Default)]
struct Sample {
    /// Wall time of the timed section.
    wall: Duration,
    /// Operations in it.
    ops: usize,
    /// W4: lateness percentiles, in microseconds.
    late: Option<(f64, f64)>,
    /// W7, W7event: bytes and allocations per suspended task.
    heap: Option<(f64, f64)>,
    /// With `--allocs`: allocation calls per op.
    allocs: Option<f64>,
}

impl Sample {
    fn timed(wall: Duration, ops: usize) -> Self {
        Sample { wall, ops, ..Sample::default() }
    }

    fn ns_per_op(&self) -> f64 {
        if self.ops == 0 {
            return 0.0;
        }
        self.wall.as_nanos() as f64 / self.ops as f64
    }
}

fn percentiles(mut lateness: Vec<Duration>) -> (f64, f64) {
    lateness.sort_unstable();
    let at = |q: f64| {
        let i = ((lateness.len() as f64 - 1.0) * q).round() as usize;
        lateness[i].as_nanos() as f64 / 1000.0
    };
    (at(0.50), at(0.99))
}

/// A hand-written `yield_now` for `futures` (which has none): wake at once, pending once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

/// Never ready, registers nothing: a task suspended on it costs only itself (W7).
struct Forever;

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// W7, W7event: how many suspended tasks have been polled once.
static POLLED: AtomicUsize = AtomicUsize::new(0);

async fn parked() {
    POLLED.fetch_add(1, Relaxed);
    Forever.await
}

/// W7event for smol and futures: a task waiting on a channel that never receives a value (an
/// event-listener `Event` inside), until it is closed.
async fn waiting(receive: smol::channel::Receiver<()>) {
    POLLED.fetch_add(1, Relaxed);
    let _ = receive.recv().await; // registers at this first poll
}

/// W7 probe for the async peers: spawned after the parked tasks, it waits until all of them
/// have been polled once, then reads the heap.
async fn probe(n: usize, base: Heap) -> (f64, f64) {
    while POLLED.load(Relaxed) < n {
        yield_now().await;
    }
    per_task(base, n)
}

fn per_task(base: Heap, n: usize) -> (f64, f64) {
    let now = heap_now();
    ((now.bytes - base.bytes) as f64 / n as f64, (now.live - base.live) as f64 / n as f64)
}

const NAP: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// tinyio

/// The capacity of every channel of W9.
const W9_CAPACITY: usize = 64;

mod tinyio_bench {
    use super::*;

    #[tinyio::coroutine]
    fn pauses(n: usize) -> usize {
        let mut i = 0;
        while i < n {
            yield_!();
            i += 1;
        }
        i
    }

    #[tinyio::coroutine]
    fn trivial(i: usize) -> usize {
        i
    }

    #[tinyio::coroutine]
    fn gather(n: usize) -> usize {
        let children: Vec<Coro<usize>> = (0..n).map(trivial).collect();
        let outputs = yield_!(children);
        outputs.iter().sum()
    }

    #[tinyio::coroutine]
    fn chain(n: usize) -> usize {
        if n == 0 { 0 } else { yield_!(chain(n - 1)) + 1 }
    }

    #[tinyio::coroutine]
    fn sleeper(d: Duration) -> Duration {
        let start = Instant::now();
        yield_!(tinyio::sleep(d));
        start.elapsed().saturating_sub(d)
    }

    #[tinyio::coroutine]
    fn sleepers(n: usize, d: Duration) -> Vec<Duration> {
        let all: Vec<Coro<Duration>> = (0..n).map(|_| sleeper(d)).collect();
        yield_!(all)
    }

    #[tinyio::coroutine]
    fn ping(a: Event, b: Event, n: usize) -> () {
        for _ in 0..n {
            a.set();
            yield_!(b.wait());
            b.clear();
        }
    }

    #[tinyio::coroutine]
    fn pong(a: Event, b: Event, n: usize) -> () {
        for _ in 0..n {
            yield_!(a.wait());
            a.clear();
            b.set();
        }
    }

    #[tinyio::coroutine]
    fn suspended() -> () {
        POLLED.fetch_add(1, Relaxed);
        yield_!();
    }

    #[tinyio::coroutine]
    fn waiting(event: Event) -> () {
        POLLED.fetch_add(1, Relaxed);
        yield_!(event.wait());
    }

    /// Reads the heap once every coroutine is suspended, then sets `release` (W7event: the
    /// event they wait on).
    #[tinyio::coroutine]
    fn heap_probe(base: Heap, n: usize, release: Event) -> (f64, f64) {
        assert_eq!(
            POLLED.load(Relaxed),
            n,
            "W7: the probe must run once every coroutine is suspended"
        );
        let heap = per_task(base, n);
        release.set();
        heap
    }

    pub fn w1(n: usize) -> Sample {
        let lp = Loop::new();
        let t = Instant::now();
        let out = lp.run(pauses(n)).unwrap();
        let wall = t.elapsed();
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w2(n: usize) -> Sample {
        let lp = Loop::new();
        let t = Instant::now();
        let out = lp.run(gather(n)).unwrap();
        let wall = t.elapsed();
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w3(n: usize) -> Sample {
        let lp = Loop::new();
        let t = Instant::now();
        let out = lp.run(chain(n)).unwrap();
        let wall = t.elapsed();
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w4(n: usize) -> Sample {
        let lp = Loop::new();
        let t = Instant::now();
        let lateness = lp.run(sleepers(n, NAP)).unwrap();
        let wall = t.elapsed().saturating_sub(NAP);
        Sample { late: Some(percentiles(lateness)), ..Sample::timed(wall, n) }
    }

    pub fn w5(n: usize) -> Sample {
        let lp = Loop::new();
        let t = Instant::now();
        let calls: Vec<Coro<usize>> =
            (0..n).map(|i| tinyio::run_in_thread(move || black_box(i))).collect();
        let out = lp.run(calls).unwrap();
        let wall = t.elapsed();
        assert_eq!(out.len(), n);
        Sample::timed(wall, n)
    }

    pub fn w5pool(n: usize) -> Sample {
        let lp = Loop::new();
        let pool = ThreadPool::new(2); // built outside the timed part, as futures' pool is
        let t = Instant::now();
        let calls: Vec<Coro<usize>> =
            (0..n).map(|i| pool.run_in_thread(move || black_box(i))).collect();
        let out = lp.run(calls).unwrap();
        let wall = t.elapsed();
        assert_eq!(out.len(), n);
        Sample::timed(wall, n)
    }

    pub fn w6(n: usize) -> Sample {
        let lp = Loop::new();
        let (a, b) = (Event::new(), Event::new());
        let t = Instant::now();
        lp.run((ping(a.clone(), b.clone(), n), pong(a, b, n))).unwrap();
        Sample::timed(t.elapsed(), n)
    }

    #[tinyio::coroutine]
    fn raise() -> () {
        tinyio::bail!("raised");
    }

    pub fn w8(n: usize) -> Sample {
        let lp = Loop::new();
        let event = Event::new();
        let t = Instant::now();
        // Each wait joins the event as it is filed; `raise` runs after all of them are.
        let waits: Vec<Coro<()>> = (0..n).map(|_| event.wait()).collect();
        let err = lp.run((waits, raise())).unwrap_err();
        let wall = t.elapsed();
        assert_eq!(err.to_string(), "raised");
        Sample::timed(wall, n)
    }

    #[tinyio::coroutine]
    fn produce(tx: Sender<usize>, n: usize) -> () {
        for i in 0..n {
            yield_!(tx.send(i)).unwrap();
        }
    }

    #[tinyio::coroutine]
    fn consume(rx: Receiver<usize>) -> usize {
        let mut sum = 0;
        while let Some(i) = yield_!(rx.recv()) {
            sum += i;
        }
        sum
    }

    pub fn w9(n: usize) -> Sample {
        let lp = Loop::new();
        let t = Instant::now();
        let (tx, rx) = tinyio::channel(W9_CAPACITY);
        let ((), sum) = lp.run((produce(tx, n), consume(rx))).unwrap();
        let wall = t.elapsed();
        assert_eq!(sum, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w7(n: usize) -> Sample {
        heap_per_coroutine(n, |_| suspended())
    }

    pub fn w7event(n: usize) -> Sample {
        heap_per_coroutine(n, waiting)
    }

    /// W7 and W7event: `n` coroutines made by `child`, each given the event the probe sets.
    fn heap_per_coroutine(n: usize, child: fn(Event) -> Coro<()>) -> Sample {
        let lp = Loop::new();
        let event = Event::new();
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        // The probe is scheduled after the children, so it runs when each of them has been
        // resumed once and is suspended at its `yield_!`, before any is resumed again (a
        // wait yielded is registered with its event at the yield).
        let children: Vec<Coro<()>> = (0..n).map(|_| child(event.clone())).collect();
        let (_, heap) = lp.run((children, heap_probe(base, n, event))).unwrap();
        counting(false);
        Sample { heap: Some(heap), ..Sample::default() }
    }
}

// ---------------------------------------------------------------------------------------------
// tokio: current_thread runtime + LocalSet

mod tokio_bench {
    use super::*;
    use tokio::runtime::Runtime;
    use tokio::sync::Notify;
    use tokio::task::{JoinSet, LocalSet, spawn_local};

    pub fn runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn timed<T>(rt: &Runtime, fut: impl Future<Output = T>) -> (T, Duration) {
        let local = LocalSet::new();
        let t = Instant::now();
        let out = local.block_on(rt, fut);
        (out, t.elapsed())
    }

    pub fn w1(rt: &Runtime, n: usize) -> Sample {
        let (out, wall) = timed(rt, async move {
            spawn_local(async move {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
                n
            })
            .await
            .unwrap()
        });
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w2(rt: &Runtime, n: usize) -> Sample {
        let (out, wall) = timed(rt, async move {
            let handles: Vec<_> = (0..n).map(|i| spawn_local(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    async fn chain(n: usize) -> usize {
        if n == 0 { 0 } else { spawn_local(chain(n - 1)).await.unwrap() + 1 }
    }

    pub fn w3(rt: &Runtime, n: usize) -> Sample {
        let (out, wall) = timed(rt, async move { spawn_local(chain(n)).await.unwrap() });
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w4(rt: &Runtime, n: usize) -> Sample {
        let (lateness, wall) = timed(rt, async move {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    spawn_local(async move {
                        let start = Instant::now();
                        tokio::time::sleep(NAP).await;
                        start.elapsed().saturating_sub(NAP)
                    })
                })
                .collect();
            let mut lateness = Vec::with_capacity(n);
            for h in handles {
                lateness.push(h.await.unwrap());
            }
            lateness
        });
        Sample { late: Some(percentiles(lateness)), ..Sample::timed(wall.saturating_sub(NAP), n) }
    }

    pub fn w5(rt: &Runtime, n: usize) -> Sample {
        let (out, wall) = timed(rt, async move {
            let handles: Vec<_> =
                (0..n).map(|i| tokio::task::spawn_blocking(move || black_box(i))).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w6(rt: &Runtime, n: usize) -> Sample {
        let (a, b) = (Rc::new(Notify::new()), Rc::new(Notify::new()));
        let (_, wall) = timed(rt, async move {
            let (a2, b2) = (a.clone(), b.clone());
            let ping = spawn_local(async move {
                for _ in 0..n {
                    a.notify_one();
                    b.notified().await;
                }
            });
            let pong = spawn_local(async move {
                for _ in 0..n {
                    a2.notified().await;
                    b2.notify_one();
                }
            });
            ping.await.unwrap();
            pong.await.unwrap();
        });
        Sample::timed(wall, n)
    }

    pub fn w8(rt: &Runtime, n: usize) -> Sample {
        let (notify, waiting) = (Rc::new(Notify::new()), Rc::new(Cell::new(0)));
        let (_, wall) = timed(rt, async move {
            let mut tasks = JoinSet::new();
            for _ in 0..n {
                let (notify, waiting) = (notify.clone(), waiting.clone());
                tasks.spawn_local(async move {
                    waiting.set(waiting.get() + 1);
                    notify.notified().await; // registers at this first poll
                });
            }
            while waiting.get() < n {
                tokio::task::yield_now().await;
            }
            tasks.shutdown().await;
        });
        Sample::timed(wall, n)
    }

    pub fn w9(rt: &Runtime, n: usize) -> Sample {
        let (sum, wall) = timed(rt, async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(W9_CAPACITY);
            let producer = spawn_local(async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            });
            let consumer = spawn_local(async move {
                let mut sum = 0;
                while let Some(i) = rx.recv().await {
                    sum += i;
                }
                sum
            });
            producer.await.unwrap();
            consumer.await.unwrap()
        });
        assert_eq!(sum, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w7(rt: &Runtime, n: usize) -> Sample {
        let local = LocalSet::new();
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        let heap = local.block_on(rt, async move {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                handles.push(spawn_local(parked()));
            }
            let heap = spawn_local(probe(n, base)).await.unwrap();
            drop(handles);
            heap
        });
        counting(false);
        drop(local);
        Sample { heap: Some(heap), ..Sample::default() }
    }

    pub fn w7event(rt: &Runtime, n: usize) -> Sample {
        let local = LocalSet::new();
        let notify = Rc::new(Notify::new());
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        let heap = local.block_on(rt, async move {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                let notify = notify.clone();
                handles.push(spawn_local(async move {
                    POLLED.fetch_add(1, Relaxed);
                    notify.notified().await; // registers at this first poll
                }));
            }
            let heap = spawn_local(probe(n, base)).await.unwrap();
            notify.notify_waiters();
            for h in handles {
                h.await.unwrap();
            }
            heap
        });
        counting(false);
        Sample { heap: Some(heap), ..Sample::default() }
    }
}

// ---------------------------------------------------------------------------------------------
// smol: LocalExecutor under smol::block_on (which also drives async-io's timers)

mod smol_bench {
    use super::*;
    use smol::LocalExecutor;

    fn timed<T>(ex: &LocalExecutor<'_>, fut: impl Future<Output = T>) -> (T, Duration) {
        let t = Instant::now();
        let out = smol::block_on(ex.run(fut));
        (out, t.elapsed())
    }

    pub fn w1(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let task = ex.spawn(async move {
            for _ in 0..n {
                smol::future::yield_now().await;
            }
            n
        });
        let (out, wall) = timed(&ex, task);
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w2(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (out, wall) = timed(&ex, async {
            let handles: Vec<_> = (0..n).map(|i| ex.spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await;
            }
            sum
        });
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    thread_local! {
        /// For W3, whose tasks spawn tasks: a `'static` executor they can all reach.
        static EX: LocalExecutor<'static> = const { LocalExecutor::new() };
    }

    fn chain(n: usize) -> Pin<Box<dyn Future<Output = usize>>> {
        Box::pin(
            async move { if n == 0 { 0 } else { EX.with(|ex| ex.spawn(chain(n - 1))).await + 1 } },
        )
    }

    pub fn w3(n: usize) -> Sample {
        EX.with(|ex| {
            let (out, wall) = timed(ex, ex.spawn(chain(n)));
            assert_eq!(out, n);
            Sample::timed(wall, n)
        })
    }

    pub fn w4(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (lateness, wall) = timed(&ex, async {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    ex.spawn(async move {
                        let start = Instant::now();
                        smol::Timer::after(NAP).await;
                        start.elapsed().saturating_sub(NAP)
                    })
                })
                .collect();
            let mut lateness = Vec::with_capacity(n);
            for h in handles {
                lateness.push(h.await);
            }
            lateness
        });
        Sample { late: Some(percentiles(lateness)), ..Sample::timed(wall.saturating_sub(NAP), n) }
    }

    pub fn w5(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (out, wall) = timed(&ex, async {
            let handles: Vec<_> = (0..n).map(|i| smol::unblock(move || black_box(i))).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await;
            }
            sum
        });
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w6(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (_, wall) = timed(&ex, async {
            let (tx_a, rx_a) = smol::channel::bounded::<()>(1);
            let (tx_b, rx_b) = smol::channel::bounded::<()>(1);
            let ping = ex.spawn(async move {
                for _ in 0..n {
                    tx_a.send(()).await.unwrap();
                    rx_b.recv().await.unwrap();
                }
            });
            let pong = ex.spawn(async move {
                for _ in 0..n {
                    rx_a.recv().await.unwrap();
                    tx_b.send(()).await.unwrap();
                }
            });
            ping.await;
            pong.await;
        });
        Sample::timed(wall, n)
    }

    pub fn w9(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (sum, wall) = timed(&ex, async {
            let (tx, rx) = smol::channel::bounded(W9_CAPACITY);
            let producer = ex.spawn(async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            });
            let consumer = ex.spawn(async move {
                let mut sum = 0;
                while let Ok(i) = rx.recv().await {
                    sum += i;
                }
                sum
            });
            producer.await;
            consumer.await
        });
        assert_eq!(sum, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    /// Counts its drop: a cancelled smol task's future is dropped when the executor next
    /// reaches it.
    struct Gone(Rc<Cell<usize>>);

    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    pub fn w8(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (waiting, gone) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (_, wall) = timed(&ex, async {
            let (_send, receive) = smol::channel::bounded::<()>(1);
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (receive, waiting) = (receive.clone(), waiting.clone());
                    let gone = Gone(gone.clone());
                    ex.spawn(async move {
                        let _gone = gone;
                        waiting.set(waiting.get() + 1);
                        let _ = receive.recv().await; // registers at this first poll
                    })
                })
                .collect();
            while waiting.get() < n {
                smol::future::yield_now().await;
            }
            drop(tasks);
            while gone.get() < n {
                smol::future::yield_now().await;
            }
        });
        Sample::timed(wall, n)
    }

    pub fn w7(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        let heap = smol::block_on(ex.run(async {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                handles.push(ex.spawn(parked()));
            }
            let heap = ex.spawn(probe(n, base)).await;
            drop(handles);
            heap
        }));
        counting(false);
        drop(ex);
        Sample { heap: Some(heap), ..Sample::default() }
    }

    pub fn w7event(n: usize) -> Sample {
        let ex = LocalExecutor::new();
        let (send, receive) = smol::channel::bounded::<()>(1);
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        let heap = smol::block_on(ex.run(async {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                handles.push(ex.spawn(waiting(receive.clone())));
            }
            let heap = ex.spawn(probe(n, base)).await;
            drop(send); // closing the channel ends every `recv`
            for h in handles {
                h.await;
            }
            heap
        }));
        counting(false);
        Sample { heap: Some(heap), ..Sample::default() }
    }
}

// ---------------------------------------------------------------------------------------------
// futures: LocalPool (and its 2-thread ThreadPool for W5pool)

mod futures_bench {
    use super::*;
    use futures::executor::{LocalSpawner, ThreadPool as FuturesPool};

    fn timed<T>(
        fut: impl FnOnce(LocalSpawner) -> Pin<Box<dyn Future<Output = T>>>,
    ) -> (T, Duration) {
        let mut pool = LocalPool::new();
        let fut = fut(pool.spawner());
        let t = Instant::now();
        let out = pool.run_until(fut);
        (out, t.elapsed())
    }

    pub fn w1(n: usize) -> Sample {
        let (out, wall) = timed(|sp| {
            Box::pin(async move {
                sp.spawn_local_with_handle(async move {
                    for _ in 0..n {
                        yield_now().await;
                    }
                    n
                })
                .unwrap()
                .await
            })
        });
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w2(n: usize) -> Sample {
        let (out, wall) = timed(|sp| {
            Box::pin(async move {
                let handles: Vec<_> =
                    (0..n).map(|i| sp.spawn_local_with_handle(async move { i }).unwrap()).collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await;
                }
                sum
            })
        });
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    fn chain(sp: LocalSpawner, n: usize) -> Pin<Box<dyn Future<Output = usize>>> {
        Box::pin(async move {
            if n == 0 {
                0
            } else {
                sp.spawn_local_with_handle(chain(sp.clone(), n - 1)).unwrap().await + 1
            }
        })
    }

    pub fn w3(n: usize) -> Sample {
        let (out, wall) = timed(|sp| {
            Box::pin(async move { sp.spawn_local_with_handle(chain(sp.clone(), n)).unwrap().await })
        });
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w5pool(pool: &FuturesPool, n: usize) -> Sample {
        let pool = pool.clone();
        let (out, wall) = timed(|_| {
            Box::pin(async move {
                let handles: Vec<_> = (0..n)
                    .map(|i| pool.spawn_with_handle(async move { black_box(i) }).unwrap())
                    .collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await;
                }
                sum
            })
        });
        assert_eq!(out, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w6(n: usize) -> Sample {
        let (_, wall) = timed(|sp| {
            Box::pin(async move {
                let (tx_a, rx_a) = smol::channel::bounded::<()>(1);
                let (tx_b, rx_b) = smol::channel::bounded::<()>(1);
                let ping = sp
                    .spawn_local_with_handle(async move {
                        for _ in 0..n {
                            tx_a.send(()).await.unwrap();
                            rx_b.recv().await.unwrap();
                        }
                    })
                    .unwrap();
                let pong = sp
                    .spawn_local_with_handle(async move {
                        for _ in 0..n {
                            rx_a.recv().await.unwrap();
                            tx_b.send(()).await.unwrap();
                        }
                    })
                    .unwrap();
                ping.await;
                pong.await;
            })
        });
        Sample::timed(wall, n)
    }

    pub fn w9(n: usize) -> Sample {
        use futures::{SinkExt, StreamExt};
        let (sum, wall) = timed(|sp| {
            Box::pin(async move {
                // Room for `buffer` values plus one per sender: 64 in all, as the others.
                let (mut tx, mut rx) = futures::channel::mpsc::channel(W9_CAPACITY - 1);
                let producer = sp
                    .spawn_local_with_handle(async move {
                        for i in 0..n {
                            tx.send(i).await.unwrap();
                        }
                    })
                    .unwrap();
                let consumer = sp
                    .spawn_local_with_handle(async move {
                        let mut sum = 0;
                        while let Some(i) = rx.next().await {
                            sum += i;
                        }
                        sum
                    })
                    .unwrap();
                producer.await;
                consumer.await
            })
        });
        assert_eq!(sum, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w7(n: usize) -> Sample {
        let mut pool = LocalPool::new();
        let sp = pool.spawner();
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        let heap = pool.run_until(async move {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                handles.push(sp.spawn_local_with_handle(parked()).unwrap());
            }
            let heap = sp.spawn_local_with_handle(probe(n, base)).unwrap().await;
            drop(handles);
            heap
        });
        counting(false);
        drop(pool);
        Sample { heap: Some(heap), ..Sample::default() }
    }

    pub fn w7event(n: usize) -> Sample {
        let mut pool = LocalPool::new();
        let sp = pool.spawner();
        let (send, receive) = smol::channel::bounded::<()>(1);
        POLLED.store(0, Relaxed);
        counting(true);
        let base = heap_now();
        let heap = pool.run_until(async move {
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                let handle = sp.spawn_local_with_handle(waiting(receive.clone()));
                handles.push(handle.unwrap());
            }
            let heap = sp.spawn_local_with_handle(probe(n, base)).unwrap().await;
            drop(send); // closing the channel ends every `recv`
            for h in handles {
                h.await;
            }
            heap
        });
        counting(false);
        Sample { heap: Some(heap), ..Sample::default() }
    }

    pub fn thread_pool() -> FuturesPool {
        FuturesPool::builder().pool_size(2).create().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// genawaiter: the floor. A bare `rc::Gen`, type-erased behind `Box<dyn Resume>`, resumed in a
// loop. No scheduler, no outputs table, no errors: what any design built on it pays at least.

mod floor_bench {
    use super::*;

    pub trait Resume {
        /// Resumes once; `Some(output)` when the generator completed.
        fn resume(&mut self) -> Option<usize>;
    }

    impl<F: Future<Output = usize>> Resume for Gen<(), (), F> {
        fn resume(&mut self) -> Option<usize> {
            match Gen::resume(self) {
                GeneratorState::Yielded(()) => None,
                GeneratorState::Complete(out) => Some(out),
            }
        }
    }

    fn erase<F: Future<Output = usize> + 'static>(g: Gen<(), (), F>) -> Box<dyn Resume> {
        black_box(Box::new(g))
    }

    pub fn w1(n: usize) -> Sample {
        let t = Instant::now();
        let mut g = erase(Gen::new(|co| async move {
            for _ in 0..n {
                co.yield_(()).await;
            }
            n
        }));
        let out = loop {
            if let Some(out) = g.resume() {
                break out;
            }
        };
        let wall = t.elapsed();
        assert_eq!(out, n);
        Sample::timed(wall, n)
    }

    pub fn w2(n: usize) -> Sample {
        let t = Instant::now();
        let mut gens: Vec<Box<dyn Resume>> =
            (0..n).map(|i| erase(Gen::new(move |_co| async move { i }))).collect();
        let mut sum = 0;
        for g in &mut gens {
            sum += g.resume().expect("trivial generators complete at once");
        }
        drop(gens);
        let wall = t.elapsed();
        assert_eq!(sum, n * (n - 1) / 2);
        Sample::timed(wall, n)
    }

    pub fn w7(n: usize) -> Sample {
        counting(true);
        let base = heap_now();
        let mut gens: Vec<Box<dyn Resume>> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut g = erase(Gen::new(|co| async move {
                co.yield_(()).await;
                0
            }));
            assert!(g.resume().is_none());
            gens.push(g);
        }
        let heap = per_task(base, n);
        counting(false);
        drop(gens);
        Sample { heap: Some(heap), ..Sample::default() }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness

const SYSTEMS: [&str; 5] = ["tinyio", "tokio", "smol", "futures", "genawaiter"];

struct Ctx {
    tokio: tokio::runtime::Runtime,
    futures_pool: futures::executor::ThreadPool,
}

/// A workload: its name, its size, and how each system runs it (None: no equivalent).
struct Workload {
    name: &'static str,
    what: &'static str,
    n: usize,
    /// The systems that have an equivalent.
    systems: &'static [&'static str],
    /// Measures heap bytes and allocations per suspended task (W7), not time: no warm-up, no
    /// `--allocs` count, and `B/task` in the table.
    bytes: bool,
    run: fn(&Ctx, &str, usize) -> Option<Sample>,
}

fn w1(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w1(n),
        "tokio" => tokio_bench::w1(&cx.tokio, n),
        "smol" => smol_bench::w1(n),
        "futures" => futures_bench::w1(n),
        "genawaiter" => floor_bench::w1(n),
        _ => return None,
    })
}

fn w2(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w2(n),
        "tokio" => tokio_bench::w2(&cx.tokio, n),
        "smol" => smol_bench::w2(n),
        "futures" => futures_bench::w2(n),
        "genawaiter" => floor_bench::w2(n),
        _ => return None,
    })
}

fn w3(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w3(n),
        "tokio" => tokio_bench::w3(&cx.tokio, n),
        "smol" => smol_bench::w3(n),
        "futures" => futures_bench::w3(n),
        _ => return None,
    })
}

fn w4(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w4(n),
        "tokio" => tokio_bench::w4(&cx.tokio, n),
        "smol" => smol_bench::w4(n),
        _ => return None,
    })
}

fn w5(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w5(n),
        "tokio" => tokio_bench::w5(&cx.tokio, n),
        "smol" => smol_bench::w5(n),
        _ => return None,
    })
}

fn w5pool(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w5pool(n),
        "futures" => futures_bench::w5pool(&cx.futures_pool, n),
        _ => return None,
    })
}

fn w6(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w6(n),
        "tokio" => tokio_bench::w6(&cx.tokio, n),
        "smol" => smol_bench::w6(n),
        "futures" => futures_bench::w6(n),
        _ => return None,
    })
}

fn w7(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w7(n),
        "tokio" => tokio_bench::w7(&cx.tokio, n),
        "smol" => smol_bench::w7(n),
        "futures" => futures_bench::w7(n),
        "genawaiter" => floor_bench::w7(n),
        _ => return None,
    })
}

fn w7event(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w7event(n),
        "tokio" => tokio_bench::w7event(&cx.tokio, n),
        "smol" => smol_bench::w7event(n),
        "futures" => futures_bench::w7event(n),
        _ => return None,
    })
}

fn w8(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w8(n),
        "tokio" => tokio_bench::w8(&cx.tokio, n),
        "smol" => smol_bench::w8(n),
        _ => return None,
    })
}

fn w9(cx: &Ctx, system: &str, n: usize) -> Option<Sample> {
    Some(match system {
        "tinyio" => tinyio_bench::w9(n),
        "tokio" => tokio_bench::w9(&cx.tokio, n),
        "smol" => smol_bench::w9(n),
        "futures" => futures_bench::w9(n),
        _ => return None,
    })
}

fn workloads(scale: usize) -> Vec<Workload> {
    let s = |n: usize| (n / scale).max(1);
    vec![
        Workload {
            name: "W1",
            what: "one coroutine pausing",
            n: s(1_000_000),
            systems: &["tinyio", "tokio", "smol", "futures", "genawaiter"],
            bytes: false,
            run: w1,
        },
        Workload {
            name: "W2",
            what: "spawn+gather trivial",
            n: s(100_000),
            systems: &["tinyio", "tokio", "smol", "futures", "genawaiter"],
            bytes: false,
            run: w2,
        },
        Workload {
            name: "W2x10",
            what: "spawn+gather trivial",
            n: s(1_000_000),
            systems: &["tinyio", "tokio", "smol", "futures", "genawaiter"],
            bytes: false,
            run: w2,
        },
        Workload {
            name: "W3",
            what: "chain, each awaits next",
            n: s(10_000),
            systems: &["tinyio", "tokio", "smol", "futures"],
            bytes: false,
            run: w3,
        },
        Workload {
            name: "W4",
            what: "concurrent 10 ms sleeps",
            n: s(10_000),
            systems: &["tinyio", "tokio", "smol"],
            bytes: false,
            run: w4,
        },
        Workload {
            name: "W4x10",
            what: "concurrent 10 ms sleeps",
            n: s(100_000),
            systems: &["tinyio", "tokio", "smol"],
            bytes: false,
            run: w4,
        },
        Workload {
            name: "W5",
            what: "blocking calls, gathered",
            n: s(1_000),
            systems: &["tinyio", "tokio", "smol"],
            bytes: false,
            run: w5,
        },
        Workload {
            name: "W5pool",
            what: "blocking calls, 2-thread pool",
            n: s(1_000),
            systems: &["tinyio", "futures"],
            bytes: false,
            run: w5pool,
        },
        Workload {
            name: "W6",
            what: "event ping-pong round trips",
            n: s(100_000),
            systems: &["tinyio", "tokio", "smol", "futures"],
            bytes: false,
            run: w6,
        },
        Workload {
            name: "W7",
            what: "heap per suspended task",
            n: s(100_000),
            systems: &["tinyio", "tokio", "smol", "futures", "genawaiter"],
            bytes: true,
            run: w7,
        },
        Workload {
            name: "W7event",
            what: "heap per event waiter",
            n: s(100_000),
            systems: &["tinyio", "tokio", "smol", "futures"],
            bytes: true,
            run: w7event,
        },
        Workload {
            name: "W8",
            what: "cancel waiters of one event",
            n: s(100_000),
            systems: &["tinyio", "tokio", "smol"],
            bytes: false,
            run: w8,
        },
        Workload {
            name: "W9",
            what: "channel, 10^6 integers",
            n: s(1_000_000),
            systems: &["tinyio", "tokio", "smol", "futures"],
            bytes: false,
            run: w9,
        },
    ]
}

struct Result_ {
    workload: &'static str,
    system: &'static str,
    ns_per_op: f64,
    late: Option<(f64, f64)>,
    heap: Option<(f64, f64)>,
    allocs: Option<f64>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 { xs[m] } else { (xs[m - 1] + xs[m]) / 2.0 }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let quick = flag("--quick");
    let count_allocs = flag("--allocs");
    let reps: usize =
        value("--reps").map(|r| r.parse().expect("--reps N")).unwrap_or(if quick { 3 } else { 7 });
    let only: Option<Vec<String>> =
        value("--only").map(|s| s.split(',').map(str::to_owned).collect());
    let systems: Vec<&'static str> = match value("--systems") {
        Some(list) => {
            SYSTEMS.iter().copied().filter(|s| list.split(',').any(|x| x == *s)).collect()
        }
        None => SYSTEMS.to_vec(),
    };
    let selected = |w: &Workload| match &only {
        Some(list) => list
            .iter()
            .any(|o| w.name == o || (o.ends_with('*') && w.name.starts_with(&o[..o.len() - 1]))),
        None => true,
    };

    let cx = Ctx { tokio: tokio_bench::runtime(), futures_pool: futures_bench::thread_pool() };
    let scale = if quick { 10 } else { 1 };
    eprintln!(
        "peers: {} mode, {reps} repetitions, median reported; {} cores",
        if quick { "quick (sizes / 10)" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let started = Instant::now();
    let mut results: Vec<Result_> = Vec::new();
    for w in workloads(scale).iter().filter(|w| selected(w)) {
        let active: Vec<&'static str> =
            systems.iter().copied().filter(|s| w.systems.contains(s)).collect();
        // Warm-up at full size (thread pools, allocator arenas), untimed; W7 needs none.
        if !w.bytes {
            for s in &active {
                (w.run)(&cx, s, w.n);
            }
        }
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); active.len()];
        for rep in 0..reps {
            // Interleave: every system once per repetition, starting with a different one each time.
            for k in 0..active.len() {
                let i = (k + rep) % active.len();
                if count_allocs && !w.bytes {
                    CALLS.store(0, Relaxed);
                    counting(true);
                }
                let mut sample = (w.run)(&cx, active[i], w.n).expect("active");
                if count_allocs && !w.bytes {
                    counting(false);
                    sample.allocs = Some(CALLS.load(Relaxed) as f64 / w.n as f64);
                }
                samples[i].push(sample);
            }
        }
        for (i, s) in active.iter().enumerate() {
            let ss = &samples[i];
            let late = ss[0].late.map(|_| {
                (
                    median(ss.iter().map(|x| x.late.unwrap().0).collect()),
                    median(ss.iter().map(|x| x.late.unwrap().1).collect()),
                )
            });
            let heap = ss[0].heap.map(|_| {
                (
                    median(ss.iter().map(|x| x.heap.unwrap().0).collect()),
                    median(ss.iter().map(|x| x.heap.unwrap().1).collect()),
                )
            });
            let allocs =
                ss[0].allocs.map(|_| median(ss.iter().map(|x| x.allocs.unwrap()).collect()));
            results.push(Result_ {
                workload: w.name,
                system: s,
                ns_per_op: median(ss.iter().map(Sample::ns_per_op).collect()),
                late,
                heap,
                allocs,
            });
        }
        eprintln!("  {} done ({:.1} s)", w.name, started.elapsed().as_secs_f64());
    }

    print_table(&workloads(scale), &systems, &results, count_allocs);
    for r in &results {
        println!("{}", json(r));
    }
    eprintln!("peers: finished in {:.1} s", started.elapsed().as_secs_f64());
}

fn json(r: &Result_) -> String {
    let head = format!("{{\"workload\":\"{}\",\"system\":\"{}\"", r.workload, r.system);
    match (r.heap, r.late) {
        (Some((bytes, allocs)), _) => {
            format!("{head},\"bytes_per_task\":{bytes:.1},\"allocs_per_task\":{allocs:.2}}}")
        }
        (None, Some((p50, p99))) => {
            format!(
                "{head},\"ns_per_op\":{:.1},\"p50_late_us\":{p50:.1},\"p99_late_us\":{p99:.1}}}",
                r.ns_per_op
            )
        }
        (None, None) => format!("{head},\"ns_per_op\":{:.1}}}", r.ns_per_op),
    }
}

fn print_table(ws: &[Workload], systems: &[&str], results: &[Result_], count_allocs: bool) {
    let find = |w: &str, s: &str| results.iter().find(|r| r.workload == w && r.system == s);
    println!();
    print!("{:<8} {:<30} {:>8}", "workload", "what", "n");
    for s in systems {
        print!(" {s:>12}");
    }
    println!("  {:>14}", "tinyio/best");
    for w in ws {
        if !results.iter().any(|r| r.workload == w.name) {
            continue;
        }
        let unit = if w.bytes { "B/task" } else { "ns/op" };
        print!("{:<8} {:<30} {:>8}", w.name, format!("{} ({unit})", w.what), w.n);
        let value = |r: &Result_| {
            if let Some((b, _)) = r.heap { b } else { r.ns_per_op }
        };
        for s in systems {
            match find(w.name, s) {
                Some(r) => print!(" {:>12.1}", value(r)),
                None => print!(" {:>12}", "-"),
            }
        }
        // Ratio to the best Rust peer (the genawaiter floor is not a peer).
        let best = results
            .iter()
            .filter(|r| r.workload == w.name && r.system != "tinyio" && r.system != "genawaiter")
            .map(value)
            .fold(f64::INFINITY, f64::min);
        match find(w.name, "tinyio") {
            Some(t) if best.is_finite() => println!("  {:>13.2}x", value(t) / best),
            _ => println!(),
        }
        if results.iter().any(|r| r.workload == w.name && r.late.is_some()) {
            print!("{:<8} {:<30} {:>8}", "", "  p50 / p99 lateness (us)", "");
            for s in systems {
                match find(w.name, s).and_then(|r| r.late) {
                    Some((p50, p99)) => print!(" {:>12}", format!("{p50:.0}/{p99:.0}")),
                    None => print!(" {:>12}", "-"),
                }
            }
            println!();
        }
        if w.bytes {
            print!("{:<8} {:<30} {:>8}", "", "  allocations per task", "");
            for s in systems {
                match find(w.name, s).and_then(|r| r.heap) {
                    Some((_, live)) => print!(" {live:>12.2}"),
                    None => print!(" {:>12}", "-"),
                }
            }
            println!();
        }
        if count_allocs && !w.bytes {
            print!("{:<8} {:<30} {:>8}", "", "  allocation calls per op", "");
            for s in systems {
                match find(w.name, s).and_then(|r| r.allocs) {
                    Some(a) => print!(" {a:>12.2}"),
                    None => print!(" {:>12}", "-"),
                }
            }
            println!();
        }
    }
    println!();
}

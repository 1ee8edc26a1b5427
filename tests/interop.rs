//! Async Rust both ways: tinyio computations awaited from tokio and smol (`IntoFuture`,
//! `to_future`), futures run inside tinyio (`from_future`, `from_tokio`), and errors, panics and
//! cancellation crossing the boundary with the other side cleaned up.
//!
//! Most scenarios run twice, under a tokio current-thread runtime (with a `LocalSet`) and under a
//! smol `LocalExecutor`: the `both!` macro makes a module per scenario with a `tokio` and a `smol`
//! test. Every test runs under a watchdog thread, so that a hang (a blocked executor, a lost
//! wake-up) fails the test instead of stalling the suite. Nothing waits on a sleep: what must
//! have happened first is signalled (an `Event`, a channel), and time is only checked from
//! below.

mod common;

use common::{Arrivals, forever, ms, payload_str, within};
use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::{Either, LocalBoxFuture};
use tinyio::{Coro, Event, Loop, Shared, from_future, from_tokio, run_in_thread, sleep, to_future};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts its drops in a shared counter (each test has its own: the two runtimes' tests of a
/// scenario run in parallel).
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("typed error {0}")]
struct Typed(u32);

// ---------------------------------------------------------------------------------------------
// The two runtimes.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Tokio,
    Smol,
}

/// What a scenario can ask of the runtime it runs under.
#[derive(Clone)]
enum Rt {
    /// A tokio current-thread runtime, inside a `LocalSet`.
    Tokio,
    Smol(Rc<smol::LocalExecutor<'static>>),
}

impl Rt {
    fn kind(&self) -> Kind {
        match self {
            Rt::Tokio => Kind::Tokio,
            Rt::Smol(_) => Kind::Smol,
        }
    }

    /// Spawns a task on the runtime; await the result to get its output.
    fn spawn<T: 'static>(
        &self,
        f: impl Future<Output = T> + 'static,
    ) -> LocalBoxFuture<'static, T> {
        match self {
            Rt::Tokio => {
                let handle = tokio::task::spawn_local(f);
                Box::pin(async move { handle.await.unwrap() })
            }
            Rt::Smol(executor) => Box::pin(executor.spawn(f)),
        }
    }

    /// Spawns a task on the runtime that runs on its own.
    fn spawn_detached(&self, f: impl Future<Output = ()> + 'static) {
        match self {
            Rt::Tokio => drop(tokio::task::spawn_local(f)),
            Rt::Smol(executor) => executor.spawn(f).detach(),
        }
    }

    /// The runtime's own timer.
    fn sleep(&self, d: Duration) -> LocalBoxFuture<'static, ()> {
        match self {
            Rt::Tokio => Box::pin(async move { tokio::time::sleep(d).await }),
            Rt::Smol(_) => Box::pin(async move {
                smol::Timer::after(d).await;
            }),
        }
    }
}

/// Sets its event when dropped: says that a future was dropped, for a test to wait on.
struct SetOnDrop(Event);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// Polls `inner`, then (once) tells `polled`: whoever waits on it knows `inner` has registered
/// its waker by then.
struct TellWhenPolled<F> {
    inner: F,
    polled: Option<mpsc::Sender<()>>,
}

impl<F: Future + Unpin> Future for TellWhenPolled<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = Pin::new(&mut self.inner).poll(cx);
        if let Some(polled) = self.polled.take() {
            let _ = polled.send(());
        }
        out
    }
}

/// Runs the future made by `f` on a fresh runtime of the given kind, on this thread.
fn block_on<F: Future>(kind: Kind, f: impl FnOnce(Rt) -> F) -> F::Output {
    match kind {
        Kind::Tokio => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            tokio::task::LocalSet::new().block_on(&runtime, f(Rt::Tokio))
        }
        Kind::Smol => {
            let executor = Rc::new(smol::LocalExecutor::new());
            smol::block_on(executor.run(f(Rt::Smol(executor.clone()))))
        }
    }
}

/// A module per scenario, with one test per runtime, each under a watchdog.
macro_rules! both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn tokio() {
                super::within(30, || super::$scenario(super::Kind::Tokio));
            }

            #[test]
            fn smol() {
                super::within(30, || super::$scenario(super::Kind::Smol));
            }
        }
    )*};
}

both!(
    future_inside_tinyio_basic,
    future_gathered_with_coroutines,
    future_awaited_twice_via_sharing,
    diamond,
    event_set_from_an_async_task,
    two_tinyio_futures_at_once,
    executor_is_never_blocked,
    tinyio_error_surfaces_as_the_err_of_the_future,
    future_err_raised_with_question_mark_crashes_the_loop,
    panic_in_a_from_future_future_resumes_out_of_the_runtime,
    panic_in_a_coroutine_resumes_out_of_block_on,
    dropping_a_half_finished_future_cancels_it,
    from_future_is_dropped_on_cancellation,
    from_tokio_sleep_and_echo,
    from_tokio_is_aborted_on_cancellation,
    isolate_inside_a_future,
);

// ---------------------------------------------------------------------------------------------
// Coroutines used below.

#[tinyio::coroutine]
fn add_one(x: u32) -> u32 {
    yield_!();
    x + 1
}

#[tinyio::coroutine]
fn slow_add_one(x: u32, millis: u64) -> u32 {
    yield_!(sleep(ms(millis)));
    x + 1
}

#[tinyio::coroutine]
fn fail_after(millis: u64) -> () {
    yield_!(sleep(ms(millis)));
    tinyio::bail!("fail_after failed");
}

// ---------------------------------------------------------------------------------------------
// A future inside tinyio.

fn future_inside_tinyio_basic(kind: Kind) {
    #[tinyio::coroutine]
    fn uses_futures(rt: Rt) -> u32 {
        // A plain future, the runtime's own timer, and the handle of a task spawned on it.
        let two = yield_!(from_future(async { 2 }));
        yield_!(from_future(rt.sleep(ms(10))));
        let forty = yield_!(from_future(rt.spawn({
            let rt = rt.clone();
            async move {
                rt.sleep(ms(10)).await;
                40
            }
        })));
        two + forty
    }

    let start = Instant::now();
    let out = block_on(kind, |rt| async move { uses_futures(rt).await });
    assert_eq!(out.unwrap(), 42);
    assert!(start.elapsed() >= ms(20), "{:?}", start.elapsed());
}

#[test]
fn future_inside_a_plain_loop() {
    #[tinyio::coroutine]
    fn uses_futures() -> (u32, String) {
        let (send, recv) = futures::channel::oneshot::channel();
        let (polled, waiting) = mpsc::channel();
        std::thread::spawn(move || {
            // Sends once the loop waits on the oneshot, and a while later (nothing waits on
            // how long): the wake-up comes from this thread to a loop that sleeps.
            waiting.recv().unwrap();
            std::thread::sleep(ms(30));
            send.send("from a thread".to_string()).unwrap();
        });
        // smol's timer runs without an executor; the oneshot is woken from another thread.
        yield_!(from_future(smol::Timer::after(ms(10))));
        let x = yield_!(from_future(async { 41 }));
        let recv = TellWhenPolled { inner: recv, polled: Some(polled) };
        let message = yield_!(from_future(recv))?;
        (x + 1, message)
    }

    let start = Instant::now();
    let out = within(30, || Loop::new().run(uses_futures()).unwrap());
    assert_eq!(out, (42, "from a thread".to_string()));
    assert!(start.elapsed() >= ms(40), "{:?}", start.elapsed());
}

/// A future in tinyio is polled when its waker fires, not in a busy loop.
#[test]
fn from_future_is_woken_not_polled_in_a_loop() {
    struct CountPolls<F> {
        inner: Pin<Box<F>>,
        polls: Rc<Cell<u32>>,
    }
    impl<F: Future> Future for CountPolls<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.polls.set(self.polls.get() + 1);
            self.inner.as_mut().poll(cx)
        }
    }

    /// Keeps the loop busy for a while with other coroutines, then lets the thread send.
    #[tinyio::coroutine]
    fn meanwhile(then: mpsc::Sender<()>) -> () {
        yield_!((slow_add_one(0, 20), slow_add_one(0, 50)));
        then.send(()).unwrap();
    }

    #[tinyio::coroutine]
    fn root(polls: Rc<Cell<u32>>) -> u32 {
        let (send, recv) = futures::channel::oneshot::channel();
        let (go, wait) = mpsc::channel();
        std::thread::spawn(move || {
            wait.recv().unwrap();
            send.send(7).unwrap();
        });
        let counted = from_future(CountPolls { inner: Box::pin(recv), polls });
        let (x, ()) = yield_!((counted, meanwhile(go)));
        x?
    }

    let out = within(30, || {
        let polls = Rc::new(Cell::new(0));
        let out = Loop::new().run(root(polls.clone())).unwrap();
        (out, polls.get())
    });
    assert_eq!(out.0, 7);
    assert!(out.1 <= 3, "polled {} times for one wake-up", out.1);
}

/// Each of the three slow parts checks in when it starts and, before it ends, waits until all
/// three have: run one after the other, the first would wait forever (and the watchdog would
/// fail the test).
fn future_gathered_with_coroutines(kind: Kind) {
    #[tinyio::coroutine]
    fn checked_in_slow_add_one(x: u32, started: Arc<Arrivals>) -> u32 {
        started.arrive();
        let y = yield_!(slow_add_one(x, 100));
        yield_!(started.all());
        y
    }

    #[tinyio::coroutine]
    fn gather(rt: Rt) -> (u32, u32, u32, u32) {
        let started = Arc::new(Arrivals::new(3));
        let timer = {
            let (rt, started) = (rt.clone(), started.clone());
            async move {
                started.arrive();
                rt.sleep(ms(100)).await;
                started.all().await.unwrap();
                1
            }
        };
        let task = rt.spawn({
            let (rt, started) = (rt.clone(), started.clone());
            async move {
                started.arrive();
                rt.sleep(ms(100)).await;
                started.all().await.unwrap();
                3
            }
        });
        yield_!((
            from_future(timer),
            checked_in_slow_add_one(1, started),
            from_future(task),
            add_one(3)
        ))
    }

    let start = Instant::now();
    let out = block_on(kind, |rt| to_future(gather(rt)));
    let elapsed = start.elapsed();
    assert_eq!(out.unwrap(), (1, 2, 3, 4));
    assert!(elapsed >= ms(100), "{elapsed:?}");
}

fn future_awaited_twice_via_sharing(kind: Kind) {
    #[tinyio::coroutine]
    fn twice(s: Shared<String>) -> (String, String, String) {
        let (a, b) = yield_!((s.clone(), s.clone()));
        let c = yield_!(s);
        (a, b, c)
    }

    let runs = Rc::new(Cell::new(0));
    let out = block_on(kind, |rt| {
        let runs = runs.clone();
        async move {
            let shared = from_future(async move {
                runs.set(runs.get() + 1);
                rt.sleep(ms(5)).await;
                "shared".to_string()
            })
            .share();
            let first = twice(shared.clone()).await.unwrap();
            // Finished: awaiting it again gives the kept output without running it again.
            let again = shared.await.unwrap();
            (first, again)
        }
    });
    let s = "shared".to_string();
    assert_eq!(out, ((s.clone(), s.clone(), s.clone()), s));
    assert_eq!(runs.get(), 1, "the future ran once");
}

// ---------------------------------------------------------------------------------------------
// tinyio inside an async runtime.

fn diamond(kind: Kind) {
    #[tinyio::coroutine]
    fn base(runs: Rc<Cell<u32>>) -> u32 {
        runs.set(runs.get() + 1);
        yield_!(sleep(ms(5)));
        3
    }

    #[tinyio::coroutine]
    fn times(s: Shared<u32>, k: u32) -> u32 {
        let x = yield_!(s);
        yield_!();
        x * k
    }

    #[tinyio::coroutine]
    fn diamond_root(runs: Rc<Cell<u32>>) -> u32 {
        let s = base(runs).share();
        let (a, b) = yield_!((times(s.clone(), 1), times(s, 2)));
        a + b
    }

    let runs = Rc::new(Cell::new(0));
    let (out, gathered) = block_on(kind, |_| {
        let runs = runs.clone();
        async move {
            let out = diamond_root(runs.clone()).await;
            let s = base(runs).share();
            let gathered = to_future((times(s.clone(), 1), times(s, 2))).await;
            (out, gathered)
        }
    });
    assert_eq!(out.unwrap(), 9, "3*1 + 3*2");
    assert_eq!(gathered.unwrap(), (3, 6));
    assert_eq!(runs.get(), 2, "the shared base ran once per diamond");
}

fn event_set_from_an_async_task(kind: Kind) {
    #[tinyio::coroutine]
    fn waiter(event: Event) -> &'static str {
        yield_!(event.wait());
        "woken"
    }

    let start = Instant::now();
    let out = block_on(kind, |rt| async move {
        let event = Event::new();
        rt.spawn_detached({
            let (rt, event) = (rt.clone(), event.clone());
            async move {
                rt.sleep(ms(30)).await;
                event.set();
            }
        });
        waiter(event).await
    });
    assert_eq!(out.unwrap(), "woken");
    assert!(start.elapsed() >= ms(30), "{:?}", start.elapsed());
}

/// Two tinyio computations awaited concurrently on one thread, one setting an event the other
/// waits on.
fn two_tinyio_futures_at_once(kind: Kind) {
    #[tinyio::coroutine]
    fn setter(event: Event) -> u32 {
        yield_!(sleep(ms(20)));
        event.set();
        1
    }

    #[tinyio::coroutine]
    fn waiter(event: Event) -> u32 {
        yield_!(event.wait());
        2
    }

    let out = block_on(kind, |_| async {
        let event = Event::new();
        futures::join!(waiter(event.clone()).into_future(), setter(event).into_future())
    });
    assert_eq!((out.0.unwrap(), out.1.unwrap()), (2, 1));
}

/// While tinyio waits (a 100 ms sleep, then a 100 ms thread call), the executor's thread keeps
/// running another task that ticks every millisecond. Each wait also lasts until the ticker has
/// ticked enough (20 ticks, then 60 in all), which it tells through an event and a channel: a
/// blocked executor would never get there, and the watchdog would fail the test.
fn executor_is_never_blocked(kind: Kind) {
    #[tinyio::coroutine]
    fn waits(sixty: mpsc::Receiver<()>) -> u32 {
        yield_!(sleep(ms(100)));
        yield_!(run_in_thread(move || {
            std::thread::sleep(ms(100)); // busy for a while
            sixty.recv().unwrap();
            5
        }))
    }

    let ticks = Rc::new(Cell::new(0u32));
    let (out, during_sleep, total, elapsed) = block_on(kind, |rt| {
        let ticks = ticks.clone();
        async move {
            let twenty = Event::new();
            let (sixty_send, sixty) = mpsc::channel();
            rt.spawn_detached({
                let (rt, ticks, twenty) = (rt.clone(), ticks.clone(), twenty.clone());
                async move {
                    let tick = || {
                        ticks.set(ticks.get() + 1);
                        match ticks.get() {
                            20 => twenty.set(),
                            60 => sixty_send.send(()).unwrap(),
                            _ => {}
                        }
                    };
                    match rt {
                        Rt::Tokio => {
                            let mut interval = tokio::time::interval(ms(1));
                            loop {
                                interval.tick().await;
                                tick();
                            }
                        }
                        Rt::Smol(_) => {
                            let mut timer = smol::Timer::interval(ms(1));
                            loop {
                                futures::StreamExt::next(&mut timer).await;
                                tick();
                            }
                        }
                    }
                }
            });
            let start = Instant::now();
            // Spawned, not yet polled: the ticker has not ticked yet.
            let before = ticks.get();
            let nap = to_future((sleep(ms(100)), twenty.wait())).await;
            let during_sleep = ticks.get() - before;
            let out = nap.and(waits(sixty).await);
            (out, during_sleep, ticks.get() - before, start.elapsed())
        }
    });
    assert_eq!(out.unwrap(), 5);
    assert!(elapsed >= ms(300), "{elapsed:?}");
    // About 100 ticks during the sleep and 300 in all; a blocked thread would give 0 or 1.
    assert!(during_sleep >= 20, "only {during_sleep} ticks during a 100 ms tinyio sleep");
    assert!(total >= 60, "only {total} ticks during 300 ms of tinyio work");
}

// ---------------------------------------------------------------------------------------------
// Errors, both ways.

fn tinyio_error_surfaces_as_the_err_of_the_future(kind: Kind) {
    #[tinyio::coroutine]
    fn raises() -> u32 {
        yield_!(sleep(ms(10)));
        Err(Typed(3))?;
        0
    }

    let drops = Arc::new(AtomicUsize::new(0));
    let (error, drops_when_err) = block_on(kind, |_| {
        let drops = drops.clone();
        async move {
            // A plain await...
            let error = raises().await.unwrap_err();
            assert_eq!(error.downcast_ref::<Typed>(), Some(&Typed(3)));
            // ...and with a sibling, cancelled by the time the error comes out.
            let error = to_future((raises(), forever(Guard(drops.clone())))).await.unwrap_err();
            (error, count(&drops))
        }
    });
    assert_eq!(error.downcast_ref::<Typed>(), Some(&Typed(3)));
    assert_eq!(error.to_string(), "typed error 3");
    assert_eq!(error.trace().last().map(|f| f.name()), Some("raises"));
    assert_eq!(drops_when_err, 1, "the sibling was cancelled before the future returned");
}

#[tinyio::coroutine]
fn raises_from_future(rt: Option<Rt>) -> u32 {
    let failing = async move {
        match rt {
            Some(rt) => rt.sleep(ms(10)).await,
            None => {
                smol::Timer::after(ms(10)).await;
            }
        }
        Err::<u32, Typed>(Typed(1))
    };
    let x = yield_!(from_future(failing))?;
    x + 1
}

#[tinyio::coroutine]
fn guarded_pair(rt: Option<Rt>, drops: Arc<AtomicUsize>) -> (u32, ()) {
    yield_!((raises_from_future(rt), forever(Guard(drops))))
}

fn future_err_raised_with_question_mark_crashes_the_loop(kind: Kind) {
    let drops = Arc::new(AtomicUsize::new(0));
    let error =
        block_on(kind, |rt| guarded_pair(Some(rt), drops.clone()).into_future()).unwrap_err();
    assert_eq!(error.downcast_ref::<Typed>(), Some(&Typed(1)));
    let names: Vec<_> = error.trace().iter().map(|f| f.name()).collect();
    assert!(names.contains(&"raises_from_future"), "{names:?}");
    assert_eq!(count(&drops), 1, "the sibling was cancelled");
}

#[test]
fn future_err_raised_with_question_mark_crashes_a_plain_loop() {
    let drops = Arc::new(AtomicUsize::new(0));
    let error = within(30, {
        let drops = drops.clone();
        move || Loop::new().run(guarded_pair(None, drops)).unwrap_err()
    });
    assert_eq!(error.downcast_ref::<Typed>(), Some(&Typed(1)));
    assert_eq!(count(&drops), 1, "the sibling was cancelled");
}

#[tinyio::coroutine]
fn panicking_future_with_sibling(drops: Arc<AtomicUsize>) -> () {
    let panics = from_future(async {
        smol::Timer::after(ms(5)).await;
        panic!("panic in a future");
    });
    yield_!((panics, forever(Guard(drops))));
}

/// Waits on the panicking future alone (so the loop keeps it in this coroutine's entry).
#[tinyio::coroutine]
fn awaits_a_panicking_future(guard: Guard) -> () {
    let _guard = guard;
    yield_!(from_future(async {
        smol::Timer::after(ms(5)).await;
        panic!("panic in a future");
    }));
}

#[tinyio::coroutine]
fn panicking_future_awaited_alone(drops: Arc<AtomicUsize>) -> ((), ()) {
    let waiter = awaits_a_panicking_future(Guard(drops.clone()));
    yield_!((waiter, forever(Guard(drops))))
}

/// Runs what `make` builds in a plain loop, which must panic: the panic's message, and how many
/// guards were dropped by the time it resumed out of `run`.
fn loop_run_panics<T: std::fmt::Debug + Send + 'static>(
    make: fn(Arc<AtomicUsize>) -> Coro<T>,
) -> (String, usize) {
    let drops = Arc::new(AtomicUsize::new(0));
    let payload = within(30, {
        let drops = drops.clone();
        move || {
            let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(make(drops))));
            payload_str(&*payload.unwrap_err()).to_string()
        }
    });
    (payload, count(&drops))
}

#[test]
fn panic_in_a_future_awaited_alone_resumes_out_of_loop_run() {
    let (payload, drops) = loop_run_panics(panicking_future_awaited_alone);
    assert_eq!(payload, "panic in a future");
    assert_eq!(drops, 2, "its waiter and the sibling were cancelled before the panic resumed");
}

#[test]
fn panic_in_a_from_future_future_resumes_out_of_loop_run() {
    let (payload, drops) = loop_run_panics(panicking_future_with_sibling);
    assert_eq!(payload, "panic in a future");
    assert_eq!(drops, 1, "the sibling was cancelled before the panic resumed");
}

fn panic_in_a_from_future_future_resumes_out_of_the_runtime(kind: Kind) {
    let drops = Arc::new(AtomicUsize::new(0));
    let payload = catch_unwind(AssertUnwindSafe(|| {
        block_on(kind, |_| panicking_future_with_sibling(drops.clone()).into_future())
    }))
    .unwrap_err();
    assert_eq!(payload_str(&*payload), "panic in a future");
    assert_eq!(count(&drops), 1, "the sibling was cancelled before the panic resumed");
}

fn panic_in_a_coroutine_resumes_out_of_block_on(kind: Kind) {
    #[tinyio::coroutine]
    fn panics() -> u32 {
        yield_!(sleep(ms(5)));
        panic!("panic in a coroutine");
    }

    let drops = Arc::new(AtomicUsize::new(0));
    let result = catch_unwind(AssertUnwindSafe(|| {
        block_on(kind, |_| to_future((panics(), forever(Guard(drops.clone())))))
    }));
    assert_eq!(payload_str(&*result.unwrap_err()), "panic in a coroutine");
    assert_eq!(count(&drops), 1, "the sibling was cancelled before the panic resumed");
}

#[test]
fn panic_in_a_from_tokio_task_resumes_out_of_loop_run() {
    #[tinyio::coroutine]
    fn root() -> () {
        yield_!(from_tokio(async {
            tokio::time::sleep(ms(5)).await;
            panic!("panic in a tokio task");
        }));
    }

    let payload = within(30, || {
        let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(root()))).unwrap_err();
        payload_str(&*payload).to_string()
    });
    assert_eq!(payload, "panic in a tokio task");
}

// ---------------------------------------------------------------------------------------------
// Cancellation across the boundary.

/// Flags of the thread call in `half_finished`; `running` is set once it runs.
#[derive(Clone, Default)]
struct ThreadFlags {
    running: Event,
    started: Arc<AtomicBool>,
    told_to_stop: Arc<AtomicBool>,
    returned: Arc<AtomicBool>,
}

/// Work that never finishes on its own: guarded coroutines, one that sees its cancellation, and
/// a thread call that runs until told to stop.
#[tinyio::coroutine]
fn half_finished(
    drops: Arc<AtomicUsize>,
    saw_cancellation: Arc<AtomicUsize>,
    flags: ThreadFlags,
) -> () {
    #[tinyio::coroutine]
    fn watches(guard: Guard, saw: Arc<AtomicUsize>) -> () {
        let _guard = guard;
        let result = try_yield!(sleep(Duration::from_secs(3600)));
        if let Err(error) = &result {
            assert!(error.is_cancelled(), "{error}");
            saw.fetch_add(1, Ordering::SeqCst);
        }
        result?;
    }

    let thread = run_in_thread(move || {
        flags.started.store(true, Ordering::SeqCst);
        flags.running.set();
        while tinyio::thread::sleep(Duration::from_secs(3600)).is_ok() {}
        flags.told_to_stop.store(true, Ordering::SeqCst);
        // Slow to stop: the loop must still wait for it (nothing waits on how long it takes).
        std::thread::sleep(ms(30));
        flags.returned.store(true, Ordering::SeqCst);
    });
    yield_!((
        forever(Guard(drops.clone())),
        forever(Guard(drops.clone())),
        watches(Guard(drops), saw_cancellation),
        thread
    ));
}

fn dropping_a_half_finished_future_cancels_it(kind: Kind) {
    let drops = Arc::new(AtomicUsize::new(0));
    let saw = Arc::new(AtomicUsize::new(0));
    let flags = ThreadFlags::default();
    let (dropped_unfinished, drops_after, returned_after) = block_on(kind, |_| {
        let (drops, saw, flags) = (drops.clone(), saw.clone(), flags.clone());
        async move {
            // Dropped once its thread call runs.
            let work = Box::pin(half_finished(drops.clone(), saw, flags.clone()).into_future());
            let running = Box::pin(flags.running.wait().into_future());
            let dropped_unfinished = match futures::future::select(work, running).await {
                Either::Left(_) => false,
                Either::Right((_, work)) => {
                    drop(work);
                    true
                }
            };
            // The future has been dropped by now: everything inside was cancelled and joined.
            (dropped_unfinished, count(&drops), flags.returned.load(Ordering::SeqCst))
        }
    });
    assert!(dropped_unfinished);
    assert_eq!(drops_after, 3, "every coroutine's destructors ran when the future was dropped");
    assert_eq!(count(&saw), 1, "the coroutine was resumed with a cancellation");
    assert!(flags.started.load(Ordering::SeqCst), "the thread call had started");
    assert!(flags.told_to_stop.load(Ordering::SeqCst), "the thread call was told to stop");
    assert!(returned_after, "the thread call was joined before the drop returned");
}

#[test]
fn dropping_a_half_finished_future_in_tokio_select() {
    let drops = Arc::new(AtomicUsize::new(0));
    let flags = ThreadFlags::default();
    let (branch, drops_after, returned_after) = within(30, {
        let (drops, flags) = (drops.clone(), flags.clone());
        move || {
            block_on(Kind::Tokio, |_| async move {
                let work = half_finished(drops.clone(), Arc::default(), flags.clone());
                let branch = tokio::select! {
                    _ = work.into_future() => "work",
                    _ = flags.running.wait().into_future() => "thread running",
                };
                (branch, count(&drops), flags.returned.load(Ordering::SeqCst))
            })
        }
    });
    assert_eq!(branch, "thread running");
    assert_eq!(drops_after, 3);
    assert!(returned_after, "the thread call was joined before select! returned");
}

/// Dropped before it was ever polled: nothing ran, nothing leaks.
#[test]
fn dropping_an_unpolled_future() {
    let drops = Arc::new(AtomicUsize::new(0));
    let flags = ThreadFlags::default();
    let future = half_finished(drops.clone(), Arc::default(), flags.clone()).into_future();
    drop(future);
    assert_eq!(count(&drops), 0, "nothing ran: the guards are made by the body");
    assert!(!flags.started.load(Ordering::SeqCst));
}

fn from_future_is_dropped_on_cancellation(kind: Kind) {
    let drops = Arc::new(AtomicUsize::new(0));
    let error = block_on(kind, |_| {
        let guard = Guard(drops.clone());
        let pending = from_future(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        to_future((pending, fail_after(20)))
    })
    .unwrap_err();
    assert_eq!(error.to_string(), "fail_after failed");
    assert_eq!(count(&drops), 1, "the future was dropped by the cancellation");
}

// ---------------------------------------------------------------------------------------------
// from_tokio.

/// Accepts one connection and echoes what it reads until the peer shuts down.
async fn serve_once(listener: TcpListener) -> std::io::Result<usize> {
    let (mut socket, _) = listener.accept().await?;
    let mut buffer = Vec::new();
    socket.read_to_end(&mut buffer).await?;
    socket.write_all(&buffer).await?;
    socket.shutdown().await?;
    Ok(buffer.len())
}

async fn send_and_read(
    addr: std::net::SocketAddr,
    message: &'static [u8],
) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(message).await?;
    stream.shutdown().await?;
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await?;
    Ok(echoed)
}

/// Where the task of a `from_tokio` ran: on this thread (the ambient runtime) or on another.
fn tokio_thread() -> Coro<std::thread::ThreadId> {
    from_tokio(async {
        tokio::time::sleep(ms(20)).await;
        std::thread::current().id()
    })
}

/// A tokio timer, then an echo over loopback TCP, each side a `from_tokio`, gathered by tinyio.
#[tinyio::coroutine]
fn echo() -> (std::thread::ThreadId, Vec<u8>, usize) {
    let thread = yield_!(tokio_thread());
    let listener = yield_!(from_tokio(async { TcpListener::bind("127.0.0.1:0").await }))?;
    let addr = listener.local_addr()?;
    let (served, echoed) = yield_!((
        from_tokio(serve_once(listener)),
        from_tokio(send_and_read(addr, b"hello tinyio"))
    ));
    (thread, echoed?, served?)
}

#[test]
fn from_tokio_sleep_and_echo_from_a_plain_loop() {
    let (start, caller) = (Instant::now(), std::thread::current().id());
    let (thread, echoed, served) = within(30, || Loop::new().run(echo()).unwrap());
    assert!(start.elapsed() >= ms(20));
    assert_ne!(thread, caller, "no ambient runtime: runs on tinyio's own");
    assert_eq!(echoed, b"hello tinyio");
    assert_eq!(served, 12);
}

/// A plain `Loop::run` that blocks a current-thread runtime's thread: that runtime is not being
/// driven, so `from_tokio` must not use it (that would hang).
#[test]
fn from_tokio_in_a_plain_loop_blocking_a_current_thread_runtime() {
    let out = within(30, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { Loop::new().run(echo()) })
    });
    let (_, echoed, _) = out.unwrap();
    assert_eq!(echoed, b"hello tinyio");
}

fn from_tokio_sleep_and_echo(kind: Kind) {
    let caller = std::thread::current().id();
    let (thread, echoed, served) = block_on(kind, |_| echo().into_future()).unwrap();
    assert_eq!(echoed, b"hello tinyio");
    assert_eq!(served, 12);
    match kind {
        // The ambient current-thread runtime, driven by the task awaiting the loop.
        Kind::Tokio => assert_eq!(thread, caller, "ran on the ambient runtime"),
        // No tokio runtime around: tinyio's own.
        Kind::Smol => assert_ne!(thread, caller),
    }
}

/// Inside a multi-thread tokio runtime too (the ambient one is used).
#[test]
fn from_tokio_inside_a_multi_thread_runtime() {
    let out = within(30, || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async { echo().await })
    });
    assert_eq!(out.unwrap().1, b"hello tinyio");
}

/// Fails once `event` is set.
#[tinyio::coroutine]
fn fail_when(event: Event) -> () {
    yield_!(event.wait());
    tinyio::bail!("fail_when failed");
}

/// A tokio task that never ends, and a sibling that fails once the task has started; `dropped`
/// is set when the task's future is dropped.
#[tinyio::coroutine]
fn aborted(drop_guard: Guard, started: Event, dropped: Event) -> () {
    let task = from_tokio({
        let started = started.clone();
        async move {
            let _guards = (drop_guard, SetOnDrop(dropped));
            started.set();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    yield_!((task, fail_when(started)));
}

#[test]
fn from_tokio_is_aborted_on_cancellation_in_a_plain_loop() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (started, dropped) = (Event::new(), Event::new());
    let error = within(30, {
        let (drops, started, dropped) = (drops.clone(), started.clone(), dropped.clone());
        move || {
            let error =
                Loop::new().run(aborted(Guard(drops), started, dropped.clone())).unwrap_err();
            // The abort may be processed by tinyio's runtime thread after `run` returns.
            Loop::new().run(dropped.wait()).unwrap();
            error
        }
    });
    assert_eq!(error.to_string(), "fail_when failed");
    assert!(started.is_set(), "the tokio task had started");
    assert_eq!(count(&drops), 1);
}

fn from_tokio_is_aborted_on_cancellation(kind: Kind) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (started, dropped) = (Event::new(), Event::new());
    let error = block_on(kind, |_| {
        let (drops, started, dropped) = (drops.clone(), started.clone(), dropped.clone());
        async move {
            let error = aborted(Guard(drops.clone()), started, dropped.clone()).await.unwrap_err();
            // The abort is processed when the runtime next runs (tokio) or by tinyio's own.
            dropped.wait().await.unwrap();
            error
        }
    });
    assert_eq!(error.to_string(), "fail_when failed");
    assert!(started.is_set(), "the tokio task had started");
    assert_eq!(count(&drops), 1);
}

/// Smoke check of the helper itself: `Rt::kind` round-trips.
#[test]
fn runtimes_are_what_they_say() {
    assert_eq!(block_on(Kind::Tokio, |rt| async move { rt.kind() }), Kind::Tokio);
    assert_eq!(block_on(Kind::Smol, |rt| async move { rt.kind() }), Kind::Smol);
}

/// An isolated loop inside a tinyio computation awaited from the runtime: the inner loop's timer
/// deadline reaches the executor through both layers, and an error inside stays inside.
fn isolate_inside_a_future(kind: Kind) {
    #[tinyio::coroutine]
    fn inner(fail: bool) -> u32 {
        yield_!(sleep(ms(50)));
        if fail {
            tinyio::bail!("inner failed");
        }
        1
    }

    #[tinyio::coroutine]
    fn root() -> (u32, String) {
        let (ok, err) = yield_!((tinyio::isolate(inner(false)), tinyio::isolate(inner(true))));
        (ok?, err.unwrap_err().to_string())
    }

    let start = Instant::now();
    let out = block_on(kind, |_| root().into_future()).unwrap();
    assert_eq!(out, (1, "inner failed".to_string()));
    assert!(start.elapsed() >= ms(50), "{:?}", start.elapsed());
}

/// A future that wakes itself and returns `Pending` (a cooperative yield) is polled again.
#[test]
fn from_future_that_wakes_itself_while_polled() {
    #[tinyio::coroutine]
    fn yields() -> u32 {
        let mut n = 0;
        for _ in 0..100 {
            yield_!(from_future(smol::future::yield_now()));
            n += 1;
        }
        n
    }

    assert_eq!(within(30, || Loop::new().run(yields())).unwrap(), 100);
}

/// A coroutine may run a nested, blocking `Loop::run`. When the outer computation is awaited
/// from a tokio current-thread runtime, that runtime's only thread is blocked in the nested run,
/// so a `from_tokio` inside must not be spawned on it.
#[test]

fn from_tokio_in_a_nested_loop_run_inside_a_tokio_task() {
    #[tinyio::coroutine]
    fn nested_run() -> u32 {
        let nap = from_tokio(async {
            tokio::time::sleep(ms(10)).await;
            7
        });
        Loop::new().run(nap)?
    }

    let out = within(10, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { nested_run().await })
    });
    assert_eq!(out.unwrap(), 7);
}

/// Wake-ups a run makes itself (events set by its own coroutines) need no one to wake its
/// driver: the run takes them in before it hands back. Polled by hand with a waker that counts
/// its wakes, a ping-pong of 200 events wakes its driver only when a poll runs out of rounds.
#[test]
fn wake_ups_inside_the_run_do_not_wake_its_driver() {
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
    struct Counting(AtomicUsize);
    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let counting = Arc::new(Counting(AtomicUsize::new(0)));
    let waker = std::task::Waker::from(counting.clone());
    let mut cx = Context::from_waker(&waker);
    let (a, b) = (Event::new(), Event::new());
    let mut run = to_future((ping(a.clone(), b.clone(), 100), pong(a, b, 100)));
    let mut pending = 0;
    while Pin::new(&mut run).poll(&mut cx).is_pending() {
        pending += 1;
        assert!(pending < 1_000, "the run does not finish");
    }
    assert!(pending > 0, "the run took more than one poll's rounds");
    assert_eq!(count(&counting.0), pending, "one wake per poll that ran out of rounds");
}

/// Counts wake-ups; its `Arc`'s count tells who still holds a waker made from it.
struct CountWakes(AtomicUsize);

impl std::task::Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_finished_future_leaves_no_waker_behind_with_an_event_it_waited_on() {
    // The future's run is the event's home (the first to wait on it). The event outlives the
    // future, and must not keep the executor's waker (and so the executor's task) alive.
    let counter = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = std::task::Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let event = Event::new();
    let mut future = Box::pin(to_future(event.wait()));
    assert!(future.as_mut().poll(&mut cx).is_pending());
    event.set(); // from outside the run: wakes the executor
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    drop(future);
    drop(waker);
    assert_eq!(Arc::strong_count(&counter), 1, "a waker is still held");
    drop(event);
}

/// A tokio future that is inside its poll when the loop fails: the poll blocks until the failing
/// coroutine has raised, then stays busy a while longer. `run` must not return before the
/// future has been dropped, whether the loop fails with an error or a panic.
#[tinyio::coroutine]
fn blocked_in_poll(drops: Arc<AtomicUsize>, panic: bool) -> () {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let guard = Guard(drops);
    let blocking = from_tokio(std::future::poll_fn(move |_| {
        let _held = &guard;
        let _ = entered_tx.send(());
        let _ = release_rx.recv();
        // Busy after the release, so that a run that did not wait would be long gone.
        std::thread::sleep(ms(100));
        Poll::<()>::Pending
    }));
    let entered = run_in_thread(move || entered_rx.recv().is_ok());
    yield_!((blocking, fails_once(entered, release_tx, panic)));
}

#[tinyio::coroutine]
fn fails_once(entered: Coro<bool>, release: std::sync::mpsc::Sender<()>, panic: bool) -> () {
    assert!(yield_!(entered), "the tokio future entered its poll");
    release.send(()).unwrap();
    if panic {
        panic!("failed by panic");
    }
    tinyio::bail!("failed by error");
}

#[test]
fn no_from_tokio_future_outlives_a_failed_run() {
    for panic in [false, true] {
        let drops = Arc::new(AtomicUsize::new(0));
        let outcome = within(30, {
            let drops = drops.clone();
            move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    Loop::new().run(blocked_in_poll(drops.clone(), panic))
                }));
                // Read before anything else can run: the future is gone when `run` returns.
                (outcome.map(|r| r.map_err(|e| e.to_string())), count(&drops))
            }
        });
        let (outcome, dropped_at_return) = outcome;
        match outcome {
            Ok(result) => {
                assert!(!panic);
                assert_eq!(result.unwrap_err(), "failed by error");
            }
            Err(payload) => {
                assert!(panic);
                assert_eq!(payload_str(&*payload), "failed by panic");
            }
        }
        assert_eq!(dropped_at_return, 1, "the tokio future was dropped before `run` returned");
    }
}

/// A `to_future` whose run spawned a `from_tokio` task on the current-thread runtime that polls
/// it, dropped outside its own `poll` (as `select!` drops a losing branch): the task is aborted
/// and left to that runtime, never joined by blocking the very thread that runtime needs.
#[test]
fn dropping_a_to_future_with_a_from_tokio_task_outside_its_poll() {
    let drops = Arc::new(AtomicUsize::new(0));
    let dropped = within(30, {
        let drops = drops.clone();
        move || {
            block_on(Kind::Tokio, |_| async move {
                let guard = Guard(drops.clone());
                let mut work = to_future(from_tokio(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }));
                // One poll spawns the task (on this runtime: the loop is driven here).
                let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut work).poll(cx)));
                assert!(polled.await.is_pending());
                drop(work);
                // The runtime gets to the aborted task once this task yields.
                tokio::task::yield_now().await;
                count(&drops)
            })
        }
    });
    assert_eq!(dropped, 1, "the aborted task's future was dropped by its runtime");
}

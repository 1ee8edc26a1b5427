//! Core scheduling, ported from Python tinyio's `tests/test_core.py` and `tests/test_basic.py`
//! (test names follow the Python ones, without the `test_` prefix), plus the Rust-only forms of
//! coroutines (methods, generics, borrowed arguments, `return`, `try_yield!`).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{under_valgrind, within};
use tinyio::{Coro, Loop, Shared, background, sleep, sleep_until};

#[tinyio::coroutine]
fn add_one(x: u64) -> u64 {
    yield_!();
    x + 1
}

#[tinyio::coroutine]
fn add_two(x: u64) -> u64 {
    let y = yield_!(add_one(x));
    yield_!(add_one(y))
}

/// `add_one`, counting how many times its body starts.
#[tinyio::coroutine]
fn counted_add_one(x: u64, runs: Rc<Cell<u32>>) -> u64 {
    runs.set(runs.get() + 1);
    yield_!();
    x + 1
}

#[test]
fn basic() {
    assert_eq!(Loop::new().run(add_two(4)).unwrap(), 6);
}

#[test]
fn gather_tuple() {
    #[tinyio::coroutine]
    fn gather(x: u64) -> (u64, u64) {
        yield_!((add_one(x), add_two(x)))
    }
    assert_eq!(Loop::new().run(gather(3)).unwrap(), (4, 5));
    // `run` gathers too.
    assert_eq!(Loop::new().run((add_one(3), add_two(3))).unwrap(), (4, 5));
}

#[test]
fn gather_vec_and_array() {
    #[tinyio::coroutine]
    fn gather(x: u64) -> (Vec<u64>, [u64; 3]) {
        let v = yield_!(vec![add_one(x), add_two(x), add_one(x + 10)]);
        let a = yield_!([add_two(x), add_one(x), add_two(x + 10)]);
        (v, a)
    }
    let (v, a) = Loop::new().run(gather(3)).unwrap();
    assert_eq!(v, [4, 5, 14]);
    assert_eq!(a, [5, 4, 15]);
}

#[test]
fn gather_mixed_nesting() {
    #[tinyio::coroutine]
    fn gather() -> (u64, Vec<u64>, [(u64, u64); 2]) {
        yield_!((
            add_one(0),
            vec![add_one(1), add_two(1)],
            [(add_one(2), add_two(2)), (add_one(3), add_two(3))],
        ))
    }
    assert_eq!(Loop::new().run(gather()).unwrap(), (1, vec![2, 3], [(3, 4), (4, 5)]));
}

#[test]
fn empty_gather() {
    #[tinyio::coroutine]
    fn gather() -> (Vec<u64>, [u64; 0]) {
        let v = yield_!(Vec::<Coro<u64>>::new());
        let a = yield_!([] as [Coro<u64>; 0]);
        yield_!(());
        (v, a)
    }
    let (v, a) = Loop::new().run(gather()).unwrap();
    assert!(v.is_empty());
    assert_eq!(a, [0u64; 0]);
    assert!(Loop::new().run(Vec::<Coro<u64>>::new()).unwrap().is_empty());
}

#[test]
fn multi_yield() {
    #[tinyio::coroutine]
    fn multi_yield(runs: Rc<Cell<u32>>) -> (u64, u64) {
        let foo = counted_add_one(3, runs).share();
        let x = yield_!(foo.clone());
        let y = yield_!(foo);
        (x, y)
    }
    let runs = Rc::new(Cell::new(0));
    assert_eq!(Loop::new().run(multi_yield(runs.clone())).unwrap(), (4, 4));
    assert_eq!(runs.get(), 1);
}

#[test]
fn simultaneous_yield() {
    #[tinyio::coroutine]
    fn simultaneous_yield(runs: Rc<Cell<u32>>) -> (u64, u64) {
        let foo = counted_add_one(3, runs).share();
        yield_!((foo.clone(), foo))
    }
    let runs = Rc::new(Cell::new(0));
    assert_eq!(Loop::new().run(simultaneous_yield(runs.clone())).unwrap(), (4, 4));
    assert_eq!(runs.get(), 1);

    // Also as a `Vec`, with more copies.
    #[tinyio::coroutine]
    fn many(runs: Rc<Cell<u32>>) -> Vec<u64> {
        let foo = counted_add_one(7, runs).share();
        yield_!(vec![foo.clone(), foo.clone(), foo.clone(), foo])
    }
    let runs = Rc::new(Cell::new(0));
    assert_eq!(Loop::new().run(many(runs.clone())).unwrap(), [8, 8, 8, 8]);
    assert_eq!(runs.get(), 1);
}

#[tinyio::coroutine]
fn diamond1(x: u64, runs: Rc<Cell<u32>>) -> u64 {
    let y = counted_add_one(x, runs).share();
    let (a, b) = yield_!((diamond2(y.clone(), 1), diamond2(y, 2)));
    a + b
}

#[tinyio::coroutine]
fn diamond2(y: Shared<u64>, factor: u64) -> u64 {
    let z = yield_!(y);
    z * factor
}

#[test]
fn diamond() {
    let runs = Rc::new(Cell::new(0));
    assert_eq!(Loop::new().run(diamond1(2, runs.clone())).unwrap(), 9);
    assert_eq!(runs.get(), 1);
}

#[test]
fn sleep_gather() {
    #[tinyio::coroutine]
    fn slow_add_one(x: u64) -> u64 {
        yield_!(sleep(Duration::from_millis(100)));
        x + 1
    }
    #[tinyio::coroutine]
    fn big_gather(x: u64) -> Vec<u64> {
        yield_!((0..100).map(|_| slow_add_one(x)).collect::<Vec<_>>())
    }
    let start = Instant::now();
    let out = Loop::new().run(big_gather(1)).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out, vec![2; 100]);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // One after the other would take 10 s; ten times the sleep leaves room for a busy machine.
    // Under valgrind, whose threads wake late, the output is all that is checked.
    if !under_valgrind() {
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }
}

#[test]
fn multi_run() {
    #[tinyio::coroutine]
    fn mul(foo: Shared<u64>) -> u64 {
        let out = yield_!(foo);
        out * 5
    }
    let runs = Rc::new(Cell::new(0));
    let foo = counted_add_one(4, runs.clone()).share();
    let lp = Loop::new();
    assert_eq!(lp.run(mul(foo.clone())).unwrap(), 25);
    assert_eq!(lp.run(mul(foo.clone())).unwrap(), 25);
    assert_eq!(lp.run(mul(foo)).unwrap(), 25);
    assert_eq!(runs.get(), 1);
}

#[test]
fn run_finished_coroutine1() {
    #[tinyio::coroutine]
    fn f(gg: Shared<u64>) -> u64 {
        yield_!(gg)
    }
    let runs = Rc::new(Cell::new(0));
    let gg = counted_add_one(3, runs.clone()).share();
    let lp = Loop::new();
    assert_eq!(lp.run(f(gg.clone())).unwrap(), 4);
    assert_eq!(lp.run(gg).unwrap(), 4);
    assert_eq!(runs.get(), 1);
}

#[test]
fn run_finished_coroutine2() {
    let runs = Rc::new(Cell::new(0));
    let ff = counted_add_one(3, runs.clone()).share();
    let lp = Loop::new();
    assert_eq!(lp.run(ff.clone()).unwrap(), 4);
    assert_eq!(lp.run(ff.clone()).unwrap(), 4);
    // A finished shared coroutine keeps its output in itself: any loop may read it.
    assert_eq!(Loop::new().run(ff).unwrap(), 4);
    assert_eq!(runs.get(), 1);
}

#[tinyio::coroutine]
fn three(runs: Rc<Cell<u32>>) -> u64 {
    runs.set(runs.get() + 1);
    yield_!();
    3
}

#[tinyio::coroutine]
fn await_shared(coro: Shared<u64>) -> u64 {
    yield_!(coro)
}

#[test]
fn waiting_on_already_finished_gather() {
    #[tinyio::coroutine]
    fn g(coro: Shared<u64>, runs: Rc<Cell<u32>>) -> (u64, u64, u64) {
        let first = yield_!(await_shared(coro.clone()));
        let (a, b) = yield_!((three(runs), coro));
        (first, a, b)
    }
    let runs = Rc::new(Cell::new(0));
    let foo = three(runs.clone()).share();
    assert_eq!(Loop::new().run(g(foo, runs.clone())).unwrap(), (3, 3, 3));
    assert_eq!(runs.get(), 2);
}

#[test]
fn waiting_on_already_finished_background() {
    #[tinyio::coroutine]
    fn g(coro: Shared<u64>, runs: Rc<Cell<u32>>) -> u64 {
        let first = yield_!(await_shared(coro.clone()));
        yield_!(background((three(runs), coro)));
        first
    }
    let runs = Rc::new(Cell::new(0));
    let foo = three(runs.clone()).share();
    assert_eq!(Loop::new().run(g(foo, runs.clone())).unwrap(), 3);
    // `foo` ran once, the fresh `three` in the background ran too, before `run` returned.
    assert_eq!(runs.get(), 2);
}

/// Pauses until `flag` is set, counting its pauses; then returns 3.
#[tinyio::coroutine]
fn until_set(flag: Rc<Cell<bool>>, progress: Rc<Cell<u32>>) -> u64 {
    while !flag.get() {
        progress.set(progress.get() + 1);
        yield_!();
    }
    3
}

#[tinyio::coroutine]
fn set_flag(flag: Rc<Cell<bool>>) -> () {
    flag.set(true);
    yield_!();
}

#[tinyio::coroutine]
fn background_h(
    ff: Shared<u64>,
    flag: Rc<Cell<bool>>,
    progress: Rc<Cell<u32>>,
    wait_on_f: bool,
) -> bool {
    let () = yield_!(background(ff.clone()));
    // `ff` runs while this coroutine goes on.
    for _ in 0..5 {
        yield_!();
    }
    assert!(progress.get() >= 3, "the background coroutine did not run meanwhile");
    yield_!(set_flag(flag));
    if wait_on_f {
        assert_eq!(yield_!(ff), 3);
    }
    true
}

#[test]
fn background_runs_meanwhile() {
    for wait_on_f in [false, true] {
        let flag = Rc::new(Cell::new(false));
        let progress = Rc::new(Cell::new(0));
        let ff = until_set(flag.clone(), progress.clone()).share();
        let done = Loop::new().run(background_h(ff.clone(), flag, progress, wait_on_f)).unwrap();
        assert!(done);
        // Even when not awaited, `run` finished it.
        assert_eq!(Loop::new().run(ff).unwrap(), 3);
    }
}

#[test]
fn background_already_waiting() {
    #[tinyio::coroutine]
    fn i(
        ff: Shared<u64>,
        flag: Rc<Cell<bool>>,
        progress: Rc<Cell<u32>>,
        wait_on_f: bool,
    ) -> (u64, bool) {
        yield_!((ff.clone(), background_h(ff, flag, progress, wait_on_f)))
    }
    for wait_on_f in [false, true] {
        let flag = Rc::new(Cell::new(false));
        let progress = Rc::new(Cell::new(0));
        let ff = until_set(flag.clone(), progress.clone()).share();
        let out = Loop::new().run(i(ff, flag, progress, wait_on_f)).unwrap();
        assert_eq!(out, (3, true));
    }
}

#[test]
fn empty_background() {
    #[tinyio::coroutine]
    fn f() -> u64 {
        yield_!(background(Vec::<Coro<u64>>::new()));
        yield_!(background(()));
        yield_!(background([] as [Coro<u64>; 0]));
        3
    }
    assert_eq!(Loop::new().run(f()).unwrap(), 3);
}

#[test]
fn background_multiple_yields() {
    #[tinyio::coroutine]
    fn g(runs: Rc<Cell<u32>>) -> (u64, u64) {
        let ff = three(runs).share();
        yield_!(background(ff.clone()));
        yield_!(background(ff.clone()));
        let x = yield_!(ff.clone());
        let y = yield_!(ff);
        (x, y)
    }
    let runs = Rc::new(Cell::new(0));
    assert_eq!(Loop::new().run(g(runs.clone())).unwrap(), (3, 3));
    assert_eq!(runs.get(), 1);
}

#[test]
fn background_output_via_share() {
    #[tinyio::coroutine]
    fn g(runs: Rc<Cell<u32>>) -> u64 {
        let ff = three(runs.clone()).share();
        yield_!(background(ff.clone()));
        yield_!();
        yield_!();
        // Already finished by now: read without running it again.
        assert_eq!(runs.get(), 1);
        yield_!(ff) + 1
    }
    let runs = Rc::new(Cell::new(0));
    assert_eq!(Loop::new().run(g(runs.clone())).unwrap(), 4);
    assert_eq!(runs.get(), 1);
}

/// What one `yield_!` starts is filed in order, except that the first coroutine it waits on
/// comes first, even after coroutines it started in the background ahead of it.
#[test]
fn first_waited_on_starts_first() {
    #[tinyio::coroutine]
    fn mark(log: Rc<RefCell<Vec<&'static str>>>, name: &'static str) {
        log.borrow_mut().push(name);
    }
    #[tinyio::coroutine]
    fn g(log: Rc<RefCell<Vec<&'static str>>>) {
        let m = |name| mark(log.clone(), name);
        yield_!((background((m("bg1"), m("bg2"))), m("first"), background(m("bg3")), m("second")));
    }
    let log = Rc::new(RefCell::new(Vec::new()));
    Loop::new().run(g(log.clone())).unwrap();
    assert_eq!(*log.borrow(), ["first", "bg1", "bg2", "bg3", "second"]);
}

#[tinyio::coroutine]
fn no_yield() -> u64 {
    3
}

#[test]
fn no_yield_direct() {
    assert_eq!(Loop::new().run(no_yield()).unwrap(), 3);
}

#[test]
fn no_yield_indirect() {
    #[tinyio::coroutine]
    fn g() -> u64 {
        yield_!(no_yield())
    }
    assert_eq!(Loop::new().run(g()).unwrap(), 3);
    assert_eq!(Loop::new().run((no_yield(), no_yield().share())).unwrap(), (3, 3));
}

#[test]
fn event_fairness() {
    // Both wake at the same deadline; the first must not run its 20 pauses before the second
    // records its wake-up.
    #[tinyio::coroutine]
    fn f(deadline: Instant, outs: Rc<RefCell<Vec<u32>>>) -> () {
        yield_!(sleep_until(deadline));
        outs.borrow_mut().push(1);
        for _ in 0..20 {
            yield_!();
        }
        outs.borrow_mut().push(2);
    }
    let outs = Rc::new(RefCell::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_millis(20);
    Loop::new().run((f(deadline, outs.clone()), f(deadline, outs.clone()))).unwrap();
    assert_eq!(*outs.borrow(), [1, 1, 2, 2]);
}

#[test]
fn event_fairness2() {
    #[tinyio::coroutine]
    fn f(outs: Rc<RefCell<Vec<u32>>>) -> () {
        yield_!(sleep(Duration::ZERO));
        outs.borrow_mut().push(1);
    }
    #[tinyio::coroutine]
    fn g(outs: Rc<RefCell<Vec<u32>>>) -> () {
        yield_!(background(f(outs.clone())));
        for _ in 0..20 {
            yield_!();
        }
        outs.borrow_mut().push(2);
    }
    let outs = Rc::new(RefCell::new(Vec::new()));
    Loop::new().run(g(outs.clone())).unwrap();
    assert_eq!(*outs.borrow(), [1, 2]);
}

/// Pauses `n` times, then returns `n`.
#[tinyio::coroutine]
fn pauses(n: u32) -> u32 {
    for _ in 0..n {
        yield_!(sleep(Duration::from_millis(1)));
    }
    n
}

#[test]
fn yield_started_generator() {
    #[tinyio::coroutine]
    fn outer(s: Shared<u32>) -> String {
        yield_!(background(s.clone()));
        yield_!();
        // `s` is scheduled by this run and not finished: another loop cannot wait on it.
        let err = Loop::new().run(s.clone()).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        let message = err.to_string();
        // This run still finishes `s`.
        assert_eq!(yield_!(s), 5);
        message
    }
    let message = Loop::new().run(outer(pauses(5).share())).unwrap();
    assert!(message.contains("has already started"), "{message}");
    assert!(message.contains("pauses"), "{message}");
}

#[test]
fn yield_started_generator_from_a_coroutine_of_another_loop() {
    #[tinyio::coroutine]
    fn inner(s: Shared<u32>) -> u32 {
        yield_!();
        yield_!(s)
    }
    #[tinyio::coroutine]
    fn outer(s: Shared<u32>) -> bool {
        yield_!(background(s.clone()));
        yield_!();
        let err = Loop::new().run(inner(s)).unwrap_err();
        assert!(err.to_string().contains("has already started"), "{err:?}");
        err.is_cancelled()
    }
    assert!(Loop::new().run(outer(pauses(5).share())).unwrap());
}

#[test]
fn yield_shared_cancelled_in_an_earlier_run() {
    #[tinyio::coroutine]
    fn crash(s: Shared<u32>) -> u32 {
        yield_!(background(s));
        yield_!();
        tinyio::bail!("crash");
    }
    let s = pauses(1000).share();
    let lp = Loop::new();
    assert_eq!(lp.run(crash(s.clone())).unwrap_err().to_string(), "crash");
    // `s` was cancelled: it has no output to give, and is not silently restarted.
    let err = lp.run(s).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(err.to_string().contains("`pauses` was cancelled when its run"), "{err:?}");
}

#[test]
fn yield_shared_that_failed_or_timed_out_in_an_earlier_run() {
    #[tinyio::coroutine]
    fn fails() -> u32 {
        yield_!();
        tinyio::bail!("failed");
    }
    let lp = Loop::new();
    let failed = fails().share();
    assert_eq!(lp.run(failed.clone()).unwrap_err().to_string(), "failed");
    let err = lp.run(failed).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(err.to_string().contains("`fails` failed, so it has no output"), "{err:?}");

    #[tinyio::coroutine]
    fn times_out(s: Shared<u32>) -> Option<u32> {
        yield_!(background(s.clone()));
        yield_!();
        yield_!(tinyio::timeout(s, Duration::ZERO))
    }
    let slow = pauses(1000).share();
    assert_eq!(lp.run(times_out(slow.clone())).unwrap(), None);
    let err = lp.run(slow).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(err.to_string().contains("`pauses` was stopped by a timeout"), "{err:?}");
}

#[test]
fn reentrant() {
    #[tinyio::coroutine]
    fn g(ran: Rc<Cell<bool>>) -> () {
        ran.set(true);
        yield_!();
    }
    #[tinyio::coroutine]
    fn f(lp: &Loop, ran: Rc<Cell<bool>>) -> () {
        yield_!();
        lp.run(g(ran))?;
    }
    let lp = Loop::new();
    let ran = Rc::new(Cell::new(false));
    let err = lp.run(f(&lp, ran.clone())).unwrap_err();
    assert!(err.to_string().contains("currently running"), "{err:?}");
    assert!(!ran.get());
    // The loop is usable again afterwards.
    lp.run(g(ran.clone())).unwrap();
    assert!(ran.get());
}

#[test]
fn nested_loop() {
    #[tinyio::coroutine]
    fn inner(x: u64) -> u64 {
        let (a, b) = yield_!((add_two(x), sleep(Duration::from_millis(5))));
        let () = b;
        a
    }
    #[tinyio::coroutine]
    fn outer(x: u64) -> u64 {
        yield_!();
        let nested = Loop::new().run((inner(x), inner(x + 1)))?;
        let mine = yield_!(add_one(x));
        nested.0 + nested.1 + mine
    }
    let out = Loop::new().run((outer(1), add_two(10))).unwrap();
    assert_eq!(out, ((1 + 2) + (2 + 2) + (1 + 1), 12));
}

/// An event set by a coroutine wakes its waiter even when the setter then runs a nested loop
/// in the same step: the nested run must not take the outer run's wake-ups as its own.
#[test]
fn nested_loop_after_setting_an_event() {
    #[tinyio::coroutine]
    fn waiter(event: tinyio::Event) -> &'static str {
        yield_!(event.wait());
        "woken"
    }
    #[tinyio::coroutine]
    fn inner() -> () {
        // The nested run's own event, set and waited on inside it.
        let event = tinyio::Event::new();
        let wait = event.wait();
        event.set();
        yield_!(wait);
    }
    #[tinyio::coroutine]
    fn setter(event: tinyio::Event) -> () {
        yield_!(); // the waiter waits by now
        event.set();
        Loop::new().run(inner())?;
    }
    let event = tinyio::Event::new();
    let out =
        within(10, move || Loop::new().run((waiter(event.clone()), setter(event))).unwrap().0);
    assert_eq!(out, "woken");
}

struct Counter {
    base: u64,
}

impl Counter {
    #[tinyio::coroutine]
    fn add(&self, x: u64) -> u64 {
        let y = yield_!(add_one(x));
        self.base + y
    }

    #[tinyio::coroutine]
    fn into_sum(self, xs: Vec<u64>) -> u64 {
        let ys = yield_!(xs.into_iter().map(add_one).collect::<Vec<_>>());
        self.base + ys.into_iter().sum::<u64>()
    }
}

#[tinyio::coroutine]
fn generic<T: Clone + std::fmt::Debug + 'static>(x: T, n: usize) -> Vec<T> {
    let mut out = Vec::new();
    for _ in 0..n {
        yield_!();
        out.push(x.clone());
    }
    out
}

#[tinyio::coroutine]
fn borrowed(text: &str, sep: char) -> Vec<&str> {
    yield_!();
    text.split(sep).collect()
}

#[tinyio::coroutine]
fn borrowed_mut(total: &mut u64, xs: &[u64]) -> () {
    for x in xs {
        *total += yield_!(add_one(*x));
    }
}

#[test]
fn method_generic_and_borrowing_coroutines() {
    let counter = Counter { base: 100 };
    let lp = Loop::new();
    assert_eq!(lp.run(counter.add(1)).unwrap(), 102);
    assert_eq!(lp.run(Counter { base: 10 }.into_sum(vec![1, 2, 3])).unwrap(), 19);
    assert_eq!(lp.run(generic("x".to_string(), 3)).unwrap(), ["x", "x", "x"]);
    assert_eq!(lp.run(generic(7u8, 0)).unwrap(), Vec::<u8>::new());
    let text = String::from("a,b,c");
    let parts = lp.run(borrowed(&text, ',')).unwrap();
    assert_eq!(parts, ["a", "b", "c"]);
    let mut total = 0;
    let xs = [1, 2, 3];
    lp.run(borrowed_mut(&mut total, &xs)).unwrap();
    assert_eq!(total, 9);
    // Borrowing coroutines gather and share like the others.
    let (a, b) = lp.run((counter.add(5), borrowed(&text, 'b').share())).unwrap();
    assert_eq!((a, b), (106, vec!["a,", ",c"]));
}

#[test]
fn return_as_written() {
    #[tinyio::coroutine]
    fn early(x: u64) -> u64 {
        for i in 0..10 {
            yield_!();
            if i == x {
                return i * 10;
            }
        }
        if x > 100 {
            return yield_!(add_one(x));
        }
        let y = match x {
            50 => return 5000,
            60 => 6,
            _ => x,
        };
        y * 10
    }
    #[tinyio::coroutine]
    fn unit(log: Rc<RefCell<Vec<u64>>>) -> () {
        log.borrow_mut().push(1);
        yield_!();
        if !log.borrow().is_empty() {
            return;
        }
        log.borrow_mut().push(2);
    }
    let lp = Loop::new();
    assert_eq!(lp.run(early(3)).unwrap(), 30);
    assert_eq!(lp.run(early(200)).unwrap(), 201);
    assert_eq!(lp.run(early(50)).unwrap(), 5000);
    assert_eq!(lp.run(early(60)).unwrap(), 60);
    assert_eq!(lp.run(early(70)).unwrap(), 700);
    let log = Rc::new(RefCell::new(Vec::new()));
    lp.run(unit(log.clone())).unwrap();
    assert_eq!(*log.borrow(), [1]);
}

#[test]
fn try_yield_ok() {
    #[tinyio::coroutine]
    fn f() -> u64 {
        let one: Result<u64, tinyio::Error> = try_yield!(add_one(1));
        let pair = try_yield!((add_one(2), add_two(2)));
        let nothing = try_yield!();
        nothing?;
        let (a, b) = pair?;
        one? + a + b
    }
    assert_eq!(Loop::new().run(f()).unwrap(), 2 + 3 + 4);
}

#[test]
fn names() {
    assert_eq!(add_one(1).name(), "add_one");
    assert_eq!(add_one(1).share().name(), "add_one");
    assert_eq!(sleep(Duration::ZERO).name(), "sleep");
    let counter = Counter { base: 0 };
    assert_eq!(counter.add(1).name(), "add");
}

/// The handles meant to cross threads do; coroutines (which hold `Rc`s) stay on their loop.
#[test]
fn thread_safety_of_public_types() {
    fn send<T: Send>() {}
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send::<Loop>();
    send::<tinyio::Error>();
    send_sync_clone::<tinyio::StopHandle>();
    send_sync_clone::<tinyio::Event>();
    send_sync_clone::<tinyio::Semaphore>();
    send_sync_clone::<tinyio::Lock<Vec<u8>>>();
    send_sync_clone::<tinyio::Barrier>();
    send_sync_clone::<tinyio::ThreadPool>();
}

#[tinyio::coroutine]
fn fails_after_pause(x: u64) -> u64 {
    yield_!();
    tinyio::bail!("failed at {x}");
}

/// A loop keeps the room of its runs (its table of coroutines): runs after a large one, after a
/// failed one, and on another thread, start from a clean table.
#[test]
fn a_loop_reused_after_large_and_failed_runs_and_moved_to_another_thread() {
    let lp = Loop::new();
    let many: Vec<Coro<u64>> = (0..10_000).map(add_one).collect();
    let out = lp.run(many).unwrap();
    assert_eq!(out.iter().sum::<u64>(), (1..=10_000).sum::<u64>());

    let failing = (add_two(1), vec![add_one(1), fails_after_pause(7)]);
    assert_eq!(lp.run(failing).unwrap_err().to_string(), "failed at 7");

    let lp = std::thread::spawn(move || {
        assert_eq!(lp.run((add_two(1), add_one(5))).unwrap(), (3, 6));
        lp
    })
    .join()
    .unwrap();
    assert_eq!(lp.run(add_two(40)).unwrap(), 42);
}

mod common;

use common::on_stall;
use std::cell::Cell;
use std::time::Duration;
use tinyio::{Event, Loop, Shared};

thread_local! {
    /// How many `add_one` sleep now, and the most that slept at once.
    static SLEEPING: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

#[tinyio::coroutine]
fn add_one(x: u64) -> u64 {
    SLEEPING.with(|s| {
        let (now, most) = s.get();
        s.set((now + 1, most.max(now + 1)));
    });
    yield_!(tinyio::sleep(Duration::from_millis(10)));
    SLEEPING.with(|s| s.set((s.get().0 - 1, s.get().1)));
    x + 1
}

#[tinyio::coroutine]
fn foo() -> (u64, u64) {
    let (four, five) = yield_!((add_one(3), add_one(4)));
    (four, five)
}

#[tinyio::coroutine]
fn diamond(s: Shared<u64>) -> u64 {
    let (a, b) = yield_!((twice(s.clone()), twice(s)));
    a + b
}

#[tinyio::coroutine]
fn twice(s: Shared<u64>) -> u64 {
    2 * yield_!(s)
}

#[tinyio::coroutine]
fn borrow(x: &str) -> usize {
    yield_!();
    x.len()
}

#[test]
fn smoke() {
    assert_eq!(Loop::new().run(foo()).unwrap(), (4, 5));
    assert_eq!(SLEEPING.with(Cell::get), (0, 2), "both slept at once");
    assert_eq!(Loop::new().run(diamond(add_one(2).share())).unwrap(), 12);
    let s = String::from("hello");
    assert_eq!(Loop::new().run(borrow(&s)).unwrap(), 5);
    // Set from a thread once the loop waits for it.
    let e = Event::new();
    let e2 = e.clone();
    let (lp, stalled) = on_stall(Loop::new(), Duration::from_millis(1));
    std::thread::spawn(move || {
        stalled.recv().unwrap();
        e2.set()
    });
    lp.run(e.wait()).unwrap();
    let t = tinyio::timeout(tinyio::sleep(Duration::from_secs(10)), Duration::from_millis(5));
    assert_eq!(Loop::new().run(t).unwrap(), None);
    let r = Loop::new().run(tinyio::run_in_thread(|| 41 + 1)).unwrap();
    assert_eq!(r, 42);
}

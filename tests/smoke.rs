use std::time::{Duration, Instant};
use tinyio::{Event, Loop, Shared};

#[tinyio::coroutine]
fn add_one(x: u64) -> u64 {
    yield_!(tinyio::sleep(Duration::from_millis(10)));
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
    let start = Instant::now();
    assert_eq!(Loop::new().run(foo()).unwrap(), (4, 5));
    assert!(start.elapsed() < Duration::from_millis(18));
    assert_eq!(Loop::new().run(diamond(add_one(2).share())).unwrap(), 12);
    let s = String::from("hello");
    assert_eq!(Loop::new().run(borrow(&s)).unwrap(), 5);
    let e = Event::new();
    let e2 = e.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        e2.set()
    });
    Loop::new().run(e.wait()).unwrap();
    let t = tinyio::timeout(
        tinyio::sleep(Duration::from_secs(10)),
        Duration::from_millis(5),
    );
    assert_eq!(Loop::new().run(t).unwrap(), None);
    let r = Loop::new().run(tinyio::run_in_thread(|| 41 + 1)).unwrap();
    assert_eq!(r, 42);
}

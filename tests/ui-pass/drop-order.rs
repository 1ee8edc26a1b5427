// Every argument lives as long as the coroutine, as for an `async fn`, even one the body never
// uses: it is dropped when the coroutine ends, not when the function returns.
use std::sync::atomic::{AtomicUsize, Ordering};
use tinyio::Loop;

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

fn dropped() -> usize {
    DROPPED.load(Ordering::SeqCst)
}

#[tinyio::coroutine]
fn holds(_guard: Guard, _: Guard, (n, _): (usize, Guard), before: usize) -> usize {
    yield_!();
    assert_eq!(
        dropped(),
        before,
        "an argument was dropped before the coroutine ended"
    );
    n
}

struct Holder {
    n: usize,
    _guard: Guard,
}

impl Holder {
    #[tinyio::coroutine]
    fn take(self, before: usize) -> usize {
        yield_!();
        assert_eq!(
            dropped(),
            before,
            "`self` was dropped before the coroutine ended"
        );
        self.n
    }
}

fn main() {
    let coro = holds(Guard, Guard, (1, Guard), 0);
    assert_eq!(dropped(), 0);
    assert_eq!(Loop::new().run(coro).unwrap(), 1);
    assert_eq!(dropped(), 3);

    let coro = Holder {
        n: 2,
        _guard: Guard,
    }
    .take(3);
    assert_eq!(dropped(), 3);
    assert_eq!(Loop::new().run(coro).unwrap(), 2);
    assert_eq!(dropped(), 4);

    drop(holds(Guard, Guard, (3, Guard), 4));
    assert_eq!(dropped(), 7);
}

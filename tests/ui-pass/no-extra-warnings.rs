// No warning comes from the expansion: `yield_!` needs no import, and `mut` or unused arguments
// warn no more than in a plain function.
#![deny(warnings)]

use tinyio::Loop;

mod imported {
    pub struct Pair(pub u32, pub u32);

    impl Pair {
        #[tinyio::coroutine]
        pub fn sum(self) -> u32 {
            yield_!();
            self.0 + self.1
        }
    }
}

mod not_imported {
    #[tinyio::coroutine]
    pub fn twice(x: u32) -> u32 {
        yield_!();
        try_yield!(())?;
        2 * x
    }
}

#[tinyio::coroutine]
fn count(mut n: u32, _unused: String, (a, _): (u32, u32), _: u8) -> u32 {
    n += a;
    let sum = yield_!(imported::Pair(n, 1).sum());
    try_yield!(())?;
    yield_!(not_imported::twice(sum))
}

#[tinyio::coroutine]
fn nothing() {}

// Tails of functions without `-> T`: `()`, a `yield_!` of `()`, and ones that diverge.
#[tinyio::coroutine]
fn ends_in_unit() {
    yield_!(nothing())
}

#[tinyio::coroutine]
fn unfinished(ready: bool) {
    if ready { nothing_at_all() } else { todo!() }
}

fn nothing_at_all() {}

#[tinyio::coroutine]
fn stops() {
    panic!("stop")
}

#[tinyio::coroutine(crate = tinyio)]
fn named() -> u8 {
    yield_!(ends_in_unit());
    1
}

fn main() {
    let lp = Loop::new();
    assert_eq!(lp.run(count(1, String::new(), (2, 3), 4)).unwrap(), 8);
    lp.run(nothing()).unwrap();
    lp.run(unfinished(true)).unwrap();
    assert_eq!(lp.run(named()).unwrap(), 1);
    let _ = stops;
}

// The same from an integration test, which the attribute finds through this package's
// Cargo.toml too. The library's coroutines are compiled here again (it is built only for its
// own tests, as the runtime is a dev-dependency).
use tio::{Coro, Loop};

#[path = "../src/coroutines.rs"]
mod tinyio_renamed;

#[tio::coroutine]
fn outer() -> (u64, u64, u64) {
    let a = yield_!(tinyio_renamed::add_one(1));
    let (b, c) = yield_!(tinyio_renamed::both(a));
    (a, b, c)
}

#[tio::coroutine(crate = ::tio)]
fn explicit() -> u64 {
    yield_!(tinyio_renamed::through_path(0))
}

#[test]
fn renamed_dependency() {
    let coro: Coro<_> = outer();
    assert_eq!(Loop::new().run(coro).unwrap(), (2, 4, 3));
    assert_eq!(Loop::new().run(explicit()).unwrap(), 10);
}

#[test]
fn raising_through_the_renamed_crate() {
    #[tio::coroutine]
    fn fails() -> u8 {
        yield_!();
        tio::bail!("no");
    }
    let err = Loop::new().run(fails()).unwrap_err();
    assert_eq!(err.to_string(), "no");
    assert_eq!(err.trace()[0].name(), "fails");
}

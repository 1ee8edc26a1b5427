// Local modules named like the crates the expansion names must not change it.
mod core {}
mod std {}
mod __private {}

mod without_prelude {
    #![no_implicit_prelude]

    #[::tinyio::coroutine]
    pub fn add(x: u64, y: u64) -> u64 {
        yield_!();
        x + y
    }
}

#[tinyio::coroutine]
fn add_one(x: u64) -> u64 {
    let y = yield_!(without_prelude::add(x, 1));
    ::core::assert_eq!(y, x + 1);
    y
}

fn main() {
    ::core::assert_eq!(tinyio::Loop::new().run(add_one(1)).unwrap(), 2);
}

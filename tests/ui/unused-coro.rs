#![deny(unused_must_use)]

#[tinyio::coroutine]
fn work() -> u32 {
    1
}

fn main() {
    work();
}

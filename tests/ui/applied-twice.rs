// Twice, the attribute would silently make a coroutine whose output is a coroutine.
#[tinyio::coroutine]
#[tinyio::coroutine]
fn twice() -> u32 {
    yield_!();
    1
}

fn main() {}

#[tinyio::coroutine]
fn count(x: u32) {
    yield_!();
    x + 1
}

fn main() {}

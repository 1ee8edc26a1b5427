#[tinyio::coroutine]
fn wait() -> u32 {
    yield_!(3u32)
}

fn main() {}

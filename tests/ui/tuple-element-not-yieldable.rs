use std::time::Duration;

#[tinyio::coroutine]
fn wait() -> () {
    yield_!((tinyio::sleep(Duration::ZERO), 3u32));
}

fn main() {}

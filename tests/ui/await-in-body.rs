use std::future::Future;

#[tinyio::coroutine]
fn wait(fut: impl Future<Output = u32>) -> u32 {
    fut.await
}

fn main() {}

use std::future::Future;

#[tinyio::coroutine]
async fn wait(fut: impl Future<Output = u32>) -> u32 {
    fut.await
}

fn main() {}

#[tinyio::coroutine]
struct Worker;

fn main() {}

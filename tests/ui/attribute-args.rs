#[tinyio::coroutine(name = "worker")]
fn worker() -> u32 {
    1
}

fn main() {}

#[tinyio::coroutine]
fn outer() -> () {
    let pause = || yield_!();
    pause();
}

fn main() {}

#[tinyio::coroutine]
fn outer() -> () {
    fn pause() {
        yield_!();
    }
    pause();
}

fn main() {}

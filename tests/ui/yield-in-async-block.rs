#[tinyio::coroutine]
fn outer() -> () {
    let _pause = async {
        yield_!();
    };
}

fn main() {}

#[tinyio::coroutine]
fn sneaky() -> () {
    let _ = &__tinyio_co;
}

fn main() {}

#[tinyio::coroutine]
const fn one() -> u32 {
    1
}

fn main() {}

// The path of the crate, written as tokio's and serde's string: the attribute asks for the path.
#[tinyio::coroutine(crate = "tinyio")]
fn quoted() -> u32 {
    1
}

#[tinyio::coroutine(crate = tinyio, flavor = "fast")]
fn extra() -> u32 {
    2
}

fn main() {}

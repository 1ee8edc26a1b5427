// `return;` in a coroutine whose output is not `()`: reported at the `return`, as rustc does in
// a plain function, not at the attribute with a help to write a value after it.
#[tinyio::coroutine]
fn early(x: u32) -> u32 {
    if x > 1 {
        return;
    }
    yield_!();
    x
}

fn main() {}

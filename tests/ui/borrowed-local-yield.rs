#[tinyio::coroutine]
fn length(text: &str) -> usize {
    text.len()
}

#[tinyio::coroutine]
fn parent() -> usize {
    let text = String::from("local");
    yield_!(length(&text))
}

fn main() {}

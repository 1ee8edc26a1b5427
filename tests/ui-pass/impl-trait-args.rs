use std::fmt::Display;
use tinyio::Loop;

#[tinyio::coroutine]
fn show(value: impl Display, times: usize) -> String {
    yield_!();
    value.to_string().repeat(times)
}

#[tinyio::coroutine]
fn call(f: impl FnOnce(&str) -> usize, text: &str) -> usize {
    yield_!();
    f(text)
}

#[tinyio::coroutine]
fn sum(items: impl IntoIterator<Item = u32>) -> impl Display {
    yield_!();
    items.into_iter().sum::<u32>()
}

fn main() {
    let lp = Loop::new();
    assert_eq!(lp.run(show(4, 2)).unwrap(), "44");
    let text = String::from("hello");
    assert_eq!(lp.run(call(str::len, &text)).unwrap(), 5);
    assert_eq!(lp.run(sum(vec![1, 2])).unwrap().to_string(), "3");
}

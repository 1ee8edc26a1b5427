use std::fmt::Display;
use tinyio::Loop;

#[tinyio::coroutine]
fn first<T: Clone>(items: Vec<T>) -> T {
    yield_!();
    items[0].clone()
}

#[tinyio::coroutine]
fn describe<T, const N: usize>(items: [T; N]) -> String
where
    T: Display,
{
    yield_!();
    items
        .iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[tinyio::coroutine]
fn both<A: Clone + 'static, B: Clone + 'static>(a: Vec<A>, b: Vec<B>) -> (A, B) {
    yield_!((first(a), first(b)))
}

fn main() {
    let lp = Loop::new();
    assert_eq!(lp.run(first(vec!["a", "b"])).unwrap(), "a");
    assert_eq!(lp.run(describe([1, 2, 3])).unwrap(), "1,2,3");
    assert_eq!(lp.run(both(vec![1u8], vec!['x'])).unwrap(), (1, 'x'));
}

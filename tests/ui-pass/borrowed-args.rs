use std::borrow::Cow;
use tinyio::Loop;

#[tinyio::coroutine]
fn longest<'a, 'b: 'a>(a: &'a str, b: &'b str) -> &'a str {
    yield_!();
    if a.len() >= b.len() { a } else { b }
}

#[tinyio::coroutine]
fn total(names: &[&str], extra: &mut Vec<Cow<'_, str>>) -> usize {
    yield_!();
    extra.push(Cow::Borrowed("z"));
    names.len() + extra.len()
}

#[tinyio::coroutine]
fn head(text: &str) -> &str {
    yield_!();
    &text[..1]
}

#[tinyio::coroutine]
fn nested<'a>(a: &'a str, b: &str) -> usize {
    let (x, y) = yield_!((head(a), head(b)));
    x.len() + y.len() + yield_!(longest(a, b)).len()
}

fn main() {
    let lp = Loop::new();
    let (a, b) = (String::from("abc"), String::from("de"));
    assert_eq!(lp.run(longest(&a, &b)).unwrap(), "abc");
    let mut extra = vec![Cow::Owned(String::from("y"))];
    assert_eq!(lp.run(total(&["a", "b"], &mut extra)).unwrap(), 4);
    assert_eq!(lp.run(head(&a)).unwrap(), "a");
    assert_eq!(lp.run(nested(&a, &b)).unwrap(), 5);
}

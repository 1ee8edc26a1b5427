// The input of the expansion snapshot in `coroutine.expanded.rs`; see `src/tests.rs`.
/// Adds one to what `other` answers.
#[tinyio::coroutine]
pub fn add(x: u64, mut text: String, (lo, _): (u64, u64)) -> u64 {
    let y = yield_!(other(x));
    let checked = try_yield!(other(y));
    if y > 10 {
        return y;
    }
    text.push('1');
    let n: u64 = text.parse()?;
    assert_eq!(tinyio::yield_!(other(n)), n * 2);
    yield_!();
    y + n + lo + checked.unwrap_or(0)
}

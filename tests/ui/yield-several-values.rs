// Several values in one `yield_!`: the error says to yield a tuple, not "unexpected token".
#[tinyio::coroutine]
fn both() -> ((), ()) {
    yield_!((), ())
}

#[tinyio::coroutine]
fn try_both() -> () {
    let _ = tinyio::try_yield!(both(), both());
}

fn main() {}

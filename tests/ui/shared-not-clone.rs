struct Report;

#[tinyio::coroutine]
fn report() -> Report {
    Report
}

fn main() {
    let _shared = report().share();
}

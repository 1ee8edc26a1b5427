fn not_a_coroutine() {
    tinyio::yield_!();
}

fn main() {}

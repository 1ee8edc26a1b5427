#[tinyio::coroutine]
fn count(early: bool) -> u32 {
    if early {
        return "early";
    }
    "late"
}

fn main() {}

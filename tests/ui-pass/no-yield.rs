use tinyio::Loop;

#[tinyio::coroutine]
fn plain(x: u32) -> u32 {
    x + 1
}

#[tinyio::coroutine]
fn unit() {}

#[tinyio::coroutine]
fn fails() -> u32 {
    tinyio::bail!("no yield needed to fail");
}

fn main() {
    let lp = Loop::new();
    assert_eq!(lp.run(plain(1)).unwrap(), 2);
    lp.run(unit()).unwrap();
    assert!(lp.run(fails()).is_err());
}

//! A flaky step retried in isolation while the rest of the work goes on.
//!
//! `isolate` runs a coroutine (and everything it yields) as an isolated part of the run: when
//! the flaky step fails, only its own group is cancelled (the other part's connection is
//! closed) and the error comes back as an `Err`; the rest of the run, and the report coroutine
//! running beside it, carry on. `copy` hands the result of an outer coroutine (the
//! configuration, computed once) to each isolated attempt without cloning it.
//!
//! ```text
//! cargo run --example isolate
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tinyio::{Coro, Loop, Shared, copy, isolate, sleep};

thread_local! {
    static START: Instant = Instant::now();
}

/// Prints with the time since the start, in tens of milliseconds.
fn log(message: impl std::fmt::Display) {
    let ms = START.with(|start| start.elapsed().as_millis());
    println!("[{:>4} ms] {message}", ms / 10 * 10);
}

/// Configuration: expensive, so computed once, and not `Clone`.
struct Config {
    endpoint: String,
}

#[tinyio::coroutine]
fn load_config() -> Rc<Config> {
    yield_!(sleep(Duration::from_millis(20)));
    log("config loaded");
    Rc::new(Config { endpoint: "db.internal:5432".into() })
}

/// Cleaned up when the part that holds it finishes or is cancelled.
struct Connection(u32, &'static str);

impl Drop for Connection {
    fn drop(&mut self) {
        log(format_args!("  attempt {}: {} connection closed", self.0, self.1));
    }
}

/// Fetches one part over its own connection; the body is the flaky one: it fails on the first
/// two attempts, while the slower header is still in flight (and so gets cancelled).
#[tinyio::coroutine]
fn fetch_part(attempt: u32, part: &'static str, millis: u64) -> u64 {
    let _connection = Connection(attempt, part);
    yield_!(sleep(Duration::from_millis(millis)));
    if part == "body" && attempt < 3 {
        tinyio::bail!("connection reset (attempt {attempt})");
    }
    millis
}

/// One attempt: both parts at once.
#[tinyio::coroutine]
fn flaky_fetch(config: Coro<Rc<Config>>, attempt: u32) -> (u64, Rc<Config>) {
    let config = yield_!(config);
    log(format_args!("  attempt {attempt}: connecting to {}", config.endpoint));
    let (header, body) =
        yield_!((fetch_part(attempt, "header", 50), fetch_part(attempt, "body", 30)));
    (header + body, config)
}

#[tinyio::coroutine]
fn fetch_with_retries(config: Shared<Rc<Config>>) -> u64 {
    let mut attempt = 1;
    loop {
        // The config, handed into the isolate: the very same `Rc`, not a clone of `Config`.
        let input = yield_!(copy(config.clone()));
        match yield_!(isolate(flaky_fetch(input, attempt))) {
            Ok((value, used)) => {
                let outside = yield_!(config.clone());
                let same = Rc::ptr_eq(&used, &outside);
                log(format_args!(
                    "  attempt {attempt}: got {value} (its Config is the outer one: {same})"
                ));
                break value;
            }
            Err(error) => {
                log(format_args!("  attempt {attempt} failed: {error}; retrying"));
                attempt += 1;
                yield_!(sleep(Duration::from_millis(20)));
            }
        }
    }
}

/// The rest of the work, unaffected by the failures.
#[tinyio::coroutine]
fn rest_of_the_work(config: Shared<Rc<Config>>, done: Rc<Cell<bool>>) -> u32 {
    let config = yield_!(config);
    let mut reports = 0;
    while !done.get() {
        yield_!(sleep(Duration::from_millis(40)));
        reports += 1;
        log(format_args!("rest of the work: report {reports} (still using {})", config.endpoint));
    }
    reports
}

#[tinyio::coroutine]
fn main_coro() -> (u64, u32) {
    let config = load_config().share();
    let done = Rc::new(Cell::new(false));
    let rest = rest_of_the_work(config.clone(), done.clone()).share();
    yield_!(tinyio::background(rest.clone()));
    let value = yield_!(fetch_with_retries(config.clone()));
    done.set(true);
    let reports = yield_!(rest);
    (value, reports)
}

fn main() -> Result<(), tinyio::Error> {
    START.with(|_| ());
    let (value, reports) = Loop::new().run(main_coro())?;
    println!(
        "fetched {value} after retries; the rest of the work made {reports} reports meanwhile"
    );
    Ok(())
}

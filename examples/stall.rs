//! A forgotten `Event::set`, caught by the stall report.
//!
//! A producer fills a buffer and should set `ready` when done, but forgets to; the consumer
//! waits forever. With `Loop::stall_report`, after 200 ms of nothing to run the loop hands the
//! callback every suspended coroutine, where it is suspended and what it waits on. The example
//! prints the report, then supplies the missing `set` from the callback so that it ends.
//!
//! ```text
//! cargo run --example stall
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tinyio::{Event, Loop};

#[tinyio::coroutine]
fn producer(buffer: Arc<Mutex<Vec<u32>>>, ready: Event) -> usize {
    for i in 0..5 {
        buffer.lock().unwrap().push(i * i);
        yield_!(tinyio::sleep(Duration::from_millis(10)));
    }
    // Bug: forgot `ready.set()` here.
    let _ = ready;
    buffer.lock().unwrap().len()
}

#[tinyio::coroutine]
fn consumer(buffer: Arc<Mutex<Vec<u32>>>, ready: Event) -> u32 {
    yield_!(ready.wait());
    buffer.lock().unwrap().iter().sum()
}

#[tinyio::coroutine]
fn pipeline(ready: Event) -> (usize, u32) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    yield_!((producer(buffer.clone(), ready.clone()), consumer(buffer, ready)))
}

fn main() -> Result<(), tinyio::Error> {
    let ready = Event::new();
    // In a real program: log the report and raise an alert.
    let forgotten = ready.clone();
    let lp = Loop::new().stall_report(Duration::from_millis(200), move |stall| {
        println!("{stall}");
        for suspended in stall.coroutines() {
            let frame = suspended.frame();
            println!(
                "  - `{}` at {}:{} waits on {:?}",
                frame.name(),
                frame.file(),
                frame.line(),
                suspended.waits_on()
            );
        }
        println!("(setting the forgotten event from the report callback)");
        forgotten.set();
    });
    let start = Instant::now();
    let (produced, sum) = lp.run(pipeline(ready))?;
    println!("produced {produced} items, consumer summed {sum}, in {:?}", start.elapsed());
    Ok(())
}

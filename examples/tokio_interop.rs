//! A tinyio pipeline awaited from a tokio application that meanwhile keeps serving.
//!
//! The tokio side runs a tiny TCP echo server on 127.0.0.1 and a ticker. The tinyio side is a
//! pipeline: it fetches a few words through the echo server (`from_tokio`, tokio sockets), hashes
//! each on a thread (`run_in_thread`), and waits on a tinyio timer, all concurrently. The
//! pipeline is a plain coroutine, awaited with `.await`; tokio's single thread keeps serving the
//! echo connections and ticking while tinyio waits.
//!
//! ```text
//! cargo run --example tokio_interop
//! ```

use std::cell::Cell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tinyio::{Coro, from_tokio, run_in_thread, sleep};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Sends `word` to the echo server and reads back the line it echoes.
async fn echo(addr: SocketAddr, word: &'static str) -> std::io::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{word}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    Ok(line.trim_end().to_string())
}

/// Hashes `text` on a thread, slowly, as a stand-in for blocking work.
fn hash_on_a_thread(text: String) -> Coro<(String, u64)> {
    run_in_thread(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        (text, hasher.finish() % 10_000)
    })
}

/// One word through the pipeline: fetched over TCP, then hashed.
#[tinyio::coroutine]
fn process(addr: SocketAddr, word: &'static str) -> (String, u64) {
    let echoed = yield_!(from_tokio(echo(addr, word)))?;
    yield_!(hash_on_a_thread(echoed))
}

#[tinyio::coroutine]
fn pipeline(addr: SocketAddr, words: Vec<&'static str>) -> Vec<(String, u64)> {
    let work: Vec<_> = words.into_iter().map(|word| process(addr, word)).collect();
    // All the words at once, alongside a tinyio timer.
    let (results, ()) = yield_!((work, sleep(Duration::from_millis(100))));
    results
}

/// Serves echo connections until the runtime ends, counting them.
async fn serve(listener: TcpListener, served: Rc<Cell<u32>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        served.set(served.get() + 1);
        tokio::task::spawn_local(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if write.write_all(format!("{}\n", line.to_uppercase()).as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("echo server (uppercasing) on {addr}");

        let served = Rc::new(Cell::new(0));
        tokio::task::spawn_local(serve(listener, served.clone()));
        let ticks = Rc::new(Cell::new(0u32));
        tokio::task::spawn_local({
            let ticks = ticks.clone();
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(10));
                loop {
                    interval.tick().await;
                    ticks.set(ticks.get() + 1);
                }
            }
        });

        let start = Instant::now();
        let results = pipeline(addr, vec!["alpha", "beta", "gamma", "delta"]).await?;
        let elapsed = start.elapsed();
        for (word, hash) in &results {
            println!("{word:>6} -> hash {hash:04}");
        }
        println!(
            "pipeline took {} ms (four 50 ms thread calls and a 100 ms timer, concurrently)",
            elapsed.as_millis()
        );
        println!(
            "meanwhile, on the same tokio thread: {} echo connections served, {} ticks of 10 ms",
            served.get(),
            ticks.get()
        );
        Ok(())
    })
}

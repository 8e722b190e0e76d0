//! Awaiting pool tasks in tokio: every `AsyncResult` is a `Future` that
//! never blocks the executor's threads, so thousands of tasks can be awaited
//! at once, mixed with other async work.
//!
//! ```sh
//! cargo run --release --example async_tokio
//! ```

use std::time::{Duration, Instant};

use procpool::{pool_task, Pool};

/// A CPU-bound task: the Collatz stopping time of `n`.
#[pool_task]
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n & 1 == 0 { n >> 1 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

#[pool_task]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x * x
}

fn main() -> Result<(), procpool::Error> {
    // First, before the runtime starts: in a worker it never returns.
    procpool::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run())
}

async fn run() -> Result<(), procpool::Error> {
    let pool = Pool::builder().build()?;

    // A thousand tasks awaited concurrently from one executor thread.
    let start = Instant::now();
    let steps =
        futures::future::try_join_all((1..=1000).map(|n| apply_async_collatz_steps(&pool, n)))
            .await?;
    let (longest, n) = steps.iter().zip(1..).max().expect("1000 results");
    println!(
        "1000 tasks in {:?}: {n} takes the longest, {longest} steps",
        start.elapsed()
    );

    // The executor stays free while a task runs: the ticker keeps ticking.
    let ticker = async {
        for i in 1..=3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            println!("  tick {i} while the task runs in a worker");
        }
    };
    let (square, ()) = tokio::join!(apply_async_slow_square(&pool, 12), ticker);
    println!("slow_square(12) = {}", square?);

    // A whole map, awaited.
    let squares = map_async_slow_square(&pool, 0..8).await?;
    println!("map_async: {squares:?}");

    // Blocking calls (`apply_*`, `map_*`, an `imap`'s `next`, `get`, `join`)
    // would hold the executor's thread: run them through `spawn_blocking`
    // (a `Pool` handle is a cheap clone).
    let shared = pool.clone();
    let firsts = tokio::task::spawn_blocking(move || {
        imap_slow_square(&shared, 0..8)
            .take(3)
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .expect("the blocking task ran")?;
    println!("imap, first three: {firsts:?}");

    // Cancelling from another task while one awaits: through a handle
    // (aborting the awaiting task would only drop the result).
    let pending = apply_async_slow_square(&pool, 99);
    let handle = pending.cancel_handle();
    let waiting = tokio::spawn(pending);
    println!("cancel: {:?}", handle.cancel());
    println!(
        "the awaiting task got: {:?}",
        waiting.await.expect("it ran")
    );
    Ok(())
}

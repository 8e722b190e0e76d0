//! A progress bar fed by `imap_unordered`: a few thousand tasks of uneven
//! length, each result counted the moment its chunk is done.
//!
//! ```sh
//! cargo run --release --example progress
//! ```

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use procpool::{pool_task, MapOptions, Pool};

/// Pretends to work for up to 3 ms, then says whether `n` is prime.
#[pool_task]
fn is_prime(n: u64) -> (u64, bool) {
    std::thread::sleep(Duration::from_micros(n % 3000));
    let prime = n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| n.rem_euclid(d) != 0);
    (n, prime)
}

fn main() -> Result<(), procpool::Error> {
    procpool::init();
    let pool = Pool::builder().build()?;
    let numbers = 0..4_000u64;

    let bar = ProgressBar::new(numbers.end - numbers.start);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tasks, {per_sec}, eta {eta}")
            .expect("a valid template"),
    );
    // Small chunks keep the bar moving; the default would send
    // 4000 / (4 × processes) items per chunk.
    let options = MapOptions::new().chunksize(8);
    let mut primes = Vec::new();
    for result in imap_unordered_is_prime_with(&pool, numbers, options) {
        let (n, prime) = result?;
        if prime {
            primes.push(n);
        }
        bar.inc(1);
    }
    bar.finish();
    primes.sort();
    println!(
        "{} primes below 4000; the last is {}",
        primes.len(),
        primes.last().copied().unwrap_or(0)
    );
    Ok(())
}

//! The main demo: `apply` and `apply_async`, and when to use which.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::time::{Duration, Instant};

use procpool::{pool_task, Pool};

/// A quick task.
#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

/// A slow task: stands for a download, a query, a long computation.
#[pool_task]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    x * x
}

/// A task that fails: a panic in a worker arrives at `get()` as an error.
#[pool_task]
fn divide(a: i64, b: i64) -> i64 {
    if b == 0 {
        panic!("division by zero: {a} / {b}");
    }
    a / b
}

fn main() -> Result<(), procpool::Error> {
    // procpool's log, when asked for: `RUST_LOG=procpool=debug`. Installed
    // before init(), the workers have it too (see the README's "Logging").
    env_logger::init();
    procpool::init(); // first procpool call in main; in a worker it never returns
    let pool = Pool::new(4)?;

    println!("1. apply blocks until the worker answers");
    let sixteen = apply_square(&pool, 4)?;
    println!("   apply_square(4) = {sixteen}");
    assert_eq!(sixteen, 16);

    println!("\n2. apply_async returns at once; get() waits for the result");
    let r = apply_async_square(&pool, 5);
    println!("   Doing other work while process runs...");
    let twenty_five = r.get()?;
    println!("   apply_async_square(5).get() = {twenty_five}");
    assert_eq!(twenty_five, 25);

    println!("\n3. One slow task takes the same time either way");
    let t = Instant::now();
    apply_slow_square(&pool, 3)?;
    let blocking = t.elapsed();
    let t = Instant::now();
    apply_async_slow_square(&pool, 3).get()?;
    let non_blocking = t.elapsed();
    println!("   apply:       {:>6.2} s", blocking.as_secs_f64());
    println!("   apply_async: {:>6.2} s", non_blocking.as_secs_f64());

    println!("\n4. Many slow, independent tasks: one by one, then all at once");
    let inputs: Vec<u64> = (1..=4).collect();
    let t = Instant::now();
    let one_by_one: Vec<u64> = inputs
        .iter()
        .map(|&x| apply_slow_square(&pool, x))
        .collect::<Result<_, _>>()?;
    let sequential = t.elapsed();
    let t = Instant::now();
    let pending: Vec<_> = inputs
        .iter()
        .map(|&x| apply_async_slow_square(&pool, x))
        .collect();
    let all_at_once: Vec<u64> = pending
        .into_iter()
        .map(|r| r.get())
        .collect::<Result<_, _>>()?;
    let parallel = t.elapsed();
    assert_eq!(one_by_one, all_at_once);
    println!("   results:                {all_at_once:?}");
    println!(
        "   apply, one by one:      {:>6.2} s",
        sequential.as_secs_f64()
    );
    println!(
        "   apply_async, all at once: {:>4.2} s",
        parallel.as_secs_f64()
    );
    println!(
        "   speed-up: {:.1}x on {} workers",
        sequential.as_secs_f64() / parallel.as_secs_f64(),
        pool.processes()
    );

    println!("\n5. A panic in a worker is caught at get()");
    match apply_async_divide(&pool, 10, 0).get() {
        Ok(v) => println!("   unexpected value {v}"),
        Err(e) => {
            println!("   error: {e}");
            if let procpool::Error::Panic {
                backtrace: Some(bt),
                ..
            } = &e
            {
                println!("   worker backtrace (RUST_BACKTRACE is set):\n{bt}");
            }
        }
    }
    println!(
        "   the pool carries on: divide(10, 2) = {}",
        apply_divide(&pool, 10, 2)?
    );

    pool.close();
    pool.join();
    Ok(())
}

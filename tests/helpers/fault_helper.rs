//! A real program using procpool, driven by `tests/fault_parent.rs` where a
//! test binary cannot stand in (its `main` belongs to the test harness).
//!
//! - `exit CODE`: a task calls `std::process::exit(CODE)`; prints the error
//!   the caller got, then the pid of the worker that replaced the dead one.
//! - `orphan`: starts two workers, prints their pids, then sleeps until
//!   killed (at most a minute), so the test can kill this parent.

use std::io::Write;
use std::time::Duration;

use procpool::{pool_task, Error, Pool};

#[pool_task]
fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn main() -> Result<(), Error> {
    procpool::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("exit") => {
            let code: i32 = args[1].parse().expect("an exit code");
            let pool = Pool::new(1)?;
            let err = apply_exit_with(&pool, code).expect_err("the worker exits");
            println!("{err:?}");
            println!("replacement {}", apply_worker_pid(&pool)?);
        }
        Some("orphan") => {
            let pool = Pool::new(2)?;
            // Both workers busy at once, so both pids are seen.
            let a = apply_async_nap(&pool, 200);
            let b = apply_async_nap(&pool, 200);
            println!("workers {} {}", a.get()?, b.get()?);
            std::io::stdout().flush().expect("stdout");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => {
            eprintln!("usage: procpool-fault-helper exit CODE | orphan");
            std::process::exit(2);
        }
    }
    Ok(())
}

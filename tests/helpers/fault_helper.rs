//! A real program using procpool, driven by `tests/fault_parent.rs` where a
//! test binary cannot stand in (its `main` belongs to the test harness).
//!
//! - `exit CODE`: a task calls `std::process::exit(CODE)`; prints the error
//!   the caller got, then the pid of the worker that replaced the dead one.
//! - `orphan`: starts two workers, prints their pids (read from /proc), then sleeps until
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

/// This process's children, read from /proc (each stat's parent pid).
fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces; fields after its ')' are fixed.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            out.push(pid);
        }
    }
    out
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
            // The pool is ready: both workers are this process's children.
            let workers = children();
            assert_eq!(workers.len(), 2, "two workers: {workers:?}");
            // Both serve.
            apply_nap(&pool, 0)?;
            println!("workers {} {}", workers[0], workers[1]);
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

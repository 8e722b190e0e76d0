//! What a task prints reaches the parent's stdout and stderr, as in Python.
//! The test runs this test binary again as a parent process whose output it
//! captures (libtest would otherwise swallow it).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

const HELPER_ENV: &str = "PROCPOOL_TEST_OUTPUT_HELPER";
const PIPELINED_ENV: &str = "PROCPOOL_TEST_OUTPUT_PIPELINED";

#[pool_task]
fn chatty(n: u32) -> u32 {
    println!("stdout from task {n} in pid {}", std::process::id());
    eprintln!("stderr from task {n}");
    print!("no newline {n}");
    n
}

/// The parent process of the test below; does nothing in a normal run.
#[test]
fn output_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    // One worker: output of concurrent processes may interleave, as in Python.
    let pool = Pool::new(1).unwrap();
    let results: Vec<_> = (0..3).map(|n| apply_async_chatty(&pool, n)).collect();
    for r in results {
        r.get().unwrap();
    }
    println!("\nparent {} done", std::process::id());
}

#[test]
fn task_output_reaches_the_parents_stdout_and_stderr() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "output_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helper failed: {stdout}\n{stderr}");
    let parent_line = stdout
        .lines()
        .find(|l| l.starts_with("parent "))
        .expect("parent line");
    let parent_pid = parent_line.split_whitespace().nth(1).unwrap();
    assert!(stdout.find("stdout from task 2").unwrap() < stdout.find(parent_line).unwrap());
    for n in 0..3 {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("stdout from task {n} in pid")))
            .unwrap_or_else(|| panic!("task {n}'s line missing from {stdout}"));
        assert!(
            !line.ends_with(&format!("pid {parent_pid}")),
            "ran in the parent: {line}"
        );
        assert!(
            stderr.contains(&format!("stderr from task {n}")),
            "{stderr}"
        );
        // Output without a newline is flushed when the task ends: before
        // the last result reaches the parent.
        let partial = stdout
            .find(&format!("no newline {n}"))
            .unwrap_or_else(|| panic!("task {n}'s partial line missing from {stdout}"));
        assert!(partial < stdout.find(parent_line).unwrap(), "{stdout}");
    }
    // Workers never print harness noise of their own.
    assert_eq!(stdout.matches("running ").count(), 1, "{stdout}");
}

/// Quick when `act` is 0; prints a line without its newline (1); ends its
/// worker at once, as a crash would (2).
#[pool_task]
fn step(n: u32, act: u8) -> u32 {
    match act {
        1 => print!("partial line of call {n};"),
        2 => std::process::abort(),
        _ => {}
    }
    n
}

#[pool_task]
fn hold(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// The parent process of the test below; does nothing in a normal run.
#[test]
fn pipelined_output_helper() {
    if std::env::var_os(PIPELINED_ENV).is_none() {
        return;
    }
    let pool = Pool::new(1).unwrap();
    // `step` becomes a task the slot knows as quick: it pipelines it.
    let warm: Vec<_> = (0..300).map(|n| apply_async_step(&pool, n, 0)).collect();
    for r in warm {
        r.get().unwrap();
    }
    // While the worker holds, the two calls queue up, and go to it as one
    // batch: the one that prints, then the one that crashes its worker.
    let held = apply_async_hold(&pool, 400);
    std::thread::sleep(Duration::from_millis(100));
    let prints = apply_async_step(&pool, 1, 1);
    let crashes = apply_async_step(&pool, 2, 2);
    held.get().unwrap();
    assert_eq!(prints.get().unwrap(), 1);
    assert!(crashes.get().is_err());
    println!("\nparent {} done", std::process::id());
}

/// A task's output without a newline reaches stdout once its result came
/// back, even if the worker then dies running the next call of its batch
/// (a crash, a `task_timeout`, a cancel or `terminate` killing it).
#[test]
fn a_partial_line_survives_the_crash_of_the_next_call_in_its_batch() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pipelined_output_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PIPELINED_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helper failed: {stdout}\n{stderr}");
    assert!(stdout.contains("parent "), "{stdout}");
    assert!(
        stdout.contains("partial line of call 1;"),
        "the partial line of a call whose result came back was lost:\n{stdout}"
    );
}

const HOLDER_ENV: &str = "PROCPOOL_TEST_OUTPUT_HOLDER";

/// Starts a thread that takes stdout's lock and keeps it for `ms` (as a
/// progress thread that locks stdout once for its whole life does), then
/// returns at once.
#[pool_task]
fn leave_stdout_held(ms: u64) -> u32 {
    let (taken, holds) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "holder took stdout");
        let _ = taken.send(());
        std::thread::sleep(Duration::from_millis(ms));
    });
    holds.recv().unwrap();
    7
}

/// Prints a line without its newline while a thread it started runs on.
#[pool_task]
fn partial_among_threads(ms: u64) -> u32 {
    std::thread::spawn(move || std::thread::sleep(Duration::from_millis(ms)));
    print!("partial line among threads;");
    8
}

/// The parent process of the test below; does nothing in a normal run.
#[test]
fn holder_output_helper() {
    if std::env::var_os(HOLDER_ENV).is_none() {
        return;
    }
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_partial_among_threads(&pool, 20_000).unwrap(), 8);
    println!("\nafter the partial line");
    let started = Instant::now();
    let held = apply_async_leave_stdout_held(&pool, 20_000).get_timeout(Duration::from_secs(5));
    println!("held {held:?} in {} ms", started.elapsed().as_millis());
    let next = apply_async_hold(&pool, 0).get_timeout(Duration::from_secs(5));
    println!("next {next:?}");
    let started = Instant::now();
    drop(pool);
    println!("dropped in {} ms", started.elapsed().as_millis());
}

/// A thread a task left behind that holds stdout's lock (the worker
/// flushes stdout after each task) delays neither the task's result, nor
/// the next call, nor the worker's exit; a partial line is still flushed
/// before the result while other threads of the task run.
#[test]
fn a_thread_holding_stdout_delays_no_result() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_output_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helper failed: {stdout}\n{stderr}");
    let partial = stdout.find("partial line among threads;").expect(&stdout);
    assert!(
        partial < stdout.find("after the partial line").expect(&stdout),
        "{stdout}"
    );
    assert!(stdout.contains("held Ok(7) in "), "{stdout}");
    assert!(stdout.contains("next Ok(0)"), "{stdout}");
    let dropped: u64 = stdout
        .split("dropped in ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ms| ms.parse().ok())
        .expect(&stdout);
    assert!(dropped < 5_000, "the drop waited for the lock: {stdout}");
}

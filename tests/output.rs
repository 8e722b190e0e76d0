//! What a task prints reaches the parent's stdout and stderr, as in Python.
//! The test runs this test binary again as a parent process whose output it
//! captures (libtest would otherwise swallow it).

use std::process::Command;
use std::time::Duration;

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

/// Starts a thread that takes stdout's lock and keeps it for `ms` (as a
/// progress thread that locks stdout once for its whole life does), then
/// returns at once.
#[pool_task]
fn leave_stdout_held(ms: u64) -> u32 {
    let (taken, holds) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = std::io::stdout().lock();
        let _ = taken.send(());
        std::thread::sleep(Duration::from_millis(ms));
        drop(out);
    });
    holds.recv().unwrap();
    7
}

/// The README's row: a thread a task left holding stdout's lock for good
/// holds back its worker's flush after the task, as the task's own
/// `println!` would wait; a `task_timeout` ends the call with `Timeout`
/// and replaces the worker, and the next call runs.
#[test]
fn a_thread_holding_stdout_for_good_ends_with_its_worker_at_the_task_timeout() {
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let held = apply_leave_stdout_held(&pool, 60_000);
    assert!(
        matches!(held, Err(procpool::Error::Timeout { .. })),
        "{held:?}"
    );
    assert_eq!(apply_leave_stdout_held(&pool, 0).unwrap(), 7);
}

//! What a task prints reaches the parent's stdout and stderr, as in Python.
//! The test runs this test binary again as a parent process whose output it
//! captures (libtest would otherwise swallow it).

use std::process::Command;

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

const HELPER_ENV: &str = "PROCPOOL_TEST_OUTPUT_HELPER";

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
        // Output without a newline is flushed when the task ends (in a
        // pipelined batch, when the last call of the batch ends): before
        // the last result reaches the parent.
        let partial = stdout
            .find(&format!("no newline {n}"))
            .unwrap_or_else(|| panic!("task {n}'s partial line missing from {stdout}"));
        assert!(partial < stdout.find(parent_line).unwrap(), "{stdout}");
    }
    // Workers never print harness noise of their own.
    assert_eq!(stdout.matches("running ").count(), 1, "{stdout}");
}

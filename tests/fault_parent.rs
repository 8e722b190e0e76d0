//! Through a real program (`tests/helpers/fault_helper.rs`): workers die with
//! their parent even when it is SIGKILLed, and a task that calls
//! `std::process::exit(3)` fails with `WorkerDied` carrying code 3.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{alive, assert_no_children, serial};

procpool::enable_test_support!();

const HELPER: &str = env!("CARGO_BIN_EXE_procpool-fault-helper");

#[test]
fn workers_die_within_a_second_of_a_sigkilled_parent() {
    let _serial = serial();
    let mut parent = Command::new(HELPER)
        .arg("orphan")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let workers: Vec<u32> = line
        .strip_prefix("workers ")
        .unwrap_or_else(|| panic!("unexpected output {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(workers.len(), 2);
    assert_ne!(workers[0], workers[1]);
    assert!(workers.iter().all(|&p| alive(p)));
    parent.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    parent.wait().unwrap();
    loop {
        let left: Vec<u32> = workers.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(1),
            "workers {left:?} outlived their parent by a second"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "orphaned workers gone {:?} after SIGKILL",
        killed_at.elapsed()
    );
    assert_no_children();
}

#[test]
fn process_exit_in_a_task_is_worker_died_with_its_code() {
    let _serial = serial();
    let out = Command::new(HELPER).args(["exit", "3"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let error = lines.next().unwrap();
    assert!(
        error.starts_with("WorkerDied { task: \"procpool_fault_helper::exit_with\", pid: ")
            && error.ends_with("status: Code(3) }"),
        "{error}"
    );
    let replacement = lines.next().unwrap();
    assert!(replacement.starts_with("replacement "), "{replacement}");
    assert_no_children();
}

/// A program whose logger prints procpool's warnings: 20 rounds of
/// `max_tasks_per_child(1)` ended by `terminate()`, which often finds a
/// worker retiring. Killing it then is part of the terminate, not an unclean
/// retirement: nothing is reported, and stderr stays empty.
#[test]
fn terminate_during_retirements_reports_nothing() {
    let _serial = serial();
    let out = Command::new(HELPER).arg("retire-loop").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helper failed: {stdout}\n{stderr}");
    assert_eq!(stderr, "", "procpool reported something");
    assert_eq!(stdout.trim(), "unclean 0");
    assert_no_children();
}

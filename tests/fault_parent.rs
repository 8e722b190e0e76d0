//! Through a real program (`tests/helpers/fault_helper.rs`): workers (and the
//! fork server) die with their parent even when it is SIGKILLed; workers are
//! forked unless the program runs threads before `init()` or opts out; and a task that calls
//! `std::process::exit(3)` fails with `WorkerDied` carrying code 3.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{alive, assert_no_children, children_of, is_fork_server, serial};

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
    // The helper's fork server, if it runs one, goes too.
    let workers: Vec<u32> = workers
        .into_iter()
        .chain(
            children_of(parent.id())
                .into_iter()
                .filter(|&p| is_fork_server(p)),
        )
        .collect();
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

/// What the helper's workers are, given this environment.
fn origins(env: &[(&str, &str)]) -> String {
    let out = Command::new(HELPER)
        .arg("origins")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn workers_are_forked_unless_the_program_is_threaded_at_init_or_opts_out() {
    let _serial = serial();
    assert_eq!(origins(&[]), "forked forked");
    // A thread running before init() would be lost in every fork: the
    // server refuses, and the pool spawns its workers.
    assert_eq!(
        origins(&[("PROCPOOL_TEST_THREAD_BEFORE_INIT", "1")]),
        "spawned spawned"
    );
    assert_eq!(origins(&[("PROCPOOL_FORK_SERVER", "0")]), "spawned spawned");
    assert_no_children();
}

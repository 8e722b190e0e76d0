//! A program that ignores SIGCHLD has its children reaped by the kernel, so
//! without the fork server (which relays each worker's exit status) a
//! retired worker's exit status cannot be known. The pool works as usual
//! and says so once, not at every retirement. SIGCHLD's action is the whole
//! process's: each test runs itself again, alone, in a process whose action
//! it sets (the first with `PROCPOOL_FORK_SERVER=0`, where a spawned
//! worker's death is seen but not how it ended).
//!
//! A program started with SIGCHLD already ignored (a parent that ignores it
//! passes that on through exec) has its fork server inherit it too; the
//! server reaps its workers all the same, and they keep the program's
//! action.

mod support;

use std::os::unix::process::CommandExt;

use procpool::{pool_task, Error, ExitInfo, Pool};

use support::capture_log;

procpool::enable_test_support!();

#[pool_task]
fn pid() -> u32 {
    std::process::id()
}

const CHILD: &str = "PROCPOOL_TEST_SIGCHLD_CHILD";

#[test]
fn retirements_with_sigchld_ignored_warn_once() {
    if std::env::var_os(CHILD).is_none() {
        support::rerun_alone(
            "retirements_with_sigchld_ignored_warn_once",
            &[(CHILD, "1"), ("PROCPOOL_FORK_SERVER", "0")],
        );
        return;
    }
    assert_eq!(support::fork_server(), None, "no fork server");
    // SAFETY: signal(2) with a valid signal number and SIG_IGN; no handler
    // runs.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    capture_log();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6).map(|_| apply_pid(&pool).unwrap()).collect();
    pool.join();
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "each task on a fresh worker: {pids:?}");
    let warnings: Vec<String> = capture_log()
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect();
    assert!(warnings.len() <= 1, "{warnings:#?}");
    assert!(
        warnings.iter().all(|w| w.contains("SIGCHLD")),
        "the one warning names the cause: {warnings:#?}"
    );
    // As the README says: a spawned worker's death is still seen, but how
    // it ended is not (the kernel reaped it first).
    let pool = Pool::new(1).unwrap();
    match apply_exit_with(&pool, 4) {
        Err(Error::WorkerDied { status, .. }) => assert_eq!(status, ExitInfo::Unknown),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_ne!(apply_pid(&pool).unwrap(), 0, "a new worker serves");
}

#[pool_task]
fn exit_with(code: i32) -> i32 {
    std::process::exit(code)
}

/// Whether SIGCHLD is ignored in this process.
fn sigchld_ignored() -> bool {
    // SAFETY: sigaction with a null new action only writes the current one
    // into zeroed memory of its type.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut action),
            0
        );
        action.sa_sigaction == libc::SIG_IGN
    }
}

#[pool_task]
fn worker_ignores_sigchld() -> bool {
    sigchld_ignored()
}

const INHERITED: &str = "PROCPOOL_TEST_SIGCHLD_INHERITED";

/// The fork server inherited SIGCHLD ignored, so the kernel reaped its
/// workers: each death was `WorkerDied` with `ExitInfo::Unknown`, reported
/// only once the server's wait for the status (2 s) ran out, and each
/// retirement and `join` waited as long.
#[test]
fn a_program_started_with_sigchld_ignored_still_gets_exit_codes() {
    const NAME: &str = "a_program_started_with_sigchld_ignored_still_gets_exit_codes";
    if std::env::var_os(INHERITED).is_none() {
        let mut rerun = std::process::Command::new(std::env::current_exe().unwrap());
        rerun
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(INHERITED, "1");
        // SAFETY: signal(2) is async-signal-safe; the child ignores SIGCHLD
        // from its start, as under a parent that ignores it.
        unsafe {
            rerun.pre_exec(|| {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                Ok(())
            });
        }
        let out = rerun.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    assert!(sigchld_ignored(), "started with SIGCHLD ignored");
    assert!(support::fork_server().is_some(), "a fork server runs");
    assert_eq!(
        support::await_fork_server(),
        Some(true),
        "workers are forked"
    );
    let pool = Pool::new(1).unwrap();
    match apply_exit_with(&pool, 4) {
        Err(Error::WorkerDied { status, .. }) => assert_eq!(status, ExitInfo::Code(4)),
        other => panic!("expected WorkerDied with exit code 4, got {other:?}"),
    }
    assert!(
        apply_worker_ignores_sigchld(&pool).unwrap(),
        "the program's action"
    );
}

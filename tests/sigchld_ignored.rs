//! A program that ignores SIGCHLD has its children reaped by the kernel, so
//! without the fork server (which relays each worker's exit status) a
//! retired worker's exit status cannot be known. The pool works as usual
//! and says so once, not at every retirement. Alone in its binary: the test
//! runs itself again with `PROCPOOL_FORK_SERVER=0`.

mod support;

use procpool::{pool_task, Pool};

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
}

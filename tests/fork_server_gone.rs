//! If the fork server dies, the workers it forked die with it (each asked
//! the kernel to kill it when the server ends), the pool replaces them, and
//! from then on workers are spawned by the pool itself.

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Error, ExitInfo, Pool};
use support::{alive, assert_no_children, children_of, fork_server, serial};

procpool::enable_test_support!();

#[pool_task]
fn pid_and_parent(nap_ms: u64) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(nap_ms));
    (std::process::id(), std::os::unix::process::parent_id())
}

#[pool_task]
fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

#[test]
fn a_killed_fork_server_takes_its_workers_and_the_pool_spawns_instead() {
    let _serial = serial();
    let server = fork_server().expect("a test binary runs a fork server");
    let pool = Pool::new(2).unwrap();
    let workers = children_of(server);
    assert_eq!(workers.len(), 2);
    let running = apply_async_pid_and_parent(&pool, 30_000);
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) on our own child process.
    assert_eq!(
        unsafe { libc::kill(server as libc::pid_t, libc::SIGKILL) },
        0
    );
    let killed_at = Instant::now();
    while workers.iter().any(|&p| alive(p)) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(1),
            "workers outlived their fork server by a second"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The task the server's death cut short fails as a death; nothing hangs.
    match running.get() {
        Err(Error::WorkerDied { pid, .. }) => assert!(workers.contains(&pid)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // The pool goes on, with workers it spawns itself.
    for _ in 0..4 {
        let (pid, parent) = apply_pid_and_parent(&pool, 0).unwrap();
        assert!(!workers.contains(&pid));
        assert_eq!(parent, std::process::id());
    }
    assert!(fork_server().is_none(), "the dead server was reaped");
    // A spawned worker's task that calls `exit` reports its code too.
    match apply_exit_with(&pool, 3) {
        Err(Error::WorkerDied { status, .. }) => assert_eq!(status, ExitInfo::Code(3)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(apply_pid_and_parent(&pool, 0).is_ok());
    drop(pool);
    assert_no_children();
}

//! If the fork server dies, the workers it forked die with it (each asked
//! the kernel to kill it when the server ends), the pool replaces them, and
//! from then on workers are spawned by the pool itself.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, ExitInfo, Pool};
use support::{
    alive, assert_no_children, await_fork_server, children_of, fork_server, serial, wait_for,
    Scratch,
};

procpool::enable_test_support!();

#[pool_task]
fn pid_and_parent(nap_ms: u64) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(nap_ms));
    (std::process::id(), std::os::unix::process::parent_id())
}

/// Announces that it runs by creating `marker`, then sleeps.
#[pool_task]
fn announce_then_sleep(marker: PathBuf, ms: u64) -> (u32, u32) {
    std::fs::write(&marker, b"").unwrap();
    pid_and_parent(ms)
}

#[pool_task]
fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

#[test]
fn a_killed_fork_server_takes_its_workers_and_the_pool_spawns_instead() {
    let _serial = serial();
    assert_eq!(await_fork_server(), Some(true), "workers are forked");
    let server = fork_server().expect("a test binary runs a fork server");
    let pool = Pool::new(2).unwrap();
    let workers = children_of(server);
    assert_eq!(workers.len(), 2);
    // A task that runs when the server dies (one still queued then would
    // run later on a spawned worker instead of failing).
    let marker = Scratch::temp("fork-server-gone");
    let running = apply_async_announce_then_sleep(&pool, marker.to_path_buf(), 30_000);
    wait_for(Duration::from_secs(30), "the task to start", || {
        marker.exists()
    });
    let _ = std::fs::remove_file(&marker);
    // SAFETY: kill(2) on our own child process.
    assert_eq!(
        unsafe { libc::kill(server as libc::pid_t, libc::SIGKILL) },
        0
    );
    // The parent-death signal takes them in milliseconds. The limit is
    // loose, so a loaded machine cannot fail it: without the signal, the busy
    // worker would live on for its 30 s task, and the idle one for ever.
    let killed_at = Instant::now();
    while workers.iter().any(|&p| alive(p)) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "workers outlived their fork server by 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "workers gone {:?} after their fork server",
        killed_at.elapsed()
    );
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

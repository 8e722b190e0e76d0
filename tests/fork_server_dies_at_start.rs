//! The fork server dies while a pool is starting its first workers: the
//! start is retried (spawned from then on) and `build()` succeeds. Alone in
//! its binary: a fork server can die only once per process.

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit`
/// (never hangs the run).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {limit:?} (hang)"),
    }
}

/// The fork server dies (SIGKILL) while a pool is starting its workers, as
/// soon as it forked the first one: its workers die with it and are
/// replaced (spawned from then on), as for a pool already running, and
/// `build()` succeeds (it used to fail with `WorkerStart`, 4 runs in 5).
#[test]
fn a_fork_server_killed_while_a_pool_starts_its_workers_does_not_fail_build() {
    let server = support::fork_server().expect("init() started the fork server");
    let (scanning, scans) = std::sync::mpsc::channel();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut scanning = Some(scanning);
        while Instant::now() < deadline {
            // The pool is built once the killer watches.
            if let Some(tx) = scanning.take() {
                let _ = tx.send(());
            }
            let forked = support::children_of(server);
            if !forked.is_empty() {
                // Hold the forked worker(s) before their hello, then kill
                // the server: they die with it (parent-death signal).
                for pid in forked {
                    // SAFETY: kill(2) on a grandchild; SIGSTOP only.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
                }
                // Let the server's answers (the workers' pids) reach the
                // pool, holding every worker it forks meanwhile too.
                let until = Instant::now() + Duration::from_millis(100);
                while Instant::now() < until {
                    for pid in support::children_of(server) {
                        // SAFETY: as above.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
                    }
                }
                // SAFETY: kill(2) on our own child process.
                unsafe { libc::kill(server as libc::pid_t, libc::SIGKILL) };
                return true;
            }
            std::hint::spin_loop();
        }
        false
    });
    scans.recv().unwrap();
    let built = within(Duration::from_secs(60), "build", || {
        Pool::builder().processes(6).build().map(|pool| {
            let pids: Vec<u32> = (0..12).map(|_| apply_worker_pid(&pool).unwrap()).collect();
            drop(pool);
            pids
        })
    });
    assert!(killer.join().unwrap(), "the fork server never forked");
    match built {
        Ok(pids) => assert_eq!(pids.len(), 12),
        Err(e) => panic!("build failed because the fork server died meanwhile: {e:?}"),
    }
    // The pool is gone: so are its workers, spawned or forked.
    support::assert_no_children();
}

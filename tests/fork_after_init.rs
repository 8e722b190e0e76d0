//! A program that forks after `init()` (a daemon that detaches, say) and
//! uses pools on both sides: the copy made by `fork` has its parent's
//! memory but none of its threads, so it watches its own workers' deaths
//! with a death watch of its own, and leaves the parent's fork server (which
//! answers its launcher only) to the parent.

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::fork_server;

procpool::enable_test_support!();

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[pool_task]
fn exit_with(code: i32) -> u8 {
    std::process::exit(code)
}

/// In the forked copy: a pool of its own runs a call, and sees its worker
/// die. The exit code says what went wrong (0: nothing).
fn in_the_copy() -> i32 {
    let pool = match Pool::new(1) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("copy: {e}");
            return 2;
        }
    };
    // Pools started and ended at the same time as the parent's.
    for _ in 0..5 {
        if Pool::new(2).and_then(|p| apply_square(&p, 3)).ok() != Some(9) {
            return 3;
        }
    }
    if apply_square(&pool, 4).ok() != Some(16) {
        return 4;
    }
    match apply_exit_with(&pool, 3) {
        Err(Error::WorkerDied { .. }) => {}
        other => {
            eprintln!("copy: {other:?}");
            return 5;
        }
    }
    match apply_square(&pool, 5) {
        Ok(25) => 0,
        other => {
            eprintln!("copy after the death: {other:?}");
            6
        }
    }
}

#[test]
fn a_copy_made_by_fork_watches_its_own_workers_and_leaves_the_fork_server_alone() {
    // The parent's death watch runs, and reads its fork server.
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let server = fork_server().expect("a fork server");
    // SAFETY: fork in a test binary; the copy runs only `in_the_copy`
    // (pools, calls) and leaves with `_exit`, never returning into the
    // harness. glibc's allocator is usable after fork.
    let copy = unsafe { libc::fork() };
    assert!(copy >= 0, "fork failed");
    if copy == 0 {
        // SAFETY: a hang here ends by SIGALRM, never outliving the test.
        unsafe { libc::alarm(60) };
        let code = std::panic::catch_unwind(in_the_copy).unwrap_or(7);
        // SAFETY: ends the copy at once, running nothing of the harness.
        unsafe { libc::_exit(code) };
    }
    let mut copy = Copy(Some(copy));
    // Meanwhile the parent starts pools too, each answered by its server.
    let began = Instant::now();
    for _ in 0..5 {
        let p = Pool::new(2).unwrap();
        assert_eq!(apply_square(&p, 5).unwrap(), 25);
    }
    let took = began.elapsed();
    let status = copy.wait(Duration::from_secs(60));
    assert_eq!(status, Some(0), "the copy's exit code (see its stderr)");
    // The fork server is still the parent's, and still serves it.
    assert_eq!(fork_server(), Some(server), "the fork server was lost");
    assert_eq!(procpool::__private::fork_server_serves(), Some(true));
    assert_eq!(apply_square(&pool, 6).unwrap(), 36);
    eprintln!("five pools of the parent, beside the copy's: {took:?}");
}

/// The forked copy, killed if the test fails before it is waited for.
struct Copy(Option<libc::pid_t>);

impl Copy {
    /// Its exit code, or `None` if it did not end within `limit` (it is
    /// then killed).
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let pid = self.0?;
        let deadline = Instant::now() + limit;
        loop {
            let mut status = 0;
            // SAFETY: waits (without blocking) for our own child.
            let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if got == pid {
                self.0 = None;
                return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let mut status = 0;
            // SAFETY: kills and reaps our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
}

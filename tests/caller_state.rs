//! A caller in an unusual state still gets sound workers: one that closed
//! its stdout or stderr (a daemon, say) gets workers whose output goes to
//! `/dev/null`, never into procpool's own descriptors (which would take the
//! freed numbers); one whose working directory was deleted gets workers in
//! that same directory, never in one an earlier request left behind. Both
//! ways of starting a worker are covered: forked by the fork server, and
//! spawned by the pool once the server is gone.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use procpool::{pool_task, Pool};
use support::{assert_no_children, await_fork_server, fork_server, serial};

procpool::enable_test_support!();

/// Writes `n` lines to stdout and to stderr, then says where this worker's
/// fds 1 and 2 point and who its parent is.
#[pool_task]
fn noisy(n: u64) -> (String, String, u32) {
    for i in 0..n {
        let _ = writeln!(std::io::stdout(), "progress {i}");
        let _ = writeln!(std::io::stderr(), "warning {i}");
    }
    let target = |fd: i32| {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| format!("({e})"))
    };
    (target(1), target(2), std::os::unix::process::parent_id())
}

/// This worker's working directory, and whether a relative write works.
#[pool_task]
fn where_am_i() -> (String, bool) {
    let cwd = std::fs::read_link("/proc/self/cwd")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    (cwd, std::fs::write("procpool-cwd-marker", "x").is_ok())
}

/// Runs `body` with this process's stdout and stderr closed, then puts
/// them back.
fn with_stdio_closed<T>(body: impl FnOnce() -> T) -> T {
    // SAFETY: dup/close/dup2 on this process's own stdio; no memory effects.
    let saved = unsafe { [libc::dup(1), libc::dup(2)] };
    assert!(saved.iter().all(|&fd| fd > 2));
    unsafe {
        libc::close(1);
        libc::close(2);
    }
    let out = body();
    unsafe {
        libc::dup2(saved[0], 1);
        libc::dup2(saved[1], 2);
        libc::close(saved[0]);
        libc::close(saved[1]);
    }
    out
}

/// 20 calls on a fresh pool of one worker, made with stdio closed; each
/// call's outcome.
fn noisy_calls() -> Vec<Result<(String, String, u32), procpool::Error>> {
    with_stdio_closed(|| {
        let pool = Pool::new(1).unwrap();
        let out = (0..20)
            .map(|_| apply_async_noisy(&pool, 1000).get_timeout(Duration::from_secs(30)))
            .collect();
        drop(pool);
        out
    })
}

fn in_deleted_dir() -> ((String, bool), PathBuf) {
    let base = support::Scratch::temp("cwd");
    let (a, b) = (base.join("a"), base.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    // A first pool in `a`: the fork server now stands in `a`.
    std::env::set_current_dir(&a).unwrap();
    let first = Pool::new(1).unwrap();
    assert_eq!(
        apply_where_am_i(&first).unwrap(),
        (a.display().to_string(), true)
    );
    std::fs::remove_file(a.join("procpool-cwd-marker")).unwrap();
    std::env::set_current_dir(&b).unwrap();
    std::fs::remove_dir(&b).unwrap();
    let second = Pool::new(1).unwrap();
    let got = apply_where_am_i(&second).unwrap();
    drop((first, second));
    std::env::set_current_dir("/").unwrap();
    let stray = a.join("procpool-cwd-marker").exists();
    drop(base);
    assert!(
        !stray,
        "a worker of the caller in the deleted b wrote into a"
    );
    (got, b)
}

#[test]
fn closed_stdio_and_a_deleted_working_directory_on_both_start_paths() {
    let _serial = serial();
    assert_eq!(
        await_fork_server(),
        Some(true),
        "the first round's workers are forked"
    );
    let server = fork_server().expect("a test binary runs a fork server");
    for forked in [true, false] {
        if !forked {
            // SAFETY: kill(2) on the fork server's pid; no memory effects.
            unsafe { libc::kill(server as i32, libc::SIGKILL) };
            support::wait_for(Duration::from_secs(10), "the fork server to go", || {
                !support::alive(server)
            });
        }
        let path = if forked { "forked" } else { "spawned" };
        for (i, call) in noisy_calls().into_iter().enumerate() {
            let (out, err, parent) = call.unwrap_or_else(|e| panic!("{path} call {i}: {e:?}"));
            assert_eq!(
                (out.as_str(), err.as_str()),
                ("/dev/null", "/dev/null"),
                "{path}"
            );
            assert_eq!(parent == server, forked, "{path}: parent {parent}");
        }
        let ((cwd, wrote), b) = in_deleted_dir();
        assert_eq!(cwd, format!("{} (deleted)", b.display()), "{path}");
        assert!(!wrote, "{path}: a write into a deleted directory succeeded");
        assert_no_children();
    }
}

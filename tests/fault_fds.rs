//! Workers do not inherit the parent's unrelated file descriptors, even ones
//! opened without close-on-exec.

mod support;

use std::ffi::CString;

use procpool::{pool_task, Pool};
use support::{assert_no_children, serial};

procpool::enable_test_support!();

/// This worker's pid and parent's, its open fds, each with what it points
/// to, and its mappings of the channel's memory.
#[pool_task]
fn open_fds() -> ((u32, u32), Vec<(i32, String)>, usize) {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        let target = std::fs::read_link(entry.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        fds.push((fd, target));
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let channels = maps
        .lines()
        .filter(|l| l.contains("/memfd:procpool-channel"))
        .count();
    let pids = (std::process::id(), std::os::unix::process::parent_id());
    (pids, fds, channels)
}

#[test]
fn workers_inherit_only_stdio_and_their_channel() {
    let _serial = serial();
    let path = support::Scratch::temp("fd-leak");
    std::fs::write(&path, "secret").unwrap();
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: open(2) on a valid C string; deliberately without O_CLOEXEC.
    let leaked = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY) };
    assert!(leaked > 2, "open failed");
    let pool = Pool::new(2).unwrap();
    for _ in 0..4 {
        let ((pid, parent), fds, channels) = apply_open_fds(&pool).unwrap();
        assert_ne!(pid, std::process::id());
        if std::env::var_os("PROCPOOL_FORK_SERVER").is_some_and(|v| v == "0") {
            assert_eq!(parent, std::process::id(), "a spawned worker");
        }
        let path_text = path.display().to_string();
        assert!(
            !fds.iter().any(|(_, target)| *target == path_text),
            "the worker inherited fd {leaked} ({path_text}): {fds:?}"
        );
        // stdio and the directory being listed: the worker mapped its
        // channel (shared memory) and closed the channel's fd, so no task
        // can reach it through a descriptor, by accident or on purpose.
        let unexpected: Vec<_> = fds
            .iter()
            .filter(|(fd, target)| *fd > 2 && !target.starts_with("/proc/"))
            .collect();
        assert!(unexpected.is_empty(), "unexpected fds {unexpected:?}");
        assert_eq!(channels, 1, "one mapping of the worker's own channel");
    }
    drop(pool);
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(leaked) };
    assert_no_children();
}

/// The same with spawned workers, not forked ones: this test binary runs
/// the test above alone, with `PROCPOOL_FORK_SERVER=0` (read at start).
/// A spawned worker's first thread watches its parent without a
/// descriptor of its own.
#[test]
fn spawned_workers_inherit_only_stdio_and_their_channel() {
    // Its run is a child of this process, which other tests count.
    let _serial = serial();
    let test = "workers_inherit_only_stdio_and_their_channel";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1"])
        .env("PROCPOOL_FORK_SERVER", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_no_children();
}

fn parent_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The parent's fd count once it is `expected`, or after 30 s whatever it
/// is then: a worker's fds may close a moment after the call that ended it
/// (its last task, the pool's drop) returned. (Read once per round: a
/// retiring worker's fds close while its replacement's open, so two reads
/// may disagree.)
fn settled_fd_count(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = parent_fd_count();
    while now != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        now = parent_fd_count();
    }
    now
}

#[pool_task]
fn pid() -> u32 {
    std::process::id()
}

/// Replacing workers leaks no fd in the parent: 20 tasks, each on a fresh
/// worker, leave the parent with as many open fds as before the pool.
#[test]
fn worker_respawns_leak_no_fds_in_the_parent() {
    let _serial = serial();
    // The process's first pool starts its death watch, which keeps one fd
    // (an epoll set) for the life of the process.
    drop(Pool::new(1).unwrap());
    let before = parent_fd_count();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let with_pool = parent_fd_count();
    let mut pids = std::collections::HashSet::new();
    for _ in 0..20 {
        let pid = apply_pid(&pool).unwrap();
        assert_ne!(pid, std::process::id());
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 20, "every task ran on a fresh worker");
    // Each slot keeps one staffed worker: the same number as at the start.
    assert_eq!(
        settled_fd_count(with_pool),
        with_pool,
        "fds leaked while respawning"
    );
    drop(pool);
    assert_eq!(settled_fd_count(before), before, "fds leaked by the pool");
    assert_no_children();
}

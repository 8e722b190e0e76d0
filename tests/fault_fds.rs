//! Workers do not inherit the parent's unrelated file descriptors, even ones
//! opened without close-on-exec.

mod support;

use std::ffi::CString;

use procpool::{pool_task, Pool};
use support::{assert_no_children, serial};

procpool::enable_test_support!();

/// This worker's open fds, each with what it points to.
#[pool_task]
fn open_fds() -> (u32, Vec<(i32, String)>) {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        let target = std::fs::read_link(entry.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        fds.push((fd, target));
    }
    (std::process::id(), fds)
}

#[test]
fn workers_inherit_only_stdio_and_their_channel() {
    let _serial = serial();
    let path = std::env::temp_dir().join(format!("procpool-fd-leak-{}", std::process::id()));
    std::fs::write(&path, "secret").unwrap();
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: open(2) on a valid C string; deliberately without O_CLOEXEC.
    let leaked = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY) };
    assert!(leaked > 2, "open failed");
    let pool = Pool::new(2).unwrap();
    for _ in 0..4 {
        let (pid, fds) = apply_open_fds(&pool).unwrap();
        assert_ne!(pid, std::process::id());
        let path_text = path.display().to_string();
        assert!(
            !fds.iter().any(|(_, target)| *target == path_text),
            "the worker inherited fd {leaked} ({path_text}): {fds:?}"
        );
        // stdio, the channel (moved from fd 3 to a high number, out of a
        // task's reach by accident), and the directory being listed.
        let unexpected: Vec<_> = fds
            .iter()
            .filter(|(fd, target)| {
                *fd > 2 && !target.starts_with("/proc/") && !target.starts_with("socket:")
            })
            .collect();
        assert!(unexpected.is_empty(), "unexpected fds {unexpected:?}");
        let sockets: Vec<_> = fds
            .iter()
            .filter(|(_, target)| target.starts_with("socket:"))
            .collect();
        assert_eq!(sockets.len(), 1, "one channel: {fds:?}");
        assert!(sockets[0].0 >= 100, "the channel is at a low fd: {fds:?}");
    }
    drop(pool);
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(leaked) };
    std::fs::remove_file(&path).unwrap();
    assert_no_children();
}

fn parent_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // (Read once per round: a retiring worker's fds close while its
    // replacement's open, so two reads may disagree.)
    let mut now = parent_fd_count();
    while now != with_pool && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        now = parent_fd_count();
    }
    assert_eq!(now, with_pool, "fds leaked while respawning");
    drop(pool);
    assert_eq!(parent_fd_count(), before, "fds leaked by the pool");
    assert_no_children();
}

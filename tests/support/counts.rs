//! What a process holds, counted from `/proc/self`, and a wait for a count
//! to come back down: for tests that check a pool or node leaves nothing.

use std::time::{Duration, Instant};

/// This process's threads.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// This process's open file descriptors.
pub fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Asserts that `read()` comes back to at most `limit` (within 30 s: a
/// pool's threads, descriptors and connections may close a moment after
/// its drop returned). At most: the count taken as the limit may itself
/// hold a thread of the pool before, still ending.
pub fn back_within(what: &str, limit: usize, read: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = read();
    while now > limit && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = read();
    }
    assert!(now <= limit, "{what}: {now}, {limit} before");
}

//! Polling for a state the code under test reaches on its own.

use std::time::{Duration, Instant};

/// Waits until `cond` holds (polling every 10 ms), panicking after `limit`
/// with `what` in the message. For a state the code under test reaches on
/// its own a moment later (a process reaped, a worker started, an fd
/// closed): a fixed sleep or a single look would depend on how fast the
/// machine is, while the limit only bounds a wait for something that never
/// comes.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `f` on a thread of its own and returns what it gives; fails the
/// test, naming `what`, if it has not returned within `limit` (a hang fails
/// the test rather than blocking the run). A panic in `f` is the test's.
pub fn within<R: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: not done within {limit:?} (hung)"),
    }
}

//! A worker's retirement: whether it has outgrown `max_memory_per_child`,
//! and how it is asked to exit, reaped, and counted when it has served its
//! time.

use std::time::Duration;

use super::config::Config;
use super::queue::Queue;
use crate::error::ExitInfo;
use crate::link::Link;
use crate::wire;

/// How long a worker told to shut down may take to exit before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Whether `link`'s worker uses more memory than `max_memory_per_child`
/// allows (never, when it is unset: then nothing is read).
pub(crate) fn over_memory(config: &Config, link: &mut dyn Link) -> bool {
    let Some(max) = config.max_memory_per_child else {
        return false;
    };
    match link.resident_bytes() {
        Some(rss) if rss > max => {
            log::debug!(
                target: "procpool",
                "worker {} uses {rss} bytes, over max_memory_per_child ({max}); retiring it",
                link.pid()
            );
            true
        }
        _ => false,
    }
}

/// Workers asked to exit so far (this process), and how many of them did
/// not exit with code 0; read by tests through `__private`.
pub(crate) static RETIRED: [std::sync::atomic::AtomicUsize; 2] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 2];

/// Asks a worker to exit and reaps it. A worker that does not exit with code
/// 0 is logged as a warning (and counted): the hand-over was not clean. One
/// killed by a `terminate` that came meanwhile is not: that kill is the
/// terminate's, and nothing was lost.
pub(crate) fn retire(queue: &Queue, worker: Option<Box<dyn Link>>) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(mut link) = worker {
        let pid = link.pid();
        let _ = link.send(&[&wire::shutdown_message()], &[]);
        let status = link.finish(SHUTDOWN_GRACE);
        RETIRED[0].fetch_add(1, Relaxed);
        if status == ExitInfo::Code(0) {
            log::debug!(target: "procpool", "worker {pid} retired");
        } else if queue.is_terminated() {
            log::debug!(
                target: "procpool",
                "worker {pid} was retiring when the pool was terminated ({status})"
            );
        } else if status == ExitInfo::Unknown {
            RETIRED[1].fetch_add(1, Relaxed);
            unknown_exit(pid);
        } else {
            RETIRED[1].fetch_add(1, Relaxed);
            log::warn!(
                target: "procpool",
                "retired worker {pid} ended with {status}, not exit code 0"
            );
        }
    }
}

/// Logs a retired worker whose exit status could not be read: a warning
/// the first time, then debug events. That is what a program that ignores
/// SIGCHLD gets for every worker it spawned without the fork server (the
/// kernel reaps them), so a warning per retirement would only repeat it.
fn unknown_exit(pid: u32) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::debug!(target: "procpool", "retired worker {pid} ended; its exit status is unknown");
    } else {
        log::warn!(
            target: "procpool",
            "retired worker {pid} ended, its exit status unknown (is SIGCHLD ignored? the kernel \
             then reaps workers before procpool can read how they ended); later ones are logged \
             at debug level"
        );
    }
}

//! The death watch: one thread per process that learns at once when any
//! worker ends. It blocks in `epoll_wait` over the pidfds of all live
//! workers (costing nothing while they live); when one becomes readable, it
//! sets that worker's `dead` flag and wakes whoever waits on its channel, so
//! every wait on a worker ends when the worker does, whoever else holds its
//! channel (the worker's mapping is not inherited by processes it forks).
//! The same thread reads the fork server's answers ([`super::forkserver`]),
//! and once the server is gone it kills every worker the server forked:
//! they die with their server, as their parent-death signal would kill
//! them, also a worker whose task changed its credentials (which clears
//! that signal), which would otherwise serve on with nothing to end it
//! should the caller later be SIGKILLed.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::forkserver;
use crate::shm;
use crate::sys::{self, Epoll, SharedMap};

/// What the watch does when a worker ends.
struct Entry {
    /// A copy of the worker's pidfd, registered in the epoll set.
    pidfd: OwnedFd,
    dead: Arc<AtomicBool>,
    map: Arc<SharedMap>,
    /// Forked by the fork server: killed once the server is gone.
    forked: bool,
}

struct DeathWatch {
    /// The process it watches for: a copy made by `fork` has the memory
    /// of its parent's watch but not its thread, and shares its epoll set.
    pid: u32,
    epoll: Epoll,
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

/// A worker being watched; dropping it stops the watch.
pub(super) struct Watched {
    watch: &'static DeathWatch,
    token: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        // (In a copy made by `fork`, the epoll set is the parent's: leave it.)
        if self.watch.pid == std::process::id() {
            self.watch.forget(self.token);
        }
    }
}

/// Sets `dead` and wakes the parent's waits on the channel in `map` once
/// the process behind `pidfd` has ended; kills it once the fork server is
/// gone if it is `forked` by that server.
pub(super) fn watch(
    pidfd: &OwnedFd,
    dead: Arc<AtomicBool>,
    map: Arc<SharedMap>,
    forked: bool,
) -> io::Result<Watched> {
    let watch = the_watch()?;
    let token = watch.next.fetch_add(1, Ordering::Relaxed);
    let pidfd = pidfd.try_clone()?;
    let mut entries = watch.lock();
    watch.epoll.add(pidfd.as_fd(), token)?;
    entries.insert(
        token,
        Entry {
            pidfd,
            dead,
            map,
            forked,
        },
    );
    Ok(Watched { watch, token })
}

/// The token of the fork server's socket (workers' start at 1).
const SERVER: u64 = 0;

/// Starts the death watch if it is not running yet.
pub(super) fn start() -> io::Result<()> {
    the_watch().map(|_| ())
}

/// The process's death watch, started on first use. It also reads the fork
/// server's socket, if there is one (launched before any pool). A process
/// made by `fork` after its parent's watch started starts its own: the
/// parent's thread did not come along.
fn the_watch() -> io::Result<&'static DeathWatch> {
    static WATCH: Mutex<Option<&'static DeathWatch>> = Mutex::new(None);
    let mut current = WATCH.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some(watch) = *current {
        if watch.pid == pid {
            return Ok(watch);
        }
    }
    let failed = |e: io::Error| io::Error::other(format!("the death watch could not start: {e}"));
    let watch: &'static DeathWatch = Box::leak(Box::new(DeathWatch {
        pid,
        epoll: Epoll::new().map_err(failed)?,
        entries: Mutex::default(),
        next: AtomicU64::new(SERVER + 1),
    }));
    if let Some(server) = forkserver::socket() {
        watch.epoll.add(server, SERVER).map_err(failed)?;
    }
    std::thread::Builder::new()
        .name("procpool-death-watch".into())
        .spawn(move || watch.run())
        .map_err(failed)?;
    *current = Some(watch);
    Ok(watch)
}

impl DeathWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, token: u64) {
        if let Some(entry) = self.lock().remove(&token) {
            self.epoll.remove(entry.pidfd.as_fd());
        }
    }

    /// Kills every live worker the fork server forked (it is gone). Each
    /// is then seen to end like any dead worker, and replaced.
    fn kill_forked(&self) {
        let entries = self.lock();
        let forked: Vec<_> = entries.values().filter(|e| e.forked).collect();
        if !forked.is_empty() {
            log::debug!(
                target: "procpool",
                "the fork server is gone: its {} workers end with it",
                forked.len()
            );
        }
        for entry in forked {
            sys::pidfd_kill(entry.pidfd.as_fd());
        }
    }

    fn run(&self) {
        let mut tokens = Vec::new();
        loop {
            self.epoll.wait(&mut tokens);
            for token in &tokens {
                if *token == SERVER {
                    if !forkserver::on_readable() {
                        if let Some(server) = forkserver::socket() {
                            self.epoll.remove(server);
                        }
                        self.kill_forked();
                    }
                    continue;
                }
                let entry = self.lock().remove(token);
                if let Some(entry) = entry {
                    self.epoll.remove(entry.pidfd.as_fd());
                    entry.dead.store(true, Ordering::SeqCst);
                    shm::wake_parent(&entry.map);
                }
            }
        }
    }
}

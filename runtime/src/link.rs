//! A local pool's interface to one worker: a [`Link`] speaks the frame
//! protocol of [`crate::wire`] to it; a [`Backend`] starts workers. The
//! re-executed local processes of [`crate::process`] are the real backend;
//! [`fake`] is an in-memory one for unit tests of the scheduler and the slot
//! loop. (Where calls go as a whole, local workers or a broker, is the
//! business of the dispatcher seam, `crate::pool::Dispatcher`.)

#[cfg(test)]
pub(crate) mod fake;

use std::time::Duration;

use crate::error::{Error, ExitInfo};
use crate::wire::FrameError;

/// The settings a worker is started with (from the pool's `Config`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest frame either side sends or accepts.
    pub(crate) max_frame: usize,
    /// How long a new worker may take to report ready.
    pub(crate) start_timeout: Duration,
    /// How long a frame that began to arrive may stop arriving (and a
    /// request being written may stop being taken in).
    pub(crate) stall_timeout: Duration,
}

/// Starts workers.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Starts one worker for slot `slot` of the pool and waits until it is
    /// ready for tasks. `kill` lets other threads stop it (see
    /// [`KillSwitch`]). The worker's tasks see `slot` as
    /// `procpool::worker_index()`.
    fn start(
        &self,
        kill: &std::sync::Arc<KillSwitch>,
        limits: Limits,
        slot: usize,
    ) -> Result<Box<dyn Link>, Error>;
}

/// A connection to one running worker.
pub(crate) trait Link: Send {
    /// The worker's process id (or the backend's equivalent), for messages.
    fn pid(&self) -> u32;
    /// Sends one frame made of `parts`.
    fn send(&mut self, parts: &[&[u8]]) -> Result<(), FrameError>;
    /// Sends several frames, each made of its parts, in one batch.
    fn send_batch(&mut self, frames: &[[&[u8]; 2]]) -> Result<(), FrameError>;
    /// Receives one frame, waiting at most `timeout` (`None`: until the
    /// worker answers or is gone; never past its death).
    fn recv(&mut self, timeout: Option<Duration>) -> Result<Vec<u8>, FrameError>;
    /// Whether the worker has not yet read everything sent to it. After a
    /// single call timed out, `true` means it never read that call, so the
    /// call never started.
    fn unread_requests(&mut self) -> bool {
        false
    }
    /// Whether the worker has ended (checked without waiting). Once true,
    /// [`finish`](Self::finish) returns at once.
    fn has_exited(&mut self) -> bool;
    /// The worker's resident memory in bytes, if it can be read (for
    /// `max_memory_per_child`).
    fn resident_bytes(&mut self) -> Option<u64>;
    /// Stops the worker at once.
    fn kill(&mut self);
    /// Waits for the worker to end (killing it after `grace`) and reports how.
    fn finish(self: Box<Self>, grace: Duration) -> ExitInfo;
}

/// Lets any thread stop whichever worker a pool slot currently runs, without
/// racing against that worker being reaped (and its pid reused).
#[derive(Default)]
pub(crate) struct KillSwitch {
    pid: std::sync::Mutex<Option<u32>>,
    /// Set (under the `pid` lock) by `terminate`: from then on no worker may
    /// be started for this slot, so a terminated pool never spawns again.
    closed: std::sync::atomic::AtomicBool,
}

impl KillSwitch {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Option<u32>> {
        self.pid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills the current worker, if any.
    pub(crate) fn kill(&self) {
        if let Some(pid) = *self.lock() {
            crate::sys::kill(pid);
        }
    }

    /// Refuses every later start (see [`is_closed`](Self::is_closed)) and
    /// kills the current worker, both under the lock a start spawns under:
    /// a start either ran before (and its worker is killed here) or sees
    /// the flag and spawns nothing.
    pub(crate) fn close_and_kill(&self) {
        let pid = self.lock();
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(pid) = *pid {
            crate::sys::kill(pid);
        }
    }

    /// Whether [`close_and_kill`](Self::close_and_kill) ran; a backend checks
    /// it while holding [`lock`](Self::lock), right before it spawns.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

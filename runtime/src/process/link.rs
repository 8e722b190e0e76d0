//! The parent's end of one running worker: its channel, its process, and
//! its entry in the death watch. Every wait on the channel ends when the
//! worker dies, and a frame that began to arrive (or to be written) must
//! keep moving: the ring's waits in the middle of a frame end after the
//! pool's stall limit (see [`crate::shm`]).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use super::child::Child;
use super::watch::{self, Watched};
use crate::error::ExitInfo;
use crate::link::{KillSwitch, Link};
use crate::shm::Endpoint;
use crate::sys;
use crate::wire::{Frame, FrameError};

pub(super) struct ShmLink {
    endpoint: Endpoint,
    child: Child,
    /// Until dropped, the death watch sets `dead` and wakes the endpoint's
    /// waits when the worker ends (`None`: the watch could not be started,
    /// and every operation fails).
    watched: Option<Watched>,
    kill: Arc<KillSwitch>,
}

impl ShmLink {
    /// The link to `child`, whose channel's parent end `endpoint` is.
    pub(super) fn new(endpoint: Endpoint, child: Child, kill: Arc<KillSwitch>) -> ShmLink {
        let (dead, map) = endpoint.death_watch();
        let watched = match watch::watch(child.pidfd(), dead.clone(), map, child.forked()) {
            Ok(watched) => Some(watched),
            Err(e) => {
                // Waits could not see the worker die: fail at once instead.
                log::warn!(target: "procpool", "cannot watch worker {}: {e}", child.id());
                dead.store(true, std::sync::atomic::Ordering::SeqCst);
                None
            }
        };
        ShmLink {
            endpoint,
            child,
            watched,
            kill,
        }
    }
}

impl Link for ShmLink {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, parts: &[&[u8]], tail: &[u8]) -> Result<(), FrameError> {
        self.endpoint.send(parts, tail)
    }

    fn send_batch(&mut self, frames: &[[&[u8]; 2]]) -> Result<(), FrameError> {
        self.endpoint.send_batch(frames)
    }

    fn recv(&mut self, timeout: Option<Duration>) -> Result<Frame, FrameError> {
        self.endpoint.recv(timeout)
    }

    fn reply_waiting(&mut self) -> bool {
        self.endpoint.has_bytes()
    }

    fn unread_requests(&mut self) -> bool {
        !self.endpoint.all_consumed()
    }

    fn started(&mut self, id: u64) -> bool {
        self.endpoint.last_run() == id
    }

    fn items_started(&mut self) -> Option<u64> {
        Some(self.endpoint.progress().read())
    }

    fn has_exited(&mut self) -> bool {
        // Reaped under the switch's lock, like `finish`: the switch never
        // holds a worker that is gone.
        let mut slot = self.kill.lock();
        match self.child.try_wait() {
            None => false,
            Some(_) => {
                slot.forget(self.child.id());
                true
            }
        }
    }

    fn resident_bytes(&mut self) -> Option<u64> {
        sys::resident_bytes(self.child.id()).ok()
    }

    fn kill(&mut self) {
        self.kill.kill();
    }

    fn kill_unless_past(&mut self, call: u64, behind: &[u64]) -> bool {
        self.kill.kill_unless_past(call, behind)
    }

    fn kill_unless_started(&mut self, id: u64, behind: &[u64]) -> bool {
        self.kill.kill_unless_started(id, behind)
    }

    fn give_back(&mut self, call: u64, behind: &[u64]) -> bool {
        self.kill.give_back(call, behind)
    }

    fn start_limit(&self) -> Option<Duration> {
        self.endpoint.stall_limit()
    }

    fn finish(mut self: Box<Self>, grace: Duration) -> ExitInfo {
        // Let the worker go: a worker waiting for work exits cleanly.
        self.endpoint.close();
        if !sys::pidfd_wait(self.child.pidfd().as_fd(), Some(grace)) {
            self.child.kill();
        }
        // Reaped under the switch's lock (see `has_exited`).
        let mut slot = self.kill.lock();
        let status = self.child.wait();
        slot.forget(self.child.id());
        status
    }
}

impl Drop for ShmLink {
    fn drop(&mut self) {
        self.watched.take();
        self.endpoint.close();
    }
}

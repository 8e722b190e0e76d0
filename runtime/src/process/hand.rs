//! A channel whose parent end a test drives by hand (see `__private`): the
//! test starts a worker itself with the memfd at [`super::CHANNEL_FD`] and
//! `PROCPOOL_WORKER_FD` set, then writes raw bytes and reads frames.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::shm::Endpoint;

/// The parent's end of a fresh channel, with no worker yet.
pub(crate) struct HandChannel {
    endpoint: Endpoint,
    memfd: OwnedFd,
}

impl HandChannel {
    /// With frames of at most `max_frame` bytes, each of which may stop
    /// flowing for `stall` at most.
    pub(crate) fn new(max_frame: usize, stall: Duration) -> io::Result<HandChannel> {
        let channel = super::backend::Channel::new(max_frame, stall)?;
        Ok(HandChannel {
            endpoint: channel.endpoint,
            memfd: channel.memfd,
        })
    }

    /// The memfd to place at the worker's channel fd.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }

    /// Writes `bytes` into the request ring as they are, and publishes them.
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.endpoint.write_raw(bytes).map_err(|e| e.to_string())
    }

    /// Reads one frame (its bytes, a split frame's joined), waiting at most
    /// `timeout` for it.
    pub(crate) fn read_frame(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        self.endpoint
            .recv(Some(timeout))
            .map(|frame| frame.into_contiguous())
            .map_err(|e| e.to_string())
    }

    /// Lets the worker go (it exits cleanly once it has nothing to read).
    pub(crate) fn close(&self) {
        self.endpoint.close();
    }
}

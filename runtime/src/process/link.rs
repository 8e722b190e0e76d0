//! The parent's [`Link`] to one re-executed worker: its end of the channel
//! and the process. Every wait on the channel also watches the process (a
//! process a task forked may hold the channel open after the worker died),
//! and a frame that began to arrive must keep arriving: a read in the middle
//! of one ends after the stall limit, and so does a write the worker stops
//! taking in. Reads and writes try first without waiting, so bytes that
//! flow cost no extra system call.

use std::io::{self, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ExitInfo;
use crate::link::{KillSwitch, Limits, Link};
use crate::sys;
use crate::wire::{self, FrameError};

/// Capacity of the parent's read buffer on each worker's channel.
const READ_BUFFER: usize = 64 << 10;

/// A worker process and the parent's end of its channel.
pub(super) struct ProcessLink {
    /// Replies are read through a buffer: a small one costs one read, and a
    /// batch of them arriving together costs one read for all.
    channel: BufReader<Watched>,
    max_frame: usize,
    /// How long a frame that began to arrive may stop arriving.
    stall: Duration,
    kill: Arc<KillSwitch>,
}

/// The channel, read with the worker in view.
struct Watched {
    stream: UnixStream,
    child: sys::WorkerProcess,
    /// How long one read may wait for bytes.
    wait: Duration,
}

impl Watched {
    /// Waits up to `wait` until the channel can be read or written: `Ok(true)`
    /// if it can, `Ok(false)` if the worker ended first, a `TimedOut` error
    /// after `wait`.
    fn wait_for(&self, direction: sys::Direction) -> io::Result<bool> {
        match sys::wait_for(&self.stream, &self.child, direction, Some(self.wait))? {
            sys::Readiness::Ready => Ok(true),
            sys::Readiness::TimedOut => Err(io::ErrorKind::TimedOut.into()),
            sys::Readiness::WorkerEnded => Ok(false),
        }
    }
}

impl Read for Watched {
    /// Reads what is there; if nothing is, waits up to `wait` for bytes (a
    /// `TimedOut` error after it) or the worker's end (end of file).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match sys::read_now(&self.stream, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
            if !self.wait_for(sys::Direction::Read)? {
                return Ok(0);
            }
        }
    }
}

impl Write for Watched {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    /// Writes what the channel takes now; if it takes nothing, waits up to
    /// `wait` for room (a `TimedOut` error after it: the worker stopped
    /// reading) or the worker's end (a broken pipe).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        loop {
            match sys::write_now(&self.stream, bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
            if !self.wait_for(sys::Direction::Write)? {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ProcessLink {
    /// The link to `child`, whose channel's other end is `stream`.
    pub(super) fn new(
        child: sys::WorkerProcess,
        stream: UnixStream,
        limits: Limits,
        kill: Arc<KillSwitch>,
    ) -> ProcessLink {
        ProcessLink {
            channel: BufReader::with_capacity(
                READ_BUFFER,
                Watched {
                    stream,
                    child,
                    wait: limits.stall_timeout,
                },
            ),
            max_frame: limits.max_frame,
            stall: limits.stall_timeout,
            kill,
        }
    }

    fn child(&mut self) -> &mut sys::WorkerProcess {
        &mut self.channel.get_mut().child
    }
}

impl Link for ProcessLink {
    fn pid(&self) -> u32 {
        self.channel.get_ref().child.id()
    }

    /// A write the worker stops taking in fails after the stall limit (the
    /// call never started: its frame is incomplete), and so does one to a
    /// worker that died.
    fn send(&mut self, parts: &[&[u8]]) -> Result<(), FrameError> {
        wire::write_frame(self.channel.get_mut(), parts, self.max_frame)
    }

    fn send_batch(&mut self, frames: &[[&[u8]; 2]]) -> Result<(), FrameError> {
        let mut buf = Vec::new();
        for parts in frames {
            wire::append_frame(&mut buf, parts, self.max_frame)?;
        }
        self.channel
            .get_mut()
            .write_all(&buf)
            .map_err(FrameError::Io)
    }

    fn recv(&mut self, timeout: Option<Duration>) -> Result<Vec<u8>, FrameError> {
        // The first byte may take the call's time limit (the task runs
        // meanwhile), with the worker's life in view.
        if self.channel.buffer().is_empty() {
            let channel = self.channel.get_ref();
            match sys::wait_for(
                &channel.stream,
                &channel.child,
                sys::Direction::Read,
                timeout,
            ) {
                Ok(sys::Readiness::Ready) => {}
                Ok(sys::Readiness::TimedOut) => return Err(FrameError::TimedOut),
                Ok(sys::Readiness::WorkerEnded) => return Err(FrameError::Closed),
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
        // The rest must keep flowing: a wait past the stall limit means the
        // worker is alive but no longer sending.
        match wire::read_frame(&mut self.channel, self.max_frame) {
            Err(FrameError::TimedOut) => Err(FrameError::Stalled(self.stall)),
            other => other,
        }
    }

    fn unread_requests(&mut self) -> bool {
        sys::unread_by_peer(&self.channel.get_ref().stream).unwrap_or(false)
    }

    fn has_exited(&mut self) -> bool {
        // Reaped under the switch's lock, like `finish`: a concurrent kill
        // either hits the live child or finds no pid.
        let kill = self.kill.clone();
        let mut slot = kill.lock();
        match self.child().try_wait() {
            Ok(None) => false,
            Ok(Some(_)) | Err(_) => {
                *slot = None;
                true
            }
        }
    }

    fn resident_bytes(&mut self) -> Option<u64> {
        sys::resident_bytes(self.pid()).ok()
    }

    fn kill(&mut self) {
        self.kill.kill();
    }

    fn finish(mut self: Box<Self>, grace: Duration) -> ExitInfo {
        let deadline = Instant::now() + grace;
        let mut pause = Duration::from_micros(50);
        let kill = self.kill.clone();
        let child = self.child();
        loop {
            {
                // Reaping and clearing the pid under one lock: a concurrent
                // kill either hits the live child or finds no pid.
                let mut slot = kill.lock();
                match child.try_wait() {
                    Ok(Some(status)) => {
                        *slot = None;
                        return ExitInfo::from(status);
                    }
                    Ok(None) if Instant::now() >= deadline => child.kill(),
                    Ok(None) => {}
                    Err(_) => {
                        child.kill();
                        let status = child.wait();
                        *slot = None;
                        return status.map(ExitInfo::from).unwrap_or(ExitInfo::Unknown);
                    }
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}

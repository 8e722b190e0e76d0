//! Starting a worker: its channel, its process (forked by the fork server,
//! or spawned), and its first message.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::child::Child;
use super::link::ShmLink;
use super::{forkserver, worker_args, CHANNEL_FD, CHANNEL_NAME, ENV_CHANNEL_FD};
use super::{ENV_PARENT_PID, ENV_WORKER_INDEX};
use crate::error::Error;
use crate::link::{Backend, KillSwitch, Limits, Link, Target};
use crate::shm::{self, Endpoint, Settings};
use crate::sys::{self, SharedMap};
use crate::wire::{self, FrameError, Reply};

/// Starts workers: copies of this program, forked by the fork server or
/// re-executed.
pub(crate) struct ProcessBackend {
    program: sys::Program,
}

impl ProcessBackend {
    pub(crate) fn new() -> Self {
        ProcessBackend {
            program: sys::this_program("procpool-worker"),
        }
    }

    /// Starts a worker with `posix_spawn`: this program with `env` added and
    /// `channel` at [`CHANNEL_FD`].
    fn spawn(&self, env: &[(&str, String)], channel: BorrowedFd<'_>) -> Result<Child, String> {
        let exe = &self.program.exe;
        let mut argv: Vec<&std::ffi::OsStr> =
            self.program.lead.iter().map(|a| a.as_os_str()).collect();
        argv.extend(worker_args().iter().map(std::ffi::OsStr::new));
        sys::spawn_worker(exe, &argv, env, channel, CHANNEL_FD)
            .map(Child::from)
            .map_err(|e| e.to_string())
    }
}

impl Backend for ProcessBackend {
    fn start(
        &self,
        kill: &Arc<KillSwitch>,
        limits: Limits,
        slot: usize,
    ) -> Result<Box<dyn Link>, Error> {
        let start_error = |message: String| Error::WorkerStart {
            task: String::new(),
            message,
        };
        let channel = || {
            Channel::new(limits.max_frame, limits.stall_timeout)
                .map_err(|e| start_error(format!("could not make its channel: {e}")))
        };
        let mut ch = channel()?;
        let env = [
            (ENV_CHANNEL_FD, CHANNEL_FD.to_string()),
            (ENV_PARENT_PID, std::process::id().to_string()),
            (ENV_WORKER_INDEX, slot.to_string()),
        ];
        let terminated = || start_error("the pool was terminated".into());
        // Terminated: start nothing. A terminate (or a kill) that comes
        // while the process is made reaches it when it is published.
        kill.begin_start().map_err(|_| terminated())?;
        let started = match forkserver::fork_worker(ch.memfd.as_fd(), slot) {
            Ok(Some(forked)) => Ok(Child::from(forked)),
            Ok(None) => self.spawn(&env, ch.memfd.as_fd()).map_err(start_error),
            Err(e) => {
                log::debug!(target: "procpool", "the fork server could not fork: {e}");
                channel().and_then(|fresh| {
                    ch = fresh;
                    self.spawn(&env, ch.memfd.as_fd()).map_err(start_error)
                })
            }
        };
        let mut child = started.inspect_err(|_| kill.abandon_start())?;
        if kill
            .publish(Target::new(
                child.id(),
                child.pidfd().clone(),
                Some(ch.endpoint.halter()),
            ))
            .is_err()
        {
            child.kill();
            child.wait();
            return Err(terminated());
        }
        let Channel { memfd, endpoint } = ch;
        drop(memfd);
        let link = ShmLink::new(endpoint, child, kill.clone());
        hello(Box::new(link), limits.start_timeout).map_err(start_error)
    }
}

/// A fresh channel, its control page written: the memfd to hand a worker,
/// and the parent's end.
pub(super) struct Channel {
    pub(super) memfd: OwnedFd,
    pub(super) endpoint: Endpoint,
}

impl Channel {
    /// A channel for frames of up to `max_frame` bytes, whose parent end
    /// gives up on a frame stalled for `stall`.
    pub(super) fn new(max_frame: usize, stall: Duration) -> io::Result<Channel> {
        let settings = Settings {
            ring_bytes: shm::DEFAULT_RING_BYTES,
            max_frame,
            maker: std::process::id(),
        };
        let (memfd, map) = SharedMap::create(CHANNEL_NAME, shm::total_bytes(settings.ring_bytes))?;
        let endpoint = Endpoint::parent(Arc::new(map), settings, stall);
        Ok(Channel { memfd, endpoint })
    }
}

/// Waits for a new worker's first message; on anything but its hello, ends
/// it and says why.
fn hello(mut link: Box<ShmLink>, start_timeout: Duration) -> Result<Box<dyn Link>, String> {
    let pid = link.pid();
    let first = link.recv(Some(start_timeout));
    let why = match first.map(wire::parse_reply) {
        Ok(Ok(Reply::Hello { .. })) => return Ok(link),
        Ok(Ok(Reply::Fatal { message })) => message,
        Ok(Ok(reply)) => format!("unexpected first message {reply:?}"),
        Ok(Err(e)) => e,
        Err(FrameError::TimedOut) => {
            format!("it sent nothing within {start_timeout:?}, the pool's start_timeout")
        }
        Err(FrameError::Broken(why)) => why,
        Err(_) => "it ended".to_string(),
    };
    let status = link.finish(Duration::ZERO);
    Err(format!(
        "worker {pid} failed before it was ready ({why}; {status}). \
         Does the program call procpool::init() first in main, \
         or procpool::enable_test_support!() in a test binary?"
    ))
}

//! Process handles (pidfds: immune to pid reuse, usable for processes this
//! one did not start) and the epoll set the death watch blocks in.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};

/// A pidfd for process `pid`. The caller makes sure `pid` cannot have been
/// reused yet (its own unreaped child), or receives the pidfd from the
/// process that can.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(io::ErrorKind::InvalidInput)?;
    super::above_stdio(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// Sends SIGKILL to the process behind `pidfd`; a process that has ended
/// already is left alone (the pidfd cannot name any other).
pub(crate) fn pidfd_kill(pidfd: BorrowedFd<'_>) {
    match rustix::process::pidfd_send_signal(pidfd, Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => log::warn!(
            target: "procpool",
            "a worker could not be killed: {e} (a worker started before this process \
             dropped privileges outlives its time limit, cancel and terminate)"
        ),
    }
}

/// Whether the process behind `pidfd` has not ended yet.
pub(crate) fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    !pidfd_wait(pidfd, Some(Duration::ZERO))
}

/// Waits until the process behind `pidfd` has ended (true) or `timeout`
/// passed (false). `Some(ZERO)` only looks.
pub(crate) fn pidfd_wait(pidfd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: left.subsec_nanos().into(),
            }
        });
        let mut fds = [PollFd::from_borrowed_fd(pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, left.as_ref()) {
            Ok(ready) => return ready > 0,
            Err(rustix::io::Errno::INTR) => {}
            // Any other error (EBADF: impossible for a live fd) counts as
            // ended, so no caller waits on a handle that cannot wake.
            Err(_) => return true,
        }
    }
}

/// An epoll set of fds, each reported with a token once readable.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll(super::above_stdio(epoll::create(
            epoll::CreateFlags::CLOEXEC,
        )?)?))
    }

    /// Reports `fd` as `token` once it is readable (level-triggered).
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let data = epoll::EventData::new_u64(token);
        Ok(epoll::add(&self.0, fd, data, epoll::EventFlags::IN)?)
    }

    /// Stops watching `fd` (closing it would too).
    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = epoll::delete(&self.0, fd);
    }

    /// Blocks until some fds are readable; puts their tokens in `tokens`.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>) {
        let mut events = Vec::with_capacity(32);
        tokens.clear();
        if epoll::wait(&self.0, rustix::buffer::spare_capacity(&mut events), None).is_ok() {
            tokens.extend(events.iter().map(|event| event.data.u64()));
        }
    }
}

//! Process handles (pidfds: immune to pid reuse, usable for processes this
//! one did not start) and the epoll set the death watch blocks in.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A pidfd for process `pid`. The caller makes sure `pid` cannot have been
/// reused yet (its own unreaped child), or receives the pidfd from the
/// process that can.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: pidfd_open takes integers and returns a new fd, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends SIGKILL to the process behind `pidfd`; a process that has ended
/// already is left alone (the pidfd cannot name any other).
pub(crate) fn pidfd_kill(pidfd: BorrowedFd<'_>) {
    // SAFETY: pidfd_send_signal takes integers and a null siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        );
    }
}

/// Waits until the process behind `pidfd` has ended (true) or `timeout`
/// passed (false). `Some(ZERO)` only looks.
pub(crate) fn pidfd_wait(pidfd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    let mut fd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms = deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            libc::c_int::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
        });
        // SAFETY: poll reads and writes the one pollfd we own.
        let ready = unsafe { libc::poll(&mut fd, 1, ms) };
        if ready == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // An error other than EINTR (EBADF: impossible for a live OwnedFd)
        // counts as ended, so no caller waits on a handle that cannot wake.
        return ready != 0;
    }
}

/// An epoll set of pidfds, each with a token.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flag and returns a new fd, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Reports `fd` as `token` once it is readable (level-triggered).
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl reads the live event struct; both fds are open.
        let done = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut event,
            )
        };
        if done == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (closing it would too).
    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) {
        // SAFETY: EPOLL_CTL_DEL ignores the (null) event; both fds are open.
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            );
        }
    }

    /// Blocks until some fds are readable; returns their tokens.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>) {
        const MAX: usize = 32;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        tokens.clear();
        // SAFETY: epoll_wait writes at most MAX events into our array.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), MAX as i32, -1) };
        for event in events.iter().take(usize::try_from(n).unwrap_or(0)) {
            tokens.push(event.u64);
        }
    }
}

//! The task channel: the socket pair, reads and writes that never wait
//! (the waits are [`wait_for`], which also watches the worker), what the
//! peer has not read yet, and the checks and move a worker makes on the
//! socket it inherits.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::FileType;
use rustix::net::{sockopt, AddressFamily, RecvFlags, SendAncillaryBuffer, SendFlags, SocketType};

use super::WorkerProcess;

/// Socket buffer size asked for on each end of a task channel: large frames
/// then move in a few big steps instead of many ~200 KiB ones. The kernel
/// caps it at `net.core.wmem_max` / `rmem_max`; a refusal is harmless.
const CHANNEL_BUFFER: usize = 4 << 20;

/// A connected pair of stream sockets, both close-on-exec.
pub(crate) fn channel_pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    for sock in [&a, &b] {
        // A refusal is harmless (see CHANNEL_BUFFER).
        let _ = sockopt::set_socket_send_buffer_size(sock, CHANNEL_BUFFER);
        let _ = sockopt::set_socket_recv_buffer_size(sock, CHANNEL_BUFFER);
    }
    Ok((a, b))
}

/// What [`wait_for`] saw.
pub(crate) enum Readiness {
    /// The channel can be read (bytes or end-of-file) or written, as asked.
    Ready,
    /// The time limit passed first.
    TimedOut,
    /// The worker ended and the channel is not ready: a process it forked
    /// may still hold the channel open, so no end-of-file would come.
    WorkerEnded,
}

/// Which way [`wait_for`] waits on a channel.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// Waits until `channel` can be read or written (`direction`), `timeout`
/// passes, or `worker` ends.
pub(crate) fn wait_for(
    channel: &UnixStream,
    worker: &WorkerProcess,
    direction: Direction,
    timeout: Option<std::time::Duration>,
) -> io::Result<Readiness> {
    let timeout = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    let events = match direction {
        Direction::Read => PollFlags::IN,
        Direction::Write => PollFlags::OUT,
    };
    // Before Linux 5.3 there is no pidfd: the channel alone is watched.
    let pidfd = worker.pidfd();
    let watched = if pidfd.is_some() { 2 } else { 1 };
    let mut all = [
        PollFd::new(channel, events),
        PollFd::from_borrowed_fd(pidfd.unwrap_or(channel.as_fd()), PollFlags::IN),
    ];
    let fds = &mut all[..watched];
    loop {
        match rustix::event::poll(fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        // (An error or hang-up on the channel counts as ready: the read or
        // write that follows reports it.)
        return Ok(if !fds[0].revents().is_empty() {
            Readiness::Ready
        } else if fds.get(1).is_some_and(|fd| !fd.revents().is_empty()) {
            Readiness::WorkerEnded
        } else {
            Readiness::TimedOut
        });
    }
}

/// Reads what `stream` holds now, without waiting: `WouldBlock` if nothing.
pub(crate) fn read_now(stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    let (read, _) = rustix::net::recv(stream, buf, RecvFlags::DONTWAIT)?;
    Ok(read)
}

/// Writes what `stream` takes now of `bufs`, without waiting: `WouldBlock`
/// if nothing; never SIGPIPE (a closed peer is an `EPIPE` error).
pub(crate) fn write_now(stream: &UnixStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    match bufs {
        // One buffer (every small frame): send, cheaper in the kernel than
        // sendmsg's message header and vector.
        [buf] => Ok(rustix::net::send(stream, buf, flags)?),
        _ => Ok(rustix::net::sendmsg(
            stream,
            bufs,
            &mut SendAncillaryBuffer::default(),
            flags,
        )?),
    }
}

/// Whether bytes this end of `stream` sent are still unread by the peer
/// (SIOCOUTQ: the memory they hold in the peer's queue, zero once it read
/// them all). rustix has no wrapper for this ioctl.
pub(crate) fn unread_by_peer(stream: &UnixStream) -> io::Result<bool> {
    let mut queued: libc::c_int = 0;
    // SAFETY: the SIOCOUTQ (= TIOCOUTQ) ioctl writes one c_int into
    // `queued`, a live local; the fd is an open socket `stream` owns.
    let got = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if got == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(queued > 0)
}

/// `fd`, borrowed, if it is open. Callers use the borrow within their own
/// body only, before anything could close `fd`.
fn open_fd<'a>(fd: RawFd) -> Option<BorrowedFd<'a>> {
    // An fd that is not open would make `borrow_raw` unsound: check first
    // (F_GETFD only reads the fd's flags; EBADF if it is not open).
    // SAFETY: fcntl(F_GETFD) takes integers and has no memory effects.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: `fd` is open (checked above) and stays open while borrowed:
    // it is the descriptor the parent left for this process, which nothing
    // closes but `adopt_channel`, after its last use of the borrow.
    Some(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The pid of the process at the other end of `fd`, if `fd` is a connected
/// Unix stream socket (for a socket pair: the process that made the pair);
/// otherwise what `fd` is instead, in words.
pub(crate) fn unix_stream_peer(fd: RawFd) -> Result<u32, String> {
    let Some(borrowed) = open_fd(fd) else {
        return Err(format!("fd {fd} is not open"));
    };
    let described = |e: rustix::io::Errno| format!("fd {fd}: {e}");
    let stat = rustix::fs::fstat(borrowed).map_err(described)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(format!("fd {fd} is not a socket"));
    }
    match sockopt::socket_domain(borrowed).map_err(described)? {
        AddressFamily::UNIX => {}
        AddressFamily::INET => return Err(format!("fd {fd} is an IPv4 socket, not a Unix socket")),
        AddressFamily::INET6 => return Err(format!("fd {fd} is an IPv6 socket, not a Unix socket")),
        other => {
            return Err(format!(
                "fd {fd} is a socket of family {}, not a Unix socket",
                other.as_raw()
            ))
        }
    }
    if sockopt::socket_type(borrowed).map_err(described)? != SocketType::STREAM {
        return Err(format!("fd {fd} is not a stream socket"));
    }
    if sockopt::socket_acceptconn(borrowed).map_err(described)? {
        return Err(format!("fd {fd} is a listening socket"));
    }
    match sockopt::socket_peercred(borrowed) {
        Ok(cred) => Ok(cred.pid.as_raw_nonzero().get() as u32),
        Err(_) => Err(format!("fd {fd} is a Unix socket without a peer")),
    }
}

/// Takes ownership of the channel the parent left at `fd`, moved to a high
/// descriptor number and close-on-exec (fd `fd` is closed): a task that
/// writes to a low number such as 3, by mistake or on purpose, does not
/// land on the channel.
pub(crate) fn adopt_channel(fd: RawFd) -> io::Result<UnixStream> {
    let Some(borrowed) = open_fd(fd) else {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    };
    let stat = rustix::fs::fstat(borrowed)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not the task channel (not a socket)"),
        ));
    }
    // The lowest free number from 1000 up (or from 100, 10, under a low
    // RLIMIT_NOFILE); close-on-exec, so the worker's own children (a task
    // may run commands) do not inherit it.
    let mut moved = Err(rustix::io::Errno::INVAL);
    for lowest in [1000, 100, 10] {
        moved = rustix::io::fcntl_dupfd_cloexec(borrowed, lowest);
        if moved.is_ok() {
            break;
        }
    }
    let moved: OwnedFd = moved?;
    // SAFETY: `fd` is open and nothing else in this process owns it: the
    // parent put it there for us, and only this call adopts it (its borrow
    // above ends here); owning it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(UnixStream::from(moved))
}

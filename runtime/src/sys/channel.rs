//! The task channel: the socket pair, reads and writes that never wait
//! (the waits are [`wait_for`], which also watches the worker), what the
//! peer has not read yet, and the checks and move a worker makes on the
//! socket it inherits.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

use super::WorkerProcess;

/// Socket buffer size asked for on each end of a task channel: large frames
/// then move in a few big steps instead of many ~200 KiB ones. The kernel
/// caps it at `net.core.wmem_max` / `rmem_max`; a refusal is harmless.
const CHANNEL_BUFFER: libc::c_int = 4 << 20;

/// A connected pair of stream sockets, both close-on-exec.
pub(crate) fn channel_pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    for sock in [&a, &b] {
        for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a
            // live local; the fd is an open socket we own.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&CHANNEL_BUFFER as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
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
    let events = match direction {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let mut fds = [
        libc::pollfd {
            fd: channel.as_raw_fd(),
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: worker.pidfd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
    });
    loop {
        // SAFETY: poll reads and writes only the two pollfd structs we own
        // (a negative fd is ignored by the kernel).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if ready == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // (An error or hang-up on the channel counts as ready: the read or
        // write that follows reports it.)
        return Ok(if fds[0].revents != 0 {
            Readiness::Ready
        } else if fds[1].revents != 0 {
            Readiness::WorkerEnded
        } else {
            Readiness::TimedOut
        });
    }
}

/// Reads what `stream` holds now, without waiting: `WouldBlock` if nothing.
pub(crate) fn read_now(stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`, a live,
    // exclusively borrowed buffer; the fd is an open socket `stream` owns.
    let got = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if got < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(got as usize)
    }
}

/// Whether bytes this end of `stream` sent are still unread by the peer
/// (SIOCOUTQ: the memory they hold in the peer's queue, zero once it read
/// them all).
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

/// Writes what `stream` takes now of `bufs`, without waiting: `WouldBlock`
/// if nothing; never SIGPIPE (a closed peer is an `EPIPE` error).
pub(crate) fn write_now(stream: &UnixStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: `msghdr` is plain integers and pointers, for which all-zero
    // bytes are valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix (std guarantees it).
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: sendmsg only reads the `bufs.len()` iovecs `msg` points to,
    // which borrow live buffers; the fd is an open socket `stream` owns.
    let sent = unsafe {
        libc::sendmsg(
            stream.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// The pid of the process at the other end of `fd`, if `fd` is a connected
/// Unix stream socket (for a socket pair: the process that made the pair);
/// otherwise what `fd` is instead, in words.
pub(crate) fn unix_stream_peer(fd: RawFd) -> Result<u32, String> {
    // SAFETY: `libc::stat` is plain integers, for which all-zero bytes are valid.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `stat`, a valid, exclusively borrowed
    // struct of the right type; an fd that is not open is an EBADF error.
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        return Err(format!("fd {fd} is not open"));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(format!("fd {fd} is not a socket"));
    }
    let int_option = |option: libc::c_int| -> Result<libc::c_int, String> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`, a live
        // c_int, and the new length into `len`.
        let got = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if got == -1 {
            return Err(format!("fd {fd}: {}", io::Error::last_os_error()));
        }
        Ok(value)
    };
    match int_option(libc::SO_DOMAIN)? {
        libc::AF_UNIX => {}
        libc::AF_INET => return Err(format!("fd {fd} is an IPv4 socket, not a Unix socket")),
        libc::AF_INET6 => return Err(format!("fd {fd} is an IPv6 socket, not a Unix socket")),
        other => {
            return Err(format!(
                "fd {fd} is a socket of family {other}, not a Unix socket"
            ))
        }
    }
    if int_option(libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(format!("fd {fd} is not a stream socket"));
    }
    if int_option(libc::SO_ACCEPTCONN)? != 0 {
        return Err(format!("fd {fd} is a listening socket"));
    }
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a live
    // ucred, and the new length into `len`.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if got == -1 || cred.pid <= 0 {
        return Err(format!("fd {fd} is a Unix socket without a peer"));
    }
    Ok(cred.pid as u32)
}

/// Takes ownership of the channel the parent left at `fd`, moved to a high
/// descriptor number and close-on-exec (fd `fd` is closed): a task that
/// writes to a low number such as 3, by mistake or on purpose, does not
/// land on the channel.
pub(crate) fn adopt_channel(fd: RawFd) -> io::Result<UnixStream> {
    // SAFETY: `libc::stat` is plain integers, for which all-zero bytes are valid.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `stat`, a valid, exclusively borrowed
    // struct of the right type; an fd that is not open is an EBADF error.
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not the task channel (not a socket)"),
        ));
    }
    // The lowest free number from 1000 up (or from 100, 10, under a low
    // RLIMIT_NOFILE); close-on-exec, so the worker's own children (a task
    // may run commands) do not inherit it.
    let mut moved = -1;
    for lowest in [1000, 100, 10] {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an fd we just checked is open
        // returns a new fd or -1.
        moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) };
        if moved != -1 {
            break;
        }
    }
    if moved == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: closes the original number, which nothing else in this
    // process owns: the parent put it there for us, and only this call adopts it.
    unsafe { libc::close(fd) };
    // SAFETY: `moved` is a fresh fd, a copy of the socket, owned by nothing else.
    Ok(unsafe { UnixStream::from_raw_fd(moved) })
}

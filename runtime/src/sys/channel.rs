//! What a process started as a worker (or as the fork server) checks of the
//! descriptor its parent left it before it takes it: a worker's must be the
//! sealed memfd of a channel, the server's a Unix socket whose other end is
//! its parent.

use std::os::fd::{BorrowedFd, RawFd};

use rustix::fs::{FileType, SealFlags};
use rustix::net::{sockopt, AddressFamily, SocketType};

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
    // closes before the caller is done with the borrow.
    Some(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Whether `fd` is a memfd called `name`, sealed against shrinking, growing
/// and further seals (as a pool makes a channel); otherwise what it is
/// instead, in words.
pub(crate) fn memfd_named(fd: RawFd, name: &std::ffi::CStr) -> Result<(), String> {
    let Some(borrowed) = open_fd(fd) else {
        return Err(format!("fd {fd} is not open"));
    };
    let stat = rustix::fs::fstat(borrowed).map_err(|e| format!("fd {fd}: {e}"))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(format!("fd {fd} is not a memfd"));
    }
    let sealed = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    match rustix::fs::fcntl_get_seals(borrowed) {
        Ok(seals) if seals.contains(sealed) => {}
        Ok(_) => return Err(format!("fd {fd} is a memfd not sealed as a channel is")),
        Err(_) => return Err(format!("fd {fd} is a file, not a memfd")),
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
    let expected = format!("/memfd:{}", name.to_string_lossy());
    if !link.to_string_lossy().starts_with(&expected) {
        return Err(format!("fd {fd} is {}, not {expected}", link.display()));
    }
    Ok(())
}

/// The pid of the process at the other end of `fd`, if `fd` is a connected
/// Unix `SOCK_SEQPACKET` socket (for a socket pair: the process that made
/// the pair); otherwise what `fd` is instead, in words.
pub(crate) fn seqpacket_peer(fd: RawFd) -> Result<u32, String> {
    unix_socket_peer(fd, SocketType::SEQPACKET)
}

fn unix_socket_peer(fd: RawFd, kind: SocketType) -> Result<u32, String> {
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
        AddressFamily::INET6 => {
            return Err(format!("fd {fd} is an IPv6 socket, not a Unix socket"))
        }
        other => {
            return Err(format!(
                "fd {fd} is a socket of family {}, not a Unix socket",
                other.as_raw()
            ))
        }
    }
    if sockopt::socket_type(borrowed).map_err(described)? != kind {
        return Err(format!("fd {fd} is not a socket of the expected type"));
    }
    if sockopt::socket_acceptconn(borrowed).map_err(described)? {
        return Err(format!("fd {fd} is a listening socket"));
    }
    match sockopt::socket_peercred(borrowed) {
        Ok(cred) => Ok(cred.pid.as_raw_nonzero().get() as u32),
        Err(_) => Err(format!("fd {fd} is a Unix socket without a peer")),
    }
}

//! Everything OS-specific: the inherited channel fd, the child's set-up between
//! `fork` and `exec`, signals and exit statuses. A port to another OS replaces
//! this module; nothing else calls `libc`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use crate::error::ExitInfo;

/// The fd number the worker finds its end of the task channel at.
pub(crate) const CHANNEL_FD: RawFd = 3;

/// A connected pair of stream sockets, both close-on-exec.
pub(crate) fn channel_pair() -> io::Result<(UnixStream, UnixStream)> {
    UnixStream::pair()
}

/// The program a worker re-executes: this very binary, even if the file was
/// replaced or deleted since it started (Linux keeps `/proc/self/exe` pointing
/// at the running image), so workers always run the caller's code.
pub(crate) fn worker_executable() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe().unwrap_or(proc_exe)
    }
}

/// Arranges for the child of `cmd` to find `channel` at [`CHANNEL_FD`], to
/// inherit no other descriptor, and to die with the thread that spawns it.
pub(crate) fn configure_child(cmd: &mut Command, channel: &UnixStream) {
    let fd = channel.as_raw_fd();
    let parent = std::process::id() as libc::pid_t;
    // Read here, not in the child: the fallback below needs the fd limit.
    let max_fd = max_fd();
    let hook = move || prepare_child(fd, parent, max_fd);
    // SAFETY: `prepare_child` runs in the forked child before `exec` and only
    // makes async-signal-safe system calls (dup2, fcntl, prctl, getppid,
    // syscall(close_range)); it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// One more than the highest fd this process may have open (the soft
/// `RLIMIT_NOFILE`, capped so the fallback loop stays bounded).
fn max_fd() -> libc::c_int {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return 65_536;
    }
    limit.rlim_cur.min(1 << 20) as libc::c_int
}

fn prepare_child(fd: RawFd, parent: libc::pid_t, max_fd: libc::c_int) -> io::Result<()> {
    // SAFETY (whole fn): plain syscalls on integers; see `configure_child`.
    unsafe {
        if fd == CHANNEL_FD {
            // dup2 onto itself would keep close-on-exec set.
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(fd, CHANNEL_FD) == -1 {
            return Err(io::Error::last_os_error());
        }
        // Everything above the channel closes at exec: a worker must not keep
        // the parent's files, sockets or other workers' channels open.
        // Where close_range or its CLOEXEC flag is missing (Linux < 5.11),
        // mark each fd close-on-exec one by one (fcntl is async-signal-safe;
        // on a closed fd it just fails with EBADF).
        let closed = libc::syscall(
            libc::SYS_close_range,
            (CHANNEL_FD + 1) as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
        if closed == -1 {
            for other in (CHANNEL_FD + 1)..max_fd {
                libc::fcntl(other, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        // The kernel kills the worker when the spawning thread's process dies,
        // even by SIGKILL; the check closes the race with a parent that died
        // before prctl ran.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) == -1
        {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// Takes ownership of the channel the parent left at `fd`.
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
    // The worker's own children (a task may run commands) must not inherit it.
    // SAFETY: fcntl on an fd we just checked is open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open, is a socket, and nothing else in this process
    // owns it: the parent put it there for us, and only this call adopts it.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

/// Runs `hook` when the process exits normally (after `main` returns).
/// Fails if the C runtime could not register it.
pub(crate) fn at_exit(hook: extern "C" fn()) -> io::Result<()> {
    // SAFETY: registers a plain function pointer with the C runtime; `hook`
    // is a Rust `extern "C" fn` that never unwinds (it ends the process).
    let registered = unsafe { libc::atexit(hook) };
    if registered == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "atexit returned {registered} (too many exit handlers?)"
        )))
    }
}

/// Ends the process at once, without running exit hooks again.
pub(crate) fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit(2) takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// Sends SIGKILL to `pid`. The caller guarantees `pid` is its own unreaped
/// child, so the number cannot have been reused.
pub(crate) fn kill(pid: u32) {
    // SAFETY: kill(2) with integer arguments has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Turns a reaped child's status into an [`ExitInfo`].
pub(crate) fn exit_info(status: ExitStatus) -> ExitInfo {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitInfo::Code(code),
        (None, Some(sig)) => ExitInfo::Signal(sig),
        _ => ExitInfo::Unknown,
    }
}

/// The conventional name of a signal, for messages.
pub(crate) fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => return None,
    })
}

//! Starting a worker or the fork server with `posix_spawn`, and the
//! [`WorkerProcess`] it gives: its pid and pidfd, waited for and killed.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use rustix::process::{Pid, WaitOptions};

use super::{environ_entries, is_open, kill, kill_worker, pidfd_open};

/// A worker process this process started and has not yet reaped.
pub(crate) struct WorkerProcess {
    pid: libc::pid_t,
    /// Readable once the process has ended; signals through it cannot hit
    /// another process, even after this one was reaped.
    pidfd: std::sync::Arc<OwnedFd>,
}

/// Starts `exe` as a worker or as the fork server: `channel` at fd `at`, stdin from
/// `/dev/null`, no other descriptor above the channel, the default signal
/// mask, and `env` added to this process's environment.
///
/// `posix_spawn` (glibc's is `clone(CLONE_VM | CLONE_VFORK)` + `exec`), not
/// `fork`: a fork copies the parent's page tables, so starting a worker from
/// a parent holding 512 MiB took 40 ms instead of 1.5 ms. Nothing runs in
/// the child before `exec`, so the worker asks to die with its parent itself
/// ([`die_with_parent`](super::die_with_parent)).
pub(crate) fn spawn_worker(
    exe: &Path,
    argv: &[&OsStr],
    env: &[(&str, String)],
    channel: BorrowedFd<'_>,
    at: RawFd,
) -> io::Result<WorkerProcess> {
    let (exe, argv, envp) = spawn_strings(exe, argv, env)?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);
    // dup2 onto the same number would keep close-on-exec set: hand the child
    // a copy that is surely not at `at` (closed again below).
    let source = rustix::io::fcntl_dupfd_cloexec(channel, 10)
        .map_err(|e| in_context("could not copy its channel's descriptor", e.into()))?;
    // SAFETY: the file actions and attributes are initialised before use and
    // destroyed once; every pointer passed (paths, argv, envp, the NULL-ended
    // pointer arrays) outlives the posix_spawn call, which copies what it needs.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        check(libc::posix_spawnattr_init(&mut attr)).inspect_err(|_| {
            libc::posix_spawn_file_actions_destroy(&mut actions);
        })?;
        let result = (|| {
            add_file_actions(&mut actions, source.as_raw_fd(), at)?;
            set_attributes(&mut attr)?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                exe.as_ptr(),
                &actions,
                &attr,
                argv_ptrs.as_ptr(),
                envp_ptrs.as_ptr(),
            ))
            .map_err(|e| in_context(&format!("could not execute {}", exe.to_string_lossy()), e))?;
            watched(pid)
        })();
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        result
    }
}

/// [`spawn_worker`]'s file actions: `source` at `at`, stdin (and a stdout
/// or stderr this program closed) from `/dev/null`, and every fd above `at`
/// closed.
///
/// # Safety
/// `actions` was initialised by `posix_spawn_file_actions_init`.
unsafe fn add_file_actions(
    actions: &mut libc::posix_spawn_file_actions_t,
    source: RawFd,
    at: RawFd,
) -> io::Result<()> {
    let dev_null = c"/dev/null";
    // SAFETY: the caller initialised `actions`; the path is a static C
    // string, which the calls copy.
    unsafe {
        check(libc::posix_spawn_file_actions_adddup2(actions, source, at))?;
        check(libc::posix_spawn_file_actions_addopen(
            actions,
            0,
            dev_null.as_ptr(),
            libc::O_RDONLY,
            0,
        ))?;
        // A stdout or stderr this program closed is `/dev/null` in the
        // worker: left closed, the worker's own first fds would take
        // its number, and a task's output would land in them.
        for fd in [1, 2] {
            if !is_open(fd) {
                check(libc::posix_spawn_file_actions_addopen(
                    actions,
                    fd,
                    dev_null.as_ptr(),
                    libc::O_WRONLY,
                    0,
                ))?;
            }
        }
        // The parent's other files, sockets and other workers' channels
        // stay out of the worker (they are close-on-exec already when
        // opened by std; this also covers those that are not).
        #[cfg(target_env = "gnu")]
        check(libc::posix_spawn_file_actions_addclosefrom_np(
            actions,
            at + 1,
        ))?;
    }
    Ok(())
}

/// [`spawn_worker`]'s attributes: no signal blocked, SIGPIPE's default
/// action, and a process group of its own.
///
/// # Safety
/// `attr` was initialised by `posix_spawnattr_init`.
unsafe fn set_attributes(attr: &mut libc::posix_spawnattr_t) -> io::Result<()> {
    // SAFETY: the caller initialised `attr`; each signal set is initialised
    // (`sigemptyset`) before it is read, and the calls copy it.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        check(libc::posix_spawnattr_setsigmask(attr, &mask))?;
        // Rust ignores SIGPIPE; a fresh program starts with the default.
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        libc::sigaddset(&mut defaults, libc::SIGPIPE);
        check(libc::posix_spawnattr_setsigdefault(attr, &defaults))?;
        // Its own process group (numbered by its pid): a terminal's
        // Ctrl-C (SIGINT to the foreground group) reaches the program,
        // not its workers, and killing the group kills what a task
        // started along with the worker (see `kill`).
        check(libc::posix_spawnattr_setpgroup(attr, 0))?;
        check(libc::posix_spawnattr_setflags(
            attr,
            (libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF
                | libc::POSIX_SPAWN_SETPGROUP) as libc::c_short,
        ))
    }
}

/// The worker `posix_spawn` just started as `pid`, with its pidfd; killed
/// and reaped if it cannot be watched.
fn watched(pid: libc::pid_t) -> io::Result<WorkerProcess> {
    // Our own unreaped child: the pid cannot have been reused.
    match pidfd_open(pid as u32) {
        Ok(pidfd) => Ok(WorkerProcess {
            pid,
            pidfd: std::sync::Arc::new(pidfd),
        }),
        Err(e) => {
            kill(pid as u32);
            let _ = rustix::process::waitpid(Pid::from_raw(pid), WaitOptions::empty());
            Err(in_context(
                &format!(
                    "could not watch worker {pid} with pidfd_open (Linux 5.3 or later, \
                     and no seccomp filter refusing it; it was killed)"
                ),
                e,
            ))
        }
    }
}

/// `error` with `what` before its message (its kind kept): which step of
/// starting a worker failed.
fn in_context(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// The program, its arguments and its environment (this process's, with
/// `env` replacing or adding variables) as C strings.
fn spawn_strings(
    exe: &Path,
    argv: &[&OsStr],
    env: &[(&str, String)],
) -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
    let cstring = |b: &[u8]| {
        CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
    };
    let exe = cstring(exe.as_os_str().as_bytes())?;
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let ours = |entry: &[u8]| {
        env.iter().any(|(k, _)| {
            entry
                .strip_prefix(k.as_bytes())
                .is_some_and(|r| r.starts_with(b"="))
        })
    };
    let mut envp: Vec<CString> = Vec::new();
    for pair in environ_entries() {
        if !ours(&pair) {
            envp.push(cstring(&pair)?);
        }
    }
    for (key, value) in env {
        envp.push(cstring(format!("{key}={value}").as_bytes())?);
    }
    Ok((exe, argv, envp))
}

/// The NULL-ended array of pointers `posix_spawn` takes for `strings`
/// (valid as long as they are).
fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// posix_spawn's functions return an error number instead of setting errno.
fn check(code: libc::c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code))
    }
}

impl WorkerProcess {
    pub(crate) fn id(&self) -> u32 {
        self.pid as u32
    }

    /// The process's pidfd (see [`pidfd_kill`](super::pidfd_kill),
    /// [`pidfd_wait`](super::pidfd_wait)).
    pub(crate) fn pidfd(&self) -> &std::sync::Arc<OwnedFd> {
        &self.pidfd
    }

    /// The exit status if the process has ended (and reaps it), else `None`.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let waited = rustix::process::waitpid(Pid::from_raw(self.pid), WaitOptions::NOHANG)?;
        Ok(waited.map(|(_, status)| ExitStatus::from_raw(status.as_raw())))
    }

    /// Waits for the process to end and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            match rustix::process::waitpid(Pid::from_raw(self.pid), WaitOptions::empty()) {
                Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
                Ok(None) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// SIGKILL to it and its process group (see [`kill_worker`]).
    pub(crate) fn kill(&mut self) {
        kill_worker(self.id(), self.pidfd.as_fd());
    }
}

//! Everything OS-specific: starting a worker (`posix_spawn`), the worker
//! process, signals, memory hints; shared memory and futexes in [`shm`],
//! pidfds and epoll in [`pidfd`], the fork server's calls in [`fork`], the
//! thread's stack in [`stack`], a node's stop signals in [`signals`], and
//! in [`channel`] what a process started as a worker or fork server checks
//! of what its parent left it. A port to another OS replaces this module;
//! nothing else calls `libc` or `rustix`. It imports nothing from the rest
//! of the crate: it is the bottom layer.
//!
//! System calls go through `rustix` where it has them (safe wrappers, raw
//! syscalls, no libc in between): pidfds, `poll`, `epoll`, `waitpid`,
//! `prctl`, `kill`, `fstat`, `fcntl`, socket options, `sendmsg`/`recvmsg`,
//! `memfd`, `mmap`, futexes, `madvise`. `posix_spawn`, `fork`, `signalfd`,
//! `atexit`, `_exit`, `signal`, `sigaction`, `pipe2`, `mallopt`, `malloc_trim` and
//! `pthread_getattr_np` are libc's own
//! (or missing from rustix) and stay `libc` calls.

mod channel;
mod fork;
mod pidfd;
mod shm;
#[cfg(feature = "redis")]
mod signals;
mod stack;

pub(crate) use channel::{memfd_named, seqpacket_peer};
pub(crate) use fork::{
    affinity, arg_area, drain_signals, fork, lead_process_group, message_pair, reap_any,
    reap_own_children, recv_message, rename_arg, resource_limits, restore_child_action,
    restore_stdout, room_under, say, send_message, server_signals, set_affinity,
    set_resource_limits, set_umask, set_up_child, signal_at_parent_death, silence_stdout,
    stdio_to_null, thread_count, umask, wait_readable, ArgArea, ChildAction,
};
pub(crate) use pidfd::{pidfd_alive, pidfd_kill, pidfd_open, pidfd_wait, Epoll};
pub(crate) use shm::{
    allowed_cpus, current_cpu, futex_wait, futex_wake, release_free_memory, runnable_threads,
    tune_worker_allocator, SharedMap,
};
#[cfg(feature = "redis")]
pub(crate) use signals::{catch_stop_signals, die_of, uncatch_stop_signals};
pub(crate) use stack::stack_left;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use rustix::mm::Advice;
use rustix::process::Pid;
use rustix::process::{Signal, WaitOptions};

/// The program a worker re-executes: this very binary, even if the file was
/// replaced or deleted since it started (Linux keeps `/proc/self/exe` pointing
/// at the running image), so workers always run the caller's code.
fn worker_executable() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe().unwrap_or(proc_exe)
    }
}

/// How this program is started again (a worker, the fork server).
pub(crate) struct Program {
    /// The file to execute: see [`worker_executable`].
    pub(crate) exe: PathBuf,
    /// The arguments before procpool's own: `argv[0]`, or, when this
    /// program was started through the dynamic loader
    /// (`/lib64/ld-linux-x86-64.so.2 ./prog`, where `/proc/self/exe` is the
    /// loader), the loader's `argv[0]` and options, then the program's path,
    /// which the loader takes as its first argument (without it the loader
    /// reads procpool's arguments as its own options and the worker never
    /// starts).
    pub(crate) lead: Vec<std::ffi::OsString>,
}

/// This program, to be started again; `name` stands for a missing `argv[0]`.
pub(crate) fn this_program(name: &str) -> Program {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| name.into());
    let exe = worker_executable();
    let mut lead = vec![argv0];
    let image = std::fs::read_link("/proc/self/exe").ok();
    // The main program's file as the kernel mapped it (absolute, whatever
    // the working directory is now and whatever `argv[0]` says): it differs
    // from the image only when the image is the loader that mapped it.
    let program = image
        .filter(|image| is_dynamic_loader(image))
        .and_then(|image| main_program_file().filter(|program| *program != image));
    if let Some(program) = program {
        // The loader's own options too (`--library-path`, `--preload`, ...),
        // so that the copies load what this program loaded.
        if let Some(loader) = loader_args() {
            lead = loader;
        }
        lead.push(program.into_os_string());
    }
    Program { exe, lead }
}

/// The loader's `argv[0]` and options this program was started with
/// (`ld.so --library-path DIR ./prog ARGS`: `ld.so --library-path DIR`),
/// read from `/proc/self/cmdline`, which still holds the command line the
/// kernel started: what comes before the program's path and its own
/// arguments. `None` if it does not end with those (a program that
/// rewrote its command line).
fn loader_args() -> Option<Vec<std::ffi::OsString>> {
    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
    let all: Vec<&[u8]> = cmdline.strip_suffix(b"\0")?.split(|&b| b == 0).collect();
    let own: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The program's path is just before its own arguments, the loader's
    // arguments (at least its name) before it.
    let at = all.len().checked_sub(own.len() + 1).filter(|&at| at > 0)?;
    let same = all[at + 1..]
        .iter()
        .zip(&own)
        .all(|(arg, own)| *arg == own.as_bytes());
    same.then(|| {
        all[..at]
            .iter()
            .map(|arg| std::ffi::OsString::from_vec(arg.to_vec()))
            .collect()
    })
}

/// The file the main program (the first object the dynamic loader lists)
/// was mapped from, read from `/proc/self/maps` at the address of its
/// program headers; `None` if it cannot be told.
fn main_program_file() -> Option<PathBuf> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `info` for the duration
        // of this call, and `data` is the `usize` `main_program_file` lent.
        unsafe { *data.cast::<usize>() = (*info).dlpi_phdr as usize };
        1 // The first object is the main program: stop there.
    }
    let mut phdr: usize = 0;
    // SAFETY: `first` only writes the address into `phdr`, which outlives
    // the call; `dl_iterate_phdr` holds its own lock meanwhile.
    unsafe { libc::dl_iterate_phdr(Some(first), (&raw mut phdr).cast()) };
    if phdr == 0 {
        return None;
    }
    let maps = std::fs::read("/proc/self/maps").ok()?;
    maps.split(|&b| b == b'\n').find_map(|line| {
        // `start-end perms offset dev inode   path`
        let mut fields = line.splitn(6, |&b| b == b' ');
        let (start, end) = std::str::from_utf8(fields.next()?).ok()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        if !(start..end).contains(&phdr) {
            return None;
        }
        let path = fields.nth(4)?.trim_ascii_start();
        let path = PathBuf::from(std::ffi::OsString::from_vec(path.to_vec()));
        // (A file deleted since, or a name the kernel escaped, is not there.)
        (path.is_absolute() && path.exists()).then_some(path)
    })
}

/// Whether `path` names glibc's (or musl's) dynamic loader, e.g.
/// `/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`.
fn is_dynamic_loader(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    ["ld-linux", "ld.so", "ld64.so", "ld-musl"]
        .iter()
        .any(|p| name.starts_with(p))
        && name.contains(".so")
}

/// A worker process this process started and has not yet reaped.
pub(crate) struct WorkerProcess {
    pid: libc::pid_t,
    /// Readable once the process has ended; signals through it cannot hit
    /// another process, even after this one was reaped.
    pidfd: std::sync::Arc<OwnedFd>,
}

/// This process's environment as `KEY=VALUE` byte strings, in order.
pub(crate) fn environ_entries() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .map(|(key, value)| [key.as_bytes(), b"=", value.as_bytes()].concat())
        .collect()
}

/// This process's working directory as bytes; `None` if it cannot be read
/// (it was deleted, or a parent is no longer searchable).
pub(crate) fn cwd_bytes() -> Option<Vec<u8>> {
    std::env::current_dir()
        .ok()
        .map(|d| d.into_os_string().into_vec())
}

/// Who this process acts as: real, effective and saved user and group ids,
/// and its supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    uids: [libc::uid_t; 3],
    gids: [libc::gid_t; 3],
    groups: Vec<libc::gid_t>,
}

/// This process's [`Credentials`].
pub(crate) fn credentials() -> Credentials {
    let (mut uids, mut gids) = ([0; 3], [0; 3]);
    let mut groups = vec![0; 64];
    // SAFETY: each call writes only into the buffers passed, which are as
    // long as told; getgroups with a size of 0 writes nothing.
    unsafe {
        libc::getresuid(&mut uids[0], &mut uids[1], &mut uids[2]);
        libc::getresgid(&mut gids[0], &mut gids[1], &mut gids[2]);
        let mut n = libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr());
        if n < 0 {
            n = libc::getgroups(0, groups.as_mut_ptr()).max(0);
            groups.resize(n as usize, 0);
            n = libc::getgroups(n, groups.as_mut_ptr()).max(0);
        }
        groups.truncate(n as usize);
    }
    Credentials { uids, gids, groups }
}

/// Whether `fd` is open in this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFD) takes integers and has no memory effects
    // (EBADF if `fd` is not open).
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// `fd`, moved to a number above stdio if it got one of 0–2 (a program
/// that closed its stdout or stderr frees those numbers). Every fd procpool
/// keeps goes through this: stdout and stderr are handed to each worker as
/// its own, and must never turn out to be a channel, pidfd or socket.
pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// A copy (close-on-exec, above stdio) of this process's stdio fd `fd`
/// (1 or 2) to hand to a worker, or `/dev/null` if it is closed here.
pub(crate) fn stdio_for_worker(fd: RawFd) -> io::Result<OwnedFd> {
    if is_open(fd) {
        // SAFETY: `fd` is open (checked above), and borrowed only for the
        // dup: no other thread of a program closes its own stdio under us
        // and at worst the dup fails with EBADF.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        return Ok(rustix::io::fcntl_dupfd_cloexec(borrowed, 3)?);
    }
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    above_stdio(null.into())
}

/// Starts `exe` as a worker or as the fork server: `channel` at fd `at`, stdin from
/// `/dev/null`, no other descriptor above the channel, the default signal
/// mask, and `env` added to this process's environment.
///
/// `posix_spawn` (glibc's is `clone(CLONE_VM | CLONE_VFORK)` + `exec`), not
/// `fork`: a fork copies the parent's page tables, so starting a worker from
/// a parent holding 512 MiB took 40 ms instead of 1.5 ms. Nothing runs in
/// the child before `exec`, so the worker asks to die with its parent itself
/// ([`die_with_parent`]).
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
    let dev_null = c"/dev/null";
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
            check(libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                source.as_raw_fd(),
                at,
            ))?;
            check(libc::posix_spawn_file_actions_addopen(
                &mut actions,
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
                        &mut actions,
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
                &mut actions,
                at + 1,
            ))?;
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            check(libc::posix_spawnattr_setsigmask(&mut attr, &mask))?;
            // Rust ignores SIGPIPE; a fresh program starts with the default.
            let mut defaults: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut defaults);
            libc::sigaddset(&mut defaults, libc::SIGPIPE);
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &defaults))?;
            // Its own process group (numbered by its pid): a terminal's
            // Ctrl-C (SIGINT to the foreground group) reaches the program,
            // not its workers, and killing the group kills what a task
            // started along with the worker (see `kill`).
            check(libc::posix_spawnattr_setpgroup(&mut attr, 0))?;
            check(libc::posix_spawnattr_setflags(
                &mut attr,
                (libc::POSIX_SPAWN_SETSIGMASK
                    | libc::POSIX_SPAWN_SETSIGDEF
                    | libc::POSIX_SPAWN_SETPGROUP) as libc::c_short,
            ))?;
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
        })();
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        result
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

    /// The process's pidfd (see [`pidfd_kill`], [`pidfd_wait`]).
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

/// In a worker: asks the kernel to SIGKILL this process when the thread that
/// started it ends (with its process, even by SIGKILL), then exits at once if
/// that already happened: the parent `parent` is no longer our parent.
///
/// The kernel clears that request whenever the process's effective or
/// file-system user or group id changes (a task that drops root for a
/// moment): the fork server kills the workers it forked itself (see
/// [`signal_at_parent_death`]), and a spawned worker's waiting thread
/// watches its parent ([`wait_for_parent_end`]).
pub(crate) fn die_with_parent(parent: u32) {
    ask_parent_death_signal(parent, Signal::KILL);
}

/// Asks the kernel for `signal` when the thread that started this process
/// ends; exits at once if `parent` is no longer this process's parent.
fn ask_parent_death_signal(parent: u32, signal: Signal) {
    let _ = rustix::process::set_parent_process_death_signal(Some(signal));
    if parent_pid() != parent {
        exit_immediately(1);
    }
}

/// This process's parent's pid (0 if it has none).
pub(crate) fn parent_pid() -> u32 {
    rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get() as u32)
}

/// How often a spawned worker's first thread looks whether its parent is
/// still its parent (see [`wait_for_parent_end`]).
const PARENT_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// In a spawned worker: blocks the calling thread until the process
/// `parent`, this process's parent, has ended (the kernel then hands this
/// process to another parent), looking every [`PARENT_CHECK`]; returns at
/// once if it had already.
///
/// The kernel's parent-death signal ends the worker at once, first; this
/// is for a worker whose task changed its credentials, which clears that
/// signal. A look, not a pidfd: a pidfd would be a descriptor every task
/// sees, and one a task may close or take the number of; a thread that
/// wakes four times a second to read its parent's pid costs nothing a
/// call can see.
pub(crate) fn wait_for_parent_end(parent: u32) {
    while parent_pid() == parent {
        std::thread::sleep(PARENT_CHECK);
    }
}

/// Whether the calling thread is the process's main thread (the one that
/// lives as long as the process).
pub(crate) fn is_main_thread() -> bool {
    rustix::thread::gettid() == rustix::process::getpid()
}

/// How many `fork`s stand between this process and the one that first
/// asked (0 there, 1 in a copy it forked, ...): a pool made here refuses
/// to run in such a copy (see `crate::pool`). One atomic load per call,
/// where `getpid` would be a system call per call: a `pthread_atfork`
/// handler, registered on the first call, counts in each child. (A child
/// made without the C library's `fork`, by a raw `clone`, is not counted.)
pub(crate) fn fork_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static REGISTER: std::sync::Once = std::sync::Once::new();
    extern "C" fn count_child() {
        GENERATION.fetch_add(1, Relaxed);
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a plain function pointer (no prepare or parent
        // handler) that the C library calls in the child of each `fork`; it
        // does one atomic add, which is async-signal-safe, and never
        // unwinds. A failure (ENOMEM) leaves every generation 0: the check
        // it serves then passes, as it did before it existed.
        let failed = unsafe { libc::pthread_atfork(None, None, Some(count_child)) };
        if failed != 0 {
            log::warn!(
                target: "procpool",
                "pthread_atfork failed ({failed}): a pool used in a copy made by fork will not be refused there"
            );
        }
    });
    GENERATION.load(Relaxed)
}

/// In a worker: lets tasks write to the terminal even under `stty tostop`.
/// A worker leads its own process group (see [`spawn_worker`]), which is
/// never the terminal's foreground group, and such a write would stop it
/// with SIGTTOU; a process that ignores SIGTTOU writes as usual. (Processes
/// a task starts inherit the setting.)
pub(crate) fn allow_terminal_output() {
    // SAFETY: sets the disposition of one signal to "ignore"; no handler runs.
    unsafe {
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
    }
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

/// Sends SIGKILL to the worker behind `pidfd` and, while it is alive, to
/// its process group `pid`, which it leads (see [`spawn_worker`]): the
/// processes its tasks started die with it, unless they left the group. A
/// worker that ended is left alone (its pidfd names no other process). The
/// group's number could be reused only once the worker is reaped and every
/// member of the group has ended, and the kernel hands out pids in turn, so
/// a reuse between the check and the kill would take the whole pid space to
/// go round in that instant.
pub(crate) fn kill_worker(pid: u32, pidfd: BorrowedFd<'_>) {
    if pidfd_alive(pidfd) {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    }
    pidfd_kill(pidfd);
}

/// Sends SIGKILL to worker `pid` and to its process group, which it leads
/// (see [`spawn_worker`]): the processes its tasks started die with it,
/// unless they left the group. The caller guarantees `pid` is its own
/// unreaped child, so neither the pid nor the group's number (the kernel
/// does not reuse a pid while a group bears it) can have been reused.
pub(crate) fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        // The worker itself, in case a task moved it to another group.
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Sends SIGKILL to worker `pid` alone, as the parent-death signal it asked
/// for would (see [`die_with_parent`]): the processes its tasks started are
/// left as that signal leaves them. The caller guarantees `pid` is its own
/// unreaped child.
pub(crate) fn kill_alone(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// The resident memory of process `pid` (this process's unreaped child), in
/// bytes: the second field of `/proc/<pid>/statm`.
pub(crate) fn resident_bytes(pid: u32) -> io::Result<u64> {
    Ok(statm(&pid.to_string())?[1])
}

/// The first six fields of `/proc/<who>/statm` (`who`: a pid, or `self`),
/// in bytes: the whole address space, resident, shared, text, libraries,
/// data and stack.
pub(crate) fn statm(who: &str) -> io::Result<[u64; 6]> {
    let text = std::fs::read_to_string(format!("/proc/{who}/statm"))?;
    let mut fields = text.split_whitespace().map(|field| field.parse::<u64>());
    let mut bytes = [0; 6];
    for slot in &mut bytes {
        let pages = fields.next().and_then(Result::ok).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/<pid>/statm")
        })?;
        *slot = pages.saturating_mul(page_size());
    }
    Ok(bytes)
}

/// The size of a memory page in bytes.
fn page_size() -> u64 {
    rustix::param::page_size() as u64
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

/// Asks the kernel to back the unused capacity of `buf` with huge pages
/// where it can (transparent huge pages in `madvise` mode): a large frame,
/// or a map's output, then costs a few hundred page faults instead of
/// thousands (10⁷ `u64` results: about 55,000 fewer). A hint only.
pub(crate) fn advise_huge_pages<T>(buf: &mut Vec<T>) {
    const HUGE: usize = 2 << 20;
    let spare = buf.spare_capacity_mut();
    let start = spare.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(spare);
    let aligned = (start + HUGE - 1) & !(HUGE - 1);
    if aligned + HUGE > end {
        return;
    }
    let len = (end - aligned) & !(HUGE - 1);
    // SAFETY: the range lies inside `buf`'s own allocation (its spare
    // capacity), which madvise only tags; MADV_HUGEPAGE never changes the
    // contents or validity of the memory.
    unsafe {
        let _ = rustix::mm::madvise(aligned as *mut std::ffi::c_void, len, Advice::LinuxHugepage);
    }
}

//! Everything OS-specific: the worker process, signals, memory hints;
//! starting a worker (`posix_spawn`) in [`spawn`], the program it runs in
//! [`program`], shared memory and futexes in [`shm`], pidfds and epoll in
//! [`pidfd`], the fork server's calls in [`fork`](mod@fork), the thread's
//! stack in [`stack`], a node's stop signals in [`signals`], and in
//! [`channel`] what a process started as a worker or fork server checks
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
mod program;
mod shm;
#[cfg(feature = "redis")]
mod signals;
mod spawn;
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
pub(crate) use program::{this_program, Program};
pub(crate) use shm::{
    allowed_cpus, current_cpu, futex_wait, futex_wake, release_free_memory, runnable_threads,
    tune_worker_allocator, SharedMap,
};
#[cfg(feature = "redis")]
pub(crate) use signals::{catch_stop_signals, die_of, uncatch_stop_signals};
pub(crate) use spawn::{spawn_worker, WorkerProcess};
pub(crate) use stack::stack_left;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::mm::Advice;
use rustix::process::Pid;
use rustix::process::Signal;

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

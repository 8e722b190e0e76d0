//! What the fork server needs from the OS: a socket that keeps message
//! boundaries and carries fds, `fork` itself, its children's exit
//! statuses as a readable fd, and setting a forked child up (its fds and
//! signal mask; its CPU affinity, resource limits and file mode creation
//! mask in [`inherit`]).

mod inherit;

pub(crate) use inherit::{
    affinity, resource_limits, room_under, set_affinity, set_resource_limits, set_umask, umask,
};

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// The most fds one message carries.
pub(crate) const MAX_FDS: usize = 4;
/// Socket buffers asked for on each end: a request carries the whole
/// environment, and one message must fit.
const BUFFER: usize = 4 << 20;

/// A connected pair of `SOCK_SEQPACKET` sockets, both close-on-exec.
pub(crate) fn message_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let (a, b) = (super::above_stdio(a)?, super::above_stdio(b)?);
    for sock in [&a, &b] {
        // A refusal is harmless: a request that does not fit fails to send,
        // and the worker is started the other way.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(sock, BUFFER);
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(sock, BUFFER);
    }
    Ok((a, b))
}

/// Sends `data` as one message, with `fds` attached.
pub(crate) fn send_message(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message into `buf` and the fds attached to it (close-on-
/// exec, into `fds`), without waiting. `Ok(None)`: none is waiting. `Ok(Some(0))`:
/// end of file. A message longer than `buf`, or with more than
/// [`MAX_FDS`] fds, is an error (its fds are closed).
pub(crate) fn recv_message(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Option<usize>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
    let got = loop {
        match rustix::net::recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut control, flags) {
            Ok(got) => break got,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            for fd in received {
                fds.push(super::above_stdio(fd)?);
            }
        }
    }
    if got
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
    {
        fds.clear();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message cut short",
        ));
    }
    Ok(Some(got.bytes))
}

/// Waits until `a` or `b` is readable (or hung up); says which.
pub(crate) fn wait_readable(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<(bool, bool)> {
    let mut fds = [
        PollFd::from_borrowed_fd(a, PollFlags::IN),
        PollFd::from_borrowed_fd(b, PollFlags::IN),
    ];
    loop {
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => return Ok((!fds[0].revents().is_empty(), !fds[1].revents().is_empty())),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// How many threads this process has (from `/proc/self/task`).
pub(crate) fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(usize::MAX, |dir| dir.count())
}

/// The signal the fork server asks for when its parent ends (see
/// [`signal_at_parent_death`]): SIGTERM, blocked in every thread of the
/// server and read from its signalfd ([`server_signals`]), so that it can
/// kill its workers before it exits. (A SIGTERM sent by anyone else ends it
/// the same way.)
const PARENT_ENDED: rustix::process::Signal = rustix::process::Signal::TERM;

/// Blocks SIGCHLD and [`PARENT_ENDED`] in the calling thread (and so in the
/// threads it starts from now on), which [`server_signals`] needs of every
/// thread.
fn block_server_signals() -> io::Result<()> {
    let set = server_signal_set();
    // SAFETY: sigprocmask reads the initialised set and returns an integer.
    unsafe {
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The set of SIGCHLD and [`PARENT_ENDED`].
fn server_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, PARENT_ENDED.as_raw());
        set
    }
}

/// In the fork server: asks the kernel for [`PARENT_ENDED`] when the thread
/// that started it ends (with its process, even by SIGKILL), then exits at
/// once if that already happened: the parent `parent` is no longer our
/// parent. Blocks it (with SIGCHLD) in the calling thread first, as every
/// thread of the server must.
///
/// Not SIGKILL, as a worker asks for ([`die_with_parent`](super::die_with_parent)):
/// the server kills its workers first, since the kernel clears a worker's
/// own parent-death signal when a task changes its credentials.
pub(crate) fn signal_at_parent_death(parent: u32) {
    // Blocked first: a SIGTERM handler the program set up before `init()`,
    // or SIGTERM ignored, would take the signal in between, and the
    // server would serve on until its socket's end of file.
    let _ = block_server_signals();
    super::ask_parent_death_signal(parent, PARENT_ENDED);
}

/// SIGCHLD's action as this process found it, when that action had the
/// kernel reap its ended children by itself (see [`reap_own_children`]).
pub(crate) struct ChildAction(libc::sigaction);

/// Has the kernel leave this process's ended children for it to reap
/// (SIGCHLD's default action) if the action it found made the kernel reap
/// them itself, losing their exit status: SIGCHLD ignored (kept through
/// `exec`, so a program started by a parent that ignores SIGCHLD has it
/// before `main`), or `SA_NOCLDWAIT` (which `exec` clears: set by the
/// program's own code before `init()`, a constructor's). Returns that
/// action, for a forked child to take back ([`restore_child_action`]).
pub(crate) fn reap_own_children() -> io::Result<Option<ChildAction>> {
    // SAFETY: sigaction with a null new action only writes the current one
    // into `found`, zeroed memory of its type; the second call reads an
    // initialised action (the default disposition, no flags, an empty
    // mask) and runs no handler.
    unsafe {
        let mut found: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut found) == -1 {
            return Err(io::Error::last_os_error());
        }
        let kernel_reaps =
            found.sa_sigaction == libc::SIG_IGN || found.sa_flags & libc::SA_NOCLDWAIT != 0;
        if !kernel_reaps {
            return Ok(None);
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        if libc::sigaction(libc::SIGCHLD, &default, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(ChildAction(found)))
    }
}

/// In a child forked after [`reap_own_children`]: SIGCHLD's action back to
/// what the program had, as every other disposition is.
pub(crate) fn restore_child_action(action: &ChildAction) {
    // SAFETY: sigaction reads the action as it was read from the kernel in
    // this very address space (a handler's address, if any, is valid in
    // this copy of it) and returns an integer.
    unsafe {
        libc::sigaction(libc::SIGCHLD, &action.0, std::ptr::null_mut());
    }
}

/// Blocks SIGCHLD and [`PARENT_ENDED`] and returns a signalfd that becomes
/// readable when a child ends or the parent did (the fork server's way of
/// reaping without a handler; every other thread must block both too, or
/// a signal it takes is lost, or ends the server before it kills its
/// workers).
pub(crate) fn server_signals() -> io::Result<OwnedFd> {
    block_server_signals()?;
    let set = server_signal_set();
    // SAFETY: signalfd reads the initialised set and returns an integer.
    unsafe {
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        super::above_stdio(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a signalfd from [`server_signals`]; says whether
/// [`PARENT_ENDED`] was among its signals.
pub(crate) fn drain_signals(fd: BorrowedFd<'_>) -> bool {
    const INFO: usize = std::mem::size_of::<libc::signalfd_siginfo>();
    let mut infos = [0u8; 16 * INFO];
    let mut ended = false;
    while let Ok(n @ 1..) = rustix::io::read(fd, &mut infos) {
        // Each record starts with its signal's number (`ssi_signo`, a u32).
        for info in infos[..n].chunks_exact(INFO) {
            let signal = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
            ended |= i32::try_from(signal) == Ok(PARENT_ENDED.as_raw());
        }
    }
    ended
}

/// Reaps one ended child, if any: its pid and raw wait status.
pub(crate) fn reap_any() -> Option<(u32, i32)> {
    let options = rustix::process::WaitOptions::NOHANG;
    match rustix::process::wait(options) {
        Ok(Some((pid, status))) => Some((pid.as_raw_nonzero().get() as u32, status.as_raw())),
        _ => None,
    }
}

/// Forks this process: `Some(child pid)` in the parent, `None` in the
/// child.
///
/// # Safety
/// No other thread of the process may hold a lock or be in the middle of
/// changing shared state (a single thread, or others that wait in
/// `pthread_join` as the fork server's main thread does), so that the
/// child's copy of every lock and allocator state is consistent; and the
/// child may only go on to code that relies on nothing another thread held.
pub(crate) unsafe fn fork() -> io::Result<Option<u32>> {
    // SAFETY: the caller guarantees no other thread holds anything.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as u32)),
    }
}

/// In a forked child: `channel` at fd `at` and `stdout` / `stderr` at 1 and
/// 2 (stdin stays as it is), every fd above `at` closed, and every signal
/// unblocked.
pub(crate) fn set_up_child(
    channel: BorrowedFd<'_>,
    at: RawFd,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
) -> io::Result<()> {
    // Out of the way first: a source may sit on a target number (copies go
    // above the highest target, as low as they can: a tight limit of open
    // files leaves few numbers).
    let high: Vec<OwnedFd> = [channel, stdout, stderr]
        .iter()
        .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, at.max(2) + 1))
        .collect::<Result<_, _>>()?;
    for (fd, target) in high.iter().zip([at, 1, 2]) {
        // SAFETY: dup2 onto a number this process owns (stdio, or the
        // channel's place); it returns a new fd or -1 and touches no memory.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    drop(high);
    // SAFETY: closes fds above the channel, all of which this process owns
    // and none of which anything after this point uses.
    unsafe { libc::close_range(at as libc::c_uint + 1, libc::c_uint::MAX, 0) };
    // SAFETY: an empty set, initialised before use, unblocks every signal.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    Ok(())
}

/// Writes `text` to `fd` as best it can (a last word before an exit).
pub(crate) fn say(fd: BorrowedFd<'_>, text: &str) {
    let _ = rustix::io::write(fd, text.as_bytes());
}

/// In a forked worker: makes it the leader of a process group of its own
/// (numbered by its pid), as `posix_spawn` does for a spawned one.
pub(crate) fn lead_process_group() {
    let _ = rustix::process::setpgid(None, None);
}

/// Points stdin, stdout and stderr at `/dev/null` (the fork server holds
/// none of its parent's pipes open).
pub(crate) fn stdio_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..=2 {
        // SAFETY: dup2 onto stdio, which this process owns; no memory effects.
        if unsafe { libc::dup2(null.as_fd().as_raw_fd(), target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Points stdout at `/dev/null` until [`restore_stdout`] is given what this
/// returns: where it pointed (a close-on-exec copy).
pub(crate) fn silence_stdout() -> io::Result<OwnedFd> {
    let saved = rustix::io::fcntl_dupfd_cloexec(std::io::stdout(), 3)?;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: dup2 onto stdout, which this process owns; no memory effects.
    if unsafe { libc::dup2(null.as_fd().as_raw_fd(), 1) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(saved)
}

/// Points stdout back where [`silence_stdout`] found it.
pub(crate) fn restore_stdout(saved: OwnedFd) {
    // SAFETY: dup2 onto stdout, which this process owns; no memory effects.
    unsafe {
        libc::dup2(saved.as_fd().as_raw_fd(), 1);
    }
}

/// Where this process's command line lies in its memory (the kernel's
/// `arg_start` and `arg_end`), if it can be found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArgArea {
    start: usize,
    end: usize,
}

/// This process's [`ArgArea`]: found once by the fork server; its forked
/// children have their command line at the same place.
pub(crate) fn arg_area() -> Option<ArgArea> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // arg_start and arg_end are fields 48 and 49; after the command name's
    // ')' the fields start at 3.
    let fields: Vec<usize> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let (&start, &end) = (fields.get(45)?, fields.get(46)?);
    (start != 0 && end > start).then_some(ArgArea { start, end })
}

/// Rewrites this process's command line (what `ps` and `/proc/PID/cmdline`
/// show) in place: the first `from` in it becomes `to`, padded with NULs
/// (`to` no longer than `from`). A forked worker is then seen as a worker,
/// not as the fork server it was forked from. `area` must be this process's
/// own, from [`arg_area`] here or in the process it was forked from.
pub(crate) fn rename_arg(area: ArgArea, from: &[u8], to: &[u8]) {
    if to.len() > from.len() {
        return;
    }
    // SAFETY: [arg_start, arg_end) is this process's own argument area on
    // its stack, mapped and writable, as the kernel reported it (to this
    // process or to the one it was forked from: the same addresses); this
    // process has a single thread (a fork server's child), and nothing
    // holds a reference into it across this call.
    let args =
        unsafe { std::slice::from_raw_parts_mut(area.start as *mut u8, area.end - area.start) };
    if let Some(at) = args.windows(from.len()).position(|w| w == from) {
        args[at..at + to.len()].copy_from_slice(to);
        args[at + to.len()..at + from.len()].fill(0);
    }
}

//! The stop signals of a node from the environment (SIGTERM, SIGINT): a
//! handler that only writes the signal's number to a pipe (`write` is
//! async-signal-safe; nothing else runs in it), read by an ordinary thread
//! ([`StopSignals::wait`]). A handler, not a blocked signal read from a
//! signalfd: blocking needs every thread of the process, the program's own
//! ones started before `init()` included, and a thread that did not block
//! would take the signal's default action, ending the node at once.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The pipe's writing end, for the handler; -1 until [`catch_stop_signals`].
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The signals a node stops on.
const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// The handler: writes the signal's number, one byte, to the pipe, and
/// leaves `errno` as it found it (the thread it interrupted may be about
/// to read it). A full pipe drops the byte (its end is non-blocking): the
/// reader has signals enough to read already.
extern "C" fn on_stop_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let byte = sig as u8;
    // SAFETY: `__errno_location` returns this thread's errno, valid for the
    // thread's life; `write` is async-signal-safe, reads one byte of this
    // frame's `byte`, and the fd stays open for the process's life (it is
    // never closed once stored).
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

/// The reading end of the stop signals' pipe, and which signals are caught.
pub(crate) struct StopSignals {
    read: OwnedFd,
    caught: Vec<libc::c_int>,
}

/// Catches SIGTERM and SIGINT from now on, each only where the process
/// has the signal's default action: one the process was started with
/// ignored (`nohup`, SIGINT in a shell script's background job) or that
/// the program's own code handles stays as it is. Once only.
pub(crate) fn catch_stop_signals() -> io::Result<StopSignals> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array it is given and returns
    // an integer.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made by pipe2 for this process alone, and
    // only these calls take them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (read, write) = (super::above_stdio(read)?, super::above_stdio(write)?);
    // The handler must never block: a full pipe drops the byte.
    rustix::fs::fcntl_setfl(&write, rustix::fs::OFlags::NONBLOCK)?;
    let write = std::os::fd::IntoRawFd::into_raw_fd(write);
    if PIPE_WRITE
        .compare_exchange(-1, write, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: `write` was just taken out of its OwnedFd and stored
        // nowhere: this is its only owner.
        drop(unsafe { OwnedFd::from_raw_fd(write) });
        return Err(io::Error::other("the stop signals are caught already"));
    }
    let mut caught = Vec::new();
    for sig in STOP_SIGNALS {
        // SAFETY: sigaction with a null new action only writes the current
        // one into `found`, zeroed memory of its type.
        let found = unsafe {
            let mut found: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut found) == -1 {
                return Err(io::Error::last_os_error());
            }
            found
        };
        if found.sa_sigaction != libc::SIG_DFL {
            continue;
        }
        // SAFETY: the new action is initialised (an empty mask, SA_RESTART
        // so that no call the signal interrupts fails with EINTR) and its
        // handler, `on_stop_signal`, is async-signal-safe and never unwinds.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            if libc::sigaction(sig, &action, std::ptr::null_mut()) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        caught.push(sig);
    }
    Ok(StopSignals { read, caught })
}

impl StopSignals {
    /// The signals caught (see [`catch_stop_signals`]).
    pub(crate) fn caught(&self) -> &[libc::c_int] {
        &self.caught
    }

    /// Waits for the next stop signal; returns its number.
    pub(crate) fn wait(&self) -> io::Result<libc::c_int> {
        let mut byte = [0u8; 1];
        loop {
            match rustix::io::read(&self.read, &mut byte) {
                Ok(1) => return Ok(libc::c_int::from(byte[0])),
                Ok(_) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Gives `signals` (caught by [`catch_stop_signals`]) their default action
/// back.
pub(crate) fn uncatch_stop_signals(signals: &[libc::c_int]) {
    for &sig in signals {
        default_action(sig);
    }
}

/// Gives `sig` its default action back.
fn default_action(sig: libc::c_int) {
    // SAFETY: the default action, initialised (an empty mask), replaces
    // the handler; sigaction returns an integer.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// Ends the process by `sig`, as its default action would have (so that
/// whoever started it sees it ended by that signal), or, should that not
/// end it, with exit code 128 + `sig`, as shells report it.
pub(crate) fn die_of(sig: libc::c_int) -> ! {
    default_action(sig);
    // SAFETY: the signal, in an initialised set, is unblocked in this
    // thread and sent to it alone (`raise`), which ends the process by its
    // default action; `_exit` takes an integer and never returns.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig)
    }
}

//! The parent's side of the fork server ([`super::server`]): launched by
//! `init()` without waiting for it, asked for one worker at a time by the
//! slot threads, and read by the death watch thread, which hands each
//! answer to whoever waits for it.
//!
//! Any trouble (the server not up within [`WARM_UP`] of its launch, a
//! refusal, its death, a request too large, no answer within
//! [`ANSWER_WAIT`]), or a caller a forked worker could not be like (other
//! credentials, a hard resource limit raised above the server's) makes a
//! start fall back to `posix_spawn`, as before there was a server.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::fork_wire::{Answer, Request, MAX_REQUEST};
use super::server::{ENV_SERVER_FD, SERVER_FD};
use super::ENV_PARENT_PID;
use crate::sys;

/// How long after its launch a start waits for the server to be up.
const WARM_UP: Duration = Duration::from_millis(50);
/// How long a start that comes after [`WARM_UP`] still waits for a hello.
const READ_GRACE: Duration = Duration::from_millis(5);
/// How often a start waiting for the hello reads the socket itself.
const POLL: Duration = Duration::from_millis(1);
/// How long a start waits for the server's answer to a request.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How long a forked worker's relayed exit status is waited for, once the
/// worker has ended.
const STATUS_WAIT: Duration = Duration::from_secs(2);
/// Environment variable: set to `0` to start every worker with
/// `posix_spawn` instead (no fork server).
pub(crate) const ENV_OPT_OUT: &str = "PROCPOOL_FORK_SERVER";

/// The fork server of this process, once launched.
static SERVER: OnceLock<Server> = OnceLock::new();

struct Server {
    sock: OwnedFd,
    /// The server process (this process's child).
    process: Mutex<Option<sys::WorkerProcess>>,
    /// This process's pid when it launched the server: a copy of this
    /// process made by `fork` must not use it.
    launcher: u32,
    launched: Instant,
    /// Who this process acted as at launch, and so who the server's
    /// workers run as: a caller that dropped privileges since (root
    /// turning into a service user, say) could not signal them.
    credentials: sys::Credentials,
    /// This process's resource limits at launch, and so the server's: a
    /// forked worker can lower a hard limit, not raise it. (Read just after
    /// the spawn; no other thread can change them in between: the server
    /// serves only a program that ran no thread before `init()`.)
    limits: Vec<[u64; 2]>,
    next_token: AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// `None` while starting; then whether it serves (and why not).
    up: Option<Result<(), String>>,
    /// Answers to requests, by token.
    forked: HashMap<u64, Result<(u32, OwnedFd), i32>>,
    /// Relayed exit statuses, by token, until taken.
    exited: HashMap<u64, i32>,
    /// Tokens whose status nobody will take.
    abandoned: HashSet<u64>,
}

/// A worker the server forked.
pub(crate) struct Forked {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) token: u64,
}

/// Launches the fork server: `posix_spawn` of this program with the
/// server's end of a socket at fd 3. Does not wait for it. Call once, from
/// the thread that lives as long as the process (the server dies with the
/// thread that started it).
pub(crate) fn launch(exe: &std::path::Path, argv: &[&std::ffi::OsStr]) {
    if std::env::var_os(ENV_OPT_OUT).is_some_and(|v| v == "0") || SERVER.get().is_some() {
        return;
    }
    let Ok((ours, theirs)) = sys::message_pair() else {
        return;
    };
    let env = [
        (ENV_SERVER_FD, SERVER_FD.to_string()),
        (ENV_PARENT_PID, std::process::id().to_string()),
    ];
    match sys::spawn_worker(exe, argv, &env, theirs.as_fd(), SERVER_FD) {
        Ok(process) => {
            let _ = SERVER.set(Server {
                sock: ours,
                process: Mutex::new(Some(process)),
                launcher: std::process::id(),
                launched: Instant::now(),
                credentials: sys::credentials(),
                limits: sys::resource_limits(),
                next_token: AtomicU64::new(1),
                state: Mutex::default(),
                changed: Condvar::new(),
            });
        }
        Err(e) => log::debug!(target: "procpool", "fork server not launched: {e}"),
    }
}

/// This process's fork server: `None` if none was launched, or in a copy
/// of the launcher made by `fork` (the server answers its launcher only:
/// reading its socket here would take the launcher's answers).
fn ours() -> Option<&'static Server> {
    SERVER.get().filter(|s| s.launcher == std::process::id())
}

/// The server's socket, for the death watch to read (see [`on_readable`]).
pub(crate) fn socket() -> Option<BorrowedFd<'static>> {
    ours().map(|server| server.sock.as_fd())
}

impl Server {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the server gone (if it was not already), and ends it.
    fn give_up(&self, why: String) {
        let mut state = self.lock();
        if !matches!(state.up, Some(Err(_))) {
            log::debug!(target: "procpool", "fork server not used from now on: {why}");
            state.up = Some(Err(why));
        }
        drop(state);
        self.changed.notify_all();
        if let Some(mut process) = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            process.kill();
            let _ = process.wait();
        }
    }
}

/// The death watch: reads everything the server has said. Returns whether
/// to keep watching its socket (not once the server is gone).
pub(crate) fn on_readable() -> bool {
    let Some(server) = ours() else {
        return false;
    };
    let mut buf = [0u8; 1024];
    loop {
        let mut fds = Vec::new();
        match sys::recv_message(server.sock.as_fd(), &mut buf, &mut fds) {
            Ok(None) => return true,
            Ok(Some(0)) | Err(_) => server.give_up("it ended".into()),
            Ok(Some(len)) => match Answer::decode(&buf[..len]) {
                Some(answer) => take(server, answer, fds.pop()),
                None => server.give_up("it said something unreadable".into()),
            },
        }
        if matches!(server.lock().up, Some(Err(_))) {
            return false;
        }
    }
}

fn take(server: &Server, answer: Answer, pidfd: Option<OwnedFd>) {
    let mut state = server.lock();
    match answer {
        Answer::Hello { ready: true, .. } => state.up = Some(Ok(())),
        Answer::Hello { why, .. } => {
            drop(state);
            return server.give_up(why);
        }
        Answer::Forked { token, pid } => {
            // A fork answered without its pidfd is of no use: a failure.
            let forked = pidfd.map(|pidfd| (pid, pidfd)).ok_or(libc::EPROTO);
            state.forked.insert(token, forked);
        }
        Answer::Failed { token, errno } => {
            state.forked.insert(token, Err(errno));
        }
        Answer::Exited { token, status } => {
            if !state.abandoned.remove(&token) {
                state.exited.insert(token, status);
            }
        }
    }
    drop(state);
    server.changed.notify_all();
}

/// Asks the server for a worker whose channel is `channel`, serving pool
/// slot `index`. `Ok(None)`: there is no usable server and no request went
/// out; spawn instead. `Err`: a request went out and brought no worker (a
/// refusal, the server's death, no answer): spawn on a fresh channel, as a
/// child the server forked before it failed may have written to this one.
pub(crate) fn fork_worker(channel: BorrowedFd<'_>, index: usize) -> io::Result<Option<Forked>> {
    let Some(server) = ours() else {
        return Ok(None);
    };
    if sys::credentials() != server.credentials {
        return Ok(None);
    }
    super::watch::start()?;
    if !wait_up(server) {
        return Ok(None);
    }
    // A hard limit raised since launch (by a privileged caller) cannot be
    // taken by a forked worker, and a mask that cannot be read cannot be
    // passed on: a spawned worker inherits both as they are.
    let limits = sys::resource_limits();
    if !within(&limits, &server.limits) {
        return Ok(None);
    }
    let Some(umask) = sys::umask() else {
        return Ok(None);
    };
    let token = server.next_token.fetch_add(1, Ordering::Relaxed);
    let request = Request {
        token,
        index: index as u64,
        // A working directory that cannot be named (deleted, say) cannot be
        // taken by a forked worker: a spawned one inherits it as it is.
        cwd: match sys::cwd_bytes() {
            Some(cwd) => cwd,
            None => return Ok(None),
        },
        env: sys::environ_entries(),
        affinity: sys::affinity(),
        umask,
        limits,
    }
    .encode();
    if request.len() > MAX_REQUEST {
        return Ok(None);
    }
    let (stdout, stderr) = match (sys::stdio_for_worker(1), sys::stdio_for_worker(2)) {
        (Ok(out), Ok(err)) => (out, err),
        _ => return Ok(None),
    };
    let fds = [channel, stdout.as_fd(), stderr.as_fd()];
    if let Err(e) = sys::send_message(server.sock.as_fd(), &request, &fds) {
        server.give_up(format!("a request failed: {e}"));
        return Ok(None);
    }
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut state = server.lock();
    loop {
        if let Some(answer) = state.forked.remove(&token) {
            return match answer {
                Ok((pid, pidfd)) => Ok(Some(Forked { pid, pidfd, token })),
                Err(errno) => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        if matches!(state.up, Some(Err(_))) {
            return Err(io::Error::other("the fork server ended before it answered"));
        }
        let now = Instant::now();
        if now >= deadline {
            drop(state);
            let why = format!("no answer within {ANSWER_WAIT:?}");
            server.give_up(why.clone());
            return Err(io::Error::other(why));
        }
        state = server
            .changed
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Whether every hard limit of `limits` is at most `ceiling`'s (limits as
/// `sys::resource_limits` gives them; `u64::MAX`, unlimited, is the
/// largest).
fn within(limits: &[[u64; 2]], ceiling: &[[u64; 2]]) -> bool {
    limits.len() == ceiling.len()
        && limits
            .iter()
            .zip(ceiling)
            .all(|([_, hard], [_, most])| hard <= most)
}

/// Waits (at most until [`WARM_UP`] after its launch, or a moment more if
/// that has passed) for the server to be up; whether it is. It reads the
/// server's socket itself as it waits, so a hello already sent is seen at
/// once, however late the death watch (just started, on a loaded machine)
/// gets to run.
fn wait_up(server: &Server) -> bool {
    let deadline = (server.launched + WARM_UP).max(Instant::now() + READ_GRACE);
    loop {
        on_readable();
        let state = server.lock();
        match &state.up {
            Some(up) => return up.is_ok(),
            None if Instant::now() >= deadline => break,
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = server
                    .changed
                    .wait_timeout(state, left.min(POLL))
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }
    log::debug!(
        target: "procpool",
        "fork server silent {:?} after its launch: this worker is spawned",
        server.launched.elapsed()
    );
    false
}

/// Whether this process's fork server serves: `None` while it has not said
/// (or none was launched), else whether it is up. Reads what it said so
/// far. For tests, through `__private`.
pub(crate) fn serves() -> Option<bool> {
    let server = ours()?;
    on_readable();
    let up = server.lock().up.as_ref().map(|up| up.is_ok());
    up
}

/// The raw wait status the server relayed for worker `token`, which has
/// ended (waiting briefly for the relay); `None` if it never comes.
pub(crate) fn exit_status(token: u64) -> Option<i32> {
    let server = ours()?;
    let deadline = Instant::now() + STATUS_WAIT;
    let mut state = server.lock();
    loop {
        if let Some(status) = state.exited.remove(&token) {
            return Some(status);
        }
        let now = Instant::now();
        if matches!(state.up, Some(Err(_))) || now >= deadline {
            state.abandoned.insert(token);
            return None;
        }
        state = server
            .changed
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Worker `token`'s status will not be asked for (its link is gone).
pub(crate) fn forget(token: u64) {
    if let Some(server) = ours() {
        let mut state = server.lock();
        if state.exited.remove(&token).is_none() {
            state.abandoned.insert(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn a_request_may_lower_hard_limits_never_raise_them() {
        let server = [[1024, 4096], [0, u64::MAX], [8, 8]];
        assert!(within(&server, &server));
        assert!(within(&[[10, 10], [5, 1 << 40], [0, 0]], &server));
        // Soft limits are not bounded by the server's (a child raises its
        // soft limit up to its hard one freely).
        assert!(within(
            &[[4096, 4096], [u64::MAX, u64::MAX], [8, 8]],
            &server
        ));
        assert!(!within(&[[1024, 4097], [0, u64::MAX], [8, 8]], &server));
        assert!(!within(&[[1024, 4096], [0, u64::MAX], [8, 9]], &server));
        assert!(
            !within(&server[..2], &server),
            "a different list of resources"
        );
        // Unlimited is above any finite limit.
        assert!(!within(&[[0, u64::MAX], [0, 0], [0, 0]], &server));
    }

    #[test]
    fn this_process_has_a_readable_mask_and_limits_within_its_own() {
        let limits = crate::sys::resource_limits();
        assert_eq!(limits.len(), 16);
        assert!(limits.iter().all(|[soft, hard]| soft <= hard));
        assert!(within(&limits, &limits));
        assert!(crate::sys::umask().is_some_and(|m| m <= 0o777));
    }
}

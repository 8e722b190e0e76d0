//! The local backend: workers are this program, re-executed in worker mode,
//! each talking to the pool over a channel of shared memory of its own
//! ([`crate::shm`]), a memfd it inherits at a fixed fd. This file holds the
//! whole start-up contract between the parent and a worker (the
//! environment, the channel's fd, the arguments, the first message) from
//! both sides, and the process's mode (initialized, test harness); [`link`]
//! is the parent's end of a running worker ([`child`] its process),
//! [`watch`] the thread that sees workers die. Workers are forked by a fork
//! server ([`forkserver`], [`server`], [`fork_wire`]) when there is one, and
//! spawned (`posix_spawn`) otherwise.

mod child;
mod fork_wire;
mod forkserver;
mod hand;
mod link;
mod server;
mod watch;

pub(crate) use hand::HandChannel;
pub(crate) use server::{take_fork_server, ForkServer};

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::link::{Backend, KillSwitch, Limits, Link};
use crate::shm::{self, Endpoint, Settings};
use crate::sys::{self, SharedMap};
use crate::wire::{self, FrameError, Reply};

use child::Child;
use link::ShmLink;

/// The fd number the worker finds its channel at.
const CHANNEL_FD: RawFd = 3;
/// Set in a worker's environment: the fd of its channel.
const ENV_CHANNEL_FD: &str = "PROCPOOL_WORKER_FD";
/// Set in a worker's environment: the number of the pool slot it serves
/// (`procpool::worker_index()`).
const ENV_WORKER_INDEX: &str = "PROCPOOL_WORKER_INDEX";
/// Set in a worker's environment: the pid of the process that started it,
/// so the worker can tell whether it outlived its parent before it asked to
/// die with it (see [`sys::die_with_parent`]).
const ENV_PARENT_PID: &str = "PROCPOOL_PARENT_PID";
/// The argument a worker is started with. Programs ignore it (their `main`
/// hands over to `procpool::init()` first); it shows workers apart in `ps`,
/// and makes a test harness that never enters worker mode stop at once
/// instead of running the whole test suite again.
const WORKER_ARG: &str = "--procpool-worker";
/// The name of a channel's memfd (in `/proc/PID/maps`).
const CHANNEL_NAME: &std::ffi::CStr = c"procpool-channel";

/// The argument the fork server is started with (see [`WORKER_ARG`]).
const SERVER_ARG: &str = "--procpool-fork-server";

/// A libtest harness given these lists no test and prints nothing, so that
/// the worker can serve once it returns (see `__init_test_harness`).
/// (A filter, so it must not start with a dash.)
const HARNESS_ARGS: [&str; 5] = ["--list", "--format", "terse", "--exact", "procpool-worker"];
/// [`HARNESS_ARGS`] for the fork server.
const HARNESS_SERVER_ARGS: [&str; 5] = [
    "--list",
    "--format",
    "terse",
    "--exact",
    "procpool-fork-server",
];

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static TEST_HARNESS: AtomicBool = AtomicBool::new(false);
/// In a worker: the slot it serves, read from its environment at start.
static WORKER_INDEX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The pool slot this process serves, if it is a worker.
pub(crate) fn worker_index() -> Option<usize> {
    WORKER_INDEX.get().copied()
}

/// In a worker forked by the fork server: shows it as a worker in `ps`
/// (its command line was the server's).
fn name_forked_worker() {
    sys::rename_arg(SERVER_ARG.as_bytes(), WORKER_ARG.as_bytes());
    sys::rename_arg(HARNESS_SERVER_ARGS[4].as_bytes(), HARNESS_ARGS[4].as_bytes());
}

/// In a worker forked by the fork server: the slot it serves.
fn set_worker_index(index: usize) {
    let _ = WORKER_INDEX.set(index);
}

/// In the program the user started: launches the fork server, once, if
/// this is the main thread (the server dies with the thread that started
/// it). Does not wait for it: by the time a pool starts it is usually up.
pub(crate) fn launch_fork_server() {
    if !sys::is_main_thread() {
        return;
    }
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "procpool-fork-server".into());
    let mut argv: Vec<&std::ffi::OsStr> = vec![argv0.as_os_str()];
    if TEST_HARNESS.load(Ordering::SeqCst) {
        argv.extend(HARNESS_SERVER_ARGS.iter().map(std::ffi::OsStr::new));
    } else {
        argv.push(std::ffi::OsStr::new(SERVER_ARG));
    }
    forkserver::launch(&sys::worker_executable(), &argv);
}

/// Records that `init()` ran (`test_harness`: from `enable_test_support!`,
/// before a libtest harness's `main`).
pub(crate) fn mark_initialized(test_harness: bool) {
    INITIALIZED.store(true, Ordering::SeqCst);
    if test_harness {
        TEST_HARNESS.store(true, Ordering::SeqCst);
    }
}

/// Whether `init()` ran in this process.
pub(crate) fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::SeqCst)
}

/// Where a worker's channel is, as its parent left it.
pub(crate) struct WorkerChannel {
    pub(crate) fd: RawFd,
}

/// In a worker: the channel the parent left in the environment, with the
/// variables removed so that programs a task starts do not mistake
/// themselves for workers. `None` in a process that is not a worker.
pub(crate) fn take_worker_channel() -> Option<WorkerChannel> {
    let fd = std::env::var_os(ENV_CHANNEL_FD)?;
    if let Some(parent) = std::env::var(ENV_PARENT_PID)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sys::die_with_parent(parent);
    }
    let index = std::env::var(ENV_WORKER_INDEX)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = WORKER_INDEX.set(index);
    std::env::remove_var(ENV_CHANNEL_FD);
    std::env::remove_var(ENV_PARENT_PID);
    std::env::remove_var(ENV_WORKER_INDEX);
    let fd = fd
        .to_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CHANNEL_FD);
    Some(WorkerChannel { fd })
}

fn worker_args() -> &'static [&'static str] {
    if TEST_HARNESS.load(Ordering::SeqCst) {
        &HARNESS_ARGS
    } else {
        &[WORKER_ARG]
    }
}

/// Starts workers as re-executed copies of this program.
pub(crate) struct ProcessBackend {
    exe: PathBuf,
    argv0: std::ffi::OsString,
}

impl ProcessBackend {
    pub(crate) fn new() -> Self {
        let argv0 = std::env::args_os()
            .next()
            .unwrap_or_else(|| "procpool-worker".into());
        ProcessBackend {
            exe: sys::worker_executable(),
            argv0,
        }
    }
}

impl Backend for ProcessBackend {
    fn start(&self, kill: &Arc<KillSwitch>, limits: Limits, slot: usize) -> Result<Box<dyn Link>, Error> {
        let Limits {
            max_frame,
            start_timeout,
        } = limits;
        let start_error = |message: String| Error::WorkerStart {
            task: String::new(),
            message,
        };
        let settings = Settings {
            ring_bytes: shm::DEFAULT_RING_BYTES,
            max_frame,
        };
        let (memfd, map) = SharedMap::create(CHANNEL_NAME, shm::total_bytes(settings.ring_bytes))
            .map_err(|e| start_error(format!("could not make its channel: {e}")))?;
        let map = Arc::new(map);
        let dead = Arc::new(AtomicBool::new(false));
        let endpoint = Endpoint::parent(map.clone(), settings, dead.clone());
        let env = [
            (ENV_CHANNEL_FD, CHANNEL_FD.to_string()),
            (ENV_PARENT_PID, std::process::id().to_string()),
            (ENV_WORKER_INDEX, slot.to_string()),
        ];
        let child = {
            // Starting under the switch's lock publishes the pidfd before
            // any other thread can look for it.
            let mut target = kill.lock();
            // Terminated: start nothing (checked under the lock `terminate`
            // sets the flag under, so no worker outlives it).
            if kill.is_closed() {
                return Err(start_error("the pool was terminated".into()));
            }
            let child = match forkserver::fork_worker(memfd.as_fd(), slot) {
                Ok(Some(forked)) => Child::from(forked),
                Ok(None) => self.spawn(&env, memfd.as_fd()).map_err(start_error)?,
                Err(e) => {
                    log::debug!(target: "procpool", "the fork server could not fork: {e}");
                    self.spawn(&env, memfd.as_fd()).map_err(start_error)?
                }
            };
            *target = Some(child.pidfd().clone());
            child
        };
        drop(memfd);
        let link = ShmLink::new(endpoint, child, dead, map, kill.clone());
        hello(Box::new(link), start_timeout).map_err(start_error)
    }
}

impl ProcessBackend {
    /// Starts a worker with `posix_spawn`: this program with `env` added and
    /// `channel` at [`CHANNEL_FD`].
    fn spawn(&self, env: &[(&str, String)], channel: BorrowedFd<'_>) -> Result<Child, String> {
        let mut argv: Vec<&std::ffi::OsStr> = vec![self.argv0.as_os_str()];
        argv.extend(worker_args().iter().map(std::ffi::OsStr::new));
        sys::spawn_worker(&self.exe, &argv, env, channel, CHANNEL_FD)
            .map(Child::from)
            .map_err(|e| format!("could not execute {}: {e}", self.exe.display()))
    }
}

/// Waits for a new worker's first message; on anything but its hello, ends
/// it and says why.
fn hello(mut link: Box<ShmLink>, start_timeout: Duration) -> Result<Box<dyn Link>, String> {
    let pid = link.pid();
    let first = link.recv(Some(start_timeout));
    let why = match first.map(wire::parse_reply) {
        Ok(Ok(Reply::Hello { .. })) => return Ok(link),
        Ok(Ok(Reply::Fatal { message })) => message,
        Ok(Ok(reply)) => format!("unexpected first message {reply:?}"),
        Ok(Err(e)) => e,
        Err(FrameError::TimedOut) => format!("it sent nothing within {start_timeout:?}"),
        Err(FrameError::Broken(why)) => why,
        Err(_) => "it ended".to_string(),
    };
    let status = link.finish(Duration::ZERO);
    Err(format!(
        "worker {pid} failed before it was ready ({why}; {status}). \
         Does the program call procpool::init() first in main, \
         or procpool::enable_test_support!() in a test binary?"
    ))
}

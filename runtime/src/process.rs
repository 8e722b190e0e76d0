//! The local backend: workers are this program, re-executed in worker mode,
//! talking over a private socket pair inherited at fd 3 (and moved by the
//! worker to a high number, see `sys::adopt_channel`). This file
//! holds the whole start-up contract between the parent and a worker (the
//! environment, the channel's fd, the arguments, the first message) from
//! both sides, and the process's mode (initialized, test harness).

mod link;

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::link::{Backend, KillSwitch, Limits, Link};
use crate::sys;
use crate::wire::{self, FrameError, Reply};
use link::ProcessLink;

/// The fd number the worker finds its end of the task channel at.
const CHANNEL_FD: RawFd = 3;
/// Set in a worker's environment: the fd of its task channel.
const ENV_CHANNEL_FD: &str = "PROCPOOL_WORKER_FD";
/// Set in a worker's environment: the largest frame it may read or write.
const ENV_MAX_FRAME: &str = "PROCPOOL_MAX_FRAME";
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

/// A libtest harness given these lists no test and prints nothing, so that
/// the worker can serve once it returns (see `__init_test_harness`).
/// (A filter, so it must not start with a dash.)
const HARNESS_ARGS: [&str; 5] = ["--list", "--format", "terse", "--exact", "procpool-worker"];

/// Set to serve as a node of a distributed pool: the Redis URL.
const ENV_NODE: &str = "PROCPOOL_NODE";
/// With `PROCPOOL_NODE`: the queue to serve (default "procpool").
#[cfg(feature = "redis")]
const ENV_QUEUE: &str = "PROCPOOL_QUEUE";
/// With `PROCPOOL_NODE`: the node's worker processes (default: the
/// available parallelism).
#[cfg(feature = "redis")]
const ENV_PROCESSES: &str = "PROCPOOL_PROCESSES";

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static TEST_HARNESS: AtomicBool = AtomicBool::new(false);
/// In a worker: the slot it serves, read from its environment at start.
static WORKER_INDEX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The pool slot this process serves, if it is a worker.
pub(crate) fn worker_index() -> Option<usize> {
    WORKER_INDEX.get().copied()
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

/// Where a worker's task channel is, as its parent left it.
pub(crate) struct WorkerChannel {
    pub(crate) fd: RawFd,
    pub(crate) max_frame: usize,
}

/// Exit code of a process that was started as a worker but is not one.
const EXIT_NOT_A_WORKER: i32 = 70;

/// In a worker: the channel the parent left in the environment, with the
/// variables removed so that programs a task starts do not mistake
/// themselves for workers. `Ok(None)` in a process that is not a worker.
///
/// A process is a worker only if it was started with the worker arguments
/// *and* the variables: the variables alone (inherited by mistake) leave a
/// normal run alone. Started as a worker, the channel must be a connected
/// Unix stream socket made by the parent the environment names (a listening
/// socket a process manager left at fd 3 is not); anything else is an
/// error, reported by [`refuse_worker_start`], never a silent exit.
pub(crate) fn take_worker_channel() -> Result<Option<WorkerChannel>, String> {
    let Some(fd) = std::env::var_os(ENV_CHANNEL_FD) else {
        return Ok(None);
    };
    if !started_as_worker() {
        return Ok(None);
    }
    let fd: RawFd = fd
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{ENV_CHANNEL_FD}={fd:?} is not a descriptor number"))?;
    let parent: u32 = std::env::var(ENV_PARENT_PID)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{ENV_PARENT_PID} does not name the parent process"))?;
    let max_frame = std::env::var(ENV_MAX_FRAME)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(wire::DEFAULT_MAX_FRAME);
    match sys::unix_stream_peer(fd) {
        Ok(peer) if peer == parent => {}
        Ok(peer) => {
            return Err(format!(
                "fd {fd} is a socket of process {peer}, not of process {parent} \
                 named in {ENV_PARENT_PID}"
            ))
        }
        Err(what) => return Err(format!("{what}, not a task channel from process {parent}")),
    }
    sys::die_with_parent(parent);
    let index = std::env::var(ENV_WORKER_INDEX)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = WORKER_INDEX.set(index);
    std::env::remove_var(ENV_CHANNEL_FD);
    std::env::remove_var(ENV_MAX_FRAME);
    std::env::remove_var(ENV_PARENT_PID);
    std::env::remove_var(ENV_WORKER_INDEX);
    Ok(Some(WorkerChannel { fd, max_frame }))
}

/// Whether this process was started with exactly the arguments a pool
/// starts its workers with.
fn started_as_worker() -> bool {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.iter()
        .map(|a| a.as_os_str())
        .eq(worker_args().iter().map(std::ffi::OsStr::new))
}

/// Ends a process started as a worker whose start-up contract does not
/// hold: one line on stderr and a non-zero exit, rather than running the
/// program (or exiting 0) as if nothing were wrong.
pub(crate) fn refuse_worker_start(why: &str) -> ! {
    eprintln!(
        "procpool: started as a worker ({ENV_CHANNEL_FD} and {WORKER_ARG} set), but {why}; \
         workers are started by procpool::Pool, not by hand"
    );
    sys::exit_immediately(EXIT_NOT_A_WORKER)
}

/// What the environment asks of a node (`PROCPOOL_NODE=redis://…`).
#[cfg(feature = "redis")]
pub(crate) struct NodeEnv {
    pub(crate) url: String,
    pub(crate) queue: Option<String>,
    /// `Err`: the text was not a number of processes.
    pub(crate) processes: Option<Result<usize, String>>,
}

/// In a process started as a node: what it is to serve, with the variables
/// removed, so that the node's own workers and the programs its tasks start
/// do not serve as nodes too. `None` in a process that is not a node.
#[cfg(feature = "redis")]
pub(crate) fn take_node_env() -> Option<NodeEnv> {
    let url = std::env::var(ENV_NODE).ok()?;
    let queue = std::env::var(ENV_QUEUE).ok();
    let processes = std::env::var(ENV_PROCESSES).ok().map(|p| {
        p.trim()
            .parse::<usize>()
            .map_err(|_| format!("{ENV_PROCESSES}={p:?} is not a number of processes"))
    });
    std::env::remove_var(ENV_NODE);
    std::env::remove_var(ENV_QUEUE);
    std::env::remove_var(ENV_PROCESSES);
    Some(NodeEnv {
        url,
        queue,
        processes,
    })
}

/// Whether this process was started as a node (`PROCPOOL_NODE` set).
#[cfg(not(feature = "redis"))]
pub(crate) fn is_node_env() -> bool {
    std::env::var_os(ENV_NODE).is_some()
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
            ..
        } = limits;
        let start_error = |message: String| Error::WorkerStart {
            task: String::new(),
            message,
        };
        let (ours, theirs) =
            sys::channel_pair().map_err(|e| start_error(format!("socketpair failed: {e}")))?;
        let mut argv: Vec<&std::ffi::OsStr> = vec![self.argv0.as_os_str()];
        argv.extend(worker_args().iter().map(std::ffi::OsStr::new));
        let env = [
            (ENV_CHANNEL_FD, CHANNEL_FD.to_string()),
            (ENV_MAX_FRAME, max_frame.to_string()),
            (ENV_PARENT_PID, std::process::id().to_string()),
            (ENV_WORKER_INDEX, slot.to_string()),
        ];
        let child = {
            // Spawning under the switch's lock publishes the pid before any
            // other thread can look for it.
            let mut slot = kill.lock();
            // Terminated: spawn nothing (checked under the lock `terminate`
            // sets the flag under, so no worker outlives it).
            if kill.is_closed() {
                return Err(start_error("the pool was terminated".into()));
            }
            let child =
                sys::spawn_worker(&self.exe, &argv, &env, &theirs, CHANNEL_FD).map_err(|e| {
                    start_error(format!("could not execute {}: {e}", self.exe.display()))
                })?;
            *slot = Some(child.id());
            child
        };
        drop(theirs);
        let mut link = Box::new(ProcessLink::new(child, ours, limits, kill.clone()));
        let pid = link.pid();
        let hello = link.recv(Some(start_timeout));
        match hello.map(wire::parse_reply) {
            Ok(Ok(Reply::Hello { .. })) => Ok(link),
            other => {
                let why = match other {
                    Ok(Ok(Reply::Fatal { message })) => message,
                    Ok(Ok(reply)) => format!("unexpected first message {reply:?}"),
                    Ok(Err(e)) => e,
                    Err(FrameError::TimedOut) => {
                        format!("it sent nothing within {start_timeout:?}")
                    }
                    Err(_) => "it closed its channel".to_string(),
                };
                let status = link.finish(Duration::ZERO);
                Err(start_error(format!(
                    "worker {pid} failed before it was ready ({why}; {status}). \
                     Does the program call procpool::init() first in main, \
                     or procpool::enable_test_support!() in a test binary?"
                )))
            }
        }
    }
}

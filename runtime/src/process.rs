//! The local backend: workers are this program, stopped at `init()`, each
//! talking to the pool over a channel of shared memory of its own
//! ([`crate::shm`]), a memfd it inherits at a fixed fd. This file holds the
//! whole start-up contract between the parent and a worker (the
//! environment, the channel's fd, the arguments, who is a worker or the fork
//! server) from both sides, and the process's mode (initialized, test
//! harness); [`backend`] starts workers and waits for their first message,
//! [`link`] is the parent's end of a running worker ([`child`] its
//! process), [`watch`] the thread that sees workers die. Workers are forked
//! by a fork server ([`forkserver`], [`server`], [`fork_wire`]) when there is
//! one, and spawned (`posix_spawn`) otherwise.

mod backend;
mod child;
mod fork_wire;
mod forkserver;
mod hand;
mod link;
mod server;
mod watch;

pub(crate) use backend::ProcessBackend;
pub(crate) use hand::HandChannel;
pub(crate) use server::ForkServer;

use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::shm;
use crate::sys::{self, SharedMap};

/// The fd number the worker finds its channel at.
const CHANNEL_FD: RawFd = 3;
/// Set in a worker's environment: the fd of its channel.
const ENV_CHANNEL_FD: &str = "PROCPOOL_WORKER_FD";
/// Set in a worker's environment: the number of the pool slot it serves
/// (`procpool::worker_index()`).
const ENV_WORKER_INDEX: &str = "PROCPOOL_WORKER_INDEX";
/// Set in a worker's (and the fork server's) environment: the pid of the
/// process that started it, so that it can check its channel came from
/// there, and tell whether it outlived its parent before it asked to die with
/// it (see [`sys::die_with_parent`]).
const ENV_PARENT_PID: &str = "PROCPOOL_PARENT_PID";
/// The argument a worker is started with. Programs ignore it (their `main`
/// hands over to `procpool::init()` first); it shows workers apart in `ps`,
/// and makes a test harness that never enters worker mode stop at once
/// instead of running the whole test suite again.
const WORKER_ARG: &str = "--procpool-worker";
/// The argument the fork server is started with (see [`WORKER_ARG`]).
const SERVER_ARG: &str = "--procpool-fork-server";
/// The name of a channel's memfd (in `/proc/PID/maps`).
const CHANNEL_NAME: &std::ffi::CStr = c"procpool-channel";
/// Exit code of a process that was started as a worker but is not one.
const EXIT_NOT_A_WORKER: i32 = 70;

/// A libtest harness given these runs the entry test `enable_test_support!`
/// adds, alone, on a test thread of its own, where the worker serves (see
/// `worker::serve_at_exit`). The last argument, a filter that matches no
/// test, shows workers apart in `ps`. (Filters must not start with a dash.)
pub const HARNESS_ARGS: [&str; HARNESS_ARG_COUNT] = harness_args("procpool-worker");
/// [`HARNESS_ARGS`] for the fork server.
const HARNESS_SERVER_ARGS: [&str; HARNESS_ARG_COUNT] = harness_args("procpool-fork-server");
/// How many arguments [`harness_args`] makes; the last one is `shown`.
const HARNESS_ARG_COUNT: usize = 7;

/// The harness arguments that run the entry test alone, then `shown`.
///
/// The entry test is matched by its name as a substring, not `--exact`:
/// its full name holds the path of the module the macro was used in
/// (`tests::__procpool_worker_entry` in a `#[cfg(test)] mod tests`), which
/// an exact filter missed, so the worker ran no test and served from its
/// exit hook (where a task's `exit(n)` aborts). Only ignored tests are
/// run, and no other test bears that name.
const fn harness_args(shown: &'static str) -> [&'static str; HARNESS_ARG_COUNT] {
    [
        ENTRY_TEST,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
        "--skip",
        shown,
    ]
}
/// The name of the test `enable_test_support!` adds.
const ENTRY_TEST: &str = "__procpool_worker_entry";

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

/// In a worker: the slot it serves.
fn set_worker_index(index: usize) {
    let _ = WORKER_INDEX.set(index);
}

/// In a worker forked by the fork server: shows it as a worker in `ps`
/// (its command line was the server's).
/// `args`: where its command line lies (the server's, found once).
fn name_forked_worker(args: sys::ArgArea) {
    sys::rename_arg(args, SERVER_ARG.as_bytes(), WORKER_ARG.as_bytes());
    let shown = HARNESS_ARG_COUNT - 1;
    sys::rename_arg(
        args,
        HARNESS_SERVER_ARGS[shown].as_bytes(),
        HARNESS_ARGS[shown].as_bytes(),
    );
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

/// In the program the user started: launches the fork server, once, if
/// this is the main thread (the server dies with the thread that started
/// it). Does not wait for it: by the time a pool starts it is usually up.
pub(crate) fn launch_fork_server() {
    if !sys::is_main_thread() {
        return;
    }
    let program = sys::this_program("procpool-fork-server");
    let mut argv: Vec<&OsStr> = program.lead.iter().map(|a| a.as_os_str()).collect();
    argv.extend(server_args().iter().map(OsStr::new));
    forkserver::launch(&program.exe, &argv);
}

/// Whether this process's fork server serves (`None`: it has not said, or
/// there is none).
pub(crate) fn fork_server_serves() -> Option<bool> {
    forkserver::serves()
}

/// A worker's channel, checked and mapped (its fd closed).
pub(crate) struct WorkerChannel {
    pub(crate) map: SharedMap,
    /// The process whose end the worker watches for (see `worker::run`):
    /// its parent, the pool's process, for a spawned worker; none for a
    /// forked one, which the fork server kills as it exits (see
    /// `server::leave`), as a program's forked workers never watch.
    pub(crate) watch: Option<u32>,
}

/// Maps the channel left at `fd` after checking it is one that `parent`
/// made for a worker: a sealed memfd of the channel's name, whose control
/// page names `parent`.
fn adopt_channel(fd: RawFd, parent: u32) -> Result<WorkerChannel, String> {
    sys::memfd_named(fd, CHANNEL_NAME)?;
    let map = SharedMap::adopt(fd).map_err(|e| format!("fd {fd}: {e}"))?;
    match shm::maker(&map)? {
        maker if maker == parent => Ok(WorkerChannel {
            map,
            watch: Some(parent),
        }),
        maker => Err(format!(
            "fd {fd} is a channel of process {maker}, not of process {parent} named in \
             {ENV_PARENT_PID}"
        )),
    }
}

/// In a worker: the channel the parent left, checked and mapped, with the
/// variables removed so that programs a task starts do not mistake
/// themselves for workers. `Ok(None)` in a process that is not a worker.
///
/// A process is a worker only if it was started with the worker arguments
/// *and* the variables: the variables alone (inherited by mistake) leave a
/// normal run alone. Started as a worker, the channel must be a channel the
/// parent the environment names made (not, say, a listening socket a process
/// manager left at fd 3); anything else is an error, reported by
/// [`refuse_start`], never a silent exit.
pub(crate) fn take_worker_channel() -> Result<Option<WorkerChannel>, String> {
    let Some(fd) = std::env::var_os(ENV_CHANNEL_FD) else {
        return Ok(None);
    };
    if !started_with(worker_args()) {
        return Ok(None);
    }
    let role = format!("started as a worker ({ENV_CHANNEL_FD} and {WORKER_ARG} set)");
    let (fd, parent) = fd_and_parent(&fd).map_err(|why| format!("{role}, but {why}"))?;
    let channel = adopt_channel(fd, parent).map_err(|why| format!("{role}, but {why}"))?;
    sys::die_with_parent(parent);
    let index = std::env::var(ENV_WORKER_INDEX)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    set_worker_index(index);
    for var in [ENV_CHANNEL_FD, ENV_PARENT_PID, ENV_WORKER_INDEX] {
        std::env::remove_var(var);
    }
    Ok(Some(channel))
}

/// In the fork server: its socket, checked (a Unix `SOCK_SEQPACKET` socket
/// whose other end is the parent the environment names), with its variables
/// removed from the environment (the workers it forks must not see them),
/// and SIGCHLD and SIGTERM blocked in the calling thread, which starts
/// every other thread of the server (see `sys::signal_at_parent_death`).
/// `Ok(None)` in any other process; errors as [`take_worker_channel`]'s.
pub(crate) fn take_fork_server() -> Result<Option<ForkServer>, String> {
    let Some(fd) = std::env::var_os(server::ENV_SERVER_FD) else {
        return Ok(None);
    };
    if !started_with(server_args()) {
        return Ok(None);
    }
    let role = format!(
        "started as the fork server ({} and {SERVER_ARG} set)",
        server::ENV_SERVER_FD
    );
    let (fd, parent) = fd_and_parent(&fd).map_err(|why| format!("{role}, but {why}"))?;
    match sys::seqpacket_peer(fd) {
        Ok(peer) if peer == parent => {}
        Ok(peer) => {
            return Err(format!(
                "{role}, but fd {fd} is a socket of process {peer}, not of process {parent} \
                 named in {ENV_PARENT_PID}"
            ))
        }
        Err(what) => return Err(format!("{role}, but {what}")),
    }
    sys::signal_at_parent_death(parent);
    std::env::remove_var(server::ENV_SERVER_FD);
    std::env::remove_var(ENV_PARENT_PID);
    Ok(Some(ForkServer::new(fd, parent)))
}

/// The descriptor number in `fd` and the parent named in the environment.
fn fd_and_parent(fd: &OsStr) -> Result<(RawFd, u32), String> {
    let fd: RawFd = fd
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("the descriptor {fd:?} is not a number"))?;
    let parent: u32 = std::env::var(ENV_PARENT_PID)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{ENV_PARENT_PID} does not name the parent process"))?;
    Ok((fd, parent))
}

/// Whether this process was started with exactly `args` after its name.
fn started_with(args: &[&str]) -> bool {
    std::env::args_os()
        .skip(1)
        .eq(args.iter().map(std::ffi::OsString::from))
}

/// Ends a process started as a worker (or the fork server) whose start-up
/// contract does not hold: one line on stderr and a non-zero exit, rather
/// than running the program (or exiting 0) as if nothing were wrong.
pub(crate) fn refuse_start(why: &str) -> ! {
    eprintln!("procpool: {why}; workers are started by procpool::Pool, not by hand");
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

fn server_args() -> &'static [&'static str] {
    if TEST_HARNESS.load(Ordering::SeqCst) {
        &HARNESS_SERVER_ARGS
    } else {
        &[SERVER_ARG]
    }
}

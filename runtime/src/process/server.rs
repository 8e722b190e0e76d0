//! The fork server's own side: a copy of this program, started once by
//! `init()` and stopped there, that forks each worker on request from a
//! thread with a task's stack (its main thread waits for it; see
//! `worker::serve_forks`). A forked worker skips `exec`, the dynamic
//! loader, the program's start-up and starting a thread, so it is ready in
//! a fraction of the time.
//!
//! - It holds none of the parent's files: its stdio is `/dev/null`, and each
//!   request brings the worker's channel and the parent's current stdout
//!   and stderr.
//! - It forks only while its process has no thread but the one that serves
//!   and, if it serves from a second thread, the main thread that waits for
//!   it (a program's, or in a test binary the harness's, whose test thread
//!   serves; checked before each fork); otherwise it says so and the parent
//!   spawns. It declines (and the parent spawns) a worker whose data or
//!   address-space limit, lowered since `init()`, is below what the server
//!   maps: the worker could allocate nothing.
//! - Dying with the parent: the server asked the kernel for a SIGTERM
//!   (blocked, read from its signalfd) when the thread that started it
//!   ends, and exits when its socket reads end of file; either way it
//!   kills every worker it forked before it exits. Each worker also asks
//!   the kernel to kill it when the server's thread that forked it ends,
//!   which ends only with the server's process; that request alone would
//!   not do, as the kernel clears it when a task changes the worker's
//!   credentials. So a SIGKILL of the parent takes the server and every
//!   worker with it.
//! - It reaps its workers and relays each exit status to the parent.
//! - Each request brings the parent's environment and working directory of
//!   the moment; the server takes them itself before it forks (when they
//!   changed since the last request), so a worker has nothing to redo.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use super::fork_wire::{Answer, Request, MAX_REQUEST};
use super::{WorkerChannel, CHANNEL_FD, EXIT_NOT_A_WORKER};
use crate::sys;

/// Set in the fork server's environment: the fd of its socket.
pub(super) const ENV_SERVER_FD: &str = "PROCPOOL_FORK_SERVER_FD";
/// The fork server's socket when it starts.
pub(super) const SERVER_FD: RawFd = 3;

/// The fork server's end of its socket, before it serves.
pub(crate) struct ForkServer {
    sock: OwnedFd,
    /// The pool's process: the maker of every channel it forks a worker for.
    parent: u32,
}

impl ForkServer {
    /// The server's socket at `fd` (checked by the caller), for `parent`.
    pub(super) fn new(fd: RawFd, parent: u32) -> ForkServer {
        // SAFETY: the parent left the socket at this fd for this process
        // alone (the caller checked it is that socket), and only this call
        // takes it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        ForkServer { sock, parent }
    }

    /// Serves fork requests until the parent goes away, then exits. Returns
    /// only in a forked worker: the channel it is to serve.
    pub(crate) fn serve(self) -> WorkerChannel {
        self.serve_among(1)
    }

    /// [`serve`](Self::serve) in a process of `threads` threads: 2 where
    /// the main thread waits for the one that serves (it holds no lock
    /// while it waits, and blocks SIGCHLD, which the server's signalfd
    /// needs): a program's server serves from a thread with a task's stack
    /// (see `worker::serve_forks`), a test binary's from the harness's test
    /// thread (see `worker::serve_at_exit`).
    pub(crate) fn serve_among(self, threads: usize) -> WorkerChannel {
        let ForkServer { sock, parent } = self;
        let say = |workers: &HashMap<u32, u64>, answer: Answer| {
            // The parent gone: nothing to serve.
            if sys::send_message(sock.as_fd(), &answer.encode(), &[]).is_err() {
                leave(workers);
            }
        };
        // Token of each live worker, by pid.
        let mut workers: HashMap<u32, u64> = HashMap::new();
        let pid = std::process::id();
        // The server relays each worker's exit status, so it reaps them
        // itself, whatever SIGCHLD action the program inherited (a parent
        // that ignores SIGCHLD passes that on through exec); its workers
        // take the program's action back.
        let ready = sys::stdio_to_null().and_then(|()| {
            let inherited = sys::reap_own_children()?;
            Ok((sys::server_signals()?, inherited))
        });
        let (signals, inherited) = match (ready, sys::thread_count()) {
            (Ok(ready), n) if n == threads => ready,
            (ready, threads) => {
                let why = match ready {
                    Ok(_) => format!("the program runs {threads} threads before init()"),
                    Err(e) => format!("cannot set up: {e}"),
                };
                let ready = false;
                say(&workers, Answer::Hello { pid, ready, why });
                leave(&workers);
            }
        };
        say(
            &workers,
            Answer::Hello {
                pid,
                ready: true,
                why: String::new(),
            },
        );
        let mut context = Context::current();
        let mut buf = vec![0u8; MAX_REQUEST];
        loop {
            let Ok((request, signalled)) = sys::wait_readable(sock.as_fd(), signals.as_fd()) else {
                leave(&workers);
            };
            if signalled {
                let parent_ended = sys::drain_signals(signals.as_fd());
                while let Some((child, status)) = sys::reap_any() {
                    if let Some(token) = workers.remove(&child) {
                        say(&workers, Answer::Exited { token, status });
                    }
                }
                if parent_ended {
                    leave(&workers);
                }
            }
            if request {
                let mut fds = Vec::new();
                let len = match sys::recv_message(sock.as_fd(), &mut buf, &mut fds) {
                    Ok(Some(0)) | Err(_) => leave(&workers),
                    Ok(None) => continue,
                    Ok(Some(len)) => len,
                };
                let Some(request) = Request::decode(&buf[..len]) else {
                    continue;
                };
                let forking = Forking {
                    sock: &sock,
                    parent,
                    threads,
                    inherited: inherited.as_ref(),
                };
                let forked = fork_one(&forking, &mut context, request, fds, &mut workers);
                if let Some(channel) = forked {
                    // In the worker: these fds were closed with the rest.
                    std::mem::forget(sock);
                    std::mem::forget(signals);
                    return channel;
                }
            }
        }
    }
}

/// Ends the server: kills every worker it forked that it has not reaped
/// (so none can have been replaced by another process under its pid),
/// then exits. Its parent is gone, or is to start workers the other way.
fn leave(workers: &HashMap<u32, u64>) -> ! {
    for &pid in workers.keys() {
        sys::kill_alone(pid);
    }
    sys::exit_immediately(0)
}

/// What every fork of the server needs.
struct Forking<'a> {
    /// The server's socket.
    sock: &'a OwnedFd,
    /// The pool's process.
    parent: u32,
    /// The threads the server must have (see [`ForkServer::serve_among`]).
    threads: usize,
    /// The SIGCHLD action the program had, if the server changed it (see
    /// [`sys::reap_own_children`]): its workers take it back.
    inherited: Option<&'a sys::ChildAction>,
}

/// Forks one worker for `request`, whose fds are `fds` (channel, stdout,
/// stderr), in a process that must have `forking.threads` threads. In the
/// child, returns its channel; in the server, answers.
fn fork_one(
    forking: &Forking<'_>,
    context: &mut Context,
    request: Request,
    fds: Vec<OwnedFd>,
    workers: &mut HashMap<u32, u64>,
) -> Option<WorkerChannel> {
    let Forking {
        sock,
        parent,
        threads,
        inherited,
    } = *forking;
    let token = request.token;
    let answer = |workers: &HashMap<u32, u64>, answer: Answer, pidfd: Option<&OwnedFd>| {
        let fds: Vec<_> = pidfd.map(AsFd::as_fd).into_iter().collect();
        if sys::send_message(sock.as_fd(), &answer.encode(), &fds).is_err() {
            leave(workers);
        }
    };
    let [channel, stdout, stderr] = &fds[..] else {
        answer(
            workers,
            Answer::Failed {
                token,
                errno: EINVAL,
            },
            None,
        );
        return None;
    };
    if let Some(errno) = refusal(threads, context, &request) {
        answer(workers, Answer::Failed { token, errno }, None);
        return None;
    }
    let (args, limits) = (context.args, &context.limits);
    let server = std::process::id();
    // SAFETY: this process has a single thread (checked just above), or
    // two: the main thread of a program's server (`worker::serve_forks`)
    // or a test binary's harness, which waits for this one and holds no
    // lock meanwhile; the child goes straight on to set itself up and serve
    // its channel.
    match unsafe { sys::fork() } {
        Ok(None) => {
            if let Some(action) = inherited {
                sys::restore_child_action(action);
            }
            let channel = become_worker(
                &request,
                server,
                parent,
                args,
                limits,
                [channel, stdout, stderr],
            );
            // Closed with every fd above the channel's.
            fds.into_iter().for_each(std::mem::forget);
            Some(channel)
        }
        Ok(Some(pid)) => {
            answer_forked(pid, token, workers, answer);
            None
        }
        Err(e) => {
            answer(
                workers,
                Answer::Failed {
                    token,
                    errno: e.raw_os_error().unwrap_or(0),
                },
                None,
            );
            None
        }
    }
}

/// Why this server cannot fork a worker for `request`, as an errno for its
/// caller (which then starts the worker the other way); `None` if it can,
/// with `context` taken from the request.
fn refusal(threads: usize, context: &mut Context, request: &Request) -> Option<i32> {
    if sys::thread_count() != threads {
        return Some(EINVAL);
    }
    if !sys::room_under(&request.limits, &context.limits) {
        // A data or address-space limit lowered since init() below what
        // this process maps (its serving thread's task stack is 256 MiB):
        // the worker could allocate nothing. The caller spawns it instead.
        return Some(ENOMEM);
    }
    // On an error, the caller starts this worker the other way.
    context.take_from(request).err()
}

/// In the server, after forking worker `pid` for request `token`: watches
/// it and answers with its pidfd, or kills it and answers with the error.
fn answer_forked(
    pid: u32,
    token: u64,
    workers: &mut HashMap<u32, u64>,
    answer: impl Fn(&HashMap<u32, u64>, Answer, Option<&OwnedFd>),
) {
    // Our own unreaped child: its pid cannot have been reused.
    match sys::pidfd_open(pid) {
        Ok(pidfd) => {
            workers.insert(pid, token);
            answer(workers, Answer::Forked { token, pid }, Some(&pidfd));
        }
        Err(e) => {
            sys::kill(pid);
            answer(
                workers,
                Answer::Failed {
                    token,
                    errno: e.raw_os_error().unwrap_or(0),
                },
                None,
            );
        }
    }
}

/// The error number of a request the server cannot serve (EINVAL).
const EINVAL: i32 = 22;
/// The error number of a request whose worker would have no room to
/// allocate under its limits (ENOMEM).
const ENOMEM: i32 = 12;

/// What a worker inherits from the server rather than from its request:
/// the environment and working directory, set in the server itself to the
/// request's before it forks (almost always they are those of the last
/// request: nothing to do), where its command line lies, and the server's
/// resource limits (which it never changes: a child sets only those its
/// request has otherwise).
struct Context {
    env: Vec<Vec<u8>>,
    cwd: Vec<u8>,
    args: Option<sys::ArgArea>,
    limits: Vec<[u64; 2]>,
}

impl Context {
    fn current() -> Context {
        Context {
            env: sys::environ_entries(),
            cwd: sys::cwd_bytes().unwrap_or_default(),
            args: sys::arg_area(),
            limits: sys::resource_limits(),
        }
    }

    /// Takes the request's environment and working directory, if they
    /// differ from those it has (no other thread runs: the server checks
    /// before each fork).
    /// Fails (with an error number) if the working directory cannot be
    /// taken: a worker must not run in another directory than its caller.
    fn take_from(&mut self, request: &Request) -> Result<(), i32> {
        if self.env != request.env {
            let keys: Vec<_> = std::env::vars_os().map(|(key, _)| key).collect();
            // A name with `=` in it (an entry `=x=y`, which the C library
            // allows) cannot be unset: `remove_var` would panic and end the
            // server. Such an entry stays, as the caller cannot change it
            // either.
            for key in keys
                .into_iter()
                .filter(|key| !key.as_bytes().contains(&b'='))
            {
                std::env::remove_var(key);
            }
            for entry in &request.env {
                if let Some(at) = entry.iter().position(|&b| b == b'=').filter(|&at| at > 0) {
                    let (key, value) = (&entry[..at], &entry[at + 1..]);
                    std::env::set_var(OsStr::from_bytes(key), OsStr::from_bytes(value));
                }
            }
            self.env.clone_from(&request.env);
        }
        if self.cwd != request.cwd {
            std::env::set_current_dir(OsStr::from_bytes(&request.cwd))
                .map_err(|e| e.raw_os_error().unwrap_or(EINVAL))?;
            self.cwd.clone_from(&request.cwd);
        }
        Ok(())
    }
}

/// In a forked child (environment and working directory already the
/// request's, see [`Context`]): takes the request's fds, resource limits,
/// file mode creation mask and CPU affinity, leads a process group of its
/// own, and dies with the server; returns the channel (made by `parent`,
/// checked). `limits`: the server's (see [`Context`]).
fn become_worker(
    request: &Request,
    server: u32,
    parent: u32,
    args: Option<sys::ArgArea>,
    limits: &[[u64; 2]],
    [channel, stdout, stderr]: [&OwnedFd; 3],
) -> WorkerChannel {
    sys::die_with_parent(server);
    // Its own process group, as a spawned worker's (see `sys::spawn_worker`).
    sys::lead_process_group();
    if let Err(e) = sys::set_up_child(channel.as_fd(), CHANNEL_FD, stdout.as_fd(), stderr.as_fd()) {
        // Said on the caller's stderr, which may not be at 2 yet.
        let why = format!("procpool: a forked worker could not set up its descriptors: {e}\n");
        sys::say(stderr.as_fd(), &why);
        sys::exit_immediately(EXIT_NOT_A_WORKER);
    }
    // (The caller sends only limits the server's children can take: no
    // hard limit above the server's.)
    if let Err(errno) = sys::set_resource_limits(&request.limits, limits) {
        super::refuse_start(&format!(
            "forked as a worker, but could not take its caller's resource limits (errno {errno})"
        ));
    }
    sys::set_umask(request.umask);
    sys::set_affinity(&request.affinity);
    super::set_worker_index(request.index as usize);
    if let Some(args) = args {
        super::name_forked_worker(args);
    }
    match super::adopt_channel(CHANNEL_FD, parent) {
        // It dies with the server, which kills it as it exits (should the
        // parent end): no watch of its own (in a test binary, whose forked
        // workers serve through `worker::run`).
        Ok(channel) => WorkerChannel {
            watch: None,
            ..channel
        },
        Err(why) => super::refuse_start(&format!("forked as a worker, but {why}")),
    }
}

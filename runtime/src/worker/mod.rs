//! Worker mode: the loop a worker (forked by the fork server, or
//! re-executed) runs instead of its `main`.
//!
//! The worker maps its channel (a memfd the parent left at a fixed fd),
//! closes the fd and keeps the mapping out of any process a task forks, then
//! serves one request at a time. Each reply is published before the next
//! call starts: if a task kills its worker, the replies of the calls before
//! it are all in the parent's mapping, and the calls after it have provably
//! not started, so the parent can run them elsewhere. Before it starts a
//! call it says so, and waits while the parent halts it (see
//! `crate::shm::Halter`): a kill for a cancel never lands on a later call.

mod channel;
pub(crate) mod chunk;
mod execute;
pub(crate) mod panic;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::process::{ForkServer, WorkerChannel};
use crate::shm::Begin;
use crate::wire::{self, Frame, FrameError, Reply, Request};
use crate::{buffers, registry, sys};

pub(crate) use channel::{item_count, write_raw};

/// Exit code of a worker that gave up on a corrupt channel.
const EXIT_PROTOCOL: i32 = 70;
/// How long a worker that handled a large frame stays idle before it gives
/// the memory back (its kept buffers, and the heap's free memory).
const IDLE_RELEASE: Duration = Duration::from_millis(500);
/// A frame at least this large makes the worker give memory back once idle.
const LARGE: usize = 1 << 20;

/// How a worker ends its process.
#[derive(Clone, Copy)]
pub(crate) enum Exit {
    /// `std::process::exit`: the worker runs from `main`.
    Process,
    /// `_exit`: the worker runs inside an exit hook, where calling `exit`
    /// again is undefined behaviour.
    Immediate,
}

static EXIT_MODE: std::sync::OnceLock<Exit> = std::sync::OnceLock::new();
static DEFERRED: std::sync::Mutex<Option<(Deferred, Option<OwnedFd>)>> =
    std::sync::Mutex::new(None);

/// What a process of a test binary serves once the harness runs its entry.
pub(crate) enum Deferred {
    /// A worker's channel.
    Channel(WorkerChannel),
    /// The fork server's socket (each worker it forks serves its channel).
    Forks(ForkServer),
}

/// In a process of a test binary started as a worker or fork server (from
/// a constructor, before the harness's `main`): arranges for it to serve
/// from the harness's entry test ([`serve_from_test`]), which its arguments
/// select; or, should the harness not run it (a harness of the user's own),
/// from an exit hook once the harness returned. Until then stdout points at
/// `/dev/null`, so that what the harness prints of its run is not seen.
///
/// The entry test is the way that matters: from an exit hook, a task that
/// calls `std::process::exit` would call it a second time on the thread
/// that returned from `main`, which Rust's standard library turns into an
/// abort (`SIGABRT` instead of the task's exit code); on the harness's test
/// thread, it exits as in any program.
pub(crate) fn serve_at_exit(what: Deferred) {
    // (A fork server's signals were blocked as it was taken, on this
    // thread, before the harness starts its threads, which inherit the
    // mask: see `process::take_fork_server`.)
    let saved = sys::silence_stdout().ok();
    *DEFERRED.lock().unwrap_or_else(|e| e.into_inner()) = Some((what, saved));
    extern "C" fn serve() {
        serve_deferred(1);
    }
    if let Err(e) = sys::at_exit(serve) {
        // Without the hook this worker would run the test harness and exit
        // without a word if the harness does not run the entry, leaving its
        // parent to wait for the start timeout: tell the parent now, and
        // stop. (A fork server just ends: its parent starts workers the
        // other way.)
        let what = take_deferred();
        if let Some(Deferred::Channel(channel)) = what {
            let _ = EXIT_MODE.set(Exit::Immediate);
            let message = format!("atexit failed, so the worker cannot serve: {e}");
            eprintln!("procpool worker: {message}");
            if channel::adopt(channel).is_ok() {
                fatal(message);
            }
        }
        end_process(EXIT_PROTOCOL);
    }
}

/// The harness's entry test (see [`serve_at_exit`]): serves what this
/// process was started for; returns at once in any other process.
pub(crate) fn serve_from_test() {
    // The harness's main thread waits for this one.
    serve_deferred(2);
}

/// Serves what [`serve_at_exit`] kept, if it is still there, in a process
/// of `threads` threads: 2 from the harness's entry test, 1 from the exit
/// hook, where a worker serves on the very thread that returned from
/// `main` (see [`serve_here`]).
fn serve_deferred(threads: usize) {
    let serve = if threads == 1 { serve_here } else { run };
    match take_deferred() {
        Some(Deferred::Channel(channel)) => serve(channel, Exit::Immediate),
        // Returns only in a worker it forked.
        Some(Deferred::Forks(server)) => serve(server.serve_among(threads), Exit::Immediate),
        None => {}
    }
}

/// Takes what [`serve_at_exit`] kept, pointing stdout back where it was.
fn take_deferred() -> Option<Deferred> {
    let (what, saved) = DEFERRED.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    if let Some(saved) = saved {
        sys::restore_stdout(saved);
    }
    Some(what)
}

/// The stack of the thread a worker serves on: tasks get far more room
/// than a main thread's 8 MiB (or a test thread's 2 MiB); only what they
/// use is ever touched. A result nested a million levels deep, which the
/// codec refuses to encode (512 levels at most), is then dropped by its own
/// recursive `Drop` without overflowing it, even in a debug build (a test
/// in `tests/fault_codec.rs`).
const TASK_STACK: usize = 256 << 20;

/// Serves tasks on `channel` until told to stop or the parent is gone, then
/// ends the process; on a thread of its own with a [`TASK_STACK`]-byte
/// stack, or here if it cannot be started. Meanwhile this thread watches
/// the parent of a spawned worker (the channel's `watch`) and ends the
/// process when it ends: the kernel's parent-death signal does that,
/// unless a task changed the process's credentials, which clears it (see
/// `sys::die_with_parent`). A forked worker's parent, the fork server,
/// kills it as it exits instead.
pub(crate) fn run(channel: WorkerChannel, exit: Exit) -> ! {
    let _ = EXIT_MODE.set(exit);
    let watch = channel.watch;
    let channel = on_task_stack(
        channel,
        move |channel| serve_here(channel, exit),
        EXIT_PROTOCOL,
        watch,
    );
    serve_here(channel, exit)
}

/// Serves fork requests on `server` from a thread with a [`TASK_STACK`]-byte
/// stack (the main thread waits for it), so that each worker it forks, whose
/// one thread is a copy of that thread, serves its channel where it is:
/// no thread to start per worker, nor a heap arena for it. Where that thread
/// cannot be started, serves from this one (its workers start theirs).
/// Returns only in a worker, and only there.
pub(crate) fn serve_forks(server: ForkServer, exit: Exit) -> ! {
    let _ = EXIT_MODE.set(exit);
    // (The server's signals were blocked as it was taken, on this thread,
    // so the serving thread inherits the mask: see
    // `process::take_fork_server`. The server ends the process when its
    // parent goes away.)
    // A panic outside a task, in the server or in a worker it forked, ends
    // the process as it ends a spawned worker: exit code 70.
    let server = on_task_stack(
        server,
        move |server| serve_here(server.serve_among(2), exit),
        EXIT_PROTOCOL,
        None,
    );
    run(server.serve(), exit)
}

/// Runs `serve(what)` on a thread named `procpool-worker` with a
/// [`TASK_STACK`]-byte stack, which ends the process with exit code `code`
/// should `serve` return or unwind; gives `what` back if that thread cannot
/// be started. Meanwhile this thread waits for that one, or, given
/// `watch`, for the process `watch` (this one's parent) to end, and then
/// ends the process.
fn on_task_stack<T: Send + 'static>(
    what: T,
    serve: impl FnOnce(T) + Send + 'static,
    code: i32,
    watch: Option<u32>,
) -> T {
    // Taken back from here if the thread does not start.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(what)));
    let theirs = slot.clone();
    let serving = std::thread::Builder::new()
        .name("procpool-worker".into())
        .stack_size(TASK_STACK)
        .spawn(move || {
            let what = theirs.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(what) = what {
                // Here, not in the thread that started this one: that
                // thread may be watching the parent rather than joining.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(what)));
                end_process(code);
            }
        });
    if let Ok(serving) = serving {
        if let Some(parent) = watch {
            sys::wait_for_parent_end(parent);
            // As the parent-death signal would: at once.
            sys::exit_immediately(1);
        }
        let _ = serving.join();
        end_process(code);
    }
    let what = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    match what {
        Some(what) => what,
        None => end_process(code),
    }
}

/// [`run`] on this thread (in an exit hook, where a second thread could
/// not end the process with a task's exit code: see [`serve_at_exit`]).
pub(crate) fn serve_here(channel: WorkerChannel, exit: Exit) -> ! {
    let _ = EXIT_MODE.set(exit);
    let max_frame = match channel::adopt(channel) {
        Ok(max_frame) => max_frame,
        Err(e) => {
            eprintln!("procpool worker: cannot use its task channel: {e}");
            end_process(EXIT_PROTOCOL);
        }
    };
    panic::install_panic_hook();
    SERVING_GENERATION.store(sys::fork_generation(), Relaxed);
    sys::allow_terminal_output();
    sys::tune_worker_allocator();
    if let Err(e) = registry::validate() {
        fatal(e.to_string());
    }
    let hello = wire::encode_reply(&Reply::Hello {
        pid: std::process::id(),
    });
    if channel::send(&[&hello], &[]).is_err() {
        exit_cleanly();
    }
    // Whether the worker holds memory from a large frame to give back.
    let mut holding = false;
    loop {
        let frame = match channel::recv(holding.then_some(IDLE_RELEASE)) {
            Ok(frame) => frame,
            Err(FrameError::TimedOut) => {
                buffers::release();
                sys::release_free_memory();
                holding = false;
                continue;
            }
            Err(FrameError::Closed) => exit_cleanly(),
            Err(e) => fatal(format!("cannot read a request: {e}")),
        };
        holding |= frame.head.capacity() + frame.tail.capacity() >= LARGE;
        holding |= serve(frame, max_frame);
    }
}

/// Runs one request and answers it; returns whether a large result went
/// out (memory to give back once idle).
fn serve(frame: Frame, max_frame: usize) -> bool {
    let Frame { head, tail } = frame;
    let mut large = false;
    match wire::parse_request(&head) {
        Ok(Request::Call {
            id,
            fingerprint,
            name,
            args,
        }) => {
            match channel::begin_call(id) {
                Begin::Run => {}
                Begin::Skip => return skipped(head, tail),
                Begin::LetGo => exit_cleanly(),
            }
            let reply = execute::call(id, fingerprint, name, args, tail);
            flush_stdio();
            let reply = execute::fit_in_frame(reply, max_frame);
            answer_or_exit(id, &reply);
            if let Reply::Value { bytes, .. } = reply {
                large = bytes.len() >= LARGE;
                for buf in bytes.into_bufs() {
                    buffers::recycle(buf);
                }
            }
        }
        Ok(_) if !tail.is_empty() => fatal(format!(
            "a request other than a call came with a {}-byte tail",
            tail.len()
        )),
        Ok(Request::CallBatch {
            id,
            fingerprint,
            name,
            items,
        }) => {
            match channel::begin_call(id) {
                Begin::Run => {}
                Begin::Skip => return skipped(head, tail),
                Begin::LetGo => exit_cleanly(),
            }
            let body = execute::chunk(id, fingerprint, name, items, max_frame);
            flush_stdio();
            large = body.len() >= LARGE;
            if channel::answer(id, &[&body], &[]).is_err() {
                exit_cleanly();
            }
        }
        Ok(Request::Shutdown) => exit_cleanly(),
        Err(message) => fatal(message),
    }
    buffers::recycle(head);
    large
}

/// A call the parent gave back to its queue (see `crate::shm::Halter`):
/// not run, not answered; its buffers are kept for the next.
fn skipped(head: Vec<u8>, tail: Vec<u8>) -> bool {
    buffers::recycle(head);
    buffers::recycle(tail);
    false
}

/// Sends the reply to call `id` (see [`channel::answer`]); ends the worker
/// if it cannot.
fn answer_or_exit(id: u64, reply: &Reply) {
    let sent = match reply {
        // The result bytes go out as they are, after their header.
        Reply::Value { id, bytes } => {
            channel::answer(*id, &[&wire::value_header(*id), bytes.head()], bytes.tail())
        }
        other => channel::answer(id, &[&wire::encode_reply(other)], &[]),
    };
    if sent.is_err() {
        // The parent let the worker go, or the channel is broken.
        exit_cleanly();
    }
}

fn fatal(message: String) -> ! {
    let body = wire::encode_reply(&Reply::Fatal { message });
    let _ = channel::send(&[&body], &[]);
    end_process(EXIT_PROTOCOL);
}

/// The count of `fork`s (see `sys::fork_generation`) as this worker began
/// to serve; `u64::MAX` in a process that does not serve.
static SERVING_GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);

/// Ends at once, quietly (exit code 0, nothing flushed: its buffers are
/// copies of the worker's), a process a task forked whose child returned
/// from the task into the worker's code, as a task that forgot its child's
/// `exit` has it do: it is no worker. Left to go on, it would run the
/// rest of its chunk's items again, then die of SIGSEGV on the channel,
/// which is not mapped in a forked process (or spin on that fault for ever
/// where the task installed a SIGSEGV handler that returns). An atomic
/// load after each call and item.
#[inline]
pub(crate) fn end_if_forked_copy() {
    let serving = SERVING_GENERATION.load(Relaxed);
    if serving != u64::MAX && sys::fork_generation() != serving {
        sys::exit_immediately(0);
    }
}

/// Flushes what a task printed, so that it appears before its reply
/// arrives: after every call, pipelined or not. (Left for the last call of
/// a batch, a line without its newline was lost if a later call of the
/// batch ended the worker: a crash, a `task_timeout`, a cancel, a
/// `terminate`.) Only stdout: Rust's stderr is unbuffered, its flush a lock
/// and nothing else.
fn flush_stdio() {
    let _ = std::io::stdout().flush();
}

fn exit_cleanly() -> ! {
    end_process(0);
}

fn end_process(code: i32) -> ! {
    flush_stdio();
    match EXIT_MODE.get() {
        Some(Exit::Immediate) => sys::exit_immediately(code),
        _ => std::process::exit(code),
    }
}

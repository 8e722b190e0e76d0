//! Worker mode: the loop a re-executed process runs instead of its `main`.

mod execute;
pub(crate) mod panic;

use std::io::{BufReader, Write};

use crate::process::WorkerChannel;
use crate::wire::{self, FrameError, Reply, Request};
use crate::{buffers, registry, sys};

/// Exit code of a worker that gave up on a corrupt channel.
const EXIT_PROTOCOL: i32 = 70;
/// Capacity of the worker's read buffer.
const IO_BUFFER: usize = 64 << 10;

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
static DEFERRED: std::sync::Mutex<Option<WorkerChannel>> = std::sync::Mutex::new(None);

/// Arranges for this process to serve `channel` when it exits (test harness).
pub(crate) fn serve_at_exit(channel: WorkerChannel) {
    *DEFERRED.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel);
    extern "C" fn serve() {
        let channel = DEFERRED.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(channel) = channel {
            run(channel, Exit::Immediate);
        }
    }
    if let Err(e) = sys::at_exit(serve) {
        // Without the hook this worker would run the test harness and exit
        // without a word, leaving its parent to wait for the start timeout:
        // tell the parent now, and stop.
        let channel = DEFERRED.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(WorkerChannel { fd, max_frame }) = channel {
            let _ = EXIT_MODE.set(Exit::Immediate);
            let message = format!("atexit failed, so the worker cannot serve: {e}");
            eprintln!("procpool worker: {message}");
            if let Ok(mut channel) = sys::adopt_channel(fd) {
                fatal(&mut channel, message, max_frame);
            }
        }
        end_process(EXIT_PROTOCOL);
    }
}

/// Serves tasks on `channel` until told to stop or the parent is gone, then
/// ends the process.
pub(crate) fn run(channel: WorkerChannel, exit: Exit) -> ! {
    let _ = EXIT_MODE.set(exit);
    let WorkerChannel { fd, max_frame } = channel;
    let channel = match sys::adopt_channel(fd) {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("procpool worker: cannot use its task channel: {e}");
            end_process(EXIT_PROTOCOL);
        }
    };
    panic::install_panic_hook();
    sys::allow_terminal_output();
    sys::tune_worker_allocator(max_frame.saturating_add(1 << 20));
    // Requests are read through a buffer, so calls the parent sends in one
    // batch cost one read. Each reply is written at once, before the next
    // call starts: if a task kills its worker, the replies of the calls
    // before it have all reached the parent, and the calls after it have
    // provably not started, so the parent can run them elsewhere.
    let mut reader = BufReader::with_capacity(IO_BUFFER, &channel);
    let mut writer = &channel;
    if let Err(e) = registry::validate() {
        send_or_exit(
            &mut writer,
            &Reply::Fatal {
                message: e.to_string(),
            },
            max_frame,
        );
        end_process(EXIT_PROTOCOL);
    }
    send_or_exit(
        &mut writer,
        &Reply::Hello {
            pid: std::process::id(),
        },
        max_frame,
    );
    loop {
        let frame = match wire::read_frame(&mut reader, max_frame) {
            Ok(frame) => frame,
            Err(FrameError::Closed) => exit_cleanly(),
            Err(e) => fatal(
                &mut writer,
                format!("cannot read a request: {e}"),
                max_frame,
            ),
        };
        match wire::parse_request(&frame) {
            Ok(Request::Call {
                id,
                fingerprint,
                name,
                args,
            }) => {
                let reply = execute::call(id, fingerprint, name, args);
                flush_stdio();
                let reply = execute::fit_in_frame(reply, max_frame);
                send_or_exit(&mut writer, &reply, max_frame);
                if let Reply::Value { bytes, .. } = reply {
                    buffers::recycle(bytes.into_buf());
                }
                buffers::recycle(frame);
            }
            Ok(Request::CallBatch {
                id,
                fingerprint,
                name,
                items,
            }) => {
                let body = execute::chunk(id, fingerprint, name, items, max_frame);
                flush_stdio();
                if wire::write_frame(&mut writer, &[&body], max_frame).is_err() {
                    exit_cleanly();
                }
            }
            Ok(Request::Shutdown) => exit_cleanly(),
            Err(message) => fatal(&mut writer, message, max_frame),
        }
    }
}

fn send_or_exit(channel: &mut impl Write, reply: &Reply, max_frame: usize) {
    let sent = match reply {
        // The result bytes go out as they are, after their header.
        Reply::Value { id, bytes } => {
            wire::write_frame(channel, &[&wire::value_header(*id), bytes], max_frame)
        }
        other => wire::write_frame(channel, &[&wire::encode_reply(other)], max_frame),
    };
    if sent.is_err() {
        // The parent is gone or the channel is broken: nobody to serve.
        exit_cleanly();
    }
}

fn fatal(channel: &mut impl Write, message: String, max_frame: usize) -> ! {
    let body = wire::encode_reply(&Reply::Fatal { message });
    let _ = wire::write_frame(channel, &[&body], max_frame);
    end_process(EXIT_PROTOCOL);
}

fn flush_stdio() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
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

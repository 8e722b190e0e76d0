//! Worker mode: the loop a re-executed process runs instead of its `main`.

use std::cell::{Cell, RefCell};
use std::io::{BufReader, Write};
use std::panic::{self, AssertUnwindSafe};

use crate::registry::{self, CallError};
use crate::sys;
use crate::wire::{self, FrameError, PanicReport, RemoteError, Reply, Request};

/// Exit code of a worker that gave up on a corrupt channel.
const EXIT_PROTOCOL: i32 = 70;
/// Capacity of the worker's read buffer.
const IO_BUFFER: usize = 64 << 10;

thread_local! {
    /// Set while a task runs on this thread: its panics are reported to the
    /// parent instead of printed.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
}

/// Where a worker's task channel is.
pub(crate) struct Channel {
    pub(crate) fd: i32,
    pub(crate) max_frame: usize,
}

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
static DEFERRED: std::sync::Mutex<Option<Channel>> = std::sync::Mutex::new(None);

/// Arranges for this process to serve `channel` when it exits (test harness).
pub(crate) fn serve_at_exit(channel: Channel) {
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
        if let Some(Channel { fd, max_frame }) = channel {
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
pub(crate) fn run(channel: Channel, exit: Exit) -> ! {
    let _ = EXIT_MODE.set(exit);
    let Channel { fd, max_frame } = channel;
    let channel = match sys::adopt_channel(fd) {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("procpool worker: cannot use its task channel: {e}");
            end_process(EXIT_PROTOCOL);
        }
    };
    install_panic_hook();
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
                let reply = execute(id, fingerprint, name, args);
                flush_stdio();
                let reply = fit_in_frame(reply, max_frame);
                send_or_exit(&mut writer, &reply, max_frame);
                if let Reply::Value { bytes, .. } = reply {
                    wire::recycle(bytes.into_buf());
                }
                wire::recycle(frame);
            }
            Ok(Request::CallBatch {
                id,
                fingerprint,
                name,
                items,
            }) => {
                let body = crate::batch::execute(id, fingerprint, name, items, max_frame);
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

/// Runs one call and describes how it went.
fn execute(id: u64, fingerprint: u64, name: &str, args: &[u8]) -> Reply {
    let failed = |error| Reply::Failed { id, error };
    let registration = match registry::lookup(name) {
        Ok(r) => r,
        Err(crate::Error::UnknownTask { suggestions, .. }) => {
            return failed(RemoteError::UnknownTask { suggestions })
        }
        Err(crate::Error::DuplicateTask { first, second, .. }) => {
            return failed(RemoteError::DuplicateTask { first, second })
        }
        Err(other) => return failed(RemoteError::DecodeArgs(other.to_string())),
    };
    if !registration.accepts(fingerprint) {
        return failed(RemoteError::SignatureMismatch {
            worker_signature: registration.signature.to_string(),
        });
    }
    IN_TASK.with(|t| t.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| (registration.call)(args)));
    IN_TASK.with(|t| t.set(false));
    match result {
        Ok(Ok(bytes)) => Reply::Value {
            id,
            bytes: bytes.into(),
        },
        Ok(Err(CallError::DecodeArgs(m))) => failed(RemoteError::DecodeArgs(m)),
        Ok(Err(CallError::EncodeResult(m))) => failed(RemoteError::EncodeResult(m)),
        Err(payload) => {
            let report = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| PanicReport {
                    message: payload_message(payload.as_ref()),
                    location: "<unknown>".into(),
                    backtrace: None,
                });
            Reply::Panic { id, report }
        }
    }
}

/// Runs `f` as task code: a panic in it is caught and reported to the
/// parent, not printed. Used per item by batches.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    let was = IN_TASK.with(|t| t.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|t| t.set(was));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| PanicReport {
                message: payload_message(payload.as_ref()),
                location: "<unknown>".into(),
                backtrace: None,
            })
    })
}

/// A result too large for one frame is reported as such, not sent. A panic
/// report or error too large for one is cut down to fit (longest text first),
/// so the caller still gets its typed error and the worker lives on.
pub(crate) fn fit_in_frame(reply: Reply, max_frame: usize) -> Reply {
    let mut reply = match reply {
        Reply::Value { id, bytes } if bytes.len() + 9 > max_frame => Reply::Failed {
            id,
            error: RemoteError::ResultTooLarge {
                len: bytes.len() as u64 + 9,
                max: max_frame as u64,
            },
        },
        // Fits (checked above); not encoded twice, results can be large.
        value @ Reply::Value { .. } => return value,
        other => other,
    };
    // Each round halves the longest text, so this ends; texts of a few bytes
    // fit any frame the builder accepts (at least 1 KiB).
    while wire::encode_reply(&reply).len() > max_frame {
        let mut texts = reply_texts(&mut reply);
        let Some(longest) = texts.iter_mut().max_by_key(|t| t.len()) else {
            break;
        };
        if longest.len() <= 16 {
            break;
        }
        let keep = longest.len() / 2;
        shorten(longest, keep);
    }
    reply
}

/// The free-form texts of a failure reply, which may be cut to fit a frame.
fn reply_texts(reply: &mut Reply) -> Vec<&mut String> {
    match reply {
        Reply::Panic { report, .. } => {
            let mut texts = vec![&mut report.message, &mut report.location];
            texts.extend(report.backtrace.as_mut());
            texts
        }
        Reply::Failed { error, .. } => match error {
            RemoteError::UnknownTask { suggestions } => suggestions.iter_mut().collect(),
            RemoteError::DuplicateTask { first, second } => vec![first, second],
            RemoteError::SignatureMismatch { worker_signature } => vec![worker_signature],
            RemoteError::DecodeArgs(m) | RemoteError::EncodeResult(m) => vec![m],
            RemoteError::ResultTooLarge { .. } => Vec::new(),
        },
        Reply::Fatal { message } => vec![message],
        Reply::Hello { .. } | Reply::Value { .. } | Reply::Results { .. } => Vec::new(),
    }
}

/// Cuts `text` to about `keep` bytes (on a char boundary) and says so.
fn shorten(text: &mut String, keep: usize) {
    let mut end = keep.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… ({cut} bytes cut to fit a frame)"));
}

fn install_panic_hook() {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !IN_TASK.with(|t| t.get()) {
            return default_hook(info);
        }
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "<unknown>".into());
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => Some(task_frames(&backtrace.to_string())),
            _ => None,
        };
        let report = PanicReport {
            message: payload_message(info.payload()),
            location,
            backtrace,
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(report));
    }));
}

/// The frames of a backtrace between the panic machinery and the generated
/// call shim: the task's own code, which is what its caller wants to read.
fn task_frames(full: &str) -> String {
    // A frame is a numbered line followed by its indented "at file:line".
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in full.lines() {
        let numbered = line
            .trim_start()
            .split_once(':')
            .is_some_and(|(n, _)| n.parse::<u32>().is_ok());
        match frames.last_mut() {
            Some(frame) if !numbered => frame.push(line),
            _ => frames.push(vec![line]),
        }
    }
    let is_panic_machinery = |f: &Vec<&str>| {
        let head = f[0];
        head.contains("rust_begin_unwind")
            || head.contains("core::panicking::")
            || head.contains("std::panicking::")
    };
    let end = frames
        .iter()
        .position(|f| f[0].contains("__procpool_call"))
        .map_or(frames.len(), |i| i + 1);
    let start = frames[..end]
        .iter()
        .rposition(is_panic_machinery)
        .map_or(0, |i| i + 1);
    if start >= end {
        return full.to_string();
    }
    frames[start..end]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
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

#[cfg(test)]
mod tests {
    use super::task_frames;

    #[test]
    fn backtraces_keep_only_the_tasks_frames() {
        let full = "   0: hook\n             at worker.rs:1:1\n   1: std::panicking::panic_with_hook\n   \
                    2: core::panicking::panic_fmt\n   3: divide\n             at quickstart.rs:26:9\n   \
                    4: __procpool_call\n   5: std::panicking::catch_unwind\n   6: main";
        assert_eq!(
            task_frames(full),
            "   3: divide\n             at quickstart.rs:26:9\n   4: __procpool_call"
        );
    }
}

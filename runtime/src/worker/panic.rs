//! Panics in task code: one guard that catches them, and the hook that
//! records the report (message, location, backtrace) instead of printing it.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

use crate::wire::PanicReport;

thread_local! {
    /// Set while task code runs on this thread: its panics are reported to
    /// the parent instead of printed.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
}

/// Runs `f` as task code: a panic in it is caught and returned as its
/// report, not printed. Every call and every chunk runs under it. A copy a
/// task forked that returns from it ends there (see
/// [`super::end_if_forked_copy`]).
#[inline]
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    let was = IN_TASK.with(|t| t.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    super::end_if_forked_copy();
    let result = result.map_err(report);
    IN_TASK.with(|t| t.set(was));
    result
}

/// [`guard`] for code that already runs under it (each item of a chunk,
/// within the chunk's guard): the same catch, without setting again what
/// the outer guard set (a cost per item of a map).
#[inline(always)]
pub(crate) fn guard_within<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    debug_assert!(IN_TASK.with(Cell::get), "guard_within outside a guard");
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    super::end_if_forked_copy();
    result.map_err(report)
}

/// The report of a caught panic: the one the hook recorded, if it is this
/// payload's (a panic resumed with `resume_unwind` runs no hook: what the
/// hook recorded last is then an earlier panic, caught by task code), else
/// one made from the payload.
#[cold]
fn report(payload: crate::unwind::Payload) -> PanicReport {
    let report = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .filter(|recorded| recorded.message == payload_message(payload.as_ref()))
        .unwrap_or_else(|| PanicReport {
            message: payload_message(payload.as_ref()).to_string(),
            location: "<unknown>".into(),
            backtrace: None,
        });
    // Still task code: a payload whose `Drop` panics (a value given to
    // `panic_any`) panics here, recorded, not printed, and forgotten:
    // the report is the task's first panic.
    crate::unwind::discard(payload);
    LAST_PANIC.with(|p| p.borrow_mut().take());
    report
}

/// Installs the hook that records a task's panic for [`guard`]; panics
/// outside task code still go to the previous hook.
pub(crate) fn install_panic_hook() {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        // Built with `panic = "abort"`, a task's panic cannot be caught: the
        // worker aborts after this hook (its caller sees `WorkerDied`,
        // SIGABRT), so the message is printed as any panic's, not recorded
        // for a report that is never sent.
        if !IN_TASK.with(|t| t.get()) || cfg!(panic = "abort") {
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
            message: payload_message(info.payload()).to_string(),
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
    // Between the panic functions: the short-backtrace marker.
    let is_panic_internals =
        |f: &Vec<&str>| is_panic_machinery(f) || f[0].contains("std::sys::backtrace::");
    let end = frames
        .iter()
        .position(|f| f[0].contains("__procpool_call"))
        .map_or(frames.len(), |i| i + 1);
    // The frames after the panic's own (the first run of them): not after
    // the last `std::panicking` frame, which may be a `catch_unwind`
    // between the panicking code and the call shim (a map item's).
    let start = frames[..end]
        .iter()
        .position(is_panic_machinery)
        .map_or(0, |first| {
            first
                + frames[first..end]
                    .iter()
                    .take_while(|f| is_panic_internals(f))
                    .count()
        });
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

fn payload_message(payload: &(dyn std::any::Any + Send)) -> &str {
    crate::unwind::message(payload).unwrap_or("Box<dyn Any>")
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

    /// A map item's result whose `Drop` (or `Serialize`) panics: the panic
    /// comes from procpool's per-item code, under a `catch_unwind` of its
    /// own inside the batch entry. The frames kept begin at the user's
    /// `Drop`, not after that `catch_unwind`'s `std::panicking` frames.
    #[test]
    fn a_catch_unwind_inside_the_call_does_not_hide_the_panicking_frame() {
        let full = "   0: std::backtrace::Backtrace::capture\n   \
                    1: procpool::worker::panic::install_panic_hook::{{closure}}\n   \
                    2: std::panicking::panic_with_hook\n   \
                    3: std::panicking::panic_handler::{{closure}}\n   \
                    4: std::sys::backtrace::__rust_end_short_backtrace\n   \
                    5: __rustc::rust_begin_unwind\n   \
                    6: core::panicking::panic_fmt\n   \
                    7: <my::Bomb as core::ops::drop::Drop>::drop\n             at src/my.rs:9:51\n   \
                    8: core::ptr::drop_in_place<my::Bomb>\n   \
                    9: procpool::worker::chunk::run::{{closure}}\n   \
                    10: std::panicking::catch_unwind::do_call\n   \
                    11: std::panicking::catch_unwind\n   \
                    12: std::panic::catch_unwind\n   \
                    13: procpool::worker::chunk::run\n   \
                    14: my::_::__procpool_call_batch\n   \
                    15: main";
        let kept = task_frames(full);
        assert!(
            kept.starts_with(
                "   7: <my::Bomb as core::ops::drop::Drop>::drop\n             at src/my.rs:9:51"
            ),
            "{kept}"
        );
        assert!(kept.ends_with("14: my::_::__procpool_call_batch"), "{kept}");
    }
}

//! Panics caught from user code (a task, a callback, a `Serialize` or
//! `Deserialize` impl): the message their payload carries, and dropping the
//! payload without a second panic escaping.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A caught panic's payload, as `catch_unwind` returns it.
pub(crate) type Payload = Box<dyn Any + Send>;

/// The message a panic's payload carries, if it has one (a `&str` or a
/// `String`: what `panic!` makes).
pub(crate) fn message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Drops a caught panic's payload. One whose own `Drop` panics (a value
/// given to `panic_any`) would otherwise unwind out of the code that caught
/// it, and take down a worker or a pool thread; that second panic is caught
/// here, and its payload leaked rather than dropped (it could do the same).
pub(crate) fn discard(payload: Payload) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("dropped");
        }
    }

    #[test]
    fn messages_are_read_and_a_payload_that_panics_when_dropped_is_contained() {
        let caught = |f: fn()| catch_unwind(f).expect_err("panics");
        let payload = caught(|| panic!("plain"));
        assert_eq!(message(&*payload), Some("plain"));
        discard(payload);
        let payload = caught(|| panic!("{}", 42));
        assert_eq!(message(&*payload), Some("42"));
        discard(payload);
        let payload = caught(|| std::panic::panic_any(PanicsOnDrop));
        assert_eq!(message(&*payload), None);
        discard(payload); // does not panic
    }
}

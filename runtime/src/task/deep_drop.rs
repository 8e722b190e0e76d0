//! Dropping an argument the caller refused to encode because it nests too
//! deeply. The caller owned it (it was moved into `apply_<fn>`, or was a
//! map's item), so procpool drops it, and its own `Drop` may recurse once
//! per level: a linked list of `Box`es a million deep overflows any
//! ordinary thread's stack that way. So a `Send` value is dropped on a
//! thread with a large stack ([`crate::codec::drop_on_large_stack`]); any
//! other is dropped where it is.
//!
//! Which of the two applies is chosen where the type is known, in the
//! `ValueArg` impl `#[pool_task]` generates (autoref specialization):
//!
//! ```ignore
//! use procpool::__private::{DeepDrop, DropHere as _, DropOnLargeStack as _};
//! (&&DeepDrop::new(value)).__procpool_drop_deep();
//! ```
//!
//! For `&&DeepDrop<T>` method lookup finds [`DropOnLargeStack`] (implemented
//! on `&DeepDrop<T>`) first when `T: Send`, and [`DropHere`] (on
//! `DeepDrop<T>`, one auto-deref further) otherwise.

use std::cell::Cell;

/// A value to drop (see the module's documentation).
pub struct DeepDrop<T>(Cell<Option<T>>);

impl<T> DeepDrop<T> {
    /// Holds `value` until [`DropOnLargeStack::__procpool_drop_deep`] or
    /// [`DropHere::__procpool_drop_deep`] drops it.
    pub fn new(value: T) -> Self {
        DeepDrop(Cell::new(Some(value)))
    }
}

/// Drops a `Send` value on a thread with a large stack.
pub trait DropOnLargeStack {
    /// Drops the value.
    fn __procpool_drop_deep(&self);
}

impl<T: Send> DropOnLargeStack for &DeepDrop<T> {
    fn __procpool_drop_deep(&self) {
        if let Some(value) = self.0.take() {
            crate::codec::drop_on_large_stack(value);
        }
    }
}

/// Drops any value where it is (the fallback for a type that is not `Send`).
pub trait DropHere {
    /// Drops the value.
    fn __procpool_drop_deep(&self);
}

impl<T> DropHere for DeepDrop<T> {
    fn __procpool_drop_deep(&self) {
        drop(self.0.take());
    }
}

#[cfg(test)]
mod tests {
    use super::{DeepDrop, DropHere as _, DropOnLargeStack as _};

    /// Records the name of the thread it is dropped on.
    struct Where<'a>(&'a std::sync::Mutex<Option<String>>);

    impl Drop for Where<'_> {
        fn drop(&mut self) {
            let name = std::thread::current().name().map(str::to_string);
            *self.0.lock().unwrap() = Some(name.unwrap_or_default());
        }
    }

    // The borrows are what chooses the impl (see the module's documentation).
    #[allow(clippy::needless_borrow)]
    #[test]
    fn a_send_value_is_dropped_on_a_thread_of_its_own_any_other_here() {
        let seen = std::sync::Mutex::new(None);
        (&&DeepDrop::new(Where(&seen))).__procpool_drop_deep();
        assert_eq!(seen.lock().unwrap().as_deref(), Some("procpool-drop"));
        // Not `Send`: a raw pointer beside it.
        let here = std::thread::current().name().unwrap_or_default().to_string();
        (&&DeepDrop::new((Where(&seen), std::ptr::null::<u8>()))).__procpool_drop_deep();
        assert_eq!(seen.lock().unwrap().as_deref(), Some(here.as_str()));
    }

    /// A linked list whose drop recurses once per node (the field is only
    /// dropped).
    #[allow(dead_code)]
    struct List(Option<Box<List>>);

    #[test]
    fn a_list_a_million_deep_drops_on_a_2_mib_thread() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let mut list = List(None);
                for _ in 0..1_000_000 {
                    list = List(Some(Box::new(list)));
                }
                (&&DeepDrop::new(list)).__procpool_drop_deep();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

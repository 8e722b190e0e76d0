//! Whether a task's returned value is an `Err`, for the pool's initializer:
//! Python's initializer fails by raising, a Rust one by returning `Err`
//! (or panicking), and a dropped `Err` would leave workers not set up
//! serving tasks as if they were.
//!
//! The code `#[pool_task]` generates knows the return type, so it chooses
//! here by autoref specialization:
//!
//! ```ignore
//! use procpool::__private::{ErrWithDebug as _, ErrWithoutDebug as _, NotAResult as _};
//! (&&&Returned(&value)).__procpool_err_text()
//! ```
//!
//! For `&&&Returned<Result<T, E>>` method lookup finds [`ErrWithDebug`]
//! (on `&&Returned<Result<T, E>>`) when `E: Debug`, [`ErrWithoutDebug`]
//! (on `&Returned<Result<T, E>>`, one auto-deref further) for any other
//! `Result`, and [`NotAResult`] (on `Returned<T>`) for every other type. A
//! type alias of `Result` (`std::io::Result<T>`) is a `Result`.

use std::fmt::Debug;

/// A task's returned value, to tell an `Err` (see the module's
/// documentation).
pub struct Returned<'a, T>(pub &'a T);

/// An `Err` whose error has `Debug`: says it, with that text.
pub trait ErrWithDebug {
    /// What the value says of a failure: `None` for a success.
    fn __procpool_err_text(&self) -> Option<String>;
}

impl<T, E: Debug> ErrWithDebug for &&Returned<'_, Result<T, E>> {
    fn __procpool_err_text(&self) -> Option<String> {
        self.0
            .as_ref()
            .err()
            .map(|e| format!("it returned Err({e:?})"))
    }
}

/// An `Err` whose error has no `Debug`: says it without the error.
pub trait ErrWithoutDebug {
    /// What the value says of a failure: `None` for a success.
    fn __procpool_err_text(&self) -> Option<String>;
}

impl<T, E> ErrWithoutDebug for &Returned<'_, Result<T, E>> {
    fn __procpool_err_text(&self) -> Option<String> {
        self.0
            .is_err()
            .then(|| "it returned Err (its error type has no Debug to show it)".to_string())
    }
}

/// Any other value: never a failure.
pub trait NotAResult {
    /// What the value says of a failure: always `None`.
    fn __procpool_err_text(&self) -> Option<String>;
}

impl<T> NotAResult for Returned<'_, T> {
    fn __procpool_err_text(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrWithDebug as _, ErrWithoutDebug as _, NotAResult as _, Returned};

    struct NoDebug;

    // The borrows are what chooses the impl (see the module's documentation).
    #[allow(clippy::needless_borrow)]
    #[test]
    fn an_err_is_told_with_its_debug_text_if_it_has_one() {
        let failed: Result<u8, String> = Err("no disk".into());
        assert_eq!(
            (&&&Returned(&failed)).__procpool_err_text().as_deref(),
            Some("it returned Err(\"no disk\")")
        );
        let fine: Result<u8, String> = Ok(1);
        assert_eq!((&&&Returned(&fine)).__procpool_err_text(), None);
        let opaque: Result<(), NoDebug> = Err(NoDebug);
        assert!((&&&Returned(&opaque))
            .__procpool_err_text()
            .is_some_and(|text| text.contains("returned Err")));
        assert_eq!((&&&Returned(&())).__procpool_err_text(), None);
        assert_eq!((&&&Returned(&Some(3))).__procpool_err_text(), None);
    }
}

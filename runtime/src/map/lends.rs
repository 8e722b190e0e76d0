//! [`Lends`]: what a map item may be for an argument the task takes by
//! reference.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// A map item for a task argument taken as `&T`: anything that lends a `T`.
///
/// `map_<fn>` and the rest of the map family accept, for an argument of
/// type `&T`, items of type `T`, `&T`, `&&T` (the items of
/// `Vec<&T>::iter()`), `&mut T`, `Box<T>`, `Rc<T>`, `Arc<T>` or
/// `Cow<T>`. (For `&str`, `&[U]` and `&Path` arguments the items are
/// anything that is `AsRef<str>`, `AsRef<[U]>` or `AsRef<Path>` instead,
/// which covers `String`, `Vec<U>`, `PathBuf` and references to them at any
/// depth.) The item is only read, to be encoded for the worker. A wrapper
/// of your own can implement it too.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Point { x: i64, y: i64 }
///
/// #[procpool::pool_task]
/// fn norm1(p: &Point) -> i64 { p.x.abs() + p.y.abs() }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = procpool::Pool::new(2)?;
///     let points = vec![Point { x: 1, y: -2 }, Point { x: 3, y: 4 }];
///     assert_eq!(map_norm1(&pool, &points)?, [3, 7]); // items `&Point`
///     let near: Vec<&Point> = points.iter().filter(|p| p.x < 2).collect();
///     assert_eq!(map_norm1(&pool, near.iter())?, [3]); // items `&&Point`
///     assert_eq!(map_norm1(&pool, points)?, [3, 7]); // items `Point`
///     Ok(())
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "a map item for a `&{T}` argument must lend a `{T}`; `{Self}` does not",
    label = "not a `{T}`, `&{T}` or `&&{T}`",
    note = "items may be `{T}`, `&{T}`, `&&{T}`, `&mut {T}`, `Box<{T}>`, `Rc<{T}>`, `Arc<{T}>` or `Cow<{T}>`"
)]
pub trait Lends<T: ?Sized> {
    /// The `T` the item lends.
    fn lent(&self) -> &T;
}

impl<T> Lends<T> for T {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Lends<T> for &T {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Lends<T> for &&T {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Lends<T> for &mut T {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Lends<T> for Box<T> {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Lends<T> for Rc<T> {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Lends<T> for Arc<T> {
    fn lent(&self) -> &T {
        self
    }
}

impl<T: ?Sized + ToOwned> Lends<T> for Cow<'_, T> {
    fn lent(&self) -> &T {
        self
    }
}

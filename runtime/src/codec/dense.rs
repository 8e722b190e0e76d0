//! The dense form of a map chunk's numbers. When a task takes one number
//! (an integer up to 64 bits, a float or a `bool`) and is mapped over items
//! of exactly that type, its chunks carry the items as they are in memory,
//! little-endian, one after the other: no length, no varint, no tag, so the
//! caller writes and the worker reads them with a copy each. When a task
//! returns such a number, its chunks' results come back the same way (see
//! `crate::map::chunk` for where the forms sit in a chunk).
//!
//! A kind byte names the exact type on the wire, so a worker never reads the
//! bytes as another type, and the caller never takes results of another
//! type: each side checks it against its own type.

use std::any::Any;

use super::each_scalar;

/// The exact type of a chunk's dense numbers, and their width in bytes.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub(crate) code: u8,
    pub(crate) width: usize,
}

/// A type written and read in the dense form.
trait Raw: Sized + Copy + 'static {
    const CODE: u8;
    const WIDTH: usize;
    fn put(self, out: &mut Vec<u8>);
    /// The value in the first `WIDTH` bytes of `bytes`, if they hold one.
    fn take(bytes: &[u8]) -> Option<Self>;
    /// Appends the values `raw` holds (a whole number of `WIDTH`-byte
    /// values) to `out`; `false`, with `out` unchanged, if one is invalid.
    fn extend(raw: &[u8], out: &mut Vec<Self>) -> bool;
}

macro_rules! little_endian {
    ($($t:ty, $code:expr;)*) => {$(
        impl Raw for $t {
            const CODE: u8 = $code;
            const WIDTH: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes())
            }
            #[inline(always)]
            fn take(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(bytes.get(..Self::WIDTH)?.try_into().ok()?))
            }
            #[inline]
            fn extend(raw: &[u8], out: &mut Vec<Self>) -> bool {
                // Exact chunks: one reservation, a loop the compiler turns
                // into a copy on a little-endian machine.
                out.extend(raw.chunks_exact(Self::WIDTH).map(|bytes| {
                    let mut le = [0u8; std::mem::size_of::<$t>()];
                    le.copy_from_slice(bytes);
                    <$t>::from_le_bytes(le)
                }));
                true
            }
        }
    )*};
}

little_endian! {
    u8, 1; i8, 2; u16, 3; i16, 4; u32, 5; i32, 6; u64, 7; i64, 8;
    usize, 9; isize, 10; f32, 11; f64, 12;
}

impl Raw for bool {
    const CODE: u8 = 13;
    const WIDTH: usize = 1;
    #[inline(always)]
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self))
    }
    #[inline(always)]
    fn take(bytes: &[u8]) -> Option<Self> {
        match bytes.first()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn extend(raw: &[u8], out: &mut Vec<Self>) -> bool {
        if raw.iter().any(|&b| b > 1) {
            return false;
        }
        out.extend(raw.iter().map(|&b| b == 1));
        true
    }
}

/// The dense kind of `T`, if it has one.
#[inline(always)]
pub(crate) fn kind<T: 'static>() -> Option<Kind> {
    each_scalar!(T, S => {
        Some(Kind { code: S::CODE, width: S::WIDTH })
    });
    None
}

/// The width of the values of kind `code`; `None` for no kind.
pub(crate) fn width(code: u8) -> Option<usize> {
    let kinds = [
        kind::<u8>(),
        kind::<i8>(),
        kind::<u16>(),
        kind::<i16>(),
        kind::<u32>(),
        kind::<i32>(),
        kind::<u64>(),
        kind::<i64>(),
        kind::<usize>(),
        kind::<isize>(),
        kind::<f32>(),
        kind::<f64>(),
        kind::<bool>(),
    ];
    kinds
        .into_iter()
        .flatten()
        .find(|kind| kind.code == code)
        .map(|kind| kind.width)
}

/// Appends `value` in the dense form; `false` (nothing written) if `T` has
/// no dense kind.
#[inline(always)]
pub(crate) fn put<T: 'static>(value: &T, out: &mut Vec<u8>) -> bool {
    let any: &dyn Any = value;
    each_scalar!(T, S => {
        match any.downcast_ref::<S>() {
            Some(&value) => {
                value.put(out);
                true
            }
            None => false,
        }
    });
    false
}

/// The `T` at the start of `bytes` in the dense form; `None` if `T` has no
/// dense kind, `bytes` are too few or do not hold a `T` (a `bool` byte other
/// than 0 or 1).
#[inline(always)]
pub(crate) fn take<T: 'static>(bytes: &[u8]) -> Option<T> {
    each_scalar!(T, S => {
        let mut slot = Some(S::take(bytes)?);
        let any: &mut dyn Any = &mut slot;
        any.downcast_mut::<Option<T>>()?.take()
    });
    None
}

/// Appends the `count` values of kind `code` that `raw` holds to `out`,
/// or says why not (with `out` unchanged): another kind than `T`'s, a
/// length that is not `count` values, an invalid value.
// (`out` is extended, through its concrete type: clippy sees no push.)
#[allow(clippy::ptr_arg)]
pub(crate) fn extend<T: 'static>(
    code: u8,
    raw: &[u8],
    count: usize,
    out: &mut Vec<T>,
) -> Result<(), String> {
    let Some(kind) = kind::<T>().filter(|kind| kind.code == code) else {
        return Err(format!(
            "dense values of kind {code}, not of the type `{}`: the worker sent another type",
            std::any::type_name::<T>()
        ));
    };
    if Some(raw.len()) != count.checked_mul(kind.width) {
        return Err(format!(
            "{} bytes of dense values for {count} values of {} bytes",
            raw.len(),
            kind.width
        ));
    }
    let any: &mut dyn Any = out;
    each_scalar!(T, S => {
        match any.downcast_mut::<Vec<S>>().map(|out| S::extend(raw, out)) {
            Some(true) => Ok(()),
            _ => Err(format!("dense values that are not all `{}`", std::any::type_name::<T>())),
        }
    });
    Err(format!("`{}` has no dense form", std::any::type_name::<T>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: 'static + Copy + PartialEq + std::fmt::Debug>(values: &[T]) {
        let kind = kind::<T>().expect("a dense kind");
        assert_eq!(width(kind.code), Some(kind.width));
        let mut raw = Vec::new();
        for value in values {
            assert!(put(value, &mut raw));
        }
        assert_eq!(raw.len(), values.len() * kind.width);
        for (i, value) in values.iter().enumerate() {
            assert_eq!(take::<T>(&raw[i * kind.width..]), Some(*value));
        }
        let mut out: Vec<T> = Vec::new();
        extend(kind.code, &raw, values.len(), &mut out).unwrap();
        assert_eq!(out, values);
    }

    #[test]
    fn every_kind_round_trips_and_is_little_endian() {
        round_trip(&[0u8, 1, 255]);
        round_trip(&[i8::MIN, -1, 0, i8::MAX]);
        round_trip(&[0u16, 300, u16::MAX]);
        round_trip(&[i16::MIN, 0, i16::MAX]);
        round_trip(&[0u32, 70_000, u32::MAX]);
        round_trip(&[i32::MIN, -5, i32::MAX]);
        round_trip(&[0u64, 251, u64::MAX]);
        round_trip(&[i64::MIN, -1, i64::MAX]);
        round_trip(&[0usize, usize::MAX]);
        round_trip(&[isize::MIN, isize::MAX]);
        round_trip(&[0.5f32, -0.0, f32::INFINITY]);
        round_trip(&[1.5f64, f64::MIN_POSITIVE, f64::NEG_INFINITY]);
        round_trip(&[true, false, true]);
        let mut raw = Vec::new();
        put(&0x0102_0304u32, &mut raw);
        assert_eq!(raw, [4, 3, 2, 1]);
    }

    #[test]
    fn kinds_are_distinct_and_other_types_have_none() {
        let codes: Vec<u8> = (0..=255).filter(|&c| width(c).is_some()).collect();
        assert_eq!(codes.len(), 13);
        assert_eq!(kind::<u64>().map(|k| k.code), Some(7));
        assert_ne!(kind::<u64>(), kind::<usize>());
        assert!(kind::<String>().is_none() && kind::<(u64,)>().is_none() && kind::<u128>().is_none());
        assert!(!put(&"x".to_string(), &mut Vec::new()));
        assert!(take::<char>(&[0; 4]).is_none());
    }

    #[test]
    fn what_is_not_the_type_is_refused_and_out_kept() {
        let mut out = vec![9u64];
        let u64_code = kind::<u64>().unwrap().code;
        // Another kind, a length that is not the count, too few bytes.
        assert!(extend(kind::<u32>().unwrap().code, &[0; 8], 2, &mut out).is_err());
        assert!(extend(u64_code, &[0; 15], 2, &mut out).is_err());
        assert!(extend(u64_code, &[0; 8], usize::MAX, &mut out).is_err());
        assert!(take::<u64>(&[0; 7]).is_none());
        assert_eq!(out, [9]);
        // A bool that is neither.
        let mut bools = vec![true];
        let bool_code = kind::<bool>().unwrap().code;
        assert!(extend(bool_code, &[0, 2], 2, &mut bools).is_err());
        assert!(take::<bool>(&[2]).is_none());
        assert_eq!(bools, [true]);
    }
}

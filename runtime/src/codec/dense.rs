//! The dense form of a map chunk's numbers. When a task takes one number
//! (an integer up to 64 bits, a float or a `bool`) and is mapped over items
//! of exactly that type, its chunks carry the items as they are in memory,
//! little-endian, one after the other: no length, no varint, no tag, so the
//! caller writes and the worker reads them with a copy each. When a task
//! returns such a number, its chunks' results come back the same way (see
//! `crate::chunk` for where the forms sit in a chunk).
//!
//! A kind byte names the exact type on the wire, so a worker never reads the
//! bytes as another type, and the caller never takes results of another
//! type: each side checks it against its own type.

use std::any::Any;

use super::each_scalar;
use super::scalar::{cast, uncast};

/// The exact type of a chunk's dense numbers: its code on the wire, the
/// width of one in bytes, and the most bytes one takes as a value record
/// of the general form (a tag, then its bincode bytes), which a worker
/// falls back to at an item's failure.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub(crate) code: u8,
    pub(crate) width: usize,
    pub(crate) most_record: usize,
}

/// A type written and read in the dense form.
trait Raw: Sized + Copy + 'static {
    const CODE: u8;
    const WIDTH: usize;
    /// The most bytes bincode takes for one (a varint: its marker and the
    /// integer).
    const MOST_BINCODE: usize;
    const KIND: Kind = Kind {
        code: Self::CODE,
        width: Self::WIDTH,
        most_record: 1 + Self::MOST_BINCODE,
    };
    fn put(self, out: &mut Vec<u8>);
    /// The value in the first `WIDTH` bytes of `bytes`, if they hold one.
    fn take(bytes: &[u8]) -> Option<Self>;
    /// Appends the values `raw` holds (a whole number of `WIDTH`-byte
    /// values) to `out`; `false`, with `out` unchanged, if one is invalid.
    fn extend(raw: &[u8], out: &mut Vec<Self>) -> bool;
}

macro_rules! little_endian {
    ($($t:ty, $code:expr, $most:expr;)*) => {$(
        impl Raw for $t {
            const CODE: u8 = $code;
            const WIDTH: usize = std::mem::size_of::<$t>();
            const MOST_BINCODE: usize = $most;
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
    u8, 1, 1; i8, 2, 1; u16, 3, 3; i16, 4, 3; u32, 5, 5; i32, 6, 5; u64, 7, 9; i64, 8, 9;
    f32, 11, 4; f64, 12, 8;
}

/// `usize` and `isize` travel as eight bytes whatever the machine's
/// pointer width (as bincode's varints are the same on every machine): a
/// value the reader's type cannot hold is refused.
macro_rules! pointer_sized {
    ($($t:ty, $wide:ty, $code:expr;)*) => {$(
        impl Raw for $t {
            const CODE: u8 = $code;
            const WIDTH: usize = 8;
            const MOST_BINCODE: usize = 9;
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                // (Lossless: no pointer is wider than 64 bits.)
                out.extend_from_slice(&(self as $wide).to_le_bytes())
            }
            #[inline(always)]
            fn take(bytes: &[u8]) -> Option<Self> {
                <$t>::try_from(<$wide>::take(bytes)?).ok()
            }
            fn extend(raw: &[u8], out: &mut Vec<Self>) -> bool {
                let before = out.len();
                out.reserve(raw.len() / Self::WIDTH);
                for bytes in raw.chunks_exact(Self::WIDTH) {
                    match Self::take(bytes) {
                        Some(value) => out.push(value),
                        None => {
                            out.truncate(before);
                            return false;
                        }
                    }
                }
                true
            }
        }
    )*};
}

pointer_sized! { usize, u64, 9; isize, i64, 10; }

impl Raw for bool {
    const CODE: u8 = 13;
    const WIDTH: usize = 1;
    const MOST_BINCODE: usize = 1;
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

macro_rules! kinds {
    ($($t:ty)*) => { [$(<$t as Raw>::KIND),*] };
}

/// Every kind.
const KINDS: [Kind; 13] = kinds!(u8 i8 u16 i16 u32 i32 u64 i64 usize isize f32 f64 bool);

/// The dense kind of `T`, if it has one.
#[inline(always)]
pub(crate) fn kind<T: 'static>() -> Option<Kind> {
    each_scalar!(T, S => {
        Some(S::KIND)
    });
    None
}

/// The kind whose code is `code`; `None` for none.
pub(crate) fn kind_of(code: u8) -> Option<Kind> {
    KINDS.into_iter().find(|kind| kind.code == code)
}

/// Appends `value` in the dense form; `false` (nothing written) if `T` has
/// no dense kind.
#[inline(always)]
pub(crate) fn put<T: 'static>(value: &T, out: &mut Vec<u8>) -> bool {
    each_scalar!(T, S => {
        cast::<T, S>(value).map(|value| value.put(out)).is_some()
    });
    false
}

/// The `T` at the start of `bytes` in the dense form; `None` if `T` has no
/// dense kind, `bytes` are too few or do not hold a `T` (a `bool` byte other
/// than 0 or 1).
#[inline(always)]
pub(crate) fn take<T: 'static>(bytes: &[u8]) -> Option<T> {
    each_scalar!(T, S => {
        uncast(S::take(bytes)?)
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
    Err(format!(
        "`{}` has no dense form",
        std::any::type_name::<T>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: 'static + Copy + PartialEq + std::fmt::Debug>(values: &[T]) {
        let kind = kind::<T>().expect("a dense kind");
        assert_eq!(kind_of(kind.code), Some(kind));
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
    fn pointer_sized_numbers_travel_as_eight_bytes() {
        let mut raw = Vec::new();
        put(&7usize, &mut raw);
        put(&-2isize, &mut raw);
        assert_eq!(raw[..8], 7u64.to_le_bytes());
        assert_eq!(raw[8..], (-2i64).to_le_bytes());
        assert_eq!(
            kind::<usize>().map(|k| (k.width, k.most_record)),
            Some((8, 10))
        );
        assert_eq!(kind::<u8>().map(|k| k.most_record), Some(2));
    }

    #[test]
    fn kinds_are_distinct_and_other_types_have_none() {
        let codes: Vec<u8> = (0..=255).filter(|&c| kind_of(c).is_some()).collect();
        assert_eq!(codes.len(), 13);
        assert_eq!(kind::<u64>().map(|k| k.code), Some(7));
        assert_ne!(kind::<u64>(), kind::<usize>());
        assert!(
            kind::<String>().is_none() && kind::<(u64,)>().is_none() && kind::<u128>().is_none()
        );
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

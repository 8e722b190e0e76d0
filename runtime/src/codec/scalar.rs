//! Scalars (integers up to 64 bits, floats, `bool`) written and read
//! directly in the bytes bincode gives them under procpool's configuration
//! (the standard one: little-endian, integers as varints), without serde's
//! machinery. A map's items and results are often single numbers; through
//! the generic path a number cost several times the work of the call.
//!
//! The types are told apart by `TypeId` (the comparisons are constants the
//! compiler folds), as blocks of bytes are. Writing gives bincode's bytes
//! exactly; reading takes only what bincode reads to the same value and
//! answers `None` for anything else (bytes cut short, a wider integer than
//! the type, a byte that is no `bool`), so the caller falls back to the
//! generic path, which decides and words the error: the fast path never
//! changes what is accepted or how a refusal reads.

use std::any::Any;

/// A varint's first byte up to this is the value itself.
const SINGLE_BYTE_MAX: u8 = 250;
/// Then a `u16`, a `u32` or a `u64` follows.
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;

/// A type written and read here.
trait Scalar: Sized + Copy + 'static {
    fn put(self, out: &mut Vec<u8>);
    /// The value at the start of `bytes` and the bytes it took, or `None`.
    fn take(bytes: &[u8]) -> Option<(Self, usize)>;
}

#[inline(always)]
fn put_varint(value: u64, out: &mut Vec<u8>) {
    if value <= u64::from(SINGLE_BYTE_MAX) {
        out.push(value as u8);
    } else {
        put_wide(value, out);
    }
}

/// A varint of more than one byte: its marker and value written as one
/// array (one capacity check, one store of the length).
#[inline(always)]
fn put_wide(value: u64, out: &mut Vec<u8>) {
    if let Ok(value) = u16::try_from(value) {
        let [a, b] = value.to_le_bytes();
        out.extend_from_slice(&[U16_BYTE, a, b]);
    } else if let Ok(value) = u32::try_from(value) {
        let [a, b, c, d] = value.to_le_bytes();
        out.extend_from_slice(&[U32_BYTE, a, b, c, d]);
    } else {
        let [a, b, c, d, e, f, g, h] = value.to_le_bytes();
        out.extend_from_slice(&[U64_BYTE, a, b, c, d, e, f, g, h]);
    }
}

/// A varint of at most `widest` bytes after its marker (2, 4 or 8: a
/// narrower type refuses a wider form, as bincode does; a form wider than
/// the value needs is accepted, as bincode accepts it).
#[inline(always)]
fn take_varint(bytes: &[u8], widest: usize) -> Option<(u64, usize)> {
    let (&first, rest) = bytes.split_first()?;
    // Each width read as its own array (one copy into a buffer of 8 stalled
    // the read that followed it).
    match first {
        0..=SINGLE_BYTE_MAX => Some((u64::from(first), 1)),
        U16_BYTE if widest >= 2 => Some((u16::from_le_bytes(take_array(rest)?).into(), 3)),
        U32_BYTE if widest >= 4 => Some((u32::from_le_bytes(take_array(rest)?).into(), 5)),
        U64_BYTE if widest >= 8 => Some((u64::from_le_bytes(take_array(rest)?), 9)),
        _ => None,
    }
}

#[inline(always)]
fn take_array<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.get(..N)?.try_into().ok()
}

macro_rules! unsigned {
    ($($t:ty, $width:expr;)*) => {$(
        impl Scalar for $t {
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                put_varint(self as u64, out)
            }
            #[inline(always)]
            fn take(bytes: &[u8]) -> Option<(Self, usize)> {
                let (value, used) = take_varint(bytes, $width)?;
                Some((<$t>::try_from(value).ok()?, used))
            }
        }
    )*};
}

unsigned! { u16, 2; u32, 4; u64, 8; usize, 8; }

macro_rules! signed {
    ($($t:ty, $u:ty, $width:expr;)*) => {$(
        impl Scalar for $t {
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                // Zigzag: 0, -1, 1, -2, ... as 0, 1, 2, 3, ...
                let zigzag = if self < 0 { !(self as $u) * 2 + 1 } else { (self as $u) * 2 };
                put_varint(zigzag as u64, out)
            }
            #[inline(always)]
            fn take(bytes: &[u8]) -> Option<(Self, usize)> {
                let (value, used) = take_varint(bytes, $width)?;
                let n = <$u>::try_from(value).ok()?;
                let value = if n % 2 == 0 { (n / 2) as $t } else { !(n / 2) as $t };
                Some((value, used))
            }
        }
    )*};
}

signed! { i16, u16, 2; i32, u32, 4; i64, u64, 8; isize, usize, 8; }

macro_rules! fixed {
    ($($t:ty;)*) => {$(
        impl Scalar for $t {
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes())
            }
            #[inline(always)]
            fn take(bytes: &[u8]) -> Option<(Self, usize)> {
                let le = take_array(bytes)?;
                Some((<$t>::from_le_bytes(le), le.len()))
            }
        }
    )*};
}

fixed! { u8; i8; f32; f64; }

impl Scalar for bool {
    #[inline(always)]
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self))
    }
    #[inline(always)]
    fn take(bytes: &[u8]) -> Option<(Self, usize)> {
        match bytes.first()? {
            0 => Some((false, 1)),
            1 => Some((true, 1)),
            _ => None,
        }
    }
}

/// Runs `$body` with `$s` the scalar type `$t` is, if it is one (and
/// returns its value from the enclosing function).
macro_rules! each_scalar {
    ($t:ty, $s:ident => $body:block) => {{
        each_scalar!(@ $t, $s, $body, u8 i8 u16 i16 u32 i32 u64 i64 usize isize f32 f64 bool)
    }};
    (@ $t:ty, $s:ident, $body:block, $($scalar:ty)*) => {{
        $(
            if ::std::any::TypeId::of::<$t>() == ::std::any::TypeId::of::<$scalar>() {
                #[allow(dead_code)]
                type $s = $scalar;
                return $body;
            }
        )*
    }};
}
pub(crate) use each_scalar;

/// Whether values of `T` are written and read here.
#[inline(always)]
pub(crate) fn is_scalar<T: 'static>() -> bool {
    each_scalar!(T, _S => { true });
    false
}

/// `value` as the type `S`, if `T` is `S` (for [`each_scalar`]'s bodies).
#[inline(always)]
pub(crate) fn cast<T: 'static, S: Copy + 'static>(value: &T) -> Option<S> {
    (value as &dyn Any).downcast_ref::<S>().copied()
}

/// `value` as the type `T`, if `S` is `T` (for [`each_scalar`]'s bodies).
#[inline(always)]
pub(crate) fn uncast<S: 'static, T: 'static>(value: S) -> Option<T> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()?
        .take()
}

/// Appends `value`'s bincode bytes and answers `true` if `T` is a scalar;
/// else answers `false` and leaves `out` alone.
#[inline(always)]
pub(crate) fn encode<T: 'static>(value: &T, out: &mut Vec<u8>) -> bool {
    each_scalar!(T, S => {
        cast::<T, S>(value).map(|value| value.put(out)).is_some()
    });
    false
}

/// The `T` at the start of `bytes` and the bytes it took, if `T` is a
/// scalar and bincode would read those bytes as exactly that; `None` for
/// anything else (the generic path then decides).
#[inline(always)]
pub(crate) fn decode<T: 'static>(bytes: &[u8]) -> Option<(T, usize)> {
    each_scalar!(T, S => {
        let (value, used) = S::take(bytes)?;
        uncast(value).map(|value| (value, used))
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bincode_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    fn bincode_read<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).ok()
    }

    /// Writes as bincode does; reads back; and reads any bytes as bincode
    /// does or not at all.
    fn agrees<T>(value: T, noise: &[u8])
    where
        T: Scalar + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let mut ours = Vec::new();
        assert!(encode(&value, &mut ours));
        assert_eq!(ours, bincode_bytes(&value), "{value:?}");
        ours.extend_from_slice(noise);
        let back = decode::<T>(&ours).unwrap();
        assert_eq!(back.0.put_bytes(), value.put_bytes(), "{value:?}");
        assert_eq!(back.1, ours.len() - noise.len());
        for bytes in [noise, &ours[..ours.len() - noise.len() - 1]] {
            if let Some((read, used)) = decode::<T>(bytes) {
                let (theirs, their_used) = bincode_read::<T>(bytes).expect("bincode reads it too");
                assert_eq!((read.put_bytes(), used), (theirs.put_bytes(), their_used));
            }
        }
    }

    trait Bytes {
        fn put_bytes(self) -> Vec<u8>;
    }
    impl<T: Scalar> Bytes for T {
        fn put_bytes(self) -> Vec<u8> {
            let mut out = Vec::new();
            self.put(&mut out);
            out
        }
    }

    #[test]
    fn every_width_boundary_is_bincodes() {
        for v in [0u64, 1, 250, 251, 252, 255, 256, 65_535, 65_536]
            .into_iter()
            .chain([
                u32::MAX as u64 - 1,
                u32::MAX as u64,
                u32::MAX as u64 + 1,
                u64::MAX,
            ])
        {
            agrees(v, &[]);
            agrees(v as usize, &[]);
            agrees(v as u32, &[]);
            agrees(v as u16, &[]);
            agrees(v as u8, &[]);
            agrees(v as i64, &[]);
            agrees(-(v as i64), &[]);
            agrees(v as i32, &[]);
            agrees(-(v as i32), &[]);
            agrees(v as i16, &[]);
            agrees(v as i8, &[]);
            agrees(v as isize, &[]);
            agrees(v as f64, &[]);
            agrees(v as f32, &[]);
        }
        for v in [i64::MIN, i64::MAX, -125, 125, -126, 126] {
            agrees(v, &[]);
        }
        agrees(true, &[]);
        agrees(false, &[]);
        agrees(f64::NAN, &[]);
        agrees(-0.0f32, &[]);
    }

    #[test]
    fn other_types_are_not_scalars() {
        assert!(!is_scalar::<String>());
        assert!(!is_scalar::<(u64,)>());
        assert!(!is_scalar::<char>());
        assert!(!is_scalar::<u128>());
        assert!(!encode(&"x".to_string(), &mut Vec::new()));
        assert!(decode::<Vec<u8>>(&[0]).is_none());
        assert!(is_scalar::<u64>() && is_scalar::<bool>() && is_scalar::<f32>());
    }

    #[test]
    fn what_bincode_refuses_is_left_to_it() {
        // A u64's form read as a u32, a reserved marker, bytes cut short,
        // a bool that is neither.
        let mut wide = vec![U64_BYTE];
        wide.extend_from_slice(&7u64.to_le_bytes());
        assert!(decode::<u32>(&wide).is_none() && bincode_read::<u32>(&wide).is_none());
        assert_eq!(decode::<u64>(&wide), Some((7, 9)));
        assert!(decode::<u64>(&[254, 1]).is_none());
        assert!(decode::<u64>(&[255]).is_none());
        assert!(decode::<u64>(&[U32_BYTE, 1, 2]).is_none());
        assert!(decode::<bool>(&[2]).is_none() && bincode_read::<bool>(&[2]).is_none());
        assert!(decode::<f64>(&[0; 7]).is_none());
        assert!(decode::<u8>(&[]).is_none());
    }

    proptest! {
        #[test]
        fn any_bytes_read_as_bincode_reads_them(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            fn check<T>(bytes: &[u8]) -> Result<(), TestCaseError>
            where T: Scalar + serde::de::DeserializeOwned {
                if let Some((ours, used)) = decode::<T>(bytes) {
                    let theirs = bincode_read::<T>(bytes);
                    prop_assert!(theirs.is_some(), "we read what bincode refuses");
                    let (theirs, their_used) = theirs.unwrap();
                    prop_assert_eq!((ours.put_bytes(), used), (theirs.put_bytes(), their_used));
                }
                Ok(())
            }
            check::<u8>(&bytes)?; check::<i8>(&bytes)?;
            check::<u16>(&bytes)?; check::<i16>(&bytes)?;
            check::<u32>(&bytes)?; check::<i32>(&bytes)?;
            check::<u64>(&bytes)?; check::<i64>(&bytes)?;
            check::<usize>(&bytes)?; check::<isize>(&bytes)?;
            check::<f32>(&bytes)?; check::<f64>(&bytes)?;
            check::<bool>(&bytes)?;
        }

        #[test]
        fn any_value_is_written_as_bincode_writes_it(v in any::<u64>(), noise in proptest::collection::vec(any::<u8>(), 0..4)) {
            agrees(v, &noise);
            agrees(v as i64, &noise);
            agrees(v as u32, &noise);
            agrees(v as i32, &noise);
            agrees(v as u16, &noise);
            agrees(v as i16, &noise);
            agrees(f64::from_bits(v), &noise);
        }
    }
}

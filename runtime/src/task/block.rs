//! Values that travel as one block of bytes: `Vec<u8>` and
//! `serde_bytes::ByteBuf`. Both encode as their length, then their bytes,
//! whichever way they are written, so a large one can cross as the tail of a
//! split frame (see [`super::Encoded`]) and be received straight into the
//! buffer that becomes the value, with no copy on either side.
//!
//! The types are told apart by `TypeId` in the generic code the macro
//! calls, not by how the user spelled the type: an alias of `Vec<u8>` gets
//! the block too, and a type merely named `ByteBuf` goes the ordinary way.

use std::any::{Any, TypeId};

use serde_bytes::ByteBuf;

// Each check compares two `TypeId` constants, which the compiler folds: for
// any other type these functions cost nothing on the hot paths they sit on
// (a map's items and results).

fn is_vec<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<Vec<u8>>()
}

fn is_buf<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<ByteBuf>()
}

/// Whether values of `T` travel as one block of bytes.
#[inline]
pub(crate) fn is_block<T: 'static>() -> bool {
    is_vec::<T>() || is_buf::<T>()
}

/// `value`'s bytes if `T` travels as one block of bytes.
#[inline]
pub(crate) fn as_block<T: 'static>(value: &T) -> Option<&[u8]> {
    let any: &dyn Any = value;
    if is_vec::<T>() {
        return any.downcast_ref::<Vec<u8>>().map(Vec::as_slice);
    }
    if is_buf::<T>() {
        return any.downcast_ref::<ByteBuf>().map(|buf| buf.as_slice());
    }
    None
}

/// `value`'s bytes if `T` travels as one block of bytes, else `value` back.
#[inline]
pub(crate) fn into_block<T: 'static>(value: T) -> Result<Vec<u8>, T> {
    if !is_block::<T>() {
        return Err(value);
    }
    let mut slot = Some(value);
    let any: &mut dyn Any = &mut slot;
    let taken = if let Some(vec) = any.downcast_mut::<Option<Vec<u8>>>() {
        vec.take()
    } else if let Some(buf) = any.downcast_mut::<Option<ByteBuf>>() {
        buf.take().map(ByteBuf::into_vec)
    } else {
        None
    };
    match slot {
        Some(value) => Err(value),
        None => Ok(taken.unwrap_or_default()),
    }
}

/// `bytes` as a `T` if `T` travels as one block of bytes, else `bytes` back.
pub(crate) fn from_block<T: 'static>(bytes: Vec<u8>) -> Result<T, Vec<u8>> {
    if !is_block::<T>() {
        return Err(bytes);
    }
    let mut slot: Option<T> = None;
    let any: &mut dyn Any = &mut slot;
    if let Some(vec) = any.downcast_mut::<Option<Vec<u8>>>() {
        *vec = Some(bytes);
    } else if let Some(buf) = any.downcast_mut::<Option<ByteBuf>>() {
        *buf = Some(ByteBuf::from(bytes));
    } else {
        return Err(bytes);
    }
    slot.ok_or_else(Vec::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_vectors_and_byte_bufs_are_blocks_and_nothing_else_is() {
        type Alias = Vec<u8>;
        assert!(is_block::<Vec<u8>>() && is_block::<Alias>() && is_block::<ByteBuf>());
        assert!(!is_block::<Vec<u16>>() && !is_block::<String>() && !is_block::<(Vec<u8>,)>());

        assert_eq!(as_block(&vec![1u8, 2]), Some(&[1u8, 2][..]));
        assert_eq!(as_block(&ByteBuf::from(vec![3u8])), Some(&[3u8][..]));
        assert_eq!(as_block(&vec![1u16]), None);
        assert_eq!(into_block(vec![1u8, 2]), Ok(vec![1, 2]));
        assert_eq!(into_block(ByteBuf::from(vec![3u8])), Ok(vec![3]));
        assert_eq!(into_block(String::from("x")), Err(String::from("x")));

        assert_eq!(from_block::<Vec<u8>>(vec![4]), Ok(vec![4]));
        assert_eq!(from_block::<ByteBuf>(vec![5]), Ok(ByteBuf::from(vec![5])));
        assert_eq!(from_block::<String>(vec![6]), Err(vec![6]));
    }
}

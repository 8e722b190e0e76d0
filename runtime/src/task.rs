//! What a task is to the runtime: its wire identity ([`TaskInfo`], with the
//! signature [`fingerprint`] shared by the macro's output and calls by
//! name), the marker traits `#[pool_task]` implements, and the encoding and
//! decoding of a call's arguments ([`ArgsEncoder`], [`ArgsDecoder`],
//! [`RefArg`], [`Lend`]). Reached by generated code through
//! `crate::__private`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;

mod block;
mod decoder;
mod info;
mod returned;

pub use decoder::{ArgsDecoder, Lend, RefArg};
pub use info::{by_name_signature, fingerprint, TaskInfo};
pub(crate) use info::{intern, refused};
pub use returned::{ErrWithDebug, ErrWithoutDebug, NotAResult, Returned};

pub(crate) use block::{from_block, is_block};

/// Why a registered call could not produce result bytes.
#[derive(Debug)]
pub enum CallError {
    /// The argument bytes did not decode as the function's argument types.
    DecodeArgs(String),
    /// The function's result could not be encoded.
    EncodeResult(String),
}

/// The most argument bytes a call keeps inline, in place of a buffer
/// (`call::Args`, which stays as small as a `Vec`).
pub(crate) const INLINE_ARGS: usize = 15;

/// Encoded arguments or an encoded result: `bytes`, then, when the last
/// thing encoded is a large block of bytes (a `Vec<u8>` or a
/// `serde_bytes::ByteBuf`), that block itself as `tail`, with
/// its length prefix at the end of `bytes`. The tail travels as the tail of
/// a split frame (see `crate::wire::frame`) and is never copied into
/// `bytes`: a large block costs one copy into the channel and one out.
#[derive(Debug, Default)]
pub struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) tail: Vec<u8>,
}

impl From<Vec<u8>> for Encoded {
    fn from(bytes: Vec<u8>) -> Encoded {
        Encoded {
            bytes,
            tail: Vec::new(),
        }
    }
}

/// Encoded arguments this small never keep a large spare buffer busy.
const SMALL_ARGS: usize = 64 << 10;

/// Encoded arguments keep at most this much spare room (or as much again
/// as they take), whatever buffer they were encoded in.
const SLACK_MAX: usize = 256;

/// A block of bytes at least this large travels as a tail (see [`Encoded`]).
pub(crate) const TAIL_MIN: usize = 64 << 10;

/// `value` as the last thing encoded: a tail if it is large.
fn byte_block(mut bytes: Vec<u8>, value: Vec<u8>) -> Result<Encoded, String> {
    if value.len() < TAIL_MIN {
        codec::encode_into(&codec::BytesOut(&value), &mut bytes)?;
        return Ok(bytes.into());
    }
    codec::encode_len(value.len(), &mut bytes);
    Ok(Encoded { bytes, tail: value })
}

// How the serde bounds are checked. `#[pool_task]` emits a hidden marker type
// per task and implements the three traits below on it, naming the user's
// types with the user's spans. The bounds on their associated types are then
// checked in exactly one place, those impls, so a type that is not
// serializable is reported once, at the user's type. All other generated code
// calls the generic functions below through the marker and never requires a
// serde bound of a concrete type itself, so it cannot repeat the error.

/// The `I`-th argument of a task, taken by value.
pub trait ValueArg<const I: usize> {
    /// The argument's type, sent as is.
    type Type: Serialize + for<'de> Deserialize<'de>;
}

/// The `I`-th argument of a task, taken by reference: `&Self::Referent`.
pub trait RefArgAt<const I: usize> {
    /// What the reference points to; the caller sends it and the worker
    /// lends the function its decoded copy.
    type Referent: ?Sized + Serialize + RefArg;
}

/// The return type of a task.
pub trait TaskOutput {
    /// The type, `()` for none.
    type Output: Serialize + for<'de> Deserialize<'de>;
}

/// A task, as the code `#[pool_task]` generates sees it (implemented on a
/// hidden marker type per task): its name and signature on the wire.
pub trait Task: TaskOutput {
    /// The task's name, signature and fingerprint.
    const INFO: TaskInfo;
}

/// How one input item `I` of the map family (the argument, or a tuple of
/// them) is encoded as a call's arguments. `#[pool_task]` implements it on
/// the task's marker for every item type the task accepts: the exact type
/// of an argument taken by value, and for one taken by reference anything
/// that lends the referent (`impl AsRef<str>` for `&str`, `AsRef<[T]>` for
/// `&[T]`, `AsRef<Path>` for `&Path`, [`crate::Lends<T>`] for `&T`), so that both
/// owned and borrowed items work.
pub trait EncodeItem<I> {
    /// Appends `item`'s arguments to a chunk.
    fn encode_item(item: I, chunk: &mut Vec<u8>) -> Result<(), String>;

    /// The kind of number `I` is, when items go in the dense form (the
    /// task takes one number by value, and `I` is its type; see
    /// `codec::dense`); `None` (the default) for every other task.
    #[inline]
    fn dense_kind() -> Option<DenseKind> {
        None
    }

    /// Appends `item` in the dense form. Called only when
    /// [`EncodeItem::dense_kind`] is `Some`; the default, never called,
    /// writes the general form.
    #[inline]
    fn encode_dense(item: I, chunk: &mut Vec<u8>) {
        let _ = Self::encode_item(item, chunk);
    }
}

pub use crate::codec::dense::Kind as DenseKind;

/// [`EncodeItem::dense_kind`] for a task whose one argument, the `I`-th,
/// is taken by value.
#[inline]
pub fn dense_kind<M: ValueArg<I>, const I: usize>() -> Option<DenseKind>
where
    M::Type: 'static,
{
    codec::dense::kind::<M::Type>()
}

/// [`EncodeItem::encode_dense`] for a task whose one argument, the `I`-th,
/// is taken by value.
#[inline]
pub fn encode_dense<M: ValueArg<I>, const I: usize>(value: &M::Type, chunk: &mut Vec<u8>)
where
    M::Type: 'static,
{
    codec::dense::put(value, chunk);
}

/// Appends the `I`-th argument, taken by value, to a chunk.
#[inline]
pub fn encode_value<M: ValueArg<I>, const I: usize>(
    value: &M::Type,
    chunk: &mut Vec<u8>,
) -> Result<(), String>
where
    M::Type: 'static,
{
    encode_value_into(value, chunk)
}

/// Ends a map item's encoding (`encoded`): an item refused for nesting too
/// deeply is dropped on a large stack (see `codec::drop_refused`), any
/// other where it is.
#[inline]
pub fn settle_item<T>(item: T, encoded: Result<(), String>) -> Result<(), String> {
    if let Err(why) = &encoded {
        codec::drop_refused(item, why);
    }
    encoded
}

/// Appends `value` to `out`: a block of bytes (a `Vec<u8>`, a `ByteBuf`)
/// as one, not element by element (the same bytes).
#[inline]
pub(crate) fn encode_value_into<T: Serialize + 'static>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if codec::encode_scalar(value, out) {
        return Ok(());
    }
    match block::as_block(value) {
        Some(bytes) => codec::encode_into(&codec::BytesOut(bytes), out),
        None => codec::encode_into(value, out),
    }
}

/// Decodes `bytes`, all of them, as a `T`: a block of bytes (a `Vec<u8>`, a
/// `ByteBuf`) as one, not element by element.
#[inline]
pub(crate) fn decode_value<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, String> {
    if !block::is_block::<T>() {
        return match codec::decode_scalar(bytes) {
            Some((value, used)) if used == bytes.len() => Ok(value),
            _ => codec::decode(bytes),
        };
    }
    let bytes = codec::decode::<codec::BytesIn>(bytes)?.0;
    block::from_block(bytes).map_err(|_| "not a block of bytes".to_string())
}

/// Appends the `I`-th argument, taken by reference, to a chunk.
#[inline]
pub fn encode_ref<M: RefArgAt<I>, const I: usize>(
    value: &M::Referent,
    chunk: &mut Vec<u8>,
) -> Result<(), String> {
    codec::encode_into(value, chunk)
}

/// Encodes a call's arguments one by one: the bytes (with the tail, if
/// any) equal those of the argument tuple.
pub struct ArgsEncoder {
    bytes: Result<Encoded, String>,
}

impl Default for ArgsEncoder {
    fn default() -> Self {
        ArgsEncoder::new()
    }
}

impl ArgsEncoder {
    /// An encoder with no argument yet.
    pub fn new() -> Self {
        // A buffer this thread recycled, if any (see `buffers::recycle`): a
        // large spare, else its last small one, so that the arguments of a
        // call made again and again cost no allocation of their own.
        let bytes = crate::buffers::spare_buffer(0).unwrap_or_else(crate::buffers::small_buffer);
        ArgsEncoder {
            bytes: Ok(bytes.into()),
        }
    }

    /// Appends the `I`-th argument, taken by value. A block of bytes (a
    /// `Vec<u8>` or a `serde_bytes::ByteBuf`) goes as one: a large one is
    /// kept as the tail while it is the last argument, so it is never
    /// copied here.
    pub fn value<M: ValueArg<I>, const I: usize>(mut self, value: M::Type) -> Self
    where
        M::Type: 'static,
    {
        let bytes = match block::into_block(value) {
            Ok(bytes) => bytes,
            // A number goes straight in (it cannot fail, nor panic).
            Err(value) if codec::is_scalar::<M::Type>() => {
                self.bytes = self.bytes.map(|encoded| {
                    let mut encoded = settle(encoded);
                    codec::encode_scalar(&value, &mut encoded.bytes);
                    encoded
                });
                return self;
            }
            Err(value) => {
                let pushed = self.push(&value);
                if let Err(why) = &pushed.bytes {
                    codec::drop_refused(value, why);
                }
                return pushed;
            }
        };
        self.bytes = self.bytes.and_then(|encoded| {
            let Encoded { bytes: head, tail } = settle(encoded);
            debug_assert!(tail.is_empty());
            byte_block(head, bytes)
        });
        self
    }

    /// Appends the `I`-th argument, taken by reference.
    pub fn by_ref<M: RefArgAt<I>, const I: usize>(self, value: &M::Referent) -> Self {
        self.push(value)
    }

    /// Appends the `I`-th argument, a `&[u8]`, as one block of bytes.
    pub fn byte_slice<M: RefArgAt<I, Referent = [u8]>, const I: usize>(self, value: &[u8]) -> Self {
        self.push(&codec::BytesOut(value))
    }

    /// Appends any serializable value.
    pub fn push<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.bytes = self.bytes.and_then(|encoded| {
            let mut encoded = settle(encoded);
            codec::caller_encode_into(value, &mut encoded.bytes)?;
            Ok(encoded)
        });
        self
    }

    /// The encoded arguments, or why one could not be encoded.
    pub fn finish(self) -> Result<Encoded, String> {
        self.bytes.map(|mut encoded| {
            // Small arguments in a large spare buffer: the spare is better
            // kept for this thread's next large read (a result). And a
            // queued call keeps no more than twice its arguments' size from
            // a recycled small buffer. (Arguments that fit in the call
            // itself are copied there, and their buffer recycled: see
            // `call::Args`.)
            let (len, capacity) = (encoded.bytes.len(), encoded.bytes.capacity());
            // (A large spare is always given back: the bytes before a large
            // `Vec<u8>` tail fit inline, but the call would keep it.)
            let spare = len <= SMALL_ARGS && capacity > SMALL_ARGS;
            let roomy = len > INLINE_ARGS && capacity > SLACK_MAX && capacity > 2 * len;
            if spare || roomy {
                let small = encoded.bytes.to_vec();
                crate::buffers::recycle(std::mem::replace(&mut encoded.bytes, small));
            }
            encoded
        })
    }
}

/// `encoded` with its tail, if any, moved into its bytes: something is
/// encoded after it.
fn settle(mut encoded: Encoded) -> Encoded {
    if !encoded.tail.is_empty() {
        let tail = std::mem::take(&mut encoded.tail);
        encoded.bytes.extend_from_slice(&tail);
    }
    encoded
}

/// Encodes a task's return value in the worker.
pub fn encode_result<R: Serialize + ?Sized>(value: &R) -> Result<Encoded, CallError> {
    codec::encode(value)
        .map(Encoded::from)
        .map_err(CallError::EncodeResult)
}

/// Decodes the value the task of marker `M` returned (for the pool's
/// initializer, whose value is looked at, not kept: see `returned`).
pub fn decode_output<M: TaskOutput>(bytes: &[u8]) -> Result<M::Output, String>
where
    M::Output: 'static,
{
    decode_value(bytes)
}

/// [`encode_result`] for the task of marker `M`. A block of bytes (a
/// `Vec<u8>` or a `serde_bytes::ByteBuf`) goes as one, a large one sent as
/// it is (see [`Encoded`]).
pub fn encode_output<M: TaskOutput>(value: M::Output) -> Result<Encoded, CallError>
where
    M::Output: 'static,
{
    match block::into_block(value) {
        Ok(bytes) => byte_block(Vec::new(), bytes).map_err(CallError::EncodeResult),
        Err(value) if codec::is_scalar::<M::Output>() => {
            let mut out = Vec::with_capacity(9);
            codec::encode_scalar(&value, &mut out);
            Ok(out.into())
        }
        Err(value) => encode_result(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `encoded` as the channel would deliver it, and decodes it.
    fn decoder(encoded: &Encoded) -> ArgsDecoder<'_> {
        ArgsDecoder::with_tail(&encoded.bytes, encoded.tail.clone())
    }

    #[test]
    fn a_large_last_byte_vector_is_a_tail_and_anything_after_it_settles_it() {
        struct M;
        impl ValueArg<0> for M {
            type Type = Vec<u8>;
        }
        impl ValueArg<1> for M {
            type Type = u32;
        }
        impl ValueArg<2> for M {
            type Type = serde_bytes::ByteBuf;
        }
        let big = vec![9u8; TAIL_MIN];
        let small = vec![8u8; TAIL_MIN - 1];
        // Last and large: a tail, equal to the inline encoding.
        let encoded = ArgsEncoder::new()
            .value::<M, 1>(7)
            .value::<M, 0>(big.clone())
            .finish()
            .unwrap();
        assert_eq!(encoded.tail, big);
        let inline = codec::encode(&(7u32, big.clone())).unwrap();
        assert_eq!([&encoded.bytes[..], &encoded.tail].concat(), inline);
        let mut args = decoder(&encoded);
        assert_eq!(args.value::<M, 1>().unwrap(), 7);
        assert_eq!(args.value::<M, 0>().unwrap(), big);
        args.finish().unwrap();
        // Small: inline.
        let encoded = ArgsEncoder::new()
            .value::<M, 0>(small.clone())
            .finish()
            .unwrap();
        assert!(encoded.tail.is_empty());
        assert_eq!(encoded.bytes, codec::encode(&(small.clone(),)).unwrap());
        // Followed by another argument: settled into the bytes.
        let encoded = ArgsEncoder::new()
            .value::<M, 0>(big.clone())
            .value::<M, 1>(3)
            .finish()
            .unwrap();
        assert!(encoded.tail.is_empty());
        assert_eq!(encoded.bytes, codec::encode(&(big.clone(), 3u32)).unwrap());
        // A tail the worker decodes as another type of the same bytes.
        let encoded = ArgsEncoder::new()
            .value::<M, 0>(big.clone())
            .finish()
            .unwrap();
        let mut args = decoder(&encoded);
        assert_eq!(args.next::<Vec<u8>>().unwrap(), big);
        args.finish().unwrap();
        // A tail nobody decodes is left over: the types differ.
        let mut args = decoder(&encoded);
        assert!(args.next::<u8>().is_ok());
        assert!(matches!(args.finish(), Err(CallError::DecodeArgs(_))));
        // A `ByteBuf` is a block too, in the same bytes: either side may
        // use either type.
        let buf = serde_bytes::ByteBuf::from(big.clone());
        let encoded = ArgsEncoder::new()
            .value::<M, 2>(buf.clone())
            .finish()
            .unwrap();
        assert_eq!(encoded.tail, big);
        assert_eq!(decoder(&encoded).value::<M, 0>().unwrap(), big);
        assert_eq!(decoder(&encoded).value::<M, 2>().unwrap(), buf);
        let inline = codec::encode(&(small.clone(),)).unwrap();
        let small_buf = ArgsDecoder::new(&inline).value::<M, 2>().unwrap();
        assert_eq!(small_buf.into_vec(), small);
    }
}

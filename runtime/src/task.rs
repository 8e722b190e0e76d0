//! What a task is to the runtime: its wire identity ([`TaskInfo`], with the
//! signature [`fingerprint`] shared by the macro's output and calls by
//! name), the marker traits `#[pool_task]` implements, and the encoding and
//! decoding of a call's arguments ([`ArgsEncoder`], [`ArgsDecoder`],
//! [`RefArg`], [`Lend`]). Reached by generated code through
//! `crate::__private`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;

mod block;
mod returned;

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

/// The caller's view of one task: how to name it on the wire.
#[derive(Debug, Clone, Copy)]
pub struct TaskInfo {
    /// The registered name calls are dispatched by.
    pub name: &'static str,
    /// The argument and return types as written, e.g. `fn(u64) -> u64`.
    pub signature: &'static str,
    /// [`fingerprint`] of `signature`, sent with every call and checked by
    /// the worker.
    pub fingerprint: u64,
}

/// FNV-1a of a signature; never 0, which means "unchecked" on the wire. A
/// `const fn`, so the code `#[pool_task]` generates computes it at compile
/// time with the same function the runtime uses for calls by name.
pub const fn fingerprint(signature: &str) -> u64 {
    let bytes = signature.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    if hash == 0 {
        1
    } else {
        hash
    }
}

/// The one `TaskInfo` of the calls procpool makes up at run time (calls by
/// name, the initializer, tests' raw calls), by name, signature and
/// fingerprint: made once, kept for the life of the process, so a call
/// carries a `&'static TaskInfo` whatever made it. The table only grows
/// with distinct tasks and signatures actually called, a handful per
/// registered task (unknown names are refused before a call is made).
pub(crate) fn intern(name: &str, signature: &'static str, fingerprint: u64) -> &'static TaskInfo {
    interned(name, signature, fingerprint, true).unwrap_or(&REFUSED_OTHERS)
}

/// What a result refused before any call was made (a name nobody
/// registered, called by name) shows as its task: interned like
/// [`intern`]'s, for the first [`MAX_REFUSED`] distinct names; later ones
/// share one entry (their errors still name them), so that a program that
/// keeps calling names it made up does not grow the table for ever.
pub(crate) fn refused(name: &str) -> &'static TaskInfo {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LEFT: AtomicUsize = AtomicUsize::new(MAX_REFUSED);
    if let Some(info) = interned(name, REFUSED, 0, false) {
        return info;
    }
    let admit = LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    interned(name, REFUSED, 0, admit).unwrap_or(&REFUSED_OTHERS)
}

/// How many refused names [`refused`] keeps apart.
const MAX_REFUSED: usize = 1024;
/// The signature of a refused name's entry.
const REFUSED: &str = "<refused before a call was made>";
/// The entry refused names share past [`MAX_REFUSED`].
static REFUSED_OTHERS: TaskInfo = TaskInfo {
    name: "<an unregistered task>",
    signature: REFUSED,
    fingerprint: 0,
};

/// The table behind [`intern`] and [`refused`]: the entry for the key, made
/// if absent and `insert`.
fn interned(
    name: &str,
    signature: &'static str,
    fingerprint: u64,
    insert: bool,
) -> Option<&'static TaskInfo> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Table = HashMap<(String, &'static str, u64), &'static TaskInfo>;
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = (name.to_string(), signature, fingerprint);
    if !insert {
        return table.get(&key).copied();
    }
    Some(table.entry(key).or_insert_with(|| {
        Box::leak(Box::new(TaskInfo {
            name: Box::leak(name.into()),
            signature,
            fingerprint,
        }))
    }))
}

/// The signature of a call by name with arguments `A` (a tuple) returning
/// `R`, spelled from the types themselves: `fn(u64, alloc::string::String) -> u64`.
/// A reference to the arguments (`&&(x,)` given where `&(x,)` is meant) is
/// spelled as what it refers to: serde encodes `&T` exactly as `T`.
pub fn by_name_signature<A: ?Sized, R: ?Sized>() -> String {
    let mut args = std::any::type_name::<A>();
    while let Some(rest) = args
        .strip_prefix("&mut ")
        .or_else(|| args.strip_prefix('&'))
    {
        args = rest;
    }
    if args.starts_with('(') {
        format!("fn{args} -> {}", std::any::type_name::<R>())
    } else {
        format!("fn {args} -> {}", std::any::type_name::<R>())
    }
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

/// Decodes a call's arguments one by one in the worker.
pub struct ArgsDecoder<'a> {
    rest: &'a [u8],
    /// The frame's tail: the last argument's bytes, if it was a large `Vec<u8>`.
    tail: Option<Vec<u8>>,
    /// The kind of number `rest` starts with, in the dense form (an item of
    /// a dense chunk); `None` for the general form.
    dense: Option<u8>,
}

impl<'a> ArgsDecoder<'a> {
    /// A decoder of the arguments in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        ArgsDecoder {
            rest: bytes,
            tail: None,
            dense: None,
        }
    }

    /// A decoder of the arguments in `bytes`, then `tail` (see [`Encoded`]).
    pub(crate) fn with_tail(bytes: &'a [u8], tail: Vec<u8>) -> Self {
        ArgsDecoder {
            rest: bytes,
            tail: (!tail.is_empty()).then_some(tail),
            dense: None,
        }
    }

    /// A decoder of one number of kind `code` in the dense form at the
    /// start of `bytes` (an item of a dense chunk).
    pub(crate) fn dense(bytes: &'a [u8], code: u8) -> Self {
        ArgsDecoder {
            rest: bytes,
            tail: None,
            dense: Some(code),
        }
    }

    /// The dense item, if it is a `T`.
    #[inline(always)]
    fn dense_value<T: 'static>(&mut self, code: u8) -> Result<T, CallError> {
        let kind = codec::dense::kind::<T>().filter(|kind| kind.code == code);
        match kind.and_then(|kind| Some((codec::dense::take::<T>(self.rest)?, kind.width))) {
            Some((value, width)) => {
                self.rest = &self.rest[width..];
                Ok(value)
            }
            None => Err(Self::not_dense()),
        }
    }

    fn not_dense() -> CallError {
        CallError::DecodeArgs(
            "a dense item that is not this argument's type: the caller sent other types"
                .to_string(),
        )
    }

    /// The tail, if what is left of the bytes is exactly its length prefix.
    fn take_tail(&mut self) -> Option<Vec<u8>> {
        let tail = self.tail.as_ref()?;
        if !codec::is_len_of(self.rest, tail.len()) {
            return None;
        }
        self.rest = &[];
        self.tail.take()
    }

    /// Decodes the `I`-th argument, taken by value (a block of bytes as
    /// one: a large one is the very buffer it was received into).
    #[inline]
    pub fn value<M: ValueArg<I>, const I: usize>(&mut self) -> Result<M::Type, CallError>
    where
        M::Type: 'static,
    {
        if let Some(code) = self.dense {
            return self.dense_value(code);
        }
        if !block::is_block::<M::Type>() {
            if let Some((value, used)) = codec::decode_scalar(self.rest) {
                self.rest = &self.rest[used..];
                return Ok(value);
            }
            return self.next();
        }
        let bytes = match self.take_tail() {
            Some(tail) => tail,
            None => self.next::<codec::BytesIn>()?.0,
        };
        block::from_block(bytes)
            .map_err(|_| CallError::DecodeArgs("not a block of bytes".to_string()))
    }

    /// Decodes the `I`-th argument, taken by reference, as an owned value
    /// that [`Lend::lend`] lends to the function.
    pub fn by_ref<M: RefArgAt<I>, const I: usize>(
        &mut self,
    ) -> Result<impl Lend<M::Referent>, CallError> {
        Ok(Lent::<M::Referent>(self.next()?))
    }

    /// Decodes the `I`-th argument, a `&[u8]`, as one block of bytes.
    pub fn byte_slice<M: RefArgAt<I, Referent = [u8]>, const I: usize>(
        &mut self,
    ) -> Result<impl Lend<[u8]>, CallError> {
        match self.take_tail() {
            Some(tail) => Ok(Lent::<[u8]>(tail)),
            None => Ok(Lent::<[u8]>(self.next::<codec::BytesIn>()?.0)),
        }
    }

    /// Decodes any value.
    #[allow(clippy::should_implement_trait)]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<T, CallError> {
        if self.dense.is_some() {
            return Err(Self::not_dense());
        }
        let (value, used) = match codec::decode_prefix(self.rest) {
            Ok(decoded) => decoded,
            // The value runs on into the tail (a byte block the worker
            // decodes as another type): decode it from both.
            Err(_) if self.tail.is_some() => return self.next_with_tail(),
            Err(e) => return Err(CallError::DecodeArgs(e)),
        };
        self.rest = &self.rest[used..];
        Ok(value)
    }

    /// Decodes the last value from the rest of the bytes and the tail.
    fn next_with_tail<T: DeserializeOwned>(&mut self) -> Result<T, CallError> {
        let tail = self.tail.take().unwrap_or_default();
        let joined = [self.rest, &tail].concat();
        self.rest = &[];
        codec::decode(&joined).map_err(CallError::DecodeArgs)
    }

    /// How many bytes are left to decode.
    pub(crate) fn rest_len(&self) -> usize {
        self.rest.len()
    }

    /// Fails if bytes are left over: the caller sent other types.
    pub fn finish(self) -> Result<(), CallError> {
        let left = self.rest.len() + self.tail.as_ref().map_or(0, Vec::len);
        if left == 0 {
            Ok(())
        } else {
            Err(CallError::DecodeArgs(format!(
                "{left} bytes left over after the last argument: the caller sent other types"
            )))
        }
    }
}

/// An owned value the worker decoded for a `&T` argument.
pub trait Lend<T: ?Sized> {
    /// Lends it as the function's argument.
    fn lend(&self) -> &T;
}

struct Lent<T: RefArg + ?Sized>(T::Owned);

impl<T: RefArg + ?Sized> Lend<T> for Lent<T> {
    fn lend(&self) -> &T {
        T::lend(&self.0)
    }
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

/// How a worker gets an argument the function takes by reference: it decodes
/// an owned value and lends it out.
#[diagnostic::on_unimplemented(
    message = "a worker cannot decode the `{Self}` behind this `&{Self}` argument",
    label = "not decodable",
    note = "for a `&T` argument the worker decodes an owned `T` (a `String` for `str`, a `Vec<U>` \
            for `[U]`, a `PathBuf` for `Path`) and lends it: `T` or `U` must implement \
            `serde::Deserialize`; add `#[derive(serde::Deserialize)]` to it"
)]
pub trait RefArg {
    /// What the worker decodes.
    type Owned: DeserializeOwned;
    /// Lends the decoded value as the function's argument.
    fn lend(owned: &Self::Owned) -> &Self;
}

impl<T: DeserializeOwned> RefArg for T {
    type Owned = T;
    fn lend(owned: &T) -> &T {
        owned
    }
}

impl RefArg for str {
    type Owned = String;
    fn lend(owned: &String) -> &str {
        owned
    }
}

impl<T: DeserializeOwned> RefArg for [T] {
    type Owned = Vec<T>;
    fn lend(owned: &Vec<T>) -> &[T] {
        owned
    }
}

impl RefArg for Path {
    type Owned = PathBuf;
    fn lend(owned: &PathBuf) -> &Path {
        owned
    }
}

#[cfg(test)]
mod refused_tests {
    use super::{intern, refused};

    #[test]
    fn a_refused_name_is_kept_once_apart_from_calls_of_that_name() {
        let first = refused("no/such/task");
        assert_eq!(first.name, "no/such/task");
        assert!(std::ptr::eq(first, refused("no/such/task")));
        assert!(!std::ptr::eq(first, intern("no/such/task", "fn()", 0)));
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

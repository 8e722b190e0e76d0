//! Not public API. Used by code that `#[pool_task]` generates; may change in
//! any release.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use ::ctor;
pub use ::inventory;
pub use ::serde;

pub use crate::map::{map, map_async};
use crate::pool::{DirectCall, TaskCall};
pub use crate::registry::{CallError, Registration};
use crate::{codec, AsyncResult, Imap, ImapUnordered, MapOptions, Pool};

/// How many workers this process asked to exit (after `max_tasks_per_child`
/// tasks, or at `join`), and how many of those did not exit with code 0.
/// For tests.
pub fn retirements() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let [all, unclean] = &crate::dispatch::RETIRED;
    (all.load(Relaxed), unclean.load(Relaxed))
}

/// The caller's view of one task: how to name it on the wire.
pub struct TaskInfo {
    pub name: &'static str,
    pub signature: &'static str,
    pub fingerprint: u64,
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

/// The map family's view of a task: its name, and how one input item (the
/// argument, or a tuple of them) is encoded as the call's arguments.
pub trait MapTask: TaskOutput {
    /// The task's name and signature on the wire.
    const INFO: TaskInfo;
    /// One input item of `map_<fn>`.
    type Item;
    /// Appends `item`'s arguments to a chunk.
    fn encode_item(item: Self::Item, chunk: &mut Vec<u8>) -> Result<(), String>;
}

/// Appends the `I`-th argument, taken by value, to a chunk.
#[inline]
pub fn encode_value<M: ValueArg<I>, const I: usize>(
    value: &M::Type,
    chunk: &mut Vec<u8>,
) -> Result<(), String> {
    codec::encode_into(value, chunk)
}

/// Appends the `I`-th argument, taken by reference, to a chunk.
#[inline]
pub fn encode_ref<M: RefArgAt<I>, const I: usize>(
    value: &M::Referent,
    chunk: &mut Vec<u8>,
) -> Result<(), String> {
    codec::encode_into(value, chunk)
}

/// `imap_<fn>`.
pub fn imap<'a, M: MapTask>(
    pool: &'a Pool,
    items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
    options: MapOptions,
) -> Imap<'a, M::Output> {
    Imap::new::<M>(pool, items, options)
}

/// `imap_unordered_<fn>`.
pub fn imap_unordered<'a, M: MapTask>(
    pool: &'a Pool,
    items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
    options: MapOptions,
) -> ImapUnordered<'a, M::Output> {
    ImapUnordered::new::<M>(pool, items, options)
}

/// The worker's entry for a chunk of task `M`: `decode` reads one item's
/// arguments, `call` runs the function on them (each under its own
/// `catch_unwind`).
pub fn run_batch<M: TaskOutput, A>(
    bytes: &[u8],
    out: &mut Vec<u8>,
    decode: impl FnMut(&mut ArgsDecoder<'_>) -> Result<A, CallError>,
    call: impl FnMut(A) -> M::Output,
) -> Result<(), CallError> {
    crate::batch::run(bytes, out, decode, call)
}

/// The signature calls by name must match: `A` is the tuple of argument
/// types (owned referents for reference arguments), `R` the return type.
pub fn by_name_signature<A: ?Sized, R: ?Sized>() -> String {
    crate::by_name::signature::<A, R>()
}

/// Queues a call whose arguments `ArgsEncoder` encoded.
pub fn submit<R: DeserializeOwned>(
    pool: &Pool,
    task: &TaskInfo,
    args: Result<Vec<u8>, String>,
) -> AsyncResult<R> {
    let call = TaskCall {
        task: Arc::from(task.name),
        fingerprint: task.fingerprint,
        signature: task.signature,
        timeout: None,
        batch: false,
    };
    pool.submit(call, args)
}

/// [`submit`] for the task of marker `M`: `apply_async_<fn>`.
pub fn submit_task<M: TaskOutput>(
    pool: &Pool,
    task: &TaskInfo,
    args: Result<Vec<u8>, String>,
) -> AsyncResult<M::Output> {
    submit(pool, task, args)
}

/// `apply_<fn>`: runs the call and waits for its result.
pub fn call_task<M: TaskOutput>(
    pool: &Pool,
    task: &TaskInfo,
    args: Result<Vec<u8>, String>,
) -> Result<M::Output, crate::Error> {
    let call = DirectCall {
        task: task.name,
        fingerprint: task.fingerprint,
        signature: task.signature,
        timeout: None,
    };
    pool.call(call, args, codec::decode::<M::Output>)
}

/// [`call_task`] for a task returning `Vec<u8>`: decodes it as one block.
pub fn call_task_bytes<M: TaskOutput<Output = Vec<u8>>>(
    pool: &Pool,
    task: &TaskInfo,
    args: Result<Vec<u8>, String>,
) -> Result<Vec<u8>, crate::Error> {
    let call = DirectCall {
        task: task.name,
        fingerprint: task.fingerprint,
        signature: task.signature,
        timeout: None,
    };
    pool.call(call, args, |bytes| {
        codec::decode::<codec::BytesIn>(bytes).map(|b| b.0)
    })
}

/// Waits for the result `apply_async_<fn>` returned.
pub fn wait<M: TaskOutput>(result: AsyncResult<M::Output>) -> Result<M::Output, crate::Error> {
    result.get()
}

/// Encodes a call's arguments one by one: the bytes equal those of the
/// argument tuple.
pub struct ArgsEncoder {
    bytes: Result<Vec<u8>, String>,
}

impl Default for ArgsEncoder {
    fn default() -> Self {
        ArgsEncoder::new()
    }
}

impl ArgsEncoder {
    pub fn new() -> Self {
        // A large buffer this thread recycled, if any (see `wire::recycle`).
        ArgsEncoder {
            bytes: Ok(crate::wire::spare_buffer(0).unwrap_or_default()),
        }
    }

    /// Appends the `I`-th argument, taken by value.
    pub fn value<M: ValueArg<I>, const I: usize>(self, value: &M::Type) -> Self {
        self.push(value)
    }

    /// Appends the `I`-th argument, taken by reference.
    pub fn by_ref<M: RefArgAt<I>, const I: usize>(self, value: &M::Referent) -> Self {
        self.push(value)
    }

    /// Appends the `I`-th argument, a `Vec<u8>`, as one block of bytes.
    pub fn byte_vec<M: ValueArg<I, Type = Vec<u8>>, const I: usize>(self, value: &[u8]) -> Self {
        self.push(&codec::BytesOut(value))
    }

    /// Appends the `I`-th argument, a `&[u8]`, as one block of bytes.
    pub fn byte_slice<M: RefArgAt<I, Referent = [u8]>, const I: usize>(self, value: &[u8]) -> Self {
        self.push(&codec::BytesOut(value))
    }

    /// Appends any serializable value.
    pub fn push<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        if let Ok(bytes) = &mut self.bytes {
            if let Err(e) = codec::encode_into(value, bytes) {
                self.bytes = Err(e);
            }
        }
        self
    }

    pub fn finish(self) -> Result<Vec<u8>, String> {
        self.bytes
    }
}

/// Decodes a call's arguments one by one in the worker.
pub struct ArgsDecoder<'a> {
    rest: &'a [u8],
}

impl<'a> ArgsDecoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        ArgsDecoder { rest: bytes }
    }

    /// Decodes the `I`-th argument, taken by value.
    pub fn value<M: ValueArg<I>, const I: usize>(&mut self) -> Result<M::Type, CallError> {
        self.next()
    }

    /// Decodes the `I`-th argument, taken by reference, as an owned value
    /// that [`Lend::lend`] lends to the function.
    pub fn by_ref<M: RefArgAt<I>, const I: usize>(
        &mut self,
    ) -> Result<impl Lend<M::Referent>, CallError> {
        Ok(Lent::<M::Referent>(self.next()?))
    }

    /// Decodes the `I`-th argument, a `Vec<u8>`, as one block of bytes.
    pub fn byte_vec<M: ValueArg<I, Type = Vec<u8>>, const I: usize>(
        &mut self,
    ) -> Result<Vec<u8>, CallError> {
        Ok(self.next::<codec::BytesIn>()?.0)
    }

    /// Decodes the `I`-th argument, a `&[u8]`, as one block of bytes.
    pub fn byte_slice<M: RefArgAt<I, Referent = [u8]>, const I: usize>(
        &mut self,
    ) -> Result<impl Lend<[u8]>, CallError> {
        Ok(Lent::<[u8]>(self.next::<codec::BytesIn>()?.0))
    }

    /// Decodes any value.
    #[allow(clippy::should_implement_trait)]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<T, CallError> {
        let (value, used) = codec::decode_prefix(self.rest).map_err(CallError::DecodeArgs)?;
        self.rest = &self.rest[used..];
        Ok(value)
    }

    /// Fails if bytes are left over: the caller sent other types.
    pub fn finish(self) -> Result<(), CallError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CallError::DecodeArgs(format!(
                "{} bytes left over after the last argument: the caller sent other types",
                self.rest.len()
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
pub fn encode_result<R: Serialize + ?Sized>(value: &R) -> Result<Vec<u8>, CallError> {
    codec::encode(value).map_err(CallError::EncodeResult)
}

/// [`encode_output`] for a task returning `Vec<u8>`: one block of bytes.
pub fn encode_byte_output<M: TaskOutput<Output = Vec<u8>>>(
    value: &[u8],
) -> Result<Vec<u8>, CallError> {
    encode_result(&codec::BytesOut(value))
}

/// [`encode_result`] for the task of marker `M`.
pub fn encode_output<M: TaskOutput>(value: &M::Output) -> Result<Vec<u8>, CallError> {
    encode_result(value)
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

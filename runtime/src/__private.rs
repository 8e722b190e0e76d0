//! Not public API. Used by code that `#[pool_task]` generates; may change in
//! any release.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use ::ctor;
pub use ::inventory;
pub use ::serde;

use crate::pool::TaskCall;
pub use crate::registry::{CallError, Registration};
use crate::{codec, AsyncResult, Pool};

/// The caller's view of one task: how to name it on the wire.
pub struct TaskInfo {
    pub name: &'static str,
    pub signature: &'static str,
    pub fingerprint: u64,
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
    };
    pool.submit(call, args)
}

/// Encodes a call's arguments one by one: the bytes equal those of the
/// argument tuple, and each argument's `Serialize` bound is checked (and
/// reported by rustc) at that argument's type.
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
        ArgsEncoder {
            bytes: Ok(Vec::new()),
        }
    }

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

/// Encodes a task's return value in the worker.
pub fn encode_result<R: Serialize + ?Sized>(value: &R) -> Result<Vec<u8>, CallError> {
    codec::encode(value).map_err(CallError::EncodeResult)
}

/// How a worker gets an argument the function takes by reference: it decodes
/// an owned value and lends it out.
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

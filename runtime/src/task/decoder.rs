//! Decoding a call's arguments in the worker: `ArgsDecoder`, and how an
//! argument taken by reference is decoded as an owned value and lent to the
//! function (`RefArg`, `Lend`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{block, CallError, RefArgAt, ValueArg};
use crate::codec;

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

    /// A decoder of the arguments in `bytes`, then `tail` (see [`Encoded`](super::Encoded)).
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

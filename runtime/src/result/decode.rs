//! Turning a result's outcome into the caller's value: through a map's
//! own decoder, or as one encoded `T`, a block of bytes taken whole when
//! it can be.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::cell::ResultCell;
use super::{AsyncResult, Decoder, ErasedDecoder, Outcome};
use crate::error::Error;
use crate::wire::Body;
use crate::{buffers, codec};

impl<T: DeserializeOwned + 'static> AsyncResult<T> {
    /// Turns the outcome into the result: through the cell's own decoder if
    /// it has one (a map's), else as one encoded `T`.
    pub(super) fn decode(cell: &ResultCell, outcome: &Outcome) -> Result<T, Error> {
        match cell.decoder() {
            Some(erased) => {
                // SAFETY: only `pending_with::<T>` sets a decoder, a
                // `Decoder<T>` for the very `T` of the one `AsyncResult`
                // this cell belongs to (see there).
                let decode = unsafe { std::mem::transmute::<ErasedDecoder, Decoder<T>>(erased) };
                decode(&cell.task, outcome)
            }
            None => decode_outcome(&cell.task, outcome),
        }
    }

    /// [`decode`](Self::decode) by the result's last reader: a block of
    /// bytes (a `Vec<u8>`, a `ByteBuf`) is taken whole when nothing else
    /// holds the outcome (no callback kept it), not copied.
    pub(super) fn decode_last(cell: &Arc<ResultCell>, outcome: Arc<Outcome>) -> Result<T, Error> {
        if !crate::task::is_block::<T>() || cell.decoder().is_some() {
            return Self::decode(cell, &outcome);
        }
        match cell.take_sole(outcome) {
            Ok(Ok(body)) => decode_body(body).map_err(|message| Error::Decode {
                task: cell.task.to_string(),
                what: "result",
                message,
            }),
            Ok(Err(e)) => Err(e),
            Err(shared) => Self::decode(cell, &shared),
        }
    }
}

/// Decodes a result as `T`, taking its buffers: a block of bytes is the
/// received tail itself; other buffers are kept for reuse.
pub(crate) fn decode_body<T: DeserializeOwned + 'static>(body: Body) -> Result<T, String> {
    if crate::task::is_block::<T>() {
        return body.into_byte_block().map(|bytes| {
            crate::task::from_block(bytes).unwrap_or_else(|_| unreachable!("T is a block"))
        });
    }
    let value = codec::caller_side(|| codec::decode::<T>(&body.contiguous()));
    for buf in body.into_bufs() {
        buffers::recycle(buf);
    }
    value
}

fn decode_outcome<T: DeserializeOwned + 'static>(
    task: &str,
    outcome: &Outcome,
) -> Result<T, Error> {
    match outcome {
        Ok(body) => codec::caller_side(|| {
            // A block of bytes (a `Vec<u8>`, a `ByteBuf`) that came as a
            // tail is copied out of it (the outcome is shared here; see
            // `decode_last` for the last reader).
            if let (true, Some(block)) = (crate::task::is_block::<T>(), body.block()) {
                return crate::task::from_block(block.to_vec())
                    .map_err(|_| "not a block of bytes".to_string());
            }
            crate::task::decode_value(&body.contiguous())
        })
        .map_err(|message| Error::Decode {
            task: task.to_string(),
            what: "result",
            message,
        }),
        Err(e) => Err(e.clone()),
    }
}

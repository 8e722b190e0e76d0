//! How a worker runs what the parent sends: a call or a chunk, each looked
//! up with [`registry::find`] and run under [`panic::guard`], and its reply
//! cut to fit a frame.

use super::panic;
use crate::chunk;
use crate::codec;
use crate::registry;
use crate::task::{ArgsDecoder, CallError, Encoded};
use crate::wire::{self, Body, RemoteError, Reply};

/// Runs one call on `args` (then `tail`, see [`Encoded`]) and describes
/// how it went.
pub(crate) fn call(id: u64, fingerprint: u64, name: &str, args: &[u8], tail: Vec<u8>) -> Reply {
    let failed = |error| Reply::Failed { id, error };
    let registration = match registry::find(name, fingerprint) {
        Ok(r) => r,
        Err(error) => return failed(error),
    };
    match panic::guard(|| (registration.call)(ArgsDecoder::with_tail(args, tail))) {
        Ok(Ok(Encoded { bytes, tail })) => Reply::Value {
            id,
            bytes: Body::split(bytes, tail),
        },
        Ok(Err(error)) => failed(remote(error)),
        Err(report) => Reply::Panic { id, report },
    }
}

/// Runs a chunk of a map and returns the whole reply body: a RESULTS
/// message with one record per item (see [`crate::chunk`]), or the
/// failure of the whole chunk.
pub(crate) fn chunk(
    id: u64,
    fingerprint: u64,
    name: &str,
    items: &[u8],
    max_frame: usize,
) -> Vec<u8> {
    // Failures are cut to fit a frame, as for single calls.
    let reply = |reply| wire::encode_reply(&fit_in_frame(reply, max_frame));
    let failed = |error| reply(Reply::Failed { id, error });
    let registration = match registry::find(name, fingerprint) {
        Ok(r) => r,
        Err(error) => return failed(error),
    };
    let mut body = wire::results_header(id);
    // Each item runs under its own guard; a panic outside any item's call
    // (in a Deserialize impl) fails the chunk.
    let records_at = body.len() + chunk::RECORDS_AT;
    // A chunk's reply may go its framing over the limit: a value that fits
    // a call's reply fits the reply of a chunk of one item.
    let room = max_frame.saturating_add(wire::CHUNK_FRAMING);
    match panic::guard(|| (registration.call_batch)(items, &mut body)) {
        Ok(Ok(())) if body.len() <= room => body,
        // Failures' texts (a panic's message) cut to fit, as for a call.
        Ok(Ok(())) if chunk::fit_failures(&mut body, records_at, room) => body,
        Ok(Ok(())) => failed(RemoteError::ResultTooLarge {
            len: body.len() as u64,
            max: max_frame as u64,
        }),
        Ok(Err(error)) => failed(remote(error)),
        Err(report) => reply(Reply::Panic { id, report }),
    }
}

fn remote(error: CallError) -> RemoteError {
    match error {
        CallError::DecodeArgs(m) => RemoteError::DecodeArgs(m),
        CallError::EncodeResult(m) => RemoteError::EncodeResult(m),
    }
}

/// A result too large for one frame is reported as such, not sent. A panic
/// report or error too large for one, or over [`codec::META_ROOM`] (the
/// caller decodes no larger), is cut down to fit (longest text first), so
/// the caller still gets its typed error and the worker lives on.
pub(crate) fn fit_in_frame(reply: Reply, max_frame: usize) -> Reply {
    let mut reply = match reply {
        Reply::Value { id, bytes } if bytes.len() + 9 > max_frame => Reply::Failed {
            id,
            error: RemoteError::ResultTooLarge {
                len: bytes.len() as u64 + 9,
                max: max_frame as u64,
            },
        },
        // Fits (checked above); not encoded twice, results can be large.
        value @ Reply::Value { .. } => return value,
        other => other,
    };
    let room = max_frame.min(codec::META_ROOM);
    let size = |reply: &Reply| wire::encode_reply(reply).len();
    wire::fit_texts(&mut reply, reply_texts, size, room);
    reply
}

/// The free-form texts of a failure reply, which may be cut to fit a frame.
fn reply_texts(reply: &mut Reply) -> Vec<&mut String> {
    match reply {
        Reply::Panic { report, .. } => {
            let mut texts = vec![&mut report.message, &mut report.location];
            texts.extend(report.backtrace.as_mut());
            texts
        }
        Reply::Failed { error, .. } => match error {
            RemoteError::UnknownTask { suggestions } => suggestions.iter_mut().collect(),
            RemoteError::DuplicateTask { first, second } => vec![first, second],
            RemoteError::SignatureMismatch { worker_signature } => vec![worker_signature],
            RemoteError::DecodeArgs(m) | RemoteError::EncodeResult(m) => vec![m],
            RemoteError::ResultTooLarge { .. } => Vec::new(),
        },
        Reply::Fatal { message } => vec![message],
        Reply::Hello { .. } | Reply::Value { .. } | Reply::Results { .. } => Vec::new(),
    }
}

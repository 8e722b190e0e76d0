//! Chunks of a map: how a worker runs one (one frame in, one frame out, no
//! per-item frames or allocations) and how the caller reads its records.
//!
//! A chunk's items are the bincode encodings of each call's arguments, back
//! to back after a `u32` count. The RESULTS reply body is
//! `count u32 | all_values u8 | records`, one record per item in order:
//!
//! ```text
//! 0 | bincode(value)          the function returned
//! 1 | bincode(PanicReport)    it panicked (the other items still ran)
//! 2 | bincode(String)         its value could not be encoded
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::__private::ArgsDecoder;
use crate::error::Error;
use crate::registry::{self, CallError, Registration};
use crate::wire::{self, PanicReport, RemoteError, Reply};
use crate::{codec, worker};

const REC_VALUE: u8 = 0;
const REC_PANIC: u8 = 1;
const REC_UNENCODABLE: u8 = 2;

/// Worker side, called by the code `#[pool_task]` generates: decodes each
/// item's arguments with `decode`, runs `call` on them under its own
/// `catch_unwind`, and appends the records to `out`.
pub(crate) fn run<A, R: Serialize>(
    bytes: &[u8],
    out: &mut Vec<u8>,
    mut decode: impl FnMut(&mut ArgsDecoder<'_>) -> Result<A, CallError>,
    mut call: impl FnMut(A) -> R,
) -> Result<(), CallError> {
    let (count, items) = split_count(bytes).map_err(CallError::DecodeArgs)?;
    let mut args = ArgsDecoder::new(items);
    // Results are usually about as large as the arguments, plus a tag each.
    out.reserve(items.len() + count as usize + 8);
    out.extend_from_slice(&count.to_le_bytes());
    let flag = out.len();
    out.push(1);
    for _ in 0..count {
        let item = decode(&mut args)?;
        match worker::guarded(|| call(item)) {
            Ok(value) => {
                let start = out.len();
                out.push(REC_VALUE);
                if let Err(message) = codec::encode_into(&value, out) {
                    out.truncate(start);
                    push_record(out, REC_UNENCODABLE, &message);
                    out[flag] = 0;
                }
            }
            Err(report) => {
                push_record(out, REC_PANIC, &report);
                out[flag] = 0;
            }
        }
    }
    args.finish()
}

fn push_record<T: Serialize>(out: &mut Vec<u8>, tag: u8, value: &T) {
    out.push(tag);
    // Only a String or a PanicReport: they always encode.
    let _ = codec::encode_into(value, out);
}

fn split_count(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes.split_first_chunk::<4>() {
        Some((count, rest)) => Ok((u32::from_le_bytes(*count), rest)),
        None => Err("a chunk without its item count".into()),
    }
}

/// Worker side: runs a CALL_BATCH request and returns the whole reply body.
pub(crate) fn execute(
    id: u64,
    fingerprint: u64,
    name: &str,
    items: &[u8],
    max_frame: usize,
) -> Vec<u8> {
    // Failures are cut to fit a frame, as for single calls.
    let reply = |reply| wire::encode_reply(&worker::fit_in_frame(reply, max_frame));
    let failed = |error| reply(Reply::Failed { id, error });
    let registration = match find(name, fingerprint) {
        Ok(r) => r,
        Err(error) => return failed(error),
    };
    let mut body = wire::results_header(id);
    // A panic outside any item's call (in a Deserialize impl) fails the chunk.
    let ran = worker::guarded(|| (registration.call_batch)(items, &mut body));
    match ran {
        Ok(Ok(())) if body.len() <= max_frame => body,
        Ok(Ok(())) => failed(RemoteError::ResultTooLarge {
            len: body.len() as u64,
            max: max_frame as u64,
        }),
        Ok(Err(CallError::DecodeArgs(m))) => failed(RemoteError::DecodeArgs(m)),
        Ok(Err(CallError::EncodeResult(m))) => failed(RemoteError::EncodeResult(m)),
        Err(report) => reply(Reply::Panic { id, report }),
    }
}

fn find(name: &str, fingerprint: u64) -> Result<&'static Registration, RemoteError> {
    let registration = match registry::lookup(name) {
        Ok(r) => r,
        Err(Error::UnknownTask { suggestions, .. }) => {
            return Err(RemoteError::UnknownTask { suggestions })
        }
        Err(Error::DuplicateTask { first, second, .. }) => {
            return Err(RemoteError::DuplicateTask { first, second })
        }
        Err(other) => return Err(RemoteError::DecodeArgs(other.to_string())),
    };
    if !registration.accepts(fingerprint) {
        return Err(RemoteError::SignatureMismatch {
            worker_signature: registration.signature.to_string(),
        });
    }
    Ok(registration)
}

/// Caller side: the records of one chunk's RESULTS body, checked against
/// the number of items sent. Returns the records and whether all are values.
pub(crate) fn records<'b>(
    task: &str,
    body: &'b [u8],
    sent: usize,
) -> Result<(&'b [u8], bool), Error> {
    let protocol = |message: String| Error::Protocol {
        task: task.to_string(),
        message,
    };
    let (count, rest) = split_count(body).map_err(protocol)?;
    let (&all_values, records) = rest
        .split_first()
        .ok_or_else(|| protocol("a RESULTS reply without its flag".into()))?;
    if count as usize != sent {
        return Err(protocol(format!(
            "{sent} items were sent, {count} results came back"
        )));
    }
    Ok((records, all_values == 1))
}

/// Caller side: reads records one by one.
pub(crate) struct Records<'a> {
    task: &'a str,
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    pub(crate) fn new(task: &'a str, records: &'a [u8]) -> Self {
        Records {
            task,
            rest: records,
        }
    }

    /// The next item's outcome; `None` at the end. A record that does not
    /// decode yields an error and ends the walk (the rest cannot be found).
    #[inline]
    pub(crate) fn next<R: DeserializeOwned>(&mut self) -> Option<Result<R, Error>> {
        let (&tag, body) = self.rest.split_first()?;
        // The hot path: a value, decoded in place (no error built or moved).
        let decode_error = if tag == REC_VALUE {
            match codec::decode_prefix::<R>(body) {
                Ok((value, used)) => {
                    self.rest = &body[used..];
                    return Some(Ok(value));
                }
                Err(message) => Some(message),
            }
        } else {
            None
        };
        Some(Err(self.failure(tag, body, decode_error)))
    }

    /// The error a non-value record stands for.
    #[cold]
    fn failure(&mut self, tag: u8, body: &'a [u8], decode_error: Option<String>) -> Error {
        let task = self.task.to_string();
        let parsed = match (decode_error, tag) {
            (Some(message), _) => Err(message),
            (None, REC_PANIC) => codec::decode_prefix::<PanicReport>(body).map(|(report, used)| {
                let error = Error::Panic {
                    task: task.clone(),
                    message: report.message,
                    location: report.location,
                    backtrace: report.backtrace,
                };
                (error, used)
            }),
            (None, REC_UNENCODABLE) => {
                codec::decode_prefix::<String>(body).map(|(message, used)| {
                    let error = Error::Encode {
                        task: task.clone(),
                        what: "result",
                        message,
                    };
                    (error, used)
                })
            }
            (None, other) => Err(format!("unknown record tag {other}")),
        };
        match parsed {
            Ok((error, used)) => {
                self.rest = &body[used..];
                error
            }
            Err(message) => {
                self.rest = &[];
                Error::Decode {
                    task,
                    what: "result",
                    message,
                }
            }
        }
    }
}

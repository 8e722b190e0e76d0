//! A chunk of a map, both sides of it: one frame carries many items, the
//! worker runs them all (each under its own panic guard) and answers with
//! one frame of per-item outcomes.
//!
//! A chunk's items (the `args` of a CALL_BATCH) are the bincode encodings of
//! each call's arguments, back to back after a `u32` count. The RESULTS
//! reply body is `count u32 | all_values u8 | records`, one record per item
//! in order:
//!
//! ```text
//! 0 | bincode(value)          the function returned
//! 1 | bincode(PanicReport)    it panicked (the other items still ran)
//! 2 | bincode(String)         its value could not be encoded
//! ```
//!
//! `all_values` is 1 when every record is a value.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::result::Outcome;
use crate::task::{ArgsDecoder, CallError, EncodeItem};
use crate::wire::PanicReport;
use crate::{codec, worker};

const REC_VALUE: u8 = 0;
const REC_PANIC: u8 = 1;
const REC_UNENCODABLE: u8 = 2;

/// Encodes up to `size` items from `items` as one chunk, ending it early
/// once it holds `max_bytes`; `None` when the input is exhausted. Returns the
/// bytes (or why they could not be made) and the number of items taken.
pub(crate) fn next_chunk<M: EncodeItem<I::Item>, I: Iterator>(
    items: &mut I,
    size: usize,
    max_bytes: usize,
) -> Option<(Result<Vec<u8>, String>, usize)> {
    let first = items.next()?;
    let size = size.min(u32::MAX as usize);
    let mut bytes = vec![0; 4];
    let mut encoded = M::encode_item(first, &mut bytes);
    // Room for the rest, guessed from the first item (at most 16 MiB ahead).
    let guess = (bytes.len() - 4).saturating_mul(size - 1);
    bytes.reserve(guess.min(16 << 20).min(max_bytes));
    let mut taken = 1;
    while taken < size && bytes.len() < max_bytes {
        let Some(item) = items.next() else { break };
        if encoded.is_ok() {
            encoded = M::encode_item(item, &mut bytes);
        }
        // After a failure, still take the chunk's items: they all fail with it.
        taken += 1;
    }
    let bytes = encoded.map(|()| {
        bytes[..4].copy_from_slice(&(taken as u32).to_le_bytes());
        bytes
    });
    Some((bytes, taken))
}

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
        match worker::panic::guard(|| call(item)) {
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
/// Decodes one chunk's outcome into `out`, one entry per item sent: a
/// failure of the whole chunk (its worker died, the pool was terminated)
/// fails each of its items.
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    task: &str,
    outcome: &Outcome,
    sent: usize,
    out: &mut impl Extend<Result<R, Error>>,
) {
    let records = match outcome {
        // A chunk's RESULTS reply never has a tail.
        Ok(body) => records(task, body.head(), sent).map(|(records, _)| records),
        Err(e) => Err(e.clone()),
    };
    match records {
        Ok(records) => {
            let mut records = Records::new(task, records);
            let mut left = sent;
            while left > 0 {
                let Some(item) = records.next::<R>() else {
                    break;
                };
                out.extend(Some(item));
                left -= 1;
            }
            if left > 0 {
                let error = Error::Protocol {
                    task: task.to_string(),
                    message: format!("a chunk's reply ended {left} results early"),
                };
                out.extend(std::iter::repeat_n(error, left).map(Err));
            }
        }
        Err(error) => out.extend(std::iter::repeat_n(error, sent).map(Err)),
    }
}

//! Reading a chunk's RESULTS body back, the caller's side: its records, or
//! its dense values, into each item's outcome (the format is in
//! [`crate::chunk`]).

use serde::de::DeserializeOwned;

use super::{
    split_count, value_of, DENSE_VALUES, REC_PANIC, REC_UNDECODABLE, REC_UNENCODABLE, REC_UNSENT,
    REC_VALUE, SHORT_VALUE,
};
use crate::codec;
use crate::error::Error;
use crate::result::Outcome;
use crate::wire::PanicReport;

/// A chunk's RESULTS body, as the caller reads it.
pub(crate) enum Body<'b> {
    /// One record per item; `all_values` when every record is a value.
    Records { records: &'b [u8], all_values: bool },
    /// Every item's value, a number of kind `code` in the dense form.
    Dense { code: u8, numbers: &'b [u8] },
}

/// Caller side: one chunk's RESULTS body, its count checked against the
/// number of items sent.
pub(crate) fn body<'b>(task: &str, body: &'b [u8], sent: usize) -> Result<Body<'b>, Error> {
    let protocol = |message: String| Error::Protocol {
        task: task.to_string(),
        message,
    };
    let (count, rest) = split_count(body).map_err(protocol)?;
    let (&flag, records) = rest
        .split_first()
        .ok_or_else(|| protocol("a RESULTS reply without its flag".into()))?;
    if count as usize != sent {
        return Err(protocol(format!(
            "{sent} items were sent, {count} results came back"
        )));
    }
    if flag != DENSE_VALUES {
        return Ok(Body::Records {
            records,
            all_values: flag == 1,
        });
    }
    let Some((&code, numbers)) = records.split_first() else {
        return Err(protocol("dense values without their kind".into()));
    };
    match codec::dense::kind_of(code) {
        Some(kind) if Some(numbers.len()) == sent.checked_mul(kind.width) => {
            Ok(Body::Dense { code, numbers })
        }
        Some(kind) => Err(protocol(format!(
            "{} bytes of dense values for {sent} values of {} bytes",
            numbers.len(),
            kind.width
        ))),
        None => Err(protocol(format!("dense values of unknown kind {code}"))),
    }
}

/// Caller side: the `sent` values of a chunk's RESULTS body onto `out`, or
/// the first error among them.
pub(crate) fn decode_body<R: DeserializeOwned + 'static>(
    task: &str,
    bytes: &[u8],
    sent: usize,
    out: &mut Vec<R>,
) -> Result<(), Error> {
    let (records, all_values) = match body(task, bytes, sent)? {
        Body::Dense { code, numbers } => {
            return codec::dense::extend(code, numbers, sent, out)
                .map_err(|message| undecodable(task, message))
        }
        Body::Records {
            records,
            all_values,
        } => (records, all_values),
    };
    let before = out.len();
    // Every record a value: all decoded in one pass. Else (or if one does
    // not decode) one by one, which finds the first failure and its error.
    if all_values && decode_values(records, sent, out).is_ok() {
        return Ok(());
    }
    out.truncate(before);
    let mut records = Records::new(task, records);
    for _ in 0..sent {
        match records.next::<R>() {
            Some(item) => out.push(item?),
            None => {
                return Err(Error::Protocol {
                    task: task.to_string(),
                    message: "a chunk's reply ended early".into(),
                })
            }
        }
    }
    Ok(())
}

/// Caller side: decodes `sent` records that are all values (the reply's
/// `all_values` flag) onto `out` in one pass; `Err` (with some values
/// appended) if one is not, or does not decode.
fn decode_values<R: DeserializeOwned + 'static>(
    records: &[u8],
    sent: usize,
    out: &mut Vec<R>,
) -> Result<(), String> {
    // Blocks of bytes are read one record at a time, each as one block.
    if crate::task::is_block::<R>() {
        return Err("blocks are read one by one".to_string());
    }
    let used =
        codec::caller_side(|| codec::decode_records(records, sent, SHORT_VALUE, REC_VALUE, out))?;
    // The lengths are not checked on this path: every byte used, or the
    // walk one by one (which checks them) decides.
    if used == records.len() {
        Ok(())
    } else {
        Err(format!("{} bytes left over", records.len() - used))
    }
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

    /// The next item's outcome; `None` at the end. A value that does not
    /// decode fails alone (its length says where the next record begins);
    /// a record that cannot be read ends the walk with an error (the rest
    /// cannot be found).
    #[inline]
    pub(crate) fn next<R: DeserializeOwned + 'static>(&mut self) -> Option<Result<R, Error>> {
        let (&tag, body) = self.rest.split_first()?;
        // The hot path: a value, decoded in place (no error built or moved).
        let unreadable = match value_of(tag, body) {
            Some(Ok((value, rest))) => {
                self.rest = rest;
                return Some(
                    codec::caller_side(|| crate::task::decode_value::<R>(value))
                        .map_err(|message| self.undecodable(message)),
                );
            }
            Some(Err(message)) => Some(message),
            None => None,
        };
        Some(Err(self.failure(tag, body, unreadable)))
    }

    #[cold]
    fn undecodable(&self, message: String) -> Error {
        Error::Decode {
            task: self.task.to_string(),
            what: "result",
            message,
        }
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
            (None, tag @ (REC_UNENCODABLE | REC_UNSENT | REC_UNDECODABLE)) => {
                codec::decode_prefix::<String>(body).map(|(message, used)| {
                    let task = task.clone();
                    let error = match tag {
                        REC_UNENCODABLE => Error::Encode {
                            task,
                            what: "result",
                            message,
                        },
                        REC_UNSENT => Error::Encode {
                            task,
                            what: "arguments",
                            message,
                        },
                        _ => Error::Decode {
                            task,
                            what: "arguments",
                            message,
                        },
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
pub(crate) fn decode_chunk<R: DeserializeOwned + 'static>(
    task: &str,
    outcome: &Outcome,
    sent: usize,
    out: &mut impl Extend<Result<R, Error>>,
) {
    let fail_all = |out: &mut dyn FnMut(Result<R, Error>), error: Error| {
        (0..sent).for_each(|_| out(Err(error.clone())))
    };
    let mut push = |item| out.extend(Some(item));
    // A chunk's RESULTS reply never has a tail.
    let bytes = match outcome {
        Ok(bytes) => bytes.head(),
        Err(error) => return fail_all(&mut push, error.clone()),
    };
    match body(task, bytes, sent) {
        Ok(Body::Dense { code, numbers }) => {
            let mut values = Vec::with_capacity(sent);
            match codec::dense::extend(code, numbers, sent, &mut values) {
                Ok(()) => values.into_iter().for_each(|value| push(Ok(value))),
                Err(message) => fail_all(&mut push, undecodable(task, message)),
            }
        }
        Ok(Body::Records { records, .. }) => {
            let mut records = Records::new(task, records);
            let mut left = sent;
            while left > 0 {
                let Some(item) = records.next::<R>() else {
                    break;
                };
                push(item);
                left -= 1;
            }
            if left > 0 {
                let error = Error::Protocol {
                    task: task.to_string(),
                    message: format!("a chunk's reply ended {left} results early"),
                };
                (0..left).for_each(|_| push(Err(error.clone())));
            }
        }
        Err(error) => fail_all(&mut push, error),
    }
}

/// A result the caller could not decode: why.
#[cold]
fn undecodable(task: &str, message: String) -> Error {
    Error::Decode {
        task: task.to_string(),
        what: "result",
        message,
    }
}

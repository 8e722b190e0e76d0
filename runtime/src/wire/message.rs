//! The messages on the task channel, one per frame (see [`super::frame`]).
//!
//! Message layouts (all integers little-endian):
//!
//! ```text
//! parent → worker   CALL        1 | id u64 | fingerprint u64 | name_len u16 | name | args
//!                   SHUTDOWN    2
//!                   CALL_BATCH  3 | id u64 | fingerprint u64 | name_len u16 | name | chunk
//! worker → parent   HELLO      10 | pid u32
//!                   VALUE      11 | id u64 | result bytes
//!                   PANIC      12 | id u64 | bincode(PanicReport)
//!                   FAILED     13 | id u64 | bincode(RemoteError)
//!                   FATAL      14 | bincode(String)   (worker exits after it)
//!                   RESULTS    15 | id u64 | chunk results
//! ```
//!
//! A CALL_BATCH carries a chunk of a map and its RESULTS reply the chunk's
//! per-item outcomes; both layouts are in [`crate::map::chunk`].

use serde::{Deserialize, Serialize};

use crate::codec;

const TAG_CALL: u8 = 1;
const TAG_SHUTDOWN: u8 = 2;
const TAG_CALL_BATCH: u8 = 3;
const TAG_HELLO: u8 = 10;
const TAG_VALUE: u8 = 11;
const TAG_PANIC: u8 = 12;
const TAG_FAILED: u8 = 13;
const TAG_FATAL: u8 = 14;
const TAG_RESULTS: u8 = 15;

/// A request from the parent, borrowing the frame it was read from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// Run the task registered as `name` on `args`.
    Call {
        id: u64,
        fingerprint: u64,
        name: &'a str,
        args: &'a [u8],
    },
    /// Run the task registered as `name` on each item of a chunk (`items`
    /// starts with the count).
    CallBatch {
        id: u64,
        fingerprint: u64,
        name: &'a str,
        items: &'a [u8],
    },
    /// Finish and exit.
    Shutdown,
}

/// A task's panic, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PanicReport {
    pub(crate) message: String,
    pub(crate) location: String,
    pub(crate) backtrace: Option<String>,
}

/// A failure the worker detected before or after running the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RemoteError {
    UnknownTask {
        suggestions: Vec<String>,
    },
    DuplicateTask {
        first: String,
        second: String,
    },
    SignatureMismatch {
        worker_signature: String,
    },
    DecodeArgs(String),
    EncodeResult(String),
    /// The encoded result needs a frame of `len` bytes, over the limit `max`.
    ResultTooLarge {
        len: u64,
        max: u64,
    },
}

/// Bytes at the end of an owned buffer: a reply's result, left where the
/// frame was read instead of being copied out of it.
#[derive(Clone, Default)]
pub(crate) struct Body {
    buf: Vec<u8>,
    start: usize,
}

impl Body {
    /// The bytes of `buf` from `start` on.
    fn tail(buf: Vec<u8>, start: usize) -> Body {
        debug_assert!(start <= buf.len());
        Body { buf, start }
    }
}

impl Body {
    /// The whole buffer, for reuse.
    pub(crate) fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

impl From<Vec<u8>> for Body {
    fn from(buf: Vec<u8>) -> Body {
        Body { buf, start: 0 }
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        **self == **other
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({} bytes)", self.len())
    }
}

/// A message from a worker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The worker is up and ready for tasks.
    Hello { pid: u32 },
    /// Task `id` returned; these are its encoded result bytes.
    Value { id: u64, bytes: Body },
    /// Task `id` panicked.
    Panic { id: u64, report: PanicReport },
    /// Task `id` could not be run or its result not sent.
    Failed { id: u64, error: RemoteError },
    /// The worker cannot go on (it exits right after sending this).
    Fatal { message: String },
    /// Batch `id` ran; `bytes` are its count, flag and records.
    Results { id: u64, bytes: Vec<u8> },
}

/// The longest task name a call can carry (its length is a `u16`).
pub(crate) const MAX_NAME_LEN: usize = u16::MAX as usize;
/// The smallest frame limit a pool accepts: room for a call header, a short
/// result and a cut-down panic report.
pub(crate) const MIN_MAX_FRAME: usize = 1024;

/// Encodes a call's header; the arguments follow it in the same frame.
/// (Callers refuse names over [`MAX_NAME_LEN`]; one is cut, never sent whole.)
pub(crate) fn call_header(id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    header(TAG_CALL, id, fingerprint, name)
}

/// Encodes a batch's header; the count and items follow it in the same frame.
pub(crate) fn batch_header(id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    header(TAG_CALL_BATCH, id, fingerprint, name)
}

/// The start of a RESULTS reply body; the worker appends count, flag and
/// records to it.
pub(crate) fn results_header(id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(TAG_RESULTS);
    out.extend_from_slice(&id.to_le_bytes());
    out
}

fn header(tag: u8, id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + name.len());
    append_header(&mut out, tag == TAG_CALL_BATCH, id, fingerprint, name);
    out
}

/// Appends a call's header (a chunk's if `chunk`) to `out`: many headers
/// can share one buffer.
pub(crate) fn append_header(out: &mut Vec<u8>, chunk: bool, id: u64, fingerprint: u64, name: &str) {
    let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let name = &name.as_bytes()[..usize::from(name_len)];
    out.push(if chunk { TAG_CALL_BATCH } else { TAG_CALL });
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(name);
}

/// The start of a VALUE reply; the result bytes follow it in the same frame.
pub(crate) fn value_header(id: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = TAG_VALUE;
    out[1..].copy_from_slice(&id.to_le_bytes());
    out
}

/// The body of a shutdown frame.
pub(crate) fn shutdown_message() -> [u8; 1] {
    [TAG_SHUTDOWN]
}

/// Parses a request. Never panics, whatever the bytes.
pub(crate) fn parse_request(frame: &[u8]) -> Result<Request<'_>, String> {
    let mut cur = Cursor(frame);
    match cur.u8()? {
        tag @ (TAG_CALL | TAG_CALL_BATCH) => {
            let id = cur.u64()?;
            let fingerprint = cur.u64()?;
            let name_len = usize::from(cur.u16()?);
            let name = std::str::from_utf8(cur.take(name_len)?)
                .map_err(|_| "task name is not UTF-8".to_string())?;
            Ok(if tag == TAG_CALL {
                Request::Call {
                    id,
                    fingerprint,
                    name,
                    args: cur.0,
                }
            } else {
                Request::CallBatch {
                    id,
                    fingerprint,
                    name,
                    items: cur.0,
                }
            })
        }
        TAG_SHUTDOWN if cur.0.is_empty() => Ok(Request::Shutdown),
        tag => Err(format!(
            "unexpected request tag {tag} in a {}-byte frame",
            frame.len()
        )),
    }
}

/// Encodes a reply into one frame body.
pub(crate) fn encode_reply(reply: &Reply) -> Vec<u8> {
    fn tagged(tag: u8, id: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + body.len());
        out.push(tag);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(body);
        out
    }
    match reply {
        Reply::Hello { pid } => {
            let mut out = vec![TAG_HELLO];
            out.extend_from_slice(&pid.to_le_bytes());
            out
        }
        Reply::Value { id, bytes } => tagged(TAG_VALUE, *id, bytes),
        Reply::Panic { id, report } => tagged(TAG_PANIC, *id, &codec::encode_meta(report)),
        Reply::Failed { id, error } => tagged(TAG_FAILED, *id, &codec::encode_meta(error)),
        Reply::Fatal { message } => {
            let mut out = vec![TAG_FATAL];
            out.extend_from_slice(&codec::encode_meta(message));
            out
        }
        Reply::Results { id, bytes } => tagged(TAG_RESULTS, *id, bytes),
    }
}

/// Parses a reply, keeping a result's bytes in `frame`. Never panics,
/// whatever the bytes.
pub(crate) fn parse_reply(frame: Vec<u8>) -> Result<Reply, String> {
    let mut cur = Cursor(&frame);
    let tag = cur.u8()?;
    match tag {
        TAG_HELLO => {
            let pid = cur.u32()?;
            cur.end()?;
            Ok(Reply::Hello { pid })
        }
        TAG_FATAL => Ok(Reply::Fatal {
            message: codec::decode_meta(cur.0)?,
        }),
        TAG_RESULTS => {
            let id = cur.u64()?;
            Ok(Reply::Results {
                id,
                bytes: cur.0.to_vec(),
            })
        }
        TAG_VALUE => {
            let id = cur.u64()?;
            Ok(Reply::Value {
                id,
                bytes: Body::tail(frame, 9),
            })
        }
        TAG_PANIC => Ok(Reply::Panic {
            id: cur.u64()?,
            report: codec::decode_meta(cur.0)?,
        }),
        TAG_FAILED => Ok(Reply::Failed {
            id: cur.u64()?,
            error: codec::decode_meta(cur.0)?,
        }),
        tag => Err(format!(
            "unexpected reply tag {tag} in a {}-byte frame",
            frame.len()
        )),
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "frame cut short: needed {n} more bytes, had {}",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_round_trips() {
        let mut frame = call_header(7, 99, "a::b");
        frame.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse_request(&frame),
            Ok(Request::Call {
                id: 7,
                fingerprint: 99,
                name: "a::b",
                args: &[1, 2, 3]
            })
        );
    }

    #[test]
    fn batch_round_trips() {
        let mut frame = batch_header(8, 5, "a::c");
        frame.extend_from_slice(&[2, 0, 0, 0, 1, 2]);
        assert_eq!(
            parse_request(&frame),
            Ok(Request::CallBatch {
                id: 8,
                fingerprint: 5,
                name: "a::c",
                items: &[2, 0, 0, 0, 1, 2]
            })
        );
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Hello { pid: 42 },
            Reply::Value {
                id: 1,
                bytes: vec![9, 8].into(),
            },
            Reply::Panic {
                id: 2,
                report: PanicReport {
                    message: "boom".into(),
                    location: "x.rs:1:2".into(),
                    backtrace: None,
                },
            },
            Reply::Failed {
                id: 3,
                error: RemoteError::UnknownTask {
                    suggestions: vec!["a".into()],
                },
            },
            Reply::Fatal {
                message: "bad".into(),
            },
            Reply::Results {
                id: 4,
                bytes: vec![1, 0, 0, 0, 1, 0, 7],
            },
        ];
        for reply in replies {
            assert_eq!(parse_reply(encode_reply(&reply)), Ok(reply));
        }
    }

    #[test]
    fn a_huge_announced_length_inside_a_reply_is_an_error() {
        // Found by the property test: bincode reserved the announced length
        // of the panic message (u64::MAX) and panicked.
        let mut frame = vec![TAG_PANIC];
        frame.extend_from_slice(&7u64.to_le_bytes());
        frame.push(253); // varint marker: a u64 follows
        frame.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_reply(frame.clone()).is_err());
        frame[9..].copy_from_slice(&[253, 0, 0, 0, 0, 1, 0, 0, 0]); // 4 GiB
        assert!(parse_reply(frame).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = parse_request(&bytes);
            let _ = parse_reply(bytes);
        }
    }
}

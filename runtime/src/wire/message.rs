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
//! per-item outcomes; both layouts are in [`crate::chunk`].

use serde::{Deserialize, Serialize};

mod body;

pub(crate) use body::Body;
use body::Repr;
#[cfg(test)]
use body::SMALL_BODY;

use super::Frame;
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
    /// Batch `id` ran; `bytes` are its count, flag and records (kept in
    /// the buffer the frame was read into, not copied out of it).
    Results { id: u64, bytes: Body },
}

/// The longest task name a call can carry (its length is a `u16`).
pub(crate) const MAX_NAME_LEN: usize = u16::MAX as usize;
/// The smallest frame limit a pool accepts: room for a call header, a short
/// result and a cut-down panic report.
pub(crate) const MIN_MAX_FRAME: usize = 1024;

/// How far a map's chunk (a CALL_BATCH, or its RESULTS reply) may go over
/// the frame limit: the bytes a chunk of one item takes beyond the same
/// call alone (the count and the item's length; in the reply the count,
/// the flag, the record's tag and the value's length), with room to spare.
/// The limit is thus a limit on a call as `apply` sends it, and a map of
/// one item fits wherever `apply` of it does. (Chunks of several items
/// stay far below it: see `crate::map::options::chunk_bytes`.)
pub(crate) const CHUNK_FRAMING: usize = 32;

/// How far a frame that starts with the byte `first` may go over the frame
/// limit: [`CHUNK_FRAMING`] for a chunk or its reply, else nothing.
pub(crate) fn frame_allowance(first: Option<u8>) -> usize {
    match first {
        Some(TAG_CALL_BATCH | TAG_RESULTS) => CHUNK_FRAMING,
        _ => 0,
    }
}

/// Encodes a call's header; the arguments follow it in the same frame.
/// (Callers refuse names over [`MAX_NAME_LEN`]; one is cut, never sent whole.)
pub(crate) fn call_header(id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + name.len());
    append_header(&mut out, false, id, fingerprint, name);
    out
}

/// The length of [`results_header`]: its tag and the call's id.
pub(crate) const RESULTS_HEADER_LEN: usize = 1 + 8;

/// The start of a RESULTS reply body; the worker appends count, flag and
/// records to it.
pub(crate) fn results_header(id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(TAG_RESULTS);
    out.extend_from_slice(&id.to_le_bytes());
    debug_assert_eq!(out.len(), RESULTS_HEADER_LEN);
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
        Reply::Value { id, bytes } => tagged(TAG_VALUE, *id, &bytes.contiguous()),
        Reply::Panic { id, report } => tagged(TAG_PANIC, *id, &codec::encode_meta(report)),
        Reply::Failed { id, error } => tagged(TAG_FAILED, *id, &codec::encode_meta(error)),
        Reply::Fatal { message } => {
            let mut out = vec![TAG_FATAL];
            out.extend_from_slice(&codec::encode_meta(message));
            out
        }
        Reply::Results { id, bytes } => tagged(TAG_RESULTS, *id, &bytes.contiguous()),
    }
}

/// Parses a reply, keeping a result's bytes in `frame`. Only a VALUE may
/// come as a split frame. Never panics, whatever the bytes.
pub(crate) fn parse_reply(frame: Frame) -> Result<Reply, String> {
    let Frame { head: frame, tail } = frame;
    let mut cur = Cursor(&frame);
    let tag = cur.u8()?;
    if !tail.is_empty() && tag != TAG_VALUE {
        return Err(format!(
            "a reply of tag {tag} came with a {}-byte tail",
            tail.len()
        ));
    }
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
                bytes: Body::after(frame, 9),
            })
        }
        TAG_VALUE => {
            let id = cur.u64()?;
            let bytes = match tail.is_empty() {
                true => Body::after(frame, 9),
                false => Body(Repr::Owned {
                    buf: frame,
                    start: 9,
                    tail,
                }),
            };
            Ok(Reply::Value { id, bytes })
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

/// Cuts the free-form texts of `failure` (`texts` lists them, always in
/// the same order) until `size` of it is at most `room`: each round holds
/// every text to half the last round's length (the longest text's at
/// first), cutting it from the text as it came, so that its note counts
/// every byte cut (a text cut again from what the last round left counted
/// that round's bytes only). A text the cut and its note would make no
/// shorter stays as it came. Ends when texts would be held under 16 bytes:
/// texts of a few bytes fit any frame limit the builder accepts. Rounds
/// cut all the texts at once, so a failure of many texts (a node's
/// thousands of suggestions) takes a few rounds, not one per text.
pub(crate) fn fit_texts<T>(
    failure: &mut T,
    texts: for<'a> fn(&'a mut T) -> Vec<&'a mut String>,
    size: impl Fn(&T) -> usize,
    room: usize,
) {
    if size(failure) <= room {
        return;
    }
    let originals: Vec<String> = texts(failure).into_iter().map(|t| t.clone()).collect();
    let mut keep = originals.iter().map(String::len).max().unwrap_or(0);
    loop {
        if keep <= 16 {
            return;
        }
        keep /= 2;
        for (text, original) in texts(failure).into_iter().zip(&originals) {
            if original.len() <= keep {
                continue;
            }
            let mut cut = original.clone();
            shorten(&mut cut, keep);
            if cut.len() < original.len() {
                *text = cut;
            }
        }
        if size(failure) <= room {
            return;
        }
    }
}

/// Cuts `text` to about `keep` bytes (on a char boundary) and says so.
pub(crate) fn shorten(text: &mut String, keep: usize) {
    let mut end = keep.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… ({cut} bytes cut to fit a frame)"));
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
        let mut frame = Vec::new();
        append_header(&mut frame, true, 8, 5, "a::c");
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
                bytes: vec![1, 0, 0, 0, 1, 0, 7].into(),
            },
        ];
        for reply in replies {
            assert_eq!(parse_reply(Frame::plain(encode_reply(&reply))), Ok(reply));
        }
    }

    #[test]
    fn values_of_every_size_around_the_small_limit_arrive_whole() {
        for len in [0, 1, SMALL_BODY - 1, SMALL_BODY, SMALL_BODY + 1, 1000] {
            let value: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let reply = Reply::Value {
                id: 7,
                bytes: value.clone().into(),
            };
            let _ = crate::buffers::small_buffer();
            let parsed = parse_reply(Frame::plain(encode_reply(&reply))).unwrap();
            let Reply::Value { id: 7, bytes } = parsed else {
                panic!("not a value: {parsed:?}");
            };
            assert_eq!(
                (bytes.head(), bytes.tail(), bytes.len()),
                (&value[..], &[][..], len)
            );
            // A small result is copied out and the frame's buffer kept for
            // the next frame; a larger one stays in the frame's buffer.
            let kept = crate::buffers::small_buffer().capacity() > 0;
            assert_eq!(kept, len <= SMALL_BODY, "{len} bytes");
        }
    }

    #[test]
    fn a_result_never_holds_a_buffer_much_larger_than_itself() {
        // A frame read into a large buffer the thread had kept: the result
        // is copied out, and the buffer goes back to the thread.
        let mut frame = Vec::with_capacity(60_000);
        frame.extend_from_slice(&[7u8; 109]);
        let _ = crate::buffers::small_buffer();
        let body = Body::after(frame, 9);
        assert_eq!(body.head(), &[7u8; 100][..]);
        let [head, tail] = body.into_bufs();
        assert_eq!((head.capacity(), tail.capacity()), (100, 0));
        assert_eq!(crate::buffers::small_buffer().capacity(), 60_000);
        // A buffer about its size is kept with it (no copy).
        let mut frame = Vec::with_capacity(1200);
        frame.extend_from_slice(&[8u8; 1000]);
        let at = frame.as_ptr();
        let body = Body::after(frame, 9);
        assert_eq!(body.len(), 991);
        assert_eq!(body.into_bufs()[0].as_ptr(), at);
    }

    #[test]
    fn a_value_may_come_split_and_nothing_else() {
        let block = vec![5u8; 70_000];
        let mut head = encode_reply(&Reply::Value {
            id: 3,
            bytes: Vec::new().into(),
        });
        codec::encode_len(block.len(), &mut head);
        let frame = Frame {
            head: head.clone(),
            tail: block.clone(),
        };
        let Ok(Reply::Value { id: 3, bytes }) = parse_reply(frame) else {
            panic!("not a value")
        };
        assert_eq!(bytes.len(), 70_000 + head.len() - 9);
        assert_eq!(bytes.into_byte_block().unwrap(), block);
        // A tail that is not the block its head announces decodes as a
        // whole, or fails; it is never taken as it is.
        let mut short = head.clone();
        short.truncate(9);
        codec::encode_len(3, &mut short);
        let odd = parse_reply(Frame {
            head: short,
            tail: block.clone(),
        });
        let Ok(Reply::Value { bytes, .. }) = odd else {
            panic!("not a value")
        };
        assert!(bytes.into_byte_block().is_err());
        let hello = Frame {
            head: encode_reply(&Reply::Hello { pid: 1 }),
            tail: vec![1],
        };
        assert!(parse_reply(hello).is_err());
    }

    #[test]
    fn a_huge_announced_length_inside_a_reply_is_an_error() {
        // Found by the property test: bincode reserved the announced length
        // of the panic message (u64::MAX) and panicked.
        let mut frame = vec![TAG_PANIC];
        frame.extend_from_slice(&7u64.to_le_bytes());
        frame.push(253); // varint marker: a u64 follows
        frame.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_reply(Frame::plain(frame.clone())).is_err());
        frame[9..].copy_from_slice(&[253, 0, 0, 0, 0, 1, 0, 0, 0]); // 4 GiB
        assert!(parse_reply(Frame::plain(frame)).is_err());
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
            let _ = parse_reply(Frame::plain(bytes));
        }
    }
}

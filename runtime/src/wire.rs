//! Frames and messages on the task channel.
//!
//! A frame is a little-endian `u32` length followed by that many bytes. A
//! reader checks the length against a limit before reading, and grows its
//! buffer only as bytes actually arrive, so a bogus length can neither make it
//! allocate the announced size nor wait for bytes that never come (the peer's
//! death ends the read with end-of-file).
//!
//! Message layouts (all integers little-endian):
//!
//! ```text
//! parent → worker   CALL        1 | id u64 | fingerprint u64 | name_len u16 | name | args
//!                   SHUTDOWN    2
//!                   CALL_BATCH  3 | id u64 | fingerprint u64 | name_len u16 | name | count u32 | items
//! worker → parent   HELLO      10 | pid u32
//!                   VALUE      11 | id u64 | result bytes
//!                   PANIC      12 | id u64 | bincode(PanicReport)
//!                   FAILED     13 | id u64 | bincode(RemoteError)
//!                   FATAL      14 | bincode(String)   (worker exits after it)
//!                   RESULTS    15 | id u64 | count u32 | all_values u8 | records
//! ```
//!
//! A CALL_BATCH carries `count` items, each the bincode encoding of one call's
//! arguments, back to back. Its RESULTS reply holds one record per item, in
//! order (see [`crate::batch`]): `0 | bincode(value)`, `1 | bincode(PanicReport)`
//! or `2 | bincode(String)` (the value could not be encoded). `all_values` is 1
//! when every record is a value.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};

use serde::{Deserialize, Serialize};

/// Default upper bound of one frame: large enough for big payloads, small
/// enough that a corrupt length cannot make either side allocate gigabytes.
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;

const TAG_CALL: u8 = 1;
const TAG_SHUTDOWN: u8 = 2;
const TAG_CALL_BATCH: u8 = 3;
const TAG_HELLO: u8 = 10;
const TAG_VALUE: u8 = 11;
const TAG_PANIC: u8 = 12;
const TAG_FAILED: u8 = 13;
const TAG_FATAL: u8 = 14;
const TAG_RESULTS: u8 = 15;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the channel cleanly between frames.
    Closed,
    /// The channel ended in the middle of a frame.
    Truncated { expected: usize, got: usize },
    /// The announced length is over the limit.
    TooLarge { len: usize, max: usize },
    /// The read timed out (only with a read timeout set).
    TimedOut,
    /// Any other I/O failure.
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("the channel is closed"),
            FrameError::Truncated { expected, got } => {
                write!(f, "a frame was cut short after {got} of {expected} bytes")
            }
            FrameError::TooLarge { len, max } => {
                write!(f, "a frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::TimedOut => f.write_str("timed out"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Frames up to this size are copied into one stack buffer and written with
/// one call; larger ones go out vectored, without concatenating their parts.
const SMALL_FRAME: usize = 512;

/// Buffers at least this large are worth keeping for reuse (see [`recycle`]).
const SPARE_MIN: usize = 1 << 20;

/// Writes one frame made of `parts`, concatenated.
pub fn write_frame(w: &mut impl Write, parts: &[&[u8]], max: usize) -> Result<(), FrameError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > max || u32::try_from(len).is_err() {
        return Err(FrameError::TooLarge { len, max });
    }
    let header = (len as u32).to_le_bytes();
    if len + header.len() <= SMALL_FRAME {
        let mut buf = [0u8; SMALL_FRAME];
        buf[..4].copy_from_slice(&header);
        let mut at = 4;
        for part in parts {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        return w.write_all(&buf[..at]).map_err(FrameError::Io);
    }
    let mut slices: Vec<IoSlice<'_>> = std::iter::once(&header[..])
        .chain(parts.iter().copied())
        .filter(|p| !p.is_empty())
        .map(IoSlice::new)
        .collect();
    write_all_vectored(w, &mut slices).map_err(FrameError::Io)
}

/// Appends one frame made of `parts` to `out`, for writing several frames
/// at once.
pub fn append_frame(out: &mut Vec<u8>, parts: &[&[u8]], max: usize) -> Result<(), FrameError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > max || u32::try_from(len).is_err() {
        return Err(FrameError::TooLarge { len, max });
    }
    out.reserve(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(())
}

fn write_all_vectored(w: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match w.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The most a reader reserves ahead of the bytes that actually arrived.
const READ_CHUNK: usize = 64 << 10;

/// Reads one frame, refusing any longer than `max` bytes.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::new();
    read_frame_into(r, max, &mut body)?;
    Ok(body)
}

/// [`read_frame`] into `body` (cleared first), which keeps whatever arrived
/// when it fails, so tests can check what it reserved.
fn read_frame_into(r: &mut impl Read, max: usize, body: &mut Vec<u8>) -> Result<(), FrameError> {
    body.clear();
    let mut header = [0u8; 4];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < header.len() {
        return Err(FrameError::Truncated {
            expected: header.len(),
            got,
        });
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    // A large spare buffer this thread already has is used as it is.
    if len > READ_CHUNK && body.capacity() < len {
        if let Some(spare) = spare_buffer(len) {
            *body = spare;
        }
    }
    // Otherwise grows with the bytes that arrive instead of trusting `len`
    // up front: the buffer never holds more than
    // `min(len, received + max(READ_CHUNK, received))` bytes, so a bogus
    // length costs at most one chunk, and a real large frame a handful of
    // (geometric) reallocations.
    let mut filled = 0;
    while filled < len {
        if body.capacity() == filled {
            let ahead = READ_CHUNK.max(filled);
            body.reserve_exact(ahead.min(len - filled));
            if ahead >= 2 << 20 {
                crate::sys::advise_huge_pages(body);
            }
        }
        let want = (body.capacity() - filled).min(len - filled);
        let got = read_into(r, body, want)?;
        filled += got;
        if got < want {
            return Err(FrameError::Truncated {
                expected: len,
                got: filled,
            });
        }
    }
    Ok(())
}

/// How many large buffers a thread keeps for reuse.
const SPARES: usize = 2;

thread_local! {
    /// Large buffers this thread no longer needs, kept for the next large
    /// frames it reads or results it encodes (a fresh buffer costs a page
    /// fault per 4 KiB).
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `buf` (if large) for reuse by this thread: at most two, the largest
/// offered.
pub fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() < SPARE_MIN {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        spare.push(buf);
        spare.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
        spare.truncate(SPARES);
    });
}

/// A spare buffer of at least `min` bytes' capacity (the smallest that
/// fits), if this thread has one; any spare if `min` is zero.
pub fn spare_buffer(min: usize) -> Option<Vec<u8>> {
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        let at = spare.iter().rposition(|b| b.capacity() >= min)?;
        Some(spare.remove(at))
    })
}

/// Appends up to `n` bytes to `buf` (which has room for them); stops early
/// only at end of file.
fn read_into(r: &mut impl Read, buf: &mut Vec<u8>, n: usize) -> Result<usize, FrameError> {
    r.take(n as u64).read_to_end(buf).map_err(io_to_frame)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_to_frame(e)),
        }
    }
    Ok(filled)
}

fn io_to_frame(e: io::Error) -> FrameError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::TimedOut,
        _ => FrameError::Io(e),
    }
}

/// A request from the parent, borrowing the frame it was read from.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
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
pub struct PanicReport {
    pub message: String,
    pub location: String,
    pub backtrace: Option<String>,
}

/// A failure the worker detected before or after running the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteError {
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
pub struct Body {
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
    pub fn into_buf(self) -> Vec<u8> {
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
pub enum Reply {
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
pub const MAX_NAME_LEN: usize = u16::MAX as usize;
/// The smallest frame limit a pool accepts: room for a call header, a short
/// result and a cut-down panic report.
pub const MIN_MAX_FRAME: usize = 1024;

/// Encodes a call's header; the arguments follow it in the same frame.
/// (Callers refuse names over [`MAX_NAME_LEN`]; one is cut, never sent whole.)
pub fn call_header(id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    header(TAG_CALL, id, fingerprint, name)
}

/// Encodes a batch's header; the count and items follow it in the same frame.
pub fn batch_header(id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    header(TAG_CALL_BATCH, id, fingerprint, name)
}

/// The start of a RESULTS reply body; the worker appends count, flag and
/// records to it.
pub fn results_header(id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(TAG_RESULTS);
    out.extend_from_slice(&id.to_le_bytes());
    out
}

fn header(tag: u8, id: u64, fingerprint: u64, name: &str) -> Vec<u8> {
    let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let name = &name.as_bytes()[..usize::from(name_len)];
    let mut out = Vec::with_capacity(19 + name.len());
    out.push(tag);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(name);
    out
}

/// The start of a VALUE reply; the result bytes follow it in the same frame.
pub fn value_header(id: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = TAG_VALUE;
    out[1..].copy_from_slice(&id.to_le_bytes());
    out
}

/// The body of a shutdown frame.
pub fn shutdown_message() -> [u8; 1] {
    [TAG_SHUTDOWN]
}

/// Parses a request. Never panics, whatever the bytes.
pub fn parse_request(frame: &[u8]) -> Result<Request<'_>, String> {
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
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
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
        Reply::Panic { id, report } => tagged(TAG_PANIC, *id, &encode_meta(report)),
        Reply::Failed { id, error } => tagged(TAG_FAILED, *id, &encode_meta(error)),
        Reply::Fatal { message } => {
            let mut out = vec![TAG_FATAL];
            out.extend_from_slice(&encode_meta(message));
            out
        }
        Reply::Results { id, bytes } => tagged(TAG_RESULTS, *id, bytes),
    }
}

/// Parses a reply, keeping a result's bytes in `frame`. Never panics,
/// whatever the bytes.
pub fn parse_reply(frame: Vec<u8>) -> Result<Reply, String> {
    let mut cur = Cursor(&frame);
    let tag = cur.u8()?;
    match tag {
        TAG_HELLO => {
            let pid = cur.u32()?;
            cur.end()?;
            Ok(Reply::Hello { pid })
        }
        TAG_FATAL => Ok(Reply::Fatal {
            message: decode_meta(cur.0)?,
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
            report: decode_meta(cur.0)?,
        }),
        TAG_FAILED => Ok(Reply::Failed {
            id: cur.u64()?,
            error: decode_meta(cur.0)?,
        }),
        tag => Err(format!(
            "unexpected reply tag {tag} in a {}-byte frame",
            frame.len()
        )),
    }
}

fn encode_meta<T: Serialize>(value: &T) -> Vec<u8> {
    // Only procpool's own plain structs go through here; they always encode.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

/// The most procpool's own messages (panic reports, error descriptions) may
/// claim when decoded: corrupt lengths fail instead of reserving gigabytes.
const META_LIMIT: usize = 64 << 20;

fn decode_meta<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<META_LIMIT>();
    match bincode::serde::decode_from_slice(bytes, config) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(format!(
            "{} trailing bytes after a reply",
            bytes.len() - used
        )),
        Err(e) => Err(format!("undecodable reply body: {e}")),
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
    fn frames_are_bounded_and_checked() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &[b"abc", b"de"], 16).unwrap();
        assert_eq!(read_frame(&mut &buf[..], 16).unwrap(), b"abcde");
        let mut appended = Vec::new();
        append_frame(&mut appended, &[b"abc", b"de"], 16).unwrap();
        assert_eq!(appended, buf);
        assert!(matches!(
            append_frame(&mut appended, &[b"abc"], 2),
            Err(FrameError::TooLarge { len: 3, max: 2 })
        ));
        assert!(matches!(
            read_frame(&mut &buf[..], 4),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        ));
        assert!(matches!(
            read_frame(&mut &buf[..6], 16),
            Err(FrameError::Truncated {
                expected: 5,
                got: 2
            })
        ));
        assert!(matches!(
            read_frame(&mut &buf[..2], 16),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(
            read_frame(&mut &[][..], 16),
            Err(FrameError::Closed)
        ));
        // A huge announced length with few bytes behind it fails without allocating it.
        let bogus = [0xff, 0xff, 0xff, 0x0f, 1, 2];
        assert!(matches!(
            read_frame(&mut &bogus[..], usize::MAX),
            Err(FrameError::Truncated { .. })
        ));
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

/// Property tests of the decoder: whatever the bytes, it returns an error
/// rather than panicking, and it never reserves more than the frame limit,
/// nor more than one chunk beyond the bytes that actually arrived.
/// `PROPTEST_CASES` sets the number of cases (default 256).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Reads with [`read_frame_into`] and checks what it reserved.
    fn decode_checked(bytes: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
        let mut body = Vec::new();
        let result = read_frame_into(&mut &bytes[..], max, &mut body);
        let received = bytes.len().saturating_sub(4);
        assert!(
            body.capacity() <= max,
            "reserved {} bytes over the limit {max}",
            body.capacity()
        );
        assert!(
            body.capacity() <= received + READ_CHUNK,
            "reserved {} bytes with only {received} received",
            body.capacity()
        );
        if let Ok(()) = &result {
            let _ = parse_request(&body);
            let _ = parse_reply(body.clone());
        }
        result.map(|()| body)
    }

    /// Any text, up to 40 characters (regex strategies need a feature we do
    /// not enable).
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter)
    }

    /// A valid frame: a call, or one of the replies.
    fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
        let call = (
            any::<u64>(),
            any::<u64>(),
            text(),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(id, fp, name, args)| {
                let mut body = call_header(id, fp, &name);
                body.extend_from_slice(&args);
                body
            });
        let reply = (
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            text(),
        )
            .prop_flat_map(|(id, bytes, text)| {
                prop_oneof![
                    Just(encode_reply(&Reply::Hello { pid: id as u32 })),
                    Just(encode_reply(&Reply::Value {
                        id,
                        bytes: bytes.into()
                    })),
                    Just(encode_reply(&Reply::Panic {
                        id,
                        report: PanicReport {
                            message: text.clone(),
                            location: text.clone(),
                            backtrace: Some(text.clone()),
                        },
                    })),
                    Just(encode_reply(&Reply::Failed {
                        id,
                        error: RemoteError::UnknownTask {
                            suggestions: vec![text.clone()],
                        },
                    })),
                    Just(encode_reply(&Reply::Fatal { message: text })),
                ]
            });
        prop_oneof![call, reply, Just(shutdown_message().to_vec())].prop_map(|body: Vec<u8>| {
            let mut frame = Vec::new();
            write_frame(&mut frame, &[&body], usize::MAX).unwrap();
            frame
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_or_overallocate(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            max in prop_oneof![Just(0usize), 1usize..1024, Just(DEFAULT_MAX_FRAME), Just(usize::MAX)],
        ) {
            let _ = decode_checked(&bytes, max);
        }

        #[test]
        fn valid_frames_round_trip(frame in valid_frame()) {
            let body = decode_checked(&frame, DEFAULT_MAX_FRAME).unwrap();
            prop_assert_eq!(&body[..], &frame[4..]);
        }

        #[test]
        fn mutated_frames_never_panic_or_overallocate(
            frame in valid_frame(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            max in prop_oneof![1usize..1024, Just(DEFAULT_MAX_FRAME)],
        ) {
            let mut frame = frame;
            for (at, byte) in flips {
                let i = at.index(frame.len());
                frame[i] ^= byte;
            }
            if truncate {
                frame.truncate(cut.index(frame.len() + 1));
            }
            let _ = decode_checked(&frame, max);
        }

        #[test]
        fn bogus_lengths_fail_without_reserving_them(
            len in any::<u32>(),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            max in prop_oneof![Just(DEFAULT_MAX_FRAME), Just(usize::MAX)],
        ) {
            let mut frame = len.to_le_bytes().to_vec();
            frame.extend_from_slice(&tail);
            match decode_checked(&frame, max) {
                Ok(body) => prop_assert_eq!(body.len(), len as usize),
                Err(FrameError::TooLarge { .. }) => prop_assert!(len as usize > max),
                Err(FrameError::Truncated { expected, got }) => {
                    prop_assert_eq!(expected, len as usize);
                    prop_assert!(got < expected);
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}

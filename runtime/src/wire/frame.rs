//! Frames: a little-endian `u32` length followed by that many bytes.
//!
//! A reader checks the length against a limit before reading, and grows its
//! buffer only as bytes actually arrive, so a bogus length can neither make it
//! allocate the announced size nor wait for bytes that never come (the peer's
//! death ends the read with end-of-file).

use std::io::{self, IoSlice, Read, Write};

use crate::buffers;

/// Default upper bound of one frame: large enough for big payloads, small
/// enough that a corrupt length cannot make either side allocate gigabytes.
pub(crate) const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer closed the channel cleanly between frames.
    Closed,
    /// The channel ended in the middle of a frame.
    Truncated { expected: usize, got: usize },
    /// The announced length is over the limit.
    TooLarge { len: usize, max: usize },
    /// The read timed out (only with a read timeout set).
    TimedOut,
    /// A frame began to arrive, then nothing more came for this long while
    /// the peer lived on.
    Stalled(std::time::Duration),
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
            FrameError::Stalled(after) => {
                write!(f, "a frame stopped arriving for {after:?} in the middle")
            }
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Frames up to this size are copied into one stack buffer and written with
/// one call; larger ones go out vectored, without concatenating their parts.
const SMALL_FRAME: usize = 512;

/// Writes one frame made of `parts`, concatenated.
pub(crate) fn write_frame(
    w: &mut impl Write,
    parts: &[&[u8]],
    max: usize,
) -> Result<(), FrameError> {
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
pub(crate) fn append_frame(
    out: &mut Vec<u8>,
    parts: &[&[u8]],
    max: usize,
) -> Result<(), FrameError> {
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
pub(crate) const READ_CHUNK: usize = 64 << 10;

/// Reads one frame, refusing any longer than `max` bytes.
pub(crate) fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::new();
    read_frame_into(r, max, &mut body)?;
    Ok(body)
}

/// [`read_frame`] into `body` (cleared first), which keeps whatever arrived
/// when it fails, so tests can check what it reserved.
pub(crate) fn read_frame_into(
    r: &mut impl Read,
    max: usize,
    body: &mut Vec<u8>,
) -> Result<(), FrameError> {
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
        if let Some(spare) = buffers::spare_buffer(len) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

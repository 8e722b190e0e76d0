//! Frames: what the task channel carries, one message each.
//!
//! ```text
//! plain frame   len u32 (< SPLIT_MARK) | body (len bytes)
//! split frame   SPLIT_MARK u32 | head_len u64 | tail_len u64 | head | tail
//! ```
//!
//! All integers are little-endian. A split frame carries a large block of
//! bytes (a `Vec<u8>` argument or result) as its tail, which the receiver
//! reads into a buffer of its own: the block then becomes the argument or
//! the result without another copy. A frame of 4 GiB or more is split too.
//!
//! A reader checks the announced length against its limit before it reads
//! anything else, and grows its buffers only as bytes actually arrive, so a
//! bogus length can make it neither allocate the announced size nor wait
//! for bytes that never come past the sender's death or a bounded stall
//! (see [`crate::shm::ring`]).

/// Default upper bound of one frame (head and tail together): the largest
/// plain frame, 4 GiB. It is a limit for the user to lower: the channel
/// streams frames of any size, and readers never trust a length.
pub(crate) const DEFAULT_MAX_FRAME: usize = SPLIT_MARK as usize - 1;

/// The length word that starts a split frame.
pub(crate) const SPLIT_MARK: u32 = u32::MAX;

/// One frame as received: its head, and the tail of a split frame (empty
/// for a plain one).
#[derive(Debug, Default)]
pub(crate) struct Frame {
    pub(crate) head: Vec<u8>,
    pub(crate) tail: Vec<u8>,
}

impl Frame {
    /// A plain frame of `head`.
    #[cfg(test)]
    pub(crate) fn plain(head: Vec<u8>) -> Frame {
        Frame {
            head,
            tail: Vec::new(),
        }
    }

    /// The frame's bytes in one buffer (copied only if it has a tail).
    pub(crate) fn into_contiguous(self) -> Vec<u8> {
        let Frame { mut head, tail } = self;
        if tail.is_empty() {
            return head;
        }
        head.extend_from_slice(&tail);
        head
    }
}

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
    /// the peer lived on (or the peer took in none of one being written).
    Stalled(std::time::Duration),
    /// The peer broke the channel's protocol (an impossible index in shared
    /// memory), or the frame cannot be held (no memory): nothing more can be
    /// read.
    Broken(String),
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
            FrameError::Broken(why) => f.write_str(why),
        }
    }
}

/// The most a reader reserves ahead of the bytes that actually arrived
/// (or as much again as arrived, whichever is more).
pub(crate) const READ_CHUNK: usize = 64 << 10;

/// Appends one frame made of `parts` and `tail` to `out`, laid out as on
/// the channel (for tests that write raw frames).
#[cfg(test)]
pub(crate) fn append_frame(out: &mut Vec<u8>, parts: &[&[u8]], tail: &[u8]) {
    let head: usize = parts.iter().map(|p| p.len()).sum();
    match u32::try_from(head) {
        Ok(len) if tail.is_empty() && len != SPLIT_MARK => {
            out.extend_from_slice(&len.to_le_bytes())
        }
        _ => {
            out.extend_from_slice(&SPLIT_MARK.to_le_bytes());
            out.extend_from_slice(&(head as u64).to_le_bytes());
            out.extend_from_slice(&(tail.len() as u64).to_le_bytes());
        }
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_split_layouts() {
        let mut out = Vec::new();
        append_frame(&mut out, &[b"abc", b"de"], &[]);
        assert_eq!(out, [5, 0, 0, 0, b'a', b'b', b'c', b'd', b'e']);
        out.clear();
        append_frame(&mut out, &[b"h"], b"tail");
        let mut expected = vec![0xff; 4];
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(b"htail");
        assert_eq!(out, expected);
        let frame = Frame {
            head: b"h".to_vec(),
            tail: b"tail".to_vec(),
        };
        assert_eq!(frame.into_contiguous(), b"htail");
        assert_eq!(Frame::plain(b"x".to_vec()).into_contiguous(), b"x");
    }
}

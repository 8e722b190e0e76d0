//! A reply's result bytes ([`Body`]): held in place when short, else kept
//! in the buffer the frame was read into, with a split frame's tail.

use crate::codec;

/// A reply's result: a few bytes held in place (most results: no buffer
/// made per reply, and the reading thread keeps its frame buffer), or the
/// bytes at the end of an owned buffer (where the frame was read, not
/// copied out of it), then, for a split frame, its tail (a large `Vec<u8>`
/// result, read into a buffer of its own).
#[derive(Clone)]
pub(crate) struct Body(pub(super) Repr);

#[derive(Clone)]
pub(super) enum Repr {
    Small {
        len: u8,
        bytes: [u8; SMALL_BODY],
    },
    Owned {
        buf: Vec<u8>,
        start: usize,
        tail: Vec<u8>,
    },
}

/// Results up to this long are held in the [`Body`] itself.
pub(super) const SMALL_BODY: usize = 46;

impl Default for Body {
    fn default() -> Body {
        Body::small(&[])
    }
}

impl Body {
    /// A copy of `bytes` (at most [`SMALL_BODY`] long).
    fn small(bytes: &[u8]) -> Body {
        debug_assert!(bytes.len() <= SMALL_BODY);
        let mut small = [0; SMALL_BODY];
        small[..bytes.len()].copy_from_slice(bytes);
        Body(Repr::Small {
            len: bytes.len() as u8,
            bytes: small,
        })
    }

    /// The bytes of `buf` from `start` on: copied out if they are few, or
    /// if `buf` is much larger than they are (a buffer the thread reused: a
    /// result never holds on to more memory than about twice its size), and
    /// then `buf` kept for this thread's next frame.
    pub(super) fn after(buf: Vec<u8>, start: usize) -> Body {
        debug_assert!(start <= buf.len());
        let body = if buf.len() - start <= SMALL_BODY {
            Body::small(&buf[start..])
        } else if buf.capacity() > 2 * buf.len() + 1024 {
            Body::split(buf[start..].to_vec(), Vec::new())
        } else {
            return Body(Repr::Owned {
                buf,
                start,
                tail: Vec::new(),
            });
        };
        crate::buffers::recycle(buf);
        body
    }

    /// `head`, then `tail`.
    pub(crate) fn split(head: Vec<u8>, tail: Vec<u8>) -> Body {
        Body(Repr::Owned {
            buf: head,
            start: 0,
            tail,
        })
    }

    /// The bytes before the tail.
    pub(crate) fn head(&self) -> &[u8] {
        match &self.0 {
            Repr::Small { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Owned { buf, start, .. } => &buf[*start..],
        }
    }

    /// The tail (empty unless the result came as a split frame).
    pub(crate) fn tail(&self) -> &[u8] {
        match &self.0 {
            Repr::Small { .. } => &[],
            Repr::Owned { tail, .. } => tail,
        }
    }

    /// The length of head and tail together.
    pub(crate) fn len(&self) -> usize {
        self.head().len() + self.tail().len()
    }

    /// All the bytes in one slice (a copy only if there is a tail).
    pub(crate) fn contiguous(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.tail().is_empty() {
            std::borrow::Cow::Borrowed(self.head())
        } else {
            std::borrow::Cow::Owned([self.head(), self.tail()].concat())
        }
    }

    /// The result as a byte block (a `Vec<u8>` result): the tail itself
    /// when the head is exactly its encoded length, else decoded.
    pub(crate) fn into_byte_block(self) -> Result<Vec<u8>, String> {
        if self.block().is_some() {
            let [_, tail] = self.into_bufs();
            return Ok(tail);
        }
        codec::decode::<codec::BytesIn>(&self.contiguous()).map(|b| b.0)
    }

    /// The block of bytes this is, if it came as one (the tail, with the
    /// head exactly its encoded length: a large `Vec<u8>` or `ByteBuf`).
    pub(crate) fn block(&self) -> Option<&[u8]> {
        let tail = self.tail();
        (!tail.is_empty() && codec::is_len_of(self.head(), tail.len())).then_some(tail)
    }

    /// The buffers, for reuse: the head's and the tail's (none if small).
    pub(crate) fn into_bufs(self) -> [Vec<u8>; 2] {
        match self.0 {
            Repr::Small { .. } => [Vec::new(), Vec::new()],
            Repr::Owned { buf, tail, .. } => [buf, tail],
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(buf: Vec<u8>) -> Body {
        Body::after(buf, 0)
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.contiguous() == other.contiguous()
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Body({} + {} bytes)",
            self.head().len(),
            self.tail().len()
        )
    }
}

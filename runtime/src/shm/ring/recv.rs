//! The consumer half of an [`Endpoint`]: frames out of the receive ring,
//! every length checked before anything is reserved.

use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use super::{End, Endpoint, CHUNK, HUGE_HINT, SIGNAL_EVERY, WANT_DATA, WANT_SPACE};
use crate::buffers;
use crate::sys;
use crate::wire::{Frame, FrameError, CHUNK_FRAMING, READ_CHUNK, SPLIT_MARK};

/// How long a wait for bytes may last, counted from when the wait begins:
/// a given time (`None`: no limit), or the stall limit. The deadline is
/// worked out only if bytes must be waited for, so a frame already in the
/// ring is read without looking at the clock.
#[derive(Clone, Copy)]
enum Limit {
    After(Option<Duration>),
    Stall,
}

impl Endpoint {
    /// Published bytes not yet read; re-reads the head (which must lie
    /// between our position and one ring further) only when the cached one
    /// is used up.
    pub(super) fn rx_avail(&mut self) -> u64 {
        if self.head_cache == self.rx_pos {
            let head = self.indices().2.load(Acquire);
            if head < self.rx_pos || head - self.rx_pos > self.cap {
                self.corrupt("producer", head);
                return 0;
            }
            self.head_cache = head;
        }
        self.head_cache - self.rx_pos
    }

    /// Whether bytes are there to read, without waiting.
    pub(crate) fn has_bytes(&mut self) -> bool {
        self.rx_avail() > 0
    }

    /// Waits for at least one byte; `limit` bounds the wait.
    fn await_bytes(&mut self, limit: Limit, streaming: bool) -> Result<u64, End> {
        let avail = self.rx_avail();
        if avail > 0 {
            return Ok(avail);
        }
        let deadline = match limit {
            Limit::After(timeout) => timeout.and_then(|t| Instant::now().checked_add(t)),
            Limit::Stall => self.stall_deadline(),
        };
        // About to wait: a producer waiting for room must know first.
        if self.unsignalled > 0 {
            self.unsignalled = 0;
            self.wake_peer(WANT_SPACE);
        }
        self.wait(WANT_DATA, deadline, streaming, |s| s.rx_avail() > 0)?;
        Ok(self.rx_avail())
    }

    /// Copies `n` published bytes to `out` and frees them in the ring.
    ///
    /// # Safety
    /// `out` must be valid for `n` bytes of writes, and `n` at most what
    /// [`rx_avail`](Self::rx_avail) reported.
    unsafe fn copy_out(&mut self, out: *mut u8, n: usize) {
        let at = (self.rx_pos & (self.cap - 1)) as usize;
        let first = n.min(self.cap as usize - at);
        // SAFETY: [at, at + first) and [0, n - first) lie in the ring and are
        // published (n ≤ available); the caller vouches for `out`. A hostile
        // producer may scribble on them meanwhile: bytes are bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.rx.add(at), out, first);
            std::ptr::copy_nonoverlapping(self.rx, out.add(first), n - first);
        }
        self.rx_pos += n as u64;
        self.indices().3.store(self.rx_pos, Release);
        self.unsignalled += n as u64;
        if self.unsignalled >= SIGNAL_EVERY {
            self.unsignalled = 0;
            self.wake_peer(WANT_SPACE);
        }
    }

    /// Reads exactly `out.len()` bytes; the first is awaited until `first`,
    /// and is the first of a frame unless `streaming`.
    fn read_array(&mut self, out: &mut [u8], first: Limit, streaming: bool) -> Result<(), End> {
        let mut got = 0;
        let mut limit = first;
        while got < out.len() {
            let avail = self.await_bytes(limit, streaming || got > 0)?;
            let n = (avail as usize).min(out.len() - got);
            // SAFETY: `out[got..]` has room for n ≤ its length bytes, and n ≤ avail.
            unsafe { self.copy_out(out.as_mut_ptr().add(got), n) };
            got += n;
            limit = Limit::Stall;
        }
        Ok(())
    }

    /// Appends `n` bytes to `buf`, growing it only as bytes arrive (at most
    /// one chunk, or as much again as arrived, ahead of them).
    fn read_into(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<(), End> {
        let mut left = n;
        let start = buf.len();
        while left > 0 {
            if buf.capacity() == buf.len() {
                let ahead = READ_CHUNK.max(buf.len() - start).min(left);
                buf.try_reserve_exact(ahead).map_err(|_| {
                    End::Broken(format!("no memory for the rest of a {n}-byte frame"))
                })?;
                if ahead >= HUGE_HINT {
                    sys::advise_huge_pages(buf);
                }
            }
            let room = (buf.capacity() - buf.len()).min(left);
            let avail = self.await_bytes(Limit::Stall, true)?;
            // At most a chunk at a time, so the producer gets room as
            // this copies, not only once all it found is copied.
            let k = room.min(avail as usize).min(CHUNK as usize);
            // SAFETY: the spare capacity holds `room` ≥ k bytes, k ≤ avail,
            // and copy_out initialises exactly those k bytes.
            unsafe {
                self.copy_out(buf.as_mut_ptr().add(buf.len()), k);
                buf.set_len(buf.len() + k);
            }
            left -= k;
        }
        Ok(())
    }

    /// Receives one frame. `timeout` bounds the wait for its first byte
    /// (`None`: no limit); the parent waits at most its stall limit at a time for
    /// the rest. After the worker died, frames it completed are still read,
    /// then [`FrameError::Closed`].
    pub(crate) fn recv(&mut self, timeout: Option<Duration>) -> Result<Frame, FrameError> {
        let start = self.rx_pos;
        let got = |s: &Self| (s.rx_pos - start) as usize;
        let mut word = [0u8; 4];
        // The first byte within `timeout`, the rest within the stall limit.
        if let Err(end) = self.read_array(&mut word, Limit::After(timeout), false) {
            let into = (got(self) > 0).then(|| (4, got(self)));
            return Err(self.recv_error(end, into));
        }
        let (head, tail) = match self.read_sizes(word) {
            Ok(sizes) => sizes,
            Err(Ok(end)) => {
                // In a split frame's sizes.
                let into = Some((4 + 16, got(self)));
                return Err(self.recv_error(end, into));
            }
            Err(Err(e)) => {
                // The body stays unread: no later frame can be found.
                self.broken.get_or_insert(e.to_string());
                return Err(e);
            }
        };
        let mut frame = Frame {
            head: take_buffer(head),
            tail: take_buffer(tail),
        };
        let read = self
            .read_into(&mut frame.head, head)
            .and_then(|()| self.read_into(&mut frame.tail, tail));
        match read {
            Ok(()) => Ok(frame),
            Err(end) => {
                let got = frame.head.len() + frame.tail.len();
                Err(self.recv_error(end, Some((head + tail, got))))
            }
        }
    }

    /// The sizes a frame's length `word` gives (reading a split frame's
    /// two sizes after it), checked against the limit.
    fn read_sizes(&mut self, word: [u8; 4]) -> Result<(usize, usize), Result<End, FrameError>> {
        let (head, tail) = match u32::from_le_bytes(word) {
            SPLIT_MARK => {
                let mut sizes = [0u8; 16];
                self.read_array(&mut sizes, Limit::Stall, true)
                    .map_err(Ok)?;
                let [h0, h1, h2, h3, h4, h5, h6, h7, t0, t1, t2, t3, t4, t5, t6, t7] = sizes;
                (
                    u64::from_le_bytes([h0, h1, h2, h3, h4, h5, h6, h7]),
                    u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
                )
            }
            len => (u64::from(len), 0),
        };
        let len = head.saturating_add(tail);
        match usize::try_from(len) {
            // (Its kind is not known yet: a chunk's reply may be a little
            // over the limit, see `crate::wire::CHUNK_FRAMING`.)
            Ok(len) if len <= self.max_frame.saturating_add(CHUNK_FRAMING) => {
                Ok((head as usize, tail as usize))
            }
            _ => Err(Err(FrameError::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: self.max_frame,
            })),
        }
    }

    /// The error for a receive that ended as `end`, `Some((expected, got))`
    /// bytes into a frame.
    fn recv_error(&mut self, end: End, into: Option<(usize, usize)>) -> FrameError {
        match (end, into) {
            (End::TimedOut, None) => FrameError::TimedOut,
            (End::Dead | End::Closed, None) => FrameError::Closed,
            (End::Dead | End::Closed, Some((expected, got))) => {
                FrameError::Truncated { expected, got }
            }
            (End::TimedOut, Some((expected, got))) => {
                let stall = self.stall.unwrap_or_default();
                // Where the next frame starts is lost.
                self.broken.get_or_insert(format!(
                    "a frame stalled for {stall:?} after {got} of {expected} bytes"
                ));
                FrameError::Stalled(stall)
            }
            (End::Broken(why), _) => {
                // Part of a frame may be read (no memory for the rest):
                // where the next one starts is lost.
                self.broken.get_or_insert(why.clone());
                FrameError::Broken(why)
            }
        }
    }
}

/// A buffer for `len` bytes: a spare this thread kept, if it has one
/// (grown as bytes arrive otherwise).
fn take_buffer(len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    if len > READ_CHUNK {
        return buffers::spare_buffer(len).unwrap_or_default();
    }
    buffers::small_buffer()
}

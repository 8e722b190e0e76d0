//! The producer half of an [`Endpoint`]: frames into the transmit ring.

use std::sync::atomic::Ordering::{Acquire, Release};

use super::{End, Endpoint, Side, CHUNK, WANT_DATA, WANT_SPACE};
use crate::wire::{frame_allowance, FrameError, SPLIT_MARK};

impl Endpoint {
    /// Re-reads the consumer's tail, which must lie between the last one
    /// read and what was published.
    pub(super) fn refresh_tail(&mut self) {
        let tail = self.indices().1.load(Acquire);
        if tail < self.tail_cache || tail > self.published {
            self.corrupt("consumer", tail);
            return;
        }
        self.tail_cache = tail;
    }

    /// Room in the transmit ring. The tail is re-read only when the cached
    /// one leaves none: reading it pulls a line the other CPU writes.
    fn tx_free(&mut self) -> u64 {
        if self.cap - (self.tx_pos - self.tail_cache) == 0 {
            self.refresh_tail();
        }
        self.cap - (self.tx_pos - self.tail_cache)
    }

    pub(super) fn publish(&mut self) {
        self.indices().0.store(self.tx_pos, Release);
        self.published = self.tx_pos;
        self.wake_peer(WANT_DATA);
    }

    /// Copies `bytes` into the ring, waiting for room as needed.
    pub(super) fn put(&mut self, mut bytes: &[u8]) -> Result<(), End> {
        while !bytes.is_empty() {
            let mut free = self.tx_free();
            if free == 0 {
                self.publish();
                let deadline = self.stall_deadline();
                self.wait(WANT_SPACE, deadline, true, |s| s.tx_free() > 0)?;
                free = self.tx_free();
            }
            // At most a chunk at a time, published at once: the consumer
            // copies one chunk out while the next goes in.
            let n = bytes.len().min(free as usize).min(CHUNK as usize);
            let at = (self.tx_pos & (self.cap - 1)) as usize;
            let first = n.min(self.cap as usize - at);
            // SAFETY: [at, at + first) and [0, n - first) lie inside the
            // ring (`cap` bytes from `tx`), and the consumer is done with
            // them (its tail says so) and reads nothing past the head we
            // publish after this copy.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.tx.add(at), first);
                std::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), self.tx, n - first);
            }
            self.tx_pos += n as u64;
            bytes = &bytes[n..];
            if self.tx_pos - self.published >= CHUNK {
                self.publish();
            }
        }
        Ok(())
    }

    /// Whether a frame of `len` bytes made of `parts` is over the limit (a
    /// map's chunk and its reply may go [`crate::wire::CHUNK_FRAMING`] over
    /// it: see there).
    fn too_large(&self, parts: &[&[u8]], len: usize) -> bool {
        let first = parts.iter().find_map(|p| p.first().copied());
        len > self.max_frame.saturating_add(frame_allowance(first))
    }

    /// Sends one frame: `parts` concatenated, then `tail`. A non-empty tail
    /// makes a split frame: the receiver reads it into a buffer of its own.
    pub(crate) fn send(&mut self, parts: &[&[u8]], tail: &[u8]) -> Result<(), FrameError> {
        let head: usize = parts.iter().map(|p| p.len()).sum();
        let len = head.saturating_add(tail.len());
        if self.too_large(parts, len) {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        let sent = self.put_frame(parts, head, tail);
        self.publish();
        sent.map_err(|end| self.send_error(end))
    }

    /// Sends several frames of two parts each, published at once.
    pub(crate) fn send_batch(&mut self, frames: &[[&[u8]; 2]]) -> Result<(), FrameError> {
        for parts in frames {
            let len = parts[0].len() + parts[1].len();
            if self.too_large(parts, len) {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_frame,
                });
            }
        }
        let mut sent = Ok(());
        for parts in frames {
            let len = parts[0].len() + parts[1].len();
            sent = self.put_frame(parts, len, &[]);
            if sent.is_err() {
                break;
            }
        }
        self.publish();
        sent.map_err(|end| self.send_error(end))
    }

    fn put_frame(&mut self, parts: &[&[u8]], head: usize, tail: &[u8]) -> Result<(), End> {
        // (A worker the parent let go, or sent a bad frame, may still say
        // why it stops.)
        if self.side == Side::Parent {
            if let Some(end) = self.ended() {
                return Err(end);
            }
        }
        match u32::try_from(head) {
            Ok(len) if tail.is_empty() && len != SPLIT_MARK => self.put(&len.to_le_bytes())?,
            _ => {
                let mut prefix = [0u8; 20];
                prefix[..4].copy_from_slice(&SPLIT_MARK.to_le_bytes());
                prefix[4..12].copy_from_slice(&(head as u64).to_le_bytes());
                prefix[12..].copy_from_slice(&(tail.len() as u64).to_le_bytes());
                self.put(&prefix)?;
            }
        }
        for part in parts {
            self.put(part)?;
        }
        self.put(tail)
    }

    pub(super) fn send_error(&mut self, end: End) -> FrameError {
        match end {
            End::Dead | End::Closed => FrameError::Closed,
            // (Only a wait for room has a deadline: the stall limit.)
            End::TimedOut => {
                let stall = self.stall.unwrap_or_default();
                // A frame is half written: nothing more can go out.
                self.broken
                    .get_or_insert(format!("the worker read none of a frame for {stall:?}"));
                FrameError::Stalled(stall)
            }
            End::Broken(why) => {
                // A frame may be half written: nothing more can go out.
                self.broken.get_or_insert(why.clone());
                FrameError::Broken(why)
            }
        }
    }

    /// Writes `bytes` as they are and publishes them (for tests that play a
    /// corrupt peer).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let written = self.put(bytes);
        self.publish();
        written.map_err(|end| self.send_error(end))
    }
}

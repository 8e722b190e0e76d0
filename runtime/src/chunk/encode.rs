//! Cutting items into a chunk, the caller's side: each item encoded with
//! its length prefix (or the reason it did not encode), or all of them in
//! the dense form (the format is in [`crate::chunk`]).

use super::{DENSE_HEADER, DENSE_ITEMS, FRAME_OVER_CHUNK, LONG_PREFIX, UNSENT};
use crate::codec;
use crate::task::{DenseKind, EncodeItem, TaskOutput};

/// The most a chunk reserves ahead for the items still to come.
const RESERVE_AHEAD: usize = 16 << 20;

/// Encodes up to `size` items from `items` as one chunk, ending it early
/// once it holds `max_bytes`; `None` when the input is exhausted. Returns the
/// bytes and the number of items taken. An item whose arguments do not
/// encode, or whose `Serialize` panics, goes as the reason why (see the
/// module's documentation): it fails alone. A panic of the input itself
/// comes out of the call.
///
/// An item that would take a chunk of several items past `max_bytes` is
/// left in `carry` (encoded, with its length prefix) and begins the next
/// chunk: a chunk is at most `max_bytes`, or one item alone, so an item
/// that fits a frame on its own never fails for its neighbours (nor they
/// for it). `carry` must be the same buffer from one chunk to the next.
pub(crate) fn next_chunk<M, I: Iterator>(
    items: &mut I,
    size: usize,
    max_bytes: usize,
    carry: &mut Vec<u8>,
) -> Option<(Vec<u8>, usize)>
where
    M: EncodeItem<I::Item> + TaskOutput,
    M::Output: 'static,
{
    // (The count's top bit is the dense form's.)
    let size = size
        .min(results_room::<M::Output>(max_bytes))
        .min((DENSE_ITEMS - 1) as usize);
    if let Some(kind) = M::dense_kind() {
        // (A dense chunk never leaves an item in `carry`.)
        return next_dense::<M, I>(items, size, max_bytes, kind);
    }
    let mut fill = Fill {
        bytes: vec![0; 4],
        last: 0,
        taken: 0,
        encoding: None,
    };
    let mut first = None;
    if carry.is_empty() {
        first = Some(items.next()?);
    } else {
        // (Its length with its prefix: only a guess of the next prefix's width.)
        fill.last = carry.len();
        fill.bytes.append(carry);
        fill.taken = 1;
    }
    // One `catch_unwind` per chunk, not per item: after a panic the loop
    // goes on where it was.
    while let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(first) = first.take() {
            fill.push::<M, I::Item>(first);
            // Room for the rest, guessed from the first item (at most 16 MiB ahead).
            let guess = (fill.bytes.len() - 4).saturating_mul(size - 1);
            fill.bytes.reserve(guess.min(RESERVE_AHEAD).min(max_bytes));
        }
        while fill.taken < size && fill.bytes.len() < max_bytes {
            let Some(item) = items.next() else { break };
            let start = fill.bytes.len();
            fill.push::<M, I::Item>(item);
            if fill.bytes.len() > max_bytes && fill.taken > 1 {
                *carry = fill.bytes.split_off(start);
                fill.taken -= 1;
                break;
            }
        }
    })) {
        // An item's `Serialize` panicked: it goes as the reason why. Any
        // other panic is the input's own.
        let Some(start) = fill.encoding.take() else {
            std::panic::resume_unwind(payload)
        };
        let why = format!("its Serialize panicked: {}", codec::panic_message(&payload));
        crate::unwind::discard(payload);
        push_unsent(&mut fill.bytes, start, &why, &mut fill.last);
        fill.taken += 1;
    }
    let Fill {
        mut bytes, taken, ..
    } = fill;
    bytes[..4].copy_from_slice(&(taken as u32).to_le_bytes());
    Some((bytes, taken))
}

/// The most items of a chunk of `max_bytes` whose results fit half the
/// frame it leaves room for, when the results are numbers: each takes at
/// most its kind's `most_record` bytes (as a value record, which a worker
/// falls back to at an item's failure; less in the dense form). The other
/// half is for the records of failed items (a panic's message and place,
/// which a worker cuts to fit the frame: see `options::failures_room`, which
/// bounds how many items a chunk holds for them).
/// With `B` = `max_bytes` ≤ max_frame / 4, the values take at most 2 (`B` −
/// 5) bytes of the frame. Unbounded for other results (a chunk of large
/// results fails whole, as it always did).
fn results_room<R: 'static>(max_bytes: usize) -> usize {
    match codec::dense::kind::<R>() {
        Some(kind) => {
            let room = max_bytes.saturating_sub(DENSE_HEADER) * FRAME_OVER_CHUNK / 2;
            (room / kind.most_record).max(1)
        }
        None => usize::MAX,
    }
}

/// [`next_chunk`] for items in the dense form: each takes the width of its
/// kind, so the chunk holds as many as fit `max_bytes` (at least one).
fn next_dense<M: EncodeItem<I::Item>, I: Iterator>(
    items: &mut I,
    size: usize,
    max_bytes: usize,
    kind: DenseKind,
) -> Option<(Vec<u8>, usize)> {
    let fit = (max_bytes.saturating_sub(DENSE_HEADER) / kind.width).max(1);
    let limit = size.min(fit).max(1);
    let first = items.next()?;
    let ahead = items.size_hint().0.min(limit - 1);
    let room = (ahead * kind.width).min(RESERVE_AHEAD);
    let mut bytes = Vec::with_capacity(DENSE_HEADER + kind.width + room);
    bytes.extend_from_slice(&[0, 0, 0, 0, kind.code]);
    M::encode_dense(first, &mut bytes);
    let mut taken = 1;
    while taken < limit {
        let Some(item) = items.next() else { break };
        M::encode_dense(item, &mut bytes);
        taken += 1;
    }
    bytes[..4].copy_from_slice(&(taken as u32 | DENSE_ITEMS).to_le_bytes());
    Some((bytes, taken))
}

/// A chunk being filled.
struct Fill {
    bytes: Vec<u8>,
    /// The length of the last item encoded (see [`push_item`]).
    last: usize,
    /// How many items it holds.
    taken: usize,
    /// Where the item being encoded starts, while its `Serialize` runs.
    encoding: Option<usize>,
}

impl Fill {
    #[inline(always)]
    fn push<M: EncodeItem<T>, T>(&mut self, item: T) {
        self.encoding = Some(self.bytes.len());
        push_or_unsent::<M, T>(item, &mut self.bytes, &mut self.last);
        self.encoding = None;
        self.taken += 1;
    }
}

/// [`push_item`], or, if the item does not encode, the reason why in its
/// place.
#[inline(always)]
fn push_or_unsent<M: EncodeItem<T>, T>(item: T, chunk: &mut Vec<u8>, last: &mut usize) {
    let start = chunk.len();
    if let Err(why) = push_item::<M, T>(item, chunk, last) {
        push_unsent(chunk, start, &why, last);
    }
}

/// Replaces what an item left from `start` on with the mark of an item the
/// caller could not encode, and why.
#[cold]
fn push_unsent(chunk: &mut Vec<u8>, start: usize, why: &str, last: &mut usize) {
    chunk.truncate(start);
    let mut prefix = [0u8; LONG_PREFIX];
    leb128(UNSENT, &mut prefix);
    chunk.extend_from_slice(&prefix);
    // A String always encodes.
    let _ = codec::encode_into(why, chunk);
    *last = 0x80;
}

/// Appends one item, prefixed with its length, to `chunk`. The prefix's
/// room is guessed from the previous item's length (`last`): one byte after
/// a short item, five after a long one (padded if the item is shorter), so
/// the item's bytes move only when a long item follows a short one.
// Always inlined: its result then stays in registers (returned through
// memory, reading it back stalled the loop, ~9 ns per item in
// `--profile map`).
#[inline(always)]
fn push_item<M: EncodeItem<T>, T>(
    item: T,
    chunk: &mut Vec<u8>,
    last: &mut usize,
) -> Result<(), String> {
    let start = chunk.len();
    if *last < 0x80 {
        chunk.push(0);
        let encoded = M::encode_item(item, chunk);
        let len = chunk.len() - start - 1;
        if len < 0x80 {
            // The usual case: a short item after a short one.
            chunk[start] = len as u8;
            *last = len;
            return encoded;
        }
        return fix_prefix(chunk, start, 1, len, last).and(encoded);
    }
    chunk.resize(start + LONG_PREFIX, 0);
    let encoded = M::encode_item(item, chunk);
    let len = chunk.len() - start - LONG_PREFIX;
    fix_prefix(chunk, start, LONG_PREFIX, len, last).and(encoded)
}

/// Writes the length `len` of the item after `room` bytes reserved at
/// `start`, moving the item if the length needs more room.
#[cold]
fn fix_prefix(
    chunk: &mut Vec<u8>,
    start: usize,
    room: usize,
    len: usize,
    last: &mut usize,
) -> Result<(), String> {
    let len32 = u32::try_from(len)
        .ok()
        .filter(|&len| len != UNSENT)
        .ok_or_else(|| format!("an item of {len} bytes"))?;
    let mut prefix = [0u8; LONG_PREFIX];
    let width = if len < 0x80 { room } else { LONG_PREFIX };
    leb128(len32, &mut prefix[..width]);
    if width == room {
        chunk[start..start + room].copy_from_slice(&prefix[..width]);
    } else {
        chunk.splice(start..start + room, prefix[..width].iter().copied());
    }
    *last = len;
    Ok(())
}

/// Writes `value` in LEB128 filling exactly `out` (padded with continuation
/// bytes; `out` is long enough).
pub(super) fn leb128(mut value: u32, out: &mut [u8]) {
    let last = out.len() - 1;
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (value & 0x7f) as u8 | if i < last { 0x80 } else { 0 };
        value >>= 7;
    }
}

//! A chunk of a map, its format on both sides: one frame carries many
//! items, the worker runs them all (each under its own panic guard; see
//! `worker::chunk`) and answers with one frame of per-item outcomes. Here:
//! reading items and writing records (worker); in `encode`, cutting items
//! into a chunk (caller); in `decode`, reading records back (caller).
//!
//! A chunk's items (the `args` of a CALL_BATCH) are a `u32` count, then per
//! item its length (LEB128, possibly padded with `0x80` continuation bytes)
//! and the bincode encoding of the call's arguments: the worker can find
//! each item without decoding the ones before, so an item whose arguments
//! fail to decode (or whose `Deserialize` panics) fails alone. An item whose
//! arguments the caller could not encode is the length `u32::MAX` (five
//! bytes) then bincode(String), why: the worker answers it with record 4,
//! and the other items run. The RESULTS reply body is
//! `count u32 | all_values u8 | records`, one record per item in order:
//!
//! ```text
//! 16 + n | bincode(value)             the function returned a value of n
//!                                     bytes, n ≤ 239
//! 0 | len u32 LE | bincode(value)     the same, for a longer value
//! 1 | bincode(PanicReport)            it panicked: the function, its
//!                                     arguments' Deserialize or its value's
//!                                     Serialize
//! 2 | bincode(String)                 its value could not be encoded
//! 3 | bincode(String)                 its arguments could not be decoded
//! 4 | bincode(String)                 the caller could not encode its
//!                                     arguments
//! ```
//!
//! `all_values` is 1 when every record is a value. A value's length is on
//! the wire (in its tag byte, when short: no byte more), so a value the
//! caller cannot decode (its `Deserialize` refuses it, or panics) fails
//! that item alone and the walk goes on to the next.
//!
//! Numbers go in the dense form (`crate::codec::dense`) both ways:
//!
//! ```text
//! count | 1 << 31 (u32 LE) | kind u8 | count numbers     a chunk whose items
//!                                                         are each one number
//! count u32 | 2 | kind u8 | count numbers                 a RESULTS body whose
//!                                                         values all are
//! ```
//!
//! A worker answers a dense RESULTS body when its task returns a number,
//! whatever the items' form; at an item's failure it rewrites the values so
//! far as records and goes on with records.

use serde::Serialize;

use crate::codec;
use crate::task::DenseKind;
use crate::wire::PanicReport;

mod decode;
mod encode;

pub(crate) use decode::{body, decode_body, decode_chunk, Body};
pub(crate) use encode::next_chunk;

/// A value longer than [`MAX_SHORT`]: its length (`u32` LE) follows.
pub(crate) const REC_VALUE: u8 = 0;
pub(crate) const REC_PANIC: u8 = 1;
pub(crate) const REC_UNENCODABLE: u8 = 2;
pub(crate) const REC_UNDECODABLE: u8 = 3;
pub(crate) const REC_UNSENT: u8 = 4;

/// Tags from this one up: a value of (tag − `SHORT_VALUE`) bytes follows.
const SHORT_VALUE: u8 = 16;
/// The longest value whose length fits in its tag.
const MAX_SHORT: usize = (u8::MAX - SHORT_VALUE) as usize;

/// The item length that stands for an item the caller could not encode.
const UNSENT: u32 = u32::MAX;

/// Bytes of an item length: 5 hold any `u32` in LEB128.
const LONG_PREFIX: usize = 5;

/// How many times a chunk's encoded items a frame holds (see
/// `map::options::chunk_bytes`).
pub(crate) const FRAME_OVER_CHUNK: usize = 4;

/// The bit of a chunk's count that says its items are in the dense form.
const DENSE_ITEMS: u32 = 1 << 31;
/// The `all_values` flag of a RESULTS body whose values are in the dense
/// form.
pub(crate) const DENSE_VALUES: u8 = 2;
/// A dense chunk's header: its count and its kind.
const DENSE_HEADER: usize = 5;

/// One item of a chunk, as the worker finds it.
pub(crate) enum Item<'a> {
    /// The bytes from the item's start to the chunk's end (decoding from a
    /// slice that does not end with the item keeps bincode on its fast
    /// path), and the item's length.
    Args(&'a [u8], usize),
    /// The caller could not encode the item's arguments: why.
    Unsent(String),
}

/// Splits the next item off `rest`, past its length prefix.
#[inline(always)]
pub(crate) fn next_item<'a>(rest: &mut &'a [u8]) -> Result<Item<'a>, String> {
    // The usual case: a one-byte length.
    if let Some((&len, body)) = rest.split_first() {
        let len = usize::from(len);
        if len < 0x80 && body.len() >= len {
            *rest = &body[len..];
            return Ok(Item::Args(body, len));
        }
    }
    let before = *rest;
    match next_item_long(rest)? {
        Some(item) => {
            let start = before.len() - rest.len() - item.len();
            Ok(Item::Args(&before[start..], item.len()))
        }
        None => {
            let (why, used) = codec::decode_prefix::<String>(rest)?;
            *rest = &rest[used..];
            Ok(Item::Unsent(why))
        }
    }
}

/// [`next_item`] for a length of several bytes, or a malformed one: the
/// item's bytes, or `None` for an item the caller could not encode (`rest`
/// then starts at the reason why).
#[cold]
fn next_item_long<'a>(rest: &mut &'a [u8]) -> Result<Option<&'a [u8]>, String> {
    let mut len: u64 = 0;
    let mut used = 0;
    loop {
        let Some(&byte) = rest.get(used) else {
            return Err("a chunk cut short in an item's length".into());
        };
        if used == LONG_PREFIX {
            return Err("an item length longer than 5 bytes".into());
        }
        len |= u64::from(byte & 0x7f) << (7 * used);
        used += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if len == u64::from(UNSENT) {
        *rest = &rest[used..];
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| "an item length over usize".to_string())?;
    let body = &rest[used..];
    if body.len() < len {
        return Err(format!(
            "an item of {len} bytes in a chunk with {} left",
            body.len()
        ));
    }
    let (item, after) = body.split_at(len);
    *rest = after;
    Ok(Some(item))
}

/// The number of items of an encoded chunk (its count field, without the
/// dense form's bit); 1 for bytes too short to hold one (the worker refuses
/// such a chunk).
pub(crate) fn item_count(chunk: &[u8]) -> usize {
    match chunk.first_chunk::<4>() {
        Some(count) => ((u32::from_le_bytes(*count) & !DENSE_ITEMS) as usize).max(1),
        None => 1,
    }
}

/// Worker side: the item count of a chunk whose count field is `count`, and
/// whether its items are in the dense form (then `items`, moved past the
/// kind, holds exactly that many numbers).
pub(crate) fn dense_items(
    count: u32,
    items: &mut &[u8],
) -> Result<(u32, Option<DenseKind>), String> {
    if count & DENSE_ITEMS == 0 {
        return Ok((count, None));
    }
    let count = count & !DENSE_ITEMS;
    let (&code, numbers) = items
        .split_first()
        .ok_or("a dense chunk without its kind")?;
    let kind =
        codec::dense::kind_of(code).ok_or(format!("a dense chunk of unknown kind {code}"))?;
    if Some(numbers.len()) != (count as usize).checked_mul(kind.width) {
        return Err(format!(
            "a dense chunk of {count} items of {} bytes holds {} bytes",
            kind.width,
            numbers.len()
        ));
    }
    *items = numbers;
    Ok((count, Some(kind)))
}

/// Worker side: if the values so far are in the dense form (`dense` is
/// `Some`), rewrites them as value records, for a record that is not a
/// value to follow; `dense` becomes `None`.
#[cold]
pub(crate) fn to_records<R: 'static>(
    out: &mut Vec<u8>,
    flag: usize,
    dense: &mut Option<DenseKind>,
) {
    let Some(kind) = dense.take() else { return };
    let numbers = out.split_off(flag + 2);
    out.truncate(flag);
    out.push(0);
    for number in numbers.chunks_exact(kind.width) {
        let start = out.len();
        out.push(REC_VALUE);
        // Numbers this worker wrote itself: each reads back as an `R`.
        match codec::dense::take::<R>(number) {
            Some(value) if codec::encode_scalar(&value, out) => {
                let _ = seal_value(out, start);
            }
            _ => {
                out.truncate(start);
                push_record(out, REC_UNENCODABLE, &"a number that did not read back");
            }
        }
    }
}

/// Writes the length of the value record begun at `start` (its tag, then
/// the value): in the tag if the value is short, else after it.
#[inline(always)]
pub(crate) fn seal_value(out: &mut Vec<u8>, start: usize) -> Result<(), String> {
    let len = out.len() - start - 1;
    if len <= MAX_SHORT {
        out[start] = SHORT_VALUE + len as u8;
        return Ok(());
    }
    seal_long(out, start, len)
}

#[cold]
fn seal_long(out: &mut Vec<u8>, start: usize, len: usize) -> Result<(), String> {
    let len = u32::try_from(len).map_err(|_| format!("a value of {len} bytes"))?;
    out[start] = REC_VALUE;
    out.splice(start + 1..start + 1, len.to_le_bytes());
    Ok(())
}

/// Where a chunk's records begin in its RESULTS body, after the body's
/// header: past the count (`u32`) and the `all_values` flag.
pub(crate) const RECORDS_AT: usize = 5;

/// Worker side: a chunk's RESULTS `body` (records from `records_at` on)
/// over `max` bytes, cut down by shortening the texts of its failure
/// records (a panic's message, location and backtrace, an error's message),
/// the longest first, as a single call's failure is cut to fit a frame.
/// Returns whether it now fits; values are never cut (a chunk whose values
/// alone are too large still fails as a whole).
pub(crate) fn fit_failures(body: &mut Vec<u8>, records_at: usize, max: usize) -> bool {
    // Dense values hold no failure.
    if body.get(records_at.wrapping_sub(1)) == Some(&DENSE_VALUES) {
        return false;
    }
    // Each round cuts the texts of the whole body to half the last round's
    // length, from the texts as they came.
    let Some((_, mut keep)) = shorten_failures(body, records_at, usize::MAX) else {
        return false;
    };
    while body.len() > max {
        keep /= 2;
        if keep < 16 {
            return false;
        }
        match shorten_failures(body, records_at, keep) {
            Some((shorter, _)) if shorter.len() <= max => *body = shorter,
            Some(_) => {}
            None => return false,
        }
    }
    true
}

/// `body` with every failure record's texts cut to at most `keep` bytes,
/// and the longest text before the cut; `None` if a record cannot be read.
fn shorten_failures(body: &[u8], records_at: usize, keep: usize) -> Option<(Vec<u8>, usize)> {
    let mut out = body.get(..records_at)?.to_vec();
    let mut rest = body.get(records_at..)?;
    let mut longest = 0;
    let mut cut = |text: &mut String| {
        longest = longest.max(text.len());
        if text.len() > keep {
            crate::wire::shorten(text, keep);
        }
    };
    while let Some((&tag, after)) = rest.split_first() {
        if let Some(value) = value_of(tag, after) {
            let (_, next) = value.ok()?;
            out.extend_from_slice(&rest[..rest.len() - next.len()]);
            rest = next;
            continue;
        }
        let used = match tag {
            REC_PANIC => {
                let (mut report, used) = codec::decode_prefix::<PanicReport>(after).ok()?;
                cut(&mut report.message);
                cut(&mut report.location);
                if let Some(backtrace) = report.backtrace.as_mut() {
                    cut(backtrace);
                }
                push_record(&mut out, tag, &report);
                used
            }
            REC_UNENCODABLE | REC_UNDECODABLE | REC_UNSENT => {
                let (mut message, used) = codec::decode_prefix::<String>(after).ok()?;
                cut(&mut message);
                push_record(&mut out, tag, &message);
                used
            }
            _ => return None,
        };
        rest = &after[used..];
    }
    Some((out, longest))
}

/// A value record's value, and the bytes after the record.
type Split<'b> = (&'b [u8], &'b [u8]);

/// The value of the value record whose tag is `tag` and the bytes after it
/// `body`, and what follows it; `None` if `tag` is not a value's; `Err` if
/// the value's length goes past the end.
#[inline]
fn value_of(tag: u8, body: &[u8]) -> Option<Result<Split<'_>, String>> {
    let (len, body) = if tag >= SHORT_VALUE {
        ((tag - SHORT_VALUE) as usize, body)
    } else if tag == REC_VALUE {
        match body.split_first_chunk::<4>() {
            Some((len, rest)) => (u32::from_le_bytes(*len) as usize, rest),
            None => return Some(Err("a value record cut short".into())),
        }
    } else {
        return None;
    };
    Some(if len <= body.len() {
        Ok(body.split_at(len))
    } else {
        Err(format!(
            "a value of {len} bytes, with {} left in the reply",
            body.len()
        ))
    })
}

pub(crate) fn push_record<T: Serialize>(out: &mut Vec<u8>, tag: u8, value: &T) {
    out.push(tag);
    // Only a String or a PanicReport: they always encode.
    let _ = codec::encode_into(value, out);
}

pub(crate) fn split_count(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes.split_first_chunk::<4>() {
        Some((count, rest)) => Ok((u32::from_le_bytes(*count), rest)),
        None => Err("a chunk without its item count".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::encode::leb128;
    use super::{
        decode_body, next_chunk, next_item, Item, DENSE_HEADER, DENSE_ITEMS, DENSE_VALUES,
        LONG_PREFIX, UNSENT,
    };
    use crate::codec;
    use crate::error::Error;
    use crate::task::{DenseKind, EncodeItem, TaskOutput};

    /// A task of one `u64`, as `#[pool_task]` would make it.
    struct U64Task;

    impl TaskOutput for U64Task {
        type Output = u64;
    }

    impl EncodeItem<u64> for U64Task {
        fn encode_item(item: u64, chunk: &mut Vec<u8>) -> Result<(), String> {
            codec::encode_scalar(&item, chunk);
            Ok(())
        }
        fn dense_kind() -> Option<DenseKind> {
            codec::dense::kind::<u64>()
        }
        fn encode_dense(item: u64, chunk: &mut Vec<u8>) {
            codec::dense::put(&item, chunk);
        }
    }

    #[test]
    fn dense_chunks_hold_what_fits_and_at_least_one_item() {
        let mut items = 0..25u64;
        let mut carry = Vec::new();
        // Room for ten numbers after the header; the size allows more.
        let (bytes, taken) =
            next_chunk::<U64Task, _>(&mut items, 1000, DENSE_HEADER + 80, &mut carry).unwrap();
        assert_eq!(taken, 10);
        assert_eq!(bytes.len(), DENSE_HEADER + 80);
        assert_eq!(bytes[..4], (10 | DENSE_ITEMS).to_le_bytes());
        assert_eq!(bytes[4], codec::dense::kind::<u64>().unwrap().code);
        assert_eq!(bytes[5..13], 0u64.to_le_bytes());
        // The size limits it; then a frame too small for one still takes one.
        let (_, taken) = next_chunk::<U64Task, _>(&mut items, 4, 1 << 20, &mut carry).unwrap();
        assert_eq!(taken, 4);
        let (bytes, taken) = next_chunk::<U64Task, _>(&mut items, 100, 3, &mut carry).unwrap();
        assert_eq!((taken, &bytes[5..]), (1, &14u64.to_le_bytes()[..]));
        let (_, taken) = next_chunk::<U64Task, _>(&mut items, 100, 1 << 20, &mut carry).unwrap();
        assert_eq!(taken, 10);
        assert!(next_chunk::<U64Task, _>(&mut items, 100, 1 << 20, &mut carry).is_none());
        assert!(carry.is_empty());
    }

    #[test]
    fn dense_results_are_checked_before_they_are_taken() {
        let dense = |count: u32, kind: &[u8], numbers: &[u64]| {
            let mut body = count.to_le_bytes().to_vec();
            body.push(DENSE_VALUES);
            body.extend_from_slice(kind);
            numbers
                .iter()
                .for_each(|n| body.extend_from_slice(&n.to_le_bytes()));
            body
        };
        let u64_kind = [codec::dense::kind::<u64>().unwrap().code];
        let mut out = vec![1u64];
        decode_body::<u64>("t", &dense(2, &u64_kind, &[5, 6]), 2, &mut out).unwrap();
        assert_eq!(out, [1, 5, 6]);
        let mut out: Vec<u64> = Vec::new();
        // Another type than the caller's; numbers short of the count or
        // beyond it, a kind that does not exist, no kind, another count
        // than sent.
        let is_decode =
            |r: Result<(), Error>| matches!(r, Err(Error::Decode { what: "result", .. }));
        let mut narrow: Vec<u32> = Vec::new();
        assert!(is_decode(decode_body(
            "t",
            &dense(2, &u64_kind, &[5, 6]),
            2,
            &mut narrow
        )));
        let protocol = |r: Result<(), Error>| matches!(r, Err(Error::Protocol { .. }));
        assert!(protocol(decode_body(
            "t",
            &dense(3, &u64_kind, &[5, 6]),
            3,
            &mut out
        )));
        assert!(protocol(decode_body(
            "t",
            &dense(1, &u64_kind, &[5, 6]),
            1,
            &mut out
        )));
        assert!(protocol(decode_body(
            "t",
            &dense(2, &[99], &[5, 6]),
            2,
            &mut out
        )));
        assert!(protocol(decode_body("t", &dense(0, &[], &[]), 0, &mut out)));
        assert!(protocol(decode_body(
            "t",
            &dense(2, &u64_kind, &[5, 6]),
            3,
            &mut out
        )));
        assert!(out.is_empty() && narrow.is_empty());
    }

    #[test]
    fn item_lengths_round_trip_short_long_and_padded() {
        for len in [
            0u32,
            1,
            0x7f,
            0x80,
            300,
            16_383,
            16_384,
            1 << 21,
            u32::MAX - 1,
        ] {
            for width in 1..=LONG_PREFIX {
                if width < LONG_PREFIX && u64::from(len) >> (7 * width) != 0 {
                    continue; // does not fit in this width
                }
                let mut prefix = vec![0u8; width];
                leb128(len, &mut prefix);
                let body = vec![9u8; (len as usize).min(70_000)];
                let mut chunk = prefix.clone();
                chunk.extend_from_slice(&body);
                chunk.push(0xAA);
                let mut rest = &chunk[..];
                match next_item(&mut rest) {
                    Ok(Item::Unsent(why)) => panic!("{len}/{width}: unsent: {why}"),
                    Ok(Item::Args(item, n)) => {
                        assert_eq!(n, len as usize, "width {width}");
                        assert_eq!(item.len(), n + 1, "up to the chunk's end");
                        assert_eq!(rest, [0xAA]);
                    }
                    // Announced more than the chunk holds.
                    Err(e) => assert!(len as usize > body.len(), "{len}/{width}: {e}"),
                }
            }
        }
    }

    #[test]
    fn an_unsent_item_is_its_reason_and_the_next_item_follows() {
        let mut chunk = vec![0u8; LONG_PREFIX];
        leb128(UNSENT, &mut chunk);
        crate::codec::encode_into("no", &mut chunk).unwrap();
        chunk.extend_from_slice(&[1, 7]);
        let mut rest = &chunk[..];
        assert!(matches!(next_item(&mut rest), Ok(Item::Unsent(why)) if why == "no"));
        assert!(matches!(next_item(&mut rest), Ok(Item::Args(item, 1)) if item == [7]));
        assert!(rest.is_empty());
    }

    #[test]
    fn malformed_lengths_are_errors() {
        for bad in [
            &[][..],
            &[0x80],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            &[5, 1, 2],
        ] {
            let mut rest = bad;
            assert!(next_item(&mut rest).is_err(), "{bad:?}");
        }
    }
}

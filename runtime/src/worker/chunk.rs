//! Running a chunk of a map in the worker: each item decoded, run and its
//! value encoded under its own panic guard, its record appended to the
//! reply (the format is in [`crate::chunk`]).

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use crate::chunk::{
    dense_items, next_item, push_record, seal_value, split_count, to_records, Item, DENSE_VALUES,
    REC_PANIC, REC_UNDECODABLE, REC_UNENCODABLE, REC_UNSENT, REC_VALUE,
};
use crate::codec;
use crate::task::{ArgsDecoder, CallError, DenseKind};

/// Worker side, called by the code `#[pool_task]` generates: for each item,
/// decodes its arguments with `decode`, runs `call` on them and encodes the
/// value, all under one panic guard, and appends its record to `out`. A
/// panic or a failure in any of the three fails that item alone; only a
/// malformed chunk fails the whole.
pub(crate) fn run<A, R: Serialize + 'static>(
    bytes: &[u8],
    out: &mut Vec<u8>,
    mut decode: impl FnMut(&mut ArgsDecoder<'_>) -> Result<A, CallError>,
    mut call: impl FnMut(A) -> R,
) -> Result<(), CallError> {
    let (count, mut items) = split_count(bytes).map_err(CallError::DecodeArgs)?;
    let (count, dense_items) = dense_items(count, &mut items).map_err(CallError::DecodeArgs)?;
    out.extend_from_slice(&count.to_le_bytes());
    let flag = out.len();
    let mut dense_values = begin_values::<R>(out, count, dense_items, items.len());
    // Each item start is counted where the parent sees it: a map's time
    // limit is for each item (see `crate::shm::Progress`).
    let started = super::item_count();
    let mut items_started = started.load(Relaxed);
    for _ in 0..count {
        items_started = items_started.wrapping_add(1);
        started.store(items_started, Relaxed);
        let (item, len) = match dense_items {
            Some(kind) => {
                let item = items;
                items = &items[kind.width..];
                (item, kind.width)
            }
            None => match next_item(&mut items).map_err(CallError::DecodeArgs)? {
                Item::Args(item, len) => (item, len),
                Item::Unsent(why) => {
                    push_failure::<R, _>(out, flag, &mut dense_values, REC_UNSENT, &why);
                    continue;
                }
            },
        };
        let start = out.len();
        let dense_now = dense_values.is_some();
        // Within the chunk's own guard (see `worker::execute::chunk`).
        let ran = super::panic::guard_within(|| {
            let mut args = match dense_items {
                Some(kind) => ArgsDecoder::dense(item, kind.code),
                None => ArgsDecoder::new(item),
            };
            let decoded = decode(&mut args)?;
            let used = item.len() - args.rest_len();
            if used != len {
                return Err(CallError::DecodeArgs(format!(
                    "the item's arguments are {len} bytes, {used} were decoded: \
                     the caller sent other types"
                )));
            }
            let value = call(decoded);
            if dense_now {
                codec::dense::put(&value, out);
                return Ok(());
            }
            out.push(REC_VALUE);
            crate::task::encode_value_into(&value, out).map_err(CallError::EncodeResult)
        });
        let failed = match ran {
            Ok(Ok(())) if dense_now => continue,
            Ok(Ok(())) => match seal_value(out, start) {
                Ok(()) => continue,
                Err(message) => (REC_UNENCODABLE, message),
            },
            Ok(Err(CallError::DecodeArgs(message))) => (REC_UNDECODABLE, message),
            Ok(Err(CallError::EncodeResult(message))) => (REC_UNENCODABLE, message),
            Err(report) => {
                out.truncate(start);
                push_failure::<R, _>(out, flag, &mut dense_values, REC_PANIC, &report);
                continue;
            }
        };
        out.truncate(start);
        push_failure::<R, _>(out, flag, &mut dense_values, failed.0, &failed.1);
    }
    if items.is_empty() {
        Ok(())
    } else {
        Err(CallError::DecodeArgs(format!(
            "{} bytes left over after the chunk's last item",
            items.len()
        )))
    }
}

/// Writes the values' form after the chunk's count (its flag at `flag`,
/// `out`'s end) and reserves room for the values: the dense form if `R` has
/// one, kept while every item gives a value, else records. Returns the
/// dense kind the values start in.
#[inline]
fn begin_values<R: 'static>(
    out: &mut Vec<u8>,
    count: u32,
    dense_items: Option<DenseKind>,
    items_len: usize,
) -> Option<DenseKind> {
    // (The count is not trusted: an item in the general form takes a byte
    // at least.)
    let most = match dense_items {
        Some(_) => count as usize,
        None => (count as usize).min(items_len),
    };
    // Values in the dense form while every item gives one.
    let dense_values = codec::dense::kind::<R>();
    match dense_values {
        Some(kind) => {
            out.extend_from_slice(&[DENSE_VALUES, kind.code]);
            out.reserve(kind.width * most);
        }
        None => {
            out.push(1);
            // Results are usually about as large as the arguments, plus a tag each.
            out.reserve(items_len + most + 8);
        }
    }
    dense_values
}

/// Appends an item's record that is not a value (tag `tag`, then `why`),
/// the values so far rewritten as records first, and marks the chunk's
/// values as records (its flag at `flag`).
#[inline]
fn push_failure<R: 'static, T: Serialize>(
    out: &mut Vec<u8>,
    flag: usize,
    dense_values: &mut Option<DenseKind>,
    tag: u8,
    why: &T,
) {
    to_records::<R>(out, flag, dense_values);
    push_record(out, tag, why);
    out[flag] = 0;
}

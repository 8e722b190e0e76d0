//! The bincode codec for task arguments and results, and for procpool's own
//! messages: the only module that names `bincode`. Values go through
//! [`depth`]'s nesting limit both ways. Beside it, [`dense`]: map chunks'
//! numbers as they are in memory.

pub(crate) mod dense;
mod depth;
mod scalar;
mod wording;

pub(crate) use scalar::{decode as decode_scalar, each_scalar, encode as encode_scalar, is_scalar};

pub(crate) use depth::drop_refused;
#[cfg(feature = "json")]
pub(crate) use depth::{Bounded, Limited};

use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

use crate::unwind;

/// The most a decode may claim (reserve) in all, chosen per input: the
/// smallest of these that is at least [`CLAIM_FACTOR`] times the input's
/// length. bincode claims (and allocates up front) the length a `String` or
/// byte buffer announces, so corrupt bytes could make the parent allocate
/// gigabytes; an honest payload never claims more than its own length (serde
/// sequences grow as they decode), so a bogus length beyond the limit is an
/// error before anything is allocated. The largest (4 GiB) is the largest frame.
const LIMITS: [usize; 5] = [1 << 16, 1 << 20, 1 << 24, 1 << 28, u32::MAX as usize];
/// How much more than its input a decode may claim.
const CLAIM_FACTOR: usize = 32;
/// How many more elements (of sequences, entries of maps) than its input
/// has bytes a decode may read: every element takes at least a byte, but
/// for types that take none (see `decode_seed`).
const ELEMENTS_BEYOND_BYTES: usize = 1 << 20;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn limited<const N: usize>() -> Configuration<LittleEndian, Varint, Limit<N>> {
    bincode::config::standard().with_limit::<N>()
}

/// Decodes from the start of `bytes` with a claim limit scaled to its length
/// and the nesting limit.
fn decode_scaled<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
    decode_limited::<depth::Bounded<T>>(bytes).map(|(value, used)| (value.0, used))
}

/// Decodes from the start of `bytes` with a claim limit scaled to its length.
fn decode_limited<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
    decode_seed(std::marker::PhantomData::<T>, bytes)
}

/// Decodes `seed` from the start of `bytes` with a claim limit scaled to
/// its length.
fn decode_seed<'de, S: DeserializeSeed<'de>>(
    seed: S,
    bytes: &'de [u8],
) -> Result<(S::Value, usize), String> {
    use bincode::serde::seed_decode_from_slice as decode;
    let wanted = bytes.len().saturating_mul(CLAIM_FACTOR);
    let limit = LIMITS
        .into_iter()
        .find(|&l| l >= wanted)
        .unwrap_or(LIMITS[LIMITS.len() - 1]);
    // Elements of sequences and maps cost no claim when they are of a type
    // that takes no bytes (`()`, unit structs): a few bytes could announce
    // 2^62 of them, and reading them would take for ever.
    let elements = bytes.len().saturating_add(ELEMENTS_BEYOND_BYTES);
    let decoded = depth::with_element_budget(elements, || match limit {
        l if l == LIMITS[0] => decode(seed, bytes, limited::<{ 1 << 16 }>()),
        l if l == LIMITS[1] => decode(seed, bytes, limited::<{ 1 << 20 }>()),
        l if l == LIMITS[2] => decode(seed, bytes, limited::<{ 1 << 24 }>()),
        l if l == LIMITS[3] => decode(seed, bytes, limited::<{ 1 << 28 }>()),
        _ => decode(seed, bytes, limited::<{ u32::MAX as usize }>()),
    });
    decoded.map_err(wording::decode_error)
}

/// Encodes a value; the error is the encoder's message. Starts from a
/// spare buffer of this thread if it has one (see [`crate::buffers::recycle`]):
/// a worker recycles each result's buffer once it is sent.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = crate::buffers::spare_buffer(0).unwrap_or_default();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the encoding of a value to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    bincode::serde::encode_into_writer(depth::Limited(value), VecWriter(out), config())
        .map_err(wording::encode_error)
}

/// bincode's output straight onto a `Vec` (not through `std::io::Write`,
/// whose `write_all` loop and byte count cost more than the write of a
/// one-byte integer).
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Runs a decode for a caller (never in a worker, where a panicking
/// `Deserialize` is the task's panic, reported as such): a `Deserialize`
/// that panics is an error carrying its message, not a panic of the
/// caller's thread.
pub(crate) fn caller_side<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    guarded("Deserialize", decode)
}

/// [`encode_into`] for a caller's call: a `Serialize` that panics is an
/// error carrying its message (and `out` is left as it was), not a panic of
/// the caller's thread, as a `Deserialize` that panics is
/// ([`caller_side`]).
pub(crate) fn caller_encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let start = out.len();
    let encoded = guarded("Serialize", || encode_into(value, out));
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

/// [`encode`] for a caller's call: a `Serialize` that panics is an error
/// (see [`caller_encode_into`]).
pub(crate) fn caller_encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = crate::buffers::spare_buffer(0).unwrap_or_default();
    caller_encode_into(value, &mut out)?;
    Ok(out)
}

/// Runs `f`; a panic in it (in the user's `what` impl) becomes an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(done) => done,
        Err(payload) => {
            let why = format!("its {what} panicked: {}", panic_message(&payload));
            unwind::discard(payload);
            Err(why)
        }
    }
}

/// A caught panic's message, or says it has none.
pub(crate) fn panic_message(payload: &unwind::Payload) -> &str {
    unwind::message(&**payload).unwrap_or("a panic without a message")
}

/// Decodes a value from the start of `bytes`; returns it and the bytes used.
pub(crate) fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
    decode_scaled(bytes)
}

/// Decodes `count` value records from the start of `bytes` in one pass,
/// appending the values to `out` (each under the nesting limit, the claim
/// limit scaled to `bytes` as a whole). A record is a tag byte, then the
/// value if the tag is `short` or more (its length is in the tag), or four
/// length bytes and the value if it is `long` (the lengths are skipped, not
/// checked: see [`crate::chunk`]). `Err` at the first record that is
/// not so, or does not decode: the values before it stay in `out`. Returns
/// the bytes used.
pub(crate) fn decode_records<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
    short: u8,
    long: u8,
    out: &mut Vec<T>,
) -> Result<usize, String> {
    let records = Records {
        count,
        short,
        long,
        out,
    };
    decode_seed(records, bytes).map(|((), used)| used)
}

/// The records [`decode_records`] reads (bincode writes a tuple's elements
/// one after the other, nothing around them).
struct Records<'a, T> {
    count: usize,
    short: u8,
    long: u8,
    out: &'a mut Vec<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Records<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // At most three elements per record: its tag, length and value.
        deserializer.deserialize_tuple(self.count.saturating_mul(3), self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Records<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} value records", self.count)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let ended = || A::Error::custom("the records ended early");
        self.out.reserve(self.count);
        for _ in 0..self.count {
            let tag: u8 = seq.next_element()?.ok_or_else(ended)?;
            if tag < self.short {
                if tag != self.long {
                    return Err(A::Error::custom(format!("a record tagged {tag}")));
                }
                let _len: [u8; 4] = seq.next_element()?.ok_or_else(ended)?;
            }
            let value: depth::Bounded<T> = seq.next_element()?.ok_or_else(ended)?;
            self.out.push(value.0);
        }
        Ok(())
    }
}

/// Decodes a value that must use every byte: leftovers mean the two sides
/// disagree about the type, and decoding them as something else would be garbage.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) = decode_scaled::<T>(bytes)?;
    if used != bytes.len() {
        return Err(format!(
            "{} of {} bytes left over: the types on the two sides differ",
            bytes.len() - used,
            bytes.len()
        ));
    }
    Ok(value)
}

/// Bytes serialized as one block. bincode writes a block exactly as it
/// writes the same bytes as a sequence (length, then one byte each), so
/// either side may use this for a `Vec<u8>` the other side sends or reads
/// the usual way; it is just much faster.
pub(crate) struct BytesOut<'a>(pub(crate) &'a [u8]);

impl Serialize for BytesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Appends the length prefix of a block of `len` bytes: [`BytesOut`] of
/// those bytes is this, then the bytes themselves. (A split frame sends the
/// prefix in its head and the bytes as its tail.)
pub(crate) fn encode_len(len: usize, out: &mut Vec<u8>) {
    // A u64 under this configuration is the varint a block's length is.
    let _ = encode_into(&(len as u64), out);
}

/// Whether `bytes` is exactly the length prefix of a block of `len` bytes.
pub(crate) fn is_len_of(bytes: &[u8], len: usize) -> bool {
    matches!(decode_prefix::<u64>(bytes), Ok((l, used)) if used == bytes.len() && l == len as u64)
}

/// Bytes deserialized as one block (see [`BytesOut`]).
pub(crate) struct BytesIn(pub(crate) Vec<u8>);

impl<'de> Deserialize<'de> for BytesIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Block;
        impl<'de> Visitor<'de> for Block {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(Block).map(BytesIn)
    }
}

/// Encodes one of procpool's own messages (a panic report, an error
/// description).
pub(crate) fn encode_meta<T: Serialize>(value: &T) -> Vec<u8> {
    // Only procpool's own plain structs go through here; they always encode.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

/// The most procpool's own messages (panic reports, error descriptions) may
/// weigh, and so claim, when decoded. Within it the claim limit is scaled
/// to the message's bytes, as a value's is: a corrupt length fails before
/// anything is reserved for it (under a fixed 64 MiB limit, a 22-byte
/// message announcing 32 MiB had the caller allocate them).
const META_LIMIT: usize = 64 << 20;

/// The most a worker lets a failure reply (a panic report, an error with
/// its texts) weigh before it cuts its texts down: half of what
/// [`decode_meta`] accepts, so a report cut to fit always decodes, whatever
/// the frame limit.
pub(crate) const META_ROOM: usize = META_LIMIT / 2;

pub(crate) fn decode_meta<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > META_LIMIT {
        return Err(format!(
            "undecodable reply body: {} bytes, over the {META_LIMIT}-byte limit of \
             procpool's own messages",
            bytes.len()
        ));
    }
    match decode_limited(bytes) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(format!(
            "{} trailing bytes after a reply",
            bytes.len() - used
        )),
        Err(e) => Err(format!("undecodable reply body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_records_decode_in_one_pass_and_stop_at_anything_else() {
        // Short records (tag 16 + length) and long ones (tag 0, four
        // length bytes), as a chunk's reply has them.
        let values: Vec<String> = (0..300).map(|i| "v".repeat(i % 7 * 50)).collect();
        let mut records = Vec::new();
        for v in &values {
            let mut value = Vec::new();
            encode_into(v, &mut value).unwrap();
            if value.len() <= 239 {
                records.push(16 + value.len() as u8);
            } else {
                records.push(0);
                records.extend_from_slice(&(value.len() as u32).to_le_bytes());
            }
            records.extend_from_slice(&value);
        }
        let decode = |bytes: &[u8], count: usize, out: &mut Vec<String>| {
            decode_records(bytes, count, 16, 0, out)
        };
        let mut out: Vec<String> = Vec::new();
        assert_eq!(decode(&records, 300, &mut out), Ok(records.len()));
        assert_eq!(out, values);
        // Fewer asked for: the bytes used say where they end.
        let mut out: Vec<String> = Vec::new();
        let used = decode(&records, 2, &mut out).unwrap();
        let third = encode(&values[2]).unwrap();
        assert_eq!((out.len(), records[used]), (2, 16 + third.len() as u8));
        // Another tag, bytes cut short, a value of another type, a length
        // claimed beyond the input: errors, with the values before kept.
        let mut out: Vec<String> = Vec::new();
        let mut other = records.clone();
        other[0] = 1;
        assert!(decode(&other, 300, &mut out).is_err());
        assert!(out.is_empty());
        let mut out: Vec<String> = Vec::new();
        assert!(decode(&records[..records.len() - 1], 300, &mut out).is_err());
        assert_eq!(out.len(), 299);
        let mut bad = records.clone();
        bad.extend_from_slice(&[16 + 5, 252]);
        bad.extend_from_slice(&(3u32 << 30).to_le_bytes());
        let mut out: Vec<String> = Vec::new();
        assert!(decode(&bad, 301, &mut out).is_err());
        assert_eq!(out.len(), 300);
        // Values of another type: an error, or not the records' bytes
        // exactly (the lengths are not checked here; the caller checks the
        // bytes used).
        let mut out: Vec<u8> = Vec::new();
        assert_ne!(
            decode_records(&records, 300, 16, 0, &mut out),
            Ok(records.len())
        );
    }

    /// procpool's own messages (a panic report, a worker's error, a FATAL
    /// message, a distributed pool's failure) were read with a fixed 64 MiB
    /// claim limit, so a corrupt length in a frame of 22 bytes had the
    /// caller allocate (and zero) the 32 MiB it announced before finding
    /// the bytes missing (found by `crate::fuzz`). They are read as values
    /// are now, the claim limit scaled to the input (and at most 64 MiB).
    #[test]
    fn procpool_messages_never_claim_what_their_bytes_cannot_hold() {
        use crate::alloc_probe::largest_allocation;
        use crate::wire::{PanicReport, RemoteError};
        let report = |message: &str| PanicReport {
            message: message.into(),
            location: "src/lib.rs:1:2".into(),
            backtrace: Some("0: f".into()),
        };
        for announced in [1u32 << 16, 1 << 20, 32 << 20, (64 << 20) - 1] {
            // A message text whose length says `announced`, in 14 bytes.
            let mut bytes = vec![252];
            bytes.extend_from_slice(&announced.to_le_bytes());
            bytes.extend_from_slice(b"a message");
            let (decoded, largest) = largest_allocation(|| decode_meta::<String>(&bytes));
            assert!(decoded.is_err());
            assert!(
                largest <= 64 << 10,
                "{largest} bytes asked for {announced} announced"
            );
            // The same inside a panic report and a worker's error.
            let mut report = vec![1, b'm'];
            report.extend_from_slice(&bytes);
            let (decoded, largest) = largest_allocation(|| decode_meta::<PanicReport>(&report));
            assert!(decoded.is_err());
            assert!(
                largest <= 64 << 10,
                "{largest} bytes asked for {announced} announced"
            );
            let mut error = vec![3];
            error.extend_from_slice(&bytes);
            let (decoded, largest) = largest_allocation(|| decode_meta::<RemoteError>(&error));
            assert!(decoded.is_err());
            assert!(
                largest <= 64 << 10,
                "{largest} bytes asked for {announced} announced"
            );
        }
        // Honest messages of every size still decode, up to the limit.
        for len in [0, 100, 70_000, 3 << 20] {
            let report = report(&"m".repeat(len));
            let bytes = encode_meta(&report);
            assert_eq!(decode_meta::<PanicReport>(&bytes), Ok(report));
        }
        let over = encode_meta(&"m".repeat(64 << 20));
        assert!(decode_meta::<String>(&over).is_err());
    }

    #[test]
    fn byte_blocks_match_byte_sequences() {
        for len in [0usize, 1, 127, 250, 251, 300, 65_535, 65_536, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let as_seq = encode(&v).unwrap();
            let as_block = encode(&BytesOut(&v)).unwrap();
            assert_eq!(as_seq, as_block, "length {len}");
            assert_eq!(decode::<BytesIn>(&as_seq).unwrap().0, v);
            assert_eq!(decode::<Vec<u8>>(&as_block).unwrap(), v);
            let mut split = Vec::new();
            encode_len(len, &mut split);
            assert!(is_len_of(&split, len));
            assert!(!is_len_of(&split, len + 1));
            split.extend_from_slice(&v);
            assert_eq!(split, as_block, "prefix + bytes, length {len}");
        }
    }
}

/// Property tests: decoding arbitrary bytes as common payload types returns
/// an error or a value, never a panic or an allocation of an announced
/// length. `PROPTEST_CASES` sets the number of cases (default 256).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use std::collections::HashMap;

    use super::decode;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<String>(&bytes);
            let _ = decode::<Vec<u8>>(&bytes);
            let _ = decode::<super::BytesIn>(&bytes);
            let _ = decode::<Vec<String>>(&bytes);
            let _ = decode::<(u64, Vec<u64>, Option<String>)>(&bytes);
            let _ = decode::<HashMap<String, Vec<u8>>>(&bytes);
        }

        #[test]
        fn huge_announced_lengths_are_errors(len in (1u64 << 33)..u64::MAX) {
            // A varint: marker 253, then the length as a u64.
            let mut bytes = vec![253];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&[1, 2, 3]);
            prop_assert!(decode::<String>(&bytes).is_err());
            prop_assert!(decode::<Vec<u64>>(&bytes).is_err());
            prop_assert!(decode::<super::BytesIn>(&bytes).is_err());
        }
    }

    /// A 3 GiB length announced in a 12-byte input is refused before any
    /// allocation: under the old fixed 4 GiB limit it was reserved up front.
    #[test]
    fn a_large_length_in_a_small_input_is_refused_before_allocating() {
        // A varint: marker 252, then the length as a u32.
        let mut bytes = vec![252];
        bytes.extend_from_slice(&(3u32 << 30).to_le_bytes());
        bytes.extend_from_slice(b"abcdefg");
        let begun = std::time::Instant::now();
        let error = decode::<String>(&bytes).unwrap_err();
        assert!(error.contains("Limit"), "{error}");
        // A serde sequence grows as it decodes: it runs out of input instead.
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(begun.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn honest_payloads_decode_at_every_size() {
        for len in [0usize, 10, 3000, 70_000, 2_000_000] {
            let text = "x".repeat(len);
            let bytes = super::encode(&text).unwrap();
            assert_eq!(decode::<String>(&bytes).unwrap(), text);
            let many = vec![String::from("ab"); len / 100];
            let bytes = super::encode(&many).unwrap();
            assert_eq!(decode::<Vec<String>>(&bytes).unwrap(), many);
        }
    }
}

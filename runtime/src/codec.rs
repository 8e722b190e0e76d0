//! The bincode codec for task arguments and results.

use serde::de::DeserializeOwned;
use serde::Serialize;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

/// The most a decode may claim (reserve) in all: a frame is at most 4 GiB,
/// so no honest payload needs more. Without a limit, bincode reserves
/// whatever length corrupt bytes announce for a `String` or `Vec` and can
/// panic with "capacity overflow"; with it, such a length is an error.
/// (A bogus length under the limit is reserved lazily zeroed, so it costs
/// address space, not memory, before the decode fails.)
const DECODE_LIMIT: usize = u32::MAX as usize;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn decode_config() -> Configuration<LittleEndian, Varint, Limit<DECODE_LIMIT>> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value; the error is the encoder's message.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| e.to_string())
}

/// Appends the encoding of a value to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Decodes a value from the start of `bytes`; returns it and the bytes used.
pub(crate) fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), String> {
    bincode::serde::decode_from_slice(bytes, decode_config()).map_err(|e| e.to_string())
}

/// Decodes a value that must use every byte: leftovers mean the two sides
/// disagree about the type, and decoding them as something else would be garbage.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, decode_config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} of {} bytes left over: the types on the two sides differ",
            bytes.len() - used,
            bytes.len()
        ));
    }
    Ok(value)
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
        }
    }
}

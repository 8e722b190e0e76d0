//! The bincode codec for task arguments and results.

use serde::de::DeserializeOwned;
use serde::Serialize;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value; the error is the encoder's message. Starts from a
/// spare buffer of this thread if it has one (see [`crate::wire::recycle`]):
/// a worker recycles each result's buffer once it is sent.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = crate::wire::spare_buffer(0).unwrap_or_default();
    encode_into(value, &mut out)?;
    Ok(out)
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
    bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())
}

/// Decodes a value that must use every byte: leftovers mean the two sides
/// disagree about the type, and decoding them as something else would be garbage.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} of {} bytes left over: the types on the two sides differ",
            bytes.len() - used,
            bytes.len()
        ));
    }
    Ok(value)
}

//! How bincode's errors read in procpool's errors: a sentence, not the
//! `Debug` form bincode's `Display` gives (`OtherString("…")`,
//! `UnexpectedEnd { additional: 3 }`), ending with bincode's name for the
//! error in brackets (`[UnexpectedEnd]`), which the README and searches
//! find. A message from a `Serialize` or `Deserialize` impl (serde's
//! `custom` errors, the nesting limit's) comes through as it was written.

use bincode::error::{AllowedEnumVariants, DecodeError, EncodeError, IntegerType};
use bincode::serde::{DecodeError as SerdeDecode, EncodeError as SerdeEncode};

/// The words for a failed decode.
pub(crate) fn decode_error(error: DecodeError) -> String {
    let (text, code) = match error {
        DecodeError::OtherString(message) => return message,
        DecodeError::Other(message) => return message.to_string(),
        DecodeError::UnexpectedEnd { additional } => (
            format!("the bytes end {additional} bytes too soon"),
            "UnexpectedEnd",
        ),
        DecodeError::LimitExceeded => (
            "a length in the bytes claims more memory than bytes of their size can hold \
             (corrupt, or not of this type)"
                .to_string(),
            "LimitExceeded",
        ),
        DecodeError::InvalidIntegerType { expected, found } => (
            format!(
                "an integer in the form of {} where {} was expected",
                integer(&found),
                integer(&expected)
            ),
            "InvalidIntegerType",
        ),
        DecodeError::NonZeroTypeIsZero { non_zero_type } => (
            format!("0 for a non-zero {}", integer(&non_zero_type)),
            "NonZeroTypeIsZero",
        ),
        DecodeError::UnexpectedVariant {
            type_name,
            allowed,
            found,
        } => (
            format!(
                "variant {found} of `{type_name}`, which has {}",
                variants(allowed)
            ),
            "UnexpectedVariant",
        ),
        DecodeError::Utf8 { inner } => (format!("a string that is not UTF-8: {inner}"), "Utf8"),
        DecodeError::InvalidCharEncoding(bytes) => (
            format!("bytes {bytes:02x?} that are not a char"),
            "InvalidCharEncoding",
        ),
        DecodeError::InvalidBooleanValue(value) => (
            format!("{value} for a bool, which is 0 or 1"),
            "InvalidBooleanValue",
        ),
        DecodeError::ArrayLengthMismatch { required, found } => (
            format!("an array of {found} elements where {required} were expected"),
            "ArrayLengthMismatch",
        ),
        DecodeError::OutsideUsizeRange(value) => (
            format!("{value} does not fit in a usize"),
            "OutsideUsizeRange",
        ),
        DecodeError::EmptyEnum { type_name } => (
            format!("a value of `{type_name}`, an enum without variants"),
            "EmptyEnum",
        ),
        DecodeError::InvalidDuration { secs, nanos } => (
            format!("a Duration of {secs} s and {nanos} ns, out of range"),
            "InvalidDuration",
        ),
        DecodeError::InvalidSystemTime { duration } => (
            format!("a SystemTime {duration:?} after the epoch, out of range"),
            "InvalidSystemTime",
        ),
        DecodeError::CStringNulError { position } => (
            format!("a CString with a nul byte at {position}"),
            "CStringNulError",
        ),
        DecodeError::Io { inner, additional } => {
            (format!("{inner} ({additional} more bytes needed)"), "Io")
        }
        DecodeError::Serde(serde) => match serde_decode_words(&serde) {
            Some(words) => words,
            None => return format!("{:?}", DecodeError::Serde(serde)),
        },
        other => return format!("{other:?}"),
    };
    format!("{text} [{code}]")
}

/// [`decode_error`]'s words and bincode's name for what serde asked of
/// bincode that it cannot do; `None` for another serde error.
fn serde_decode_words(error: &SerdeDecode) -> Option<(String, &'static str)> {
    Some(match error {
        SerdeDecode::AnyNotSupported => (
            format!(
                "the type must be read by `deserialize_any` (an untagged or internally \
                 tagged enum, a self-describing value such as `serde_json::Value`), which \
                 bincode cannot do{JSON}"
            ),
            "AnyNotSupported",
        ),
        SerdeDecode::IdentifierNotSupported => (
            format!(
                "the type reads an identifier (`deserialize_identifier`), which bincode \
                 cannot do{JSON}"
            ),
            "IdentifierNotSupported",
        ),
        SerdeDecode::IgnoredAnyNotSupported => (
            format!(
                "the type skips a value (`deserialize_ignored_any`), which bincode cannot \
                 do{JSON}"
            ),
            "IgnoredAnyNotSupported",
        ),
        SerdeDecode::CannotBorrowOwnedData => (
            "the type borrows from its bytes (`&str`, `&[u8]`): take an owned type \
             (`String`, `Vec<u8>`)"
                .to_string(),
            "CannotBorrowOwnedData",
        ),
        _ => return None,
    })
}

/// The words for a failed encode.
pub(crate) fn encode_error(error: EncodeError) -> String {
    let (text, code) = match error {
        EncodeError::OtherString(message) => return message,
        EncodeError::Other(message) => return message.to_string(),
        EncodeError::UnexpectedEnd => ("the output has no room left".to_string(), "UnexpectedEnd"),
        EncodeError::RefCellAlreadyBorrowed { type_name, .. } => (
            format!("a `RefCell<{type_name}>` was borrowed mutably while it was being encoded"),
            "RefCellAlreadyBorrowed",
        ),
        EncodeError::InvalidPathCharacters => (
            "a path that is not UTF-8".to_string(),
            "InvalidPathCharacters",
        ),
        EncodeError::Io { inner, index } => (format!("{inner} (at byte {index})"), "Io"),
        EncodeError::LockFailed { type_name } => (
            format!("the lock around a `{type_name}` is poisoned"),
            "LockFailed",
        ),
        EncodeError::InvalidSystemTime { inner, .. } => (
            format!("a SystemTime before the epoch: {inner}"),
            "InvalidSystemTime",
        ),
        EncodeError::Serde(SerdeEncode::SequenceMustHaveLength) => (
            format!(
                "a sequence or map whose length is not known up front (`#[serde(flatten)]`, \
                 `serialize_seq(None)`), which bincode cannot write{JSON}"
            ),
            "SequenceMustHaveLength",
        ),
        other => return format!("{other:?}"),
    };
    format!("{text} [{code}]")
}

/// The way out for types bincode cannot carry.
const JSON: &str = "; `procpool::Json<T>` (cargo feature `json`) carries such a type";

fn integer(kind: &IntegerType) -> String {
    match kind {
        IntegerType::Reserved => "a reserved marker".to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn variants(allowed: &AllowedEnumVariants) -> String {
    match allowed {
        AllowedEnumVariants::Range { min, max } => format!("variants {min} to {max}"),
        AllowedEnumVariants::Allowed(list) => format!("variants {list:?}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bincode_errors_read_as_sentences() {
        let cases = [
            (
                decode_error(DecodeError::OtherString("Touchy refuses 15".into())),
                "Touchy refuses 15",
            ),
            (
                decode_error(DecodeError::UnexpectedEnd { additional: 3 }),
                "the bytes end 3 bytes too soon [UnexpectedEnd]",
            ),
            (
                decode_error(DecodeError::InvalidBooleanValue(2)),
                "2 for a bool, which is 0 or 1 [InvalidBooleanValue]",
            ),
            (
                decode_error(DecodeError::InvalidIntegerType {
                    expected: IntegerType::U16,
                    found: IntegerType::U32,
                }),
                "an integer in the form of u32 where u16 was expected [InvalidIntegerType]",
            ),
            (
                decode_error(DecodeError::UnexpectedVariant {
                    type_name: "Shape",
                    allowed: &AllowedEnumVariants::Range { min: 0, max: 2 },
                    found: 7,
                }),
                "variant 7 of `Shape`, which has variants 0 to 2 [UnexpectedVariant]",
            ),
            (
                encode_error(EncodeError::OtherString("Fussy refuses".into())),
                "Fussy refuses",
            ),
            (
                encode_error(EncodeError::Serde(SerdeEncode::SequenceMustHaveLength)),
                "a sequence or map whose length is not known up front \
                 (`#[serde(flatten)]`, `serialize_seq(None)`), which bincode cannot write; \
                 `procpool::Json<T>` (cargo feature `json`) carries such a type \
                 [SequenceMustHaveLength]",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let limit = decode_error(DecodeError::LimitExceeded);
        assert!(
            limit.starts_with("a length in the bytes claims more memory"),
            "{limit}"
        );
        let any = decode_error(DecodeError::Serde(SerdeDecode::AnyNotSupported));
        assert!(any.contains("deserialize_any"), "{any}");
        assert!(any.ends_with("[AnyNotSupported]"), "{any}");
    }
}

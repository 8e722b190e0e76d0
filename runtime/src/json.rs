//! [`Json<T>`]: a value that crosses the channel as JSON (the `json`
//! feature), for types whose serde attributes need a self-describing format.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A task argument or result that travels as JSON text instead of
/// procpool's compact binary encoding (with the `json` cargo feature).
///
/// procpool's wire format (bincode) is not self-describing: the reader
/// must know every field's type and every sequence's length in advance.
/// Some serde attributes need the opposite, and fail at run time with
/// bincode: `#[serde(flatten)]` (the encoder cannot know the length of the
/// flattened map: `SequenceMustHaveLength`), `#[serde(untagged)]` and
/// `#[serde(tag = "...")]` enums (the decoder must guess the variant from the
/// data: `AnyNotSupported`), and `skip_serializing_if` (a skipped field is
/// simply missing, so the fields after it decode as the wrong ones: errors
/// such as `UnexpectedVariant`, or wrong values). Wrap such a type in
/// `Json` and it works, at the cost of JSON's size and speed:
///
/// ```
/// use std::collections::BTreeMap;
/// use procpool::{pool_task, Json, Pool};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Record {
///     id: u32,
///     #[serde(flatten)]
///     extra: BTreeMap<String, String>,
/// }
///
/// #[pool_task]
/// fn extra_fields(record: Json<Record>) -> Json<Vec<String>> {
///     Json(record.0.extra.into_keys().collect())
/// }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(1)?;
///     let extra = BTreeMap::from([("colour".to_string(), "red".to_string())]);
///     let keys = apply_extra_fields(&pool, Json(Record { id: 7, extra }))?;
///     assert_eq!(keys.0, ["colour"]);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The wrapped value.
    ///
    /// ```
    /// assert_eq!(procpool::Json(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Json(value)
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Written as one block of bytes: the value's JSON text. The value's
/// nesting is limited as a bincode value's is, both ways: serde_json's
/// writer has no limit of its own (a value a million levels deep would
/// overflow the stack), and its reader's counts only brackets, while a
/// level of a `Some` or a newtype takes none (a `struct Nest(Option<Box<Nest>>)`
/// read from the text `5` recursed until the stack overflowed).
impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_vec(&crate::codec::Limited(&self.0))
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&text)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text<T>(std::marker::PhantomData<T>);
        impl<T: DeserializeOwned> Visitor<'_> for Text<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value's JSON text as bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T, E> {
                // `serde_json::from_slice`, with the levels counted.
                let mut reader = serde_json::Deserializer::from_slice(v);
                let value =
                    crate::codec::Bounded::<T>::deserialize(&mut reader).map_err(E::custom)?;
                reader.end().map_err(E::custom)?;
                Ok(value.0)
            }
        }
        deserializer
            .deserialize_bytes(Text(std::marker::PhantomData))
            .map(Json)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::Json;
    use crate::codec::{decode, encode};

    /// A list whose every level is a newtype and an `Option`: in JSON a
    /// level takes no bracket (`Some(x)` is written as `x`), so serde_json's
    /// own limit (brackets 128 deep) never counts them.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Nest(Option<Box<Nest>>);

    #[test]
    fn json_text_that_recurses_without_brackets_is_an_error_not_a_stack_overflow() {
        // Every honest `Nest` is the text `null`; any other text made
        // serde_json recurse (a `Some` each level, nothing consumed) until
        // the stack overflowed and the process aborted.
        let honest = encode(&Json(Nest(Some(Box::new(Nest(None)))))).unwrap();
        assert_eq!(decode::<Json<Nest>>(&honest).unwrap().0, Nest(None));
        for text in ["5", "\"x\"", "[1]", "{}", "true"] {
            let bytes = encode(&serde_bytes::Bytes::new(text.as_bytes())).unwrap();
            let decoded = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || decode::<Json<Nest>>(&bytes).map(|_| ()))
                .unwrap()
                .join()
                .unwrap();
            let error = decoded.unwrap_err();
            assert!(error.contains("nests"), "{text}: {error}");
        }
    }
}

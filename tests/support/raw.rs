//! [`Raw`]: a task result whose bytes are exactly the ones given, to send a
//! caller bytes no honest worker would.

/// Result bytes exactly as given: a tuple of bytes has no length prefix.
#[derive(Debug)]
pub struct Raw(pub Vec<u8>);

impl serde::Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = s.serialize_tuple(self.0.len())?;
        for b in &self.0 {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }
}

impl<'de> serde::Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("Raw is only ever sent"))
    }
}

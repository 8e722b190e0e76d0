//! A limit on how deeply a value may nest, enforced while it is encoded and
//! while it is decoded, so that neither side can overflow its stack on a
//! value (a 100,000-deep list, a damaged frame) and a partly decoded value
//! is shallow enough to drop.
//!
//! serde serializers and deserializers recurse once per level of nesting,
//! and so does dropping the value. These wrappers go between serde and the
//! format and count the levels on the way down: every `Some`, newtype,
//! sequence, tuple, map, struct and enum variant with data is one level,
//! counted the same way on both sides, so whatever encodes also decodes.
//! A value nested deeper than [`MAX_DEPTH`] is an error, not a crash.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};

/// The deepest nesting a value may have. Decoding through these wrappers
/// took about 150 bytes of stack per level in a release build and 1.1 KiB
/// in an unoptimized one on a linked list (400 B and 1.4 KiB per node on an
/// enum tree), so a value at the limit decodes (and drops) on a 2 MiB
/// thread, tokio's default and the callback thread's, with room to spare
/// for the caller's own frames.
pub(crate) const MAX_DEPTH: usize = 512;

fn too_deep() -> String {
    format!(
        "the value nests deeper than {MAX_DEPTH} levels (each Option, newtype, \
         sequence, tuple, map, struct and enum variant counts one), procpool's \
         limit against stack overflows"
    )
}

/// `value`, serialized with its nesting counted.
pub(crate) struct Limited<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for Limited<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Ser {
            inner: serializer,
            depth: 0,
        })
    }
}

/// A nested value, serialized at `depth`.
struct Nested<'a, T: ?Sized> {
    value: &'a T,
    depth: usize,
}

impl<T: Serialize + ?Sized> Serialize for Nested<'_, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Ser {
            inner: serializer,
            depth: self.depth,
        })
    }
}

/// The level below `depth`, or the error if that is too deep.
#[inline(always)]
fn deeper<E>(depth: usize, error: impl FnOnce(String) -> E) -> Result<usize, E> {
    if depth >= MAX_DEPTH {
        return Err(too_deep_error(error));
    }
    Ok(depth + 1)
}

#[cold]
#[inline(never)]
fn too_deep_error<E>(error: impl FnOnce(String) -> E) -> E {
    error(too_deep())
}

struct Ser<S> {
    inner: S,
    depth: usize,
}

impl<S: Serializer> Ser<S> {
    #[inline]
    fn deeper(&self) -> Result<usize, S::Error> {
        deeper(self.depth, <S::Error as ser::Error>::custom)
    }
}

/// A compound (sequence, tuple, map, struct) whose elements are at `depth`.
struct Compound<C> {
    inner: C,
    depth: usize,
}

macro_rules! forward_ser {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Ser<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward_ser! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let depth = self.deeper()?;
        self.inner.serialize_some(&Nested { value, depth })
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = self.deeper()?;
        self.inner
            .serialize_newtype_struct(name, &Nested { value, depth })
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = self.deeper()?;
        self.inner
            .serialize_newtype_variant(name, index, variant, &Nested { value, depth })
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self.inner.serialize_seq(len)?,
            depth,
        })
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self.inner.serialize_tuple(len)?,
            depth,
        })
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self.inner.serialize_tuple_struct(name, len)?,
            depth,
        })
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self
                .inner
                .serialize_tuple_variant(name, index, variant, len)?,
            depth,
        })
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self.inner.serialize_map(len)?,
            depth,
        })
    }

    #[inline]
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self.inner.serialize_struct(name, len)?,
            depth,
        })
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let depth = self.deeper()?;
        Ok(Compound {
            inner: self
                .inner
                .serialize_struct_variant(name, index, variant, len)?,
            depth,
        })
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_element(&Nested { value, depth })
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_element(&Nested { value, depth })
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_field(&Nested { value, depth })
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_field(&Nested { value, depth })
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_key(&Nested { value: key, depth })
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_value(&Nested { value, depth })
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_field(key, &Nested { value, depth })
    }
    #[inline]
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let depth = self.depth;
        self.inner.serialize_field(key, &Nested { value, depth })
    }
    #[inline]
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }
    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

/// `T`, deserialized with its nesting counted.
pub(crate) struct Bounded<T>(pub(crate) T);

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Bounded<T> {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(De {
            inner: deserializer,
            depth: 0,
        })
        .map(Bounded)
    }
}

/// A deserializer at `depth`.
struct De<D> {
    inner: D,
    depth: usize,
}

/// A visitor at `depth`: the levels it opens are `depth + 1`.
struct Visit<V> {
    inner: V,
    depth: usize,
}

/// A seed whose value is at `depth`.
struct Seed<S> {
    inner: S,
    depth: usize,
}

/// Access to the elements, entries or variant of a level, at `depth`.
struct Access<A> {
    inner: A,
    depth: usize,
}

macro_rules! forward_de {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Visit { inner: visitor, depth: self.depth })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<D> {
    type Error = D::Error;

    forward_de! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Visit<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
        let depth = deeper(self.depth, <D::Error as de::Error>::custom)?;
        self.inner.visit_some(De { inner, depth })
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
        let depth = deeper(self.depth, <D::Error as de::Error>::custom)?;
        self.inner.visit_newtype_struct(De { inner, depth })
    }

    #[inline]
    fn visit_seq<A: de::SeqAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let depth = deeper(self.depth, <A::Error as de::Error>::custom)?;
        self.inner.visit_seq(Access { inner, depth })
    }

    #[inline]
    fn visit_map<A: de::MapAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let depth = deeper(self.depth, <A::Error as de::Error>::custom)?;
        self.inner.visit_map(Access { inner, depth })
    }

    /// The enum itself is no level: its variant is (as when serialized).
    #[inline]
    fn visit_enum<A: de::EnumAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Access {
            inner,
            depth: self.depth,
        })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, inner: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(De {
            inner,
            depth: self.depth,
        })
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let depth = self.depth;
        self.inner.next_element_seed(Seed { inner: seed, depth })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let depth = self.depth;
        self.inner.next_key_seed(Seed { inner: seed, depth })
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.next_value_seed(Seed { inner: seed, depth })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Access<A> {
    type Error = A::Error;
    type Variant = Access<A::Variant>;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Access<A::Variant>), A::Error> {
        let depth = self.depth;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, depth })?;
        Ok((
            value,
            Access {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    /// A newtype variant is a level, as when serialized.
    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let depth = deeper(self.depth, <A::Error as de::Error>::custom)?;
        self.inner.newtype_variant_seed(Seed { inner: seed, depth })
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.tuple_variant(
            len,
            Visit {
                inner: visitor,
                depth,
            },
        )
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.struct_variant(
            fields,
            Visit {
                inner: visitor,
                depth,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::MAX_DEPTH;
    use crate::codec::{decode, encode};

    /// Every kind of level; `levels` says how many each costs.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        End,
        Newtype(Box<Shape>),
        Tuple(Box<Shape>, u8),
        Struct { inner: Box<Shape> },
        Seq(Vec<Shape>),
        Map(BTreeMap<u8, Shape>),
        Opt(Option<Box<Shape>>),
        Wrapped(Wrapper),
        Pair((Box<Shape>, u8)),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper(Box<Shape>);

    /// A value exactly `depth` levels deep, using every kind in turn.
    fn shape(depth: usize) -> Shape {
        let mut value = Shape::End;
        let mut left = depth;
        let mut kind = 0;
        while left > 0 {
            // One-level kinds when only one level is left.
            let k = if left == 1 { kind % 3 } else { kind % 9 };
            kind += 1;
            let (next, cost) = match k {
                0 => (Shape::Newtype(Box::new(value)), 1),
                1 => (Shape::Tuple(Box::new(value), 7), 1),
                2 => (
                    Shape::Struct {
                        inner: Box::new(value),
                    },
                    1,
                ),
                3 => (Shape::Seq(vec![value]), 2),
                4 => (Shape::Map(BTreeMap::from([(1, value)])), 2),
                5 => (Shape::Opt(Some(Box::new(value))), 2),
                6 => (Shape::Wrapped(Wrapper(Box::new(value))), 2),
                7 => (Shape::Pair((Box::new(value), 3)), 2),
                _ => (Shape::Newtype(Box::new(value)), 1),
            };
            value = next;
            left -= cost;
        }
        value
    }

    #[test]
    fn a_value_at_the_limit_round_trips_and_one_level_more_fails_both_ways() {
        let at_limit = shape(MAX_DEPTH);
        let bytes = encode(&at_limit).unwrap();
        assert_eq!(decode::<Shape>(&bytes).unwrap(), at_limit);

        let over = shape(MAX_DEPTH + 1);
        let error = encode(&over).unwrap_err();
        assert!(error.contains("deeper than 512 levels"), "{error}");
        // What a peer without the limit would send: refused on decoding.
        let bytes = bincode::serde::encode_to_vec(&over, bincode::config::standard()).unwrap();
        let error = decode::<Shape>(&bytes).unwrap_err();
        assert!(error.contains("deeper than 512 levels"), "{error}");
    }

    /// 100,000 levels of bytes (a list of `Some`s), decoded on a 2 MiB
    /// thread: an error, not a stack overflow.
    #[test]
    fn deep_bytes_fail_without_overflowing_a_small_stack() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Nest(Option<Box<Nest>>);
        let mut bytes = vec![1u8; 100_000];
        bytes.push(0);
        let decoded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || decode::<Nest>(&bytes).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert!(decoded.unwrap_err().contains("deeper than"));
    }
}

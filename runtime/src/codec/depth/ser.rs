//! The serializing side of the nesting limit: a `Serializer` wrapper that
//! counts the levels of the value it serializes (see [`super`]).

use std::fmt;

use serde::ser::{self, Serialize, Serializer};

use super::{deeper, measured};

/// `value`, serialized with its nesting counted.
pub(crate) struct Limited<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for Limited<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        measured(|| {
            self.0.serialize(Ser {
                inner: serializer,
                depth: 0,
            })
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

/// The compound serializers whose elements are values pass each through
/// [`Nested`], one level deeper; the end goes to the inner one as it is.
macro_rules! nest_elements {
    ($($compound:ident :: $element:ident),*) => {$(
        impl<C: ser::$compound> ser::$compound for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;
            #[inline]
            fn $element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                let depth = self.depth;
                self.inner.$element(&Nested { value, depth })
            }
            #[inline]
            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

nest_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The same for the compound serializers of named fields.
macro_rules! nest_fields {
    ($($compound:ident),*) => {$(
        impl<C: ser::$compound> ser::$compound for Compound<C> {
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
    )*};
}

nest_fields!(SerializeStruct, SerializeStructVariant);

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

//! The deserializing side of the nesting limit: a `Deserializer` wrapper,
//! with the visitors, seeds and accesses it hands out, that counts the
//! levels of the value it builds, as [`super::ser`] counts them (see
//! [`super`]).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use super::{deeper, measured};

thread_local! {
    /// How many more elements (of sequences, entries of maps) the decode
    /// running on this thread may read (see [`with_element_budget`]).
    static ELEMENTS_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Runs `decode` allowing at most `budget` elements in all through the
/// values it decodes [`Bounded`]: elements of a type that takes no bytes
/// cost no claim, so a few bytes could announce quintillions of them.
#[inline(always)]
pub(crate) fn with_element_budget<R>(budget: usize, decode: impl FnOnce() -> R) -> R {
    /// Puts the enclosing decode's budget back, even after a panic.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            ELEMENTS_LEFT.set(self.0);
        }
    }
    let _restore = Restore(ELEMENTS_LEFT.replace(budget));
    decode()
}

/// Counts one element against the budget.
#[inline]
fn take_element<E: de::Error>() -> Result<(), E> {
    let left = ELEMENTS_LEFT.get();
    if left == 0 {
        return Err(too_many_elements());
    }
    ELEMENTS_LEFT.set(left - 1);
    Ok(())
}

#[cold]
#[inline(never)]
fn too_many_elements<E: de::Error>() -> E {
    E::custom(
        "more elements than the bytes could hold (a sequence of a type that \
         takes no bytes, such as (), is limited to about a million elements \
         more than its frame has bytes)",
    )
}

/// `T`, deserialized with its nesting counted.
pub(crate) struct Bounded<T>(pub(crate) T);

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Bounded<T> {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        measured(|| {
            T::deserialize(De {
                inner: deserializer,
                depth: 0,
            })
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
        take_element()?;
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
        take_element()?;
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

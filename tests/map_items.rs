//! One item of a map fails alone, whatever fails: its result's `Serialize`
//! or its argument's `Deserialize` panicking in the worker, or its
//! argument failing to decode. The other items of its chunk keep their
//! results (a caller that retries failed items runs nothing twice).

use procpool::{pool_task, Error, MapOptions, Pool};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

procpool::enable_test_support!();

/// A result whose `Serialize` panics for 13 (in the worker).
#[derive(Debug, PartialEq, Deserialize)]
struct Brittle(u32);

impl Serialize for Brittle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            panic!("Brittle(13) cannot be serialized");
        }
        s.serialize_u32(self.0)
    }
}

/// An argument whose `Deserialize` panics for 13 and refuses 14 (in the
/// worker; the caller only serializes it).
#[derive(Debug, PartialEq, Serialize)]
struct Picky(u32);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            13 => panic!("Picky(13) cannot be deserialized"),
            14 => Err(serde::de::Error::custom("Picky refuses 14")),
            v => Ok(Picky(v)),
        }
    }
}

#[pool_task]
fn brittle(x: u32) -> Brittle {
    Brittle(x)
}

#[pool_task]
fn picky(x: Picky) -> u32 {
    x.0 * 2
}

fn five() -> MapOptions {
    MapOptions::new().chunksize(5)
}

#[test]
fn a_result_whose_serialize_panics_fails_its_item_alone() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = imap_brittle_with(&pool, 10..20, five()).collect();
    assert_eq!(results.len(), 10);
    for (x, result) in (10..20).zip(results) {
        match result {
            Ok(value) => assert_eq!(value, Brittle(x)),
            Err(Error::Panic { task, message, .. }) => {
                assert_eq!(x, 13, "item {x} failed");
                assert_eq!(task, "map_items::brittle");
                assert!(message.contains("Brittle(13)"), "{message}");
            }
            Err(other) => panic!("item {x}: {other:?}"),
        }
    }
    // map returns that item's error; without it, every result.
    assert!(matches!(
        map_brittle_with(&pool, 10..20, five()),
        Err(Error::Panic { .. })
    ));
    let all: Vec<u32> = map_brittle_with(&pool, 14..24, five())
        .unwrap()
        .into_iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(all, (14..24).collect::<Vec<_>>());
}

#[test]
fn an_argument_whose_deserialize_panics_or_fails_fails_its_item_alone() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = imap_picky_with(&pool, (10..20).map(Picky), five()).collect();
    assert_eq!(results.len(), 10);
    for (x, result) in (10..20).zip(results) {
        match (x, result) {
            (13, Err(Error::Panic { message, .. })) => {
                assert!(message.contains("Picky(13)"), "{message}")
            }
            (
                14,
                Err(Error::Decode {
                    task,
                    what,
                    message,
                }),
            ) => {
                assert_eq!(task, "map_items::picky");
                assert_eq!(what, "arguments");
                assert!(message.contains("Picky refuses 14"), "{message}");
            }
            (x, Ok(value)) if x != 13 && x != 14 => assert_eq!(value, x * 2),
            (x, other) => panic!("item {x}: {other:?}"),
        }
    }
    // map_async: the first error in input order is item 13's.
    assert!(matches!(
        map_async_picky_with(&pool, (10..20).map(Picky), five()).get(),
        Err(Error::Panic { .. })
    ));
    let unordered: Vec<_> = imap_unordered_picky_with(&pool, (10..20).map(Picky), five()).collect();
    assert_eq!(unordered.iter().filter(|r| r.is_ok()).count(), 8);
}

/// Items of every size in one chunk (lengths around the one-byte prefix's
/// limit of 127 and well past it) keep their boundaries.
#[pool_task]
fn text_len(text: String) -> usize {
    text.len()
}

#[test]
fn items_of_every_size_share_a_chunk() {
    let pool = Pool::new(2).unwrap();
    let sizes = [
        0usize, 1, 125, 126, 127, 128, 129, 300, 16_383, 16_384, 70_000, 3,
    ];
    let texts: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
    let lens = map_text_len_with(&pool, texts, MapOptions::new().chunksize(sizes.len())).unwrap();
    assert_eq!(lens, sizes);
}

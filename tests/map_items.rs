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

/// A result the caller refuses to decode for 15 (the worker encodes it).
#[derive(Debug, PartialEq, Serialize)]
struct Touchy(u32);

impl<'de> Deserialize<'de> for Touchy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            15 => Err(serde::de::Error::custom("Touchy refuses 15")),
            v => Ok(Touchy(v)),
        }
    }
}

#[pool_task]
fn touchy(x: u32) -> Touchy {
    Touchy(x)
}

#[test]
fn a_result_the_caller_cannot_decode_fails_the_map_with_that_items_error() {
    let pool = Pool::new(2).unwrap();
    // Every record a value: decoded in one pass per chunk.
    let all = map_touchy(&pool, 0..15_u32).unwrap();
    assert_eq!(all, (0..15).map(Touchy).collect::<Vec<_>>());
    let all = map_touchy(&pool, (16..100_000_u32).rev()).unwrap();
    assert_eq!(all.len(), 100_000 - 16);
    assert_eq!((all[0].0, all[all.len() - 1].0), (99_999, 16));
    // Item 15's value came back but does not decode: map fails with its
    // error, whichever way its chunk is decoded.
    for options in [five(), MapOptions::new()] {
        match map_touchy_with(&pool, 10..20_u32, options) {
            Err(Error::Decode {
                task,
                what,
                message,
            }) => {
                assert_eq!((task.as_str(), what), ("map_items::touchy", "result"));
                assert!(message.contains("Touchy refuses 15"), "{message}");
            }
            other => panic!("expected item 15's decode error, got {other:?}"),
        }
    }
    assert!(matches!(
        map_async_touchy_with(&pool, 10..20_u32, five()).get(),
        Err(Error::Decode { message, .. }) if message.contains("Touchy refuses 15")
    ));
    let gathered = map_async_touchy(&pool, 0..15_u32).get().unwrap();
    assert_eq!(gathered, (0..15).map(Touchy).collect::<Vec<_>>());
    // imap: the chunks before it whole, then its error. (Results carry no
    // lengths: where the records after one that does not decode start
    // cannot be known, so the rest of its chunk fails with it.)
    let results: Vec<_> = imap_touchy_with(&pool, 10..20_u32, five()).collect();
    assert_eq!(results.len(), 10);
    for (x, result) in (10..15).zip(&results) {
        assert_eq!(result.as_ref().ok(), Some(&Touchy(x)));
    }
    assert!(matches!(&results[5], Err(Error::Decode { message, .. }) if message.contains("15")));
}

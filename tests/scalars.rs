//! Numbers and `bool`s, the arguments and results procpool reads and writes
//! without serde (see `codec::scalar`): every width and sign, at the edges
//! of each varint form, arrive intact through every call shape, and bytes
//! that are not such a number are the same errors they always were.

use procpool::__private::{submit, ArgsEncoder, TaskInfo};
use procpool::{pool_task, Error, MapOptions, Pool};
use support::Raw;

mod support;

procpool::enable_test_support!();

macro_rules! echoes {
    ($($name:ident: $t:ty;)*) => {$(
        #[pool_task]
        fn $name(x: $t) -> $t {
            x
        }
    )*};
}

echoes! {
    echo_u8: u8; echo_i8: i8; echo_u16: u16; echo_i16: i16; echo_u32: u32; echo_i32: i32;
    echo_u64: u64; echo_i64: i64; echo_usize: usize; echo_isize: isize; echo_f32: f32;
    echo_f64: f64; echo_bool: bool;
}

/// Mixed arguments: scalars around a `String`, and a tuple result.
#[pool_task]
fn mixed(a: i16, text: String, b: u64, flag: bool) -> (u64, String, i16, bool) {
    (b, text, a, !flag)
}

#[pool_task]
fn raw_result(bytes: Vec<u8>) -> Raw {
    Raw(bytes)
}

/// Values at every edge of bincode's varint forms (one byte up to 250,
/// then a u16, u32 or u64 after a marker), as `u64`s to cast from.
fn edges() -> Vec<u64> {
    let mut v = vec![0, 1, 2, 127, 128, 250, 251, 252, 253, 254, 255, 256];
    for bits in [15u32, 16, 31, 32, 63] {
        let p = 1u64 << bits;
        v.extend([p - 1, p, p + 1]);
    }
    v.extend([u16::MAX as u64, u32::MAX as u64, u64::MAX - 1, u64::MAX]);
    v.extend((0..200).map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    v
}

#[test]
fn every_scalar_type_round_trips_through_apply_async_and_map() {
    let pool = Pool::new(2).unwrap();
    let small = MapOptions::new().chunksize(7);
    macro_rules! check {
        ($apply:ident, $apply_async:ident, $map:ident, $map_with:ident, $imap:ident, $t:ty, $values:expr) => {{
            let values: Vec<$t> = $values;
            for &v in values.iter().take(40) {
                let back = $apply(&pool, v).unwrap();
                assert_eq!(
                    back.to_le_bytes(),
                    v.to_le_bytes(),
                    "apply {}",
                    stringify!($t)
                );
            }
            let pending: Vec<_> = values.iter().map(|&v| $apply_async(&pool, v)).collect();
            for (v, p) in values.iter().zip(pending) {
                assert_eq!(
                    p.get().unwrap().to_le_bytes(),
                    v.to_le_bytes(),
                    "apply_async {}",
                    stringify!($t)
                );
            }
            let mapped = $map(&pool, values.clone()).unwrap();
            let same = |out: &[$t]| {
                out.iter()
                    .map(|x| x.to_le_bytes())
                    .eq(values.iter().map(|x| x.to_le_bytes()))
            };
            assert!(same(&mapped), "map {}", stringify!($t));
            assert!(
                same(&$map_with(&pool, values.clone(), small.clone()).unwrap()),
                "map chunks of 7 {}",
                stringify!($t)
            );
            let streamed: Vec<$t> = $imap(&pool, values.clone()).map(Result::unwrap).collect();
            assert!(same(&streamed), "imap {}", stringify!($t));
        }};
    }
    let e = edges();
    check!(
        apply_echo_u8,
        apply_async_echo_u8,
        map_echo_u8,
        map_echo_u8_with,
        imap_echo_u8,
        u8,
        e.iter().map(|&v| v as u8).collect()
    );
    check!(
        apply_echo_i8,
        apply_async_echo_i8,
        map_echo_i8,
        map_echo_i8_with,
        imap_echo_i8,
        i8,
        e.iter().map(|&v| v as i8).collect()
    );
    check!(
        apply_echo_u16,
        apply_async_echo_u16,
        map_echo_u16,
        map_echo_u16_with,
        imap_echo_u16,
        u16,
        e.iter().map(|&v| v as u16).collect()
    );
    check!(
        apply_echo_i16,
        apply_async_echo_i16,
        map_echo_i16,
        map_echo_i16_with,
        imap_echo_i16,
        i16,
        e.iter()
            .flat_map(|&v| [v as i16, (v as i16).wrapping_neg()])
            .collect()
    );
    check!(
        apply_echo_u32,
        apply_async_echo_u32,
        map_echo_u32,
        map_echo_u32_with,
        imap_echo_u32,
        u32,
        e.iter().map(|&v| v as u32).collect()
    );
    check!(
        apply_echo_i32,
        apply_async_echo_i32,
        map_echo_i32,
        map_echo_i32_with,
        imap_echo_i32,
        i32,
        e.iter()
            .flat_map(|&v| [v as i32, (v as i32).wrapping_neg()])
            .collect()
    );
    check!(
        apply_echo_u64,
        apply_async_echo_u64,
        map_echo_u64,
        map_echo_u64_with,
        imap_echo_u64,
        u64,
        e.clone()
    );
    check!(
        apply_echo_i64,
        apply_async_echo_i64,
        map_echo_i64,
        map_echo_i64_with,
        imap_echo_i64,
        i64,
        e.iter()
            .flat_map(|&v| [v as i64, (v as i64).wrapping_neg()])
            .chain([i64::MIN, i64::MAX])
            .collect()
    );
    check!(
        apply_echo_usize,
        apply_async_echo_usize,
        map_echo_usize,
        map_echo_usize_with,
        imap_echo_usize,
        usize,
        e.iter().map(|&v| v as usize).collect()
    );
    check!(
        apply_echo_isize,
        apply_async_echo_isize,
        map_echo_isize,
        map_echo_isize_with,
        imap_echo_isize,
        isize,
        e.iter()
            .flat_map(|&v| [v as isize, (v as isize).wrapping_neg()])
            .collect()
    );
    check!(
        apply_echo_f32,
        apply_async_echo_f32,
        map_echo_f32,
        map_echo_f32_with,
        imap_echo_f32,
        f32,
        e.iter()
            .map(|&v| f32::from_bits(v as u32))
            .chain([f32::NAN, -0.0, f32::INFINITY])
            .collect()
    );
    check!(
        apply_echo_f64,
        apply_async_echo_f64,
        map_echo_f64,
        map_echo_f64_with,
        imap_echo_f64,
        f64,
        e.iter()
            .map(|&v| f64::from_bits(v))
            .chain([f64::NAN, -0.0, f64::NEG_INFINITY])
            .collect()
    );

    let bools = vec![true, false, false, true, true];
    assert_eq!(map_echo_bool(&pool, bools.clone()).unwrap(), bools);
    assert!(apply_echo_bool(&pool, true).unwrap());
    assert!(!apply_async_echo_bool(&pool, false).get().unwrap());

    assert_eq!(
        apply_mixed(&pool, -300, "between".into(), u64::MAX, true).unwrap(),
        (u64::MAX, "between".to_string(), -300, false)
    );
    let items: Vec<_> = (0..50i16)
        .map(|i| (i * -600, format!("{i}"), (i as u64) << 40, i % 2 == 0))
        .collect();
    let out = map_mixed(&pool, items.clone()).unwrap();
    for ((a, text, b, flag), got) in items.into_iter().zip(out) {
        assert_eq!(got, (b, text, a, !flag));
    }
}

#[test]
fn bytes_that_are_not_the_number_are_the_usual_errors() {
    let pool = Pool::new(1).unwrap();
    let info = |name: &'static str| TaskInfo {
        name,
        signature: "",
        fingerprint: 0,
    };
    // An argument in a u64's form for a u16 (marker 253): the worker
    // refuses it as bincode does, and answers the next call.
    let mut wide = vec![253u8];
    wide.extend_from_slice(&7u64.to_le_bytes());
    let args = ArgsEncoder::new().push(&Raw(wide.clone())).finish();
    match submit::<u16>(&pool, &info("scalars::echo_u16"), args).get() {
        Err(Error::Decode {
            task,
            what,
            message,
        }) => {
            assert_eq!((task.as_str(), what), ("scalars::echo_u16", "arguments"));
            // In words, not in bincode's `Debug` form.
            assert_eq!(
                message,
                "an integer in the form of u64 where u16 was expected [InvalidIntegerType]"
            );
        }
        other => panic!("expected a Decode error, got {other:?}"),
    }
    // The same bytes are a u64 (7); a u64 cut short is an error.
    let args = ArgsEncoder::new().push(&Raw(wide.clone())).finish();
    assert_eq!(
        submit::<u64>(&pool, &info("scalars::echo_u64"), args)
            .get()
            .unwrap(),
        7
    );
    let args = ArgsEncoder::new().push(&Raw(wide[..5].to_vec())).finish();
    match submit::<u64>(&pool, &info("scalars::echo_u64"), args).get() {
        Err(Error::Decode {
            what: "arguments",
            message,
            ..
        }) => assert_eq!(message, "the bytes end 4 bytes too soon [UnexpectedEnd]"),
        other => panic!("expected a Decode error, got {other:?}"),
    }
    // A reserved marker, and a byte that is no bool.
    let args = ArgsEncoder::new().push(&Raw(vec![254, 1, 2])).finish();
    assert!(matches!(
        submit::<u64>(&pool, &info("scalars::echo_u64"), args).get(),
        Err(Error::Decode {
            what: "arguments",
            ..
        })
    ));
    let args = ArgsEncoder::new().push(&Raw(vec![2])).finish();
    match submit::<bool>(&pool, &info("scalars::echo_bool"), args).get() {
        Err(Error::Decode {
            what: "arguments",
            message,
            ..
        }) => assert_eq!(
            message,
            "2 for a bool, which is 0 or 1 [InvalidBooleanValue]"
        ),
        other => panic!("expected a Decode error, got {other:?}"),
    }

    // Results: the caller reads them as bincode does.
    let result = |bytes: Vec<u8>| ArgsEncoder::new().push(&bytes).finish();
    let raw = info("scalars::raw_result");
    // A wider form than the value needs is read (bincode reads it).
    assert_eq!(
        submit::<u64>(&pool, &raw, result(vec![251, 5, 0]))
            .get()
            .unwrap(),
        5
    );
    assert_eq!(
        submit::<u32>(&pool, &raw, result(vec![252, 1, 0, 0, 0]))
            .get()
            .unwrap(),
        1
    );
    // A u32's form for a u16, a bool of 2, bytes left over, bytes cut short.
    for (bytes, what) in [
        (vec![252, 1, 0, 0, 0], "u16"),
        (vec![2], "bool"),
        (vec![5, 5], "u64"),
        (vec![1, 2, 3], "f32"),
    ] {
        let got = match what {
            "u16" => submit::<u16>(&pool, &raw, result(bytes)).get().map(|_| ()),
            "bool" => submit::<bool>(&pool, &raw, result(bytes)).get().map(|_| ()),
            "u64" => submit::<u64>(&pool, &raw, result(bytes)).get().map(|_| ()),
            _ => submit::<f32>(&pool, &raw, result(bytes)).get().map(|_| ()),
        };
        match got {
            Err(Error::Decode {
                task,
                what: "result",
                ..
            }) => assert_eq!(task, "scalars::raw_result"),
            other => panic!("{what}: expected a Decode error, got {other:?}"),
        }
    }
    assert_eq!(apply_echo_u64(&pool, u64::MAX).unwrap(), u64::MAX);
}

/// Triples its number, but panics on every seventh (3, 10, 17, ...).
#[pool_task]
fn triple_or_panic(x: u64) -> u64 {
    if x % 7 == 3 {
        panic!("item {x}");
    }
    x * 3
}

/// Reads a number from text; panics on anything else.
#[pool_task]
fn parse_number(text: String) -> u64 {
    text.parse().expect("a number")
}

/// What `triple_or_panic` gives for `x`: its value, or its panic's message.
fn tripled(x: u64) -> Result<u64, String> {
    if x % 7 == 3 {
        Err(format!("item {x}"))
    } else {
        Ok(x * 3)
    }
}

fn outcome(result: Result<u64, Error>) -> Result<u64, String> {
    result.map_err(|e| match e {
        Error::Panic { message, .. } => message,
        other => panic!("expected a panic, got {other:?}"),
    })
}

/// Numbers travel in the dense form (raw little-endian, no tag per item)
/// both ways; when an item of such a chunk fails, the worker rewrites the
/// values before it as records and goes on. Every item keeps its own
/// outcome whatever its place in its chunk (first, middle, last, alone),
/// through each call shape of the map family.
#[test]
fn numbers_with_failures_among_them_keep_every_outcome_in_every_map_shape() {
    let pool = Pool::new(2).unwrap();
    let items: Vec<u64> = (0..200).collect();
    let expected: Vec<_> = items.iter().map(|&x| tripled(x)).collect();
    for chunksize in [1, 3, 4, 7, 50, 200] {
        let options = MapOptions::new().chunksize(chunksize);
        let streamed: Vec<_> = imap_triple_or_panic_with(&pool, items.clone(), options)
            .map(outcome)
            .collect();
        assert_eq!(streamed, expected, "imap, chunksize {chunksize}");
        let mut unordered: Vec<_> =
            imap_unordered_triple_or_panic_with(&pool, items.clone(), options)
                .map(outcome)
                .collect();
        let mut sorted = expected.clone();
        unordered.sort();
        sorted.sort();
        assert_eq!(unordered, sorted, "imap_unordered, chunksize {chunksize}");
        // The first failure in input order: item 3's.
        let first = Err("item 3".to_string());
        let mapped = map_triple_or_panic_with(&pool, items.clone(), options);
        assert_eq!(
            mapped.map(|_| 0).map_err(|e| outcome(Err(e)).unwrap_err()),
            first
        );
        let gathered = map_async_triple_or_panic_with(&pool, items.clone(), options).get();
        assert_eq!(
            gathered
                .map(|_| 0)
                .map_err(|e| outcome(Err(e)).unwrap_err()),
            first
        );
    }
    // Without a failure, every shape gives every value, in order.
    let clean: Vec<u64> = items.iter().copied().filter(|x| x % 7 != 3).collect();
    let want: Vec<u64> = clean.iter().map(|x| x * 3).collect();
    for chunksize in [1, 9, 1000] {
        let options = MapOptions::new().chunksize(chunksize);
        assert_eq!(
            map_triple_or_panic_with(&pool, clean.clone(), options).unwrap(),
            want
        );
        let gathered = map_async_triple_or_panic_with(&pool, clean.clone(), options);
        assert_eq!(gathered.get().unwrap(), want);
    }
    // Items in the general form (text), results dense: a failure among
    // them is the same.
    let texts: Vec<String> = (0..40)
        .map(|i| {
            if i % 9 == 4 {
                format!("x{i}")
            } else {
                i.to_string()
            }
        })
        .collect();
    for chunksize in [1, 5, 40] {
        let options = MapOptions::new().chunksize(chunksize);
        let got: Vec<_> = imap_parse_number_with(&pool, texts.clone(), options).collect();
        for (i, result) in got.into_iter().enumerate() {
            match result {
                Ok(n) => assert_eq!((n, i % 9 != 4), (i as u64, true)),
                Err(Error::Panic { message, .. }) => {
                    assert_eq!(i % 9, 4, "item {i}");
                    assert!(message.contains("a number"), "{message}");
                }
                Err(other) => panic!("item {i}: {other:?}"),
            }
        }
    }
}

/// A map of many numbers, larger than a frame of a small pool, is cut into
/// dense chunks that fit: every value arrives, in order.
#[test]
fn dense_chunks_fit_the_frame_limit() {
    let pool = Pool::builder()
        .processes(2)
        .max_frame_bytes(4096)
        .build()
        .unwrap();
    let items: Vec<u64> = (0..100_000).map(|i| i * 0x9E37_79B9).collect();
    let want = items.clone();
    let options = MapOptions::new().chunksize(100_000);
    assert_eq!(
        map_echo_u64_with(&pool, items.clone(), options).unwrap(),
        want
    );
    let gathered = map_async_echo_u64_with(&pool, items.clone(), options).get();
    assert_eq!(gathered.unwrap(), want);
    let bools: Vec<bool> = (0..20_000).map(|i| i % 3 == 0).collect();
    assert_eq!(map_echo_bool(&pool, bools.clone()).unwrap(), bools);
    // One byte in, eight out: the results of a chunk fit its frame too.
    let bytes: Vec<u8> = (0..50_000).map(|i| i as u8).collect();
    let widened = map_widen_with(&pool, bytes.clone(), MapOptions::new().chunksize(50_000));
    let want: Vec<u64> = bytes.iter().map(|&b| u64::from(b) << 40).collect();
    assert_eq!(widened.unwrap(), want);
}

#[pool_task]
fn widen(x: u8) -> u64 {
    u64::from(x) << 40
}

/// One byte in, a large number out; item 5 panics.
#[pool_task]
fn widen_or_panic(x: u8) -> u64 {
    if x == 5 {
        panic!("item five");
    }
    u64::MAX - u64::from(x)
}

/// Two bytes in, a float out; item 5 panics.
#[pool_task]
fn third_or_panic(x: u16) -> f64 {
    if x == 5 {
        panic!("item five");
    }
    f64::from(x) / 3.0
}

#[pool_task]
fn one() -> u64 {
    1
}

/// Chunks as full as a small frame allows, of items much narrower than
/// their results: the results fit the frame, dense or (after an item's
/// failure) as records, so every item keeps its own outcome. Before the
/// chunk counted the results' room, each of these failed whole with
/// `FrameTooLarge` (the failing item's panic lost with it).
#[test]
fn full_chunks_of_narrow_items_keep_every_outcome_under_a_small_frame() {
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(4096)
        .build()
        .unwrap();
    let one_chunk = MapOptions::new().chunksize(1000);
    // No argument at all: one length byte an item, eight bytes a result.
    let units = map_one_with(&pool, vec![(); 1000], one_chunk);
    assert_eq!(units.unwrap(), vec![1; 1000]);
    let bytes: Vec<u8> = (0..=255).cycle().take(1000).collect();
    let widened: Vec<_> = imap_widen_or_panic_with(&pool, bytes.clone(), one_chunk).collect();
    for (x, result) in bytes.iter().zip(widened) {
        match result {
            Ok(n) => assert_eq!(n, u64::MAX - u64::from(*x)),
            Err(Error::Panic { message, .. }) if *x == 5 => assert_eq!(message, "item five"),
            Err(other) => panic!("item {x}: {other:?}"),
        }
    }
    let halves: Vec<u16> = (0..1000).collect();
    let thirds: Vec<_> = imap_third_or_panic_with(&pool, halves.clone(), one_chunk).collect();
    for (x, result) in halves.iter().zip(thirds) {
        match result {
            Ok(v) => assert_eq!(v, f64::from(*x) / 3.0),
            Err(Error::Panic { message, .. }) if *x == 5 => assert_eq!(message, "item five"),
            Err(other) => panic!("item {x}: {other:?}"),
        }
    }
    match map_third_or_panic_with(&pool, halves, one_chunk) {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "item five"),
        other => panic!("expected item 5's panic, got {other:?}"),
    }
}

//! Arguments and results of every size, from empty to several MiB, cross
//! intact in both directions: the small-frame path, the vectored path, and
//! frames longer than the length a reader trusts before bytes arrive.

use procpool::{pool_task, Pool};
use serde_bytes::ByteBuf;

procpool::enable_test_support!();

/// Returns the bytes reversed, with the worker's pid.
#[pool_task]
fn reverse(bytes: Vec<u8>) -> (u32, Vec<u8>) {
    (std::process::id(), bytes.into_iter().rev().collect())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

const SIZES: [usize; 10] = [
    0,
    1,
    490,
    511,
    512,
    70_000,
    (1 << 20) - 20,
    1 << 20,
    (1 << 20) + 1,
    (3 << 20) + 7,
];

#[test]
fn payloads_of_every_size_round_trip() {
    procpool::init();
    let pool = Pool::new(2).unwrap();
    for (i, &len) in SIZES.iter().enumerate() {
        let data = pattern(len, i as u8);
        let (pid, back) = apply_reverse(&pool, data.clone()).unwrap();
        assert_ne!(pid, std::process::id());
        let expected: Vec<u8> = data.into_iter().rev().collect();
        assert_eq!(back.len(), len);
        assert!(back == expected, "payload of {len} bytes came back altered");
    }
}

#[test]
fn mixed_sizes_in_flight_keep_their_order_and_content() {
    procpool::init();
    let pool = Pool::new(2).unwrap();
    let pending: Vec<_> = (0..3)
        .flat_map(|_| SIZES)
        .enumerate()
        .map(|(i, len)| (i, len, apply_async_reverse(&pool, pattern(len, i as u8))))
        .collect();
    for (i, len, r) in pending {
        let (pid, back) = r.get().unwrap();
        assert_ne!(pid, std::process::id());
        let expected: Vec<u8> = pattern(len, i as u8).into_iter().rev().collect();
        assert!(back == expected, "call {i} ({len} bytes) came back altered");
    }
}

#[test]
fn large_payloads_of_shrinking_size_come_back_exact() {
    // Each call may reuse the buffers of the one before, which was larger:
    // nothing of the earlier, longer contents may show through.
    procpool::init();
    let pool = Pool::new(1).unwrap();
    let sizes = [(3 << 20) + 7, (2 << 20) + 3, (1 << 20) + 5, 3 << 20, 10];
    for (i, &len) in sizes.iter().enumerate() {
        let data = pattern(len, 100 + i as u8);
        let (pid, back) = apply_reverse(&pool, data.clone()).unwrap();
        assert_ne!(pid, std::process::id());
        let expected: Vec<u8> = data.into_iter().rev().collect();
        assert!(back == expected, "payload of {len} bytes came back altered");
        let pending = apply_async_reverse(&pool, pattern(len, i as u8));
        let expected: Vec<u8> = pattern(len, i as u8).into_iter().rev().collect();
        assert!(pending.get().unwrap().1 == expected);
    }
}

/// `Vec<u8>` and `&[u8]` arguments and a `Vec<u8>` result travel as one
/// block of bytes; any spelling of the type works.
#[pool_task]
fn splice(head: &[u8], tail: std::vec::Vec<u8>, sep: u8) -> Vec<u8> {
    let mut out = head.to_vec();
    out.push(sep);
    out.extend(tail.iter().rev());
    out
}

type Bytes = Vec<u8>;

/// A type alias of `Vec<u8>` is a block of bytes too (the runtime tells
/// blocks by type, not by spelling).
#[pool_task]
fn alias_len(bytes: Bytes) -> (u32, usize) {
    (std::process::id(), bytes.len())
}

#[test]
fn byte_vectors_and_slices_round_trip_on_every_path() {
    procpool::init();
    let pool = Pool::new(2).unwrap();
    for (i, &len) in SIZES.iter().enumerate() {
        let head = pattern(len, i as u8);
        let tail = pattern(len / 2 + 3, 7 + i as u8);
        let mut expected = head.clone();
        expected.push(0xAB);
        expected.extend(tail.iter().rev());
        let direct = apply_splice(&pool, &head, tail.clone(), 0xAB).unwrap();
        assert!(direct == expected, "apply, {len} bytes");
        let queued = apply_async_splice(&pool, &head, tail.clone(), 0xAB);
        assert!(
            queued.get().unwrap() == expected,
            "apply_async, {len} bytes"
        );
        let (pid, n) = apply_alias_len(&pool, head).unwrap();
        assert_eq!(n, len);
        assert_ne!(pid, std::process::id());
    }
}

/// A large last `Vec<u8>` argument and a `Vec<u8>` result travel as the
/// tails of split frames, without a copy into the frame: every size around
/// the threshold (64 KiB) comes back exact, with the arguments before it.
#[pool_task]
fn tagged(tag: u32, bytes: Vec<u8>) -> Vec<u8> {
    let mut out = tag.to_le_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

#[test]
fn byte_tails_round_trip_at_every_size_and_by_name() {
    procpool::init();
    let pool = Pool::new(1).unwrap();
    for (i, len) in [
        0,
        1,
        (64 << 10) - 5,
        (64 << 10) - 4,
        64 << 10,
        (64 << 10) + 1,
        5 << 20,
    ]
    .into_iter()
    .enumerate()
    {
        let data = pattern(len, i as u8);
        let mut expected = (i as u32).to_le_bytes().to_vec();
        expected.extend_from_slice(&data);
        assert!(
            apply_tagged(&pool, i as u32, data.clone()).unwrap() == expected,
            "{len}"
        );
        let queued = apply_async_tagged(&pool, i as u32, data.clone());
        assert!(queued.get().unwrap() == expected, "queued, {len}");
        // By name the arguments go through serde (no tail), and the result
        // decodes as a plain Vec<u8> (its tail joined).
        let by_name: Vec<u8> = pool
            .apply_by_name("payload::tagged", &(i as u32, data))
            .unwrap();
        assert!(by_name == expected, "by name, {len}");
    }
}

/// `serde_bytes::ByteBuf` travels as one block of bytes like `Vec<u8>`, in
/// the same bytes: a large last one as the tail of a split frame.
#[pool_task]
fn tagged_buf(tag: u32, bytes: ByteBuf) -> ByteBuf {
    let mut out = tag.to_le_bytes().to_vec();
    out.extend_from_slice(&bytes);
    ByteBuf::from(out)
}

/// A `ByteBuf` before another argument, and inside a tuple result.
#[pool_task]
fn buf_first(bytes: ByteBuf, tag: u8) -> (u8, ByteBuf) {
    (tag, bytes)
}

#[test]
fn byte_bufs_round_trip_at_every_size_and_mix_with_byte_vectors() {
    procpool::init();
    let pool = Pool::new(1).unwrap();
    for (i, len) in [0, 1, (64 << 10) - 4, 64 << 10, (64 << 10) + 1, 5 << 20]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, 40 + i as u8);
        let mut expected = (i as u32).to_le_bytes().to_vec();
        expected.extend_from_slice(&data);
        let buf = ByteBuf::from(data.clone());
        let direct = apply_tagged_buf(&pool, i as u32, buf.clone()).unwrap();
        assert!(direct.as_slice() == expected, "apply, {len}");
        // Queued, with a callback that reads the same result.
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = apply_async_tagged_buf(&pool, i as u32, buf.clone())
            .callback(move |b: ByteBuf| tx.send(b).unwrap());
        assert!(
            queued.get().unwrap().as_slice() == expected,
            "queued, {len}"
        );
        assert!(rx.recv().unwrap().as_slice() == expected, "callback, {len}");
        // By name, through serde: the same bytes.
        let by_name: ByteBuf = pool
            .apply_by_name("payload::tagged_buf", &(i as u32, buf.clone()))
            .unwrap();
        assert!(by_name.as_slice() == expected, "by name, {len}");
        let (tag, back) = apply_buf_first(&pool, buf, 7).unwrap();
        assert!(tag == 7 && back.as_slice() == data, "not last, {len}");
    }
    let items: Vec<(u32, ByteBuf)> = (0..20u32)
        .map(|i| (i, ByteBuf::from(pattern(i as usize * 100, i as u8))))
        .collect();
    let mapped = map_tagged_buf(&pool, items.clone()).unwrap();
    for ((i, buf), out) in items.into_iter().zip(mapped) {
        assert_eq!(&out[..4], &i.to_le_bytes());
        assert!(out[4..] == buf[..], "map item {i}");
    }
}

/// A map's `Vec<u8>` items and results go as blocks inside their chunks
/// (the same bytes as element by element): every size comes back exact,
/// with the argument before it, in `map`, `imap` and `imap_unordered`.
#[test]
fn byte_vectors_in_maps_round_trip_at_every_size() {
    procpool::init();
    let pool = Pool::new(2).unwrap();
    let sizes = [0, 1, 300, (64 << 10) - 1, 64 << 10, (64 << 10) + 1, 1 << 20];
    let items: Vec<(u32, Vec<u8>)> = sizes
        .iter()
        .cycle()
        .take(21)
        .enumerate()
        .map(|(i, &len)| (i as u32, pattern(len, 60 + i as u8)))
        .collect();
    let expected: Vec<Vec<u8>> = items
        .iter()
        .map(|(tag, bytes)| [&tag.to_le_bytes()[..], bytes].concat())
        .collect();
    let mapped = map_tagged(&pool, items.clone()).unwrap();
    assert!(mapped == expected, "map");
    let options = procpool::MapOptions::new().chunksize(4);
    let ordered: Vec<Vec<u8>> = imap_tagged_with(&pool, items.clone(), options)
        .map(Result::unwrap)
        .collect();
    assert!(ordered == expected, "imap");
    let mut unordered: Vec<Vec<u8>> = imap_unordered_tagged(&pool, items)
        .map(Result::unwrap)
        .collect();
    unordered.sort();
    let mut sorted = expected;
    sorted.sort();
    assert!(unordered == sorted, "imap_unordered");
}

#[pool_task]
fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// 256 MiB and 1 GiB `Vec<u8>` round trips work on a default pool.
#[test]
fn quarter_and_whole_gibibyte_vectors_round_trip_on_a_default_pool() {
    procpool::init();
    let pool = Pool::new(1).unwrap();
    for len in [256 << 20, 1 << 30] {
        let mut data = vec![0u8; len];
        for (i, chunk) in data.chunks_mut(4096).enumerate() {
            chunk[0] = i as u8;
            chunk[4095] = (i >> 8) as u8;
        }
        let back = apply_echo(&pool, data.clone()).unwrap();
        assert_eq!(back.len(), len);
        assert!(back == data, "{len} bytes came back altered");
    }
}

//! Encoding failures on either side are reported as such, with the task's
//! name, and never as a dead worker.

mod support;

use procpool::__private::{submit, ArgsEncoder, TaskInfo};
use procpool::{pool_task, Error, MapOptions, Pool};
use serde::{Deserialize, Serialize, Serializer};
use support::{assert_no_children, serial, Raw};

procpool::enable_test_support!();

/// Serializes only when `ok`; otherwise its `Serialize` impl errors.
#[derive(Debug, Deserialize)]
struct Fussy {
    ok: bool,
}

impl Serialize for Fussy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.ok {
            s.serialize_bool(true)
        } else {
            Err(serde::ser::Error::custom("Fussy refuses to be serialized"))
        }
    }
}

#[pool_task]
fn take_fussy(value: Fussy) -> u32 {
    let _ = value;
    std::process::id()
}

#[pool_task]
fn make_fussy(ok: bool) -> Fussy {
    Fussy { ok }
}

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn text(s: String) -> String {
    s
}

#[pool_task]
fn raw_bytes(bytes: Vec<u8>) -> (u8, [u8; 8]) {
    (bytes[0], bytes[1..9].try_into().unwrap())
}

#[test]
fn arguments_that_fail_to_serialize_are_an_encode_error_in_the_caller() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    match apply_take_fussy(&pool, Fussy { ok: false }) {
        Err(Error::Encode {
            task,
            what,
            message,
        }) => {
            assert_eq!(task, "fault_codec::take_fussy");
            assert_eq!(what, "arguments");
            assert!(message.contains("Fussy refuses"), "{message}");
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    assert_eq!(apply_take_fussy(&pool, Fussy { ok: true }).unwrap(), pid);
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// In a map, an item whose arguments do not encode fails alone, in every
/// form: the other items of its chunk run.
#[test]
fn a_map_item_that_fails_to_serialize_fails_alone() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let items = || (0..10).map(|i| Fussy { ok: i != 3 });
    let is_refused = |r: &Result<u32, Error>| {
        matches!(r, Err(Error::Encode { what: "arguments", message, .. })
            if message.contains("Fussy refuses"))
    };
    for chunksize in [1, 4, 10] {
        let options = MapOptions::new().chunksize(chunksize);
        let got: Vec<_> = imap_take_fussy_with(&pool, items(), options).collect();
        assert_eq!(got.len(), 10);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(
                is_refused(r),
                i == 3,
                "chunksize {chunksize}, item {i}: {r:?}"
            );
            assert!(
                i == 3 || r.is_ok(),
                "chunksize {chunksize}, item {i}: {r:?}"
            );
        }
        let unordered: Vec<_> = imap_unordered_take_fussy_with(&pool, items(), options).collect();
        assert_eq!(unordered.iter().filter(|r| r.is_ok()).count(), 9);
        assert_eq!(unordered.iter().filter(|r| is_refused(r)).count(), 1);
        // `map` returns the first error: the refused item's.
        let mapped = map_take_fussy_with(&pool, items(), options);
        assert!(is_refused(&mapped.map(|_| 0)), "chunksize {chunksize:?}");
    }
    drop(pool);
    assert_no_children();
}

#[test]
fn a_result_that_fails_to_serialize_in_the_worker_is_an_encode_error() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    match apply_make_fussy(&pool, false) {
        Err(Error::Encode {
            task,
            what,
            message,
        }) => {
            assert_eq!(task, "fault_codec::make_fussy");
            assert_eq!(what, "result");
            assert!(message.contains("Fussy refuses"), "{message}");
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    assert!(apply_make_fussy(&pool, true).unwrap().ok);
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

#[test]
fn a_result_the_caller_cannot_decode_is_a_decode_error() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    // The worker returns a String; this caller expects a u8 (left-over bytes).
    let info = TaskInfo {
        name: "fault_codec::text",
        signature: "",
        fingerprint: 0,
    };
    let args = || ArgsEncoder::new().push("hello").finish();
    match submit::<u8>(&pool, &info, args()).get() {
        Err(Error::Decode { task, what, .. }) => {
            assert_eq!(task, "fault_codec::text");
            assert_eq!(what, "result");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    // The worker's bytes announce a string of u64::MAX bytes: an error, not
    // an allocation (bincode alone panics with "capacity overflow").
    let info = TaskInfo {
        name: "fault_codec::raw_bytes",
        signature: "",
        fingerprint: 0,
    };
    let mut evil = vec![253];
    evil.extend_from_slice(&u64::MAX.to_le_bytes());
    let args = ArgsEncoder::new().push(&evil).finish();
    match submit::<String>(&pool, &info, args).get() {
        Err(Error::Decode { task, what, .. }) => {
            assert_eq!(task, "fault_codec::raw_bytes");
            assert_eq!(what, "result");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    // 3 GiB announced in a 12-byte result: under 4 GiB, so a fixed limit let
    // the parent reserve it; the limit scales with the input and refuses it.
    let mut evil = vec![252];
    evil.extend_from_slice(&(3u32 << 30).to_le_bytes());
    evil.extend_from_slice(b"abcdefg");
    let args = ArgsEncoder::new().push(&evil).finish();
    let begun = std::time::Instant::now();
    match submit::<String>(&pool, &info, args).get() {
        Err(Error::Decode { task, what, .. }) => {
            assert_eq!(task, "fault_codec::raw_bytes");
            assert_eq!(what, "result");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(begun.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(apply_text(&pool, "ok".into()).unwrap(), "ok");
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// A linked list: each node is two levels of nesting (the struct and its
/// `Some`). Dropped iteratively, so that a test can hold a million nodes.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Nest {
    v: u64,
    next: Option<Box<Nest>>,
}

impl Drop for Nest {
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

fn nest(nodes: u64) -> Nest {
    let mut list = Nest { v: 0, next: None };
    for v in 1..nodes {
        list = Nest {
            v,
            next: Some(Box::new(list)),
        };
    }
    list
}

/// The bytes of `nest(nodes)` with every `v` 0, built without the value.
fn nest_bytes(nodes: usize) -> Vec<u8> {
    let mut bytes = [0u8, 1].repeat(nodes - 1);
    bytes.extend_from_slice(&[0, 0]);
    bytes
}

#[pool_task]
fn make_nest(nodes: u64) -> Nest {
    nest(nodes)
}

#[pool_task]
fn nest_len(list: Nest) -> u64 {
    let mut len = 1;
    let mut node = &list;
    while let Some(next) = &node.next {
        len += 1;
        node = next;
    }
    len
}

#[pool_task]
fn raw_result(bytes: Vec<u8>) -> Raw {
    Raw(bytes)
}

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20) // tokio's default for its worker threads
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn expect_too_deep<T: std::fmt::Debug>(result: Result<T, Error>, task: &str, side: &str) {
    match result {
        Err(Error::Encode {
            task: t,
            what,
            message,
        })
        | Err(Error::Decode {
            task: t,
            what,
            message,
        }) => {
            assert_eq!(t, task);
            assert_eq!(what, side);
            assert!(message.contains("deeper than 512 levels"), "{message}");
        }
        other => panic!("expected a nesting error, got {other:?}"),
    }
}

/// A task returning a list 100,000 deep: the worker refuses to encode it
/// (it survives), so the caller never decodes it, on any stack.
#[test]
fn a_result_nested_too_deep_is_an_encode_error_and_the_worker_survives() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    expect_too_deep(
        apply_make_nest(&pool, 100_000),
        "fault_codec::make_nest",
        "result",
    );
    let shared = pool.clone();
    let on_small = on_small_stack(move || apply_async_make_nest(&shared, 100_000).get());
    expect_too_deep(on_small, "fault_codec::make_nest", "result");
    // 255 nodes (510 levels) is within the limit, even on a 2 MiB stack.
    let shared = pool.clone();
    let within = on_small_stack(move || apply_make_nest(&shared, 255));
    assert_eq!(within.unwrap(), nest(255));
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// A level that holds 4 KiB inline: serde builds it on the stack, so each
/// level of a [`Chain`] takes more than 4 KiB of stack to decode, and 500
/// of them more than a 2 MiB thread has, in any build.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Wide([[u64; 32]; 16]);

// Large on purpose: the level's data inline is what this is about.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Chain {
    End,
    Link(Box<Chain>, Wide),
}

impl Chain {
    fn len(&self) -> usize {
        let mut n = 0;
        let mut at = self;
        while let Chain::Link(next, _) = at {
            n += 1;
            at = next;
        }
        n
    }
}

#[pool_task]
fn wide_chain(n: usize) -> Chain {
    let mut chain = Chain::End;
    for i in 0..n as u64 {
        chain = Chain::Link(Box::new(chain), Wide([[i; 32]; 16]));
    }
    chain
}

/// A level that holds 32 KiB inline (serde's arrays nest): some 230 KiB
/// of stack to decode in a debug build.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Wider([[[u8; 32]; 32]; 32]);

#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum WiderChain {
    End,
    Link(Box<WiderChain>, Wider),
}

#[pool_task]
fn wider_chain(n: usize) -> WiderChain {
    let mut chain = WiderChain::End;
    for _ in 0..n {
        chain = WiderChain::Link(Box::new(chain), Wider([[[7; 32]; 32]; 32]));
    }
    chain
}

/// A result of a few levels of hundreds of kilobytes of stack each: eight
/// of them overflowed the caller's 2 MiB thread in a debug build (the
/// stack was looked at only from level 16 on), and the caller's process
/// aborted. Each is a value or a `Decode` error now (64 always are
/// errors), and the pool serves on.
#[test]
fn a_result_of_a_few_very_large_levels_never_overflows_a_small_stack() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    for links in [8, 16, 64] {
        let shared = pool.clone();
        match on_small_stack(move || apply_wider_chain(&shared, links).map(drop)) {
            Ok(()) => assert!(links < 64, "{links} links of 32 KiB on a 2 MiB stack"),
            Err(Error::Decode { what, message, .. }) => {
                assert_eq!(what, "result");
                assert!(message.contains("this thread's stack"), "{message}");
            }
            Err(other) => panic!("{links}: expected a Decode error, got {other:?}"),
        }
    }
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// A result within the depth limit whose levels are large (4 KiB inline
/// each) runs the decoding thread's stack low before the limit: on a
/// 2 MiB thread it is a `Decode` error, not a stack overflow that aborts
/// the caller; on a larger stack it decodes.
#[test]
fn a_result_whose_levels_are_large_is_a_decode_error_on_a_small_stack() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let shared = pool.clone();
    let shallow = on_small_stack(move || apply_wide_chain(&shared, 20).map(|c| c.len()));
    assert_eq!(shallow.unwrap(), 20);
    for via_async in [false, true] {
        let shared = pool.clone();
        let deep = on_small_stack(move || {
            if via_async {
                apply_async_wide_chain(&shared, 500).get().map(|c| c.len())
            } else {
                apply_wide_chain(&shared, 500).map(|c| c.len())
            }
        });
        match deep {
            Err(Error::Decode {
                task,
                what,
                message,
            }) => {
                assert_eq!(task, "fault_codec::wide_chain");
                assert_eq!(what, "result");
                assert!(message.contains("this thread's stack"), "{message}");
            }
            other => panic!("expected a Decode error, got {other:?}"),
        }
    }
    let shared = pool.clone();
    let roomy = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || apply_wide_chain(&shared, 500).map(|c| c.len()))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(roomy.unwrap(), 500);
    drop(pool);
    assert_no_children();
}

/// A value whose `Deserialize` panics when it reads 13 (its `Serialize` is
/// serde's own).
#[derive(Debug, PartialEq, Serialize)]
struct Touchy(u8);

impl<'de> Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        assert_ne!(v, 13, "touchy about 13");
        Ok(Touchy(v))
    }
}

#[pool_task]
fn touchy(v: u8) -> Touchy {
    Touchy(v)
}

/// A result whose `Deserialize` panics in the caller is `Err(Decode)`, on
/// every path that decodes one; the calling thread lives on.
#[test]
fn a_result_whose_deserialize_panics_is_a_decode_error_in_the_caller() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let expect_decode = |result: Result<Touchy, Error>| match result {
        Err(Error::Decode { what, message, .. }) => {
            assert_eq!(what, "result");
            assert!(message.contains("touchy about 13"), "{message}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    };
    expect_decode(apply_touchy(&pool, 13));
    expect_decode(apply_async_touchy(&pool, 13).get());
    // `successful()` says whether `get()` returns a value: not here.
    let r = apply_async_touchy(&pool, 13);
    r.wait();
    assert_eq!(r.successful(), Some(false));
    expect_decode(r.get());
    assert_eq!(apply_touchy(&pool, 12).unwrap(), Touchy(12));
    match map_touchy(&pool, vec![1, 13, 2]) {
        Err(Error::Decode { what: "result", .. }) => {}
        other => panic!("expected a decode error, got {other:?}"),
    }
    let items: Vec<_> =
        imap_touchy_with(&pool, vec![1, 13, 2], MapOptions::new().chunksize(1)).collect();
    assert_eq!(items[0].as_ref().unwrap(), &Touchy(1));
    assert!(matches!(items[1], Err(Error::Decode { .. })), "{items:?}");
    assert_eq!(items[2].as_ref().unwrap(), &Touchy(2));
    drop(pool);
    assert_no_children();
}

/// A value whose `Deserialize` refuses 13 (returns an error; its
/// `Serialize` is serde's own), padded to `pad` bytes: short and long
/// values travel differently in a chunk's reply.
#[derive(Debug, PartialEq, Serialize)]
struct Picky {
    v: u8,
    pad: String,
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            v: u8,
            pad: String,
        }
        let raw = Raw::deserialize(d)?;
        if raw.v == 13 {
            return Err(serde::de::Error::custom("picky about 13"));
        }
        Ok(Picky {
            v: raw.v,
            pad: raw.pad,
        })
    }
}

#[pool_task]
fn picky(v: u8, pad: usize) -> Picky {
    Picky {
        v,
        pad: "p".repeat(pad),
    }
}

/// A result the caller cannot decode, in the middle of a chunk, fails that
/// item alone: the items after it in the same chunk arrive intact (short
/// values and long ones; `imap`, `imap_unordered`), and `map` fails with
/// that item's error.
#[test]
fn a_result_the_caller_cannot_decode_fails_alone_in_its_chunk() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    for pad in [0, 300, 70_000] {
        let items = || (0..30u8).map(move |v| (v, pad));
        let check = |outcomes: Vec<(u8, Result<Picky, Error>)>| {
            assert_eq!(outcomes.len(), 30);
            for (v, outcome) in outcomes {
                match outcome {
                    Err(Error::Decode { what, message, .. }) if v == 13 => {
                        assert_eq!(what, "result");
                        assert!(message.contains("picky about 13"), "{message}");
                    }
                    Ok(picky) if v != 13 => {
                        assert_eq!((picky.v, picky.pad.len()), (v, pad));
                    }
                    other => panic!("pad {pad}, item {v}: {other:?}"),
                }
            }
        };
        // Ten items per chunk: 13 is the fourth of the second.
        let options = MapOptions::new().chunksize(10);
        check(
            (0..30)
                .zip(imap_picky_with(&pool, items(), options))
                .collect(),
        );
        let mut unordered: Vec<_> = imap_unordered_picky_with(&pool, items(), options)
            .map(|r| match r {
                Ok(p) => (p.v, Ok(p)),
                Err(e) => (13, Err(e)),
            })
            .collect();
        unordered.sort_by_key(|(v, _)| *v);
        check(unordered);
        match map_picky_with(&pool, items(), options) {
            Err(Error::Decode {
                what: "result",
                message,
                ..
            }) => {
                assert!(message.contains("picky about 13"), "{message}")
            }
            other => panic!("pad {pad}: expected a decode error, got {other:?}"),
        }
        let fine: Vec<Picky> = map_picky(&pool, (14..40u8).map(|v| (v, pad))).unwrap();
        assert!(fine
            .iter()
            .zip(14..)
            .all(|(p, v)| p.v == v && p.pad.len() == pad));
    }
    drop(pool);
    assert_no_children();
}

/// The issue's own list: no `Drop` of its own, so dropping it recurses once
/// per node, as deep as the list.
#[derive(Debug, Serialize, Deserialize)]
struct PlainNest {
    v: u64,
    next: Option<Box<PlainNest>>,
}

#[pool_task]
fn make_plain_nest(nodes: u64) -> PlainNest {
    let mut list = PlainNest { v: 0, next: None };
    for v in 1..nodes {
        list = PlainNest {
            v,
            next: Some(Box::new(list)),
        };
    }
    list
}

/// A task returning the list 100,000 (and 1,000,000) deep: the
/// worker refuses to encode it, then drops it (a recursion as deep as the
/// list, on the worker's large stack) and serves on.
#[test]
fn a_plain_result_nested_too_deep_is_dropped_by_a_worker_that_survives() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    for nodes in [100_000, 1_000_000] {
        expect_too_deep(
            apply_make_plain_nest(&pool, nodes),
            "fault_codec::make_plain_nest",
            "result",
        );
    }
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

#[pool_task]
fn plain_nest_len(list: PlainNest, extra: u64) -> u64 {
    let mut len = extra;
    let mut node = &list;
    while let Some(next) = &node.next {
        len += 1;
        node = next;
    }
    // Deep lists never reach here (the caller refuses them); a shallow one
    // drops fine.
    len
}

/// The list (no `Drop` of its own) a million deep, handed over by
/// value: the caller refuses to encode it, and then has to drop it, which
/// recurses once per node. It drops it on a stack large enough, so the
/// call is an encode error and the calling thread lives on, on a test
/// thread's 2 MiB stack, for `apply`, `apply_async` and a map's item alike.
#[test]
fn a_plain_argument_nested_too_deep_is_refused_and_dropped_without_overflowing() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let plain = || make_plain_nest(1_000_000);
    expect_too_deep(
        apply_plain_nest_len(&pool, plain(), 0),
        "fault_codec::plain_nest_len",
        "arguments",
    );
    expect_too_deep(
        apply_async_plain_nest_len(&pool, plain(), 0).get(),
        "fault_codec::plain_nest_len",
        "arguments",
    );
    let shared = pool.clone();
    let on_small = on_small_stack(move || apply_plain_nest_len(&shared, plain(), 0));
    expect_too_deep(on_small, "fault_codec::plain_nest_len", "arguments");
    let items = vec![
        (make_plain_nest(3), 10),
        (plain(), 0),
        (make_plain_nest(2), 20),
    ];
    let results: Vec<_> =
        imap_plain_nest_len_with(&pool, items, MapOptions::new().chunksize(3)).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), &12);
    expect_too_deep(
        results.into_iter().nth(1).unwrap(),
        "fault_codec::plain_nest_len",
        "arguments",
    );
    let mapped = map_plain_nest_len(&pool, vec![(make_plain_nest(1), 0), (plain(), 0)]);
    expect_too_deep(mapped, "fault_codec::plain_nest_len", "arguments");
    assert_eq!(
        apply_plain_nest_len(&pool, make_plain_nest(255), 0).unwrap(),
        254
    );
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

#[pool_task]
fn plain_nest_head(list: &PlainNest) -> u64 {
    list.v
}

/// A list that is not `Send` (it could not be handed to another thread to
/// be dropped there), with no `Drop` of its own.
#[derive(Debug, Serialize, Deserialize)]
struct LocalNest {
    next: Option<Box<LocalNest>>,
    #[serde(skip)]
    _local: std::marker::PhantomData<std::rc::Rc<()>>,
}

fn make_local_nest(nodes: u64) -> LocalNest {
    let mut list = LocalNest {
        next: None,
        _local: std::marker::PhantomData,
    };
    for _ in 1..nodes {
        list = LocalNest {
            next: Some(Box::new(list)),
            _local: std::marker::PhantomData,
        };
    }
    list
}

#[pool_task]
fn local_nest_len(list: LocalNest) -> u64 {
    let (mut len, mut node) = (1, &list);
    while let Some(next) = &node.next {
        len += 1;
        node = next;
    }
    len
}

/// As above, for the forms that are not handed to another thread: owned
/// items of a task that takes its argument by reference (`&PlainNest`,
/// lent by a `PlainNest` item), and a value that is not `Send`. Each is
/// refused and dropped without overflowing the caller's stack.
#[test]
fn owned_items_of_a_reference_task_and_values_not_send_nested_too_deep_are_refused_and_dropped() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let items = vec![
        make_plain_nest(3),
        make_plain_nest(1_000_000),
        make_plain_nest(2),
    ];
    let results: Vec<_> =
        imap_plain_nest_head_with(&pool, items, MapOptions::new().chunksize(3)).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), &2);
    expect_too_deep(
        results.into_iter().nth(1).unwrap(),
        "fault_codec::plain_nest_head",
        "arguments",
    );
    let mapped = map_plain_nest_head(&pool, vec![make_plain_nest(1_000_000)]);
    expect_too_deep(mapped, "fault_codec::plain_nest_head", "arguments");
    let shared = pool.clone();
    let on_small = on_small_stack(move || {
        let results: Vec<_> =
            imap_plain_nest_head(&shared, vec![make_plain_nest(1_000_000)]).collect();
        results.into_iter().next().unwrap()
    });
    expect_too_deep(on_small, "fault_codec::plain_nest_head", "arguments");

    expect_too_deep(
        apply_local_nest_len(&pool, make_local_nest(1_000_000)),
        "fault_codec::local_nest_len",
        "arguments",
    );
    let mapped = map_local_nest_len(&pool, vec![make_local_nest(2), make_local_nest(1_000_000)]);
    expect_too_deep(mapped, "fault_codec::local_nest_len", "arguments");
    assert_eq!(
        apply_local_nest_len(&pool, make_local_nest(100)).unwrap(),
        100
    );
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// Deep result bytes (as a damaged frame or a worker without the limit
/// would send them) are a decode error in the caller, on its main thread
/// and on a 2 MiB one, never a stack overflow.
#[test]
fn result_bytes_nested_too_deep_are_a_decode_error_on_any_stack() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let info = TaskInfo {
        name: "fault_codec::raw_result",
        signature: "",
        fingerprint: 0,
    };
    let args = || ArgsEncoder::new().push(&nest_bytes(100_000)).finish();
    expect_too_deep(
        submit::<Nest>(&pool, &info, args()).get(),
        "fault_codec::raw_result",
        "result",
    );
    let deep = submit::<Nest>(&pool, &info, args());
    expect_too_deep(
        on_small_stack(move || deep.get()),
        "fault_codec::raw_result",
        "result",
    );
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// An argument a million levels deep is refused while the caller encodes
/// it; argument bytes 100,000 levels deep are refused by the worker, which
/// survives.
#[test]
fn arguments_nested_too_deep_are_refused_on_both_sides() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let list = nest(1_000_000);
    expect_too_deep(
        apply_nest_len(&pool, list),
        "fault_codec::nest_len",
        "arguments",
    );
    let shared = pool.clone();
    let on_small = on_small_stack(move || apply_nest_len(&shared, nest(1_000_000)));
    expect_too_deep(on_small, "fault_codec::nest_len", "arguments");
    let info = TaskInfo {
        name: "fault_codec::nest_len",
        signature: "",
        fingerprint: 0,
    };
    expect_too_deep(
        submit::<u64>(&pool, &info, Ok(nest_bytes(100_000))).get(),
        "fault_codec::nest_len",
        "arguments",
    );
    assert_eq!(apply_nest_len(&pool, nest(255)).unwrap(), 255);
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// An argument whose `Serialize` panics on 13 (its `Deserialize` is serde's
/// own).
#[derive(Debug, PartialEq, Deserialize)]
struct Shy(u8);

impl Serialize for Shy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert_ne!(self.0, 13, "shy about 13");
        s.serialize_u8(self.0)
    }
}

#[pool_task]
fn shy(v: Shy) -> u8 {
    v.0
}

/// An argument whose `Serialize` panics in the caller is `Err(Encode)` for
/// `apply`, `apply_async` and calls by name, as a result whose
/// `Deserialize` panics is `Err(Decode)`; the calling thread lives on and
/// nothing is sent.
#[test]
fn an_argument_whose_serialize_panics_is_an_encode_error_in_the_caller() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let expect_encode = |result: Result<u8, Error>| match result {
        Err(Error::Encode { what, message, .. }) => {
            assert_eq!(what, "arguments");
            assert!(message.contains("its Serialize panicked"), "{message}");
            assert!(message.contains("shy about 13"), "{message}");
        }
        other => panic!("expected an encode error, got {other:?}"),
    };
    expect_encode(apply_shy(&pool, Shy(13)));
    expect_encode(apply_async_shy(&pool, Shy(13)).get());
    expect_encode(pool.apply_by_name::<u8>("fault_codec::shy", &(Shy(13),)));
    assert_eq!(apply_shy(&pool, Shy(12)).unwrap(), 12);
    assert_eq!(
        pool.apply_by_name::<u8>("fault_codec::shy", &(Shy(11),))
            .unwrap(),
        11
    );
    drop(pool);
    assert_no_children();
}

/// In the map family an item whose `Serialize` panics fails alone, with
/// `Err(Encode)` in its place, like an item that does not encode: `map`
/// returns that error, `imap` yields it at the item's place and every other
/// result around it; the calling thread lives on.
#[test]
fn an_item_whose_serialize_panics_fails_alone_in_the_map_family() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let items = || (0..40u8).map(Shy);
    let is_shy_error = |e: &Error| {
        matches!(e, Error::Encode { what, message, .. }
            if *what == "arguments"
                && message.contains("its Serialize panicked")
                && message.contains("shy about 13"))
    };
    match map_shy(&pool, items()) {
        Err(e) => assert!(is_shy_error(&e), "{e:?}"),
        Ok(v) => panic!("expected the item's encode error, got {v:?}"),
    }
    match map_async_shy(&pool, items()).get() {
        Err(e) => assert!(is_shy_error(&e), "{e:?}"),
        Ok(v) => panic!("expected the item's encode error, got {v:?}"),
    }
    // Chunks of 1, of 5 and the default: the panic in the first item of a
    // chunk, in its middle, or anywhere.
    for chunksize in [Some(1), Some(5), None] {
        let options = || match chunksize {
            Some(n) => MapOptions::new().chunksize(n),
            None => MapOptions::new(),
        };
        let got: Vec<_> = imap_shy_with(&pool, items(), options()).collect();
        assert_eq!(got.len(), 40, "chunksize {chunksize:?}");
        for (i, r) in got.into_iter().enumerate() {
            match r {
                Err(e) if i == 13 => assert!(is_shy_error(&e), "{e:?}"),
                Ok(v) if i != 13 => assert_eq!(v as usize, i),
                other => panic!("item {i}, chunksize {chunksize:?}: {other:?}"),
            }
        }
        let mut unordered: Vec<_> = imap_unordered_shy_with(&pool, items(), options())
            .map(|r| r.map_err(|e| assert!(is_shy_error(&e), "{e:?}")))
            .collect();
        unordered.sort();
        let mut expected: Vec<_> = std::iter::once(Err(()))
            .chain((0..40u8).filter(|&i| i != 13).map(Ok))
            .collect();
        expected.sort();
        assert_eq!(unordered, expected, "chunksize {chunksize:?}");
    }
    assert_eq!(
        map_shy(&pool, (0..13u8).map(Shy)).unwrap(),
        (0..13).collect::<Vec<_>>()
    );
    drop(pool);
    assert_no_children();
}

/// A value that claims `n` elements of `()` (which take no bytes) and sends
/// none: a frame of a few bytes announcing 2^62 of them.
#[derive(Debug)]
struct Liar(u64);

impl Serialize for Liar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        s.serialize_seq(Some(self.0 as usize))?.end()
    }
}

impl<'de> Deserialize<'de> for Liar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Liar(Vec::<()>::deserialize(d)?.len() as u64))
    }
}

#[pool_task]
fn liar(n: u64) -> Liar {
    Liar(n)
}

#[pool_task]
fn count_units(units: Liar) -> u64 {
    units.0
}

/// Elements of a type that takes no bytes cost no claim: a damaged frame
/// of a few bytes announcing 2^62 of them is a decode error at once, on
/// either side, not a thread spinning for ever; an honest sequence of
/// 100,000 of them decodes.
#[test]
fn quintillions_of_empty_elements_in_a_few_bytes_are_a_decode_error() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let claimed = 1u64 << 62;
    let expect_decode = |result: Result<u64, Error>, side: &str| match result {
        Err(Error::Decode { what, message, .. }) => {
            assert_eq!(what, side);
            assert!(
                message.contains("more elements than the bytes"),
                "{message}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    };
    let begun = std::time::Instant::now();
    expect_decode(apply_liar(&pool, claimed).map(|l| l.0), "result");
    expect_decode(apply_count_units(&pool, Liar(claimed)), "arguments");
    assert!(
        begun.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(apply_liar(&pool, 100_000).unwrap().0, 100_000);
    assert_eq!(apply_count_units(&pool, Liar(100_000)).unwrap(), 100_000);
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

//! A deterministic mutation fuzzer of everything that decodes what crosses
//! the channel: requests and replies ([`crate::wire`]), a call's arguments
//! and a task's value ([`crate::task`], [`crate::codec`]), a map's chunks
//! and their RESULTS bodies on both sides ([`crate::chunk`]), dense
//! numbers, procpool's own messages, and `Json<T>`.
//!
//! Valid inputs of every kind are made, then flipped, cut, grown, spliced
//! and given huge lengths, and decoded. Each decode must return a value or
//! an error: never panic (caught and reported with the input), never ask
//! the allocator for much more than its input warrants (see
//! [`crate::alloc_probe`]),
//! and never run on (a watchdog fails the test with the case it was at).
//! A small xorshift generator with a fixed seed: the same inputs every run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::alloc_probe::largest_allocation;
use crate::chunk;
use crate::codec;
use crate::task::{ArgsDecoder, CallError, TaskOutput, ValueArg};
use crate::wire::{self, Frame, PanicReport, RemoteError, Reply};

mod sweep;

/// Mutated inputs decoded per run (`PROCPOOL_FUZZ_ITERATIONS` sets
/// another number, `PROCPOOL_FUZZ_SEED` another seed, for a longer hunt).
const ITERATIONS: u64 = 100_000;
pub(crate) const SEED: u64 = 0x5eed_0f9c_0dec_5a17;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().expect(name))
}

/// The most one allocation made while decoding `len` bytes may ask for:
/// serde preallocates up to 1 MiB for a sequence whatever it announces
/// (a map's table a little more), and bincode lets a block claim up to 32
/// times its input (at least 64 KiB); anything beyond is a length trusted.
pub(crate) fn allowed(len: usize) -> usize {
    (4 << 20) + 64 * len
}

/// xorshift64*.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Bytes that mean something to one decoder or another: varint markers,
/// LEB128 continuations, tags, the split mark.
const INTERESTING: [u8; 14] = [
    0, 1, 2, 3, 0x7f, 0x80, 0xff, 15, 16, 250, 251, 252, 253, 254,
];

/// Mutates `input` once.
pub(crate) fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(11) {
        0 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => input[at.min(len - 1)] = rng.next() as u8,
        2 if len > 0 => input[at.min(len - 1)] = INTERESTING[rng.below(INTERESTING.len())],
        3 => {
            let n = 1 + rng.below(8);
            let bytes = rng.bytes(n);
            input.splice(at..at, bytes);
        }
        4 => {
            let end = (at + 1 + rng.below(16)).min(len);
            input.drain(at.min(end)..end);
        }
        5 => input.truncate(at),
        6 => {
            // A huge length where one may be: a varint, a u32, a u64.
            let huge: Vec<u8> = match rng.below(4) {
                0 => [253].into_iter().chain(u64::MAX.to_le_bytes()).collect(),
                1 => [252].into_iter().chain(u32::MAX.to_le_bytes()).collect(),
                2 => u64::MAX.to_le_bytes().to_vec(),
                _ => [0xff, 0xff, 0xff, 0xff, 0x0f].to_vec(),
            };
            let end = (at + huge.len()).min(len);
            input.splice(at..end, huge);
        }
        7 if len > 0 => {
            // A piece of the input again, elsewhere.
            let from = rng.below(len);
            let n = (1 + rng.below(32)).min(len - from);
            let piece = input[from..from + n].to_vec();
            input.splice(at..at, piece);
        }
        8 if len >= 4 => {
            // A little-endian word bumped, set to 0, or to its maximum.
            let at = at.min(len - 4);
            let word = u32::from_le_bytes(input[at..at + 4].try_into().unwrap());
            let word = match rng.below(3) {
                0 => word.wrapping_add(1 + rng.below(4) as u32),
                1 => 0,
                _ => u32::MAX >> rng.below(2),
            };
            input[at..at + 4].copy_from_slice(&word.to_le_bytes());
        }
        9 => {
            let n = 1 + rng.below(8);
            input.extend(rng.bytes(n));
        }
        _ => {
            let n = rng.below(4);
            input.truncate(len.saturating_sub(n));
        }
    }
}

// ---------------------------------------------------------------------------
// Values of every shape serde gives bincode.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u8),
    Node(Box<Tree>, Box<Tree>),
    Named { label: String, kids: Vec<Tree> },
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    b: bool,
    c: char,
    small: (i8, u16, i32, i64, isize),
    wide: (u128, i128),
    floats: (f32, f64),
    text: String,
    bytes: Vec<u8>,
    map: HashMap<String, Vec<u16>>,
    ordered: BTreeMap<u32, Option<String>>,
    set: HashSet<i64>,
    array: [u16; 3],
    unit: (),
    tree: Tree,
    next: Option<Box<Everything>>,
    nonzero: std::num::NonZeroU32,
    time: std::time::Duration,
    path: std::path::PathBuf,
    outcome: Result<u8, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Nest(Option<Box<Nest>>);

fn everything(i: u32) -> Everything {
    Everything {
        b: i.is_multiple_of(2),
        c: ['a', 'é', '€', '😀'][i as usize % 4],
        small: (-3, 300, -70_000, i64::MIN, isize::MAX),
        wide: (u128::MAX - u128::from(i), i128::MIN + i128::from(i)),
        floats: (f32::NAN, -0.0),
        text: "héllo wörld ".repeat(i as usize % 5),
        bytes: (0..i as u8 * 9).collect(),
        map: HashMap::from([("k".to_string(), vec![1, 65_535]), (String::new(), vec![])]),
        ordered: BTreeMap::from([(1, None), (u32::MAX, Some("x".into()))]),
        set: HashSet::from([-1, 0, i64::MAX]),
        array: [1, 251, 65_535],
        unit: (),
        tree: Tree::Node(
            Box::new(Tree::Named {
                label: "n".into(),
                kids: vec![Tree::Leaf(3), Tree::Empty],
            }),
            Box::new(Tree::Leaf(250)),
        ),
        next: (i > 0).then(|| Box::new(everything(i - 1))),
        nonzero: std::num::NonZeroU32::new(i + 1).unwrap(),
        time: std::time::Duration::new(u64::from(i) << 40, 999_999_999),
        path: "/tmp/ü".into(),
        outcome: if i.is_multiple_of(2) {
            Ok(7)
        } else {
            Err("no".into())
        },
    }
}

/// Decodes `bytes` as a task's value of type `T` would be (and as a prefix,
/// as an argument is), and checks that an honest encoding round-trips.
fn value<T>(bytes: &[u8]) -> Result<(), String>
where
    T: DeserializeOwned + Serialize + 'static,
{
    let whole = crate::task::decode_value::<T>(bytes);
    if let Ok(prefix) = codec::decode_prefix::<T>(bytes) {
        // What decodes re-encodes (no value decodes that cannot be sent back).
        codec::encode(&prefix.0)?;
    }
    whole.map(drop)
}

/// The decoders of values, by type.
type Decode = fn(&[u8]) -> Result<(), String>;

const VALUE_DECODERS: &[(&str, Decode)] = &[
    ("u64", value::<u64>),
    ("i32", value::<i32>),
    ("bool", value::<bool>),
    ("char", value::<char>),
    ("f64", value::<f64>),
    ("u128", value::<u128>),
    ("i128", value::<i128>),
    ("String", value::<String>),
    ("Vec<u8>", value::<Vec<u8>>),
    ("ByteBuf", value::<serde_bytes::ByteBuf>),
    ("Vec<String>", value::<Vec<String>>),
    ("Vec<Vec<Vec<u8>>>", value::<Vec<Vec<Vec<u8>>>>),
    (
        "HashMap<String, Vec<u8>>",
        value::<HashMap<String, Vec<u8>>>,
    ),
    (
        "BTreeMap<u64, (bool, char)>",
        value::<BTreeMap<u64, (bool, char)>>,
    ),
    ("Option<Box<Nest>>", value::<Option<Box<Nest>>>),
    ("Tree", value::<Tree>),
    ("Everything", value::<Everything>),
    (
        "(String, Vec<u64>, Option<String>)",
        value::<(String, Vec<u64>, Option<String>)>,
    ),
    ("[u32; 8]", value::<[u32; 8]>),
    ("std::ffi::CString", value::<std::ffi::CString>),
    ("SystemTime", value::<std::time::SystemTime>),
    ("Box<str>", value::<Box<str>>),
    ("Result<u8, String>", value::<Result<u8, String>>),
];

/// Honest encodings of values of the types above (each seed names the
/// decoder of its own type).
fn value_seeds() -> Vec<(usize, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| {
        let at = VALUE_DECODERS.iter().position(|(n, _)| *n == name).unwrap();
        assert_eq!((VALUE_DECODERS[at].1)(&bytes), Ok(()), "seed of {name}");
        seeds.push((at, bytes));
    };
    let enc = |v: &dyn erased::Encode| v.bytes();
    add("u64", enc(&u64::MAX));
    add("u64", enc(&251u64));
    add("i32", enc(&i32::MIN));
    add("bool", enc(&true));
    add("char", enc(&'😀'));
    add("f64", enc(&f64::NAN));
    add("u128", enc(&u128::MAX));
    add("i128", enc(&-1i128));
    add("String", enc(&"ünïcödé".repeat(3)));
    add("String", enc(&"x".repeat(300)));
    add("Vec<u8>", enc(&(0..=255u8).collect::<Vec<u8>>()));
    add("ByteBuf", enc(&serde_bytes::ByteBuf::from(vec![7; 40])));
    add(
        "Vec<String>",
        enc(&vec!["a".to_string(), String::new(), "€".into()]),
    );
    add(
        "Vec<Vec<Vec<u8>>>",
        enc(&vec![vec![vec![1u8, 2], vec![]], vec![vec![3]]]),
    );
    add(
        "HashMap<String, Vec<u8>>",
        enc(&HashMap::from([
            ("a".to_string(), vec![1u8]),
            ("bb".into(), vec![]),
        ])),
    );
    add(
        "BTreeMap<u64, (bool, char)>",
        enc(&BTreeMap::from([
            (1u64, (true, 'x')),
            (1 << 40, (false, 'ß')),
        ])),
    );
    let mut nest = Nest(None);
    for _ in 0..40 {
        nest = Nest(Some(Box::new(nest)));
    }
    add("Option<Box<Nest>>", enc(&Some(Box::new(nest))));
    add("Tree", enc(&everything(2).tree));
    add("Everything", enc(&everything(0)));
    add("Everything", enc(&everything(3)));
    add(
        "(String, Vec<u64>, Option<String>)",
        enc(&(
            "s".to_string(),
            vec![0u64, 300, u64::MAX],
            Some("t".to_string()),
        )),
    );
    add("[u32; 8]", enc(&[u32::MAX; 8]));
    add(
        "std::ffi::CString",
        enc(&std::ffi::CString::new("c string").unwrap()),
    );
    add("SystemTime", enc(&std::time::SystemTime::UNIX_EPOCH));
    add("Box<str>", enc(&Box::<str>::from("boxed")));
    add("Result<u8, String>", enc(&Err::<u8, String>("e".into())));
    seeds
}

/// Encoding a value behind `dyn` (the seeds above are of many types).
mod erased {
    pub(super) trait Encode {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize + 'static> Encode for T {
        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            crate::task::encode_value_into(self, &mut out).unwrap();
            out
        }
    }
}

// ---------------------------------------------------------------------------
// The worker's side: requests, a call's arguments, a chunk run.

/// Markers as `#[pool_task]` makes them, for a task of one argument.
struct One<T>(std::marker::PhantomData<T>);

impl<T: Serialize + DeserializeOwned> ValueArg<0> for One<T> {
    type Type = T;
}

impl<T: Serialize + DeserializeOwned> TaskOutput for One<T> {
    type Output = T;
}

/// Decodes a call's arguments as `(T,)` through the worker's decoder, and
/// runs a chunk whose items are `T`s (the task returns `R`, made of each).
fn worker_side<T, R>(args: &[u8], tail: Vec<u8>, make: fn(T) -> R) -> Result<(), String>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut decoder = ArgsDecoder::with_tail(args, tail);
    let decoded = decoder
        .value::<One<T>, 0>()
        .and_then(|v| decoder.finish().map(|()| v));
    if let Ok(v) = decoded {
        let mut out = Vec::new();
        crate::task::encode_value_into(&make(v), &mut out)?;
    }
    // The same bytes as a chunk's items.
    let mut body = wire::results_header(1);
    let ran = crate::worker::panic::guard(|| {
        crate::worker::chunk::run(args, &mut body, |a| a.value::<One<T>, 0>(), make)
    });
    match ran {
        Ok(Ok(())) => {
            // What a worker answers, its caller reads: a value or an
            // item's own error for each item, never a protocol error.
            let mut values: Vec<R> = Vec::new();
            let count = u32::from_le_bytes(args[..4].try_into().unwrap()) & !(1 << 31);
            match chunk::decode_body::<R>("fuzz", &body[9..], count as usize, &mut values) {
                Err(e @ crate::Error::Protocol { .. }) => {
                    panic!("a caller cannot read its worker's answer: {e}")
                }
                _ => Ok(()),
            }
        }
        Ok(Err(CallError::DecodeArgs(e) | CallError::EncodeResult(e))) => Err(e),
        Err(report) => Err(format!("a chunk panicked: {}", report.message)),
    }
}

fn request(frame: &[u8], tail: Vec<u8>) -> Result<(), String> {
    match wire::parse_request(frame)? {
        wire::Request::Call { args, .. } | wire::Request::CallBatch { items: args, .. } => {
            let _ = worker_side::<u64, u64>(args, tail.clone(), |x| x.wrapping_mul(3));
            let _ = worker_side::<bool, String>(args, tail.clone(), |b| b.to_string());
            let _ = worker_side::<String, usize>(args, tail.clone(), |s| s.len());
            let _ = worker_side::<Vec<u8>, Vec<u8>>(args, tail.clone(), |v| v);
            let _ = worker_side::<(u32, Option<String>), f32>(args, tail, |(n, _)| n as f32);
            Ok(())
        }
        wire::Request::Shutdown => Ok(()),
    }
}

/// A chunk's items in the general form: the count, then each item's
/// length (LEB128, five bytes for some) and its bytes; `None` an item the
/// caller could not encode.
fn general_chunk(items: &[Option<Vec<u8>>], wide: bool) -> Vec<u8> {
    let mut out = (items.len() as u32).to_le_bytes().to_vec();
    let leb = |mut n: u32, width: usize, out: &mut Vec<u8>| {
        for i in 0..width {
            out.push((n & 0x7f) as u8 | if i + 1 < width { 0x80 } else { 0 });
            n >>= 7;
        }
    };
    for item in items {
        match item {
            Some(bytes) if bytes.len() < 0x80 && !wide => leb(bytes.len() as u32, 1, &mut out),
            Some(bytes) => leb(bytes.len() as u32, 5, &mut out),
            None => {
                leb(u32::MAX, 5, &mut out);
                codec::encode_into("its Serialize failed", &mut out).unwrap();
                continue;
            }
        }
        out.extend_from_slice(item.as_ref().unwrap());
    }
    out
}

fn dense_chunk<T: 'static>(values: &[T]) -> Vec<u8> {
    let kind = codec::dense::kind::<T>().unwrap();
    let mut out = (values.len() as u32 | 1 << 31).to_le_bytes().to_vec();
    out.push(kind.code);
    for v in values {
        codec::dense::put(v, &mut out);
    }
    out
}

fn request_seeds() -> Vec<(Vec<u8>, Vec<u8>)> {
    let enc = |v: &dyn erased::Encode| v.bytes();
    let call = |args: &[u8]| {
        let mut frame = wire::call_header(7, 0, "fuzz::task");
        frame.extend_from_slice(args);
        frame
    };
    let batch = |items: &[u8]| {
        let mut frame = Vec::new();
        wire::append_header(&mut frame, true, 8, 0, "fuzz::task");
        frame.extend_from_slice(items);
        frame
    };
    let mut block_head = Vec::new();
    codec::encode_len(300, &mut block_head);
    vec![
        (call(&enc(&42u64)), vec![]),
        (call(&enc(&true)), vec![]),
        (call(&enc(&"text".to_string())), vec![]),
        (call(&enc(&vec![1u8, 2, 3])), vec![]),
        (call(&enc(&(5u32, Some("x".to_string())))), vec![]),
        // A large `Vec<u8>` argument as a split frame's tail.
        (call(&block_head), vec![9; 300]),
        (
            batch(&general_chunk(
                &[
                    Some(enc(&1u64)),
                    Some(enc(&u64::MAX)),
                    None,
                    Some(enc(&300u64)),
                ],
                false,
            )),
            vec![],
        ),
        (
            batch(&general_chunk(
                &[
                    Some(enc(&"a".to_string())),
                    Some(enc(&"é".repeat(100))),
                    None,
                ],
                true,
            )),
            vec![],
        ),
        (
            batch(&general_chunk(
                &[Some(enc(&vec![0u8; 200])), Some(vec![])],
                false,
            )),
            vec![],
        ),
        (
            batch(&general_chunk(
                &[
                    Some(enc(&(1u32, None::<String>))),
                    Some(enc(&(2u32, Some("y".to_string())))),
                ],
                false,
            )),
            vec![],
        ),
        (batch(&dense_chunk(&[1u64, 2, u64::MAX])), vec![]),
        (batch(&dense_chunk(&[true, false])), vec![]),
        (batch(&dense_chunk(&[1.5f32])), vec![]),
        (wire::shutdown_message().to_vec(), vec![]),
    ]
}

// ---------------------------------------------------------------------------
// The caller's side: replies, a value, a chunk's RESULTS body.

fn reply(frame: Vec<u8>, tail: Vec<u8>) -> Result<(), String> {
    match wire::parse_reply(Frame { head: frame, tail })? {
        Reply::Value { bytes, .. } => {
            let contiguous = bytes.contiguous().into_owned();
            for (_, decode) in VALUE_DECODERS {
                let _ = decode(&contiguous);
            }
            let _ = bytes.into_byte_block();
            Ok(())
        }
        Reply::Results { bytes, .. } => {
            results(bytes.head());
            // A whole chunk's outcome, as a map's caller reads it.
            let sent = sent(bytes.head());
            let mut out: Vec<Result<String, crate::Error>> = Vec::new();
            chunk::decode_chunk::<String>("fuzz", &Ok(bytes), sent, &mut out);
            if out.len() != sent {
                return Err(format!("{} outcomes for {sent} items", out.len()));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A RESULTS body read as values of several types, and cut to fit as a
/// worker cuts its own.
fn results(body: &[u8]) {
    fn read<R: DeserializeOwned + 'static>(body: &[u8]) {
        let sent = sent(body);
        let mut out: Vec<R> = Vec::new();
        let _ = chunk::decode_body::<R>("fuzz", body, sent, &mut out);
        assert!(out.len() <= sent, "{} values for {sent} items", out.len());
    }
    read::<u64>(body);
    read::<String>(body);
    read::<Vec<u8>>(body);
    read::<bool>(body);
    read::<Tree>(body);
    let mut cut = body.to_vec();
    let _ = chunk::fit_failures(&mut cut, chunk::RECORDS_AT, 64);
}

/// How many items the caller sent, for a RESULTS body: its own number,
/// not the body's (which it checks), so the body's count if that is a
/// chunk's size, else a few.
fn sent(body: &[u8]) -> usize {
    match chunk::item_count(body) {
        count if count <= 1000 => count,
        count => count % 8,
    }
}

fn records(records: &[Vec<u8>], all_values: bool) -> Vec<u8> {
    let mut out = (records.len() as u32).to_le_bytes().to_vec();
    out.push(u8::from(all_values));
    records.iter().for_each(|r| out.extend_from_slice(r));
    out
}

fn value_record(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if value.len() <= 239 {
        out.push(16 + value.len() as u8);
    } else {
        out.push(0);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

fn failure_record<T: Serialize>(tag: u8, what: &T) -> Vec<u8> {
    let mut out = vec![tag];
    codec::encode_into(what, &mut out).unwrap();
    out
}

fn report(message: &str) -> PanicReport {
    PanicReport {
        message: message.into(),
        location: "src/lib.rs:1:2".into(),
        backtrace: Some("0: f\n1: g".into()),
    }
}

fn reply_seeds() -> Vec<(Vec<u8>, Vec<u8>)> {
    let enc = |v: &dyn erased::Encode| v.bytes();
    let value = |bytes: Vec<u8>| {
        let reply = Reply::Value {
            id: 3,
            bytes: bytes.into(),
        };
        wire::encode_reply(&reply)
    };
    let results = |body: Vec<u8>| {
        let mut frame = wire::results_header(4);
        frame.extend_from_slice(&body);
        frame
    };
    let mut split = wire::value_header(3).to_vec();
    codec::encode_len(500, &mut split);
    let mut dense = 3u32.to_le_bytes().to_vec();
    dense.extend_from_slice(&[2, codec::dense::kind::<u64>().unwrap().code]);
    [1u64, 2, 3]
        .iter()
        .for_each(|n| dense.extend_from_slice(&n.to_le_bytes()));
    let plain = |frame| (frame, vec![]);
    vec![
        plain(wire::encode_reply(&Reply::Hello { pid: 42 })),
        plain(value(enc(&u64::MAX))),
        plain(value(enc(&"a result".to_string()))),
        plain(value(enc(&everything(1)))),
        plain(value(enc(&vec![5u8; 60]))),
        (split, vec![1; 500]),
        plain(wire::encode_reply(&Reply::Panic {
            id: 5,
            report: report("boom"),
        })),
        plain(wire::encode_reply(&Reply::Fatal {
            message: "cannot go on".into(),
        })),
        plain(wire::encode_reply(&Reply::Failed {
            id: 6,
            error: RemoteError::UnknownTask {
                suggestions: vec!["a::b".into(), "c".into()],
            },
        })),
        plain(wire::encode_reply(&Reply::Failed {
            id: 6,
            error: RemoteError::DuplicateTask {
                first: "x.rs:1".into(),
                second: "y.rs:2".into(),
            },
        })),
        plain(wire::encode_reply(&Reply::Failed {
            id: 6,
            error: RemoteError::SignatureMismatch {
                worker_signature: "fn(u8) -> u8".into(),
            },
        })),
        plain(wire::encode_reply(&Reply::Failed {
            id: 6,
            error: RemoteError::ResultTooLarge {
                len: 1 << 40,
                max: 1024,
            },
        })),
        plain(wire::encode_reply(&Reply::Failed {
            id: 6,
            error: RemoteError::DecodeArgs("bad".into()),
        })),
        plain(results(records(
            &[
                value_record(&enc(&"one".to_string())),
                value_record(&enc(&"two".repeat(90))),
            ],
            true,
        ))),
        plain(results(records(
            &[
                value_record(&enc(&"v".to_string())),
                failure_record(1, &report("item panicked")),
                failure_record(2, &"unencodable"),
                failure_record(3, &"undecodable"),
                failure_record(4, &"unsent"),
                value_record(&enc(&"w".repeat(300))),
            ],
            false,
        ))),
        plain(results(dense)),
    ]
}

/// procpool's own messages, and a distributed pool's failures' texts.
fn meta(bytes: &[u8]) -> Result<(), String> {
    let report = codec::decode_meta::<PanicReport>(bytes).map(drop);
    let error = codec::decode_meta::<RemoteError>(bytes).map(drop);
    let text = codec::decode_meta::<String>(bytes).map(drop);
    report.or(error).or(text)
}

fn meta_seeds() -> Vec<Vec<u8>> {
    vec![
        codec::encode_meta(&report("a panic")),
        codec::encode_meta(&RemoteError::UnknownTask {
            suggestions: vec!["x".into(); 3],
        }),
        codec::encode_meta(&RemoteError::EncodeResult("why".into())),
        codec::encode_meta(&"a fatal message".to_string()),
    ]
}

/// Dense values read as each type (the caller's side of a dense RESULTS
/// body, the worker's of a dense chunk).
fn dense(bytes: &[u8]) -> Result<(), String> {
    let Some((&code, raw)) = bytes.split_first() else {
        return Err("empty".into());
    };
    let count = raw.len() / codec::dense::kind_of(code).map_or(1, |k| k.width);
    fn read<T: 'static>(code: u8, raw: &[u8], count: usize) {
        let mut out: Vec<T> = Vec::new();
        if codec::dense::extend(code, raw, count, &mut out).is_ok() {
            assert_eq!(out.len(), count);
        }
        let _ = codec::dense::take::<T>(raw);
    }
    read::<u8>(code, raw, count);
    read::<i16>(code, raw, count);
    read::<u64>(code, raw, count);
    read::<usize>(code, raw, count);
    read::<isize>(code, raw, count);
    read::<f32>(code, raw, count);
    read::<f64>(code, raw, count);
    read::<bool>(code, raw, count);
    Ok(())
}

#[cfg(feature = "json")]
fn json(bytes: &[u8]) -> Result<(), String> {
    use crate::Json;
    let a = value::<Json<Everything>>(bytes);
    let b = value::<Json<Vec<Tree>>>(bytes);
    let c = value::<Json<HashMap<String, f64>>>(bytes);
    let d = value::<(u8, Json<Option<Box<Nest>>>)>(bytes);
    a.or(b).or(c).or(d)
}

#[cfg(feature = "json")]
fn json_seeds() -> Vec<Vec<u8>> {
    use crate::Json;
    let enc = |v: &dyn erased::Encode| v.bytes();
    vec![
        // (Without its NaN: JSON writes it as `null`, which no float reads.)
        enc(&Json(Everything {
            floats: (1.5, -0.0),
            next: None,
            ..everything(1)
        })),
        enc(&Json(vec![Tree::Leaf(1), Tree::Empty])),
        enc(&Json(HashMap::from([("pi".to_string(), 3.25f64)]))),
        enc(&(9u8, Json(Some(Box::new(Nest(None)))))),
    ]
}

// ---------------------------------------------------------------------------

/// One input and how to decode it.
#[derive(Clone)]
enum Input {
    Value(usize, Vec<u8>),
    Request(Vec<u8>, Vec<u8>),
    Reply(Vec<u8>, Vec<u8>),
    Meta(Vec<u8>),
    Dense(Vec<u8>),
    #[cfg(feature = "json")]
    Json(Vec<u8>),
}

impl Input {
    fn bytes(&mut self) -> &mut Vec<u8> {
        match self {
            Input::Value(_, b) | Input::Request(b, _) | Input::Reply(b, _) => b,
            Input::Meta(b) | Input::Dense(b) => b,
            #[cfg(feature = "json")]
            Input::Json(b) => b,
        }
    }

    fn len(&self) -> usize {
        match self {
            Input::Value(_, b) | Input::Meta(b) | Input::Dense(b) => b.len(),
            Input::Request(h, t) | Input::Reply(h, t) => h.len() + t.len(),
            #[cfg(feature = "json")]
            Input::Json(b) => b.len(),
        }
    }

    /// Decodes it; `Err` for a refusal (fine), a panic for a defect.
    fn decode(self, other: usize) -> Result<(), String> {
        match self {
            Input::Value(own, bytes) => {
                // As its own type, and as another.
                let own = (VALUE_DECODERS[own].1)(&bytes);
                let _ = (VALUE_DECODERS[other % VALUE_DECODERS.len()].1)(&bytes);
                own
            }
            Input::Request(head, tail) => request(&head, tail),
            Input::Reply(head, tail) => reply(head, tail),
            Input::Meta(bytes) => meta(&bytes),
            Input::Dense(bytes) => dense(&bytes),
            #[cfg(feature = "json")]
            Input::Json(bytes) => json(&bytes),
        }
    }

    fn describe(&self) -> String {
        let (kind, bytes) = match self {
            Input::Value(t, b) => (VALUE_DECODERS[*t].0, b),
            Input::Request(b, _) => ("request", b),
            Input::Reply(b, _) => ("reply", b),
            Input::Meta(b) => ("meta", b),
            Input::Dense(b) => ("dense", b),
            #[cfg(feature = "json")]
            Input::Json(b) => ("json", b),
        };
        let shown = &bytes[..bytes.len().min(200)];
        format!("{kind} of {} bytes: {shown:?}", bytes.len())
    }
}

fn seeds() -> Vec<Input> {
    let mut seeds: Vec<Input> = value_seeds()
        .into_iter()
        .map(|(t, b)| Input::Value(t, b))
        .collect();
    seeds.extend(
        request_seeds()
            .into_iter()
            .map(|(h, t)| Input::Request(h, t)),
    );
    seeds.extend(reply_seeds().into_iter().map(|(h, t)| Input::Reply(h, t)));
    seeds.extend(meta_seeds().into_iter().map(Input::Meta));
    for code in 1..=13u8 {
        let width = codec::dense::kind_of(code).unwrap().width;
        let mut bytes = vec![code];
        bytes.extend((0..width * 3).map(|i| (i % 2) as u8));
        seeds.push(Input::Dense(bytes));
    }
    #[cfg(feature = "json")]
    seeds.extend(json_seeds().into_iter().map(Input::Json));
    seeds
}

/// Decodes `input` on this thread: no panic, no allocation beyond
/// [`allowed`].
fn check(input: Input, other: usize) {
    let shown = input.describe();
    let len = input.len();
    let (decoded, largest) = largest_allocation(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| input.decode(other)))
    });
    if let Err(panic) = decoded {
        let message = codec::panic_message(&panic).to_string();
        panic!("decoding panicked ({message}): {shown}");
    }
    assert!(
        largest <= allowed(len),
        "decoding asked the allocator for {largest} bytes at once: {shown}"
    );
}

/// Runs `cases` on a thread of a 2 MiB stack (what a tokio task or a
/// callback thread decodes on), which hands each of its inputs to the
/// function it is given to [`check`]; a watchdog fails the test with the
/// input being decoded if no new one comes for 30 seconds (a decode that
/// runs on for ever).
fn watched(cases: impl FnOnce(&mut dyn FnMut(Input, usize)) + Send + 'static) {
    let at = Arc::new(AtomicU64::new(0));
    let shown = Arc::new(Mutex::new(String::new()));
    let (done, finished) = std::sync::mpsc::channel();
    let (at_, shown_) = (at.clone(), shown.clone());
    let fuzz = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            cases(&mut |input, other| {
                *shown_.lock().unwrap() = input.describe();
                at_.fetch_add(1, Relaxed);
                check(input, other);
            });
            let _ = done.send(());
        })
        .unwrap();
    let mut last = u64::MAX;
    loop {
        match finished.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => return fuzz.join().unwrap(),
            Err(RecvTimeoutError::Disconnected) => {
                // It failed: its panic says why.
                if let Err(panic) = fuzz.join() {
                    std::panic::resume_unwind(panic);
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = at.load(Relaxed);
                assert_ne!(now, last, "decoding ran on: {}", shown.lock().unwrap());
                last = now;
            }
        }
    }
}

#[test]
fn mutated_frames_and_values_decode_to_a_value_or_an_error() {
    watched(|check| {
        let seeds = seeds();
        // Each honest input decodes as it is.
        for seed in &seeds {
            let described = seed.describe();
            assert_eq!(seed.clone().decode(0), Ok(()), "an honest {described}");
        }
        let mut rng = Rng(setting("PROCPOOL_FUZZ_SEED", SEED) | 1);
        for _ in 0..setting("PROCPOOL_FUZZ_ITERATIONS", ITERATIONS) {
            let mut input = seeds[rng.below(seeds.len())].clone();
            if rng.below(50) == 0 {
                // Bytes from nowhere.
                let n = rng.below(64);
                *input.bytes() = rng.bytes(n);
            } else {
                for _ in 0..1 + rng.below(4) {
                    mutate(&mut rng, input.bytes());
                }
            }
            check(input, rng.below(usize::MAX));
        }
    });
}

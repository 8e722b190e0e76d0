//! The Redis side of [`crate::fuzz`]: what a caller and a node decode from
//! Redis without a server. Stream replies of any shape ([`reply`]), task
//! and result entries of any fields ([`entry`]), and a node's failure as
//! the caller reads it ([`RemoteFailure`]: decoded, cut to the caller's
//! frame limit, made an error). Each must give a value or an error, never
//! panic, never allocate past what its input warrants, never run on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use redis::Value;

use super::entry::{parse_task, ResultEntry};
use super::failure::{Exit, RemoteFailure};
use super::reply::{next_id, stream_entries};
use crate::alloc_probe::largest_allocation;
use crate::fuzz::{allowed, mutate, Rng, SEED};

const ITERATIONS: usize = 20_000;

/// Runs `decode` of an input of `len` bytes (`shown` says which): no
/// panic, no allocation past [`allowed`], no more than a few seconds.
fn check(len: usize, shown: impl Fn() -> String, decode: impl FnOnce()) {
    let started = Instant::now();
    let (decoded, largest) = largest_allocation(|| catch_unwind(AssertUnwindSafe(decode)));
    if let Err(panic) = decoded {
        let message = crate::codec::panic_message(&panic).to_string();
        panic!("decoding panicked ({message}): {}", shown());
    }
    assert!(
        largest <= allowed(len),
        "decoding asked the allocator for {largest} bytes at once: {}",
        shown()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "decoding took {:?}: {}",
        started.elapsed(),
        shown()
    );
}

fn failures() -> Vec<RemoteFailure> {
    use RemoteFailure as F;
    let text = |n: usize| "é panic text ".repeat(n);
    vec![
        F::Panic {
            message: text(40),
            location: "src/lib.rs:1:2".into(),
            backtrace: Some(text(10)),
        },
        F::WorkerDied {
            pid: 7,
            status: Exit::Signal(9),
        },
        F::WorkerDied {
            pid: u32::MAX,
            status: Exit::Code(-1),
        },
        F::Timeout { limit_ms: u64::MAX },
        F::UnknownTask {
            suggestions: vec![text(2); 5],
        },
        F::DuplicateTask {
            first: "a.rs:1".into(),
            second: text(3),
        },
        F::SignatureMismatch {
            worker: "fn(u8) -> u8".into(),
        },
        F::Encode {
            what: "result".into(),
            message: text(4),
        },
        F::Decode {
            what: "nonsense".into(),
            message: String::new(),
        },
        F::FrameTooLarge {
            len: u64::MAX,
            max: 0,
        },
        F::InitializerFailed {
            initializer: "init".into(),
            message: text(5),
            location: None,
        },
        F::Terminated,
        F::Cancelled,
        F::Refused {
            message: "OOM".into(),
        },
    ]
}

/// A node's failure as the caller takes it: decoded, cut to frame limits
/// from none to more than it is, and made the caller's error.
fn failure_body(body: &[u8], rng: &mut Rng) {
    let Ok(failure) = RemoteFailure::decode(body) else {
        return;
    };
    for max in [0, 16, 64, body.len() / 2, rng.below(body.len() + 1)] {
        let fitted = failure.clone().fit(max);
        let limit = [None, Some(Duration::from_millis(1))][rng.below(2)];
        let error = fitted.into_error("fuzz::task", "fn(u8) -> u8", limit);
        let _ = error.to_string();
    }
}

#[test]
fn mutated_failures_decode_to_a_value_or_an_error() {
    let seeds: Vec<Vec<u8>> = failures().iter().map(RemoteFailure::encode).collect();
    let mut rng = Rng(SEED | 1);
    for i in 0..ITERATIONS {
        let mut body = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut body);
        }
        let mut inner = Rng(rng.next() | 1);
        check(
            body.len(),
            || format!("a failure of {} bytes: {body:?}", body.len()),
            || failure_body(&body, &mut inner),
        );
    }
}

/// A RESP value of any shape, up to `depth` levels, mostly of the shapes
/// a stream reply has.
fn any_value(rng: &mut Rng, depth: usize) -> Value {
    let bulk = |rng: &mut Rng| match rng.below(6) {
        0 => b"c".to_vec(),
        1 => b"i".to_vec(),
        2 => b"s".to_vec(),
        3 => b"a".to_vec(),
        4 => u64::MAX.to_string().into_bytes(),
        _ => {
            let n = rng.below(12);
            rng.bytes(n)
        }
    };
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Nil,
        1 => Value::Int(rng.next() as i64),
        2 => Value::SimpleString(String::from_utf8_lossy(&bulk(rng)).into_owned()),
        3 | 4 => Value::BulkString(bulk(rng)),
        5 | 6 => {
            let n = rng.below(7);
            Value::Array((0..n).map(|_| any_value(rng, depth - 1)).collect())
        }
        _ => {
            let n = rng.below(4);
            Value::Map(
                (0..n)
                    .map(|_| (any_value(rng, depth - 1), any_value(rng, depth - 1)))
                    .collect(),
            )
        }
    }
}

/// An honest XREADGROUP reply of task entries, as RESP2 writes it.
fn honest_reply(rng: &mut Rng) -> Value {
    let bulk = |b: &[u8]| Value::BulkString(b.to_vec());
    let entry = |rng: &mut Rng, n: u64| {
        let mut fields = Vec::new();
        for (k, v) in [
            (&b"c"[..], b"c1@h:1".to_vec()),
            (b"i", n.to_string().into_bytes()),
            (b"t", b"square".to_vec()),
            (b"f", b"0".to_vec()),
            (b"k", [&b"s"[..], b"c"][rng.below(2)].to_vec()),
            (b"o", b"1500".to_vec()),
            (b"a", rng.bytes(n as usize % 90)),
            (b"s", b"v".to_vec()),
            (b"b", rng.bytes(5)),
            (b"n", b"node".to_vec()),
        ] {
            fields.push(bulk(k));
            fields.push(bulk(&v));
        }
        Value::Array(vec![
            bulk(format!("{n}-0").as_bytes()),
            Value::Array(fields),
        ])
    };
    let entries = (1..=rng.below(4) as u64).map(|n| entry(rng, n)).collect();
    Value::Array(vec![Value::Array(vec![
        bulk(b"pp:{q:b}:tasks"),
        Value::Array(entries),
    ])])
}

/// `v` with one of its parts replaced by any value, dropped, or repeated.
fn mutate_value(rng: &mut Rng, v: &mut Value) {
    if let Value::Array(items) = v {
        if !items.is_empty() && rng.below(3) != 0 {
            let at = rng.below(items.len());
            return match rng.below(4) {
                0 => drop(items.remove(at)),
                1 => items.insert(at, items[at].clone()),
                _ => mutate_value(rng, &mut items[at]),
            };
        }
    }
    *v = any_value(rng, 3);
}

/// Reads `v` as a node reads its tasks and a caller its results; the
/// number of task entries that parsed.
fn read_reply(v: Value, max_frame: usize) -> usize {
    let mut parsed = 0;
    for (id, fields) in stream_entries(v) {
        let _ = next_id(&id);
        let Some(fields) = fields else { continue };
        let _ = ResultEntry::parse(fields.clone());
        if let Ok(call) = parse_task(id, fields, max_frame) {
            assert!(call.args.len() <= max_frame, "kept {call:?}");
            parsed += 1;
        }
    }
    parsed
}

#[test]
fn stream_replies_of_any_shape_read_to_entries_or_nothing() {
    let mut rng = Rng(SEED | 1);
    for i in 0..ITERATIONS {
        let mut v = if i % 4 == 0 {
            any_value(&mut rng, 5)
        } else {
            honest_reply(&mut rng)
        };
        if i % 4 == 1 {
            // Unchanged, each entry reads back.
            let entries = stream_entries(v.clone()).len();
            assert_eq!(read_reply(v.clone(), 100), entries, "{v:?}");
        }
        for _ in 0..rng.below(4) {
            mutate_value(&mut rng, &mut v);
        }
        let shown = format!("{v:?}");
        let max_frame = rng.below(100);
        check(
            shown.len(),
            || shown.clone(),
            || {
                read_reply(v, max_frame);
            },
        );
    }
}

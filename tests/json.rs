//! `procpool::Json<T>` (the `json` feature): types whose serde attributes
//! need a self-describing format — `#[serde(flatten)]`,
//! `#[serde(untagged)]`, `skip_serializing_if` — work as task arguments and
//! results when wrapped, in `apply` and in a map. Without the wrapper each
//! fails with a typed error (never a hang or a panic in the caller), as the
//! README's "Writing tasks" says.

mod support;

use std::collections::BTreeMap;

use procpool::{pool_task, Error, Json, Pool};
use serde::{Deserialize, Serialize};

procpool::enable_test_support!();

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flattened {
    id: u32,
    #[serde(flatten)]
    extra: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
    Pair { a: u8, b: u8 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sparse {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
    count: u32,
}

#[pool_task]
fn bump_flat(record: Json<Flattened>) -> Json<Flattened> {
    let mut record = record.into_inner();
    record.id += 1;
    record.extra.insert("seen".into(), record.id);
    Json(record)
}

#[pool_task]
fn describe(value: Json<Untagged>) -> Json<Untagged> {
    Json(match value.0 {
        Untagged::Number(n) => Untagged::Text(format!("number {n}")),
        Untagged::Text(t) => Untagged::Number(t.len() as u64),
        Untagged::Pair { a, b } => Untagged::Pair { a: b, b: a },
    })
}

#[pool_task]
fn double_sparse(value: Json<Sparse>) -> Json<Sparse> {
    Json(Sparse {
        note: value.note.clone(),
        count: value.count * 2,
    })
}

#[pool_task]
fn sparse_by_ref(value: &Json<Sparse>) -> u32 {
    value.count
}

// The same types without the wrapper.
#[pool_task]
fn raw_flat(record: Flattened) -> u32 {
    record.id
}

#[pool_task]
fn raw_untagged(value: Untagged) -> u8 {
    matches!(value, Untagged::Number(_)) as u8
}

#[pool_task]
fn raw_sparse(value: Sparse) -> u32 {
    value.count
}

#[pool_task]
fn raw_untagged_result(n: u64) -> Untagged {
    Untagged::Number(n)
}

fn flattened() -> Flattened {
    Flattened {
        id: 1,
        extra: BTreeMap::from([("a".into(), 10), ("b".into(), 20)]),
    }
}

#[test]
fn flatten_works_through_json() {
    let pool = Pool::new(2).unwrap();
    let out = apply_bump_flat(&pool, Json(flattened())).unwrap().0;
    assert_eq!(out.id, 2);
    assert_eq!(out.extra.get("a"), Some(&10));
    assert_eq!(out.extra.get("seen"), Some(&2));
    let many = map_bump_flat(&pool, (0..20).map(|_| Json(flattened()))).unwrap();
    assert!(many.iter().all(|r| r.id == 2 && r.extra.len() == 3));
    // Unwrapped, the caller cannot encode it.
    match apply_raw_flat(&pool, flattened()) {
        Err(Error::Encode { what, message, .. }) => {
            assert_eq!(what, "arguments");
            assert!(message.contains("SequenceMustHaveLength"), "{message}");
            // In words, with the way out.
            assert!(message.contains("#[serde(flatten)]"), "{message}");
            assert!(message.contains("procpool::Json<T>"), "{message}");
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
}

#[test]
fn untagged_enums_work_through_json() {
    let pool = Pool::new(2).unwrap();
    let cases = [
        (Untagged::Number(5), Untagged::Text("number 5".into())),
        (Untagged::Text("four".into()), Untagged::Number(4)),
        (Untagged::Pair { a: 1, b: 2 }, Untagged::Pair { a: 2, b: 1 }),
    ];
    for (input, expected) in cases.clone() {
        assert_eq!(apply_describe(&pool, Json(input)).unwrap().0, expected);
    }
    let inputs = cases.iter().map(|(i, _)| Json(i.clone()));
    let outputs: Vec<Untagged> = imap_describe(&pool, inputs).map(|r| r.unwrap().0).collect();
    assert_eq!(outputs, cases.map(|(_, e)| e));
    // Unwrapped, the worker cannot decode the argument, nor the caller the
    // result: a typed error each time, and the worker lives on.
    match apply_raw_untagged(&pool, Untagged::Number(1)) {
        Err(Error::Decode { what, message, .. }) => {
            assert_eq!(what, "arguments");
            assert!(message.contains("AnyNotSupported"), "{message}");
            assert!(message.contains("deserialize_any"), "{message}");
            assert!(message.contains("procpool::Json<T>"), "{message}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    match apply_raw_untagged_result(&pool, 3) {
        Err(Error::Decode { what, .. }) => assert_eq!(what, "result"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn skip_serializing_if_works_through_json() {
    let pool = Pool::new(2).unwrap();
    let with_note = Sparse {
        note: Some("hi".into()),
        count: 3,
    };
    let without = Sparse {
        note: None,
        count: 4,
    };
    let out = apply_double_sparse(&pool, Json(with_note.clone()))
        .unwrap()
        .0;
    assert_eq!(
        out,
        Sparse {
            note: Some("hi".into()),
            count: 6
        }
    );
    let out = apply_double_sparse(&pool, Json(without.clone())).unwrap().0;
    assert_eq!(
        out,
        Sparse {
            note: None,
            count: 8
        }
    );
    // A reference argument, with borrowed map items.
    let items = [Json(with_note.clone()), Json(without.clone())];
    assert_eq!(map_sparse_by_ref(&pool, items.iter()).unwrap(), [3, 4]);
    assert_eq!(
        apply_sparse_by_ref(&pool, &Json(without.clone())).unwrap(),
        4
    );
    // Unwrapped, a skipped field shifts the others: never the right value.
    assert!(
        !matches!(apply_raw_sparse(&pool, without), Ok(4)),
        "a skipped field decoded right by chance"
    );
}

/// A linked list as nested JSON objects (`{"next":{"next":null}}`), dropped
/// iteratively, so that only the code under test recurses.
#[derive(Debug, Serialize, Deserialize)]
struct Chain {
    next: Option<Box<Chain>>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

fn chain(len: usize) -> Chain {
    let mut head = Chain { next: None };
    for _ in 1..len {
        head = Chain {
            next: Some(Box::new(head)),
        };
    }
    head
}

fn chain_len(c: &Chain) -> usize {
    let mut len = 1;
    let mut at = c;
    while let Some(next) = &at.next {
        len += 1;
        at = next;
    }
    len
}

#[pool_task]
fn json_chain_len(c: Json<Chain>) -> usize {
    chain_len(&c)
}

#[pool_task]
fn make_json_chain(len: usize) -> Json<Chain> {
    Json(chain(len))
}

#[pool_task]
fn json_worker_pid() -> u32 {
    std::process::id()
}

/// serde_json's writer has no nesting limit of its own: a `Json` value a
/// million levels deep overflowed the stack of whichever side wrote it (the
/// caller, or the worker: `WorkerDied`). It is `Err(Encode)` now, on a
/// 2 MiB thread too, and the worker survives; a shallow chain round-trips.
#[test]
fn a_json_value_nested_a_million_deep_is_an_encode_error_on_either_side() {
    let pool = Pool::new(1).unwrap();
    let pid = apply_json_worker_pid(&pool).unwrap();
    let expect_encode = |result: Result<usize, Error>, side: &str| match result {
        Err(Error::Encode { what, message, .. }) => {
            assert_eq!(what, side);
            assert!(message.contains("deeper than 512 levels"), "{message}");
        }
        other => panic!("expected an encode error, got {other:?}"),
    };
    let shared = pool.clone();
    let sent = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || apply_json_chain_len(&shared, Json(chain(1_000_000))))
        .unwrap()
        .join()
        .unwrap();
    expect_encode(sent, "arguments");
    expect_encode(
        apply_make_json_chain(&pool, 1_000_000).map(|c| chain_len(&c)),
        "result",
    );
    assert_eq!(apply_json_worker_pid(&pool).unwrap(), pid, "no worker died");
    assert_eq!(apply_json_chain_len(&pool, Json(chain(50))).unwrap(), 50);
    assert_eq!(chain_len(&apply_make_json_chain(&pool, 50).unwrap()), 50);
}

/// A list whose every level is a newtype and an `Option`: its JSON levels
/// take no bracket (`Some(x)` is written `x`), so every honest one is the
/// text `null`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Nest(Option<Box<Nest>>);

/// Plays a corrupt worker: sends the reply to call `id` (this call) with
/// the JSON text `text` as its value, then dies.
#[pool_task]
fn nest_from_text(id: u64, text: String) -> Json<Nest> {
    let mut frame = (9 + 1 + text.len() as u32).to_le_bytes().to_vec();
    frame.push(11); // VALUE
    frame.extend_from_slice(&id.to_le_bytes());
    frame.push(text.len() as u8); // the block's length (a one-byte varint)
    frame.extend_from_slice(text.as_bytes());
    support::write_to_channel(&frame);
    // SAFETY: ends this worker process at once.
    unsafe { libc::_exit(0) }
}

#[pool_task]
fn nest_depth(nest: Json<Nest>) -> usize {
    let mut depth = 0;
    let mut at = &nest.0;
    while let Nest(Some(next)) = at {
        depth += 1;
        at = next;
    }
    depth
}

/// A `Json` value read from a text that is not what its type writes: for
/// `Nest`, any text but `null` made serde_json recurse once per `Some`
/// without consuming a byte (its own limit counts only brackets), and the
/// caller's process died of a stack overflow. It is `Err(Decode)` now, on
/// a 2 MiB thread too, and the pool serves on.
#[test]
fn a_json_result_that_recurses_without_brackets_is_a_decode_error() {
    let pool = Pool::new(1).unwrap();
    // (A fresh pool numbers its calls from 1.)
    let shared = pool.clone();
    let got = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || apply_nest_from_text(&shared, 1, "5".to_string()).map(|_| ()))
        .unwrap()
        .join()
        .unwrap();
    match got {
        Err(Error::Decode { what, message, .. }) => {
            assert_eq!(what, "result");
            assert!(message.contains("nests"), "{message}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_eq!(
        apply_nest_depth(&pool, Json(Nest(Some(Box::new(Nest(None)))))).unwrap(),
        0
    );
}

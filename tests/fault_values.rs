//! Values no honest peer sends, as results and as arguments, through every
//! way a call goes: `apply` (waited for), `apply_async`, `map`, `imap` and
//! calls by name. Each is a typed error of its own call or item (never a
//! panic, a hang or a dead worker), and the pool serves on with the same
//! worker. The bytes are sent through [`Raw`], which serializes as exactly
//! the bytes given, to tasks called with an unchecked fingerprint.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::time::{Duration, Instant, SystemTime};

use procpool::__private::{
    call_task, map, submit, ArgsEncoder, EncodeItem, Task, TaskInfo, TaskOutput,
};
use procpool::{pool_task, Error, MapOptions, Pool};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use support::{assert_no_children, serial, Raw};

procpool::enable_test_support!();

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Returns exactly `bytes` as its result's encoding.
#[pool_task]
fn raw_result(bytes: Vec<u8>) -> Raw {
    Raw(bytes)
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Two {
    A,
    B(u8),
}

/// The bytes that no value of each type encodes to, with the type's name
/// and how it decodes as that type.
type Case = (
    &'static str,
    Vec<u8>,
    fn(&Pool, &[u8]) -> Vec<Result<(), Error>>,
);

/// Every way of reading a result of type `R` whose bytes are `bytes`.
fn as_result<R: DeserializeOwned + Serialize + std::fmt::Debug + 'static>(
    pool: &Pool,
    bytes: &[u8],
) -> Vec<Result<(), Error>> {
    let info = TaskInfo {
        name: "fault_values::raw_result",
        signature: "",
        fingerprint: 0,
    };
    let args = || ArgsEncoder::new().push(&bytes.to_vec()).finish();
    let waited = call_task::<RawAs<R>>(pool, args()).map(drop);
    let queued = submit::<R>(pool, &info, args()).get().map(drop);
    // A map of three items whose second is the bad value: it fails the map.
    let items = [vec![], bytes.to_vec(), vec![]];
    let mapped = map::<RawAs<R>, _>(pool, items.clone(), MapOptions::new().chunksize(3));
    let mapped = mapped.map(drop);
    vec![waited, queued, mapped]
}

/// A task whose result is read as `R`: the worker runs `raw_result`.
struct RawAs<R>(PhantomData<R>);

impl<R: Serialize + DeserializeOwned> TaskOutput for RawAs<R> {
    type Output = R;
}

impl<R: Serialize + DeserializeOwned> Task for RawAs<R> {
    const INFO: TaskInfo = TaskInfo {
        name: "fault_values::raw_result",
        signature: "",
        fingerprint: 0,
    };
}

impl<R> EncodeItem<Vec<u8>> for RawAs<R> {
    fn encode_item(item: Vec<u8>, chunk: &mut Vec<u8>) -> Result<(), String> {
        // A `Vec<u8>` of fewer than 251 bytes: its length, its bytes.
        chunk.push(item.len() as u8);
        chunk.extend_from_slice(&item);
        Ok(())
    }
}

fn huge_varint() -> Vec<u8> {
    [253].into_iter().chain(u64::MAX.to_le_bytes()).collect()
}

fn cases() -> Vec<Case> {
    let with = |prefix: &[u8], rest: &[u8]| [prefix, rest].concat();
    vec![
        (
            "String: invalid UTF-8",
            vec![2, 0xff, 0xfe],
            as_result::<String>,
        ),
        (
            "String: a surrogate",
            vec![3, 0xed, 0xa0, 0x80],
            as_result::<String>,
        ),
        (
            "String: u64::MAX bytes",
            with(&huge_varint(), b"abc"),
            as_result::<String>,
        ),
        ("char: not UTF-8", vec![0xff], as_result::<char>),
        (
            "char: past U+10FFFF",
            vec![0xf4, 0x90, 0x80, 0x80],
            as_result::<char>,
        ),
        ("bool: 2", vec![2], as_result::<bool>),
        ("Option: tag 2", vec![2, 1], as_result::<Option<u8>>),
        ("enum: variant 2 of 2", vec![2], as_result::<Two>),
        ("enum: variant u64::MAX", huge_varint(), as_result::<Two>),
        ("u16: a u32's form", vec![252, 1, 0, 0, 0], as_result::<u16>),
        ("u128: cut short", vec![254, 1, 2, 3], as_result::<u128>),
        ("i128: marker 255", vec![255], as_result::<i128>),
        ("f64: cut short", vec![1, 2, 3], as_result::<f64>),
        ("u8: a byte left over", vec![5, 6], as_result::<u8>),
        ("u64: nothing", vec![], as_result::<u64>),
        (
            "Vec<String>: u64::MAX strings",
            with(&huge_varint(), &[1, b'a']),
            as_result::<Vec<String>>,
        ),
        (
            "HashMap: 2^30 entries",
            vec![252, 0, 0, 0, 64, 1, b'k', 7],
            as_result::<HashMap<String, u8>>,
        ),
        (
            "BTreeMap: keys cut short",
            vec![3, 1, 2],
            as_result::<BTreeMap<u64, u64>>,
        ),
        (
            "Vec<u8>: 2^32 bytes",
            vec![253, 0, 0, 0, 0, 1, 0, 0, 0, 9],
            as_result::<Vec<u8>>,
        ),
        ("NonZeroU32: 0", vec![0], as_result::<std::num::NonZeroU32>),
        (
            "Duration: overflowing nanoseconds",
            with(&huge_varint(), &[252, 0, 0xca, 0x9a, 0x3b]),
            as_result::<Duration>,
        ),
        (
            "SystemTime: past the clock's end",
            with(&huge_varint(), &[0]),
            as_result::<SystemTime>,
        ),
        (
            "CString: an inner NUL",
            vec![3, b'a', 0, b'b'],
            as_result::<std::ffi::CString>,
        ),
        (
            "PathBuf: invalid UTF-8",
            vec![1, 0xff],
            as_result::<std::path::PathBuf>,
        ),
        (
            "(u8, String): the String cut short",
            vec![1, 9, b'a'],
            as_result::<(u8, String)>,
        ),
    ]
}

/// A result's bytes that no value of its type encodes to are
/// `Err(Decode { what: "result" })` of that call (of the map, for a map's
/// item), the same worker serving on; each within a second.
#[test]
fn results_no_value_encodes_to_are_decode_errors_of_their_call() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    for (what, bytes, read) in cases() {
        let begun = Instant::now();
        for (way, outcome) in ["apply", "apply_async", "map"]
            .iter()
            .zip(read(&pool, &bytes))
        {
            match outcome {
                Err(Error::Decode {
                    task, what: side, ..
                }) => {
                    assert_eq!(task, "fault_values::raw_result", "{what}, {way}");
                    assert_eq!(side, "result", "{what}, {way}");
                }
                other => panic!("{what}, {way}: expected a decode error, got {other:?}"),
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            begun.elapsed()
        );
        assert_eq!(
            apply_worker_pid(&pool).unwrap(),
            pid,
            "{what}: no worker died"
        );
    }
    // The pool still reads honest values of those types.
    let (wide, char, two, nan) = apply_extremes(&pool).unwrap();
    assert_eq!(
        (wide, char, two),
        ((u128::MAX, i128::MIN), '\u{10ffff}', Two::B(7))
    );
    assert!(nan.is_nan());
    drop(pool);
    assert_no_children();
}

#[pool_task]
fn extremes() -> ((u128, i128), char, Two, f64) {
    ((u128::MAX, i128::MIN), '\u{10ffff}', Two::B(7), f64::NAN)
}

/// Tasks of one argument of each type, each with a marker that calls it
/// with raw argument bytes (its items are the arguments' bytes as they are).
macro_rules! takes {
    ($($task:ident($ty:ty) as $marker:ident;)*) => {$(
        #[pool_task]
        fn $task(value: $ty) -> u32 {
            let _ = value;
            std::process::id()
        }

        struct $marker;

        impl TaskOutput for $marker {
            type Output = u32;
        }

        impl Task for $marker {
            const INFO: TaskInfo = TaskInfo {
                name: concat!("fault_values::", stringify!($task)),
                signature: "",
                fingerprint: 0,
            };
        }

        impl EncodeItem<Vec<u8>> for $marker {
            fn encode_item(item: Vec<u8>, chunk: &mut Vec<u8>) -> Result<(), String> {
                chunk.extend_from_slice(&item);
                Ok(())
            }
        }
    )*};
}

takes! {
    take_string(String) as TakeString;
    take_char(char) as TakeChar;
    take_bool(bool) as TakeBool;
    take_option(Option<u8>) as TakeOption;
    take_two(Two) as TakeTwo;
    take_u16(u16) as TakeU16;
    take_u128(u128) as TakeU128;
    take_map(HashMap<String, u8>) as TakeMap;
    take_vec(Vec<String>) as TakeVec;
    take_time(SystemTime) as TakeTime;
    take_duration(Duration) as TakeDuration;
    take_nonzero(std::num::NonZeroU32) as TakeNonZero;
    take_cstring(std::ffi::CString) as TakeCString;
}

/// Every way of calling a task `M` with the arguments `bad`, and `good`
/// after them: `bad` fails its call or item alone.
fn as_arguments<M: Task<Output = u32> + EncodeItem<Vec<u8>>>(
    pool: &Pool,
    bad: &[u8],
    good: &[u8],
) -> Vec<(&'static str, Result<u32, Error>)> {
    let args = |bytes: &[u8]| ArgsEncoder::new().push(&Raw(bytes.to_vec())).finish();
    let mut ways = vec![
        ("apply", call_task::<M>(pool, args(bad))),
        (
            "apply_async",
            submit::<u32>(pool, &M::INFO, args(bad)).get(),
        ),
        ("apply of good bytes", call_task::<M>(pool, args(good))),
    ];
    let items = [good.to_vec(), bad.to_vec(), good.to_vec()];
    let options = || MapOptions::new().chunksize(3);
    let mapped = map::<M, _>(pool, items.clone(), options()).map(|pids| pids[0]);
    ways.push(("map", mapped));
    let each: Vec<_> = procpool::__private::imap::<M, _>(pool, items, options()).collect();
    assert_eq!(each.len(), 3);
    let [first, second, third] = each.try_into().unwrap();
    ways.extend([("imap, the good item before", first), ("imap", second)]);
    ways.push(("imap, the good item after", third));
    ways
}

/// Argument bytes that no value of the task's argument type encodes to
/// are `Err(Decode { what: "arguments" })` of that call, or of that item
/// of a map alone; the same worker serves on.
#[test]
fn arguments_no_value_encodes_to_are_decode_errors_of_their_call() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    type Ways = fn(&Pool, &[u8], &[u8]) -> Vec<(&'static str, Result<u32, Error>)>;
    let big = [253].into_iter().chain(u64::MAX.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, Ways)> = vec![
        (
            "String",
            vec![2, 0xff, 0xfe],
            vec![1, b'a'],
            as_arguments::<TakeString>,
        ),
        (
            "char",
            vec![0xed, 0xa0, 0x80],
            vec![b'a'],
            as_arguments::<TakeChar>,
        ),
        ("bool", vec![7], vec![1], as_arguments::<TakeBool>),
        ("Option", vec![3, 1], vec![1, 5], as_arguments::<TakeOption>),
        ("enum", vec![9], vec![1, 7], as_arguments::<TakeTwo>),
        (
            "u16",
            vec![253, 1, 0, 0, 0, 0, 0, 0, 0],
            vec![251, 0, 1],
            as_arguments::<TakeU16>,
        ),
        ("u128", vec![254, 1], vec![5], as_arguments::<TakeU128>),
        (
            "HashMap",
            big.clone().chain([1, b'k', 7]).collect(),
            vec![1, 1, b'k', 7],
            as_arguments::<TakeMap>,
        ),
        (
            "Vec<String>",
            big.clone().collect(),
            vec![1, 0],
            as_arguments::<TakeVec>,
        ),
        (
            "SystemTime",
            big.clone().chain([0]).collect(),
            vec![0, 0],
            as_arguments::<TakeTime>,
        ),
        (
            "Duration",
            big.chain([252, 0, 0xca, 0x9a, 0x3b]).collect(),
            vec![0, 0],
            as_arguments::<TakeDuration>,
        ),
        ("NonZeroU32", vec![0], vec![1], as_arguments::<TakeNonZero>),
        (
            "CString",
            vec![2, 0, 1],
            vec![1, b'a'],
            as_arguments::<TakeCString>,
        ),
    ];
    for (what, bad, good, ways) in cases {
        for (way, outcome) in ways(&pool, &bad, &good) {
            match outcome {
                Ok(worker) if way.contains("good") => assert_eq!(worker, pid, "{what}, {way}"),
                Err(Error::Decode { what: side, .. }) if !way.contains("good") => {
                    assert_eq!(side, "arguments", "{what}, {way}")
                }
                other => panic!("{what}, {way}: got {other:?}"),
            }
        }
        assert_eq!(
            apply_worker_pid(&pool).unwrap(),
            pid,
            "{what}: no worker died"
        );
    }
    drop(pool);
    assert_no_children();
}

#[pool_task(name = "values/before_the_epoch")]
fn before_the_epoch(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH - Duration::from_secs(secs)
}

#[pool_task(name = "values/seconds_since")]
fn seconds_since(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Values whose own `Serialize` refuses them (a time before 1970, which
/// serde writes as seconds since it) as the arguments or the result of a
/// call by name, `apply` and `map`: `Err(Encode)` on the side that holds
/// them, and the worker serves on.
#[test]
fn values_serde_refuses_to_write_are_encode_errors_on_either_side() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let early = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
    let is_encode = |outcome: Result<u64, Error>, side: &str, way: &str| match outcome {
        Err(Error::Encode { what, message, .. }) => {
            assert_eq!(what, side, "{way}");
            assert!(message.contains("UNIX_EPOCH"), "{way}: {message}");
        }
        other => panic!("{way}: expected an encode error, got {other:?}"),
    };
    let by_name = pool.apply_by_name::<u64>("values/seconds_since", &(early,));
    is_encode(by_name, "arguments", "by name");
    is_encode(apply_seconds_since(&pool, early), "arguments", "apply");
    let mapped = map_seconds_since(&pool, [SystemTime::UNIX_EPOCH, early]);
    is_encode(mapped.map(|v| v[0]), "arguments", "map");
    let returned = pool.apply_by_name::<SystemTime>("values/before_the_epoch", &(5u64,));
    is_encode(returned.map(|_| 0), "result", "result by name");
    let returned = map_before_the_epoch(&pool, [0u64, 5]).map(|_| 0);
    is_encode(returned, "result", "result in a map");
    assert_eq!(
        pool.apply_by_name::<u64>("values/seconds_since", &(SystemTime::UNIX_EPOCH,))
            .unwrap(),
        0
    );
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// In a map's chunk: the item `x == 0` writes `frame` raw onto the channel
/// as the chunk's reply (chunk 1: the first call of a fresh pool) and
/// kills its worker; the other items return `x`.
#[pool_task]
fn garble_chunk(x: u64, frame: Vec<u8>) -> u64 {
    if x == 0 {
        support::write_to_channel(&frame);
        // SAFETY: ends this worker process at once.
        unsafe { libc::_exit(0) }
    }
    x
}

/// A RESULTS reply to chunk 1 whose body is `body`.
fn results_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = ((9 + body.len()) as u32).to_le_bytes().to_vec();
    frame.push(15);
    frame.extend_from_slice(&1u64.to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// A chunk's RESULTS reply that is not what its worker would write (a
/// count that is not the chunk's, a record of no tag, a value running past
/// the end, dense values of another type, a failure record that does not
/// decode): each item it cannot account for fails with a typed error, in
/// `map`, `map_async` and `imap`, never a panic or a hang; the pool then
/// serves on from a new worker.
#[test]
fn a_chunks_reply_no_worker_writes_fails_its_items_with_typed_errors() {
    let _serial = serial();
    // count 3 | flag | records, for items (0, 7, 8).
    let body = |flag: u8, records: &[u8]| {
        let mut b = 3u32.to_le_bytes().to_vec();
        b.push(flag);
        b.extend_from_slice(records);
        b
    };
    let u64_kind = 7;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "another count",
            [&2u32.to_le_bytes()[..], &[1, 17, 1, 17, 2]].concat(),
        ),
        ("no flag", 3u32.to_le_bytes().to_vec()),
        ("a record of no tag", body(0, &[17, 1, 9, 17, 2])),
        ("all values, but one is not", body(1, &[17, 1, 9, 1, 17, 2])),
        (
            "a value past the end",
            body(1, &[17, 1, 17, 7, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]),
        ),
        (
            "a short value of another type",
            body(1, &[17, 1, 18, 253, 1, 17, 3]),
        ),
        ("a panic record cut short", body(0, &[1, 200, 1, 2])),
        (
            "an error record of u64::MAX bytes",
            body(0, &[3, 253, 255, 255, 255, 255, 255, 255, 255, 255]),
        ),
        (
            "dense values of another kind",
            [&3u32.to_le_bytes()[..], &[2, 5], &[0; 12]].concat(),
        ),
        (
            "dense values short of the count",
            [&3u32.to_le_bytes()[..], &[2, u64_kind], &[0; 16]].concat(),
        ),
        ("nothing after the header", body(1, &[])),
    ];
    for (what, body) in bodies {
        let frame = results_frame(&body);
        let items = || [(0u64, frame.clone()), (7, vec![]), (8, vec![])];
        let options = || MapOptions::new().chunksize(3);
        let typed = |e: &Error, way: &str| {
            assert!(
                matches!(e, Error::Protocol { .. } | Error::Decode { .. }),
                "{what}, {way}: {e:?}"
            );
        };
        let pool = Pool::new(1).unwrap();
        match map_garble_chunk_with(&pool, items(), options()) {
            Err(e) => typed(&e, "map"),
            Ok(values) => panic!("{what}, map: {values:?}"),
        }
        let pool = Pool::new(1).unwrap();
        match map_async_garble_chunk_with(&pool, items(), options())
            .get_timeout(Duration::from_secs(30))
        {
            Err(e) => typed(&e, "map_async"),
            Ok(values) => panic!("{what}, map_async: {values:?}"),
        }
        let pool = Pool::new(1).unwrap();
        let each: Vec<_> = imap_garble_chunk_with(&pool, items(), options()).collect();
        assert_eq!(each.len(), 3, "{what}: one outcome per item");
        for outcome in &each {
            match outcome {
                // What the reply says of an item it can account for.
                Ok(value) => assert!([1, 2, 3, 7, 8].contains(value), "{what}, imap: {value}"),
                Err(e) => typed(e, "imap"),
            }
        }
        assert!(each.iter().any(Result::is_err), "{what}, imap: {each:?}");
        // A new worker serves on.
        assert_eq!(map_garble_chunk(&pool, [(5u64, vec![])]).unwrap(), [5]);
    }
    assert_no_children();
}

/// In a map's chunk: the item `x == 0` writes `frame` raw onto the channel
/// and then waits (for the parent to give up on the frame).
#[pool_task]
fn stall_chunk(x: u64, frame: Vec<u8>) -> u64 {
    if x == 0 {
        support::write_to_channel(&frame);
        std::thread::sleep(Duration::from_secs(60));
    }
    x
}

/// Frames no worker writes, in the middle of a map's chunk: one over the
/// frame limit, one cut short by the worker's death, one that stops
/// arriving, a tail on a reply other than a value, a FATAL message, a
/// HELLO. Every item of the chunk fails with the typed error of that loss
/// in `map` and `imap` (none is lost or left waiting), and a new worker
/// serves on.
#[test]
fn broken_frames_in_a_chunks_reply_fail_its_items_with_typed_errors() {
    let _serial = serial();
    let split_results = {
        // SPLIT_MARK | head 9 | tail 1 | RESULTS header | a tail byte.
        let mut f = u32::MAX.to_le_bytes().to_vec();
        f.extend_from_slice(&9u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.push(15);
        f.extend_from_slice(&1u64.to_le_bytes());
        f.push(0);
        f
    };
    let fatal = [&9u32.to_le_bytes()[..], &[14, 7], b"no more"].concat();
    let hello = [&5u32.to_le_bytes()[..], &[10, 1, 0, 0, 0]].concat();
    type Check = fn(&Error) -> bool;
    let cases: Vec<(&str, Vec<u8>, bool, Check)> = vec![
        ("over the limit", vec![0xff, 0xff, 0xff, 0x7f], false, |e| {
            matches!(e, Error::FrameTooLarge { .. })
        }),
        (
            "cut short by death",
            [&[100, 0, 0, 0][..], &[15; 10]].concat(),
            false,
            |e| matches!(e, Error::WorkerDied { .. }),
        ),
        (
            "stalled",
            vec![0xf0, 0xff, 0x0f, 0, 1, 2, 3],
            true,
            |e| matches!(e, Error::Protocol { message, .. } if message.contains("stopped sending")),
        ),
        (
            "a tail on RESULTS",
            split_results,
            false,
            |e| matches!(e, Error::Protocol { message, .. } if message.contains("tail")),
        ),
        (
            "FATAL",
            fatal,
            false,
            |e| matches!(e, Error::Protocol { message, .. } if message.contains("no more")),
        ),
        ("HELLO", hello, false, |e| {
            matches!(e, Error::Protocol { .. })
        }),
    ];
    for (what, frame, stall, expected) in cases {
        let pool = Pool::builder()
            .processes(1)
            .max_frame_bytes(1 << 20)
            .frame_stall_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let items = || [(0u64, frame.clone()), (7, vec![]), (8, vec![])];
        let options = || MapOptions::new().chunksize(3);
        let begun = Instant::now();
        let mapped = if stall {
            map_stall_chunk_with(&pool, items(), options())
        } else {
            map_garble_chunk_with(&pool, items(), options())
        };
        match mapped {
            Err(e) => assert!(expected(&e), "{what}, map: {e:?}"),
            Ok(values) => panic!("{what}, map: {values:?}"),
        }
        let each: Vec<_> = if stall {
            imap_stall_chunk_with(&pool, items(), options()).collect()
        } else {
            imap_garble_chunk_with(&pool, items(), options()).collect()
        };
        assert_eq!(each.len(), 3, "{what}: one outcome per item");
        for outcome in &each {
            match outcome {
                Err(e) => assert!(expected(e), "{what}, imap: {e:?}"),
                Ok(value) => panic!("{what}, imap: {value}"),
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "{what}: {:?}",
            begun.elapsed()
        );
        assert_eq!(
            map_garble_chunk(&pool, [(5u64, vec![])]).unwrap(),
            [5],
            "{what}"
        );
    }
    assert_no_children();
}

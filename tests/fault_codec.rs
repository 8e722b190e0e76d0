//! Encoding failures on either side are reported as such, with the task's
//! name, and never as a dead worker.

mod support;

use procpool::__private::{submit, ArgsEncoder, TaskInfo};
use procpool::{pool_task, Error, Pool};
use serde::{Deserialize, Serialize, Serializer};
use support::{assert_no_children, serial};

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

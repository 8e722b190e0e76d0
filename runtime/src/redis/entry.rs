//! What travels through Redis: a call as a task-stream entry, an outcome as
//! a result-stream entry. Every field is a Redis bulk string with a
//! one-letter name (entries are small and many).
//!
//! Task entry (`pp:{Q:B}:tasks`): `c` caller name · `i` seq (decimal, per
//! caller) · `t` task name · `f` fingerprint (decimal; 0 = unchecked) · `k`
//! `s` single / `c` chunk · `r` redeliveries left · `o` time limit in ms
//! (empty: none) · `a` arguments (opaque bytes).
//!
//! Result entry (`pp:{Q:B}:res:<caller>`): `i` seq · `s` status (`v` value,
//! `e` failure, `l` node lost) · `b` body (the value's bytes, or an encoded
//! [`RemoteFailure`]; empty for `l`) · `n` node name.

use std::time::Duration;

use super::failure::RemoteFailure;
use crate::call::Kind;

/// The fields of one stream entry, as Redis returned them.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Which call a task entry holds, as one number: a hash of its caller and
/// seq fields as they are (whether or not they parse), to tell a call read
/// again under an id from a new call under the same id.
pub(crate) fn call_identity(fields: &Fields) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in fields {
        if matches!(k.as_slice(), b"c" | b"i") {
            (k, v).hash(&mut hasher);
        }
    }
    hasher.finish()
}

pub(crate) fn kind_letter(kind: Kind) -> &'static str {
    match kind {
        Kind::Single => "s",
        Kind::Chunk => "c",
    }
}

fn kind_of(letter: &[u8]) -> Option<Kind> {
    match letter {
        b"s" => Some(Kind::Single),
        b"c" => Some(Kind::Chunk),
        _ => None,
    }
}

/// A time limit as a task entry carries it: whole milliseconds, rounded
/// up, so that a limit under one is not read as none at all (zero).
pub(crate) fn timeout_field(limit: Option<Duration>) -> String {
    limit.map_or(String::new(), |d| {
        // A limit past what a node reads (u64 milliseconds) is none.
        let ms = d.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).map_or(String::new(), |ms| ms.to_string())
    })
}

/// A task entry as a node reads it.
#[derive(Clone, Debug)]
pub(crate) struct NodeCall {
    /// The stream entry's id (`ms-seq`): what the node's ownership is
    /// checked by when it settles the call.
    pub(crate) entry: String,
    pub(crate) caller: String,
    pub(crate) seq: u64,
    pub(crate) task: String,
    pub(crate) fingerprint: u64,
    pub(crate) kind: Kind,
    pub(crate) timeout: Option<Duration>,
    pub(crate) args: Vec<u8>,
}

/// A task entry that cannot run, and what to answer its caller.
#[derive(Debug)]
pub(crate) struct BadEntry {
    pub(crate) entry: String,
    pub(crate) caller: String,
    pub(crate) seq: u64,
    pub(crate) failure: RemoteFailure,
}

/// Reads a task entry's fields. The arguments' length is checked against
/// `max_frame` before they are kept: the node never decodes what it refuses.
pub(crate) fn parse_task(
    entry: String,
    fields: Fields,
    max_frame: usize,
) -> Result<NodeCall, Box<BadEntry>> {
    let (mut caller, mut seq, mut task, mut fingerprint) = (None, None, None, None);
    let (mut kind, mut timeout, mut args) = (None, Some(None), None);
    for (k, v) in fields {
        match k.as_slice() {
            b"c" => caller = String::from_utf8(v).ok(),
            b"i" => seq = parse_u64(&v),
            b"t" => task = String::from_utf8(v).ok(),
            b"f" => fingerprint = parse_u64(&v),
            b"k" => kind = kind_of(&v),
            b"o" if v.is_empty() => timeout = Some(None),
            b"o" => timeout = parse_u64(&v).map(|ms| Some(Duration::from_millis(ms))),
            b"a" => args = Some(v),
            _ => {}
        }
    }
    let bad = |failure| {
        Box::new(BadEntry {
            entry: entry.clone(),
            caller: caller.clone().unwrap_or_default(),
            seq: seq.unwrap_or(0),
            failure,
        })
    };
    let protocol = |message: &str| RemoteFailure::Protocol {
        message: message.to_string(),
    };
    let (Some(c), Some(i)) = (caller.clone(), seq) else {
        return Err(bad(protocol("a task entry without caller or seq")));
    };
    let (Some(t), Some(f), Some(k), Some(o), Some(a)) = (task, fingerprint, kind, timeout, args)
    else {
        return Err(bad(protocol(
            "a task entry with fields missing or malformed",
        )));
    };
    if a.len() > max_frame {
        return Err(bad(RemoteFailure::FrameTooLarge {
            len: a.len() as u64,
            max: max_frame as u64,
        }));
    }
    Ok(NodeCall {
        entry,
        caller: c,
        seq: i,
        task: t,
        fingerprint: f,
        kind: k,
        timeout: o,
        args: a,
    })
}

pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A result entry as the caller reads it.
#[derive(Debug, Default)]
pub(crate) struct ResultEntry {
    pub(crate) seq: Option<u64>,
    pub(crate) status: Vec<u8>,
    pub(crate) body: Vec<u8>,
    pub(crate) node: String,
}

impl ResultEntry {
    pub(crate) fn parse(fields: Fields) -> ResultEntry {
        let mut r = ResultEntry::default();
        for (k, v) in fields {
            match k.as_slice() {
                b"i" => r.seq = parse_u64(&v),
                b"s" => r.status = v,
                b"b" => r.body = v,
                b"n" => r.node = String::from_utf8_lossy(&v).into_owned(),
                _ => {}
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(args: Vec<u8>, timeout: &str) -> Fields {
        vec![
            (b"c".to_vec(), b"c1@h:1".to_vec()),
            (b"i".to_vec(), b"7".to_vec()),
            (b"t".to_vec(), b"square".to_vec()),
            (b"f".to_vec(), b"0".to_vec()),
            (b"k".to_vec(), b"s".to_vec()),
            (b"o".to_vec(), timeout.as_bytes().to_vec()),
            (b"a".to_vec(), args),
        ]
    }

    #[test]
    fn a_limit_under_a_millisecond_is_sent_as_one_not_as_none() {
        assert_eq!(timeout_field(None), "");
        assert_eq!(timeout_field(Some(Duration::from_micros(500))), "1");
        assert_eq!(timeout_field(Some(Duration::from_millis(1500))), "1500");
        assert_eq!(
            timeout_field(Some(Duration::from_micros(1_500_001))),
            "1501"
        );
        assert_eq!(
            timeout_field(Some(Duration::MAX)),
            "",
            "too far to reach: none"
        );
        let last = Duration::from_millis(u64::MAX);
        assert_eq!(timeout_field(Some(last)), u64::MAX.to_string());
    }

    #[test]
    fn oversized_arguments_are_refused_before_use() {
        let err = parse_task("1-1".into(), fields(vec![0; 11], ""), 10).unwrap_err();
        assert_eq!(
            err.failure,
            RemoteFailure::FrameTooLarge { len: 11, max: 10 }
        );
        assert_eq!((err.seq, err.caller.as_str()), (7, "c1@h:1"));
    }

    #[test]
    fn a_well_formed_entry_reads_back() {
        let call = parse_task("1-1".into(), fields(vec![1, 2], "1500"), 10).unwrap();
        assert_eq!(call.timeout, Some(Duration::from_millis(1500)));
        assert_eq!((call.kind, call.args), (Kind::Single, vec![1, 2]));
        let mut f = fields(vec![], "");
        f.retain(|(k, _)| k != b"t");
        assert!(matches!(
            parse_task("1-2".into(), f, 10).unwrap_err().failure,
            RemoteFailure::Protocol { .. }
        ));
    }

    #[test]
    fn a_call_is_told_apart_by_caller_and_seq_alone() {
        let call = fields(vec![1, 2], "");
        // The same call read again: the other fields do not matter.
        assert_eq!(call_identity(&call), call_identity(&fields(vec![9], "5")));
        let with = |k: &[u8], v: &[u8]| {
            let mut f = fields(vec![1, 2], "");
            f.iter_mut().find(|(key, _)| key == k).unwrap().1 = v.to_vec();
            call_identity(&f)
        };
        assert_ne!(call_identity(&call), with(b"i", b"8"), "another seq");
        assert_ne!(
            call_identity(&call),
            with(b"c", b"c2@h:1"),
            "another caller"
        );
        // A field's bytes do not run into the next one's.
        assert_ne!(with(b"c", b"c1@h:17"), with(b"i", b""));
    }
}

//! Stream replies, decoded by hand: fields are binary and are moved out of
//! the reply, not copied through a typed map.

use redis::Value;

use super::entry::Fields;

/// Entries of an XREAD/XREADGROUP reply (one stream asked): `(id, fields)`.
/// A Nil reply (BLOCK timed out) is no entries. Entries whose body is Nil
/// (deleted while pending, seen when re-reading a pending list) come with
/// `None`.
pub(crate) fn stream_entries(v: Value) -> Vec<(String, Option<Fields>)> {
    let streams = match v {
        Value::Nil => return Vec::new(),
        Value::Array(a) => a,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut pair) = s else { continue };
        if pair.len() != 2 {
            continue;
        }
        let Value::Array(entries) = pair.pop().expect("len 2") else {
            continue;
        };
        for e in entries {
            let Value::Array(mut idf) = e else { continue };
            if idf.len() != 2 {
                continue;
            }
            let fields = idf.pop().expect("len 2");
            let id = match idf.pop().expect("len 2") {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                Value::SimpleString(s) => s,
                _ => continue,
            };
            out.push((id, flat_pairs(fields)));
        }
    }
    out
}

fn flat_pairs(v: Value) -> Option<Fields> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((bytes(k), bytes(v)));
            }
            Some(out)
        }
        Value::Map(m) => Some(m.into_iter().map(|(k, v)| (bytes(k), bytes(v))).collect()),
        _ => None,
    }
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// `ms-seq` + 1 in the sequence part: the smallest id after `id`
/// (for `XTRIM MINID`, which keeps ids >= its argument). After the last
/// sequence number of a millisecond (an id anyone who can write the stream
/// may choose), the next millisecond's first; `id` itself if there is
/// none, or it is no id (trimming one entry less).
pub(crate) fn next_id(id: &str) -> String {
    let Some((ms, seq)) = id.split_once('-') else {
        return id.to_string();
    };
    match (ms.parse::<u64>(), seq.parse::<u64>()) {
        (_, Ok(s)) if s < u64::MAX => format!("{ms}-{}", s + 1),
        (Ok(m), Ok(_)) if m < u64::MAX => format!("{}-0", m + 1),
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_resp2_reply() {
        let v = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"s".to_vec()),
            Value::Array(vec![
                Value::Array(vec![
                    Value::BulkString(b"1-0".to_vec()),
                    Value::Array(vec![
                        Value::BulkString(b"a".to_vec()),
                        Value::BulkString(vec![0, 1]),
                    ]),
                ]),
                Value::Array(vec![Value::BulkString(b"2-0".to_vec()), Value::Nil]),
            ]),
        ])]);
        let e = stream_entries(v);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].1.as_ref().unwrap()[0], (b"a".to_vec(), vec![0, 1]));
        assert!(e[1].1.is_none());
        assert_eq!(next_id("5-9"), "5-10");
    }

    /// The last sequence number of a millisecond (`XADD` takes any id
    /// above the stream's last): `seq + 1` overflowed, a panic of the
    /// caller's reader thread in a debug build.
    #[test]
    fn the_id_after_the_last_of_a_millisecond_is_the_next_milliseconds_first() {
        assert_eq!(next_id("5-18446744073709551615"), "6-0");
        let last = format!("{0}-{0}", u64::MAX);
        assert_eq!(next_id(&last), last);
        for odd in ["", "5", "5-x", "-", "5--1"] {
            assert_eq!(next_id(odd), odd);
        }
    }
}

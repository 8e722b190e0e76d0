//! The watcher: follows the control stream and stops the calls of callers
//! that terminated (or were forgotten), and single calls their caller
//! cancelled: calls not started are answered `Cancelled` without running,
//! running ones are stopped on the local pool.

use std::collections::VecDeque;
use std::sync::Arc;

use super::super::conn::{BrokerError, Conn};
use super::super::failure::RemoteFailure;
use super::super::reply::stream_entries;
use super::shared::{Done, Item, Shared};

/// How long the watcher waits after a failed read before it reads again.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Reads the control stream from the entry after `last` (see
/// [`newest_entry`]) and acts on each stop.
pub(super) fn watch_loop(s: Arc<Shared>, mut conn: Conn, mut last: String) {
    let ctl = s.keys.ctl();
    // Until the node has settled what it holds: a stopping node finishes
    // its calls, and their callers may still cancel or terminate them.
    while !s.stopping() || !Shared::drained(&s.lock()) {
        let got = conn.run("read the control stream", |con| {
            redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&ctl)
                .arg(&last)
                .query::<redis::Value>(con)
        });
        let Ok(v) = got else {
            // Redis refused the read (a key of another type, an ACL) or
            // is out of reach: not again at once.
            std::thread::sleep(RETRY_PAUSE);
            continue;
        };
        for (id, fields) in stream_entries(v) {
            last = id;
            for (k, v) in fields.unwrap_or_default() {
                let v = String::from_utf8_lossy(&v);
                match k.as_slice() {
                    b"c" => stop_caller(&s, &v),
                    b"x" => {
                        let parsed = v.rsplit_once(' ').and_then(|(c, seq)| {
                            seq.parse::<u64>().ok().map(|seq| (c.to_string(), seq))
                        });
                        if let Some((caller, seq)) = parsed {
                            stop_call(&s, &caller, seq);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The id of the newest stop already there (older callers are gone): read
/// before the node claims anything, so that no stop of a call it claims
/// can come before the point its watcher reads from.
pub(super) fn newest_entry(s: &Shared, conn: &mut Conn) -> Result<String, BrokerError> {
    let ctl = s.keys.ctl();
    let v = conn.run("read the control stream", |con| {
        redis::cmd("XREVRANGE")
            .arg(&ctl)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query::<redis::Value>(con)
    })?;
    let wrapped = redis::Value::Array(vec![redis::Value::Array(vec![redis::Value::Nil, v])]);
    Ok(stream_entries(wrapped)
        .pop()
        .map_or_else(|| "0-0".to_string(), |e| e.0))
}

fn stop_caller(s: &Shared, caller: &str) {
    {
        let mut st = s.lock();
        if st.cancelled.len() > 10_000 {
            // Bounded memory; DELIVER drops a gone caller's outcomes anyway.
            st.cancelled.clear();
        }
        st.cancelled.insert(caller.to_string());
        let (gone, keep): (VecDeque<Item>, VecDeque<Item>) =
            st.work.drain(..).partition(|i| i.call.caller == caller);
        st.work = keep;
        for i in gone {
            st.done.push(Done::of(&i, Err(RemoteFailure::Cancelled)));
        }
        s.wake(&st);
    }
    s.exec.cancel_caller(caller);
}

fn stop_call(s: &Shared, caller: &str, seq: u64) {
    {
        let mut st = s.lock();
        let at = st
            .work
            .iter()
            .position(|i| i.call.caller == caller && i.call.seq == seq);
        if let Some(at) = at {
            let item = st.work.remove(at).expect("found");
            st.done.push(Done::of(&item, Err(RemoteFailure::Cancelled)));
            s.wake(&st);
            return;
        }
        // Running here, about to be, or not claimed here yet: remembered,
        // so that it is not started later (see `runner::start`).
        st.stopped.insert(caller, seq);
    }
    s.exec.cancel_one(caller, seq);
}

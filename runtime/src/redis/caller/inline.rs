//! `apply`'s fast path: when nothing else is queued or in flight, the
//! calling thread sends SUBMIT and a blocking XREAD of its result stream in
//! one write and is woken by its own outcome, with no hand-off between
//! threads. Anything unusual (an error, a call slower than the XREAD's
//! block time) falls back to the ordinary path, which owns the retries.

use super::super::conn::Conn;
use super::super::entry::ResultEntry;
use super::super::reply::stream_entries;
use super::super::scripts::scripts;
use super::state::{Flight, Inner, Queued};
use super::writer::submit_cmd;
use crate::call::Call;
use crate::result::Hub;
use crate::result::{self, Outcome};

/// Runs `call` from the calling thread if the caller is idle; otherwise
/// gives it back to be submitted.
pub(super) fn apply(inner: &Inner, call: Call) -> Result<Outcome, Call> {
    let mut st = inner.lock();
    let idle = st.queue.is_empty()
        && st.flight.is_empty()
        && !st.closed
        && !st.terminated
        && st.broken.is_none()
        && !st.inline_unconfirmed
        && call.args.len() <= inner.cfg.max_frame;
    let guard = if idle {
        inner.inline_conn.try_lock().ok()
    } else {
        None
    };
    let Some(mut guard) = guard else {
        return Err(call);
    };
    let (promise, pending) = result::pending::<()>(call.task, Hub::default(), call.id);
    let seq = st.next_seq;
    st.next_seq += 1;
    st.inline_unconfirmed = true;
    st.flight.insert(seq, Flight::new(&call, promise, true));
    st.inline_in_flight += 1;
    drop(st);

    let res = inner.keys.results(&inner.name);
    let batch = [(seq, call)];
    let submit = submit_cmd(inner, &batch, 1);
    let [(_, call)] = batch;
    let (conn, loaded, read_entry) = &mut *guard;
    // The outcome this path read last time is deleted in this write (XDEL
    // of that one id: other outcomes may be unread).
    let forget = read_entry.take();
    let entry = submit_and_wait(conn, loaded, forget, &res, &submit);
    let Some(entry) = entry else {
        // Not known to be in Redis: abandon the blocked XREAD and hand the
        // call to the writer, whose SUBMIT retries and deduplicates.
        conn.reset();
        drop(guard);
        requeue(inner, seq, call);
        return Ok(pending.into_outcome());
    };
    {
        let mut st = inner.lock();
        st.inline_unconfirmed = false;
        if let Some(f) = st.flight.get_mut(&seq) {
            f.sent = true;
            f.entry = Some(entry);
        }
        inner.wake(&st);
    }
    let got = conn.once(|con, _| con.recv_response());
    let lost_connection = got.is_err();
    let mut mine = None;
    if let Ok(v) = got {
        mine = own_result(v, seq, read_entry);
    }
    drop(guard);
    let mut st = inner.lock();
    if let Some(r) = mine {
        let taken = st.take(seq);
        inner.wake(&st);
        drop(st);
        if let Some(f) = taken {
            return Ok(f.outcome(r, inner.cfg.max_frame));
        }
        return Ok(pending.into_outcome());
    }
    // A slow call, or trouble: the reader thread takes this call over
    // (and, after trouble, checks that Redis still has it).
    st.suspect |= lost_connection;
    if let Some(f) = st.flight.get_mut(&seq) {
        if f.inline {
            f.inline = false;
            st.inline_in_flight -= 1;
        }
    }
    inner.wake(&st);
    drop(st);
    Ok(pending.into_outcome())
}

/// Sends, in one write, the XDEL of the outcome read last time (`forget`),
/// the SUBMIT `submit` (loading its script first on a new connection) and a
/// blocking XREAD of the result stream `res`; reads the answers up to
/// SUBMIT's. The id of the call's entry, if Redis took it; the XREAD's
/// answer is left to read.
fn submit_and_wait(
    conn: &mut Conn,
    loaded: &mut u64,
    forget: Option<String>,
    res: &str,
    submit: &redis::Cmd,
) -> Option<String> {
    let mut wait = redis::cmd("XREAD");
    wait.arg("COUNT")
        .arg(64)
        .arg("BLOCK")
        .arg(1000)
        .arg("STREAMS")
        .arg(res)
        .arg("$");
    let first = conn.once(|con, generation| {
        let script = &scripts().submit;
        if *loaded != generation {
            script.load(con)?;
            *loaded = generation;
        }
        let mut bytes = Vec::new();
        if let Some(id) = &forget {
            bytes = redis::cmd("XDEL").arg(res).arg(id).get_packed_command();
        }
        bytes.extend_from_slice(&submit.get_packed_command());
        bytes.extend_from_slice(&wait.get_packed_command());
        con.send_packed_command(&bytes)?;
        if forget.is_some() {
            con.recv_response()?;
        }
        con.recv_response()
    });
    match first {
        Ok(redis::Value::Array(ids)) if ids.len() == 1 => {
            redis::from_redis_value::<String>(ids.into_iter().next().expect("one")).ok()
        }
        _ => None,
    }
}

/// Puts call `seq`, which Redis may not have, back at the front of the
/// writer's queue (if it is still in flight), and wakes the writer.
fn requeue(inner: &Inner, seq: u64, call: Call) {
    let mut st = inner.lock();
    st.inline_unconfirmed = false;
    if let Some(f) = st.take(seq) {
        st.queue.push_front(Queued {
            seq,
            call,
            promise: f.promise,
        });
    }
    inner.wake(&st);
}

/// Call `seq`'s outcome among the XREAD's answer `v`, if there; its entry's
/// id goes to `read_entry`, for the next call's XDEL.
fn own_result(v: redis::Value, seq: u64, read_entry: &mut Option<String>) -> Option<ResultEntry> {
    for (id, fields) in stream_entries(v) {
        let Some(fields) = fields else { continue };
        let r = ResultEntry::parse(fields);
        if r.seq == Some(seq) {
            *read_entry = Some(id);
            return Some(r);
        }
    }
    None
}

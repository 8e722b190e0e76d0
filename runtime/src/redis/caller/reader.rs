//! The reader: blocks on this caller's result stream, settles each call
//! with the first outcome that arrives for it (later ones are ignored) and
//! trims what it read in the same round trip as its next read (or at once,
//! before it goes idle), so results never pile up in Redis.

use std::sync::Arc;
use std::time::Duration;

use super::super::conn::Conn;
use super::super::entry::{Fields, ResultEntry};
use super::super::reply::{next_id, stream_entries};
use super::super::scripts::scripts;
use super::keeper::forgotten_by_redis;
use super::state::Inner;
use crate::error::{BrokerReason, Error};

pub(super) fn read_loop(inner: Arc<Inner>, mut conn: Conn) {
    let res = inner.keys.results(&inner.name);
    let mut last = "0-0".to_string();
    let mut trim: Option<String> = None;
    let mut seen_generation = 0;
    loop {
        if trim.is_some() && !inner.lock().reader_needed() {
            // About to sleep: trim now, not at the next read, so an idle
            // caller leaves nothing behind in Redis.
            let t = trim.take().expect("checked");
            let _ = conn.run("trim results", |con| {
                redis::cmd("XTRIM")
                    .arg(&res)
                    .arg("MINID")
                    .arg(&t)
                    .query::<i64>(con)
            });
        }
        if !wait_for_work(&inner) {
            return;
        }
        let got = conn.run("read results", |con| {
            let mut p = redis::pipe();
            if let Some(t) = &trim {
                p.cmd("XTRIM").arg(&res).arg("MINID").arg(t).ignore();
            }
            p.cmd("XREAD")
                .arg("COUNT")
                .arg(1024)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&res)
                .arg(&last);
            let (v,): (redis::Value,) = p.query(con)?;
            Ok(v)
        });
        // After a reconnection, and after this connection's first one if
        // Redis failed it before (it went down while the first read was
        // under way, or before it: the writer's calls went on its own
        // connection), or if `apply`'s fast path lost its connection after
        // its SUBMIT (its call came here: Redis may have restarted before
        // this thread ever needed to connect).
        // (A failed read fails every call in flight: nothing to verify.)
        if got.is_ok() {
            let suspect = std::mem::take(&mut inner.lock().suspect);
            if (conn.generation != seen_generation && conn.errors > 0) || suspect {
                verify_after_reconnect(&inner, &mut conn, &last);
            }
            seen_generation = conn.generation;
        }
        let entries = match got {
            Ok(v) => {
                trim = None;
                stream_entries(v)
            }
            Err(e) => {
                // The outcomes in Redis cannot be read: fail what waits for
                // them rather than hang. A late outcome is then ignored.
                log::warn!(target: "procpool", "calls in flight fail: {e}");
                let error = e.to_error("");
                inner.fail_flight(None, |task| super::state::for_task(&error, task));
                continue;
            }
        };
        if let Some(id) = settle(&inner, entries) {
            last = id;
            trim = Some(next_id(&last));
        }
    }
}

/// Sleeps while the reader has nothing to wait for (only inline applies
/// are in flight, and they read their own outcomes). `false`: leave.
fn wait_for_work(inner: &Inner) -> bool {
    let mut st = inner.lock();
    while !st.reader_needed() && !st.terminated && !inner.stopping() {
        st = inner
            .to_reader
            .wait_timeout(st, Duration::from_millis(500))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    !(st.terminated || inner.stopping())
}

/// Settles the calls these result entries answer (the first outcome per
/// call wins; others are duplicates or for calls already failed). Returns
/// the id of the last entry.
fn settle(inner: &Inner, entries: Vec<(String, Option<Fields>)>) -> Option<String> {
    let mut last = None;
    let mut settled = Vec::with_capacity(entries.len());
    let _handing = {
        let mut st = inner.lock();
        for (id, fields) in entries {
            last = Some(id);
            let Some(fields) = fields else { continue };
            let r = ResultEntry::parse(fields);
            if let Some(f) = r.seq.and_then(|s| st.take(s)) {
                let outcome = f.outcome(r, inner.cfg.max_frame);
                settled.push((f.promise, outcome));
            }
        }
        let handing = inner.hand_over(&mut st);
        inner.wake(&st);
        handing
    };
    for (promise, outcome) in settled {
        promise.complete(outcome);
    }
    last
}

/// After a reconnection (Redis may have restarted), or once the task
/// stream was found gone and made again (see `keeper::check_regroups`), checks that this
/// caller is still registered (if Redis lost its data, every call fails as
/// [`forgotten`](super::writer::forgotten)), then that every call SUBMIT
/// confirmed is still somewhere: queued or running in the task stream, or
/// answered in the unread part of the result stream. A call that is
/// nowhere was lost with writes Redis acknowledged but had not persisted (a
/// crash under `appendfsync everysec`), and it fails with `Broker` (`Lost`)
/// instead of waiting forever.
fn verify_after_reconnect(inner: &Inner, conn: &mut Conn, last: &str) {
    // No cancel between its request and its settling while this looks.
    let _no_taking_back = inner.taking_back.write().unwrap_or_else(|e| e.into_inner());
    let seqs: Vec<u64> = inner
        .lock()
        .flight
        .iter()
        .filter(|(_, f)| f.sent)
        .map(|(s, _)| *s)
        .collect();
    if seqs.is_empty() {
        return;
    }
    let kind = conn.run("verify registration", |con| {
        redis::cmd("HGET")
            .arg(inner.keys.members())
            .arg(&inner.name)
            .query::<Option<String>>(con)
    });
    if matches!(&kind, Ok(k) if k.as_deref() != Some("caller")) {
        forgotten_by_redis(inner);
        return;
    }
    let script = &scripts().verify;
    let missing = conn.run("verify calls", |con| {
        let mut inv = script.prepare_invoke();
        inv.key(inner.keys.tasks())
            .key(inner.keys.results(&inner.name));
        inv.arg(&inner.name).arg(last);
        for s in &seqs {
            inv.arg(*s);
        }
        inv.invoke::<Vec<u64>>(con)
    });
    if let Ok(missing) = missing {
        if !missing.is_empty() {
            log::warn!(target: "procpool", "Redis lost {} calls", missing.len());
            inner.fail_flight(Some(&missing), |task| Error::Broker {
                task: task.to_string(),
                reason: BrokerReason::Lost,
                message: "Redis lost this call, in a restart (it acknowledged a write it had \
                          not persisted: use appendfsync always) or with its task stream \
                          (deleted, or evicted: use maxmemory-policy noeviction); its outcome \
                          can never arrive (a node may have started it)"
                    .into(),
            });
        }
    }
}

//! Claiming calls: one runner at a time reads new entries for this node
//! (`XREADGROUP … >`), never more than the node can hold, so calls wait in
//! Redis where any node can take them, not behind a busy node. After a
//! reconnection it first re-reads its own pending list (`0`, then on from
//! the last entry read, a batch at a time, to its end): a claim whose reply
//! was lost left entries there that this node never saw, the newest ones.

use std::collections::HashSet;

use super::super::conn::Conn;
use super::super::entry::{call_identity, parse_task};
use super::super::keys::GROUP;
use super::super::reply::stream_entries;
use super::identity::{beat, beat_is_stale};
use super::orphans::Callers;
use super::shared::{Done, Item, Shared};
use crate::redis::failure::RemoteFailure;

/// The claiming connection and what it remembers across reads.
pub(crate) struct ReadSide {
    pub(super) conn: Conn,
    /// Re-read our own pending list before claiming new entries.
    pub(super) recover: bool,
    /// Where that re-reading goes on from: `0` (its start), or the last
    /// entry of a full batch.
    pub(super) recover_from: String,
    pub(super) last_name: String,
    /// Callers recently seen registered.
    pub(super) callers: Callers,
}

/// Entries of the pending list re-read at a time.
const RECOVER_BATCH: usize = 10_000;

impl ReadSide {
    /// Has the next claim re-read this node's whole pending list, from its
    /// start.
    pub(super) fn recover_all(&mut self) {
        self.recover = true;
        self.recover_from = "0".to_string();
    }
}

/// Claims entries once (blocking up to 1 s) and queues them as work.
pub(super) fn read_once(s: &Shared) {
    let mut guard = s.read.lock().unwrap_or_else(|e| e.into_inner());
    let side = &mut *guard;
    // (At most what Redis takes for a COUNT, a signed 64-bit number.)
    let room = s
        .capacity()
        .saturating_sub(s.lock().claimed.len())
        .clamp(1, i64::MAX as usize);
    // Never claim under an identity that may have been declared dead: a
    // node resumed after a stop or a partition checks first (the keeper
    // beats every ttl/6, so this costs nothing in normal running). If the
    // beat fails (Redis unreachable, or refusing writes: out of memory),
    // it cannot know: it claims nothing until a beat succeeds.
    if beat_is_stale(s) && beat(s, &mut side.conn).is_err() {
        drop(guard);
        return unconfirmed(s);
    }
    let (name, epoch) = s.identity();
    if name != side.last_name {
        side.recover = false;
        side.last_name = name.clone();
    }
    // A new call was passed over, under the id of one being settled (see
    // `take_entries`): that one is settled now, and the new one waits in
    // the pending list.
    if std::mem::take(&mut s.lock().reread) {
        side.recover_all();
    }
    let g0 = side.conn.generation;
    let from_pending = side.recover;
    let from = side.recover_from.clone();
    let _exclusive = from_pending.then(|| s.settle_gate.write().unwrap_or_else(|e| e.into_inner()));
    let got = side.conn.run("claim calls", |con| {
        let mut c = redis::cmd("XREADGROUP");
        c.arg("GROUP").arg(GROUP).arg(&name);
        if from_pending {
            c.arg("COUNT").arg(RECOVER_BATCH);
        } else {
            c.arg("COUNT").arg(room).arg("BLOCK").arg(1000);
        }
        c.arg("STREAMS")
            .arg(s.keys.tasks())
            .arg(if from_pending { from.as_str() } else { ">" });
        c.query::<redis::Value>(con)
    });
    // Connected again during the read (the first connection, made by this
    // read itself, is no reconnection): a claim's reply may have been lost.
    let reconnected = side.conn.generation > g0.max(1);
    if reconnected {
        side.recover_all();
    }
    // Stopped while blocked in the read? Then these entries may have been
    // claimed after this identity was declared dead: if so, `beat` moves
    // to a new identity and the runners drop them (the reaper answers them).
    // If the beat fails, whether they are ours is unknown: they stay in
    // Redis, pending; once a beat succeeds, they are read again from the
    // pending list (still ours) or the reaper settles them (declared dead).
    if beat_is_stale(s) && beat(s, &mut side.conn).is_err() {
        side.recover_all();
        drop(guard);
        return unconfirmed(s);
    }
    let entries = match got {
        Ok(v) => stream_entries(v),
        Err(e) => {
            log::warn!(target: "procpool", "node {name}: {e}");
            side.recover_all();
            drop(guard);
            // Redis refused the read (e.g. NOGROUP: it lost its data and
            // the group is made again at the next beat): not again at once.
            unconfirmed(s);
            return;
        }
    };
    // A full batch of the pending list: the rest (the newest entries, those
    // of a lost reply among them) is read next, before any new claim.
    if from_pending && !reconnected {
        match entries.last() {
            Some((last, _)) if entries.len() >= RECOVER_BATCH => side.recover_from = last.clone(),
            _ => side.recover = false,
        }
    }
    let orphans = side.callers.orphans(&mut side.conn, &s.keys, &entries);
    let acks = take_entries(s, entries, &orphans, &name, epoch, from_pending);
    if !acks.is_empty() {
        let _ = side.conn.run("ack deleted entries", |con| {
            redis::cmd("XACK")
                .arg(s.keys.tasks())
                .arg(GROUP)
                .arg(&acks)
                .query::<i64>(con)
        });
    }
}

/// Ends a claim that could not confirm the node's identity (the claiming
/// connection released): the runners wait a moment, not to hammer Redis,
/// and try again.
fn unconfirmed(s: &Shared) {
    {
        let mut st = s.lock();
        st.reading = false;
        s.wake(&st);
    }
    std::thread::sleep(UNCONFIRMED_PAUSE);
}

/// How long a node waits after a beat failed before it tries to claim again.
const UNCONFIRMED_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Queues claimed entries as work (or as outcomes, for those that cannot
/// run); returns the ids of entries deleted while pending, to acknowledge.
fn take_entries(
    s: &Shared,
    entries: Vec<(String, Option<super::super::entry::Fields>)>,
    orphans: &HashSet<String>,
    name: &str,
    epoch: u64,
    from_pending: bool,
) -> Vec<String> {
    let mut acks = Vec::new();
    let mut st = s.lock();
    for (entry, fields) in entries {
        if let Some(&held) = st.claimed.get(&entry) {
            // Held already. A new claim under a held id is another call (a
            // task stream that lost its data reused the id of one still
            // being settled): taken once that one is settled, from the
            // pending list, and the held one's DELIVER checks the entry.
            // Read again from the pending list (after a lost reply or a
            // reconnection), it is the held call, or a new one that a claim
            // whose reply was lost took (told apart by caller and seq).
            // (A pending entry deleted meanwhile holds no call.)
            let new_call =
                !from_pending || fields.as_ref().is_some_and(|f| call_identity(f) != held);
            if new_call {
                st.reused.insert(entry);
            }
            continue;
        }
        let Some(fields) = fields else {
            // Deleted while pending (its caller terminated): just ack.
            acks.push(entry);
            continue;
        };
        let remembered = s
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&entry)
            .cloned();
        st.claimed.insert(entry.clone(), call_identity(&fields));
        match parse_task(entry, fields, s.cfg.max_frame) {
            Ok(call) => {
                // Settled by us, but Redis lost that: settled again. Only
                // the same call: a Redis that lost its task stream may give
                // a new call an id used before (its clock behind the old
                // one's).
                let same = |d: &Done| d.caller == call.caller && d.seq == call.seq;
                if let Some(mut done) = remembered.filter(same) {
                    // Pending under the name it was claimed by now (the
                    // node's name changes when it comes back after being
                    // declared lost): a DELIVER under the old one is fenced.
                    done.consumer = name.to_string();
                    st.done.push(done);
                    continue;
                }
                let item = Item {
                    call,
                    consumer: name.to_string(),
                    epoch,
                };
                // Not run for a caller that is gone (no longer registered):
                // the answer is dropped.
                if st.is_cancelled(&item.call) || orphans.contains(&item.call.caller) {
                    st.done.push(Done::of(&item, Err(RemoteFailure::Cancelled)));
                } else {
                    st.work.push_back(item);
                }
            }
            Err(bad) => st.done.push(Done {
                entry: bad.entry,
                consumer: name.to_string(),
                caller: bad.caller,
                seq: bad.seq,
                status: "e",
                body: bad.failure.encode(),
            }),
        }
    }
    st.reading = false;
    s.wake(&st);
    acks
}

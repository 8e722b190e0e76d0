//! Running a node's calls on its local pool: an ordinary procpool pool of
//! worker processes, so local deaths, `task_timeout`, `max_tasks_per_child`
//! and the initializer keep their local meaning. Only registered names run:
//! the local worker looks each name up in its registry and checks the
//! fingerprint, as for a local call. Calls are queued without waiting, so
//! quick ones are pipelined to the workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::super::entry::NodeCall;
use super::super::failure::RemoteFailure;
use crate::pool::Pool;

/// A node's local pool, and which of its calls belong to which caller.
pub(crate) struct LocalExecutor {
    pub(super) pool: Pool,
    /// The local call ids running for each caller, by the caller's seq, to
    /// stop them when the caller cancels or terminates, each with the
    /// identity (epoch) of the node that claimed it.
    running: Arc<Running>,
}

impl LocalExecutor {
    pub(super) fn new(pool: Pool) -> LocalExecutor {
        LocalExecutor {
            pool,
            running: Arc::default(),
        }
    }

    /// Queues `call` (its arguments are taken), claimed under identity
    /// `epoch`, on the local pool; `done` gets its outcome, on the local
    /// pool's thread that settles it.
    pub(super) fn start(
        &self,
        call: &mut NodeCall,
        epoch: u64,
        done: impl FnOnce(Result<Vec<u8>, RemoteFailure>) + Send + 'static,
    ) {
        let local = match self.pool.foreign_call(
            &call.task,
            call.fingerprint,
            call.kind,
            std::mem::take(&mut call.args),
            call.timeout,
        ) {
            Ok(local) => local,
            Err(e) => return done(Err(RemoteFailure::of(&e))),
        };
        let (caller, seq, id) = (call.caller.clone(), call.seq, local.id);
        track(&self.running, &caller, seq, Track::Started(id, epoch));
        let running = self.running.clone();
        self.pool.start_call(local, move |outcome| {
            track(&running, &caller, seq, Track::Ended(id));
            done(match &*outcome {
                Ok(body) => Ok(body.contiguous().into_owned()),
                Err(e) => Err(RemoteFailure::of(e)),
            })
        });
    }

    /// Stops the call `seq` of `caller` if it is on the local pool.
    pub(super) fn cancel_one(&self, caller: &str, seq: u64) {
        let id = lock(&self.running)
            .get(caller)
            .and_then(|ids| ids.get(&seq).copied());
        if let Some((id, _)) = id {
            self.pool.cancel_call(id);
        }
    }

    /// Stops the calls claimed under an identity older than `epoch`: the
    /// cluster declared it dead and has answered them (`NodeLost`) or
    /// queued them again. Those still queued, or pipelined behind another,
    /// never run; a running one has its worker stopped (its outcome would
    /// be ignored).
    pub(super) fn cancel_before(&self, epoch: u64) {
        let ids: Vec<u64> = lock(&self.running)
            .values()
            .flat_map(|ids| ids.values())
            .filter(|(_, claimed)| *claimed < epoch)
            .map(|(id, _)| *id)
            .collect();
        self.cancel_last_first(ids);
    }

    /// Stops the calls of `caller` on the local pool.
    pub(super) fn cancel_caller(&self, caller: &str) {
        let ids: Vec<u64> = lock(&self.running)
            .get(caller)
            .map(|ids| ids.values().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        self.cancel_last_first(ids);
    }

    /// Cancels the local calls `ids`, the last queued first (local ids
    /// grow in the order calls are queued), as a map's parts are: a running
    /// call cancelled first has its worker killed, and the calls pipelined
    /// behind it, not yet cancelled, went back to the queue and ran on the
    /// replacement before their own cancels came (a terminated caller's
    /// calls claimed ahead ran: redis_conformance's
    /// terminate_reaches_calls_a_node_claimed_ahead, 3 runs in 30).
    fn cancel_last_first(&self, mut ids: Vec<u64>) {
        ids.sort_unstable_by(|a, b| b.cmp(a));
        for id in ids {
            self.pool.cancel_call(id);
        }
    }
}

/// Caller → its seq → (local call id, epoch it was claimed under).
type Calls = HashMap<String, HashMap<u64, (u64, u64)>>;
type Running = Mutex<Calls>;

fn lock(running: &Running) -> std::sync::MutexGuard<'_, Calls> {
    running.lock().unwrap_or_else(|e| e.into_inner())
}

/// What happened to a caller's call on the local pool.
enum Track {
    /// It was queued as local call `.0`, claimed under identity `.1`.
    Started(u64, u64),
    /// Local call `.0` was settled.
    Ended(u64),
}

fn track(running: &Running, caller: &str, seq: u64, what: Track) {
    let mut map = lock(running);
    match what {
        Track::Started(id, epoch) => {
            map.entry(caller.to_string())
                .or_default()
                .insert(seq, (id, epoch));
        }
        Track::Ended(id) => {
            if let Some(ids) = map.get_mut(caller) {
                // Only its own record: a copy of the same call claimed
                // again (under a new identity, with `redeliver`) may have
                // replaced it, and must stay cancellable.
                if ids.get(&seq).is_some_and(|(own, _)| *own == id) {
                    ids.remove(&seq);
                }
                if ids.is_empty() {
                    map.remove(caller);
                }
            }
        }
    }
}

//! What a node's threads share: the calls claimed, the outcomes waiting to
//! be settled, and who to wake when either changes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use super::super::conn::{BrokerError, Conn};
use super::super::entry::NodeCall;
use super::super::failure::RemoteFailure;
use super::super::keys::Keys;
use super::local::LocalExecutor;
use super::recent::Recent;
use super::stopped::Stopped;
use crate::pool::config::NodeConfig;

/// Set for tests ([`treat_calls_as_quick`]): the nodes of this process count
/// every call that completes as quick, however long it took.
static ALL_QUICK: AtomicBool = AtomicBool::new(false);

/// For tests of what a node does with the calls it claims ahead: from now
/// on the nodes of this process count every call that completes as taking
/// no time, as on a fast machine, instead of by its time, which a slow or
/// loaded machine makes look slow. Once calls have completed they claim
/// ahead, and keep calls of the tasks they saw complete queued behind a
/// busy worker; a call of a task they never saw complete still goes back.
pub(crate) fn treat_calls_as_quick() {
    ALL_QUICK.store(true, Ordering::Relaxed);
}

/// A claimed call, and the identity it was claimed under.
pub(super) struct Item {
    pub(super) call: NodeCall,
    pub(super) consumer: String,
    pub(super) epoch: u64,
}

/// An outcome to settle in Redis.
#[derive(Clone)]
pub(super) struct Done {
    pub(super) entry: String,
    pub(super) consumer: String,
    pub(super) caller: String,
    pub(super) seq: u64,
    pub(super) status: &'static str,
    pub(super) body: Vec<u8>,
}

impl Done {
    pub(super) fn of(item: &Item, outcome: Result<Vec<u8>, RemoteFailure>) -> Done {
        let (status, body) = match outcome {
            Ok(v) => ("v", v),
            Err(f) => ("e", f.encode()),
        };
        Done {
            entry: item.call.entry.clone(),
            consumer: item.consumer.clone(),
            caller: item.call.caller.clone(),
            seq: item.call.seq,
            status,
            body,
        }
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) work: VecDeque<Item>,
    /// Entry ids claimed and not yet settled in Redis, and which call each
    /// held ([`call_identity`](super::super::entry::call_identity)).
    pub(super) claimed: HashMap<String, u64>,
    /// Ids of `claimed` that a new claim returned again: a task stream that
    /// lost its data gave a new call the id of one this node was still
    /// settling. Once that one is settled, the new one is read again from
    /// the pending list (`reread`).
    pub(super) reused: HashSet<String>,
    /// The feeder is to read this node's pending list again.
    pub(super) reread: bool,
    pub(super) done: Vec<Done>,
    /// Callers that terminated: their calls are not run.
    pub(super) cancelled: HashSet<String>,
    /// Single calls cancelled before this node had them in hand: they are
    /// not run.
    pub(super) stopped: Stopped,
    /// The feeder still runs (it claims and queues calls).
    pub(super) feeding: bool,
    /// The feeder is claiming.
    pub(super) reading: bool,
    /// The deliverer is settling a batch.
    pub(super) delivering: bool,
    /// Calls queued on the local pool and not yet settled there.
    pub(super) local: usize,
    /// The node stopped without reaching Redis for a whole retry budget:
    /// what it still holds is left to the cluster (see
    /// `identity::give_up_if_cut_off`).
    pub(super) abandoned: bool,
}

/// Counters, for logs and tests.
#[derive(Default, Debug)]
pub(super) struct Stats {
    pub(super) ran: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) fenced: AtomicU64,
    pub(super) dropped: AtomicU64,
}

pub(super) struct Shared {
    pub(super) cfg: NodeConfig,
    pub(super) keys: Keys,
    pub(super) exec: LocalExecutor,
    /// The node's current name, and how many it has had.
    pub(super) identity: Mutex<(String, u64)>,
    /// When this node last knew itself alive (a heartbeat succeeded); the
    /// local pool's start gate reads it too.
    pub(super) last_beat: Arc<Mutex<Instant>>,
    /// Makes beating and re-registering one step.
    pub(super) beat_lock: Mutex<()>,
    /// Held shared by every DELIVER (script and bookkeeping) and
    /// exclusively by a recovery read (`XREADGROUP … 0` and bookkeeping),
    /// so the pending list a recovery read returns is never older than
    /// `claimed`: an entry settled by another runner during the read cannot
    /// look new and run twice.
    pub(super) settle_gate: RwLock<()>,
    /// Outcomes settled in the last few seconds, delivered again (instead
    /// of run again) if Redis lost the DELIVER and the entry reappears.
    pub(super) recent: Mutex<Recent>,
    pub(super) read: Mutex<super::claim::ReadSide>,
    /// The connection an outcome is settled on at once, from the thread it
    /// arrived on, when nothing else waits to be settled (an idle node's
    /// call then costs no hand-off to the deliverer).
    pub(super) inline: Mutex<Conn>,
    pub(super) state: Mutex<State>,
    /// The feeder waits here (for work, or room to claim); the deliverer
    /// waits on `to_deliverer`.
    pub(super) to_runners: Condvar,
    pub(super) to_deliverer: Condvar,
    pub(super) stop: Arc<AtomicBool>,
    /// Set when the node gives up on Redis while stopping (see
    /// `identity::give_up_if_cut_off`): the stop flag of the connections
    /// outcomes are settled on, so that a report under way then ends at
    /// its next attempt instead of retrying for a budget more.
    pub(super) given_up: Arc<AtomicBool>,
    pub(super) stats: Stats,
    /// The time a call occupies the node, in µs (a moving average of the
    /// gaps between completions, or of a call's whole time when none
    /// completed meanwhile; `u64::MAX` before the first): prefetching pays
    /// only for quick calls.
    pub(super) run_micros: AtomicU64,
    /// Calls were given back: claim no more than idle processes until a
    /// call completes (or they would be claimed again at once).
    pub(super) hold: AtomicBool,
    /// When the last call completed.
    pub(super) last_completion: Mutex<Option<Instant>>,
    /// The tasks this node has seen be quick (the time a call occupied the
    /// node under a millisecond), and those it has seen be slow.
    pub(super) quick_tasks: Mutex<std::collections::HashMap<String, bool>>,
}

impl State {
    /// Forgets a claimed entry id, settled or given back; a new call under
    /// the same id, passed over meanwhile (`reused`), is then read again.
    pub(super) fn unclaim(&mut self, entry: &str) {
        self.claimed.remove(entry);
        if self.reused.remove(entry) {
            self.reread = true;
        }
    }

    /// Whether `call` must not run: its caller terminated, or cancelled it.
    pub(super) fn is_cancelled(&self, call: &NodeCall) -> bool {
        self.cancelled.contains(&call.caller) || self.stopped.contains(&call.caller, call.seq)
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// How many calls the node holds at most: one per process, plus the
    /// prefetch while its calls are quick (under a millisecond each). A
    /// slow call prefetched would wait behind a busy node while another node
    /// may be idle; quick ones save a round trip each and are pipelined to
    /// the workers by the local pool.
    pub(super) fn capacity(&self) -> usize {
        let quick =
            self.run_micros.load(Ordering::Relaxed) < Self::QUICK_MICROS && !self.lock_state_hold();
        // (Saturating: `prefetch(usize::MAX)` means "all there is".)
        let ahead = if quick { self.cfg.prefetch } else { 0 };
        self.cfg.processes.max(1).saturating_add(ahead)
    }

    const QUICK_MICROS: u64 = 1000;

    fn lock_state_hold(&self) -> bool {
        self.hold.load(Ordering::Relaxed)
    }

    /// Whether this node has seen calls of `task` be quick.
    pub(super) fn is_quick(&self, task: &str) -> bool {
        let quick = self.quick_tasks.lock().unwrap_or_else(|e| e.into_inner());
        quick.get(task).copied().unwrap_or(false)
    }

    /// Counts a call of `task` queued at `started` that completed now into
    /// the moving average of the time a call occupies the node, and into
    /// what is known of `task`.
    pub(super) fn completed(&self, task: &str, started: Instant) {
        let now = Instant::now();
        let since = {
            let mut last = self
                .last_completion
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let since = match *last {
                Some(prev) if prev > started => prev,
                _ => started,
            };
            *last = Some(now);
            since
        };
        let took = now.duration_since(since);
        let us = if ALL_QUICK.load(Ordering::Relaxed) {
            0
        } else {
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX / 2)
        };
        let old = self.run_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            us
        } else {
            (old * 7 + us) / 8
        };
        self.run_micros.store(new, Ordering::Relaxed);
        let mut quick = self.quick_tasks.lock().unwrap_or_else(|e| e.into_inner());
        if quick.len() > 10_000 {
            quick.clear();
        }
        quick.insert(task.to_string(), us < Self::QUICK_MICROS);
    }

    /// Wakes whichever thread can now make progress.
    pub(super) fn wake(&self, st: &State) {
        if !st.work.is_empty()
            || self.stopping()
            || (!st.reading && st.claimed.len() < self.capacity())
        {
            self.to_runners.notify_one();
        }
        if !st.done.is_empty() || !st.feeding {
            self.to_deliverer.notify_one();
        }
    }

    /// Whether every claimed call is settled and nothing more will be, or
    /// the node gave up on settling them.
    pub(super) fn drained(st: &State) -> bool {
        st.abandoned
            || (!st.feeding && !st.delivering && st.done.is_empty() && st.claimed.is_empty())
    }

    pub(super) fn identity(&self) -> (String, u64) {
        self.identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A connection for settling outcomes: it keeps retrying within its
    /// budget when the node is stopping (a stopping node still reports
    /// what it ran; `deliver::settle` gives up after one budget then),
    /// unless the node gave up on Redis (`given_up`).
    pub(super) fn settle_conn(
        cfg: &NodeConfig,
        given_up: &Arc<AtomicBool>,
    ) -> Result<Conn, BrokerError> {
        Conn::new(&cfg.broker.url, cfg.broker.retry.clone(), given_up.clone())
    }

    pub(super) fn new_conn(&self) -> Result<Conn, BrokerError> {
        Conn::new(
            &self.cfg.broker.url,
            self.cfg.broker.retry.clone(),
            self.stop.clone(),
        )
    }
}

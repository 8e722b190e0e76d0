//! What a caller's threads share: the calls waiting in this process, the
//! calls in Redis, and who to wake when either changes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::super::conn::Conn;
use super::super::entry::ResultEntry;
use super::super::failure::RemoteFailure;
use super::super::keys::Keys;
use crate::call::{Call, Kind};
use crate::chunk;
use crate::error::Error;
use crate::pool::config::Remote;
use crate::result::{Outcome, Promise};
use crate::wire;

/// A call waiting in this process for room in Redis.
pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) call: Call,
    pub(super) promise: Promise,
}

/// A call handed to Redis (or being handed).
pub(super) struct Flight {
    /// The pool's id of the call (what `cancel` names it by).
    pub(super) id: u64,
    /// Its task-stream entry, once SUBMIT said (`cancel` deletes it).
    pub(super) entry: Option<String>,
    pub(super) task: &'static str,
    /// The caller's signature, for a `SignatureMismatch` from the node.
    pub(super) signature: &'static str,
    /// The call's time limit as the caller set it, for a `Timeout` from
    /// the node (which knows it in whole milliseconds).
    pub(super) limit: Option<Duration>,
    /// A map's chunk (its value is a chunk's records), not one call.
    pub(super) chunk: bool,
    pub(super) promise: Promise,
    /// An inline `apply` reads this call's outcome itself: the reader
    /// thread need not block on the result stream for it.
    pub(super) inline: bool,
    /// SUBMIT confirmed it is in Redis (only such calls can be checked for
    /// loss after a reconnection).
    pub(super) sent: bool,
}

impl Flight {
    pub(super) fn new(call: &Call, promise: Promise, inline: bool) -> Flight {
        Flight {
            id: call.id,
            entry: None,
            task: call.task.name,
            signature: call.task.signature,
            limit: call.timeout.get(),
            chunk: call.kind == Kind::Chunk,
            promise,
            inline,
            sent: false,
        }
    }

    /// The outcome a result entry means for this call, held to
    /// `max_frame` (the pool's `max_frame_bytes`) as from a local worker,
    /// whose node may allow more: a result over it fails with
    /// `FrameTooLarge`, and the texts of a failure (a panic's message) are
    /// cut to fit it, those of a chunk's failed items too (its values are
    /// never cut: a chunk whose values alone are too large fails whole).
    pub(super) fn outcome(&self, r: ResultEntry, max_frame: usize) -> Outcome {
        let task = self.task;
        match r.status.as_slice() {
            b"v" if r.body.len() > max_frame => {
                let (len, mut body) = (r.body.len(), r.body);
                // As a local worker fits a chunk's reply (its header and
                // all) within the limit and the chunk framing.
                let room = max_frame
                    .saturating_add(wire::CHUNK_FRAMING)
                    // (A result entry's body goes without the reply's header.)
                    .saturating_sub(wire::RESULTS_HEADER_LEN);
                if self.chunk && chunk::fit_failures(&mut body, chunk::RECORDS_AT, room) {
                    return Ok(body.into());
                }
                Err(Error::FrameTooLarge {
                    task: task.to_string(),
                    len: len as u64,
                    max: max_frame as u64,
                })
            }
            b"v" => Ok(r.body.into()),
            b"e" => match RemoteFailure::decode(&r.body) {
                Ok(failure) => {
                    let failure = if r.body.len() > max_frame {
                        failure.fit(max_frame)
                    } else {
                        failure
                    };
                    Err(failure.into_error(task, self.signature, self.limit))
                }
                Err(message) => Err(Error::Protocol {
                    task: task.to_string(),
                    message: format!("undecodable failure from node {}: {message}", r.node),
                }),
            },
            b"l" => Err(Error::NodeLost {
                task: task.to_string(),
                node: r.node,
            }),
            other => Err(Error::Protocol {
                task: task.to_string(),
                message: format!(
                    "unknown result status {:?} from node {}",
                    String::from_utf8_lossy(other),
                    r.node
                ),
            }),
        }
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) queue: VecDeque<Queued>,
    /// Calls handed to Redis, by seq.
    pub(super) flight: HashMap<u64, Flight>,
    pub(super) next_seq: u64,
    pub(super) closed: bool,
    pub(super) terminated: bool,
    /// Why every call fails from now on (the cluster forgot this caller).
    pub(super) broken: Option<Error>,
    /// Why new calls fail at once for now: calls waited `node_wait` and no
    /// node of this build is up (the keeper clears it once one is).
    pub(super) no_node: Option<Error>,
    /// An inline `apply` has sent its call and not yet seen SUBMIT's reply:
    /// the writer waits, so calls reach Redis in seq order.
    pub(super) inline_unconfirmed: bool,
    /// Calls in `flight` with `inline` set.
    pub(super) inline_in_flight: usize,
    /// Hand-overs under way of outcomes taken out of `flight` to their
    /// promises (done with no lock held): `join` waits for them too, so a
    /// result is ready when it returns (see [`Inner::hand_over`]).
    pub(super) settling: usize,
    /// Threads waiting for calls being handed to Redis to get there (see
    /// [`Inner::wait_submitted`]).
    pub(super) awaiting_submit: usize,
    /// `apply`'s fast path lost its connection after Redis confirmed its
    /// call: the reader, which takes the call over, checks at its next read
    /// that Redis still has it (see `reader::verify_after_reconnect`).
    pub(super) suspect: bool,
}

/// A hand-over of outcomes to their promises (see [`Inner::hand_over`]).
pub(super) struct HandOver<'a>(&'a Inner);

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.settling -= 1;
        self.0.wake(&st);
    }
}

impl State {
    /// Nothing queued, in flight, or being handed to its promise: what
    /// `join` waits for.
    pub(super) fn drained(&self) -> bool {
        self.queue.is_empty() && self.flight.is_empty() && self.settling == 0
    }

    pub(super) fn take(&mut self, seq: u64) -> Option<Flight> {
        let f = self.flight.remove(&seq)?;
        if f.inline {
            self.inline_in_flight -= 1;
        }
        Some(f)
    }

    pub(super) fn take_all(&mut self) -> Vec<Flight> {
        self.inline_in_flight = 0;
        self.flight.drain().map(|(_, f)| f).collect()
    }

    /// Whether some call's outcome is awaited by the reader thread.
    pub(super) fn reader_needed(&self) -> bool {
        self.flight.len() > self.inline_in_flight
    }

    /// The seq of the call in flight with the pool's id `id`.
    pub(super) fn seq_of(&self, id: u64) -> Option<u64> {
        self.flight
            .iter()
            .find_map(|(seq, f)| (f.id == id).then_some(*seq))
    }
}

/// Everything a caller's threads share.
pub(super) struct Inner {
    pub(super) cfg: Remote,
    pub(super) keys: Keys,
    /// This caller's member name (`c<id>.<tag>@host:pid`).
    pub(super) name: String,
    pub(super) state: Mutex<State>,
    /// Three condition variables, so a state change wakes only a thread
    /// that can act on it (on two CPUs each spurious wake-up is latency).
    pub(super) to_writer: Condvar,
    pub(super) to_reader: Condvar,
    pub(super) to_joiners: Condvar,
    /// Cancels waiting for a SUBMIT's answer (see [`Inner::wait_submitted`]).
    pub(super) to_cancellers: Condvar,
    /// The keeper, between its rounds: woken to leave at once when the
    /// pool is dropped or terminated.
    pub(super) to_keeper: Condvar,
    /// Tells the threads to leave, and retry loops to give up.
    pub(super) stop: Arc<AtomicBool>,
    /// Processes of the registered nodes (refreshed by the keeper).
    pub(super) processes: AtomicUsize,
    /// The writer's connection. Only the writer sends queued calls, in
    /// batches taken in seq order, so calls reach Redis in seq order
    /// (SUBMIT's high-water mark relies on it).
    pub(super) submit_conn: Mutex<Conn>,
    /// A SUBMIT found Redis out of reach for a whole retry budget, and none
    /// has succeeded since: each batch gets one attempt, so calls fail at
    /// once rather than each batch after a budget of its own (see
    /// `writer::send_batch`).
    pub(super) out_of_reach: AtomicBool,
    /// The connection `cancel`, `close_and_cancel` and `terminate` use.
    pub(super) control_conn: Mutex<Conn>,
    /// Held (shared) by each taking back of calls from Redis (a cancel,
    /// `close_and_cancel`, `node_wait`'s removal) from its request until
    /// it settled what it removed, and (exclusive) by the reader's check
    /// that Redis still has the calls in flight: a call taken out of Redis
    /// by its cancel is not also failed as lost by a check that ran between
    /// the two (see `reader::verify_after_reconnect`).
    pub(super) taking_back: std::sync::RwLock<()>,
    /// `apply`'s own connection, the connection generation its SUBMIT
    /// script was loaded for, and the result it read last (deleted with
    /// its next write).
    pub(super) inline_conn: Mutex<(Conn, u64, Option<String>)>,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Wakes whichever thread can now make progress.
    pub(super) fn wake(&self, st: &State) {
        let ending = st.terminated || self.stopping();
        if ending
            || st.closed
            || (!st.queue.is_empty()
                && st.flight.len() < self.cfg.max_in_flight
                && !st.inline_unconfirmed)
        {
            self.to_writer.notify_one();
        }
        if ending || st.reader_needed() {
            self.to_reader.notify_one();
        }
        if ending || st.drained() {
            self.to_joiners.notify_all();
        }
        if ending {
            self.to_keeper.notify_all();
        }
        if st.awaiting_submit > 0 {
            self.to_cancellers.notify_all();
        }
    }

    /// Waits, with the lock `st`, while `unsent` says some call it cares
    /// about is being handed to Redis: taken from the queue into a SUBMIT
    /// (the writer's, or an inline `apply`'s) that has not been answered.
    /// Until it is, Redis cannot find the call, and a cancel would be told
    /// it was settled while it is about to be queued there. Bounded: a
    /// SUBMIT is answered, or its calls fail, within the retry budget.
    pub(super) fn wait_submitted<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        unsent: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        while unsent(&st) && !st.terminated && !self.stopping() {
            st.awaiting_submit += 1;
            st = self
                .to_cancellers
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
            st.awaiting_submit -= 1;
        }
        st
    }

    /// Marks a hand-over of outcomes taken from `flight` (with the lock
    /// held, as they are taken); it ends when the guard is dropped, once
    /// their promises are complete.
    pub(super) fn hand_over<'a>(&'a self, st: &mut State) -> HandOver<'a> {
        st.settling += 1;
        HandOver(self)
    }

    pub(super) fn wake_all(&self) {
        self.to_writer.notify_all();
        self.to_reader.notify_all();
        self.to_joiners.notify_all();
        self.to_cancellers.notify_all();
        self.to_keeper.notify_all();
    }

    /// Settles the calls `seqs` still in flight (all of them with `None`)
    /// with the error `make(task)`. Promises run with no lock held.
    pub(super) fn fail_flight(&self, seqs: Option<&[u64]>, make: impl Fn(&str) -> Error) {
        let (taken, _handing) = {
            let mut st = self.lock();
            let taken: Vec<Flight> = match seqs {
                Some(seqs) => seqs.iter().filter_map(|s| st.take(*s)).collect(),
                None => st.take_all(),
            };
            let handing = self.hand_over(&mut st);
            self.wake(&st);
            (taken, handing)
        };
        for f in taken {
            let e = make(f.task);
            f.promise.complete(Err(e));
        }
    }
}

/// `error` (a broker error about the pool) as the error of a call of `task`.
pub(super) fn for_task(error: &Error, task: &str) -> Error {
    match error {
        Error::Broker {
            reason, message, ..
        } => Error::Broker {
            task: task.to_string(),
            reason: *reason,
            message: message.clone(),
        },
        other => other.clone(),
    }
}

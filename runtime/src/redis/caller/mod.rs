//! The caller's side of a distributed pool: [`RedisDispatcher`], the
//! [`Dispatcher`] a pool built with `PoolBuilder::redis` hands its calls to.
//!
//! Three threads, each with its own connection: the [`writer`] moves queued
//! calls into Redis in batches (at most `max_in_flight` at a time), the
//! [`reader`] settles calls from this caller's result stream, and the
//! [`keeper`] beats, reaps and counts nodes. A fast path keeps an idle
//! caller's `apply` near a bare Streams round trip: it does its whole
//! exchange itself ([`inline`]). `apply_async` and the maps never touch the
//! network from the calling thread: they queue for the writer.

mod cancel;
mod inline;
mod keeper;
mod reader;
mod state;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::conn::{quick, BrokerError, Conn};
use super::keys::{Keys, IDLE_EXPIRY};
use super::member::{self, Role};
use crate::call::Call;
use crate::cancel::CancelOutcome;
use crate::error::Error;
use crate::pool::config::Remote;
use crate::pool::dispatcher::{Dispatcher, Status};
use crate::result::Outcome;
use state::{Flight, Inner, Queued, State};

/// The Redis dispatcher of one pool.
pub(crate) struct RedisDispatcher {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl RedisDispatcher {
    /// Connects, registers this caller and starts its threads. Fails at
    /// once, with a message naming the (password-redacted) URL, when Redis
    /// cannot be reached: `build()` must not hang.
    pub(crate) fn connect(cfg: Remote) -> Result<RedisDispatcher, Error> {
        Self::start(cfg).map_err(|e| e.to_error(""))
    }

    fn start(cfg: Remote) -> Result<RedisDispatcher, BrokerError> {
        let keys = Keys::new(&cfg.broker.queue, &cfg.broker.build);
        let stop = Arc::new(AtomicBool::new(false));
        let url = cfg.broker.url.clone();
        let retry = cfg.broker.retry.clone();
        let new_conn = || Conn::new(&url, retry.clone(), stop.clone());
        let mut conn = new_conn()?;
        conn.connect_now()?;
        let name = member::register(&mut conn, &keys, Role::Caller, cfg.caller_ttl, None)?;
        let processes = member::node_processes(&mut conn, &keys).unwrap_or(0);
        // What the keeper compares the reaper's rounds with from its first.
        let regroups = member::regroups(&mut conn, &keys);
        let inner = Arc::new(Inner {
            keys,
            name,
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
            to_writer: Condvar::new(),
            to_reader: Condvar::new(),
            to_joiners: Condvar::new(),
            to_cancellers: Condvar::new(),
            to_keeper: Condvar::new(),
            submit_conn: Mutex::new(new_conn()?),
            out_of_reach: AtomicBool::new(false),
            control_conn: Mutex::new(new_conn()?),
            inline_conn: Mutex::new((new_conn()?, 0, None)),
            taking_back: std::sync::RwLock::new(()),
            stop: stop.clone(),
            processes: AtomicUsize::new(processes),
            cfg,
        });
        let reader_conn = new_conn()?;
        let spawn = |label: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("procpool-redis-{label}"))
                .spawn(f)
                .map_err(|e| BrokerError {
                    reason: crate::error::BrokerReason::Unreachable,
                    message: format!("could not start a thread: {e}"),
                })
        };
        let mut threads = Vec::new();
        let i = inner.clone();
        threads.push(spawn("writer", Box::new(move || writer::write_loop(i)))?);
        let i = inner.clone();
        threads.push(spawn(
            "reader",
            Box::new(move || reader::read_loop(i, reader_conn)),
        )?);
        let i = inner.clone();
        threads.push(spawn(
            "keeper",
            Box::new(move || keeper::keep_loop(i, conn, regroups)),
        )?);
        log::info!(
            target: "procpool",
            "caller {} on Redis queue {:?} (build {}), {processes} node processes up",
            inner.name, inner.cfg.broker.queue, inner.cfg.broker.build
        );
        Ok(RedisDispatcher {
            inner,
            threads: Mutex::new(threads),
        })
    }

    /// The processes of the nodes serving this queue and build (0: none).
    pub(crate) fn processes(&self) -> usize {
        self.inner.processes.load(Ordering::Relaxed)
    }

    /// Why `call` cannot be accepted now, if it cannot.
    fn refusal(&self, st: &State, call: &Call) -> Option<Error> {
        let task = call.name().to_string();
        if st.terminated {
            Some(Error::Terminated { task })
        } else if st.closed {
            Some(Error::PoolClosed { task })
        } else if call.args_len() > self.inner.cfg.max_frame {
            Some(Error::FrameTooLarge {
                task,
                len: call.args_len() as u64,
                max: self.inner.cfg.max_frame as u64,
            })
        } else {
            let known = st.broken.as_ref().or(st.no_node.as_ref());
            known.map(|e| state::for_task(e, &task))
        }
    }

    /// Stops the threads and unregisters (result stream, heartbeat and
    /// high-water mark deleted), leaving Redis as it was before this caller.
    fn shut_down(&self) {
        let inner = &self.inner;
        inner.stop.store(true, Ordering::SeqCst);
        // A thread that checks `stopping` under the lock before it waits
        // (the keeper) has either seen it or is waiting: the wake reaches it.
        drop(inner.lock());
        inner.wake_all();
        let res = inner.keys.results(&inner.name);
        let conn = Conn::new(
            &inner.cfg.broker.url,
            quick(&inner.cfg.broker.retry),
            Arc::new(AtomicBool::new(false)),
        );
        let mut conn = conn.ok();
        if let Some(c) = conn.as_mut() {
            // Wakes the reader out of its blocking read. The entry makes
            // the result stream if it had none (a `terminate` deleted it,
            // or it expired): with its time to live in the same
            // transaction, as registration makes it, so an unregister that
            // does not follow (this process killed meanwhile, Redis out of
            // reach) leaves nothing for good.
            let _ = c.run("wake the reader", |con| {
                redis::pipe()
                    .atomic()
                    .cmd("XADD")
                    .arg(&res)
                    .arg("*")
                    .arg("w")
                    .arg("1")
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&res)
                    .arg(member::millis(IDLE_EXPIRY))
                    .ignore()
                    .query::<()>(con)
            });
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        if let Some(c) = conn.as_mut() {
            let _ = c.run("unregister", |con| {
                let mut p = redis::pipe();
                p.cmd("HDEL")
                    .arg(inner.keys.members())
                    .arg(&inner.name)
                    .arg(format!("hw:{}", inner.name))
                    .ignore();
                p.cmd("DEL")
                    .arg(&res)
                    .arg(inner.keys.alive(&inner.name))
                    .ignore();
                p.query::<()>(con)
            });
        }
    }
}

impl Dispatcher for RedisDispatcher {
    fn submit(&self, job: crate::call::Job) {
        let (mut call, promise) = job.into_call();
        let mut st = self.inner.lock();
        if let Some(e) = self.refusal(&st, &call) {
            drop(st);
            promise.complete(Err(e));
            return;
        }
        // Redis carries the arguments as one value.
        call.join_tail();
        let seq = st.next_seq;
        st.next_seq += 1;
        // Always through the writer, never sent from this thread: a send
        // can take a whole retry budget when Redis is out of reach, and
        // `apply_async` returns at once. (`apply` has its own fast path.)
        st.queue.push_back(Queued { seq, call, promise });
        self.inner.wake(&st);
    }

    fn run_here(&self, mut call: Call) -> Result<Outcome, Call> {
        {
            let st = self.inner.lock();
            if let Some(e) = self.refusal(&st, &call) {
                return Ok(Err(e));
            }
        }
        call.join_tail();
        inline::apply(&self.inner, call)
    }

    fn cancel(&self, id: u64) -> CancelOutcome {
        cancel::cancel(&self.inner, id)
    }

    fn cancel_queued(&self) -> usize {
        cancel::cancel_queued(&self.inner)
    }

    fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.wake_all();
    }

    fn join(&self) {
        self.close();
        let mut st = self.inner.lock();
        while !st.drained() {
            st = self
                .inner
                .to_joiners
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Fails every unfinished call with `Terminated` at once, then removes
    /// this caller's unclaimed entries from the task stream and tells the
    /// nodes to stop its running ones. Returns once Redis has been told (or
    /// the retry budget ran out).
    fn terminate(&self) {
        let (queued, flight, handing) = {
            let mut st = self.inner.lock();
            if st.terminated {
                return;
            }
            st.terminated = true;
            st.closed = true;
            let q: Vec<Queued> = st.queue.drain(..).collect();
            let f: Vec<Flight> = st.take_all();
            // `join` on another thread waits until their promises are complete.
            let handing = self.inner.hand_over(&mut st);
            self.inner.wake_all();
            (q, f, handing)
        };
        for q in queued {
            let e = q.call.terminated();
            q.promise.complete(Err(e));
        }
        for f in flight {
            let task = f.task.to_string();
            f.promise.complete(Err(Error::Terminated { task }));
        }
        drop(handing);
        match cancel::remove_unclaimed(&self.inner, true) {
            Ok(removed) => log::debug!(
                target: "procpool",
                "terminate: {} queued calls removed from Redis",
                removed.len()
            ),
            Err(e) => log::warn!(target: "procpool", "terminate could not reach Redis: {e}"),
        }
    }

    fn processes(&self) -> Option<usize> {
        Some(self.processes().max(1))
    }

    fn status(&self) -> Status {
        let st = self.inner.lock();
        Status {
            queued: st.queue.len() + st.flight.len(),
            closed: st.closed,
            terminated: st.terminated,
        }
    }
}

impl Drop for RedisDispatcher {
    /// As a local pool: dropping closes and joins, then unregisters.
    fn drop(&mut self) {
        self.join();
        self.shut_down();
    }
}

//! A node: this program serving a queue's calls on a local pool of worker
//! processes ([`Node`], [`NodeBuilder`]).
//!
//! Threads, each with its own connection: the feeder ([`runner`]: claims
//! with [`claim`] and queues calls on the local pool), the deliverer
//! ([`deliver`]), the keeper ([`identity`]: heartbeat, reaper, a new name
//! after being declared dead) and the watcher ([`watch`]: stops of
//! cancelled calls and terminated callers).

mod builder;
mod claim;
mod deliver;
mod identity;
mod local;
mod on_signal;
mod orphans;
mod recent;
mod runner;
mod shared;
mod stopped;
mod watch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use super::conn::{quick, BrokerError, Conn};
use super::keys::{Keys, GROUP};
use super::member::{self, Role};
use crate::pool::config::NodeConfig;

use crate::pool::Pool;
pub use builder::NodeBuilder;
use claim::ReadSide;
pub(crate) use on_signal::serve as serve_stopping_on_signals;
pub(crate) use recent::keep_outcomes_for;
pub(crate) use shared::treat_calls_as_quick;
use shared::{Shared, State};

/// A node serving a queue: it claims calls from Redis, runs them on a local
/// pool of worker processes and reports their outcomes to their callers.
///
/// A node is this same program, so it knows the same tasks; it serves only
/// callers of the same build (same task names and signatures). Its local
/// pool is an ordinary one: a worker that dies fails its call with
/// `WorkerDied` (the node carries on), and `task_timeout`,
/// `max_tasks_per_child` and the initializer mean what they mean locally.
/// If the node dies or is cut off from Redis for longer than its heartbeat's
/// time to live (3 s), its callers get
/// [`Error::NodeLost`](crate::Error::NodeLost) for the calls it held; if it
/// comes back, it serves on under a new name and whatever it reports for
/// the old calls is ignored.
///
/// Dropping a `Node` does not stop it: like a detached thread, it serves
/// on in the background until the process ends (which its callers see as
/// the loss of a node). To leave gracefully, [`stop`](Node::stop) it, then
/// [`wait`](Node::wait).
///
/// A `Node` started in code does nothing on SIGTERM or SIGINT: the
/// program owns its signals (by default they end it, and its callers see
/// the loss of a node); to stop gracefully on them, as a node started with
/// `PROCPOOL_NODE` does, call `stop` from the program's own handling of
/// them (a flag set by a handler, say).
///
/// ```no_run
/// # fn main() -> Result<(), procpool::Error> {
/// procpool::init();
/// let node = procpool::Node::builder()
///     .redis("redis://127.0.0.1:6379/0")
///     .processes(2)
///     .start()?;
/// println!("serving as {}", node.name());
/// node.stop(); // finishes what it holds, then leaves
/// node.wait();
/// # Ok(()) }
/// ```
#[must_use = "a Node dropped at once serves on, detached, until the process ends, and can never be stopped or waited for; keep it (or use `NodeBuilder::serve`)"]
pub struct Node {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Makes a node's first connection. A Redis that does not answer yet (a
/// node started beside its broker, as containers and services often are;
/// Celery's workers wait too) is waited for within the connection's retry
/// budget, as every later operation is; a Redis that refuses the node (a
/// wrong password, an old Redis) fails it at once.
fn connect_when_up(conn: &mut Conn) -> Result<(), BrokerError> {
    match conn.connect_now() {
        Err(e) if e.reason == crate::error::BrokerReason::Unreachable => {
            log::warn!(target: "procpool", "{}; the node waits for it", e.message);
            conn.run("reach Redis", |con| redis::cmd("PING").query::<()>(con))?;
            conn.connect_now()
        }
        done => done,
    }
}

fn start(cfg: NodeConfig, pool: Pool) -> Result<Node, BrokerError> {
    let keys = Keys::new(&cfg.broker.queue, &cfg.broker.build);
    let stop = Arc::new(AtomicBool::new(false));
    let new_conn = || Conn::new(&cfg.broker.url, cfg.broker.retry.clone(), stop.clone());
    let mut conn = new_conn()?;
    connect_when_up(&mut conn)?;
    let name = member::register(
        &mut conn,
        &keys,
        Role::Node,
        cfg.broker.node_ttl,
        Some(cfg.processes),
    )?;
    let given_up = Arc::new(AtomicBool::new(false));
    let inline = Mutex::new(Shared::settle_conn(&cfg, &given_up)?);
    let read = Mutex::new(ReadSide {
        conn: new_conn()?,
        recover: false,
        recover_from: "0".to_string(),
        last_name: String::new(),
        callers: Default::default(),
    });
    // The local pool starts no queued call while this node cannot confirm
    // it is still a member: a node stopped or cut off past half its time
    // to live may have been declared lost, and its calls answered
    // `NodeLost` or queued again. Once it hears from Redis, either it was
    // alive (the calls start) or it takes a new name and cancels them.
    let last_beat = Arc::new(Mutex::new(Instant::now()));
    let ttl = cfg.broker.node_ttl;
    let beat = last_beat.clone();
    pool.set_start_gate(move || !identity::stale(&beat, ttl));
    let shared = Arc::new(Shared {
        last_beat,
        beat_lock: Mutex::new(()),
        settle_gate: RwLock::new(()),
        recent: Mutex::default(),
        read,
        inline,
        keys,
        exec: local::LocalExecutor::new(pool),
        identity: Mutex::new((name, 1)),
        state: Mutex::new(State {
            feeding: true,
            ..State::default()
        }),
        to_runners: Condvar::new(),
        to_deliverer: Condvar::new(),
        stop,
        given_up,
        stats: Default::default(),
        run_micros: std::sync::atomic::AtomicU64::new(u64::MAX),
        last_completion: Mutex::new(None),
        hold: AtomicBool::new(false),
        quick_tasks: Mutex::default(),
        cfg,
    });
    let threads = spawn_threads(&shared, conn)?;
    log::info!(
        target: "procpool",
        "node {} serves Redis queue {:?} (build {}) with {} processes",
        shared.identity().0, shared.cfg.broker.queue, shared.cfg.broker.build, shared.cfg.processes
    );
    Ok(Node { shared, threads })
}

fn spawn_threads(s: &Arc<Shared>, keeper: Conn) -> Result<Vec<JoinHandle<()>>, BrokerError> {
    let spawn = |label: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(label)
            .spawn(f)
            .map_err(|e| BrokerError {
                reason: crate::error::BrokerReason::Unreachable,
                message: format!("could not start a node thread: {e}"),
            })
    };
    // The watcher's starting point, before the feeder claims anything.
    let mut watch_conn = s.new_conn()?;
    let from = watch::newest_entry(s, &mut watch_conn)?;
    let mut threads = Vec::new();
    let s2 = s.clone();
    let feed = Box::new(move || runner::feed_loop(s2));
    threads.push(spawn("procpool-node-feed".into(), feed)?);
    let (s2, c) = (s.clone(), Shared::settle_conn(&s.cfg, &s.given_up)?);
    let deliverer = Box::new(move || deliver::deliver_loop(s2, c));
    threads.push(spawn("procpool-node-deliver".into(), deliverer)?);
    let s2 = s.clone();
    let watcher = Box::new(move || watch::watch_loop(s2, watch_conn, from));
    threads.push(spawn("procpool-node-watch".into(), watcher)?);
    let s2 = s.clone();
    let keep = Box::new(move || identity::keep_loop(s2, keeper));
    threads.push(spawn("procpool-node-keep".into(), keep)?);
    Ok(threads)
}

impl Node {
    /// A [`NodeBuilder`] with default settings.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// procpool::Node::builder().redis("redis://127.0.0.1:6379/0").serve()?;
    /// # Ok(()) }
    /// ```
    #[must_use = "a builder does nothing until `start` or `serve`"]
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// The node's name in the cluster (`n<id>.<tag>@<host>:<pid>`, `<tag>`
    /// random), as callers see it in
    /// [`Error::NodeLost`](crate::Error::NodeLost). A node declared lost
    /// that comes back takes a new one.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let node = procpool::Node::builder().redis("redis://127.0.0.1:6379/0").start()?;
    /// assert!(node.name().starts_with('n'));
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> String {
        self.shared.identity().0
    }

    /// Asks the node to stop: it claims nothing more, finishes and reports
    /// what it holds (a call its caller cancels meanwhile is still stopped,
    /// and an outcome is still reported across a Redis restart, within its
    /// retry budget of 15 s); [`wait`](Self::wait) for it. A node that
    /// cannot reach Redis for that long while stopping leaves what it
    /// still holds to the cluster (its callers see `NodeLost`, or the calls
    /// run again with `redeliver`), as if it had been killed.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let node = procpool::Node::builder().redis("redis://127.0.0.1:6379/0").start()?;
    /// node.stop();
    /// node.wait();
    /// # Ok(()) }
    /// ```
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.to_runners.notify_all();
        self.shared.to_deliverer.notify_all();
    }

    /// Waits until the node has stopped (see [`stop`](Self::stop)), then
    /// leaves the cluster and closes its local pool.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let node = procpool::Node::builder().redis("redis://127.0.0.1:6379/0").start()?;
    /// node.stop();
    /// node.wait();
    /// # Ok(()) }
    /// ```
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
        // A node that gave up on Redis while stopping (see
        // `identity::give_up_if_cut_off`) runs nothing more: its calls are
        // the cluster's to settle. It does not try Redis once more to
        // leave: silent for a retry budget, far past its time to live, it
        // is the reaper's already.
        if self.shared.lock().abandoned {
            self.shared.exec.pool.terminate();
        } else {
            leave(&self.shared);
            self.shared.exec.pool.close();
        }
        self.shared.exec.pool.join();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name()).finish()
    }
}

/// Unregisters a stopped node. Its consumer goes only if it holds nothing:
/// deleting a consumer drops its pending entries, which the reaper must
/// settle instead.
fn leave(s: &Shared) {
    let (name, _) = s.identity();
    let stop = Arc::new(AtomicBool::new(false));
    let Ok(mut conn) = Conn::new(&s.cfg.broker.url, quick(&s.cfg.broker.retry), stop) else {
        return;
    };
    let _ = conn.run("unregister", |con| {
        let pending: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(s.keys.tasks())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&name)
            .query(con)?;
        let mut p = redis::pipe();
        p.cmd("HDEL")
            .arg(s.keys.members())
            .arg(&name)
            .arg(format!("p:{name}"))
            .ignore();
        p.cmd("DEL").arg(s.keys.alive(&name)).ignore();
        if pending.is_empty() {
            p.cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(s.keys.tasks())
                .arg(GROUP)
                .arg(&name)
                .ignore();
        }
        p.query::<()>(con)
    });
}

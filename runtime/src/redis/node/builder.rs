//! Configuring and starting a node: [`NodeBuilder`].

use std::convert::Infallible;
use std::time::Duration;

use super::super::keys::{build_id, DEFAULT_QUEUE};
use super::{start, Node};
use crate::error::Error;
use crate::pool::config::{Broker, NodeConfig, Retry};
use crate::pool::PoolBuilder;

/// Quick calls claimed ahead per process, by default.
const PREFETCH_PER_PROCESS: usize = 16;

/// How long a node keeps retrying an unreachable Redis in one go before it
/// logs and starts over (a running node never gives up on its own; at its
/// start, how long it waits for Redis to answer).
const NODE_RETRY: Duration = Duration::from_secs(15);

/// Configures a [`Node`]; made by [`Node::builder`].
///
/// ```no_run
/// use procpool::{pool_task, Node, Pool};
///
/// #[pool_task]
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     if std::env::args().nth(1).as_deref() == Some("node") {
///         Node::builder()
///             .redis("redis://10.0.0.5:6379/0")
///             .queue("squares")
///             .processes(8)
///             .pool(Pool::builder().task_timeout(std::time::Duration::from_secs(60)))
///             .serve()?; // serves until the process ends
///     }
///     let pool = Pool::builder().redis("redis://10.0.0.5:6379/0").queue("squares").build()?;
///     println!("{}", apply_square(&pool, 4)?);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    url: Option<String>,
    queue: String,
    processes: Option<usize>,
    prefetch: Option<usize>,
    pool: PoolBuilder,
}

impl Default for NodeBuilder {
    fn default() -> Self {
        NodeBuilder {
            url: None,
            queue: DEFAULT_QUEUE.to_string(),
            processes: None,
            prefetch: None,
            pool: PoolBuilder::default(),
        }
    }
}

impl NodeBuilder {
    /// The Redis to serve (required): `redis://[user:password@]host:port/db`,
    /// or `rediss://` with feature `redis-tls`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// procpool::Node::builder().redis("redis://:secret@10.0.0.5:6379/0").serve()?;
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn redis(mut self, url: &str) -> Self {
        self.url = Some(url.to_string());
        self
    }

    /// The queue to serve (default `"procpool"`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// procpool::Node::builder().redis("redis://127.0.0.1:6379/0").queue("thumbnails").serve()?;
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn queue(mut self, name: &str) -> Self {
        self.queue = name.to_string();
        self
    }

    /// Worker processes of the local pool, and calls run at once (default:
    /// the available parallelism).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// procpool::Node::builder().redis("redis://127.0.0.1:6379/0").processes(8).serve()?;
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Calls claimed beyond `processes` while the node's calls are quick
    /// (under a millisecond on average), so the next calls are at hand and
    /// the local pool pipelines them to its workers (default: 16 per
    /// process). Slow calls are never
    /// prefetched: they wait in Redis, where any idle node can take them.
    /// Prefetched calls count as held by this node: if it is lost, they
    /// fail with `NodeLost` too (or run again elsewhere, with
    /// `redeliver`). They do not run here afterwards: a node that has not
    /// heard from Redis for half its time to live starts no queued call
    /// until it has, and when it learns it was declared lost it cancels
    /// them. (Calls already pipelined to a worker, at most about 2 ms of
    /// quick calls per worker, run on with it, as the call in front of them
    /// does.) 0 makes `NodeLost` exact, at some cost in throughput on tiny
    /// calls.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// // Long calls only: hold no more than one per process.
    /// procpool::Node::builder().redis("redis://127.0.0.1:6379/0").prefetch(0).serve()?;
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = Some(n);
        self
    }

    /// The settings of the local pool (`task_timeout`, `max_tasks_per_child`,
    /// `max_memory_per_child`, `initializer`, `max_frame_bytes`, ...).
    /// Its `processes` is replaced by the node's.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// use std::time::Duration;
    /// let local = procpool::Pool::builder()
    ///     .task_timeout(Duration::from_secs(600))
    ///     .max_tasks_per_child(1000);
    /// procpool::Node::builder().redis("redis://127.0.0.1:6379/0").pool(local).serve()?;
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn pool(mut self, builder: PoolBuilder) -> Self {
        self.pool = builder;
        self
    }

    /// Starts the local pool, registers with Redis and starts serving in
    /// background threads. A Redis that does not answer yet (started at
    /// the same time as the node, say) is waited for, up to 15 s (and the
    /// attempt under way then, up to 4 s more against a server that takes
    /// connections and never answers); then, or
    /// at once if Redis refuses the node (a wrong password, an old Redis),
    /// it fails with [`Error::Broker`]. Or with the local pool's error.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let node = procpool::Node::builder().redis("redis://127.0.0.1:6379/0").start()?;
    /// // ... this thread is free; the node serves in the background
    /// node.stop();
    /// node.wait();
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<Node, Error> {
        let Some(url) = self.url else {
            return Err(Error::Config {
                message: "a node needs redis(url)".into(),
            });
        };
        if self.pool.is_remote() {
            return Err(Error::Config {
                message: "a node's local pool cannot itself use redis()".into(),
            });
        }
        let processes = self
            .processes
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = self
            .pool
            .remote_checked(&self.queue)?
            .processes(processes)
            .build()?;
        let cfg = NodeConfig {
            broker: Broker {
                url,
                queue: self.queue,
                build: build_id(),
                retry: Retry::new(NODE_RETRY),
                node_ttl: crate::pool::NODE_TTL,
            },
            processes,
            prefetch: self.prefetch.unwrap_or(PREFETCH_PER_PROCESS * processes),
            batch: 256,
            max_frame: pool.max_frame(),
        };
        start(cfg, pool).map_err(|e| e.to_error(""))
    }

    /// [`start`](Self::start), then serves until the process ends. Returns
    /// only if the node could not start.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// procpool::Node::builder().redis("redis://127.0.0.1:6379/0").serve()?;
    /// # Ok(()) }
    /// ```
    pub fn serve(self) -> Result<Infallible, Error> {
        let node = self.start()?;
        for t in node.threads {
            let _ = t.join();
        }
        // The threads only end once the node is stopped, which nobody can
        // do without the handle: serve on, parked.
        loop {
            std::thread::park();
        }
    }
}

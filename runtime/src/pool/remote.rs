//! The builder's Redis settings: a pool whose calls go through Redis
//! Streams to nodes on other machines instead of to workers of its own.
//! Everything else about the pool is unchanged. The settings exist in every
//! build, so code that uses them always compiles; building such a pool
//! needs the `redis` feature, and says so without it.

use std::time::Duration;

use super::builder::PoolBuilder;
use super::Pool;
use crate::error::Error;

/// The queue a pool's calls go to unless `queue()` names another.
pub(crate) const DEFAULT_QUEUE: &str = "procpool";

/// How long a node may be silent (no heartbeat) before it counts as lost.
#[cfg(feature = "redis")]
pub(crate) const NODE_TTL: Duration = Duration::from_secs(3);
/// How long a caller may be silent before the cluster forgets it.
#[cfg(feature = "redis")]
pub(crate) const CALLER_TTL: Duration = Duration::from_secs(30);
/// The default `max_frame_bytes` of a pool built with `redis()` and of a
/// node's local pool: Redis holds each value whole in memory (and refuses
/// one over 512 MB), so calls stay below the local default of 4 GiB.
#[cfg(feature = "redis")]
pub(crate) const REMOTE_MAX_FRAME: usize = 256 << 20;
/// The largest value Redis takes (its `proto-max-bulk-len`, 512 MiB by
/// default): the highest `max_frame_bytes` a pool with `redis()`, or a
/// node, accepts.
#[cfg(feature = "redis")]
const REDIS_MAX_VALUE: usize = 512 << 20;

/// Refuses Redis settings the broker cannot carry: a queue name the keys
/// cannot hold, a frame limit over the largest value Redis takes (such a
/// call would reach Redis only to have its connection cut).
#[cfg(feature = "redis")]
fn check_remote(queue: &str, max_frame: usize) -> Result<(), Error> {
    crate::redis::check_queue(queue).map_err(|why| Error::Config {
        message: format!("queue(): {why}"),
    })?;
    if max_frame > REDIS_MAX_VALUE {
        return Err(Error::Config {
            message: format!(
                "max_frame_bytes({max_frame}) with redis(): Redis refuses a value over \
                 {REDIS_MAX_VALUE} bytes (512 MiB, its proto-max-bulk-len), so no call or \
                 result can be larger (the default is 256 MiB)"
            ),
        });
    }
    Ok(())
}
/// How long calls wait for a node of their build by default.
pub(crate) const NODE_WAIT: Duration = Duration::from_secs(60);
/// How long operations retry an unreachable Redis by default.
pub(crate) const RETRY_BUDGET: Duration = Duration::from_secs(15);

/// The Redis settings of a [`PoolBuilder`], as given.
#[derive(Debug, Clone)]
pub(crate) struct RemoteBuilder {
    url: String,
    queue: String,
    redeliver: u32,
    max_in_flight: usize,
    retry: Duration,
    node_wait: Duration,
}

impl PoolBuilder {
    /// `max_frame_bytes` set to [`REMOTE_MAX_FRAME`] unless the user set it.
    #[cfg(feature = "redis")]
    pub(crate) fn remote_max_frame(mut self) -> Self {
        self.max_frame.get_or_insert(REMOTE_MAX_FRAME);
        self
    }

    /// [`remote_max_frame`](Self::remote_max_frame), and the settings a
    /// node on `queue` needs checked before it starts anything.
    #[cfg(feature = "redis")]
    pub(crate) fn remote_checked(self, queue: &str) -> Result<Self, Error> {
        let builder = self.remote_max_frame();
        check_remote(queue, builder.max_frame.unwrap_or(REMOTE_MAX_FRAME))?;
        Ok(builder)
    }

    /// Whether `redis()` was called.
    #[cfg(feature = "redis")]
    pub(crate) fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    fn remote_mut(&mut self) -> &mut RemoteBuilder {
        self.remote.get_or_insert_with(|| RemoteBuilder {
            url: String::new(),
            queue: DEFAULT_QUEUE.to_string(),
            redeliver: 0,
            max_in_flight: 8192,
            retry: RETRY_BUDGET,
            node_wait: NODE_WAIT,
        })
    }

    /// Sends the pool's calls through the Redis at `url` (`redis://` or,
    /// with feature `redis-tls`, `rediss://`; a password or ACL user goes
    /// in the URL: `redis://user:secret@host:6379/0`) to the nodes serving
    /// its [`queue`](Self::queue), instead of to workers of its own. Call
    /// sites do not change: `apply_*`, `apply_async_*`, the map family,
    /// `apply_by_name`, `.await`, callbacks, `cancel`, `close`, `join` and
    /// `terminate` work as with local workers. [`build`](Self::build) fails
    /// with [`Error::Broker`] at once if Redis cannot be reached.
    ///
    /// Nodes are this same program started with `PROCPOOL_NODE=<url>` (see
    /// [`init`](crate::init)) or `procpool::Node`. A caller and a node
    /// meet only if they register the same tasks with the same signatures
    /// (a separate stream per build), so a node never runs a call of a
    /// task it does not have with that signature. (Builds that differ only
    /// inside a task's body or a `struct` behind an unchanged signature
    /// do meet: roll such a change out on a new [`queue`](Self::queue).) The settings of workers (`processes`, `max_tasks_per_child`,
    /// `max_memory_per_child`, `initializer`) belong to the nodes' local
    /// pools: `build` refuses them here with [`Error::Config`].
    ///
    /// ```no_run
    /// use procpool::{pool_task, Pool};
    ///
    /// #[pool_task]
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init(); // with PROCPOOL_NODE set, serves as a node here
    ///     let pool = Pool::builder()
    ///         .redis("redis://:secret@10.0.0.5:6379/0")
    ///         .queue("thumbnails")
    ///         .build()?;
    ///     assert_eq!(apply_square(&pool, 4)?, 16);
    ///     Ok(())
    /// }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn redis(mut self, url: &str) -> Self {
        self.remote_mut().url = url.to_string();
        self
    }

    /// The queue the calls go to (default `"procpool"`; any name but an
    /// empty one or one with a brace, which Redis keys use as their hash
    /// tag: [`build`](Self::build) refuses those); nodes serve the queue
    /// named by `PROCPOOL_QUEUE` (or `procpool::NodeBuilder::queue`).
    /// Like every Redis setting, it may come before or after
    /// [`redis`](Self::redis), but [`build`](Self::build) refuses it
    /// without `redis` ([`Error::Config`]).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .redis("redis://127.0.0.1:6379/0")
    ///     .queue("thumbnails")
    ///     .build()?;
    /// # drop(pool); Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn queue(mut self, name: &str) -> Self {
        self.remote_mut().queue = name.to_string();
        self
    }

    /// Runs a call again, up to `n` times, when the node that held it is
    /// lost (at-least-once, for idempotent tasks). The default, 0, runs a
    /// call at most once, as a local pool does: a lost node's call fails
    /// with [`Error::NodeLost`], and so does a call queued again that no
    /// node takes within [`node_wait`](Self::node_wait). Only a whole
    /// node's loss (death, or cut off from Redis) is redelivered: a task
    /// whose own worker process dies (it exits, or is killed by a signal,
    /// the OOM killer's included) fails with [`Error::WorkerDied`] and is
    /// not run again, where Celery's `task_reject_on_worker_lost` would
    /// queue it again. Only with [`redis`](Self::redis) ([`build`](Self::build) refuses it without).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .redis("redis://127.0.0.1:6379/0")
    ///     .redeliver(2)
    ///     .build()?;
    /// # drop(pool); Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn redeliver(mut self, n: u32) -> Self {
        self.remote_mut().redeliver = n;
        self
    }

    /// The most calls this pool keeps in Redis at once, queued or running
    /// (default 8192, at least 1); more wait in this process, as in a local
    /// pool's queue. Only with [`redis`](Self::redis) ([`build`](Self::build) refuses it without).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .redis("redis://127.0.0.1:6379/0")
    ///     .max_in_flight(1000)
    ///     .build()?;
    /// # drop(pool); Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.remote_mut().max_in_flight = n;
        self
    }

    /// How long an operation keeps retrying while Redis is unreachable
    /// before the calls concerned fail with [`Error::Broker`] (default 15 s;
    /// backing off from 20 ms to 500 ms between attempts; an attempt under
    /// way when the budget runs out is finished first, which a Redis that
    /// takes connections and never answers makes last a few seconds). Calls still
    /// waiting in this process for room (see
    /// [`max_in_flight`](Self::max_in_flight)) fail with the first batch
    /// that could not be sent, not one budget later each. Only with
    /// [`redis`](Self::redis).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .redis("redis://127.0.0.1:6379/0")
    ///     .broker_retry(std::time::Duration::from_secs(5))
    ///     .build()?;
    /// # drop(pool); Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn broker_retry(mut self, limit: Duration) -> Self {
        self.remote_mut().retry = limit;
        self
    }

    /// How long calls may wait in Redis while no node of this program's
    /// build serves the queue (default 60 s): then the calls no node has
    /// taken are removed from Redis and fail with [`Error::Broker`]
    /// ([`BrokerReason::NoNode`](crate::BrokerReason::NoNode)), whose
    /// message names the builds that do serve the queue, if any. From then
    /// until a node of this build is up, new calls fail so at once (an
    /// `imap` does not wait `node_wait` for each window of chunks). Only with
    /// [`redis`](Self::redis) ([`build`](Self::build) refuses it without).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .redis("redis://127.0.0.1:6379/0")
    ///     .node_wait(std::time::Duration::from_secs(600)) // nodes start slowly
    ///     .build()?;
    /// # drop(pool); Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn node_wait(mut self, limit: Duration) -> Self {
        self.remote_mut().node_wait = limit;
        self
    }

    /// `build` for a pool with `redis` set, in a build without the `redis`
    /// feature: a clear error instead of a missing method.
    #[cfg(not(feature = "redis"))]
    pub(super) fn build_remote(self) -> Result<Pool, Error> {
        Err(Error::Config {
            message: "a pool built with redis() needs procpool's `redis` feature: \
                      procpool = { version = \"0.1\", features = [\"redis\"] }"
                .into(),
        })
    }

    /// `build` for a pool with `redis` set: checks the settings, connects
    /// and registers.
    #[cfg(feature = "redis")]
    pub(super) fn build_remote(mut self) -> Result<Pool, Error> {
        use super::config::{Broker, Remote, Retry};
        use crate::redis::{build_id, RedisDispatcher};
        use std::sync::Arc;

        let remote = self.remote.take().expect("redis() was called");
        let local_only = self.local_only_settings();
        if !local_only.is_empty() {
            return Err(Error::Config {
                message: format!(
                    "{} configure worker processes, which a pool built with redis() does not \
                     have: give them to the nodes' local pool (procpool::Node)",
                    local_only.join(", ")
                ),
            });
        }
        let mut config = self.remote_max_frame().validate()?;
        if remote.url.is_empty() {
            return Err(Error::Config {
                message: "redis() needs a URL, e.g. redis://127.0.0.1:6379/0".into(),
            });
        }
        check_remote(&remote.queue, config.max_frame)?;
        if remote.max_in_flight == 0 {
            return Err(Error::Config {
                message: "max_in_flight must be at least 1".into(),
            });
        }
        config.processes = 1;
        let settings = Remote {
            broker: Broker {
                url: remote.url,
                queue: remote.queue,
                build: build_id(),
                retry: Retry::new(remote.retry),
                node_ttl: NODE_TTL,
            },
            redeliver: remote.redeliver,
            max_in_flight: remote.max_in_flight,
            batch: 256,
            max_frame: config.max_frame,
            node_wait: remote.node_wait,
            caller_ttl: CALLER_TTL,
        };
        config.remote = Some(settings.clone());
        let dispatcher = RedisDispatcher::connect(settings)?;
        Ok(Pool::from_dispatcher(
            Arc::new(dispatcher),
            Arc::new(config),
        ))
    }
}

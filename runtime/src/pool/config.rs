//! [`Config`]: a pool's settings once checked, the one place they live.
//! Every part of a pool reads them from here.

use std::time::Duration;

use super::initializer::Initializer;
use crate::link::Limits;

/// A pool's settings, checked by [`PoolBuilder::build`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Number of worker processes.
    pub(crate) processes: usize,
    pub(crate) max_frame: usize,
    /// The time limit of calls made through a handle that does not set its own.
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_tasks_per_child: Option<usize>,
    /// Resident bytes past which a worker is retired after its task.
    pub(crate) max_memory_per_child: Option<u64>,
    pub(crate) start_timeout: Duration,
    /// How long a frame may stop flowing before its worker is dropped.
    pub(crate) stall_timeout: Duration,
    pub(crate) initializer: Option<Initializer>,
    /// Where calls go instead of local workers (`PoolBuilder::redis`).
    #[cfg(feature = "redis")]
    pub(crate) remote: Option<Remote>,
}

/// How to reach one queue of one Redis (callers and nodes alike).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub(crate) struct Broker {
    /// `redis://` or `rediss://` URL, possibly with a password: never shown
    /// as is (see `redis::conn::redact`).
    pub(crate) url: String,
    pub(crate) queue: String,
    /// This program's build id (`redis::keys::build_id`).
    pub(crate) build: String,
    pub(crate) retry: Retry,
    /// A node's heartbeat time to live: a node silent for this long is lost.
    pub(crate) node_ttl: Duration,
}

/// How hard to try before giving up on Redis.
#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
pub(crate) struct Retry {
    /// Timeout of one TCP (+TLS, AUTH) connection attempt.
    pub(crate) connect_timeout: Duration,
    /// Read/write timeout of a command, on top of any BLOCK time.
    pub(crate) io_timeout: Duration,
    /// How long one operation may keep retrying before it fails.
    pub(crate) budget: Duration,
    /// The first and the longest pause between attempts (doubling).
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
}

#[cfg(feature = "redis")]
impl Retry {
    pub(crate) fn new(budget: Duration) -> Retry {
        Retry {
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            budget,
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
        }
    }
}

/// A caller's side of a distributed pool.
#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    pub(crate) broker: Broker,
    /// How many times a call held by a lost node runs again (0: at most once).
    pub(crate) redeliver: u32,
    /// Calls in Redis (queued or running) at once; more wait in this process.
    pub(crate) max_in_flight: usize,
    /// Calls per SUBMIT script.
    pub(crate) batch: usize,
    /// The largest call arguments it sends (the pool's `max_frame_bytes`).
    pub(crate) max_frame: usize,
    /// How long calls wait in Redis while no node of this build is up
    /// before they fail (`BrokerReason::NoNode`).
    pub(crate) node_wait: Duration,
    /// This caller's heartbeat time to live: silent for this long, it is
    /// forgotten by the cluster (its queued calls and results removed).
    pub(crate) caller_ttl: Duration,
}

/// A node: the queue it serves and how it claims calls. Its local pool has
/// a [`Config`] of its own.
#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
pub(crate) struct NodeConfig {
    pub(crate) broker: Broker,
    /// Worker processes of its local pool, and threads claiming calls.
    pub(crate) processes: usize,
    /// Calls claimed beyond `processes` (hides the claim's round trip).
    pub(crate) prefetch: usize,
    /// Outcomes per DELIVER script.
    pub(crate) batch: usize,
    /// The largest call arguments it accepts.
    pub(crate) max_frame: usize,
}

impl Config {
    /// What a worker is started with.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_frame: self.max_frame,
            start_timeout: self.start_timeout,
            stall_timeout: self.stall_timeout,
        }
    }
}

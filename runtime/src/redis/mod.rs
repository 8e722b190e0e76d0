//! The Redis Streams backend (feature `redis`): the same `#[pool_task]`
//! functions, called from any machine, run by nodes on other machines.
//!
//! A caller's pool hands its calls to [`RedisDispatcher`] (the
//! [`Dispatcher`](crate::pool::dispatcher::Dispatcher) seam), which queues
//! them in a Redis stream; a [`Node`] (this same program, started with
//! `PROCPOOL_NODE` or [`NodeBuilder::serve`]) claims them, runs them on its
//! local pool and writes each outcome to its caller's result stream. Every
//! state change of a call is one Lua script that checks who owns the call,
//! so a node declared lost can never settle one, and nothing is lost or run
//! twice across reconnections.
//!
//! | file | holds |
//! |---|---|
//! | `keys` | the key layout and the build id |
//! | `entry`, `failure` | calls and outcomes as stream entries; a node's errors, serializable |
//! | `scripts`, `lua/` | the Lua scripts, one per state change |
//! | `conn`, `reply` | connections with bounded retry; stream replies |
//! | `member` | registration, heartbeat, the reaper |
//! | `caller/` | the caller's dispatcher: writer, reader, keeper, `apply`'s fast path, cancel |
//! | `node/` | the node: claim, run, deliver, identity, control stream, local pool |
//! | `env` | `PROCPOOL_NODE=… procpool::init()`: a node from the environment |
//!
//! Layers: `pool`'s seam and config are below this module, and
//! `pool::builder` (the composition root) above its caller side; the node
//! uses `Pool` itself.

mod caller;
mod conn;
mod entry;
mod env;
mod failure;
#[cfg(test)]
mod fuzz;
mod keys;
mod member;
mod node;
mod reply;
mod scripts;

pub(crate) use caller::RedisDispatcher;
pub(crate) use env::serve_from_env;
pub(crate) use keys::{build_id, check_queue};
pub(crate) use node::{keep_outcomes_for, treat_calls_as_quick};
pub use node::{Node, NodeBuilder};

/// Shows a broker's settings without the URL's password.
impl std::fmt::Debug for crate::pool::config::Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &conn::redact(&self.url))
            .field("queue", &self.queue)
            .field("build", &self.build)
            .field("node_ttl", &self.node_ttl)
            .finish()
    }
}

//! Where a queue lives in Redis: the key layout and the build id.
//!
//! Every key of one queue and build shares the hash tag `{Q:B}` (queue name,
//! build id), so the keys one Lua script touches live in one slot, as Redis
//! Cluster needs.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `pp:{Q:B}:tasks` | stream, consumer group `nodes` | calls queued or running; an entry is deleted when settled |
//! | `pp:{Q:B}:res:<caller>` | stream | outcomes for one caller, trimmed as read, deleted when it leaves |
//! | `pp:{Q:B}:members` | hash | `<name>` → `node`/`caller` (registered, not declared dead); `p:<node>` → its processes; `hw:<caller>` → highest seq submitted |
//! | `pp:{Q:B}:alive:<name>` | string, `PX ttl` | heartbeat |
//! | `pp:{Q:B}:ids` | counter | `INCR` source of member ids, never reset, so names are never reused |
//! | `pp:{Q:B}:ctl` | stream, the last 10 minutes (`MINID ~`; a node that falls that far behind was declared dead long before) | broadcast `c <caller>`: stop this caller's calls; `x <caller> <seq>`: stop one call |
//! | `pp:{Q:B}:reaper` | hash, expires 10 minutes after the last touch | `last`: Redis's time (ms) of the last heartbeat or reaper round; `from`: when rounds may judge heartbeats again (a Redis that stood still let them all expire: see `clock.lua`) |

use crate::registry;

/// The queue a pool uses unless told otherwise (`PoolBuilder::queue`).
pub(crate) use crate::pool::DEFAULT_QUEUE;
/// The consumer group of the nodes on a task stream.
pub(crate) const GROUP: &str = "nodes";

/// The names of the keys of one queue and build.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(queue: &str, build: &str) -> Keys {
        Keys {
            prefix: format!("pp:{{{queue}:{build}}}:"),
        }
    }

    /// The prefix every key shares (scripts build member keys from it).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn tasks(&self) -> String {
        format!("{}tasks", self.prefix)
    }

    pub(crate) fn members(&self) -> String {
        format!("{}members", self.prefix)
    }

    pub(crate) fn ids(&self) -> String {
        format!("{}ids", self.prefix)
    }

    pub(crate) fn ctl(&self) -> String {
        format!("{}ctl", self.prefix)
    }

    pub(crate) fn reaper(&self) -> String {
        format!("{}reaper", self.prefix)
    }

    pub(crate) fn alive(&self, member: &str) -> String {
        format!("{}alive:{member}", self.prefix)
    }

    pub(crate) fn results(&self, caller: &str) -> String {
        format!("{}res:{caller}", self.prefix)
    }
}

/// This program's build id: FNV-1a 64 over the sorted `name \0 fingerprint`
/// lines of its task registry, as 16 hex digits.
///
/// A caller and a node meet on a stream only if they register the same
/// names with the same signature fingerprints, so a node never sees a call
/// from a program with other tasks. It is deliberately not a hash of the
/// executable: the same sources built on two machines must meet. (What the
/// fingerprint does not cover, a changed `struct` body behind an unchanged
/// signature, it does not cover here either.)
pub(crate) fn build_id() -> String {
    id_of(registry::identities())
}

fn id_of(tasks: impl IntoIterator<Item = (&'static str, u64)>) -> String {
    let mut lines: Vec<String> = tasks
        .into_iter()
        .map(|(name, fp)| format!("{name}\0{fp}\n"))
        .collect();
    lines.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in lines.iter().flat_map(|l| l.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_ignores_order_and_sees_fingerprints() {
        let a = id_of([("a", 1), ("b", 2)]);
        assert_eq!(a, id_of([("b", 2), ("a", 1)]));
        assert_ne!(a, id_of([("a", 1), ("b", 3)]));
        assert_ne!(a, id_of([("a", 1)]));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("q", "0123");
        assert_eq!(k.tasks(), "pp:{q:0123}:tasks");
        assert_eq!(k.results("c1@h:9"), "pp:{q:0123}:res:c1@h:9");
    }
}

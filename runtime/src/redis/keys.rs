//! Where a queue lives in Redis: the key layout and the build id.
//!
//! Every key of one queue and build shares the hash tag `{Q:B}` (queue name,
//! build id), so the keys one Lua script touches live in one slot, as Redis
//! Cluster needs.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `pp:{Q:B}:tasks` | stream, consumer group `nodes`; expires a week after the last member's round | calls queued or running; an entry is deleted when settled |
//! | `pp:{Q:B}:res:<caller>` | stream, made (empty) at registration; expires a week after the last round that found its caller alive | outcomes for one caller, trimmed as read, deleted when it leaves |
//! | `pp:{Q:B}:members` | hash; expires a week after the last member's round | `<name>` → `node`/`caller` (registered, not declared dead); `p:<node>` → its processes; `hw:<caller>` → highest seq submitted |
//! | `pp:{Q:B}:alive:<name>` | string, `PX ttl` | heartbeat |
//! | `pp:{Q:B}:ids` | counter; expires a week after the last member's round | `INCR` source of member ids, not reset while the queue is in use |
//! | `pp:{Q:B}:ctl` | stream, the last 10 minutes (`MINID ~`; a node that falls that far behind was declared dead long before), expires 10 minutes after the last stop | broadcast `c <caller>`: stop this caller's calls; `x <caller> <seq>`: stop one call |
//! | `pp:{Q:B}:reaper` | hash, expires 10 minutes after the last touch | `last`: Redis's time (ms) of the last heartbeat or reaper round; `from`: when rounds may judge heartbeats again (a Redis that stood still let them all expire: see `clock.lua`); `regroups`: a mark changed each time the task stream's consumer group is made (one more than before, or Redis's time in ms if larger: see `group.lua`) |
//!
//! Every member's reaper round (every half second by default: a caller's
//! at least that often, a node's every sixth of its time to live) renews
//! the expiry of the lasting keys, so they live as long as anyone uses the
//! queue: only a build that no caller or node has run for `IDLE_EXPIRY` is
//! removed, by Redis, whatever its members left (a member that died while
//! no other one was up leaves its registration, result stream and queued
//! calls).

use crate::registry;

/// The queue a pool uses unless told otherwise (`PoolBuilder::queue`).
pub(crate) use crate::pool::DEFAULT_QUEUE;
/// How long a queue's lasting keys (task stream, members, id counter, a
/// caller's result stream) outlive their last use: once no member of the
/// build has run a reaper round for a week, Redis removes them.
pub(crate) const IDLE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
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

/// Refuses a queue name the key layout cannot hold: an empty one, or one
/// with a brace (it would end the hash tag `{Q:B}` early, and Redis Cluster
/// would scatter the queue's keys over slots).
pub(crate) fn check_queue(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the queue name is empty".into());
    }
    if name.contains(['{', '}']) {
        return Err(format!(
            "the queue name {name:?} holds a brace, which Redis keys use as their hash tag"
        ));
    }
    Ok(())
}

/// A `SCAN MATCH` pattern for the member hashes of every build of `queue`
/// (the name's glob characters escaped: a queue `a*` matches no other).
pub(crate) fn members_of_every_build(queue: &str) -> String {
    let mut pattern = String::from("pp:{");
    for c in queue.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*}:members");
    pattern
}

/// The build whose member hash of `queue` `key` is; `None` for a key of
/// another queue (whose name begins with this one's and a colon) or any
/// other key.
pub(crate) fn build_of_members_key<'k>(queue: &str, key: &'k str) -> Option<&'k str> {
    let build = key
        .strip_prefix("pp:{")?
        .strip_prefix(queue)?
        .strip_prefix(':')?
        .strip_suffix("}:members")?;
    (!build.is_empty() && !build.contains([':', '{', '}'])).then_some(build)
}

/// This program's build id: FNV-1a 64 over the sorted `name \0 fingerprint`
/// lines of its task registry and a line of the wire version
/// ([`crate::wire::VERSION`]), as 16 hex digits.
///
/// A caller and a node meet on a stream only if they register the same
/// names with the same signature fingerprints, so a node never sees a call
/// from a program with other tasks. It is deliberately not a hash of the
/// executable: the same sources built on two machines must meet. (What the
/// fingerprint does not cover, a changed `struct` body behind an unchanged
/// signature, it does not cover here either.)
pub(crate) fn build_id() -> String {
    // (No task's name is empty: the version's line is apart from theirs.)
    id_of(
        registry::identities()
            .into_iter()
            .chain([("", crate::wire::VERSION)]),
    )
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

    #[test]
    fn a_queue_name_without_braces_is_accepted() {
        assert!(check_queue("thumbnails").is_ok());
        assert!(check_queue("images*:big?").is_ok());
        assert!(check_queue("").is_err());
        let err = check_queue("a}b").unwrap_err();
        assert!(err.contains("brace"), "{err}");
        assert!(check_queue("{a").is_err());
    }

    #[test]
    fn other_builds_are_found_on_this_queue_only() {
        assert_eq!(members_of_every_build("q"), "pp:{q:*}:members");
        assert_eq!(
            members_of_every_build(r"im[a]ge*?\"),
            r"pp:{im\[a\]ge\*\?\\:*}:members"
        );
        let key = Keys::new("q", "00ff").members();
        assert_eq!(build_of_members_key("q", &key), Some("00ff"));
        // A queue whose name begins with this one's and a colon is another.
        let longer = Keys::new("q:big", "00ff").members();
        assert_eq!(build_of_members_key("q", &longer), None);
        assert_eq!(build_of_members_key("q:big", &longer), Some("00ff"));
        assert_eq!(
            build_of_members_key("q", &Keys::new("q", "00ff").tasks()),
            None
        );
        assert_eq!(build_of_members_key("q", "pp:{q:}:members"), None);
    }
}

//! The Lua scripts (in `lua/`). Each is one atomic step of a call's state
//! machine, and every step that settles or moves a task entry checks, in
//! the same script, who owns it: a node declared dead can settle nothing.
//!
//! | script | run by | does |
//! |---|---|---|
//! | `submit.lua` | caller | adds a batch of calls, each at most once per (caller, seq) |
//! | `deliver.lua` | node | settles outcomes of entries this node still owns (fencing) |
//! | `heartbeat.lua` | caller, node | renews a heartbeat unless declared dead |
//! | `reap.lua` | every caller and node | settles a dead node's entries (NodeLost or again), forgets dead callers, renews the expiry of the queue's lasting keys, makes the task stream's group again if it is gone |
//! | `terminate.lua` | caller | deletes its unclaimed entries; for `terminate`, also unregisters and tells nodes to stop its calls |
//! | `cancel.lua` | caller | cancels one call: deletes its unclaimed entry, or tells its node to stop it |
//! | `release.lua` | node | gives back claimed calls it will not start soon, for any node to take |
//! | `verify.lua` | caller, after reconnecting or once the task stream was made again | which calls Redis lost |
//! | `group_made.lua` | caller, node, at registration | makes the task stream and its group if missing, and marks the making |
//!
//! A line defining `IDLE_MS` (`keys::IDLE_EXPIRY` in ms) is prepended to
//! `reap.lua`, which renews the expiry of the keys a queue keeps.
//! `tell.lua` (adding a stop to the control stream) is prepended to the
//! three scripts that stop calls; `clock.lua` (the reaper's clock, which
//! tells a Redis that stood still from dead members) to `heartbeat.lua`
//! and `reap.lua`; `group.lua` (making the task stream's group and marking
//! it, so that callers check which calls a lost stream took) to `reap.lua`
//! and `group_made.lua`. Scripts build member-derived key names (`res:<caller>`, `alive:<name>`)
//! from the shared prefix instead of receiving them all in KEYS. They all
//! carry the queue's hash tag, so they live in the script's slot.

use std::sync::OnceLock;

use redis::Script;

use super::keys::IDLE_EXPIRY;

pub(crate) struct Scripts {
    pub(crate) submit: Script,
    pub(crate) deliver: Script,
    pub(crate) heartbeat: Script,
    pub(crate) reap: Script,
    pub(crate) terminate: Script,
    pub(crate) cancel: Script,
    pub(crate) release: Script,
    pub(crate) verify: Script,
    pub(crate) group_made: Script,
}

/// The scripts, hashed once per process. `Script::invoke` sends EVALSHA and
/// loads the script on NOSCRIPT, which a restarted Redis answers (its
/// script cache is empty).
pub(crate) fn scripts() -> &'static Scripts {
    /// `source` after a line defining `IDLE_MS`, how long the lasting keys
    /// the script writes outlive it (`keys::IDLE_EXPIRY`, in ms).
    fn idle(source: &str) -> String {
        format!("local IDLE_MS = {}\n{source}", IDLE_EXPIRY.as_millis())
    }
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        submit: Script::new(include_str!("lua/submit.lua")),
        deliver: Script::new(include_str!("lua/deliver.lua")),
        heartbeat: Script::new(concat!(
            include_str!("lua/clock.lua"),
            include_str!("lua/heartbeat.lua")
        )),
        reap: Script::new(&idle(concat!(
            include_str!("lua/clock.lua"),
            include_str!("lua/tell.lua"),
            include_str!("lua/group.lua"),
            include_str!("lua/reap.lua")
        ))),
        terminate: Script::new(concat!(
            include_str!("lua/tell.lua"),
            include_str!("lua/terminate.lua")
        )),
        cancel: Script::new(concat!(
            include_str!("lua/tell.lua"),
            include_str!("lua/cancel.lua")
        )),
        release: Script::new(include_str!("lua/release.lua")),
        verify: Script::new(include_str!("lua/verify.lua")),
        group_made: Script::new(&idle(concat!(
            include_str!("lua/group.lua"),
            include_str!("lua/group_made.lua")
        ))),
    })
}

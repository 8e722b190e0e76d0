//! Membership: callers and nodes register under names never used before,
//! beat their heartbeat, and run the reaper that settles what the dead
//! left behind.

use std::time::Duration;

use redis::Connection;

use super::conn::{BrokerError, Conn};
use super::keys::{Keys, GROUP, IDLE_EXPIRY};
use super::scripts::scripts;

/// Whether a member is a caller or a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Caller,
    Node,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Node => "node",
        }
    }
}

/// This host's name, for member names (people read them in `NodeLost`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// 32 random bits: std's hasher keys come from the operating system's
/// random source.
fn random_tag() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

/// Whether Redis refused `e` for want of a right (its ACL, `NOPERM`) or
/// because the command is renamed or disabled (`rename-command`).
fn denied(e: &redis::RedisError) -> bool {
    e.code() == Some("NOPERM")
        || (e.code() == Some("ERR")
            && e.detail().is_some_and(|d| {
                d.starts_with("unknown command") || d.starts_with("unknown subcommand")
            }))
}

/// Checks, before a member registers, that Redis lets it run the commands
/// it needs later, the ones its Lua scripts run included (an ACL applies
/// to those too, and a renamed command is gone for them as well). Without
/// the check, a node whose claims (`XREADGROUP`) or acknowledgements were
/// refused registered all the same, so callers saw a node of their build
/// and waited for their calls for ever; a reaper whose `XINFO` was refused
/// never found a dead node. Each command is sent with an argument Redis
/// rejects after its access check (an ID that is not one, a count that is
/// not a number): any answer but `NOPERM` or "unknown command" means the
/// command is allowed, and nothing is read or written.
pub(crate) fn check_access(conn: &mut Conn, keys: &Keys, role: Role) -> Result<(), BrokerError> {
    let (tasks, ctl) = (keys.tasks(), keys.ctl());
    let bad = "procpool-access-check";
    let mut probes: Vec<(&str, redis::Cmd)> = Vec::new();
    let mut probe = |name: &'static str, args: &[&str]| {
        let mut words = name.split(' ');
        let mut c = redis::cmd(words.next().expect("a command"));
        for w in words.chain(args.iter().copied()) {
            c.arg(w);
        }
        probes.push((name, c));
    };
    if role == Role::Node {
        probe("XREADGROUP", &["GROUP", GROUP, bad, "STREAMS", &tasks, bad]);
    }
    probe("XREAD", &["COUNT", "1", "STREAMS", &ctl, bad]);
    probe("XRANGE", &[&tasks, bad, "+"]);
    probe("XREVRANGE", &[&ctl, "+", bad]);
    probe("XPENDING", &[&tasks, GROUP, bad, "+", "1"]);
    probe("XACK", &[&tasks, GROUP, bad]);
    probe("XDEL", &[&tasks, bad]);
    probe(
        "XADD",
        &[&tasks, "NOMKSTREAM", "MAXLEN", bad, "*", "f", "v"],
    );
    probe("XTRIM", &[&tasks, "MINID", bad]);
    // (Harmless reads: an XINFO given a bad argument may not check it.)
    probe("XINFO GROUPS", &[&tasks]);
    probe("XINFO CONSUMERS", &[&tasks, GROUP]);
    probe(
        "EVALSHA",
        &["0000000000000000000000000000000000000000", "0"],
    );
    probe("SCRIPT LOAD", &["("]);
    let answers = conn.run("check the commands procpool needs", |con| {
        let mut p = redis::pipe();
        p.ignore_errors();
        for (_, c) in &probes {
            p.add_command(c.clone());
        }
        p.query::<Vec<redis::RedisResult<redis::Value>>>(con)
    })?;
    let refused: Vec<String> = probes
        .iter()
        .zip(&answers)
        .filter_map(|((name, _), answer)| match answer {
            Err(e) if denied(e) => {
                // (Not the arguments Redis quotes after an unknown command.)
                let said = e.detail().unwrap_or("refused");
                let said = said.split(", with args").next().unwrap_or(said);
                Some(format!("{name} ({})", said.trim()))
            }
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(BrokerError {
        reason: crate::error::BrokerReason::Refused,
        message: format!(
            "Redis at {} refuses commands a {} needs: {}; allow them (an ACL user \
             with `~pp:* +@all` is enough) and do not rename or disable them",
            conn.shown(),
            role.word(),
            refused.join("; ")
        ),
    })
}

/// Creates the task stream and its consumer group if missing (callers and
/// nodes both may come first), and marks the making, in one script
/// (`group_made.lua`, which shares `group.lua` with the reaper's rounds).
/// The group starts at `0`, so calls queued before the first node came are
/// served.
fn ensure_group(con: &mut Connection, keys: &Keys) -> redis::RedisResult<()> {
    scripts()
        .group_made
        .key(keys.tasks())
        .key(keys.reaper())
        .arg(GROUP)
        .invoke::<i64>(con)
        .map(drop)
}

/// The highest member id this process has registered under.
static LAST_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Registers a member and returns its name, `c<id>.<tag>@<host>:<pid>` or
/// `n<id>.<tag>@<host>:<pid>`. The id comes from a counter that is never
/// reset while the queue is in use (the AOF keeps it), so no name is ever
/// used twice, not even by a restarted process that got the same pid.
/// Should Redis lose its data (no persistence, a `FLUSHALL`), or the queue
/// stay idle until its keys expire (`keys::IDLE_EXPIRY`), the counter
/// starts again: a process then skips past the ids it has used, so that
/// two of its own members (a forgotten pool and a new one) never share a
/// name and a result stream, and the random `<tag>` keeps apart processes
/// that have the same host name and pid (containers that share the host's
/// network, each its program as pid 1).
///
/// First checks that Redis lets the member run what it needs
/// ([`check_access`]): a member Redis would refuse later is never
/// registered.
pub(crate) fn register(
    conn: &mut Conn,
    keys: &Keys,
    role: Role,
    ttl: Duration,
    processes: Option<usize>,
) -> Result<String, BrokerError> {
    check_access(conn, keys, role)?;
    let letter = &role.word()[..1];
    let host = hostname();
    let pid = std::process::id();
    conn.run("register", |con| {
        ensure_group(con, keys)?;
        let mut id: u64 = redis::cmd("INCR").arg(keys.ids()).query(con)?;
        let used = LAST_ID.load(std::sync::atomic::Ordering::Relaxed);
        if id <= used {
            id = redis::cmd("INCRBY")
                .arg(keys.ids())
                .arg(used - id + 1)
                .query(con)?;
        }
        LAST_ID.fetch_max(id, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{letter}{id}.{:08x}@{host}:{pid}", random_tag());
        seed_clock(con, keys)?;
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SET")
            .arg(keys.alive(&name))
            .arg("1")
            .arg("PX")
            .arg(millis(ttl))
            .ignore();
        p.cmd("HSET")
            .arg(keys.members())
            .arg(&name)
            .arg(role.word())
            .ignore();
        if let Some(n) = processes {
            p.cmd("HSET")
                .arg(keys.members())
                .arg(format!("p:{name}"))
                .arg(n)
                .ignore();
        }
        let mut lasting = vec![keys.tasks(), keys.members(), keys.ids()];
        if role == Role::Caller {
            // The caller's result stream, made now (empty: its one entry
            // trimmed at once), so that it has its time to live before any
            // outcome: XADD keeps a key's, so the stream can never be left
            // without one, not even by a caller that dies with every other
            // member right after its first outcome, before a round.
            let res = keys.results(&name);
            p.cmd("XADD")
                .arg(&res)
                .arg("MAXLEN")
                .arg(0)
                .arg("*")
                .arg("w")
                .arg("0")
                .ignore();
            lasting.push(res);
        }
        // Lasting keys expire once the queue is idle (keys.rs); every
        // reaper round renews them, and so does this, in case the member
        // dies before its first round.
        for key in lasting {
            p.cmd("PEXPIRE").arg(key).arg(millis(IDLE_EXPIRY)).ignore();
        }
        p.query::<()>(con)?;
        Ok(name)
    })
}

/// Makes the reaper's clock (see `clock.lua`) if it is missing, so the keys
/// a queue holds do not change once members touch it: `last` now, `from`
/// long ago (no hold). A key of another type is left for the first touch
/// to replace.
fn seed_clock(con: &mut Connection, keys: &Keys) -> redis::RedisResult<()> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(con)?;
    let now = secs * 1000 + micros / 1000;
    let seeded: redis::RedisResult<()> = redis::pipe()
        .cmd("HSETNX")
        .arg(keys.reaper())
        .arg("last")
        .arg(now)
        .ignore()
        .cmd("HSETNX")
        .arg(keys.reaper())
        .arg("from")
        .arg(now - 600_000)
        .ignore()
        .cmd("PEXPIRE")
        .arg(keys.reaper())
        .arg(600_000)
        .ignore()
        .query(con);
    match seeded {
        Err(e) if e.code() == Some("WRONGTYPE") => Ok(()),
        other => other,
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The reaper's clock's limits (see `clock.lua`), in ms: `still`, the
/// longest gap between two touches that cannot have expired a node's
/// heartbeat (nodes beat every sixth of its time to live: two thirds of
/// it), and `grace`, how long rounds judge nobody after a longer gap (half
/// of it: several beats).
fn clock_limits(node_ttl: Duration) -> [u64; 2] {
    [millis(node_ttl * 2 / 3), millis(node_ttl / 2)]
}

/// Renews a heartbeat (time to live `ttl`) and touches the reaper's clock
/// (see [`reap`]). `Ok(false)`: this member was declared dead.
pub(crate) fn heartbeat(
    conn: &mut Conn,
    keys: &Keys,
    name: &str,
    ttl: Duration,
    node_ttl: Duration,
) -> Result<bool, BrokerError> {
    let script = &scripts().heartbeat;
    conn.run("heartbeat", |con| {
        let n: i64 = script
            .key(keys.members())
            .key(keys.alive(name))
            .key(keys.reaper())
            .arg(name)
            .arg(millis(ttl))
            .arg(&clock_limits(node_ttl))
            .invoke(con)?;
        Ok(n == 1)
    })
}

/// What one round of the reaper did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reaped {
    /// Calls answered `NodeLost`.
    pub(crate) lost: i64,
    /// Calls queued again (`redeliver`).
    pub(crate) requeued: i64,
    /// Callers forgotten.
    pub(crate) callers: usize,
    /// Their calls no node had claimed, deleted.
    pub(crate) removed: usize,
    /// The mark of the last making of the task stream's consumer group
    /// (see `group.lua`; 0: none is known): a change to another mark means
    /// that calls in the stream may have been lost. `None`: the round did
    /// not run.
    pub(crate) regroups: Option<i64>,
}

/// Runs one round of the reaper (`reap.lua`), then deletes the calls of
/// the callers it forgot that no node has claimed: nobody waits for them
/// (and a node started later, which never saw the order to stop them,
/// would run them). A failure is logged (at warn) as well as returned: the
/// reaper runs in the background, where nobody else would see it.
///
/// `node_ttl` is how long a node's heartbeat lives. Redis's time of the
/// last heartbeat or round, whoever sent it, is kept in Redis: a beat or
/// round that comes over two thirds of a `node_ttl` after it (Redis stood
/// still long enough for heartbeats to expire) makes the rounds of the
/// next half `node_ttl` judge nobody, while every member beats again (see
/// `clock.lua`). With `judge` false the round only keeps that clock (a
/// member connected a moment ago gives the others time to beat first, but
/// its rounds must not look like a Redis that stood still).
pub(crate) fn reap(
    conn: &mut Conn,
    keys: &Keys,
    node_ttl: Duration,
    judge: bool,
) -> Result<Reaped, BrokerError> {
    let r = reap_round(conn, keys, node_ttl, judge);
    if let Err(e) = &r {
        log::warn!(target: "procpool", "reaper: {e}");
    }
    r
}

fn reap_round(
    conn: &mut Conn,
    keys: &Keys,
    node_ttl: Duration,
    judge: bool,
) -> Result<Reaped, BrokerError> {
    let script = &scripts().reap;
    // One attempt, on the connection whose age the caller judged: retried
    // over a reconnection (Redis restarted meanwhile), it would judge
    // heartbeats that have had no time to come back, and declare every
    // member dead. The next round tries again.
    let judged = conn.generation;
    let got = conn
        .once(|con, generation| {
            if generation != judged {
                return Ok(None);
            }
            script
                .key(keys.tasks())
                .key(keys.members())
                .key(keys.ctl())
                .key(keys.reaper())
                .arg(GROUP)
                .arg(keys.prefix())
                .arg(1000)
                .arg(&clock_limits(node_ttl))
                .arg(u8::from(judge))
                .invoke::<(i64, i64, Vec<String>, i64)>(con)
                .map(Some)
        })
        .map_err(|e| BrokerError::of(&e, format!("reap: {e}")))?;
    let Some((lost, requeued, callers, regroups)) = got else {
        return Ok(Reaped::default());
    };
    let mut removed = 0;
    for caller in &callers {
        let mut cursor = "-".to_string();
        while !cursor.is_empty() {
            let mut out = conn
                .run("remove a forgotten caller's calls", |con| {
                    remove_unclaimed_step(con, keys, caller, false, &cursor)
                })?
                .into_iter();
            cursor = out.next().unwrap_or_default();
            removed += out.count();
        }
    }
    let r = Reaped {
        lost,
        requeued,
        callers: callers.len(),
        removed,
        regroups: Some(regroups),
    };
    if r.lost + r.requeued > 0 || r.callers > 0 {
        log::warn!(
            target: "procpool",
            "lost members reaped: {} calls answered NodeLost, {} queued again, {} callers \
             forgotten ({} of their queued calls removed)",
            r.lost, r.requeued, r.callers, r.removed
        );
    }
    Ok(r)
}

/// One step of deleting `caller`'s entries that no node has claimed
/// (`terminate.lua`), from `cursor` (`-` to begin): the next cursor (empty
/// when done), then the seqs of the entries deleted (`seq:node` for one
/// queued again after `node` died running it). With `unregister`, it
/// first unregisters the caller and tells the nodes to stop its calls.
pub(crate) fn remove_unclaimed_step(
    con: &mut Connection,
    keys: &Keys,
    caller: &str,
    unregister: bool,
    cursor: &str,
) -> redis::RedisResult<Vec<String>> {
    scripts()
        .terminate
        .key(keys.tasks())
        .key(keys.members())
        .key(keys.ctl())
        .key(keys.results(caller))
        .key(keys.alive(caller))
        .arg(GROUP)
        .arg(caller)
        .arg(if unregister { "1" } else { "0" })
        .arg(cursor)
        .arg(1000)
        .invoke(con)
}

/// The mark of the last making of the task stream's consumer group (see
/// [`Reaped::regroups`]) as of now; `None` if Redis cannot say.
pub(crate) fn regroups(conn: &mut Conn, keys: &Keys) -> Option<i64> {
    conn.run("read the reaper's clock", |con| {
        redis::cmd("HGET")
            .arg(keys.reaper())
            .arg("regroups")
            .query::<Option<String>>(con)
    })
    .ok()
    .map(|n| n.and_then(|n| n.parse().ok()).unwrap_or(0))
}

/// The processes of the registered nodes, summed (for map chunk sizes).
pub(crate) fn node_processes(conn: &mut Conn, keys: &Keys) -> Result<usize, BrokerError> {
    conn.run("count nodes", |con| {
        let all: Vec<(String, String)> = redis::cmd("HGETALL").arg(keys.members()).query(con)?;
        Ok(all
            .iter()
            .filter(|(k, _)| k.starts_with("p:"))
            .filter_map(|(_, v)| v.parse::<usize>().ok())
            .sum())
    })
}

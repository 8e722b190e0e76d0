//! Callers that no longer wait for their calls: a caller that terminated
//! or was forgotten is unregistered at once, but its queued entries are
//! deleted after (by `terminate`'s or the reaper's scan), and a node may
//! claim one in between. Before running what it claimed, the node looks
//! up (one `HMGET`) each caller it has not seen registered in the last
//! second, and answers the calls of those gone `Cancelled` (the
//! answer is dropped) instead of running them. (A caller whose heartbeat
//! expired is left to the reaper: a node cannot tell a caller that died
//! from a Redis that stood still for everyone, and only the reaper waits
//! for every member to beat again.)

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::super::conn::Conn;
use super::super::entry::Fields;
use super::super::keys::Keys;

/// Callers seen registered, and when.
#[derive(Default)]
pub(crate) struct Callers {
    seen: HashMap<String, Instant>,
}

impl Callers {
    /// How long a caller seen registered is not asked about again.
    const FRESH: Duration = Duration::from_secs(1);
    /// Beyond this many remembered callers, the stale ones are dropped.
    const KEEP: usize = 4096;

    /// The callers of `entries` no longer registered. If Redis cannot say,
    /// none: the calls run (their outcomes are dropped if the caller is
    /// gone).
    pub(super) fn orphans(
        &mut self,
        conn: &mut Conn,
        keys: &Keys,
        entries: &[(String, Option<Fields>)],
    ) -> HashSet<String> {
        let now = Instant::now();
        let mut ask: Vec<String> = Vec::new();
        for (_, fields) in entries {
            let Some(fields) = fields else { continue };
            let Some((_, c)) = fields.iter().find(|(k, _)| k.as_slice() == b"c") else {
                continue;
            };
            let Ok(c) = std::str::from_utf8(c) else {
                continue;
            };
            let fresh = self
                .seen
                .get(c)
                .is_some_and(|t| now.duration_since(*t) < Self::FRESH);
            if !fresh && !ask.iter().any(|a| a == c) {
                ask.push(c.to_string());
            }
        }
        if ask.is_empty() {
            return HashSet::new();
        }
        // Each caller's kind in the members hash: `caller` while registered.
        let answer = conn.run("look for orphaned calls", |con| {
            redis::cmd("HMGET")
                .arg(keys.members())
                .arg(&ask)
                .query::<Vec<Option<String>>>(con)
        });
        let orphans: HashSet<String> = match answer {
            Ok(kinds) => ask
                .iter()
                .zip(kinds)
                .filter(|(_, kind)| kind.as_deref() != Some("caller"))
                .map(|(c, _)| c.clone())
                .collect(),
            Err(e) => {
                // Taken as registered, and not asked again for a while
                // (no round trip more per claim while Redis cannot say).
                log::debug!(target: "procpool", "{e}");
                HashSet::new()
            }
        };
        if self.seen.len() > Self::KEEP {
            self.seen
                .retain(|_, t| now.duration_since(*t) < Self::FRESH);
        }
        for c in ask {
            if orphans.contains(&c) {
                log::debug!(target: "procpool", "calls of caller {c} not run: it is gone");
                self.seen.remove(&c);
            } else {
                self.seen.insert(c, now);
            }
        }
        orphans
    }
}

//! One Redis connection per thread, made again with bounded backoff.
//!
//! Every command this backend sends is safe to send again after a
//! connection loss whose reply was lost: the writes are idempotent scripts
//! (see [`super::scripts`]), result reads restart from the last id seen, and
//! a claim whose reply was lost is recovered from the node's own pending
//! list. So the rule is simple: on a transient error, drop the connection,
//! back off, reconnect and repeat, until the retry budget is spent; then the
//! calls concerned fail with [`Error::Broker`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError};

use crate::error::{BrokerReason, Error};
use crate::pool::config::Retry;

/// Redis could not be used.
#[derive(Clone, Debug)]
pub(crate) struct BrokerError {
    pub(crate) reason: BrokerReason,
    pub(crate) message: String,
}

impl BrokerError {
    /// `e`, said as `message`: `Unreachable` if trying again may help,
    /// else `Refused`.
    pub(crate) fn of(e: &RedisError, message: String) -> BrokerError {
        BrokerError {
            reason: if is_transient(e) {
                BrokerReason::Unreachable
            } else {
                BrokerReason::Refused
            },
            message,
        }
    }

    /// The error a call of `task` (or, with `""`, the pool) fails with.
    pub(crate) fn to_error(&self, task: &str) -> Error {
        Error::Broker {
            task: task.to_string(),
            reason: self.reason,
            message: self.message.clone(),
        }
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let shown = match creds.find(':') {
                Some(c) => format!("{}:***", &creds[..c]),
                None => "***".to_string(),
            };
            format!("{}{}{}", &url[..s + 3], shown, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// `e` as a user reads it: a read or write that timed out says so and for
/// how long, where the system's words are "Resource temporarily
/// unavailable (os error 11)" (a Redis stopped with SIGSTOP, hung, or
/// overloaded accepts connections but does not answer).
fn said(e: &RedisError, waited: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {waited:?} (stopped, hung or overloaded?)")
    } else {
        e.to_string()
    }
}

/// Whether an error may go away by reconnecting and trying again.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return true;
    }
    // LOADING: a restarted Redis replaying its AOF; the others are the
    // failover and cluster answers that mean "ask again shortly".
    matches!(
        e.code(),
        Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "BUSY" | "CLUSTERDOWN")
    )
}

/// A connection to Redis, made on first use and again after an error.
pub(crate) struct Conn {
    client: Client,
    shown: String,
    retry: Retry,
    con: Option<Connection>,
    /// Counts connections made; a change tells the owner that what was tied
    /// to the old one (a lost reply, the reaper's grace) must be redone.
    pub(crate) generation: u64,
    /// When the current connection was made.
    pub(crate) since: Instant,
    /// Counts the attempts of [`run`](Self::run) that failed transiently
    /// (a connection lost or refused): none yet, and the first connection
    /// is the first this one ever saw of Redis.
    pub(crate) errors: u64,
    /// Set when the owner is stopping: retries give up at once.
    stop: Arc<AtomicBool>,
}

impl Conn {
    pub(crate) fn new(url: &str, retry: Retry, stop: Arc<AtomicBool>) -> Result<Conn, BrokerError> {
        // The redis crate says only that "the feature is not enabled": name
        // procpool's, which is the one to turn on.
        if cfg!(not(feature = "redis-tls")) && url.starts_with("rediss://") {
            return Err(BrokerError {
                reason: BrokerReason::Refused,
                message: format!(
                    "{}: rediss:// (TLS) needs procpool's `redis-tls` feature: \
                     procpool = {{ version = \"0.1\", features = [\"redis-tls\"] }}",
                    redact(url)
                ),
            });
        }
        let client = Client::open(url).map_err(|e| BrokerError {
            reason: BrokerReason::Refused,
            message: format!("invalid Redis URL {}: {e}", redact(url)),
        })?;
        Ok(Conn {
            client,
            shown: redact(url),
            retry,
            con: None,
            generation: 0,
            since: Instant::now(),
            errors: 0,
            stop,
        })
    }

    /// Connects once, without retrying: `build()` must fail clearly and at
    /// once when Redis is not there, or is older than this backend needs
    /// (see [`too_old`]; a server that will not say its version, e.g. its
    /// ACL forbids `INFO`, is let through).
    pub(crate) fn connect_now(&mut self) -> Result<(), BrokerError> {
        let shown = self.shown.clone();
        let began = Instant::now();
        // A connection closed as it opened (a Redis restarting, or closing
        // clients: `CLIENT KILL`, a proxy's reset) is tried once more, at
        // once: Redis answered there. One refused, or that timed out, is
        // not: nothing is there, and `build()` says so at once.
        let first = self.ensure().err();
        let made = match first {
            Some(e) if e.is_connection_dropped() && !e.is_connection_refusal() => {
                log::debug!(
                    target: "procpool",
                    "Redis at {shown}: connection closed as it opened ({e}); trying once more"
                );
                self.ensure().map(|_| ())
            }
            Some(e) => Err(e),
            None => Ok(()),
        };
        made.map_err(|e| {
            // The time it took, not the connect timeout: a connection's
            // set-up may wait that long more than once (on a server that
            // takes connections and never answers, the redis crate's
            // handshake waited twice the timeout).
            let waited = Duration::from_millis(began.elapsed().as_millis() as u64 / 100 * 100);
            let why = if e.kind() == redis::ErrorKind::Parse {
                // The handshake's reply did not parse: something else
                // answers there (an HTTP server, say). The redis crate's
                // words ("Incompatible type - Parse error at 1", then a
                // line per unexpected byte) say neither that nor in one
                // line, which a node prints as its one line on stderr.
                "the answer is not Redis's protocol: is something other than Redis \
                 listening there?"
                    .to_string()
            } else {
                said(&e, waited)
            };
            BrokerError::of(&e, format!("cannot reach Redis at {shown}: {why}"))
        })?;
        let con = self.con.as_mut().expect("just connected");
        match redis::cmd("INFO").arg("server").query::<String>(con) {
            Ok(info) => match too_old(&info) {
                Some(why) => Err(BrokerError {
                    reason: BrokerReason::Refused,
                    message: format!("Redis at {}: {why}", self.shown),
                }),
                None => {
                    // Said, not refused: a Redis that evicts may never
                    // come near its limit.
                    if let Ok(memory) = redis::cmd("INFO").arg("memory").query::<String>(con) {
                        if let Some(why) = evicting(&memory) {
                            log::warn!(target: "procpool", "Redis at {shown}: {why}");
                        }
                    }
                    // (CONFIG is often refused, on managed Redis: then
                    // nothing is said.)
                    let limits = redis::cmd("CONFIG")
                        .arg("GET")
                        .arg("client-output-buffer-limit")
                        .query::<Vec<String>>(con);
                    if let Some(why) = limits.ok().and_then(|l| capped_replies(&l)) {
                        log::warn!(target: "procpool", "Redis at {shown}: {why}");
                    }
                    Ok(())
                }
            },
            Err(e) => {
                log::debug!(
                    target: "procpool",
                    "Redis at {} did not say its version ({e}); assuming 6.2 or later",
                    self.shown
                );
                Ok(())
            }
        }
    }

    fn ensure(&mut self) -> Result<&mut Connection, RedisError> {
        if self.con.is_none() {
            let con = self
                .client
                .get_connection_with_timeout(self.retry.connect_timeout)?;
            con.set_read_timeout(Some(self.retry.io_timeout))?;
            con.set_write_timeout(Some(self.retry.io_timeout))?;
            self.con = Some(con);
            self.generation += 1;
            self.since = Instant::now();
        }
        Ok(self.con.as_mut().expect("just connected"))
    }

    /// The URL, its password shown as `***`.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether a connection is open now (the next command makes none).
    pub(crate) fn is_connected(&self) -> bool {
        self.con.is_some()
    }

    /// Drops the connection (e.g. to abandon a blocked command).
    pub(crate) fn reset(&mut self) {
        self.con = None;
    }

    /// Runs `op` once, connecting first if needed (once). On error the
    /// connection is dropped. For exchanges that must not be repeated
    /// blindly (`apply`'s fast path, which falls back to the retrying path).
    pub(crate) fn once<T>(
        &mut self,
        op: impl FnOnce(&mut Connection, u64) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        self.ensure()?;
        let generation = self.generation;
        let r = op(self.con.as_mut().expect("connected"), generation);
        if r.is_err() {
            self.con = None;
        }
        r
    }

    /// Runs `op` until it succeeds, fails for good, or the retry budget (or
    /// the stop flag) ends the attempts.
    pub(crate) fn run<T>(
        &mut self,
        what: &str,
        op: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, BrokerError> {
        self.run_within(what, self.retry.budget, op)
    }

    /// [`run`](Self::run) with a retry budget of `budget` (zero: one
    /// attempt).
    pub(crate) fn run_within<T>(
        &mut self,
        what: &str,
        budget: Duration,
        mut op: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, BrokerError> {
        let start = Instant::now();
        let mut pause = self.retry.backoff_min;
        loop {
            let (err, waited) = match self.ensure() {
                Ok(con) => match op(con) {
                    Ok(v) => return Ok(v),
                    Err(e) => (e, self.retry.io_timeout),
                },
                Err(e) => (e, self.retry.connect_timeout),
            };
            let why = said(&err, waited);
            if !is_transient(&err) {
                return Err(BrokerError {
                    reason: BrokerReason::Refused,
                    message: format!("{what}: Redis at {} answered: {why}", self.shown),
                });
            }
            self.con = None;
            self.errors += 1;
            if start.elapsed() + pause > budget || self.stop.load(Ordering::SeqCst) {
                return Err(BrokerError {
                    reason: BrokerReason::Unreachable,
                    message: format!(
                        "{what}: Redis at {} unreachable for {:.1?}: {why}",
                        self.shown,
                        start.elapsed()
                    ),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(self.retry.backoff_max);
        }
    }
}

/// The oldest Redis this backend works with: `XTRIM MINID`, which trims
/// what callers have read, came in 6.2.
const OLDEST: (u32, u32) = (6, 2);

/// Why the server whose `INFO server` answer is `info` cannot serve this
/// backend (its `redis_version` is older than [`OLDEST`]); `None` if it
/// can, or does not say.
fn too_old(info: &str) -> Option<String> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = version.split('.').map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return None;
    };
    ((major, minor) < OLDEST).then(|| {
        format!(
            "version {version} is too old: procpool needs Redis {}.{} or later",
            OLDEST.0, OLDEST.1
        )
    })
}

/// Why the server whose `INFO memory` answer is `info` may lose procpool's
/// keys: it has a memory limit (`maxmemory`) and a policy other than
/// `noeviction`, so under memory pressure it evicts keys, and procpool's
/// all have a time to live (`volatile-*` policies take them too). `None`
/// with no limit, with `noeviction`, or if it does not say.
fn evicting(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let limit: u64 = field("maxmemory")?.parse().ok()?;
    let policy = field("maxmemory_policy")?;
    (limit > 0 && policy != "noeviction").then(|| {
        format!(
            "maxmemory-policy {policy} with maxmemory {limit} evicts keys under memory \
             pressure: an evicted heartbeat reads as a lost node, an evicted entry as a \
             lost call; set maxmemory-policy noeviction"
        )
    })
}

/// Why a server whose `CONFIG GET client-output-buffer-limit` answer is
/// `answer` may never send a member some of its replies: a limit on the
/// output of normal clients (Redis's default has none) makes Redis close
/// a connection whose reply passes it, and the reply that did is asked
/// for again after the reconnection, and again: a node claiming a call
/// with larger arguments (or a caller reading a larger result, or a batch
/// of results read at once) never gets past it, and the calls behind it
/// wait. `None` with no such limit, or if it does not say.
fn capped_replies(answer: &[String]) -> Option<String> {
    let value = answer.get(1)?;
    let mut words = value.split_whitespace();
    words.find(|w| *w == "normal")?;
    let hard: u64 = words.next()?.parse().ok()?;
    let soft: u64 = words.next()?.parse().ok()?;
    let secs = words.next()?;
    (hard > 0 || soft > 0).then(|| {
        format!(
            "client-output-buffer-limit normal {hard} {soft} {secs} closes a connection \
             whose replies pass it: a node can never read a call whose arguments are \
             larger, nor a caller a larger result (or batch of results), and the calls \
             behind it wait; set it to `normal 0 0 0` (Redis's default)"
        )
    })
}

/// A short retry budget, for leaving (unregistering) on the way out.
pub(crate) fn quick(retry: &Retry) -> Retry {
    Retry {
        budget: Duration::from_secs(2).min(retry.budget),
        ..retry.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::{capped_replies, evicting, redact, too_old};

    #[test]
    fn a_redis_that_may_evict_keys_is_told_from_one_that_cannot() {
        let info = |limit: &str, policy: &str| {
            format!(
                "# Memory\r\nused_memory:1000\r\nmaxmemory:{limit}\r\n\
                 maxmemory_human:1G\r\nmaxmemory_policy:{policy}\r\n"
            )
        };
        for policy in [
            "allkeys-lru",
            "volatile-lru",
            "volatile-ttl",
            "allkeys-random",
        ] {
            let why = evicting(&info("1073741824", policy)).expect(policy);
            assert!(why.contains(policy) && why.contains("noeviction"), "{why}");
        }
        // No limit (evicts nothing), noeviction, or nothing said.
        assert_eq!(evicting(&info("0", "allkeys-lru")), None);
        assert_eq!(evicting(&info("1073741824", "noeviction")), None);
        assert_eq!(evicting("# Memory\r\nused_memory:1000\r\n"), None);
    }

    #[test]
    fn a_limit_on_normal_clients_output_is_told_from_none() {
        let answer = |v: &str| vec!["client-output-buffer-limit".to_string(), v.to_string()];
        let why = capped_replies(&answer(
            "normal 1048576 1048576 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        ))
        .expect("a limit");
        assert!(why.contains("normal 1048576 1048576 0"), "{why}");
        assert!(capped_replies(&answer("normal 0 4096 10 replica 0 0 0")).is_some());
        let none = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60";
        assert_eq!(capped_replies(&answer(none)), None);
        assert_eq!(capped_replies(&[]), None);
        assert_eq!(capped_replies(&answer("garbage")), None);
    }

    #[test]
    fn redis_older_than_6_2_is_refused_by_its_info() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        let old = too_old(&info("6.0.16")).expect("6.0 is too old");
        assert!(
            old.contains("6.0.16") && old.contains("6.2 or later"),
            "{old}"
        );
        assert!(too_old(&info("5.0.7")).is_some());
        for fine in ["6.2.0", "7.0.15", "7.2.4", "10.0.1"] {
            assert_eq!(too_old(&info(fine)), None, "{fine}");
        }
        // A server that does not say, or says something else: let through.
        assert_eq!(too_old("# Server\r\nredis_mode:standalone\r\n"), None);
        assert_eq!(too_old(&info("unstable")), None);
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(redact("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("rediss://bob:pw@h/0"), "rediss://bob:***@h/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}

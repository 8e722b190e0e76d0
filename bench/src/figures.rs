//! The figures one system produces in a run: numbers by key, and the rows
//! that could not be measured, by key, with why (shown in the row as
//! "fails: FrameTooLarge", so it lights up once the code can do it).

use std::collections::{BTreeMap, BTreeSet};

use crate::measure;

#[derive(Debug, Clone, Default)]
pub struct Figures {
    values: BTreeMap<String, f64>,
    failures: BTreeMap<String, String>,
}

impl Figures {
    pub fn new() -> Figures {
        Figures::default()
    }

    pub fn insert(&mut self, key: impl Into<String>, value: f64) {
        self.values.insert(key.into(), value);
    }

    /// Records that the row `key` failed, and why.
    pub fn fail(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.failures.insert(key.into(), why.into());
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }

    /// Why the row `key` failed, if it did and has no figure.
    pub fn failure(&self, key: &str) -> Option<&str> {
        if self.values.contains_key(key) {
            return None;
        }
        self.failures.get(key).map(String::as_str)
    }

    /// Adds every figure and failure of `other` (its own win on a clash).
    pub fn extend(&mut self, other: Figures) {
        self.values.extend(other.values);
        self.failures.extend(other.failures);
    }

    /// Removes the figures and failures whose key starts with `prefix` and
    /// returns them with the prefix stripped (a probe's figures of another
    /// system).
    pub fn split_prefixed(&mut self, prefix: &str) -> Figures {
        let mut out = Figures::new();
        let values = std::mem::take(&mut self.values);
        for (k, v) in values {
            match k.strip_prefix(prefix) {
                Some(rest) => out.insert(rest, v),
                None => self.insert(k, v),
            }
        }
        let failures = std::mem::take(&mut self.failures);
        for (k, why) in failures {
            match k.strip_prefix(prefix) {
                Some(rest) => out.fail(rest, why),
                None => self.fail(k, why),
            }
        }
        out
    }

    /// Parses lines of `key value` (a number, or why the row failed).
    pub fn parse_lines(text: &str) -> Figures {
        let mut f = Figures::new();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once(' ') else {
                continue;
            };
            match value.trim().parse::<f64>() {
                Ok(v) => f.insert(key, v),
                Err(_) => f.fail(key, value.trim()),
            }
        }
        f
    }

    /// The figures as lines of `key value` ([`Figures::parse_lines`] reads them).
    pub fn to_lines(&self) -> String {
        let values = self.values.iter().map(|(k, v)| format!("{k} {v}\n"));
        let failures = self.failures.iter().map(|(k, why)| format!("{k} {why}\n"));
        values.chain(failures).collect()
    }
}

/// Per key, the median over the rounds that measured it; a key no round
/// measured keeps the first round's failure.
pub fn median_over_rounds(rounds: &[&Figures]) -> Figures {
    let mut out = Figures::new();
    let keys: BTreeSet<&String> = rounds.iter().flat_map(|f| f.values.keys()).collect();
    for k in keys {
        let values: Vec<f64> = rounds.iter().filter_map(|f| f.get(k)).collect();
        out.insert(k.clone(), measure::median(&values));
    }
    for f in rounds {
        for (k, why) in &f.failures {
            if out.get(k).is_none() && !out.failures.contains_key(k) {
                out.fail(k.clone(), why.clone());
            }
        }
    }
    out
}

/// The short name of an error for a row that failed: its variant's name
/// (`FrameTooLarge`), from its `Debug` form.
pub fn failure_name(error: &impl std::fmt::Debug) -> String {
    let debug = format!("{error:?}");
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    format!("fails: {}", &debug[..end])
}

/// Figure keys, shared with python_pool.py.
pub mod key {
    /// Start-up of `workers` until each has run one task (ms).
    pub fn startup(workers: usize) -> String {
        format!("startup_{workers}w_ms")
    }
    /// procpool: start-up until the pool's build returned (ms).
    pub fn startup_build(workers: usize) -> String {
        format!("startup_build_{workers}w_ms")
    }
    /// Python: start-up with the 'fork' start method (ms).
    pub fn startup_fork(workers: usize) -> String {
        format!("startup_fork_{workers}w_ms")
    }
    pub const ASYNC_TPS: &str = "apply_async_tps";
    pub const MAP_IPS: &str = "map_ips";
    pub const MAP_C1_IPS: &str = "map_c1_ips";
    pub const CPU_SERIAL_MS: &str = "cpu_serial_ms";
    pub const CPU_APPLY_MS: &str = "cpu_apply_ms";
    pub const CPU_ASYNC_MS: &str = "cpu_async_ms";
    pub const CPU_SPEEDUP: &str = "cpu_speedup";
    pub const RSS_MIB: &str = "idle_worker_rss_mib";

    /// Parent memory per pending `apply_async` task, bytes (handle included).
    pub const PENDING_BYTES: &str = "pending_bytes_per_task";
    /// The part of it that is the caller's `AsyncResult` handle itself.
    pub const PENDING_HANDLE_BYTES: &str = "pending_handle_bytes";

    /// A large `Vec<u8>` round trip on `mib` MiB, measured in a fresh
    /// process: `what` is `mbs`, `parent_peak_mib` (over the baseline),
    /// `worker_hwm_mib` or `worker_rss_1s_mib` (1 s after the call).
    pub fn bulk(mib: usize, what: &str) -> String {
        format!("bulk_{mib}mib_{what}")
    }
    pub const BULK_FIGURES: [&str; 4] = [
        "mbs",
        "parent_peak_mib",
        "worker_hwm_mib",
        "worker_rss_1s_mib",
    ];

    /// The big map (10⁷ u64 items): items/s, and the parent's peak over its
    /// baseline against the output's size (MiB).
    pub const MAP_BIG_IPS: &str = "map_big_ips";
    pub const MAP_BIG_PEAK_MIB: &str = "map_big_parent_peak_mib";
    pub const MAP_BIG_OUTPUT_MIB: &str = "map_big_output_mib";
    /// procpool's items/s ÷ the socket floor's, median over the repetitions
    /// (in procpool's figures: issue 11's goal); in a floor's figures,
    /// procpool's ÷ that floor's.
    pub const MAP_BIG_VS_FLOOR: &str = "map_big_vs_floor";

    /// CPU an idle pool uses, % of one CPU (parent and workers).
    pub const IDLE_POOL_CPU_PCT: &str = "idle_pool_cpu_pct";

    /// MB/s of an identity round trip on `mib` MiB; `buf`: as one byte string.
    pub fn payload(mib: usize, buf: bool) -> String {
        format!("payload_{}_{mib}mib_mbs", if buf { "buf" } else { "vec" })
    }
}

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

    /// MB/s of an identity round trip on `mib` MiB; `buf`: as one byte string.
    pub fn payload(mib: usize, buf: bool) -> String {
        format!("payload_{}_{mib}mib_mbs", if buf { "buf" } else { "vec" })
    }
}

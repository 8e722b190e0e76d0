//! The distributed workloads on a pool built with `PoolBuilder::redis`:
//! `apply` latency, `apply_async` throughput, CPU-bound calls, and Redis's
//! memory before and after many calls.

use std::time::{Duration, Instant};

use procpool::Pool;

use super::server::Server;
use crate::tasks::{apply_async_inc, apply_async_spin, apply_inc};

pub fn pool(server: &Server, queue: &str) -> Result<Pool, String> {
    Pool::builder()
        .redis(&server.url)
        .queue(queue)
        .build()
        .map_err(|e| e.to_string())
}

/// `calls` timed `apply` round trips after `warmup`.
pub fn apply_latency(pool: &Pool, warmup: usize, calls: usize) -> Result<Vec<Duration>, String> {
    let mut times = Vec::with_capacity(calls);
    for i in 0..warmup + calls {
        let started = Instant::now();
        let y = apply_inc(pool, i as u64).map_err(|e| e.to_string())?;
        if i >= warmup {
            times.push(started.elapsed());
        }
        assert_eq!(y, i as u64 + 1);
    }
    Ok(times)
}

/// Tasks per second: `n` `apply_async` calls submitted at once, then collected.
pub fn async_rate(pool: &Pool, n: usize) -> Result<f64, String> {
    let started = Instant::now();
    let calls: Vec<_> = (0..n as u64).map(|i| apply_async_inc(pool, i)).collect();
    for (i, c) in calls.into_iter().enumerate() {
        let y = c.get().map_err(|e| e.to_string())?;
        assert_eq!(y, i as u64 + 1);
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Wall time of `tasks` CPU-bound calls of `iters` each, submitted at once.
pub fn cpu(pool: &Pool, tasks: usize, iters: u64) -> Result<Duration, String> {
    let started = Instant::now();
    let calls: Vec<_> = (0..tasks).map(|_| apply_async_spin(pool, iters)).collect();
    for c in calls {
        c.get().map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

/// What Redis holds: its keys and their exact sizes, and used_memory.
pub struct Snapshot {
    pub keys: Vec<(String, u64)>,
    pub used: u64,
}

impl Snapshot {
    /// The keys of `queue` and the whole server's used_memory.
    pub fn take(server: &Server, queue: &str) -> Result<Snapshot, String> {
        Ok(Snapshot {
            keys: server.keys(&format!("pp:{{{queue}:*"))?,
            used: server.used_memory()?,
        })
    }

    pub fn key_bytes(&self) -> u64 {
        self.keys.iter().map(|(_, b)| b).sum()
    }

    /// Whether the same keys hold the same bytes.
    pub fn same_data(&self, other: &Snapshot) -> bool {
        self.keys == other.keys
    }
}

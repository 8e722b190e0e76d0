//! Probe `idle WORKERS SECS`: the CPU an idle pool uses. A pool of WORKERS
//! runs a burst of calls (so any adaptive spinning is primed), then sits
//! idle for SECS seconds; the CPU time its parent process (every thread:
//! the probe's own main thread only sleeps) and its workers used meanwhile,
//! from /proc/PID/task/*/schedstat, as a % of one CPU.

use std::time::{Duration, Instant};

use procpool::Pool;

use crate::figures::{failure_name, key, Figures};
use crate::procfs;
use crate::run_procpool::worker_pids;
use crate::tasks::{apply_async_inc, apply_inc};

pub fn measure(workers: usize, secs: usize) -> Figures {
    let mut f = Figures::new();
    match idle_cpu_pct(workers, secs) {
        Ok(pct) => f.insert(key::IDLE_POOL_CPU_PCT, pct),
        Err(why) => f.fail(key::IDLE_POOL_CPU_PCT, why),
    }
    f
}

fn idle_cpu_pct(workers: usize, secs: usize) -> Result<f64, String> {
    let pool = Pool::new(workers).map_err(|e| failure_name(&e))?;
    for i in 0..2_000u64 {
        apply_inc(&pool, i).map_err(|e| failure_name(&e))?;
    }
    let burst: Vec<_> = (0..2_000u64).map(|i| apply_async_inc(&pool, i)).collect();
    for r in burst {
        r.get().map_err(|e| failure_name(&e))?;
    }
    let pids: Vec<String> = worker_pids(&pool)
        .map_err(|e| failure_name(&e))?
        .iter()
        .map(u32::to_string)
        .collect();
    let cpu =
        || procfs::cpu_seconds("self") + pids.iter().map(|p| procfs::cpu_seconds(p)).sum::<f64>();
    let (before, start) = (cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(secs as u64));
    let (used, wall) = (cpu() - before, start.elapsed().as_secs_f64());
    Ok(100.0 * used / wall)
}

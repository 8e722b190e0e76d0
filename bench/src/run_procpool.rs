//! The workloads on procpool.

use std::collections::HashSet;
use std::time::Duration;

use procpool::{Error, MapOptions, Pool};

use crate::figures::{key, Figures};
use crate::measure::{self, median_of, timed};
use crate::plan::Plan;
use crate::tasks::*;

/// Runs every workload.
pub fn run(plan: &Plan) -> Result<Figures, Error> {
    let mut f = Figures::new();
    let n = plan.processes;

    for &workers in &plan.startup_workers {
        let (mut build, mut ready) = (Vec::new(), Vec::new());
        for _ in 0..plan.startup_reps {
            let (b, r) = startup_ms(workers)?;
            build.push(b);
            ready.push(r);
        }
        f.insert(key::startup_build(workers), measure::median(&build));
        f.insert(key::startup(workers), measure::median(&ready));
    }

    // Its apply latency is measured beside the floors' (crate::paired).
    let pool = Pool::new(n)?;

    let tps = median_of(plan.async_reps, || {
        let (took, ()) = timed(|| async_batch(&pool, plan.async_tasks));
        plan.async_tasks as f64 / took.as_secs_f64()
    });
    f.insert(key::ASYNC_TPS, tps);

    let ips = median_of(plan.map_reps, || {
        let (took, ()) = timed(|| map_items(&pool, plan.map_items));
        plan.map_items as f64 / took.as_secs_f64()
    });
    f.insert(key::MAP_IPS, ips);

    let ips = median_of(plan.map_reps, || {
        let (took, ()) = timed(|| map_items_chunk1(&pool, plan.map_c1_items));
        plan.map_c1_items as f64 / took.as_secs_f64()
    });
    f.insert(key::MAP_C1_IPS, ips);

    cpu_scaling(&pool, plan, &mut f);
    crate::callers::measure(plan, &mut f)?;

    measure::payloads(
        plan,
        &mut f,
        |input| apply_echo_vec(&pool, input).expect("echo_vec").len(),
        |input| apply_echo_buf(&pool, input).expect("echo_buf").len(),
    );
    drop(pool);

    if let Some(rss) = idle_worker_rss_mib()? {
        f.insert(key::RSS_MIB, rss);
    }
    Ok(f)
}

/// Workload 1: create a pool of `n` and run one trivial task on each
/// worker; returns (ms until the pool's build returned, ms until every
/// worker had run a task). Tasks go out in rounds of one per worker until
/// every worker has answered. The pool's shutdown is not timed.
pub fn startup_ms(n: usize) -> Result<(f64, f64), Error> {
    let start = std::time::Instant::now();
    let mut built = Duration::ZERO;
    let (took, pool) = timed(|| -> Result<Pool, Error> {
        let pool = Pool::new(n)?;
        built = start.elapsed();
        worker_pids(&pool)?;
        Ok(pool)
    });
    drop(pool?);
    Ok((ms(built), ms(took)))
}

/// The process id of every worker of `pool`, found by running trivial
/// tasks in rounds of one per worker until each has answered (so each has
/// run at least one task).
pub fn worker_pids(pool: &Pool) -> Result<Vec<u32>, Error> {
    let n = pool.processes();
    let mut seen = HashSet::new();
    while seen.len() < n {
        let round: Vec<_> = (0..n).map(|_| apply_async_worker_pid(pool)).collect();
        for r in round {
            seen.insert(r.get()?);
        }
    }
    Ok(seen.into_iter().collect())
}

/// Workload 3: submit `tasks` trivial tasks, then collect them all.
pub fn async_batch(pool: &Pool, tasks: usize) {
    let pending: Vec<_> = (0..tasks as u64)
        .map(|i| apply_async_inc(pool, i))
        .collect();
    for (i, r) in pending.into_iter().enumerate() {
        assert_eq!(r.get().expect("apply_async"), i as u64 + 1);
    }
}

/// The label of workload 4.
pub const MAP_LABEL: &str = "map";

/// Workload 4: `items` trivial items through `map_inc`, default chunking
/// (Python's rule: ceil(items / (4 × workers))).
pub fn map_items(pool: &Pool, items: usize) {
    let out = map_inc(pool, 0..items as u64).expect("map");
    assert_eq!(out.len(), items);
    assert_eq!(
        out.last().copied(),
        items.checked_sub(1).map(|i| i as u64 + 1)
    );
}

/// Workload 4b: the same with chunksize 1 (one frame per item).
pub fn map_items_chunk1(pool: &Pool, items: usize) {
    let out = map_inc_with(pool, 0..items as u64, MapOptions::new().chunksize(1)).expect("map");
    assert_eq!(out.len(), items);
    assert_eq!(
        out.last().copied(),
        items.checked_sub(1).map(|i| i as u64 + 1)
    );
}

/// Workload 5: the same CPU-bound tasks serially in the caller, through
/// `apply` and through `apply_async`.
fn cpu_scaling(pool: &Pool, plan: &Plan, f: &mut Figures) {
    let (tasks, iters) = (plan.cpu_tasks, plan.spin_iters);
    let mut serial = Vec::new();
    let mut apply = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..plan.cpu_reps {
        let (t, ()) = timed(|| {
            for _ in 0..tasks {
                std::hint::black_box(procpool_bench::spin(iters));
            }
        });
        serial.push(ms(t));
        let (t, ()) = timed(|| {
            for _ in 0..tasks {
                apply_spin(pool, iters).expect("spin");
            }
        });
        apply.push(ms(t));
        let (t, ()) = timed(|| {
            let pending: Vec<_> = (0..tasks).map(|_| apply_async_spin(pool, iters)).collect();
            for r in pending {
                r.get().expect("spin");
            }
        });
        parallel.push(ms(t));
    }
    let (serial, apply, parallel) = (
        measure::median(&serial),
        measure::median(&apply),
        measure::median(&parallel),
    );
    f.insert(key::CPU_SERIAL_MS, serial);
    f.insert(key::CPU_APPLY_MS, apply);
    f.insert(key::CPU_ASYNC_MS, parallel);
    f.insert(key::CPU_SPEEDUP, serial / parallel);
}

/// Workload 7: peak RSS of an idle worker of a fresh pool that has run a
/// trivial task.
fn idle_worker_rss_mib() -> Result<Option<f64>, Error> {
    let pool = Pool::new(1)?;
    let pid = apply_worker_pid(&pool)?;
    apply_inc(&pool, 1)?;
    std::thread::sleep(Duration::from_millis(20));
    Ok(crate::procfs::peak_rss_mib(pid))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

//! The distributed rows (issue 12, feature `redis`): procpool through Redis
//! Streams against the floor of a bare `XADD`/`XREADGROUP`/`XACK` round
//! trip on the same server, with Celery and Ray's `multiprocessing.Pool` as
//! anchors. Nodes are this binary started with `PROCPOOL_NODE`. Each figure
//! is the median over the run's rounds; the memory row and the anchors are
//! measured once.

mod anchors;
pub mod floor;
mod server;
mod workloads;

use std::time::Duration;

use crate::distributed_report::key;
use crate::figures::Figures;
use crate::latency::Tails;
use crate::plan::Plan;
use server::{NodeProc, Server};
use workloads::Snapshot;

/// How much of each workload a run measures.
struct Sizes {
    warmup: usize,
    calls: usize,
    async_2: usize,
    async_1: usize,
    cpu_tasks: usize,
    mem_tasks: usize,
}

/// Every distributed figure, or why none could be measured.
pub fn measure(plan: &Plan, rounds: usize) -> Result<Figures, String> {
    let sizes = Sizes {
        warmup: 200,
        calls: plan.apply_calls.min(3000),
        async_2: 100_000,
        async_1: 50_000,
        cpu_tasks: 24,
        mem_tasks: 100_000,
    };
    let server = Server::start()?;
    let mut per_round = Vec::new();
    for round in 1..=rounds {
        eprintln!("procpool-bench: distributed rows, round {round} of {rounds}...");
        per_round.push(round_figures(&server, plan, &sizes)?);
    }
    let refs: Vec<&Figures> = per_round.iter().collect();
    let mut figures = crate::figures::median_over_rounds(&refs);
    eprintln!(
        "procpool-bench: Redis memory around {} tasks...",
        sizes.mem_tasks
    );
    figures.extend(memory(&server, sizes.mem_tasks)?);
    eprintln!("procpool-bench: Celery (Redis broker and result backend)...");
    // The same counts as procpool's rows: latency's warm-up and calls, and
    // the tasks of the 2-node apply_async row.
    let (warmup, calls, tasks) = (sizes.warmup, sizes.calls, sizes.async_2);
    let celery_url = server.url.replace("/0", "/1");
    figures.extend(anchors::measure(
        &["celery", &celery_url],
        warmup,
        calls,
        tasks,
        key::CELERY,
    ));
    eprintln!("procpool-bench: Ray's multiprocessing.Pool...");
    figures.extend(anchors::measure(&["ray"], warmup, calls, tasks, key::RAY));
    Ok(figures)
}

/// The queue of the rounds, and the one the memory row has to itself.
const QUEUE: &str = "bench";
const MEMORY_QUEUE: &str = "bench-memory";

/// One round: latency against the floor, CPU-bound calls on one and two
/// nodes of one process each (and, as the control of how parallel the
/// machine is right now, on a local pool of one and two processes),
/// apply_async on one and two nodes of two.
fn round_figures(server: &Server, plan: &Plan, sizes: &Sizes) -> Result<Figures, String> {
    let mut f = Figures::new();
    let first = NodeProc::start(server, 1, QUEUE)?;
    {
        let pool = workloads::pool(server, QUEUE)?;
        let consumer = floor::Consumer::start(&server.url)?;
        let bare = floor::round_trips(&server.url, sizes.warmup, sizes.calls)?;
        drop(consumer);
        let ours = workloads::apply_latency(&pool, sizes.warmup, sizes.calls)?;
        insert_tails(&mut f, key::FLOOR_P50, key::FLOOR_P99, bare);
        insert_tails(&mut f, key::APPLY_P50, key::APPLY_P99, ours);
        f.extend(pinned_latency(sizes)?);
        let second = NodeProc::start(server, 1, QUEUE)?;
        let two = workloads::cpu(&pool, sizes.cpu_tasks, plan.spin_iters)?;
        drop(second);
        drop(pool);
        let pool = workloads::pool(server, QUEUE)?;
        let one = workloads::cpu(&pool, sizes.cpu_tasks, plan.spin_iters)?;
        f.insert(key::CPU_2, ms(two));
        f.insert(key::CPU_1, ms(one));
    }
    drop(first);
    for (k, processes) in [(key::CPU_LOCAL_1, 1), (key::CPU_LOCAL_2, 2)] {
        let local = procpool::Pool::new(processes).map_err(|e| e.to_string())?;
        f.insert(
            k,
            ms(workloads::cpu(&local, sizes.cpu_tasks, plan.spin_iters)?),
        );
    }
    let a = NodeProc::start(server, 2, QUEUE)?;
    let b = NodeProc::start(server, 2, QUEUE)?;
    let pool = workloads::pool(server, QUEUE)?;
    f.insert(key::ASYNC_2, workloads::async_rate(&pool, sizes.async_2)?);
    drop(pool);
    drop(b);
    let pool = workloads::pool(server, QUEUE)?;
    f.insert(key::ASYNC_1, workloads::async_rate(&pool, sizes.async_1)?);
    drop(a);
    Ok(f)
}

/// `apply` and the floor with everything on CPU 0: a redis-server, a node
/// and a floor consumer of their own, started while this thread is pinned
/// (they inherit its CPU set), as are the pool's threads.
fn pinned_latency(sizes: &Sizes) -> Result<Figures, String> {
    let _pin = crate::pin::Pin::to_first_cpu().map_err(|e| e.to_string())?;
    let server = Server::start()?;
    let _node = NodeProc::start(&server, 1, QUEUE)?;
    let pool = workloads::pool(&server, QUEUE)?;
    let consumer = floor::Consumer::start(&server.url)?;
    let bare = floor::round_trips(&server.url, sizes.warmup, sizes.calls)?;
    drop(consumer);
    let ours = workloads::apply_latency(&pool, sizes.warmup, sizes.calls)?;
    let mut f = Figures::new();
    insert_tails(&mut f, key::FLOOR_PINNED_P50, key::FLOOR_PINNED_P99, bare);
    insert_tails(&mut f, key::APPLY_PINNED_P50, key::APPLY_PINNED_P99, ours);
    Ok(f)
}

/// Redis's keys and memory before and after `tasks` calls (two nodes, a
/// queue of their own), after a warm-up caller made what stays (the
/// stream, its group, the nodes' consumers, the cached scripts) and sized
/// Redis's buffers.
fn memory(server: &Server, tasks: usize) -> Result<Figures, String> {
    let _a = NodeProc::start(server, 2, MEMORY_QUEUE)?;
    let _b = NodeProc::start(server, 2, MEMORY_QUEUE)?;
    workloads::async_rate(&workloads::pool(server, MEMORY_QUEUE)?, 10_000)?;
    std::thread::sleep(Duration::from_millis(500));
    let before = Snapshot::take(server, MEMORY_QUEUE)?;
    workloads::async_rate(&workloads::pool(server, MEMORY_QUEUE)?, tasks)?;
    std::thread::sleep(Duration::from_millis(500));
    let after = Snapshot::take(server, MEMORY_QUEUE)?;
    let mut f = Figures::new();
    f.insert(key::MEM_TASKS, tasks as f64);
    f.insert(
        key::MEM_SAME_KEYS,
        if before.same_data(&after) { 1.0 } else { 0.0 },
    );
    f.insert(key::MEM_KEY_BYTES, before.key_bytes() as f64);
    f.insert(key::MEM_KEY_BYTES_AFTER, after.key_bytes() as f64);
    f.insert(key::MEM_USED_DELTA, after.used as f64 - before.used as f64);
    Ok(f)
}

fn insert_tails(f: &mut Figures, p50: &str, p99: &str, times: Vec<Duration>) {
    let us: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e6).collect();
    let tails = Tails::of(&us);
    f.insert(p50, tails.p50);
    f.insert(p99, tails.p99);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

//! How much of each workload to run.

use serde::Serialize;

/// Workload sizes and repetition counts. Serialized as JSON for
/// python_pool.py, so both sides run the same plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub smoke: bool,
    pub processes: usize,
    /// Pool sizes whose start-up is measured (must include `processes`).
    pub startup_workers: Vec<usize>,
    pub startup_reps: usize,
    pub apply_warmup: usize,
    /// Timed `apply` calls per pool, pinned and unpinned, every system alike.
    pub apply_calls: usize,
    /// Freshly started pools per system for the unpinned `apply` latency.
    pub unpinned_pools: usize,
    /// `apply` calls of the many-callers rows, shared among the threads.
    pub callers_calls: usize,
    pub async_tasks: usize,
    pub async_reps: usize,
    pub map_items: usize,
    /// Items of the chunksize-1 map (one frame per item: Python needs fewer).
    pub map_c1_items: usize,
    pub map_reps: usize,
    pub cpu_tasks: usize,
    pub cpu_task_ms: u64,
    pub cpu_reps: usize,
    /// Iterations of `procpool_bench::spin` per CPU task (about
    /// `cpu_task_ms` on this machine): calibrated once per run and given to
    /// every system, so each does the same work.
    pub spin_iters: u64,
    /// The shared library Python runs that same loop from (through ctypes).
    pub spin_lib: String,
    /// (MiB, repetitions)
    pub payloads: Vec<(usize, usize)>,
    /// Pending `apply_async` tasks whose memory is measured.
    pub pending_tasks: usize,
    /// Large `Vec<u8>` round trips, each in a fresh process: (MiB, repetitions).
    pub bulk: Vec<(usize, usize)>,
    /// Items of the big map (and its repetitions), in a fresh process.
    pub map_big_items: usize,
    pub map_big_reps: usize,
    /// The idle pool: workers, and seconds it sits idle.
    pub idle_workers: usize,
    pub idle_secs: usize,
}

impl Plan {
    /// The full run (the sizes).
    pub fn full() -> Plan {
        Plan {
            smoke: false,
            processes: 2,
            startup_workers: vec![2, 8, 32],
            startup_reps: 7,
            apply_warmup: 500,
            apply_calls: 10_000,
            unpinned_pools: 5,
            callers_calls: 40_000,
            async_tasks: 20_000,
            async_reps: 5,
            map_items: 200_000,
            map_c1_items: 20_000,
            map_reps: 3,
            cpu_tasks: 8,
            cpu_task_ms: 50,
            cpu_reps: 3,
            spin_iters: 0,
            spin_lib: String::new(),
            payloads: vec![(1, 9), (16, 5), (64, 3)],
            pending_tasks: 1_000_000,
            bulk: vec![(64, 4), (256, 3), (1024, 2)],
            map_big_items: 10_000_000,
            map_big_reps: 5,
            idle_workers: 4,
            idle_secs: 10,
        }
    }

    /// A few seconds in total, for CI.
    pub fn smoke() -> Plan {
        Plan {
            smoke: true,
            processes: 2,
            startup_workers: vec![2, 32],
            startup_reps: 3,
            apply_warmup: 50,
            apply_calls: 400,
            unpinned_pools: 5,
            callers_calls: 4_000,
            async_tasks: 2_000,
            async_reps: 3,
            map_items: 10_000,
            map_c1_items: 2_000,
            map_reps: 1,
            cpu_tasks: 4,
            cpu_task_ms: 20,
            cpu_reps: 1,
            spin_iters: 0,
            spin_lib: String::new(),
            payloads: vec![(1, 3)],
            pending_tasks: 20_000,
            bulk: vec![(16, 3)],
            map_big_items: 100_000,
            map_big_reps: 1,
            idle_workers: 4,
            idle_secs: 1,
        }
    }
}

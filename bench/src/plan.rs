//! How much of each workload to run, and the figures a run produces.

use std::collections::BTreeMap;

use serde::Serialize;

/// Workload sizes and repetition counts. Serialized as JSON for
/// python_pool.py, so both sides run the same plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub smoke: bool,
    pub processes: usize,
    pub startup_reps: usize,
    pub apply_warmup: usize,
    pub apply_calls: usize,
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
}

impl Plan {
    /// The full run (the sizes).
    pub fn full() -> Plan {
        Plan {
            smoke: false,
            processes: 2,
            startup_reps: 7,
            apply_warmup: 200,
            apply_calls: 2_000,
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
        }
    }

    /// A few seconds in total, for CI.
    pub fn smoke() -> Plan {
        Plan {
            smoke: true,
            processes: 2,
            startup_reps: 3,
            apply_warmup: 50,
            apply_calls: 300,
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
        }
    }
}

/// One system's figures by key (see [`key`]).
pub type Figures = BTreeMap<String, f64>;

/// Figure keys shared with python_pool.py.
pub mod key {
    pub const STARTUP_MS: &str = "startup_ms";
    pub const APPLY_US: &str = "apply_us";
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

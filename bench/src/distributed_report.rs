//! The distributed rows in the report (issue 12): their section and their
//! goals. Measured by `distributed` (feature `redis`); without it, or
//! without redis-server, the section says why it is empty.

use crate::figures::Figures;
use crate::goals::Goal;
use crate::tables::markdown;

/// The keys of the distributed figures.
pub mod key {
    pub const FLOOR_P50: &str = "floor_p50_us";
    pub const FLOOR_P99: &str = "floor_p99_us";
    pub const APPLY_P50: &str = "apply_p50_us";
    pub const APPLY_P99: &str = "apply_p99_us";
    pub const FLOOR_PINNED_P50: &str = "floor_pinned_p50_us";
    pub const FLOOR_PINNED_P99: &str = "floor_pinned_p99_us";
    pub const APPLY_PINNED_P50: &str = "apply_pinned_p50_us";
    pub const APPLY_PINNED_P99: &str = "apply_pinned_p99_us";
    pub const ASYNC_2: &str = "async_2_nodes_tasks_per_s";
    pub const ASYNC_1: &str = "async_1_node_tasks_per_s";
    pub const CPU_1: &str = "cpu_1_node_ms";
    pub const CPU_2: &str = "cpu_2_nodes_ms";
    pub const CPU_LOCAL_1: &str = "cpu_local_1_process_ms";
    pub const CPU_LOCAL_2: &str = "cpu_local_2_processes_ms";
    pub const MEM_TASKS: &str = "mem_tasks";
    pub const MEM_SAME_KEYS: &str = "mem_same_keys";
    pub const MEM_KEY_BYTES: &str = "mem_key_bytes_before";
    pub const MEM_KEY_BYTES_AFTER: &str = "mem_key_bytes_after";
    pub const MEM_USED_DELTA: &str = "mem_used_delta_bytes";
    pub const CELERY: &str = "celery_";
    pub const RAY: &str = "ray_";
    pub const ANCHOR_P50: &str = "apply_p50_us";
    pub const ANCHOR_P99: &str = "apply_p99_us";
    pub const ANCHOR_RATE: &str = "async_tasks_per_s";
}

/// The distributed rows of a run: `None` when not asked for.
pub type Distributed = Option<Result<Figures, String>>;

fn cell(f: &Figures, k: &str, digits: usize) -> String {
    match (f.get(k), f.failure(k)) {
        (Some(v), _) => format!("{v:.digits$}"),
        (None, Some(why)) => why.to_string(),
        (None, None) => "n/a".into(),
    }
}

fn anchor(f: &Figures, prefix: &str, k: &str) -> String {
    cell(f, &format!("{prefix}{k}"), 0)
}

/// An anchor's `apply` latency: p50 (p99).
fn anchor_tails(f: &Figures, prefix: &str) -> String {
    format!(
        "{} ({})",
        anchor(f, prefix, key::ANCHOR_P50),
        anchor(f, prefix, key::ANCHOR_P99)
    )
}

/// The section's table, one row per workload.
fn rows(f: &Figures) -> Vec<Vec<String>> {
    vec![
        vec![
            "apply latency, all on one CPU: p50 (p99)".into(),
            "µs".into(),
            format!(
                "{} ({})",
                cell(f, key::APPLY_PINNED_P50, 0),
                cell(f, key::APPLY_PINNED_P99, 0)
            ),
            format!(
                "{} ({})",
                cell(f, key::FLOOR_PINNED_P50, 0),
                cell(f, key::FLOOR_PINNED_P99, 0)
            ),
            String::new(),
            String::new(),
        ],
        vec![
            "apply latency, unpinned: p50 (p99)".into(),
            "µs".into(),
            format!(
                "{} ({})",
                cell(f, key::APPLY_P50, 0),
                cell(f, key::APPLY_P99, 0)
            ),
            format!(
                "{} ({})",
                cell(f, key::FLOOR_P50, 0),
                cell(f, key::FLOOR_P99, 0)
            ),
            anchor_tails(f, key::CELERY),
            anchor_tails(f, key::RAY),
        ],
        vec![
            "apply_async, 2 nodes × 2 processes".into(),
            "tasks/s".into(),
            cell(f, key::ASYNC_2, 0),
            String::new(),
            anchor(f, key::CELERY, key::ANCHOR_RATE),
            anchor(f, key::RAY, key::ANCHOR_RATE),
        ],
        vec![
            "apply_async, 1 node × 2 processes".into(),
            "tasks/s".into(),
            cell(f, key::ASYNC_1, 0),
            String::new(),
            String::new(),
            String::new(),
        ],
        vec![
            "CPU-bound calls, 1 node × 1 process / 2 nodes × 1 process".into(),
            "ms".into(),
            format!("{} / {}", cell(f, key::CPU_1, 0), cell(f, key::CPU_2, 0)),
            String::new(),
            String::new(),
            String::new(),
        ],
        vec![
            "control: the same calls on a local pool of 1 / 2 processes".into(),
            "ms".into(),
            format!(
                "{} / {}",
                cell(f, key::CPU_LOCAL_1, 0),
                cell(f, key::CPU_LOCAL_2, 0)
            ),
            String::new(),
            String::new(),
            String::new(),
        ],
    ]
}

/// The section "More than one machine (Redis)".
pub fn section(d: &Distributed) -> String {
    let f = match d {
        None => {
            return "Not measured in this run: `cargo run --release -p procpool-bench \
                    --features redis` measures it (needs redis-server on PATH).\n"
                .into()
        }
        Some(Err(why)) => return format!("Not measured: {why}\n"),
        Some(Ok(f)) => f,
    };
    let rows = rows(f);
    let table = markdown(
        &[
            "workload",
            "unit",
            "procpool via Redis",
            "bare Streams floor",
            "Celery (Redis)",
            "Ray Pool",
        ],
        &rows,
    );
    format!(
        "{table}\nLatency is measured twice: unpinned, and with redis-server, the caller, the \
         node (and its worker) and the floor's consumer all on CPU 0 (a redis-server of \
         their own), as the main table's apply latency is: unpinned, on this shared 2-CPU \
         machine, the figures depend on where the scheduler puts five processes. The floor: a bare `XADD` + blocking `XREAD` from the caller and a consumer \
         process answering with `XREADGROUP` → `XADD` + `XACK` + `XDEL`, on the same \
         redis-server (no persistence, loopback). procpool's nodes are this binary started \
         with `PROCPOOL_NODE`. Redis memory: {} tasks through two nodes after a warm-up \
         caller; keys {} ({} B before, {} B after), used_memory {:+} B. Celery: Redis as \
         broker and result backend, a prefork worker of 2 processes, `delay().get()`; Ray: \
         `ray.util.multiprocessing.Pool(2)` on a local cluster of 2 CPUs; each runs the same \
         counts as procpool (the latency rows' warm-up and calls, the 2-node row's \
         `apply_async` tasks). The anchors are measured once per run; the rest is the median \
         over the run's rounds.\n",
        cell(f, key::MEM_TASKS, 0),
        if f.get(key::MEM_SAME_KEYS) == Some(1.0) { "the same, each holding the same bytes" } else { "NOT the same" },
        cell(f, key::MEM_KEY_BYTES, 0),
        cell(f, key::MEM_KEY_BYTES_AFTER, 0),
        f.get(key::MEM_USED_DELTA).unwrap_or(f64::NAN),
    )
}

fn goal(text: &str, measured: Option<(String, bool)>) -> Goal {
    Goal {
        text: text.to_string(),
        measured: measured.as_ref().map_or("n/a".into(), |m| m.0.clone()),
        pass: measured.map(|m| m.1),
    }
}

/// Issue 12's goals, from the run's distributed rows.
pub fn goals(d: &Distributed) -> Vec<Goal> {
    let Some(Ok(f)) = d else {
        return Vec::new();
    };
    let over = |a: &str, b: &str| Some(f.get(a)? / f.get(b)?);
    let ratio = |r: Option<f64>, pass: fn(f64) -> bool| r.map(|r| (format!("{r:.2}×"), pass(r)));
    let celery = f.get(&format!("{}{}", key::CELERY, key::ANCHOR_RATE));
    let ray = f.get(&format!("{}{}", key::RAY, key::ANCHOR_RATE));
    let slowest_anchor = match (celery, ray) {
        (Some(c), Some(r)) => Some(c.max(r)),
        (c, r) => c.or(r),
    };
    let memory = f
        .get(key::MEM_SAME_KEYS)
        .zip(f.get(key::MEM_USED_DELTA))
        .map(|(same, delta)| {
            (
                format!("same keys: {}, used_memory {delta:+.0} B", same == 1.0),
                same == 1.0 && delta < 64.0 * 1024.0,
            )
        });
    vec![
        goal(
            "12: apply latency through Redis ≤ 1.5× a bare XADD/XREADGROUP/XACK round trip (p50, all on one CPU)",
            ratio(over(key::APPLY_PINNED_P50, key::FLOOR_PINNED_P50), |r| r <= 1.5),
        ),
        goal(
            "(the same unpinned, where the scheduler's placement of five processes decides)",
            ratio(over(key::APPLY_P50, key::FLOOR_P50), |_| true),
        ),
        goal(
            "12: apply_async ≥ 20k tasks/s with 2 nodes",
            f.get(key::ASYNC_2).map(|v| (format!("{v:.0} tasks/s"), v >= 20_000.0)),
        ),
        goal(
            "12: apply_async with 2 nodes ≥ 30× Celery and Ray",
            slowest_anchor.and_then(|a| Some(f.get(key::ASYNC_2)? / a)).map(|r| (format!("{r:.0}×"), r >= 30.0)),
        ),
        goal(
            "12: 2 nodes ≥ 1.8× one node on CPU-bound calls",
            ratio(over(key::CPU_1, key::CPU_2), |r| r >= 1.8),
        ),
        goal(
            "(control, not a goal: a local pool of 2 processes over 1 on the same calls, same round)",
            over(key::CPU_LOCAL_1, key::CPU_LOCAL_2).map(|r| (format!("{r:.2}×"), true)),
        ),
        goal(
            "12: Redis memory back to its baseline after 100,000 tasks (same keys and bytes; used_memory within 64 KiB)",
            memory,
        ),
    ]
}

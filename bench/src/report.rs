//! A run's figures and the main table (terminal and BENCHMARKS.md): one
//! row per workload, procpool beside the lowest floor, Python and procspawn.

use crate::figures::{key, Figures};
use crate::latency::{pinned_key, unpinned_key};
use crate::plan::Plan;
use crate::run_procpool::MAP_LABEL;
use crate::systems::System;

/// Every system's figures from one run (`Err`: skipped or failed, with why).
pub struct Run {
    pub plan: Plan,
    /// The open-file limit in force (raised for procspawn's queued tasks).
    pub fd_limit: u64,
    /// Indexed by [`System::index`].
    pub figures: [Result<Figures, String>; 6],
    /// The distributed rows (feature `redis`), if measured.
    pub distributed: crate::distributed_report::Distributed,
}

impl Run {
    pub fn get(&self, system: System, key: &str) -> Option<f64> {
        self.figures[system.index()].as_ref().ok()?.get(key)
    }

    /// Why `system`'s row `key` failed, if it did.
    pub fn failure(&self, system: System, key: &str) -> Option<&str> {
        self.figures[system.index()].as_ref().ok()?.failure(key)
    }

    /// The lowest floor's figure for `key` (the highest for rates), and which
    /// floor that was: the headline floor every ratio is computed against.
    pub fn best_floor(&self, key: &str, higher_is_better: bool) -> Option<(System, f64)> {
        let floors = System::FLOORS
            .iter()
            .filter_map(|&s| Some((s, self.get(s, key)?)));
        if higher_is_better {
            floors.max_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            floors.min_by(|a, b| a.1.total_cmp(&b.1))
        }
    }
}

/// The main table's columns of figures.
pub const COLUMNS: [&str; 4] = [
    "procpool",
    "lowest floor",
    "Python Pool (spawn)",
    "procspawn Pool",
];
const PROCPOOL: usize = 0;
pub const FLOOR: usize = 1;
pub const PYTHON: usize = 2;
pub const PROCSPAWN: usize = 3;

/// One workload's line of the main table.
pub struct Row {
    pub label: String,
    pub unit: &'static str,
    pub higher_is_better: bool,
    /// By [`COLUMNS`].
    pub values: [Option<f64>; 4],
    /// Why a column has no figure, where it failed.
    pub failures: [Option<String>; 4],
    /// Which floor the floor column holds.
    pub floor: Option<System>,
    /// The label in the chart, if drawn there.
    pub chart_label: Option<String>,
}

impl Row {
    /// The row of `key` with procpool, the lowest floor, Python and procspawn.
    pub fn new(
        run: &Run,
        label: String,
        key: &str,
        unit: &'static str,
        higher_is_better: bool,
    ) -> Row {
        let floor = run.best_floor(key, higher_is_better);
        let systems = [
            System::Procpool,
            System::Socket,
            System::Python,
            System::Procspawn,
        ];
        let failures = systems.map(|s| {
            let s = if s == System::Socket {
                floor.map_or(s, |f| f.0)
            } else {
                s
            };
            run.failure(s, key).map(str::to_string)
        });
        Row {
            label,
            unit,
            higher_is_better,
            values: [
                run.get(System::Procpool, key),
                floor.map(|f| f.1),
                run.get(System::Python, key),
                run.get(System::Procspawn, key),
            ],
            failures,
            floor: floor.map(|f| f.0),
            chart_label: None,
        }
    }

    fn chart(mut self, label: &str) -> Row {
        self.chart_label = Some(label.to_string());
        self
    }

    /// How many times better procpool is than column `column` (>1: procpool wins).
    pub fn advantage(&self, column: usize) -> Option<f64> {
        advantage(
            self.values[PROCPOOL]?,
            self.values[column]?,
            self.higher_is_better,
        )
    }
}

/// How many times better `ours` is than `theirs` (>1: ours wins).
pub fn advantage(ours: f64, theirs: f64, higher_is_better: bool) -> Option<f64> {
    if ours <= 0.0 || theirs <= 0.0 {
        return None;
    }
    Some(if higher_is_better {
        ours / theirs
    } else {
        theirs / ours
    })
}

/// The main table's rows.
pub fn rows(run: &Run) -> Vec<Row> {
    let p = &run.plan;
    let row =
        |label: &str, key: &str, unit, higher| Row::new(run, label.to_string(), key, unit, higher);
    let mut rows = vec![
        row(
            &format!("startup: pool of {} + 1 task each", p.processes),
            &key::startup(p.processes),
            "ms",
            false,
        )
        .chart("startup"),
        row("apply p50, pinned⁵", &pinned_key("p50"), "µs", false).chart("apply latency"),
        row(
            &format!(
                "apply p50, unpinned, worst of {} fresh pools⁵",
                p.unpinned_pools
            ),
            &unpinned_key("p50", "max"),
            "µs",
            false,
        ),
        row(
            &format!("apply_async, {} tasks¹", p.async_tasks),
            key::ASYNC_TPS,
            "tasks/s",
            true,
        )
        .chart("apply_async"),
        row(
            &format!("{MAP_LABEL}, {} items²", p.map_items),
            key::MAP_IPS,
            "items/s",
            true,
        )
        .chart("map"),
        row(
            &format!("{MAP_LABEL}, chunksize 1, {} items²", p.map_c1_items),
            key::MAP_C1_IPS,
            "items/s",
            true,
        ),
        row(
            &format!(
                "CPU: {} × {} ms, serial in caller⁶",
                p.cpu_tasks, p.cpu_task_ms
            ),
            key::CPU_SERIAL_MS,
            "ms",
            false,
        ),
        row("CPU: same through apply", key::CPU_APPLY_MS, "ms", false),
        row(
            "CPU: same through apply_async",
            key::CPU_ASYNC_MS,
            "ms",
            false,
        ),
        row(
            "CPU: apply_async speed-up over serial",
            key::CPU_SPEEDUP,
            "×",
            true,
        )
        .chart("CPU speed-up"),
    ];
    for &(mib, _) in &p.payloads {
        let last = p.payloads.last().map(|l| l.0) == Some(mib);
        for (buf, name) in [(false, "Vec<u8>"), (true, "ByteBuf")] {
            let r = row(
                &format!("payload {mib} MiB, {name}³"),
                &key::payload(mib, buf),
                "MB/s",
                true,
            );
            rows.push(if last {
                r.chart(&format!("{mib} MiB {name}"))
            } else {
                r
            });
        }
    }
    rows.push(row(
        "idle worker peak RSS (VmHWM)⁴",
        key::RSS_MIB,
        "MiB",
        false,
    ));
    rows
}

/// A figure in a cell.
pub fn value(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 100_000.0 => format!("{:.0}k", v / 1e3),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// A figure, or why it failed, in a cell.
pub fn cell(v: Option<f64>, failure: Option<&str>) -> String {
    match (v, failure) {
        (None, Some(why)) => why.to_string(),
        _ => value(v),
    }
}

pub fn ratio(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |r| format!("{r:.2}×"))
}

/// The main table as Markdown (also readable as plain text).
pub fn table(run: &Run) -> String {
    let mut out = String::from("| workload | unit |");
    for c in COLUMNS {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str(" procpool vs floor | vs Python | vs procspawn |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows(run) {
        out.push_str(&format!("| {} | {} |", row.label, row.unit));
        for (c, v) in row.values.iter().enumerate() {
            let mut text = cell(*v, row.failures[c].as_deref());
            if let (FLOOR, Some(floor), Some(_)) = (c, row.floor, v) {
                text.push_str(&format!(" ({})", floor.short()));
            }
            out.push_str(&format!(" {text} |"));
        }
        for c in [FLOOR, PYTHON, PROCSPAWN] {
            out.push_str(&format!(" {} |", ratio(row.advantage(c))));
        }
        out.push('\n');
    }
    out
}

/// Footnotes under the main table, and which systems were skipped.
pub fn notes(run: &Run) -> String {
    let p = &run.plan;
    let mut out = format!(
        "Ratios: how many times better procpool is (>1× = procpool faster / smaller; \
         for times it is other ÷ procpool, for rates procpool ÷ other). The floor column is \
         the lowest of the three floors (the highest rate), named in the cell: two processes \
         exchanging the same requests over a socket pair, a pipe pair, or one word of shared \
         memory woken by futex (round trips only), with no pool logic; every ratio to the floor \
         is against it. Every figure is the median over the run's rounds (each round measures \
         every system once, so rounds interleave the systems in time), each a median over \
         repetitions; compare ratios, not absolute times across runs.\n\n\
         ¹ Every system runs the same {} tasks, submitted at once and then collected. \
         procspawn holds 3 file descriptors per queued task: the benchmark raises its \
         open-file limit as far as it may (to {}); {} The floors pipeline bare frames to the \
         children from writer threads.\n\
         ² procpool: `map_inc` (one frame per chunk, the worker runs the whole chunk); Python: \
         `Pool.map`; both with the default chunksize (ceil(items / (4 × workers))) and with \
         chunksize 1. Floors: Python's default chunking, one frame per chunk. procspawn's pool \
         has no map.\n\
         ³ Identity task, MB/s = 2 × size / round-trip time. procpool sends a top-level \
         `Vec<u8>` or `serde_bytes::ByteBuf` as one block of bytes (procspawn: a `Vec<u8>` \
         element by element). Python sends `bytes` and the floors raw frames, so their two rows are the \
         same figure.\n\
         ⁴ The worker of a fresh pool of 1 after two trivial tasks (Python's read in the \
         second); floors: the bench binary re-executed as a floor child, after 10 round trips.\n\
         ⁵ Every system with its caller, pool threads and workers pinned to one CPU (Python \
         too, via os.sched_setaffinity); procpool's and the floors' calls rotate in short \
         blocks. Tails and unpinned figures over fresh pools: see \"apply latency\".\n\
         ⁶ Every system runs the same loop (`procpool_bench::spin`, Python through ctypes from \
         the bench's shared library) for the same {} iterations per task, calibrated once for \
         the run to about {} ms.\n",
        p.async_tasks,
        run.fd_limit,
        procspawn_window_note(p.async_tasks),
        p.spin_iters,
        p.cpu_task_ms,
    );
    for s in System::ALL {
        if let Err(why) = &run.figures[s.index()] {
            out.push_str(&format!("\n{} skipped: {why}\n", s.name()));
        }
    }
    out
}

/// What footnote ¹ says about procspawn's queue under the open-file limit.
fn procspawn_window_note(tasks: usize) -> String {
    let window = crate::run_procspawn::queue_window(tasks);
    if window >= tasks {
        "every task fits.".into()
    } else {
        format!(
            "under it procspawn holds at most {window} tasks queued, so it runs the same \
             {tasks} through a sliding window of {window} (one more submitted as each \
             completes; its workers never run dry)."
        )
    }
}

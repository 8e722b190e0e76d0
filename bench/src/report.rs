//! The one table (terminal and BENCHMARKS.md), the goals and the smoke checks.

use crate::plan::{key, Figures, Plan};
use crate::run_procpool::MAP_LABEL;

/// The systems, in column order.
pub const SYSTEMS: [&str; 4] = [
    "procpool",
    "raw floor",
    "Python Pool (spawn)",
    "procspawn Pool",
];
const PROCPOOL: usize = 0;
const FLOOR: usize = 1;
const PYTHON: usize = 2;
const PROCSPAWN: usize = 3;

/// Every system's figures from one run (`None`: skipped, with the reason).
pub struct Run {
    pub plan: Plan,
    /// The open-file limit in force (raised for procspawn's queued tasks).
    pub fd_limit: u64,
    pub figures: [Result<Figures, String>; 4],
}

impl Run {
    fn get(&self, system: usize, key: &str) -> Option<f64> {
        self.figures[system].as_ref().ok()?.get(key).copied()
    }
}

/// One workload's line of the table.
pub struct Row {
    pub label: String,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub values: [Option<f64>; 4],
    /// The label in the chart, if drawn there.
    pub chart_label: Option<String>,
}

impl Row {
    /// How many times better procpool is than `system` (>1: procpool wins).
    pub fn advantage(&self, system: usize) -> Option<f64> {
        let (p, x) = (self.values[PROCPOOL]?, self.values[system]?);
        if p <= 0.0 || x <= 0.0 {
            return None;
        }
        Some(if self.higher_is_better { p / x } else { x / p })
    }
}

/// The table's rows.
pub fn rows(run: &Run) -> Vec<Row> {
    let p = &run.plan;
    let row = |label: String, key: &str, unit, higher_is_better, chart: Option<&str>| Row {
        label,
        unit,
        higher_is_better,
        values: std::array::from_fn(|s| run.get(s, key)),
        chart_label: chart.map(str::to_string),
    };
    let mut rows = vec![
        row(
            format!("startup: pool of {} + 1 task each", p.processes),
            key::STARTUP_MS,
            "ms",
            false,
            Some("startup"),
        ),
        row(
            "apply latency (x + 1)⁵".into(),
            key::APPLY_US,
            "µs",
            false,
            Some("apply latency"),
        ),
        row(
            format!("apply_async, {} tasks¹", p.async_tasks),
            key::ASYNC_TPS,
            "tasks/s",
            true,
            Some("apply_async"),
        ),
        row(
            format!("{MAP_LABEL}, {} items²", p.map_items),
            key::MAP_IPS,
            "items/s",
            true,
            Some("map"),
        ),
        row(
            format!("{MAP_LABEL}, chunksize 1, {} items²", p.map_c1_items),
            key::MAP_C1_IPS,
            "items/s",
            true,
            None,
        ),
        row(
            format!(
                "CPU: {} × {} ms, serial in caller",
                p.cpu_tasks, p.cpu_task_ms
            ),
            key::CPU_SERIAL_MS,
            "ms",
            false,
            None,
        ),
        row(
            "CPU: same through apply".into(),
            key::CPU_APPLY_MS,
            "ms",
            false,
            None,
        ),
        row(
            "CPU: same through apply_async".into(),
            key::CPU_ASYNC_MS,
            "ms",
            false,
            None,
        ),
        row(
            "CPU: apply_async speed-up over serial".into(),
            key::CPU_SPEEDUP,
            "×",
            true,
            Some("CPU speed-up"),
        ),
    ];
    for &(mib, _) in &p.payloads {
        let last = p.payloads.last().map(|l| l.0) == Some(mib);
        let vec_label = format!("{mib} MiB Vec<u8>");
        let buf_label = format!("{mib} MiB ByteBuf");
        rows.push(row(
            format!("payload {mib} MiB, Vec<u8>³"),
            &key::payload(mib, false),
            "MB/s",
            true,
            last.then_some(vec_label.as_str()),
        ));
        rows.push(row(
            format!("payload {mib} MiB, ByteBuf³"),
            &key::payload(mib, true),
            "MB/s",
            true,
            last.then_some(buf_label.as_str()),
        ));
    }
    rows.push(row(
        "idle worker peak RSS (VmHWM)⁴".into(),
        key::RSS_MIB,
        "MiB",
        false,
        None,
    ));
    rows
}

fn value(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 100_000.0 => format!("{:.0}k", v / 1e3),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |r| format!("{r:.2}×"))
}

/// The table as Markdown (also readable as plain text).
pub fn table(run: &Run) -> String {
    let mut out = String::new();
    out.push_str("| workload | unit |");
    for s in SYSTEMS {
        out.push_str(&format!(" {s} |"));
    }
    out.push_str(" procpool vs floor | vs Python | vs procspawn |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows(run) {
        out.push_str(&format!("| {} | {} |", row.label, row.unit));
        for v in row.values {
            out.push_str(&format!(" {} |", value(v)));
        }
        for s in [FLOOR, PYTHON, PROCSPAWN] {
            out.push_str(&format!(" {} |", ratio(row.advantage(s))));
        }
        out.push('\n');
    }
    out
}

/// Footnotes under the table.
pub fn notes(run: &Run) -> String {
    let p = &run.plan;
    let mut out = format!(
        "Ratios: how many times better procpool is (>1× = procpool faster / smaller; \
         for times it is other ÷ procpool, for rates procpool ÷ other). Every figure is the \
         median over the run's rounds (each round measures every system once, so rounds \
         interleave the systems in time), each a median over repetitions; compare ratios, \
         not absolute times across runs.\n\n\
         ¹ Every system runs the same {} tasks, submitted at once and then collected. \
         procspawn holds 3 file descriptors per queued task: the benchmark raises its \
         open-file limit as far as it may (to {}); {} The floor pipelines bare frames to the \
         children from writer threads.\n\
         ² procpool: `map_inc` (one frame per chunk, the worker runs the whole chunk); Python: \
         `Pool.map`; both with the default chunksize (ceil(items / (4 × workers))) and with \
         chunksize 1. Floor: Python's default chunking, one frame per chunk. procspawn's pool \
         has no map.\n\
         ³ Identity task, MB/s = 2 × size / round-trip time. procpool sends a top-level \
         `Vec<u8>` as one block of bytes, like `serde_bytes::ByteBuf` (procspawn: element by \
         element). Python sends `bytes` and the floor raw frames, so their two rows are the \
         same figure.\n\
         ⁴ A fresh pool's worker after one trivial task; floor: the bench binary re-executed \
         as a frame-echo child.\n\
         ⁵ Every system with its caller, pool threads and workers pinned to one CPU (Python \
         too, via os.sched_setaffinity), and procpool's and the floor's calls interleaved in \
         short blocks. Unpinned, whether the scheduler puts caller and worker on the same CPU \
         changes a round trip about threefold on this virtual machine (about 12 vs 35 µs for \
         procpool and the floor alike) and sticks for the life of the processes.\n",
        p.async_tasks,
        run.fd_limit,
        procspawn_window_note(p.async_tasks),
    );
    for (s, name) in SYSTEMS.iter().enumerate() {
        if let Err(why) = &run.figures[s] {
            out.push_str(&format!("\n{name} skipped: {why}\n"));
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

/// One goal of issue 5, checked against this run.
pub struct Goal {
    pub text: &'static str,
    pub measured: String,
    /// `None`: a figure it needs is missing.
    pub pass: Option<bool>,
}

pub fn goals(run: &Run) -> Vec<Goal> {
    let g = |s, k: &str| run.get(s, k);
    let mut goals = Vec::new();
    let mut ratio_goal = |text, r: Option<f64>, pass: &dyn Fn(f64) -> bool| {
        goals.push(Goal {
            text,
            measured: r.map_or("n/a".into(), |r| format!("{r:.2}×")),
            pass: r.map(pass),
        })
    };
    let over = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let apply = g(PROCPOOL, key::APPLY_US);
    ratio_goal(
        "apply latency ≤ 1.5× raw floor",
        over(apply, g(FLOOR, key::APPLY_US)),
        &|r| r <= 1.5,
    );
    ratio_goal(
        "apply ≥ 10× faster than Python",
        over(g(PYTHON, key::APPLY_US), apply),
        &|r| r >= 10.0,
    );
    ratio_goal(
        "apply ≥ 2.5× faster than procspawn",
        over(g(PROCSPAWN, key::APPLY_US), apply),
        &|r| r >= 2.5,
    );
    ratio_goal(
        "apply_async throughput ≥ 8× Python",
        over(g(PROCPOOL, key::ASYNC_TPS), g(PYTHON, key::ASYNC_TPS)),
        &|r| r >= 8.0,
    );
    ratio_goal(
        "map ≥ 5× Python",
        over(g(PROCPOOL, key::MAP_IPS), g(PYTHON, key::MAP_IPS)),
        &|r| r >= 5.0,
    );
    ratio_goal(
        "CPU scaling ≥ 1.9×",
        g(PROCPOOL, key::CPU_SPEEDUP),
        &|r| r >= 1.9,
    );
    if let Some(&(mib, _)) = run.plan.payloads.last() {
        let py = g(PYTHON, &key::payload(mib, false));
        let text: &'static str = if mib == 64 {
            "64 MiB payload ≥ 3× Python MB/s (Vec<u8>)"
        } else {
            "largest payload ≥ 3× Python MB/s (Vec<u8>)"
        };
        ratio_goal(
            text,
            over(g(PROCPOOL, &key::payload(mib, false)), py),
            &|r| r >= 3.0,
        );
        let text: &'static str = if mib == 64 {
            "64 MiB payload ≥ 3× Python MB/s (ByteBuf)"
        } else {
            "largest payload ≥ 3× Python MB/s (ByteBuf)"
        };
        ratio_goal(
            text,
            over(g(PROCPOOL, &key::payload(mib, true)), py),
            &|r| r >= 3.0,
        );
    }
    let startup = g(PROCPOOL, key::STARTUP_MS);
    goals.push(Goal {
        text: "startup ≤ 5 ms",
        measured: startup.map_or("n/a".into(), |s| format!("{s:.2} ms")),
        pass: startup.map(|s| s <= 5.0),
    });
    let extra = g(PROCPOOL, key::RSS_MIB)
        .zip(g(FLOOR, key::RSS_MIB))
        .map(|(p, f)| p - f);
    goals.push(Goal {
        text: "idle worker RSS ≤ 5 MiB above the floor",
        measured: extra.map_or("n/a".into(), |e| format!("{e:+.2} MiB")),
        pass: extra.map(|e| e <= 5.0),
    });
    goals
}

pub fn goals_text(goals: &[Goal]) -> String {
    let mut out = String::from("| goal | measured | result |\n|---|---:|---|\n");
    for goal in goals {
        let verdict = match goal.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        out.push_str(&format!(
            "| {} | {} | {verdict} |\n",
            goal.text, goal.measured
        ));
    }
    out
}

/// Gross regressions relative to the floor measured in the same run: the
/// only failures `--smoke` reports (never absolute times, which depend on
/// the machine). Returns a line per failed check.
pub fn smoke_failures(run: &Run) -> Vec<String> {
    let g = |s, k: &str| run.get(s, k);
    let mut failures = Vec::new();
    let mut check = |what: &str,
                     procpool: Option<f64>,
                     floor: Option<f64>,
                     limit: f64,
                     higher_is_better: bool| {
        let (Some(p), Some(f)) = (procpool, floor) else {
            failures.push(format!(
                "{what}: no figure (procpool {procpool:?}, floor {floor:?})"
            ));
            return;
        };
        // How many times worse than the floor procpool is.
        let worse = if higher_is_better { f / p } else { p / f };
        if worse > limit {
            failures.push(format!(
                "{what}: {worse:.1}× worse than the raw floor (limit {limit}×)"
            ));
        }
    };
    check(
        "apply latency",
        g(PROCPOOL, key::APPLY_US),
        g(FLOOR, key::APPLY_US),
        5.0,
        false,
    );
    check(
        "startup",
        g(PROCPOOL, key::STARTUP_MS),
        g(FLOOR, key::STARTUP_MS),
        10.0,
        false,
    );
    // Per-task cost of apply_async against one bare round trip: pipelining
    // over two workers should beat it, so 5× is a gross regression.
    let per_task_us = g(PROCPOOL, key::ASYNC_TPS).map(|t| 1e6 / t);
    check(
        "apply_async per-task time vs one floor round trip",
        per_task_us,
        g(FLOOR, key::APPLY_US),
        5.0,
        false,
    );
    if let Some(&(mib, _)) = run.plan.payloads.first() {
        let k = key::payload(mib, true);
        check(
            &format!("{mib} MiB payload (ByteBuf)"),
            g(PROCPOOL, &k),
            g(FLOOR, &k),
            // Small payloads are dominated by a few copies whose cost swings
            // with the machine's load; only an order of magnitude more counts.
            20.0,
            true,
        );
    }
    let rss_excess = g(PROCPOOL, key::RSS_MIB)
        .zip(g(FLOOR, key::RSS_MIB))
        .map(|(p, f)| p - f);
    if let Some(extra) = rss_excess.filter(|e| *e > 50.0) {
        failures.push(format!(
            "idle worker RSS {extra:.1} MiB above the floor (limit 50 MiB)"
        ));
    }
    failures
}

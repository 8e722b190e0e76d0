//! procpool's benchmark (issue 5): every workload on procpool, on Python's
//! `multiprocessing.Pool` ('spawn'), on procspawn's `Pool` and on a raw
//! floor (this binary re-executed, answering bare length-prefixed frames on
//! a socket pair), all in the same run, printed as one table of medians and
//! procpool's ratio to each, with the issue's goals marked PASS/FAIL.
//!
//! ```text
//! cargo run --release -p procpool-bench            # full run (a few minutes);
//!                                                  # writes BENCHMARKS.md and bench/chart.svg
//! cargo run --release -p procpool-bench -- --smoke # CI: a few seconds, procpool and floor only;
//!                                                  # exits 1 only on gross regressions vs the floor
//! ```
//!
//! Options: `--smoke`; `--parent-mib N` (the parent holds N MiB while it
//! measures); `--rounds N` (default 3, smoke 1: each figure is the
//! median over N rounds of every system); `--no-python`, `--no-procspawn` (skip a system);
//! `--no-write` (print only); `--profile apply|async|payload|map|map1 procpool|floor [N]`
//! (one workload alone, untabulated, for `perf record` / `strace -c`; `map` is
//! `map_inc` with the default chunking, `map1` with chunksize 1, both also on
//! `python` for Python's `Pool.map` alone: `--profile map python 1000000`). Python needs `python3` on PATH; without it the
//! Python column says why it is empty.
//!
//! Start-up order: the floor child check comes first (it must not touch
//! either library), then `procspawn::init()` (a procspawn child serves its
//! call there and exits), then `procpool::init()` (a procpool worker serves
//! there). The two look for different environment variables, so a worker of
//! one passes straight through the other's `init`.

mod chart;
mod floor;
mod measure;
mod paired;
mod plan;
mod report;
mod run_floor;
mod run_procpool;
mod run_procspawn;
mod run_python;
mod tasks;

use std::path::PathBuf;
use std::time::Duration;

use plan::{Figures, Plan};
use report::Run;

fn main() {
    floor::maybe_run_child();
    procspawn::init();
    procpool::init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let arg = |k: usize| args.get(i + k).map(String::as_str);
        let n = arg(3).and_then(|c| c.parse().ok()).unwrap_or(20_000);
        profile(arg(1).unwrap_or("apply"), arg(2).unwrap_or("procpool"), n);
        return;
    }
    // `--parent-mib N`: the parent holds N MiB (touched) while it measures,
    // as a program with data loaded does (worker start-up must not grow with it).
    let parent_mib = args
        .iter()
        .position(|a| a == "--parent-mib")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(0);
    let ballast = vec![1u8; parent_mib << 20];
    let smoke = flag("--smoke");
    let mut plan = if smoke { Plan::smoke() } else { Plan::full() };
    let with_python = !smoke && !flag("--no-python");
    let with_procspawn = !smoke && !flag("--no-procspawn");
    let write = !smoke && !flag("--no-write");

    let step = |name: &str| eprintln!("procpool-bench: {name}...");
    let fd_limit = run_procspawn::raise_fd_limit();
    step("calibrating the CPU-bound task");
    plan.spin_iters = measure::calibrate_spin(Duration::from_millis(plan.cpu_task_ms));
    plan.spin_lib = run_python::spin_library().display().to_string();

    // Every system is measured once per round and each figure is the median
    // over rounds: the rounds interleave the systems in time, so a burst of
    // load on a shared machine skews one round, not one system's column.
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if smoke { 1 } else { 3 })
        .max(1);
    let mut per_round = Vec::new();
    for round in 1..=rounds {
        if rounds > 1 {
            step(&format!("round {round} of {rounds}"));
        }
        per_round.push(measure_round(&plan, with_python, with_procspawn));
    }
    let figures = median_over_rounds(per_round);

    let run = Run {
        plan,
        fd_limit,
        figures,
    };
    let table = report::table(&run);
    let notes = report::notes(&run);
    let goals = report::goals_text(&report::goals(&run));
    println!("{table}\n{notes}\nGoals (issue 5), from this run:\n\n{goals}");

    if write {
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = crate_dir
            .parent()
            .map_or_else(|| crate_dir.join(".."), PathBuf::from);
        let md = format!(
            "# Benchmarks\n\n\
             Produced by `cargo run --release -p procpool-bench` (see bench/src/main.rs) on a \
             machine with {} CPUs. Each figure is the median over {rounds} rounds of every system (the rounds interleave the systems in time), each round's figure a median over repetitions.\n\n\
             ![procpool against the others](bench/chart.svg)\n\n{table}\n{notes}\n\
             ## Goals\n\n{goals}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        write_or_warn(&root.join("BENCHMARKS.md"), || {
            std::fs::write(root.join("BENCHMARKS.md"), md).map_err(|e| e.to_string())
        });
        let svg = root.join("bench").join("chart.svg");
        write_or_warn(&svg, || chart::draw(&run, &svg));
    }

    drop(ballast);
    if run.figures[0].is_err() || run.figures[1].is_err() {
        eprintln!("procpool-bench: a required system failed (see the notes above)");
        std::process::exit(1);
    }
    if smoke {
        let failures = report::smoke_failures(&run);
        if !failures.is_empty() {
            for f in &failures {
                eprintln!("procpool-bench --smoke: REGRESSION: {f}");
            }
            std::process::exit(1);
        }
        eprintln!("procpool-bench --smoke: no gross regression against the raw floor");
    }
}

/// Measures every system once: [procpool, floor, Python, procspawn].
fn measure_round(
    plan: &Plan,
    with_python: bool,
    with_procspawn: bool,
) -> [Result<Figures, String>; 4] {
    // Each system starts on a settled machine: the previous one's processes
    // may still be exiting (Python's and procspawn's pools tear down lazily),
    // which showed as 3× slower procpool start-ups in later rounds.
    let step = |name: &str| {
        std::thread::sleep(Duration::from_millis(300));
        eprintln!("procpool-bench: {name}...");
    };
    step("raw floor");
    let floor = run_floor::run(plan).map_err(|e| format!("floor failed: {e}"));
    step("procpool");
    let procpool = run_procpool::run(plan).map_err(|e| format!("procpool failed: {e}"));
    let python = if with_python {
        step("Python multiprocessing.Pool");
        run_python::run(plan)
    } else {
        Err("not run (--smoke or --no-python)".into())
    };
    let procspawn = if with_procspawn {
        step("procspawn");
        run_procspawn::run(plan).map_err(|e| format!("procspawn failed: {e}"))
    } else {
        Err("not run (--smoke or --no-procspawn)".into())
    };
    let (mut procpool, mut floor) = (procpool, floor);
    // Their apply latencies again, side by side (see `paired`): these are the
    // figures the table shows.
    step("apply latency, procpool and floor side by side");
    match paired::apply_latency_us(plan) {
        Ok((p, f)) => {
            for (figures, value) in [(&mut procpool, p), (&mut floor, f)] {
                if let Ok(figures) = figures {
                    figures.insert(plan::key::APPLY_US.into(), value);
                }
            }
        }
        Err(e) => eprintln!("procpool-bench: side-by-side apply latency failed: {e}"),
    }
    [procpool, floor, python, procspawn]
}

/// Per system, the median of each figure over the rounds that produced it;
/// a system that failed in every round keeps its first error.
fn median_over_rounds(rounds: Vec<[Result<Figures, String>; 4]>) -> [Result<Figures, String>; 4] {
    std::array::from_fn(|system| {
        let ok: Vec<&Figures> = rounds
            .iter()
            .filter_map(|r| r[system].as_ref().ok())
            .collect();
        if ok.is_empty() {
            return rounds[0][system].clone();
        }
        let keys: std::collections::BTreeSet<&String> = ok.iter().flat_map(|f| f.keys()).collect();
        Ok(keys
            .into_iter()
            .map(|k| {
                let values: Vec<f64> = ok.iter().filter_map(|f| f.get(k).copied()).collect();
                (k.clone(), measure::median(&values))
            })
            .collect())
    })
}

/// One workload alone on one system, for `perf record` / `strace -c`:
/// `apply` (round trips), `async` (a batch of apply_async) or `payload`
/// (64 MiB ByteBuf echoes); `n` is the number of calls, tasks or echoes.
fn profile(workload: &str, system: &str, n: usize) {
    if system == "python" {
        let chunksize = if workload == "map1" { "1" } else { "0" };
        let status = std::process::Command::new("python3")
            .arg(run_python::script())
            .args(["--map-only", &n.to_string(), chunksize])
            .status()
            .expect("python3");
        assert!(status.success(), "python_pool.py --map-only failed");
        return;
    }
    if workload.starts_with("map") && system == "procpool" {
        let pool = procpool::Pool::new(2).expect("pool");
        let run = |items| match workload {
            "map1" => run_procpool::map_items_chunk1(&pool, items),
            _ => run_procpool::map_items(&pool, items),
        };
        run(1000); // warm-up
        let mut rates: Vec<f64> = (0..3)
            .map(|_| n as f64 / measure::timed(|| run(n)).0.as_secs_f64())
            .collect();
        rates.sort_by(f64::total_cmp);
        let chunks = if workload == "map1" {
            "chunksize 1"
        } else {
            "default chunksize"
        };
        println!(
            "procpool map_inc, {chunks}: {n} items, {:.0} items/s (median of 3)",
            rates[1]
        );
        return;
    }
    let floor = system == "floor";
    let pool = (!floor).then(|| procpool::Pool::new(2).expect("pool"));
    let mut child = floor.then(|| floor::FloorChild::start().expect("floor child"));
    let (took, ()) = measure::timed(|| match (workload, &pool, &mut child) {
        ("apply", Some(pool), _) => {
            (0..n as u64).for_each(|i| assert_eq!(tasks::apply_inc(pool, i).unwrap(), i + 1))
        }
        ("apply", None, Some(c)) => {
            (0..n as u64).for_each(|i| assert_eq!(c.inc(i).unwrap(), i + 1))
        }
        ("async", Some(pool), _) => {
            let pending: Vec<_> = (0..n as u64)
                .map(|i| tasks::apply_async_inc(pool, i))
                .collect();
            pending
                .into_iter()
                .for_each(|r| assert!(r.get().unwrap() > 0));
        }
        ("async", None, Some(c)) => assert!(
            c.pipeline((0..n as u64).map(floor::inc_frame).collect())
                .unwrap()
                > 0
        ),
        ("payload", Some(pool), _) => {
            let data = serde_bytes::ByteBuf::from(vec![7u8; 64 << 20]);
            (0..n).for_each(|_| {
                assert_eq!(
                    tasks::apply_echo_buf(pool, data.clone()).unwrap().len(),
                    data.len()
                )
            });
        }
        ("payload", None, Some(c)) => {
            let data = vec![7u8; 64 << 20];
            (0..n).for_each(|_| assert_eq!(c.echo(&data).unwrap(), data.len()));
        }
        _ => panic!("--profile apply|async|payload procpool|floor [N]"),
    });
    println!(
        "{workload} on {system}: {n} in {took:?} ({:.2} µs each)",
        took.as_secs_f64() * 1e6 / n as f64
    );
}

fn write_or_warn(path: &std::path::Path, write: impl FnOnce() -> Result<(), String>) {
    match write() {
        Ok(()) => eprintln!("procpool-bench: wrote {}", path.display()),
        Err(e) => eprintln!("procpool-bench: could not write {}: {e}", path.display()),
    }
}

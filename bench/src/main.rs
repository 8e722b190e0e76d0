//! procpool's benchmark (issues 5 and 11): every workload on procpool, on
//! Python's `multiprocessing.Pool`, on procspawn's `Pool` and on three
//! floors (this binary re-executed, answering bare requests over a socket
//! pair, a pipe pair or a futex on shared memory), all in the same run,
//! printed as tables of medians with tails, procpool's ratio to the lowest
//! floor and to the others, and the issues' goals marked PASS/FAIL.
//!
//! ```text
//! cargo run --release -p procpool-bench            # full run (several minutes);
//!                                                  # writes BENCHMARKS.md and bench/chart.svg
//! cargo run --release -p procpool-bench -- --smoke # CI: seconds, procpool and floors only;
//!                                                  # exits 1 only on gross regressions
//! ```
//!
//! Options: `--smoke`; `--parent-mib N` (the parent holds N MiB while it
//! measures); `--rounds N` (default 3, smoke 1: each figure is the
//! median over N rounds of every system); `--no-python`, `--no-procspawn` (skip a system);
//! `--features redis` adds the distributed rows (procpool through Redis, its
//! floor, Celery and Ray; `--no-redis` skips them; `PROCPOOL_BENCH_PYTHON`
//! names the Python with celery and ray; `--redis-only` measures them alone);
//! `--no-write` (print only); `--profile WORKLOAD SYSTEM [N]` (one workload
//! alone, untabulated, for `perf record` / `strace -c`: see `profile.rs`);
//! `--probe NAME ARGS` (one once-per-run row alone, as a run measures it in
//! a fresh process: see `probe.rs`).
//! Python needs `python3` on PATH; without it the Python column says why it
//! is empty.
//!
//! Start-up order: the floor child check comes first (it must not touch
//! either library), then `procspawn::init()` (a procspawn child serves its
//! call there and exits), then `procpool::init()` (a procpool worker serves
//! there). The two look for different environment variables, so a worker of
//! one passes straight through the other's `init`.

mod callers;
mod chart;
#[cfg(feature = "redis")]
mod distributed;
mod distributed_report;
mod document;
mod figures;
mod floor;
mod goals;
mod latency;
mod measure;
mod once;
mod paired;
mod pin;
mod plan;
mod probe;
mod probe_idle;
mod probe_map;
mod probe_payload;
mod probe_pending;
mod procfs;
mod profile;
mod report;
mod rounds;
mod run_floor;
mod run_procpool;
mod run_procspawn;
mod run_python;
mod smoke;
mod syscalls;
mod systems;
mod tables;
mod tables_memory;
mod tasks;
mod unpinned;

use std::path::{Path, PathBuf};
use std::time::Duration;

use plan::Plan;
use report::Run;
use systems::System;

/// The command line.
struct Options {
    smoke: bool,
    with_python: bool,
    with_procspawn: bool,
    /// The distributed rows (with feature `redis`).
    with_redis: bool,
    write: bool,
    rounds: usize,
    parent_mib: usize,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let flag = |f: &str| args.iter().any(|a| a == f);
        let number = |f: &str| {
            let i = args.iter().position(|a| a == f)?;
            args.get(i + 1)?.parse::<usize>().ok()
        };
        let smoke = flag("--smoke");
        Options {
            smoke,
            with_python: !smoke && !flag("--no-python"),
            with_procspawn: !smoke && !flag("--no-procspawn"),
            with_redis: !smoke && !flag("--no-redis"),
            write: !smoke && !flag("--no-write"),
            rounds: number("--rounds")
                .unwrap_or(if smoke { 1 } else { 3 })
                .max(1),
            parent_mib: number("--parent-mib").unwrap_or(0),
        }
    }
}

fn main() {
    floor::maybe_run_child();
    procspawn::init();
    procpool::init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let arg = |k: usize| args.get(i + k).map(String::as_str);
        let n = arg(3).and_then(|c| c.parse().ok()).unwrap_or(20_000);
        profile::run(arg(1).unwrap_or("apply"), arg(2).unwrap_or("procpool"), n);
        return;
    }
    #[cfg(feature = "redis")]
    if args.first().map(String::as_str) == Some(distributed::floor::ARG) {
        distributed::floor::serve(&args[1]);
    }
    if args.first().map(String::as_str) == Some(probe::ARG) {
        probe::serve(&args[1..]);
        return;
    }
    let options = Options::parse(&args);
    #[cfg(feature = "redis")]
    if args.iter().any(|a| a == "--redis-only") {
        redis_only(&options);
        return;
    }
    // `--parent-mib N`: the parent holds N MiB (touched) while it measures,
    // as a program with data loaded does (worker start-up must not grow with it).
    let ballast = vec![1u8; options.parent_mib << 20];
    let run = measure(&options);
    println!("{}", document::body(&run));
    if options.write {
        write(&run, options.rounds);
    }
    drop(ballast);
    exit_status(&run, options.smoke);
}

/// Calibrates, measures every round and the once-per-run rows.
fn measure(options: &Options) -> Run {
    let step = |name: &str| eprintln!("procpool-bench: {name}...");
    let fd_limit = run_procspawn::raise_fd_limit();
    let mut plan = if options.smoke {
        Plan::smoke()
    } else {
        Plan::full()
    };
    step("calibrating the CPU-bound task");
    plan.spin_iters = measure::calibrate_spin(Duration::from_millis(plan.cpu_task_ms));
    plan.spin_lib = run_python::spin_library().display().to_string();

    let mut per_round = Vec::new();
    for round in 1..=options.rounds {
        if options.rounds > 1 {
            step(&format!("round {round} of {}", options.rounds));
        }
        per_round.push(rounds::measure(
            &plan,
            options.with_python,
            options.with_procspawn,
        ));
    }
    let mut figures = rounds::median(&per_round);
    let once = once::measure(&plan, options.with_python, options.with_procspawn);
    for (system, extra) in figures.iter_mut().zip(once) {
        if let Ok(f) = system {
            f.extend(extra);
        }
    }
    Run {
        distributed: distributed(&plan, options),
        plan,
        fd_limit,
        figures,
    }
}

/// The distributed rows: with feature `redis`, not in smoke runs, unless
/// `--no-redis`.
fn distributed(plan: &Plan, options: &Options) -> distributed_report::Distributed {
    if options.smoke || !options.with_redis {
        return None;
    }
    #[cfg(feature = "redis")]
    return Some(distributed::measure(plan, options.rounds));
    #[cfg(not(feature = "redis"))]
    {
        let _ = plan;
        None
    }
}

/// `--redis-only`: the distributed rows alone, printed (nothing written).
#[cfg(feature = "redis")]
fn redis_only(options: &Options) {
    let mut plan = Plan::full();
    plan.spin_iters = measure::calibrate_spin(Duration::from_millis(plan.cpu_task_ms));
    let d = Some(distributed::measure(&plan, options.rounds));
    println!("{}", distributed_report::section(&d));
    println!("{}", goals::text(&distributed_report::goals(&d)));
}

/// BENCHMARKS.md at the repository root and bench/chart.svg.
fn write(run: &Run, rounds: usize) {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .parent()
        .map_or_else(|| crate_dir.join(".."), PathBuf::from);
    let md = root.join("BENCHMARKS.md");
    write_or_warn(&md, || {
        std::fs::write(&md, document::markdown(run, rounds)).map_err(|e| e.to_string())
    });
    let svg = root.join("bench").join("chart.svg");
    write_or_warn(&svg, || chart::draw(run, &svg));
}

fn write_or_warn(path: &Path, write: impl FnOnce() -> Result<(), String>) {
    match write() {
        Ok(()) => eprintln!("procpool-bench: wrote {}", path.display()),
        Err(e) => eprintln!("procpool-bench: could not write {}: {e}", path.display()),
    }
}

/// Exits 1 if procpool or every floor failed, or (smoke) on a gross regression.
fn exit_status(run: &Run, smoke: bool) {
    let failed = |s: System| run.figures[s.index()].is_err();
    if failed(System::Procpool) || System::FLOORS.iter().all(|&f| failed(f)) {
        eprintln!("procpool-bench: a required system failed (see the notes above)");
        std::process::exit(1);
    }
    if smoke {
        let failures = smoke::failures(run);
        if !failures.is_empty() {
            for f in &failures {
                eprintln!("procpool-bench --smoke: REGRESSION: {f}");
            }
            std::process::exit(1);
        }
        eprintln!("procpool-bench --smoke: no gross regression against the lowest floor");
    }
}

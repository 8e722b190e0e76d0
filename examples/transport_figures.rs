//! Figures of the local transport and worker start-up (issue 11), measured
//! from a real program the way a user sees them:
//!
//! - `startup`: a pool of 2, 8 and 32 workers, from `Pool::new` to every
//!   worker ready (median and range of several pools, one after the other);
//! - `payload`: an identity task on a `Vec<u8>` of 64 MiB, 256 MiB and 1 GiB
//!   on a default pool: MB/s (2 × size / round trip), the parent's peak
//!   resident memory over what it held before the payload was made, and the
//!   worker's resident memory 1 s after the call;
//! - `latency`: `apply` of a trivial task, p50 / p99 in µs, pinned to one
//!   CPU and in 5 freshly started unpinned pools;
//! - `idle`: the CPU used by an idle pool of 4 over 10 s (parent and workers).
//!
//! ```sh
//! cargo run --release --example transport_figures              # everything
//! cargo run --release --example transport_figures -- payload   # one part
//! ```
//!
//! Linux only (reads /proc). The machine is shared: compare within one run.

use std::time::{Duration, Instant};

use procpool::{pool_task, Pool};

#[pool_task]
fn echo(data: Vec<u8>) -> Vec<u8> {
    data
}

#[pool_task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[pool_task]
fn pid() -> u32 {
    std::process::id()
}

fn main() {
    procpool::init();
    let parts: Vec<String> = std::env::args().skip(1).collect();
    let wants = |name: &str| parts.is_empty() || parts.iter().any(|p| p == name);
    if wants("startup") {
        startup();
    }
    if wants("payload") {
        payload();
    }
    if wants("latency") {
        latency();
    }
    if wants("idle") {
        idle();
    }
}

fn startup() {
    println!("## start-up: Pool::new(n) until every worker is ready, ms");
    println!();
    println!("| workers | median | min | max | runs |");
    println!("|---:|---:|---:|---:|---:|");
    for (n, runs) in [(2usize, 9usize), (8, 7), (32, 5)] {
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(100));
                let begun = Instant::now();
                let pool = Pool::new(n).expect("pool");
                let took = begun.elapsed().as_secs_f64() * 1e3;
                drop(pool);
                took
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | {runs} |",
            ms[ms.len() / 2],
            ms[0],
            ms[ms.len() - 1]
        );
    }
    println!();
}

/// A field of /proc/PID/status, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn payload() {
    println!("## Vec<u8> round trip on a default pool of 1 worker");
    println!();
    println!(
        "MB/s = 2 × size / round trip: the first call on a fresh pool, then the best of 3 more."
    );
    println!("Peak: the parent's VmHWM during the first call over its VmRSS before the payload was made.");
    println!();
    println!("| size | MB/s first | MB/s best of 3 | parent peak over baseline, MiB | limit 2N + 16 MiB | worker RSS 1 s later, MiB |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for mib in [64usize, 256, 1024] {
        let len = mib << 20;
        let mbs = |took: Duration| 2.0 * len as f64 / took.as_secs_f64() / 1e6;
        // A fresh pool each time, so the worker's memory is this size's own.
        let pool = Pool::new(1).expect("pool");
        let worker = apply_pid(&pool).expect("pid");
        let me = std::process::id();
        let baseline = status_mib(me, "VmRSS");
        let data = vec![7u8; len];
        // VmHWM := VmRSS (Linux 4.0+).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let begun = Instant::now();
        let result = apply_echo(&pool, data);
        let first = begun.elapsed();
        let peak = status_mib(me, "VmHWM") - baseline;
        let limit = 2 * mib + 16;
        match result {
            Ok(back) => {
                assert_eq!(back.len(), len);
                drop(back);
                let best = (0..3)
                    .map(|_| {
                        let data = vec![7u8; len];
                        let begun = Instant::now();
                        let back = apply_echo(&pool, data).expect("echo");
                        let took = begun.elapsed();
                        assert_eq!(back.len(), len);
                        mbs(took)
                    })
                    .fold(0.0, f64::max);
                std::thread::sleep(Duration::from_secs(1));
                let rss = status_mib(worker, "VmRSS");
                println!(
                    "| {mib} MiB | {:.0} | {best:.0} | {peak:.0} | {limit} | {rss:.1} |",
                    mbs(first)
                );
            }
            Err(e) => println!("| {mib} MiB | failed: {e} | – | {peak:.0} | {limit} | – |"),
        }
    }
    println!();
}

fn pin_to_cpu0(pinned: bool) {
    // SAFETY: cpu_set_t is plain bits; sched_setaffinity reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let cpus = if pinned {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .max(2)
        };
        for cpu in 0..cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// p50 and p99 of `calls` applies on a fresh pool of 1, in µs.
fn apply_latency(calls: usize) -> (f64, f64) {
    let pool = Pool::new(1).expect("pool");
    for i in 0..500 {
        apply_inc(&pool, i).unwrap();
    }
    let mut us: Vec<f64> = (0..calls as u64)
        .map(|i| {
            let begun = Instant::now();
            apply_inc(&pool, i).unwrap();
            begun.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    (us[us.len() / 2], us[us.len() * 99 / 100])
}

fn latency() {
    println!("## apply latency of x + 1, µs (10,000 calls after 500)");
    println!();
    println!("| placement | p50 | p99 |");
    println!("|---|---:|---:|");
    pin_to_cpu0(true);
    let (p50, p99) = apply_latency(10_000);
    println!("| pinned to CPU 0 | {p50:.2} | {p99:.2} |");
    pin_to_cpu0(false);
    let mut p50s = Vec::new();
    for pool in 1..=5 {
        let (p50, p99) = apply_latency(10_000);
        println!("| unpinned, fresh pool {pool} | {p50:.2} | {p99:.2} |");
        p50s.push(p50);
    }
    p50s.sort_by(f64::total_cmp);
    println!(
        "| unpinned p50 min / median / max | {:.2} / {:.2} / {:.2} | |",
        p50s[0], p50s[2], p50s[4]
    );
    println!();
}

/// CPU time of every thread of process `pid`, in seconds (schedstat: ns).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// This process's descendants (children, their children, ...).
fn descendants() -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = vec![std::process::id()];
    let mut at = 0;
    while at < out.len() {
        let parent = out[at];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        at += 1;
    }
    out.remove(0);
    out
}

fn idle() {
    let secs = 10;
    let pool = Pool::new(4).expect("pool");
    for i in 0..100 {
        apply_inc(&pool, i).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let procs = descendants();
    let me = std::process::id();
    let before: f64 = cpu_seconds(me) + procs.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    std::thread::sleep(Duration::from_secs(secs));
    let after: f64 = cpu_seconds(me) + procs.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    println!(
        "## idle pool of 4 for {secs} s: {:.4}% of one CPU (parent and {} other processes)",
        (after - before) / secs as f64 * 100.0,
        procs.len()
    );
    drop(pool);
}

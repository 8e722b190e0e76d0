//! Probe `payload SYSTEM MIB REPS WORKERS`: round trips of a MIB MiB
//! `Vec<u8>` (identity task) on a default procpool pool of WORKERS, or on
//! the socket floor (SYSTEM `socket`). Figures: MB/s (2 × size / time,
//! median of the REPS after the first, a warm-up), the parent's peak RSS
//! over its baseline (input and result included: at least 2 × size), the
//! worker's peak, and the worker's RSS 1 s after the last call. A round trip that fails makes
//! every figure "fails: <why>".

use std::time::Duration;

use procpool::Pool;

use crate::figures::{failure_name, key, Figures};
use crate::floor::stream::{Kind, StreamChild};
use crate::floor::RoundTrip;
use crate::measure::{self, timed};
use crate::procfs;
use crate::run_procpool::worker_pids;
use crate::tasks::{apply_echo_vec, apply_inc};

pub fn measure(system: &str, mib: usize, reps: usize, workers: usize) -> Figures {
    let mut f = Figures::new();
    let measured = match system {
        "procpool" => procpool_round_trips(mib, reps, workers),
        "socket" => floor_round_trips(mib, reps),
        other => Err(format!("no payload probe for {other}")),
    };
    match measured {
        Ok(figures) => {
            for (what, v) in key::BULK_FIGURES.iter().zip(figures) {
                f.insert(key::bulk(mib, what), v);
            }
        }
        Err(why) => {
            for what in key::BULK_FIGURES {
                f.fail(key::bulk(mib, what), why.clone());
            }
        }
    }
    f
}

/// `reps` round trips through `echo`, then the figures in
/// [`key::BULK_FIGURES`] order, the worker being the process `pids` holds
/// with the highest peak.
fn round_trips(
    mib: usize,
    reps: usize,
    pids: &[u32],
    mut echo: impl FnMut(Vec<u8>) -> Result<usize, String>,
) -> Result<[f64; 4], String> {
    let baseline = procfs::reset_own_peak().ok_or("cannot reset VmHWM")?;
    let mut rates = Vec::new();
    for rep in 0..reps.max(1) {
        let data = vec![7u8; mib << 20];
        let (took, len) = timed(|| echo(data));
        if len? != mib << 20 {
            return Err("the result has another length".into());
        }
        // The first round trip of a fresh process is a warm-up (its pages
        // are touched for the first time), unless it is the only one.
        if rep > 0 || reps <= 1 {
            rates.push(measure::round_trip_mbs(mib << 20, took));
        }
    }
    let parent_peak = procfs::own_peak_mib().ok_or("no VmHWM")? - baseline;
    let peaks = pids
        .iter()
        .map(|&p| (p, procfs::peak_rss_mib(p).unwrap_or(0.0)));
    let (worker, worker_peak) = peaks
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or("no worker")?;
    std::thread::sleep(Duration::from_secs(1));
    let idle = procfs::rss_mib(worker).ok_or("the worker is gone")?;
    Ok([measure::median(&rates), parent_peak, worker_peak, idle])
}

fn procpool_round_trips(mib: usize, reps: usize, workers: usize) -> Result<[f64; 4], String> {
    let pool = Pool::new(workers).map_err(|e| failure_name(&e))?;
    let pids = worker_pids(&pool).map_err(|e| failure_name(&e))?;
    apply_inc(&pool, 1).map_err(|e| failure_name(&e))?;
    round_trips(mib, reps, &pids, |data| {
        apply_echo_vec(&pool, data)
            .map(|out| out.len())
            .map_err(|e| failure_name(&e))
    })
}

fn floor_round_trips(mib: usize, reps: usize) -> Result<[f64; 4], String> {
    let mut child = StreamChild::start(Kind::Socket).map_err(|e| e.to_string())?;
    child.inc(1).map_err(|e| e.to_string())?;
    let pid = child.pid();
    round_trips(mib, reps, &[pid], |data| {
        child.echo(&data).map_err(|e| e.to_string())
    })
}

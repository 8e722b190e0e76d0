//! Probe `map ITEMS REPS WORKERS`: a map of ITEMS trivial u64 items
//! (x + 1) over WORKERS workers with the default chunking, on procpool and
//! on the socket and pipe floors (one frame per chunk) in the same fresh
//! process, their repetitions rotating (who goes first rotates), so all see
//! the same moments of a shared machine's load. Figures: the median items/s
//! of each (the floors' under `socket.` and `pipe.`), the median of
//! procpool's ÷ each floor's over the repetitions (each floor's under its
//! prefix; procpool's own `map_big_vs_floor` is the socket floor's, the
//! figure issue 11's goal was set against), and procpool's parent peak RSS
//! over its RSS just before each map (the highest), against the size of
//! the output (ITEMS × 8 bytes).

use procpool::Pool;

use crate::figures::{failure_name, key, Figures};
use crate::floor::stream::{Kind, StreamChild};
use crate::measure::{self, timed};
use crate::procfs;
use crate::run_floor;
use crate::systems::System;
use crate::tasks::map_inc;

/// The floors measured, and the prefix of each one's figures (see
/// [`Figures::split_prefixed`]).
pub const FLOORS: [(System, Kind, &str); 2] = [
    (System::Socket, Kind::Socket, "socket."),
    (System::Pipe, Kind::Pipe, "pipe."),
];

pub fn measure(items: usize, reps: usize, workers: usize) -> Figures {
    let mut f = Figures::new();
    if let Err(why) = both(items, reps, workers, &mut f) {
        f.fail(key::MAP_BIG_IPS, why.clone());
        f.fail(key::MAP_BIG_PEAK_MIB, why);
    }
    f
}

fn both(items: usize, reps: usize, workers: usize, f: &mut Figures) -> Result<(), String> {
    let pool = Pool::new(workers).map_err(|e| failure_name(&e))?;
    let mut floors = FLOORS
        .iter()
        .map(|&(_, kind, _)| {
            (0..workers)
                .map(|_| StreamChild::start(kind))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    map_inc(&pool, 0..1000u64).map_err(|e| failure_name(&e))?;
    for children in &mut floors {
        run_floor::map_ips(children, 1000, 1);
    }
    let mut ours = Vec::new();
    let mut theirs = vec![Vec::new(); floors.len()];
    let mut peak = 0f64;
    let turns = floors.len() + 1;
    for rep in 0..reps.max(1) {
        for turn in 0..turns {
            match (rep + turn) % turns {
                0 => {
                    let (rate, rep_peak) = procpool_map(&pool, items)?;
                    ours.push(rate);
                    peak = peak.max(rep_peak);
                }
                k => theirs[k - 1].push(run_floor::map_ips(&mut floors[k - 1], items, 1)),
            }
        }
    }
    f.insert(key::MAP_BIG_IPS, measure::median(&ours));
    f.insert(key::MAP_BIG_PEAK_MIB, peak);
    f.insert(
        key::MAP_BIG_OUTPUT_MIB,
        (items * 8) as f64 / (1 << 20) as f64,
    );
    for (&(system, _, prefix), rates) in FLOORS.iter().zip(&theirs) {
        f.insert(
            format!("{prefix}{}", key::MAP_BIG_IPS),
            measure::median(rates),
        );
        let ratios: Vec<f64> = ours.iter().zip(rates).map(|(o, fl)| o / fl).collect();
        let ratio = measure::median(&ratios);
        f.insert(format!("{prefix}{}", key::MAP_BIG_VS_FLOOR), ratio);
        if system == System::Socket {
            f.insert(key::MAP_BIG_VS_FLOOR, ratio);
        }
    }
    Ok(())
}

/// One procpool map: items/s, and the peak RSS over the RSS before it (MiB).
fn procpool_map(pool: &Pool, items: usize) -> Result<(f64, f64), String> {
    let baseline = procfs::reset_own_peak().ok_or("cannot reset VmHWM")?;
    let (took, out) = timed(|| map_inc(pool, 0..items as u64));
    let out = out.map_err(|e| failure_name(&e))?;
    if out.len() != items || out.last().copied() != Some(items as u64) {
        return Err("wrong results".into());
    }
    let peak = procfs::own_peak_mib().ok_or("no VmHWM")? - baseline;
    Ok((items as f64 / took.as_secs_f64(), peak))
}

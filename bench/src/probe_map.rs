//! Probe `map ITEMS REPS WORKERS`: a map of ITEMS trivial u64 items
//! (x + 1) over WORKERS workers with the default chunking, on procpool and
//! on the socket floor (one frame per chunk) in the same fresh process,
//! their repetitions alternating (who goes first rotates), so both see the
//! same moments of a shared machine's load. Figures: the median items/s of
//! each (the floor's under `socket.`), the median of procpool's ÷ the
//! floor's over the pairs of adjacent repetitions, and procpool's parent peak RSS over
//! its RSS just before each map (the highest), against the size of the
//! output (ITEMS × 8 bytes).

use procpool::Pool;

use crate::figures::{failure_name, key, Figures};
use crate::floor::stream::{Kind, StreamChild};
use crate::measure::{self, timed};
use crate::procfs;
use crate::run_floor;
use crate::tasks::map_inc;

/// The prefix of the floor's figures (see [`Figures::split_prefixed`]).
pub const FLOOR_PREFIX: &str = "socket.";

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
    let mut children = (0..workers)
        .map(|_| StreamChild::start(Kind::Socket))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    map_inc(&pool, 0..1000u64).map_err(|e| failure_name(&e))?;
    run_floor::map_ips(&mut children, 1000, 1);
    let (mut ours, mut floor, mut peak) = (Vec::new(), Vec::new(), 0f64);
    for rep in 0..reps.max(1) {
        for turn in 0..2 {
            if (rep + turn) % 2 == 0 {
                let (rate, rep_peak) = procpool_map(&pool, items)?;
                ours.push(rate);
                peak = peak.max(rep_peak);
            } else {
                floor.push(run_floor::map_ips(&mut children, items, 1));
            }
        }
    }
    f.insert(key::MAP_BIG_IPS, measure::median(&ours));
    f.insert(key::MAP_BIG_PEAK_MIB, peak);
    f.insert(
        key::MAP_BIG_OUTPUT_MIB,
        (items * 8) as f64 / (1 << 20) as f64,
    );
    f.insert(
        format!("{FLOOR_PREFIX}{}", key::MAP_BIG_IPS),
        measure::median(&floor),
    );
    let pairs: Vec<f64> = ours.iter().zip(&floor).map(|(o, fl)| o / fl).collect();
    f.insert(key::MAP_BIG_VS_FLOOR, measure::median(&pairs));
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

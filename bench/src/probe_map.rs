//! Probe `map SYSTEM ITEMS REPS WORKERS`: a map of ITEMS trivial u64 items
//! (x + 1) over WORKERS workers with the default chunking, the median
//! items/s of REPS; on procpool also the parent's peak RSS over its
//! baseline against the size of the output (ITEMS × 8 bytes). SYSTEM
//! `socket`: the socket floor's map (one frame per chunk), items/s only.

use procpool::Pool;

use crate::figures::{failure_name, key, Figures};
use crate::floor::stream::{Kind, StreamChild};
use crate::measure::{self, timed};
use crate::procfs;
use crate::run_floor;
use crate::tasks::map_inc;

pub fn measure(system: &str, items: usize, reps: usize, workers: usize) -> Figures {
    let mut f = Figures::new();
    let measured = match system {
        "procpool" => procpool_map(items, reps, workers, &mut f),
        "socket" => floor_map(items, reps, workers, &mut f),
        other => Err(format!("no map probe for {other}")),
    };
    if let Err(why) = measured {
        f.fail(key::MAP_BIG_IPS, why.clone());
        f.fail(key::MAP_BIG_PEAK_MIB, why);
    }
    f
}

fn procpool_map(items: usize, reps: usize, workers: usize, f: &mut Figures) -> Result<(), String> {
    let pool = Pool::new(workers).map_err(|e| failure_name(&e))?;
    map_inc(&pool, 0..1000u64).map_err(|e| failure_name(&e))?;
    let baseline = procfs::reset_own_peak().ok_or("cannot reset VmHWM")?;
    let mut rates = Vec::new();
    for _ in 0..reps.max(1) {
        let (took, out) = timed(|| map_inc(&pool, 0..items as u64));
        let out = out.map_err(|e| failure_name(&e))?;
        if out.len() != items || out.last().copied() != Some(items as u64) {
            return Err("wrong results".into());
        }
        rates.push(items as f64 / took.as_secs_f64());
    }
    let peak = procfs::own_peak_mib().ok_or("no VmHWM")? - baseline;
    f.insert(key::MAP_BIG_IPS, measure::median(&rates));
    f.insert(key::MAP_BIG_PEAK_MIB, peak);
    f.insert(
        key::MAP_BIG_OUTPUT_MIB,
        (items * 8) as f64 / (1 << 20) as f64,
    );
    Ok(())
}

fn floor_map(items: usize, reps: usize, workers: usize, f: &mut Figures) -> Result<(), String> {
    let mut children = (0..workers)
        .map(|_| StreamChild::start(Kind::Socket))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    f.insert(
        key::MAP_BIG_IPS,
        run_floor::map_ips(&mut children, items, reps),
    );
    Ok(())
}

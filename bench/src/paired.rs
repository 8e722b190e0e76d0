//! `apply` latency of procpool and of the raw floor measured side by side:
//! short blocks of calls alternate between the two, so both see the same
//! moments of a shared machine's load. Measured one after the other, a burst
//! of load (or an idle vCPU's slow wake-ups) lands on one system only and
//! the ratio means nothing.
//!
//! Where the scheduler places a parent and its child (same CPU or not)
//! changes a round trip's cost about threefold on this virtual machine, and
//! the placement sticks for the life of the processes: unpinned, either
//! system's figure jumps between about 12 and 35 µs from one run to the next.
//! So both are measured with the caller, the pool's threads, its workers and
//! the floor's child all pinned to one CPU (children inherit the pin): the
//! same placement for both, and the figure is the software's cost.

use std::io;

use procpool::Pool;

use crate::floor::FloorChild;
use crate::measure;
use crate::plan::Plan;
use crate::tasks::apply_inc;

/// Blocks per system; each holds `apply_calls / BLOCKS` calls.
const BLOCKS: usize = 20;

/// Fresh pool-and-floor pairs measured; the figures are their medians.
const INSTANCES: usize = 3;

/// Median round trip of a trivial task in µs, pinned to one CPU:
/// (procpool, floor).
pub fn apply_latency_us(plan: &Plan) -> io::Result<(f64, f64)> {
    let (mut p, mut f) = (Vec::new(), Vec::new());
    for _ in 0..INSTANCES {
        let pin = Pin::to_cpu(0)?;
        let measured = one_instance(plan);
        drop(pin);
        let (pi, fi) = measured?;
        eprintln!("procpool-bench: side-by-side apply: procpool {pi:.1} µs, floor {fi:.1} µs");
        p.push(pi);
        f.push(fi);
    }
    Ok((measure::median(&p), measure::median(&f)))
}

/// Pins the calling thread (and what it starts from now on) to one CPU
/// until dropped, then restores its previous CPU set.
pub struct Pin {
    previous: libc::cpu_set_t,
}

impl Pin {
    pub fn to_cpu(cpu: usize) -> io::Result<Pin> {
        // SAFETY: cpu_set_t is a plain bit array: all-zero is the empty set.
        let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: pid 0 is the calling thread; `previous` is a valid,
        // exclusively borrowed cpu_set_t of `size` bytes for the kernel to fill.
        if unsafe { libc::sched_getaffinity(0, size, &mut previous) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above, all-zero is the empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU_SET writes bit `cpu` (< CPU_SETSIZE) of a valid set.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: pid 0 is the calling thread; `one` is a valid cpu_set_t.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pin { previous })
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: pid 0 is the calling thread; `previous` is the valid set
        // the kernel gave us in `to_cpu`.
        unsafe { libc::sched_setaffinity(0, size, &self.previous) };
    }
}

fn one_instance(plan: &Plan) -> io::Result<(f64, f64)> {
    let pool = Pool::new(plan.processes).map_err(io::Error::other)?;
    let mut floor = (0..plan.processes)
        .map(|_| FloorChild::start())
        .collect::<io::Result<Vec<_>>>()?;
    let child = &mut floor[0];
    let mut procpool_call = |i: u64| {
        assert_eq!(apply_inc(&pool, i).expect("apply"), i + 1);
    };
    let mut floor_call = |i: u64| {
        assert_eq!(child.inc(i).expect("floor inc"), i + 1);
    };
    for i in 0..plan.apply_warmup as u64 {
        procpool_call(i);
        floor_call(i);
    }
    let per_block = (plan.apply_calls / BLOCKS).max(1);
    let (mut p, mut f) = (Vec::new(), Vec::new());
    for block in 0..BLOCKS {
        // Alternate which system goes first, so neither always follows the other.
        let run = |samples: &mut Vec<f64>, call: &mut dyn FnMut(u64)| {
            samples.extend(measure::call_times_us(per_block, &mut *call));
        };
        if block % 2 == 0 {
            run(&mut p, &mut procpool_call);
            run(&mut f, &mut floor_call);
        } else {
            run(&mut f, &mut floor_call);
            run(&mut p, &mut procpool_call);
        }
    }
    Ok((measure::median(&p), measure::median(&f)))
}

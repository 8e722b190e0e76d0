//! `apply` latency of procpool and of the three floors measured side by
//! side, pinned: short blocks of calls rotate between the four, so all see
//! the same moments of a shared machine's load. Measured one after the
//! other, a burst of load (or an idle vCPU's slow wake-ups) lands on one
//! system only and the ratio means nothing.
//!
//! Where the scheduler places a parent and its child (same CPU or not)
//! changes a round trip's cost several times over on this virtual machine,
//! and the placement sticks for the life of the processes (see
//! [`crate::unpinned`] for that lottery, measured over fresh pools). Here
//! the caller, the pool's threads, its workers and the floors' children are
//! all pinned to one CPU (children inherit the pin): the same placement for
//! all, and the figure is the software's cost.

use std::io;

use procpool::Pool;

use crate::floor;
use crate::latency::{self, Tails};
use crate::pin::Pin;
use crate::plan::Plan;
use crate::systems::System;
use crate::tasks::apply_inc;

/// The systems measured side by side, in this order.
pub const SYSTEMS: [System; 4] = [
    System::Procpool,
    System::Socket,
    System::Pipe,
    System::Futex,
];

/// Blocks per system; each holds `apply_calls / BLOCKS` calls.
const BLOCKS: usize = 20;

/// Fresh pool-and-floors sets measured per round; each percentile is the
/// median over them.
pub const INSTANCES: usize = 3;

/// The tails of a trivial task's round trip, pinned to one CPU, for each of
/// [`SYSTEMS`].
pub fn apply_latency(plan: &Plan) -> io::Result<[Tails; 4]> {
    let mut sets: [Vec<Tails>; 4] = Default::default();
    for _ in 0..INSTANCES {
        let pin = Pin::to_first_cpu()?;
        let measured = one_instance(plan);
        drop(pin);
        let measured = measured?;
        let line: Vec<String> = SYSTEMS
            .iter()
            .zip(&measured)
            .map(|(s, t)| format!("{} {:.1}/{:.1} µs", s.short(), t.p50, t.p99))
            .collect();
        eprintln!("procpool-bench: pinned apply p50/p99: {}", line.join(", "));
        for (set, t) in sets.iter_mut().zip(measured) {
            set.push(t);
        }
    }
    Ok(sets.map(|set| Tails::median_of(&set)))
}

fn one_instance(plan: &Plan) -> io::Result<[Tails; 4]> {
    let pool = Pool::new(plan.processes).map_err(io::Error::other)?;
    let mut floors = System::FLOORS.map(floor::start);
    let mut calls: Vec<Box<dyn FnMut(u64) + '_>> = vec![Box::new(|i: u64| {
        assert_eq!(apply_inc(&pool, i).expect("apply"), i + 1);
    })];
    for child in &mut floors {
        let child = child
            .as_mut()
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        calls.push(Box::new(move |i: u64| {
            assert_eq!(child.inc(i).expect("floor inc"), i + 1);
        }));
    }
    for call in &mut calls {
        (0..plan.apply_warmup as u64).for_each(&mut *call);
    }
    let per_block = (plan.apply_calls / BLOCKS).max(1);
    let mut samples: [Vec<f64>; 4] = Default::default();
    for block in 0..BLOCKS {
        // Rotate which system goes first, so none always follows another.
        for k in 0..SYSTEMS.len() {
            let s = (block + k) % SYSTEMS.len();
            samples[s].extend(latency::call_times_us(per_block, &mut calls[s]));
        }
    }
    Ok(samples.map(|s| Tails::of(&s)))
}

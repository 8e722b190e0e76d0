//! `apply` latency unpinned, over freshly started pools: where the scheduler
//! places a caller and its worker (same CPU or not) changes a round trip
//! several times over on this virtual machine and sticks for the life of
//! the processes, so one pool's figure is a lottery ticket. Each system
//! (procpool, the three floors, Python) gets `unpinned_pools` fresh
//! instances (procspawn too); instance i of every system runs before instance i + 1 of any
//! (in an order that rotates), so all draw from the same moments of load.

use procpool::Pool;

use crate::figures::Figures;
use crate::floor;
use crate::latency::{self, Tails};
use crate::plan::Plan;
use crate::run_python;
use crate::systems::System;
use crate::tasks::{apply_inc, plain_inc};

/// Per system, the tails of each fresh instance (or why it failed).
pub fn apply_latency(
    plan: &Plan,
    with_python: bool,
    with_procspawn: bool,
) -> Vec<(System, Result<Vec<Tails>, String>)> {
    let mut systems = vec![
        System::Procpool,
        System::Socket,
        System::Pipe,
        System::Futex,
    ];
    if with_python {
        systems.push(System::Python);
    }
    if with_procspawn {
        systems.push(System::Procspawn);
    }
    let mut results: Vec<(System, Result<Vec<Tails>, String>)> =
        systems.iter().map(|&s| (s, Ok(Vec::new()))).collect();
    for i in 0..plan.unpinned_pools {
        for k in 0..systems.len() {
            let s = (i + k) % systems.len();
            let (system, result) = &mut results[s];
            let Ok(sets) = result else { continue };
            match one_instance(plan, *system) {
                Ok(t) => sets.push(t),
                Err(e) => *result = Err(e),
            }
        }
    }
    for (system, result) in &results {
        if let Ok(sets) = result {
            let p50s: Vec<String> = sets.iter().map(|t| format!("{:.1}", t.p50)).collect();
            eprintln!(
                "procpool-bench: unpinned apply p50 of {}: {} µs",
                system.short(),
                p50s.join(", ")
            );
        }
    }
    results
}

/// One fresh pool (or floor pair, or Python or procspawn pool): `apply_warmup` calls,
/// then the tails of `apply_calls`.
fn one_instance(plan: &Plan, system: System) -> Result<Tails, String> {
    match system {
        System::Procpool => {
            let pool = Pool::new(plan.processes).map_err(|e| e.to_string())?;
            Ok(latency::measure(plan.apply_warmup, plan.apply_calls, |i| {
                assert_eq!(apply_inc(&pool, i).expect("apply"), i + 1);
            }))
        }
        System::Python => run_python::apply_latency(plan),
        System::Procspawn => {
            let pool = procspawn::Pool::new(plan.processes).map_err(|e| e.to_string())?;
            let tails = latency::measure(plan.apply_warmup, plan.apply_calls, |i| {
                assert_eq!(pool.spawn(i, plain_inc).join().expect("spawn"), i + 1);
            });
            pool.shutdown();
            Ok(tails)
        }
        floor_system => {
            let mut child = floor::start(floor_system).map_err(|e| e.to_string())?;
            Ok(latency::measure(plan.apply_warmup, plan.apply_calls, |i| {
                assert_eq!(child.inc(i).expect("floor inc"), i + 1);
            }))
        }
    }
}

/// Records each system's unpinned figures (see [`latency::insert_unpinned`]).
pub fn insert(results: Vec<(System, Result<Vec<Tails>, String>)>, figures: &mut [Figures; 6]) {
    for (system, result) in results {
        let f = &mut figures[system.index()];
        match result {
            Ok(sets) if !sets.is_empty() => latency::insert_unpinned(f, &sets),
            Ok(_) => {}
            Err(why) => {
                for pct in latency::PERCENTILES {
                    f.fail(latency::unpinned_key(pct, "max"), format!("fails: {why}"));
                }
            }
        }
    }
}

//! One round: every system measured once, one after the other. Each figure
//! of the run is the median over rounds, so a burst of load on a shared
//! machine skews one round, not one system's column.

use std::time::Duration;

use crate::figures::{self, Figures};
use crate::latency;
use crate::paired;
use crate::plan::Plan;
use crate::systems::System;
use crate::{run_floor, run_procpool, run_procspawn, run_python};

/// Every system's figures from one round, by [`System::index`].
pub type Round = [Result<Figures, String>; 6];

/// Measures every system once.
pub fn measure(plan: &Plan, with_python: bool, with_procspawn: bool) -> Round {
    // Each system starts on a settled machine: the previous one's processes
    // may still be exiting (Python's and procspawn's pools tear down lazily),
    // which showed as 3× slower procpool start-ups in later rounds.
    let step = |name: &str| {
        std::thread::sleep(Duration::from_millis(300));
        eprintln!("procpool-bench: {name}...");
    };
    let mut round: Round = std::array::from_fn(|_| Err("not run".to_string()));
    for floor in System::FLOORS {
        step(floor.name());
        round[floor.index()] = run_floor::run(plan, floor).map_err(|e| format!("failed: {e}"));
    }
    step("procpool");
    round[System::Procpool.index()] = run_procpool::run(plan).map_err(|e| format!("failed: {e}"));
    round[System::Python.index()] = if with_python {
        step("Python multiprocessing.Pool");
        run_python::run(plan)
    } else {
        Err("not run (--smoke or --no-python)".into())
    };
    round[System::Procspawn.index()] = if with_procspawn {
        step("procspawn");
        run_procspawn::run(plan).map_err(|e| format!("failed: {e}"))
    } else {
        Err("not run (--smoke or --no-procspawn)".into())
    };
    step("apply latency pinned, procpool and the floors side by side");
    match paired::apply_latency(plan) {
        Ok(tails) => {
            for (system, t) in paired::SYSTEMS.iter().zip(tails) {
                if let Ok(f) = &mut round[system.index()] {
                    latency::insert_pinned(f, t);
                }
            }
        }
        Err(e) => eprintln!("procpool-bench: side-by-side apply latency failed: {e}"),
    }
    round
}

/// Per system, the median of each figure over the rounds that produced it;
/// a system that failed in every round keeps its first error.
pub fn median(rounds: &[Round]) -> Round {
    std::array::from_fn(|system| {
        let ok: Vec<&Figures> = rounds
            .iter()
            .filter_map(|r| r[system].as_ref().ok())
            .collect();
        if ok.is_empty() {
            return rounds[0][system].clone();
        }
        Ok(figures::median_over_rounds(&ok))
    })
}

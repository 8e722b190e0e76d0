//! The measurements made once per run rather than once per round: those
//! that need fresh pools or fresh processes of their own (the unpinned
//! placement lottery, memory peaks, the largest workloads, the idle pool).

use crate::figures::{key, Figures};
use crate::plan::Plan;
use crate::systems::System;
use crate::{probe, probe_map};
use crate::{syscalls, unpinned};

/// Once-per-run figures, by [`System::index`].
pub type Once = [Figures; 6];

fn step(name: &str) {
    eprintln!("procpool-bench: {name}...");
}

/// Every once-per-run figure.
pub fn measure(plan: &Plan, with_python: bool, with_procspawn: bool) -> Once {
    let mut figures = Once::default();
    step(&format!(
        "apply latency unpinned, {} fresh pools per system",
        plan.unpinned_pools
    ));
    let unpinned = unpinned::apply_latency(plan, with_python, with_procspawn);
    unpinned::insert(unpinned, &mut figures);
    memory_and_large(plan, &mut figures);
    step("system calls per apply_async task (perf stat)");
    for (system, name) in [(System::Procpool, "procpool"), (System::Socket, "floor")] {
        let f = &mut figures[system.index()];
        match syscalls::per_task(name, plan.async_tasks) {
            Ok(per_task) => f.insert(syscalls::KEY, per_task),
            Err(why) => f.fail(syscalls::KEY, format!("n/a: {why}")),
        }
    }
    figures
}

/// Runs probe `args` (see [`probe`]) for `system`; if the probe itself
/// fails, each of `keys` says why.
fn probe(figures: &mut Once, system: System, args: &[&str], keys: &[String]) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match probe::run(&args) {
        Ok(mut measured) => {
            for (floor, _, prefix) in probe_map::FLOORS {
                let theirs = measured.split_prefixed(prefix);
                figures[floor.index()].extend(theirs);
            }
            figures[system.index()].extend(measured);
        }
        Err(why) => {
            for k in keys {
                figures[system.index()].fail(k.clone(), format!("fails: {why}"));
            }
        }
    }
}

/// The probes: pending tasks, large round trips, the big map, the idle pool.
fn memory_and_large(plan: &Plan, figures: &mut Once) {
    let n = plan.processes.to_string();
    step(&format!(
        "memory of {} pending apply_async tasks",
        plan.pending_tasks
    ));
    let tasks = plan.pending_tasks.to_string();
    let keys = [key::PENDING_BYTES.to_string()];
    probe(figures, System::Procpool, &["pending", &tasks, &n], &keys);
    for &(mib, reps) in &plan.bulk {
        step(&format!("{mib} MiB Vec<u8> round trips in fresh processes"));
        let (size, reps) = (mib.to_string(), reps.to_string());
        let keys: Vec<String> = key::BULK_FIGURES
            .iter()
            .map(|w| key::bulk(mib, w))
            .collect();
        for (system, name) in [(System::Procpool, "procpool"), (System::Socket, "socket")] {
            probe(figures, system, &["payload", name, &size, &reps, &n], &keys);
        }
    }
    step(&format!(
        "map of {} items in fresh processes",
        plan.map_big_items
    ));
    let (items, reps) = (
        plan.map_big_items.to_string(),
        plan.map_big_reps.to_string(),
    );
    let keys = [
        key::MAP_BIG_IPS.to_string(),
        key::MAP_BIG_PEAK_MIB.to_string(),
    ];
    probe(
        figures,
        System::Procpool,
        &["map", &items, &reps, &n],
        &keys,
    );
    step(&format!(
        "an idle pool of {} for {} s",
        plan.idle_workers, plan.idle_secs
    ));
    let (workers, secs) = (plan.idle_workers.to_string(), plan.idle_secs.to_string());
    let keys = [key::IDLE_POOL_CPU_PCT.to_string()];
    probe(figures, System::Procpool, &["idle", &workers, &secs], &keys);
}

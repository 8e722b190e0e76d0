//! The measurements made once per run rather than once per round: those
//! that need fresh pools or fresh processes of their own (the unpinned
//! placement lottery, memory peaks, the largest workloads, the idle pool).

use crate::figures::{key, Figures};
use crate::plan::Plan;
use crate::probe;
use crate::systems::System;
use crate::{syscalls, unpinned};

/// Every once-per-run figure, by [`System::index`].
pub fn measure(plan: &Plan, with_python: bool) -> [Figures; 6] {
    let step = |name: &str| eprintln!("procpool-bench: {name}...");
    let mut figures: [Figures; 6] = Default::default();
    step(&format!(
        "apply latency unpinned, {} fresh pools per system",
        plan.unpinned_pools
    ));
    unpinned::insert(unpinned::apply_latency(plan, with_python), &mut figures);
    let n = plan.processes.to_string();
    let mut probe = |system: System, args: &[&str], keys: &[String]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let f = &mut figures[system.index()];
        match probe::run(&args) {
            Ok(measured) => f.extend(measured),
            Err(why) => keys
                .iter()
                .for_each(|k| f.fail(k.clone(), format!("fails: {why}"))),
        }
    };
    step(&format!(
        "memory of {} pending apply_async tasks",
        plan.pending_tasks
    ));
    let tasks = plan.pending_tasks.to_string();
    probe(
        System::Procpool,
        &["pending", &tasks, &n],
        &[key::PENDING_BYTES.into()],
    );
    for &(mib, reps) in &plan.bulk {
        step(&format!("{mib} MiB Vec<u8> round trips in fresh processes"));
        let (size, reps) = (mib.to_string(), reps.to_string());
        let keys: Vec<String> = key::BULK_FIGURES
            .iter()
            .map(|w| key::bulk(mib, w))
            .collect();
        probe(
            System::Procpool,
            &["payload", "procpool", &size, &reps, &n],
            &keys,
        );
        probe(
            System::Socket,
            &["payload", "socket", &size, &reps, &n],
            &keys,
        );
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
        System::Procpool,
        &["map", "procpool", &items, &reps, &n],
        &keys,
    );
    probe(
        System::Socket,
        &["map", "socket", &items, &reps, &n],
        &keys[..1],
    );
    step(&format!(
        "an idle pool of {} for {} s",
        plan.idle_workers, plan.idle_secs
    ));
    let (workers, secs) = (plan.idle_workers.to_string(), plan.idle_secs.to_string());
    probe(
        System::Procpool,
        &["idle", &workers, &secs],
        &[key::IDLE_POOL_CPU_PCT.into()],
    );
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

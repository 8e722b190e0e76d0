//! The workloads on procspawn's `Pool`.

use std::collections::HashSet;

use procspawn::{Pool, SpawnError};

use crate::measure::{self, median_of, timed};
use crate::plan::{key, Figures, Plan};
use crate::tasks::*;

pub fn run(plan: &Plan) -> Result<Figures, SpawnError> {
    let mut f = Figures::new();
    let (n, spin_iters) = (plan.processes, plan.spin_iters);

    let mut samples = Vec::new();
    for _ in 0..plan.startup_reps {
        let (took, pool) = timed(|| -> Result<Pool, SpawnError> {
            let pool = Pool::new(n)?;
            let mut seen = HashSet::new();
            while seen.len() < n {
                let round: Vec<_> = (0..n).map(|_| pool.spawn((), plain_pid)).collect();
                for h in round {
                    seen.insert(h.join()?);
                }
            }
            Ok(pool)
        });
        pool?.shutdown();
        samples.push(took.as_secs_f64() * 1e3);
    }
    f.insert(key::STARTUP_MS.into(), measure::median(&samples));

    // Pinned to one CPU, like the others (see crate::paired).
    let pin = crate::paired::Pin::to_cpu(0)?;
    let pinned = Pool::new(n)?;
    let apply = measure::latency_us(plan.apply_warmup, plan.apply_calls, |i| {
        assert_eq!(pinned.spawn(i, plain_inc).join().expect("spawn"), i + 1);
    });
    pinned.shutdown();
    drop(pin);
    f.insert(key::APPLY_US.into(), apply);

    let pool = Pool::new(n)?;

    let tasks = plan.procspawn_async_tasks;
    let tps = median_of(plan.async_reps, || {
        let (took, ()) = timed(|| {
            let handles: Vec<_> = (0..tasks as u64)
                .map(|i| pool.spawn(i, plain_inc))
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                assert_eq!(h.join().expect("spawn"), i as u64 + 1);
            }
        });
        tasks as f64 / took.as_secs_f64()
    });
    f.insert(key::ASYNC_TPS.into(), tps);
    // map: procspawn's pool has none (one spawn per item is the async row).

    let mut serial = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..plan.cpu_reps {
        let (t, ()) = timed(|| {
            for _ in 0..plan.cpu_tasks {
                std::hint::black_box(procpool_bench::spin(spin_iters));
            }
        });
        serial.push(t.as_secs_f64() * 1e3);
        let (t, ()) = timed(|| {
            let handles: Vec<_> = (0..plan.cpu_tasks)
                .map(|_| pool.spawn(spin_iters, plain_spin))
                .collect();
            for h in handles {
                h.join().expect("spin");
            }
        });
        parallel.push(t.as_secs_f64() * 1e3);
    }
    let (serial, parallel) = (measure::median(&serial), measure::median(&parallel));
    f.insert(key::CPU_SERIAL_MS.into(), serial);
    f.insert(key::CPU_ASYNC_MS.into(), parallel);
    f.insert(key::CPU_SPEEDUP.into(), serial / parallel);

    measure::payloads(
        plan,
        &mut f,
        |input| {
            pool.spawn(input, plain_echo_vec)
                .join()
                .expect("echo")
                .len()
        },
        |input| {
            pool.spawn(input, plain_echo_buf)
                .join()
                .expect("echo")
                .len()
        },
    );

    pool.shutdown();

    // A fresh pool: the one above has held 64 MiB payloads.
    let pool = Pool::new(1)?;
    let pid = pool.spawn((), plain_pid).join()?;
    pool.spawn(1, plain_inc).join()?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    if let Some(rss) = measure::peak_rss_mib(pid) {
        f.insert(key::RSS_MIB.into(), rss);
    }
    pool.shutdown();
    Ok(f)
}

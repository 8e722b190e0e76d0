//! The workloads on procspawn's `Pool`.

use std::collections::HashSet;

use procspawn::{Pool, SpawnError};

use crate::figures::{key, Figures};
use crate::latency;
use crate::measure::{self, median_of, timed};
use crate::plan::Plan;
use crate::tasks::*;

/// File descriptors the benchmark asks for: procspawn holds about 3 per
/// queued task, so the apply_async row's tasks need far more than the
/// usual 1,024 or 20,000.
const FD_LIMIT: libc::rlim_t = 1 << 18;

/// Raises this process's open-file limit towards [`FD_LIMIT`] (the hard
/// limit too when allowed, e.g. as root) and returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the rlimit it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let wanted = libc::rlimit {
        rlim_cur: FD_LIMIT.max(limit.rlim_cur),
        rlim_max: FD_LIMIT.max(limit.rlim_max),
    };
    // SAFETY: setrlimit reads a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        // Not allowed to raise the hard limit: up to it, then.
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur
}

/// File descriptors procspawn holds per queued task (two IPC channels;
/// measured: 2,000 queued tasks held 6,000 descriptors), with a margin.
const FDS_PER_TASK: u64 = 4;

/// How many of `tasks` procspawn may have queued at once under the
/// open-file limit in force: all of them when the limit allows.
pub fn queue_window(tasks: usize) -> usize {
    let limit = raise_fd_limit();
    let room = limit.saturating_sub(256) / FDS_PER_TASK;
    (room as usize).clamp(1, tasks.max(1))
}

/// `tasks` trivial tasks with at most `window` queued at a time: one more
/// is submitted as each completes (in order), so the workers never run dry
/// while tasks remain.
fn async_window(pool: &Pool, tasks: usize, window: usize) {
    let mut pending = std::collections::VecDeque::with_capacity(window);
    let mut next = 0u64;
    for done in 0..tasks as u64 {
        while next < tasks as u64 && pending.len() < window {
            pending.push_back(pool.spawn(next, plain_inc));
            next += 1;
        }
        let h = pending.pop_front().expect("a task is pending");
        assert_eq!(h.join().expect("spawn"), done + 1);
    }
}

/// Creates a pool of `n` and runs one task on each worker (in rounds of one
/// per worker until every worker has answered); the shutdown is not timed.
fn startup_ms(n: usize) -> Result<f64, SpawnError> {
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
    Ok(took.as_secs_f64() * 1e3)
}

pub fn run(plan: &Plan) -> Result<Figures, SpawnError> {
    let mut f = Figures::new();
    let (n, spin_iters) = (plan.processes, plan.spin_iters);

    for &workers in &plan.startup_workers {
        let samples = (0..plan.startup_reps)
            .map(|_| startup_ms(workers))
            .collect::<Result<Vec<f64>, SpawnError>>()?;
        f.insert(key::startup(workers), measure::median(&samples));
    }

    // Pinned to one CPU, like the others (see crate::paired).
    let pin = crate::pin::Pin::to_first_cpu()?;
    let pinned = Pool::new(n)?;
    let tails = latency::measure(plan.apply_warmup, plan.apply_calls, |i| {
        assert_eq!(pinned.spawn(i, plain_inc).join().expect("spawn"), i + 1);
    });
    pinned.shutdown();
    drop(pin);
    latency::insert_pinned(&mut f, tails);

    let pool = Pool::new(n)?;

    let tasks = plan.async_tasks;
    let window = queue_window(tasks);
    let tps = median_of(plan.async_reps, || {
        let (took, ()) = timed(|| async_window(&pool, tasks, window));
        tasks as f64 / took.as_secs_f64()
    });
    f.insert(key::ASYNC_TPS, tps);
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
    f.insert(key::CPU_SERIAL_MS, serial);
    f.insert(key::CPU_ASYNC_MS, parallel);
    f.insert(key::CPU_SPEEDUP, serial / parallel);

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
    if let Some(rss) = crate::procfs::peak_rss_mib(pid) {
        f.insert(key::RSS_MIB, rss);
    }
    pool.shutdown();
    Ok(f)
}

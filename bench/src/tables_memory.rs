//! The tables of the rows measured once per run in fresh processes: memory
//! per pending task, large round trips and their memory peaks, the big
//! map, the idle pool.

use crate::figures::key;
use crate::report::{ratio, value, Run};
use crate::systems::System::{Pipe, Procpool, Socket};
use crate::tables::{cell_of, markdown};

/// Memory per pending `apply_async` task.
pub fn pending(run: &Run) -> String {
    let handle = run.get(Procpool, key::PENDING_HANDLE_BYTES);
    format!(
        "procpool: {} bytes of parent memory per pending `apply_async` task ({} pending behind \
         2 workers kept busy, RSS growth ÷ tasks, in a fresh process; the caller's \
         `AsyncResult` handle, {} bytes, included).\n",
        cell_of(run, Procpool, key::PENDING_BYTES),
        run.plan.pending_tasks,
        handle.map_or("n/a".into(), |h| format!("{h:.0}")),
    )
}

/// Large `Vec<u8>` round trips: speed and memory, procpool and the socket floor.
pub fn bulk(run: &Run) -> String {
    let rows: Vec<Vec<String>> = run
        .plan
        .bulk
        .iter()
        .map(|&(mib, _)| {
            let k = |what: &str| key::bulk(mib, what);
            let speed = run
                .get(Procpool, &k("mbs"))
                .zip(run.get(Socket, &k("mbs")))
                .map(|(p, s)| p / s);
            vec![
                format!("{mib} MiB"),
                cell_of(run, Procpool, &k("mbs")),
                cell_of(run, Socket, &k("mbs")),
                ratio(speed),
                cell_of(run, Procpool, &k("parent_peak_mib")),
                cell_of(run, Socket, &k("parent_peak_mib")),
                format!("{}", 2 * mib + 16),
                cell_of(run, Procpool, &k("worker_hwm_mib")),
                cell_of(run, Procpool, &k("worker_rss_1s_mib")),
                cell_of(run, Socket, &k("worker_rss_1s_mib")),
            ]
        })
        .collect();
    format!(
        "{}\nIdentity task on a `Vec<u8>`, a default pool of {} workers (no setting changed but \
         the number of workers); each size in a fresh process, median MB/s (2 × size / time) \
         of the round trips after the first (a warm-up): {}. Peaks in MiB over the process's \
         RSS before the first call (`VmHWM` reset by \
         /proc/self/clear_refs), input and result included, so 2 × size is the least \
         possible; the worker is the one with the highest peak, its RSS read again 1 s after the \
         last call.\n",
        markdown(
            &[
                "round trip",
                "procpool MB/s",
                "socket floor MB/s",
                "procpool vs socket",
                "procpool parent peak",
                "socket floor parent peak",
                "limit 2N + 16",
                "procpool worker peak",
                "procpool worker 1 s later",
                "socket child 1 s later",
            ],
            &rows
        ),
        run.plan.processes,
        run.plan
            .bulk
            .iter()
            .map(|(mib, reps)| format!("{} ({mib} MiB)", reps.saturating_sub(1).max(1)))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The big map: items/s and the parent's peak against the output.
pub fn map_big(run: &Run) -> String {
    let peak = run.get(Procpool, key::MAP_BIG_PEAK_MIB);
    let output = run.get(Procpool, key::MAP_BIG_OUTPUT_MIB);
    // Against the lowest floor (the highest rate), named in the cell.
    let lowest = run.best_floor(key::MAP_BIG_IPS, true).map(|f| f.0);
    let speed = lowest.map_or("n/a".into(), |s| {
        format!(
            "{} ({})",
            ratio(run.get(s, key::MAP_BIG_VS_FLOOR)),
            s.short()
        )
    });
    let rows = vec![
        vec![
            "items/s".into(),
            cell_of(run, Procpool, key::MAP_BIG_IPS),
            cell_of(run, Socket, key::MAP_BIG_IPS),
            cell_of(run, Pipe, key::MAP_BIG_IPS),
            speed,
        ],
        vec![
            "parent peak over baseline (MiB)".into(),
            cell_of(run, Procpool, key::MAP_BIG_PEAK_MIB),
            "n/a".into(),
            "n/a".into(),
            "n/a".into(),
        ],
        vec![
            "peak ÷ output size".into(),
            ratio(peak.zip(output).map(|(p, o)| p / o)),
            "n/a".into(),
            "n/a".into(),
            "n/a".into(),
        ],
    ];
    format!(
        "{}\n`map_inc` over `0..{}` (u64 items, output {} MiB) on {} workers, default chunking, \
         median of {}, in a fresh process where the socket and pipe floors' maps (Python's \
         default chunks, one frame each) rotate with procpool's; \"vs lowest floor\" is the \
         median over the repetitions of procpool's ÷ the lowest floor's (the goal's ratio is the \
         socket floor's, as its baseline was). The peak is over the RSS just before each of procpool's maps.\n",
        markdown(
            &[
                "figure",
                "procpool",
                "socket floor",
                "pipe floor",
                "procpool vs lowest floor"
            ],
            &rows
        ),
        run.plan.map_big_items,
        value(output),
        run.plan.processes,
        run.plan.map_big_reps,
    )
}

/// System calls per apply_async task.
pub fn syscalls(run: &Run) -> String {
    format!(
        "System calls per `apply_async` task ({} tasks on 2 workers, counted by `perf stat -e \
         raw_syscalls:sys_enter` over the process and its children, minus a run with no task): \
         procpool {}, socket floor (2 children, pipelined) {}.\n",
        run.plan.async_tasks,
        cell_of(run, Procpool, crate::syscalls::KEY),
        cell_of(run, Socket, crate::syscalls::KEY),
    )
}

/// The idle pool's CPU.
pub fn idle(run: &Run) -> String {
    format!(
        "An idle procpool pool of {} workers, after a burst of 4,000 calls, used {} % of one \
         CPU over {} s (CPU time of the parent process's threads and of every worker, from \
         /proc/PID/task/*/schedstat, in a fresh process).\n",
        run.plan.idle_workers,
        cell_of(run, Procpool, key::IDLE_POOL_CPU_PCT),
        run.plan.idle_secs,
    )
}

//! The workloads on the floors (see [`crate::floor`]): every workload on the
//! stream floors (socket and pipe); start-up and idle memory on the futex
//! floor, which only does round trips. Their `apply` latency is measured
//! beside procpool's (see [`crate::paired`] and [`crate::unpinned`]).

use std::io;

use crate::figures::{key, Figures};
use crate::floor::stream::{self, Kind, StreamChild};
use crate::floor::{self};
use crate::measure::{self, median_of, timed};
use crate::plan::Plan;
use crate::systems::System;

pub fn run(plan: &Plan, floor: System) -> io::Result<Figures> {
    let mut f = Figures::new();
    for &workers in &plan.startup_workers {
        let samples = (0..plan.startup_reps)
            .map(|_| Ok(floor::startup(floor, workers)?.as_secs_f64() * 1e3))
            .collect::<io::Result<Vec<f64>>>()?;
        f.insert(key::startup(workers), measure::median(&samples));
    }

    let kind = match floor {
        System::Socket => Some(Kind::Socket),
        System::Pipe => Some(Kind::Pipe),
        _ => None,
    };
    if let Some(kind) = kind {
        stream_workloads(plan, kind, &mut f)?;
    }
    if let Some(rss) = floor::idle_rss_mib(floor)? {
        f.insert(key::RSS_MIB, rss);
    }
    Ok(f)
}

/// apply_async, map and payloads on `processes` stream children of `kind`.
fn stream_workloads(plan: &Plan, kind: Kind, f: &mut Figures) -> io::Result<()> {
    let n = plan.processes;
    let mut children = (0..n)
        .map(|_| StreamChild::start(kind))
        .collect::<io::Result<Vec<_>>>()?;

    // Throughput: the tasks split evenly over the children, each fed by a
    // writer thread while a reader thread per child collects the replies.
    let tps = median_of(plan.async_reps, || {
        let (took, ()) = timed(|| {
            spread(&mut children, plan.async_tasks, |i| {
                stream::inc_frame(i as u64)
            })
        });
        plan.async_tasks as f64 / took.as_secs_f64()
    });
    f.insert(key::ASYNC_TPS, tps);
    f.insert(
        key::MAP_IPS,
        map_ips(&mut children, plan.map_items, plan.map_reps),
    );

    for &(mib, reps) in &plan.payloads {
        let data = vec![7u8; mib << 20];
        let one = &mut children[0];
        let mbs = median_of(reps, || {
            let (took, len) = timed(|| one.echo(&data).expect("floor echo"));
            assert_eq!(len, data.len());
            measure::round_trip_mbs(data.len(), took)
        });
        f.insert(key::payload(mib, false), mbs);
        f.insert(key::payload(mib, true), mbs);
    }
    Ok(())
}

/// Items/s of a map of `items` over `children` with Python's default
/// chunking (ceil(items / (4 × workers))), one frame per chunk; median of `reps`.
pub fn map_ips(children: &mut [StreamChild], items: usize, reps: usize) -> f64 {
    let chunk = items.div_ceil(4 * children.len());
    let chunks = items.div_ceil(chunk);
    median_of(reps, || {
        let (took, ()) = timed(|| {
            spread(children, chunks, |c| {
                let start = (c * chunk) as u64;
                let end = ((c + 1) * chunk).min(items) as u64;
                stream::map_frame(start..end)
            })
        });
        items as f64 / took.as_secs_f64()
    })
}

/// Sends `count` frames (made by `frame(i)`) round-robin over `children`,
/// all children in parallel, and waits for every reply.
pub fn spread(children: &mut [StreamChild], count: usize, frame: impl Fn(usize) -> Vec<u8> + Sync) {
    let n = children.len();
    std::thread::scope(|s| {
        for (c, child) in children.iter_mut().enumerate() {
            let frame = &frame;
            s.spawn(move || {
                let frames: Vec<Vec<u8>> = (c..count).step_by(n).map(frame).collect();
                child.pipeline(frames).expect("floor pipeline");
            });
        }
    });
}

//! The workloads on the raw floor (see [`crate::floor`]).

use std::io;

use crate::floor::{self, FloorChild};
use crate::measure::{self, median_of, timed};
use crate::plan::{key, Figures, Plan};

pub fn run(plan: &Plan) -> io::Result<Figures> {
    let mut f = Figures::new();
    let n = plan.processes;

    let mut samples = Vec::new();
    for _ in 0..plan.startup_reps {
        let (took, children) = floor::startup(n)?;
        drop(children);
        samples.push(took.as_secs_f64() * 1e3);
    }
    f.insert(key::STARTUP_MS.into(), measure::median(&samples));

    let mut children = (0..n)
        .map(|_| FloorChild::start())
        .collect::<io::Result<Vec<_>>>()?;
    let one = &mut children[0];
    let apply = measure::latency_us(plan.apply_warmup, plan.apply_calls, |i| {
        assert_eq!(one.inc(i).expect("floor inc"), i + 1);
    });
    f.insert(key::APPLY_US.into(), apply);

    // Throughput: the tasks split evenly over the children, each fed by a
    // writer thread while a reader thread per child collects the replies.
    let tps = median_of(plan.async_reps, || {
        let (took, ()) = timed(|| {
            spread(&mut children, plan.async_tasks, |i| {
                floor::inc_frame(i as u64)
            })
        });
        plan.async_tasks as f64 / took.as_secs_f64()
    });
    f.insert(key::ASYNC_TPS.into(), tps);

    // map: Python's default chunking (ceil(items / (4 × workers))).
    let chunk = plan.map_items.div_ceil(4 * n);
    let chunks = plan.map_items.div_ceil(chunk);
    let ips = median_of(plan.map_reps, || {
        let (took, ()) = timed(|| {
            spread(&mut children, chunks, |c| {
                let start = (c * chunk) as u64;
                let end = ((c + 1) * chunk).min(plan.map_items) as u64;
                floor::map_frame(start..end)
            })
        });
        plan.map_items as f64 / took.as_secs_f64()
    });
    f.insert(key::MAP_IPS.into(), ips);

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
    drop(children);

    if let Some(rss) = floor::idle_rss_mib()? {
        f.insert(key::RSS_MIB.into(), rss);
    }
    Ok(f)
}

/// Sends `count` frames (made by `frame(i)`) round-robin over `children`,
/// all children in parallel, and waits for every reply.
fn spread(children: &mut [FloorChild], count: usize, frame: impl Fn(usize) -> Vec<u8> + Sync) {
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

//! The floors: this same binary re-executed as a child that answers tiny
//! requests with no pool, no queue, no threads and no serialization
//! framework, over the three cheapest channels between two processes: a
//! socket pair and a pipe pair ([`stream`], which also carry bulk frames,
//! batches and map chunks) and one word of shared memory woken by futex
//! ([`futex`], round trips only). Whatever procpool costs above the lowest
//! of them is procpool's own overhead.

pub mod futex;
pub mod stream;

use std::io;
use std::time::Duration;

use crate::measure::timed;
use crate::systems::System;

/// argv\[1\] of a floor child; argv\[2\] says which floor.
pub const CHILD_ARG: &str = "--procpool-bench-floor-child";

/// A floor's parent end: one tiny round trip at a time.
pub trait RoundTrip {
    /// Sends `x`, returns the child's `x + 1`.
    fn inc(&mut self, x: u64) -> io::Result<u64>;
    fn pid(&self) -> u32;
}

/// Starts a child of `floor` (one of [`System::FLOORS`]).
pub fn start(floor: System) -> io::Result<Box<dyn RoundTrip>> {
    Ok(match floor {
        System::Socket => Box::new(stream::StreamChild::start(stream::Kind::Socket)?),
        System::Pipe => Box::new(stream::StreamChild::start(stream::Kind::Pipe)?),
        System::Futex => Box::new(futex::FutexChild::start()?),
        other => panic!("{} is not a floor", other.name()),
    })
}

/// Turns this process into a floor child if it was started as one (then
/// never returns). Must run before anything else in `main`.
pub fn maybe_run_child() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(CHILD_ARG.as_ref()) {
        return;
    }
    let served = match args.next().and_then(|a| a.into_string().ok()).as_deref() {
        Some("socket") => stream::serve(stream::Kind::Socket),
        Some("pipe") => stream::serve(stream::Kind::Pipe),
        Some("futex") => futex::serve(),
        other => Err(io::Error::other(format!("unknown floor {other:?}"))),
    };
    let code = match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floor child: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Starts `n` children of `floor` and does one round trip with each: the
/// floor of "create a pool and run one task on each worker".
pub fn startup(floor: System, n: usize) -> io::Result<Duration> {
    let (took, children) = timed(|| -> io::Result<Vec<Box<dyn RoundTrip>>> {
        let mut children = (0..n)
            .map(|_| start(floor))
            .collect::<io::Result<Vec<_>>>()?;
        for c in &mut children {
            c.inc(1)?;
        }
        Ok(children)
    });
    drop(children?);
    Ok(took)
}

/// Peak RSS of an idle child of `floor` that has answered a few requests, in MiB.
pub fn idle_rss_mib(floor: System) -> io::Result<Option<f64>> {
    let mut child = start(floor)?;
    for i in 0..10 {
        child.inc(i)?;
    }
    Ok(crate::procfs::peak_rss_mib(child.pid()))
}

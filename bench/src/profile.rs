//! `--profile WORKLOAD SYSTEM [N]`: one workload alone on one system,
//! untabulated, for `perf record` / `strace -c`.

use crate::floor::stream::{self, Kind, StreamChild};
use crate::floor::RoundTrip;
use crate::{measure, run_floor, run_procpool, run_python, tasks};

/// `apply` (round trips), `async` (a batch of apply_async over 2 workers),
/// `payload` (64 MiB ByteBuf echoes) on `procpool` or `floor` (the socket
/// floor, 2 children for `async`, else 1); on `procpool` only: `async5`
/// (five such batches on one pool, each one's rate printed, as the
/// benchmark's row measures them), `payload_async` (the echoes through
/// apply_async), `callersT` (`T` threads calling `apply` at once), `startupW` (`n` start-ups of a
/// pool of `W` workers, as the benchmark times them);
/// `map` / `map1` (default chunking / chunksize 1) on `procpool` or
/// `python`; `n` is the number of calls, tasks, echoes or items.
pub fn run(workload: &str, system: &str, n: usize) {
    if system == "python" {
        let chunksize = if workload == "map1" { "1" } else { "0" };
        let status = std::process::Command::new("python3")
            .arg(run_python::script())
            .args(["--map-only", &n.to_string(), chunksize])
            .status()
            .expect("python3");
        assert!(status.success(), "python_pool.py --map-only failed");
        return;
    }
    if workload.starts_with("map") && system == "procpool" {
        return map(workload, n);
    }
    if let Some(workers) = workload.strip_prefix("startup") {
        for _ in 0..n {
            let (built, ready) = run_procpool::startup_ms(workers.parse().unwrap_or(32)).unwrap();
            println!("startup{workers}: built {built:.2} ms, each worker ran a task {ready:.2} ms");
        }
        return;
    }
    if let Some(threads) = workload.strip_prefix("callers") {
        return callers(threads.parse().unwrap_or(16), n);
    }
    let floor = system == "floor";
    let pool = (!floor).then(|| procpool::Pool::new(2).expect("pool"));
    let mut children: Vec<StreamChild> = (0..if floor { 2 } else { 0 })
        .map(|_| StreamChild::start(Kind::Socket).expect("floor child"))
        .collect();
    let (took, ()) = measure::timed(|| match (workload, &pool, children.first_mut()) {
        ("apply", Some(pool), _) => {
            (0..n as u64).for_each(|i| assert_eq!(tasks::apply_inc(pool, i).unwrap(), i + 1))
        }
        ("apply", None, Some(c)) => {
            (0..n as u64).for_each(|i| assert_eq!(c.inc(i).unwrap(), i + 1))
        }
        ("async5", Some(pool), _) => {
            for _ in 0..5 {
                let (t, ()) = measure::timed(|| run_procpool::async_batch(pool, n));
                println!("{:.0} tasks/s", n as f64 / t.as_secs_f64());
            }
        }
        ("async", Some(pool), _) => run_procpool::async_batch(pool, n),
        ("async", None, Some(_)) => {
            run_floor::spread(&mut children, n, |i| stream::inc_frame(i as u64));
        }
        ("payload", Some(pool), _) => {
            let data = serde_bytes::ByteBuf::from(vec![7u8; 64 << 20]);
            (0..n).for_each(|_| {
                assert_eq!(
                    tasks::apply_echo_buf(pool, data.clone()).unwrap().len(),
                    data.len()
                )
            });
        }
        ("payload_async", Some(pool), _) => {
            let data = serde_bytes::ByteBuf::from(vec![7u8; 64 << 20]);
            (0..n).for_each(|_| {
                let echoed = tasks::apply_async_echo_buf(pool, data.clone());
                assert_eq!(echoed.get().unwrap().len(), data.len())
            });
        }
        ("payload", None, Some(c)) => {
            let data = vec![7u8; 64 << 20];
            (0..n).for_each(|_| assert_eq!(c.echo(&data).unwrap(), data.len()));
        }
        _ => {
            panic!("--profile apply|async|async5|payload|payload_async|callersT procpool|floor [N]")
        }
    });
    println!(
        "{workload} on {system}: {n} in {took:?} ({:.2} µs each)",
        took.as_secs_f64() * 1e6 / n.max(1) as f64
    );
}

/// `threads` threads calling `apply` at once on a pool of 2, `n` calls in
/// all, after a warm-up.
fn callers(threads: usize, n: usize) {
    let pool = procpool::Pool::new(2).expect("pool");
    (0..500).for_each(|i| assert_eq!(tasks::apply_inc(&pool, i).unwrap(), i + 1));
    let per = (n / threads.max(1)).max(1);
    let (took, ()) = measure::timed(|| {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    (0..per as u64)
                        .for_each(|i| assert_eq!(tasks::apply_inc(&pool, i).unwrap(), i + 1))
                });
            }
        })
    });
    println!(
        "{threads} callers: {} calls in {took:?} ({:.0} calls/s)",
        per * threads,
        (per * threads) as f64 / took.as_secs_f64()
    );
}

/// procpool's `map_inc` alone: the median of 3 after a warm-up.
fn map(workload: &str, n: usize) {
    let pool = procpool::Pool::new(2).expect("pool");
    let run = |items| match workload {
        "map1" => run_procpool::map_items_chunk1(&pool, items),
        _ => run_procpool::map_items(&pool, items),
    };
    run(1000); // warm-up
    let rates: Vec<f64> = (0..3)
        .map(|_| n as f64 / measure::timed(|| run(n)).0.as_secs_f64())
        .collect();
    let chunks = if workload == "map1" {
        "chunksize 1"
    } else {
        "default chunksize"
    };
    println!(
        "procpool map_inc, {chunks}: {n} items, {:.0} items/s (median of 3)",
        measure::median(&rates)
    );
}

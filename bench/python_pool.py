"""The benchmark workloads on Python's multiprocessing.Pool ('spawn').

Run by procpool-bench as `python3 bench/python_pool.py '<plan as JSON>'`;
prints one JSON object of figures (keys as in bench/src/figures.rs) on stdout:
a number per figure, or a string saying why a row failed. Each figure is a
median over repetitions, like the Rust side.

`python3 bench/python_pool.py --apply-latency '<plan>'`: the p50 / p99 / p999
of Pool.apply on one freshly started pool, unpinned, as one JSON object.
"""

import ctypes
import json
import multiprocessing as mp
import os
import statistics
import sys
import time


def inc(x):
    return x + 1


def worker_pid(_=None):
    return os.getpid()


# The CPU rows' loop: procpool_bench::spin from the benchmark's shared library
# (bench/src/lib.rs), the very code the Rust systems run, loaded once per process.
_spin_libs = {}


def spin(lib_path, iters):
    lib = _spin_libs.get(lib_path)
    if lib is None:
        lib = ctypes.CDLL(lib_path)
        lib.procpool_bench_spin.argtypes = [ctypes.c_uint64]
        lib.procpool_bench_spin.restype = ctypes.c_uint64
        _spin_libs[lib_path] = lib
    return lib.procpool_bench_spin(iters)


def identity(data):
    return data


def peak_rss_mib(_=None):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def now():
    return time.perf_counter()


def startup_ms(ctx, n):
    start = now()
    pool = ctx.Pool(n)
    seen = set()
    while len(seen) < n:
        round_ = [pool.apply_async(worker_pid) for _ in range(n)]
        seen.update(r.get() for r in round_)
    took = now() - start
    pool.terminate()
    pool.join()
    return took * 1e3


def timed(f):
    start = now()
    f()
    return now() - start


def percentiles(samples):
    """p50 / p99 / p999 of `samples` (nearest rank, as bench/src/latency.rs)."""
    s = sorted(samples)
    at = lambda q: s[int(round((len(s) - 1) * q))]
    return {"p50": at(0.5), "p99": at(0.99), "p999": at(0.999)}


def apply_tails(ctx, plan):
    """Percentiles (µs) of `apply_calls` Pool.apply round trips on a fresh
    pool, after `apply_warmup` untimed ones."""
    with ctx.Pool(plan["processes"]) as pool:
        for i in range(plan["apply_warmup"]):
            pool.apply(inc, (i,))
        samples = []
        for i in range(plan["apply_calls"]):
            start = now()
            assert pool.apply(inc, (i,)) == i + 1
            samples.append((now() - start) * 1e6)
    return percentiles(samples)


def map_only(items, chunksize):
    """`--map-only ITEMS CHUNKSIZE` (0: Pool.map's default): prints the items/s
    of Pool.map on `inc` over 2 workers, median of 3 after a warm-up."""
    ctx = mp.get_context("spawn")
    kwargs = {"chunksize": chunksize} if chunksize > 0 else {}
    with ctx.Pool(2) as pool:
        pool.map(inc, range(1000), **kwargs)

        def batch():
            assert pool.map(inc, range(items), **kwargs)[-1] == items

        ips = statistics.median(items / timed(batch) for _ in range(3))
    print(f"Python Pool.map, chunksize {chunksize or 'default'}: {items} items, {ips:,.0f} items/s")


def main():
    if sys.argv[1] == "--map-only":
        map_only(int(sys.argv[2]), int(sys.argv[3]))
        return
    if sys.argv[1] == "--apply-latency":
        # One freshly started pool, unpinned: {"p50_us": ..., "p99_us": ..., "p999_us": ...}
        tails = apply_tails(mp.get_context("spawn"), json.loads(sys.argv[2]))
        json.dump({f"{pct}_us": v for pct, v in tails.items()}, sys.stdout)
        print()
        return
    plan = json.loads(sys.argv[1])
    ctx = mp.get_context("spawn")
    n = plan["processes"]
    out = {}

    # Start-up until each worker has run one task, with 'spawn' (the context
    # every other row uses) and with 'fork'.
    fork = mp.get_context("fork")
    for workers in plan["startup_workers"]:
        for name, context in [("startup", ctx), ("startup_fork", fork)]:
            out[f"{name}_{workers}w_ms"] = statistics.median(
                startup_ms(context, workers) for _ in range(plan["startup_reps"])
            )

    # apply latency with the caller, the pool's threads and its workers pinned
    # to one CPU, as the Rust systems are measured (see bench/src/paired.rs).
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(previous)})
    try:
        for pct, value in apply_tails(ctx, plan).items():
            out[f"apply_pinned_{pct}_us"] = value
    finally:
        os.sched_setaffinity(0, previous)

    with ctx.Pool(n) as pool:

        tasks = plan["async_tasks"]

        def async_batch():
            pending = [pool.apply_async(inc, (i,)) for i in range(tasks)]
            for i, r in enumerate(pending):
                assert r.get() == i + 1

        out["apply_async_tps"] = statistics.median(
            tasks / timed(async_batch) for _ in range(plan["async_reps"])
        )

        items = plan["map_items"]

        def map_batch():
            assert pool.map(inc, range(items))[-1] == items

        out["map_ips"] = statistics.median(items / timed(map_batch) for _ in range(plan["map_reps"]))

        c1_items = plan["map_c1_items"]

        def map_batch_c1():
            assert pool.map(inc, range(c1_items), chunksize=1)[-1] == c1_items

        out["map_c1_ips"] = statistics.median(
            c1_items / timed(map_batch_c1) for _ in range(plan["map_reps"])
        )

        # The same loop and the same iterations as every other system: the
        # calibration the benchmark made once for this run.
        lib, iters = plan["spin_lib"], plan["spin_iters"]
        k = plan["cpu_tasks"]
        spin(lib, 0)
        [r.get() for r in [pool.apply_async(spin, (lib, 0)) for _ in range(4 * n)]]
        serial, applied, parallel = [], [], []
        for _ in range(plan["cpu_reps"]):
            serial.append(timed(lambda: [spin(lib, iters) for _ in range(k)]) * 1e3)
            applied.append(timed(lambda: [pool.apply(spin, (lib, iters)) for _ in range(k)]) * 1e3)
            parallel.append(
                timed(lambda: [r.get() for r in [pool.apply_async(spin, (lib, iters)) for _ in range(k)]])
                * 1e3
            )
        out["cpu_serial_ms"] = statistics.median(serial)
        out["cpu_apply_ms"] = statistics.median(applied)
        out["cpu_async_ms"] = statistics.median(parallel)
        out["cpu_speedup"] = out["cpu_serial_ms"] / out["cpu_async_ms"]

        for mib, reps in plan["payloads"]:
            data = bytes(mib << 20)
            samples = []
            for _ in range(reps):
                start = now()
                back = pool.apply(identity, (data,))
                took = now() - start
                assert len(back) == len(data)
                samples.append(2 * len(data) / took / 1e6)
            mbs = statistics.median(samples)
            out[f"payload_vec_{mib}mib_mbs"] = mbs
            out[f"payload_buf_{mib}mib_mbs"] = mbs

    # A fresh pool: the one above has held the large payloads.
    with ctx.Pool(1) as pool:
        pool.apply(inc, (1,))
        time.sleep(0.02)
        out["idle_worker_rss_mib"] = pool.apply(peak_rss_mib)

    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()

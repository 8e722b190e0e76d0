"""The anchors of procpool-bench's distributed rows (bench/src/distributed/).

    python distributed_anchors.py celery REDIS_URL WARMUP CALLS TASKS
    python distributed_anchors.py ray WARMUP CALLS TASKS

Prints one JSON object: apply_p50_us and apply_p99_us (of CALLS blocking
round trips after WARMUP untimed ones, nearest rank as bench/src/latency.rs)
and async_tasks_per_s (TASKS submitted at once, then collected): the same
counts procpool's rows use. A system that cannot be imported or started gives a string
saying why instead of numbers. Celery uses Redis as broker and result
backend and a prefork worker of 2 processes; Ray runs
ray.util.multiprocessing.Pool(2) on a local cluster of 2 CPUs.
"""

import json
import os
import subprocess
import sys
import time


def inc(x):
    return x + 1


def measure(apply, submit, warmup, calls, tasks):
    for i in range(warmup):
        apply(i)
    times = []
    for i in range(calls):
        t = time.perf_counter()
        assert apply(i) == i + 1
        times.append(time.perf_counter() - t)
    times.sort()
    at = lambda q: times[int(round((len(times) - 1) * q))] * 1e6
    t = time.perf_counter()
    pending = [submit(i) for i in range(tasks)]
    for i, p in enumerate(pending):
        assert p() == i + 1
    rate = tasks / (time.perf_counter() - t)
    return {"apply_p50_us": at(0.5), "apply_p99_us": at(0.99), "async_tasks_per_s": rate}


def celery_app(url):
    from celery import Celery

    app = Celery("distributed_anchors", broker=url, backend=url)
    app.conf.update(worker_prefetch_multiplier=4, task_acks_late=False,
                    result_expires=3600, broker_connection_retry_on_startup=True)
    app.task(name="inc")(inc)
    return app


def run_celery(url, warmup, calls, tasks):
    app = celery_app(url)
    env = dict(os.environ, PP_ANCHOR_URL=url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "distributed_anchors", "worker",
         "--pool", "prefork", "-c", "2", "--loglevel", "WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        task = app.tasks["inc"]
        # The worker is ready when it answers.
        task.delay(0).get(timeout=60)
        return measure(lambda x: task.delay(x).get(timeout=60),
                       lambda x: (lambda r: lambda: r.get(timeout=60))(task.delay(x)),
                       warmup, calls, tasks)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def run_ray(warmup, calls, tasks):
    import ray
    from ray.util.multiprocessing import Pool

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    try:
        pool = Pool(2)
        return measure(lambda x: pool.apply(inc, (x,)),
                       lambda x: (lambda r: lambda: r.get())(pool.apply_async(inc, (x,))),
                       warmup, calls, tasks)
    finally:
        ray.shutdown()


if os.environ.get("PP_ANCHOR_URL"):
    # Imported by the Celery worker: the app it serves.
    app = celery_app(os.environ["PP_ANCHOR_URL"])


def main():
    mode = sys.argv[1]
    keys = ("apply_p50_us", "apply_p99_us", "async_tasks_per_s")
    try:
        if mode == "celery":
            import celery  # noqa: F401
            out = run_celery(sys.argv[2], *map(int, sys.argv[3:6]))
        else:
            import ray  # noqa: F401
            out = run_ray(*map(int, sys.argv[2:5]))
    except ImportError as e:
        out = {k: f"not measured: {e}" for k in keys}
    except Exception as e:  # a system that fails says why, in its row
        out = {k: f"fails: {type(e).__name__}: {e}" for k in keys}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

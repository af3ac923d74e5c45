"""Trivial tasks through dask.distributed and Ray, beside remex's row (f).

Usage: python3 dask_ray_bench.py dask|ray N ROUNDS
       python3 dask_ray_bench.py dask-tail FILE ROUNDS

Prints one line: the median tasks per second over ROUNDS rounds of N
trivial tasks (an identity function on an int), submitted at once and
gathered, on 2 single-threaded workers (dask: LocalCluster with 2
processes of 1 thread; Ray: num_cpus=2). Exits with status 3 and a note on
stderr when the framework is not installed. Startup is not measured.

dask-tail: row (t), uneven tasks. FILE holds one duration (seconds) per
line; each task sleeps that long; 4 workers of 4 threads (16 slots, as
remex's 4 workers with 4 tasks each). Prints the median makespan in
milliseconds over ROUNDS rounds.
"""

import statistics
import sys
import time


def echo(x):
    return x


def run_dask(n, rounds):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed is not installed", file=sys.stderr)
        sys.exit(3)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    client.gather(client.map(echo, range(10), pure=False))
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        futures = client.map(echo, range(n), pure=False)
        got = client.gather(futures)
        assert len(got) == n
        rates.append(n / (time.perf_counter() - t0))
    client.close()
    cluster.close()
    return statistics.median(rates)


def run_dask_tail(path, rounds):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed is not installed", file=sys.stderr)
        sys.exit(3)
    with open(path) as f:
        durations = [float(line) for line in f if line.strip()]
    cluster = LocalCluster(
        n_workers=4, threads_per_worker=4, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    client.gather(client.map(time.sleep, [0.0] * 16, pure=False))
    spans = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        futures = client.map(time.sleep, durations, pure=False)
        client.gather(futures)
        spans.append((time.perf_counter() - t0) * 1e3)
    client.close()
    cluster.close()
    return statistics.median(spans)


def run_ray(n, rounds):
    try:
        import ray
    except ImportError:
        print("ray is not installed", file=sys.stderr)
        sys.exit(3)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    remote_echo = ray.remote(echo)
    ray.get([remote_echo.remote(i) for i in range(10)])
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = ray.get([remote_echo.remote(i) for i in range(n)])
        assert len(got) == n
        rates.append(n / (time.perf_counter() - t0))
    ray.shutdown()
    return statistics.median(rates)


def main():
    which = sys.argv[1]
    if which == "dask-tail":
        print(f"{run_dask_tail(sys.argv[2], int(sys.argv[3])):.1f}")
        return
    n, rounds = int(sys.argv[2]), int(sys.argv[3])
    rate = {"dask": run_dask, "ray": run_ray}[which](n, rounds)
    print(f"{rate:.1f}")


if __name__ == "__main__":
    main()

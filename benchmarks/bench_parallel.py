"""Parallel efficiency of the parallel scheme: layer jobs on worker processes and on Dask.

One network of six equal layers (five ReLU, one linear; random weights, Gaussian inputs: six
jobs of about the same cost), pruned with the parallel scheme (ADMM, eps = 0.05) five ways
in one run:

* ``1 worker x 1 BLAS``: a process pool of one worker, BLAS limited to one thread;
* ``2 workers x 1 BLAS``: a process pool of two workers, one BLAS thread each;
* ``1 process x 2 BLAS``: in-process, BLAS allowed two threads;
* ``Dask 1 worker`` / ``Dask 2 workers``: a ``distributed.LocalCluster`` of worker processes
  with one thread each (the scheduler and workers are real processes talking over TCP on the
  loopback address, as on a cluster), through ``client.get_executor()``; the arrays reach the
  workers as memory-mapped files written once (``store_dir``).

Pools and clusters are started and every process warmed up (numba kernels loaded, one small
job) before the clock starts; the configurations run in turn for ``--repeats`` rounds and the
best time of each counts (interleaving spreads the load of other processes over all of them).
The pruned weights of every configuration with one BLAS thread per job (both pools, both
clusters) are compared bit for bit. Targets:
``2 workers`` at least 1.6x faster than ``1 worker``, and the same for Dask's two workers
against its one. The load average is recorded: on a machine shared with other
work the ratios understate what two free cores give.

``--quick`` (CI): 128-wide layers, 600 samples, one round; the full run: 192-wide layers,
1500 samples, three rounds. Results: ``benchmarks/results/parallel[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack

import numpy as np

from machine import format_machine, machine_info, markdown_table, write_results
from nettrim import Network, net_trim
from nettrim.executors import process_pool

EPS = 0.05
N_LAYERS = 6
SEED = 0
TARGET_SPEEDUP = 1.6
FULL = {"width": 192, "samples": 1500, "repeats": 3}
QUICK = {"width": 128, "samples": 600, "repeats": 1}


def make_network(width: int, samples: int) -> tuple[Network, np.ndarray]:
    """``N_LAYERS`` layers of ``width x width`` with He-scaled random weights; Gaussian inputs."""
    rng = np.random.default_rng(SEED)
    weights = [rng.standard_normal((width, width)) * np.sqrt(2.0 / width) for _ in range(N_LAYERS)]
    biases = [0.05 * rng.standard_normal(width) for _ in range(N_LAYERS)]
    return Network.from_arrays(weights, biases), rng.standard_normal((samples, width))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    if args.repeats is not None:
        config["repeats"] = args.repeats
    info = machine_info()
    net, X = make_network(config["width"], config["samples"])
    small_net, small_X = make_network(16, 40)
    options = {"scheme": "parallel", "eps": EPS, "solver": "admm"}

    rows, times, results = [], {}, {}
    load_before = os.getloadavg()
    with ExitStack() as stack:
        one = stack.enter_context(process_pool(1, blas_threads=1))
        two = stack.enter_context(process_pool(2, blas_threads=1))
        dask_one, dask_two = (_dask_executor(stack, n) for n in (1, 2))
        store = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-parallel-"))
        dask_options = {**options, "store_dir": store}
        # start the workers and load the kernels off the clock, here too
        for pool in (one, two):
            net_trim(small_net, small_X, executor=pool, **options)
        for pool in (dask_one, dask_two):
            net_trim(small_net, small_X, executor=pool, **dask_options)
        net_trim(small_net, small_X, n_jobs=1, blas_threads=2, **options)
        runs = {
            "1 worker x 1 BLAS": lambda: net_trim(net, X, executor=one, **options),
            "2 workers x 1 BLAS": lambda: net_trim(net, X, executor=two, **options),
            "1 process x 2 BLAS": lambda: net_trim(net, X, n_jobs=1, blas_threads=2, **options),
            "Dask 1 worker": lambda: net_trim(net, X, executor=dask_one, **dask_options),
            "Dask 2 workers": lambda: net_trim(net, X, executor=dask_two, **dask_options),
        }
        # interleaved repeats: a burst of load from other processes hits every configuration
        all_times = {name: [] for name in runs}
        for _ in range(config["repeats"]):
            for name, run in runs.items():
                start = time.perf_counter()
                results[name] = run()
                all_times[name].append(time.perf_counter() - start)
        times = {name: min(values) for name, values in all_times.items()}
    load_after = os.getloadavg()

    # one BLAS thread per job everywhere but "1 process x 2 BLAS", whose two-thread BLAS sums
    # in another order (the same weights are promised for the same blas_threads only)
    first = results["1 worker x 1 BLAS"].layers
    single = [r for name, r in results.items() if name != "1 process x 2 BLAS"]
    identical = all(
        np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
        for other in single
        for a, b in zip(first, other.layers, strict=True)
    )
    base = times["1 worker x 1 BLAS"]
    two_workers = times["2 workers x 1 BLAS"]
    dask_speedup = times["Dask 1 worker"] / times["Dask 2 workers"]
    dask_overhead = times["Dask 2 workers"] / two_workers
    for name, seconds in times.items():
        rows.append(
            [name, f"{seconds:.2f}", f"{base / seconds:.2f}", f"{results[name].sparsity:.1%}"]
        )
    speedup = base / two_workers
    vs_blas = times["1 process x 2 BLAS"] / two_workers
    met = speedup >= TARGET_SPEEDUP
    dask_met = dask_speedup >= TARGET_SPEEDUP
    headers = ["configuration", "seconds", "speed-up vs 1 worker", "sparsity"]
    title = (
        f"parallel scheme, {N_LAYERS} layers {config['width']}x{config['width']}, "
        f"{config['samples']} samples, eps={EPS}, ADMM, best of {config['repeats']}"
    )
    summary = (
        f"2 workers vs 1 worker (1 BLAS thread each): {speedup:.2f}x (target >= "
        f"{TARGET_SPEEDUP}: {'met' if met else 'NOT met'}); 2 workers vs 1 process with "
        f"2 BLAS threads: {vs_blas:.2f}x; Dask 2 workers vs Dask 1 worker: {dask_speedup:.2f}x "
        f"(target >= {TARGET_SPEEDUP}: {'met' if dask_met else 'NOT met'}); Dask 2 workers over "
        f"the 2-worker pool's time: {dask_overhead:.2f}x; weights bit-identical across the "
        f"{len(single)} configurations with one BLAS thread per job (pools and Dask): "
        f"{'yes' if identical else 'NO'}; load average before/after: "
        f"{load_before[0]:.2f}/{load_after[0]:.2f} on {info['cores']} cores "
        "(1-minute averages; the run's own processes count in the second)"
    )
    table = markdown_table(headers, rows)
    print(format_machine(info))
    print(title)
    print(table)
    print(summary)
    payload = {
        "benchmark": "parallel",
        "quick": args.quick,
        "machine": info,
        "config": config,
        "eps": EPS,
        "times": times,
        "all_times": all_times,
        "speedup_2_workers": speedup,
        "speedup_vs_2_blas_threads": vs_blas,
        "target_speedup": TARGET_SPEEDUP,
        "target_met": met,
        "dask_speedup_2_workers": dask_speedup,
        "dask_over_pool": dask_overhead,
        "dask_target_met": dask_met,
        "bit_identical": identical,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "sparsity": {k: r.sparsity for k, r in results.items()},
    }
    markdown = "\n\n".join([f"# {title}", format_machine(info), table, summary])
    name = "parallel_quick" if args.quick else "parallel"
    paths = write_results(name, payload, markdown)
    print("wrote", *paths)
    return 0


def _dask_executor(stack: ExitStack, n_workers: int):
    """A local Dask cluster of ``n_workers`` single-threaded worker processes; its executor."""
    from dask.distributed import Client, LocalCluster

    cluster = stack.enter_context(
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    )
    client = stack.enter_context(Client(cluster))
    return client.get_executor()


def plot(payload: dict, stem: str) -> list:
    """Seconds of each configuration (best of the rounds)."""
    from plots import save, subplots

    fig, (ax,) = subplots(width=6.0, height=3.6)
    names = list(payload["times"])
    bars = ax.barh(names, [payload["times"][n] for n in names], color="tab:green")
    ax.bar_label(bars, fmt="%.2f s", padding=3)
    ax.set_xlim(0, 1.2 * max(payload["times"].values()))
    ax.set(xlabel="seconds (best of the rounds)", title="Parallel scheme, six equal layers")
    ax.invert_yaxis()
    return [save(fig, stem)]


if __name__ == "__main__":
    sys.exit(main())

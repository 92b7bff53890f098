"""How the ADMM's time and memory grow with the layer: n, d_in and d_out, one at a time.

Random ReLU layers (``bench_admm.synthetic_layer``: correlated non-negative inputs, a
10%-dense planted weight matrix, ``Y = relu(X W + b)``), float64, layer-wide eps = 0.05,
``trim_layer(..., solver="admm")`` to its default tolerances, one BLAS thread. From a base
size, each of ``n``, ``d_in`` and ``d_out`` is multiplied by the factors while the other two
stay. Per point: wall time (best of ``repeats`` identical solves), iterations, time per
iteration, and peak memory: the peak of ``tracemalloc`` (NumPy's and Python's allocations)
during one more solve, traced from its start, so the inputs are not counted; BLAS
workspaces and numba's allocator are not counted either. The slopes are least-squares fits
of ``log time`` and ``log memory`` against ``log size``. Iteration counts change with the
size too, so the time slope is the cost of the whole solve; ``s/iter`` that of one iteration.

``--quick`` (CI): base ``n=400, d_in=40, d_out=20``, factors 1, 2, 4, best of 2. Full run:
base ``n=2000, d_in=100, d_out=50``, factors 0.5 to 4, best of 2 (several minutes).
Results: ``benchmarks/results/scaling[_quick].json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from bench_admm import synthetic_layer
from machine import column_table, format_machine, machine_info, write_results
from nettrim import trim_layer
from nettrim.solvers.kernels import warm_up

EPS = 0.05
DIMENSIONS = ("n", "d_in", "d_out")
FULL = {"base": {"n": 2000, "d_in": 100, "d_out": 50}, "factors": (0.5, 1, 2, 4), "repeats": 2}
QUICK = {"base": {"n": 400, "d_in": 40, "d_out": 20}, "factors": (1, 2, 4), "repeats": 2}


def measure(n: int, d_in: int, d_out: int, repeats: int) -> dict:
    """Best wall time of ``repeats`` solves, their iterations, and the peak traced memory of
    one more solve (tracing from its start: the inputs are not counted)."""
    X, Y = synthetic_layer(n, d_in, d_out, np.float64)
    best = np.inf
    for _ in range(repeats):  # timed without tracemalloc, which slows every allocation
        started = time.perf_counter()
        res = trim_layer(X, Y, eps=EPS, solver="admm")
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    trim_layer(X, Y, eps=EPS, solver="admm")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "n": n,
        "d_in": d_in,
        "d_out": d_out,
        "seconds": best,
        "iterations": res.info.iterations,
        "seconds_per_iteration": best / max(res.info.iterations, 1),
        "peak_mib": peak / 2**20,
        "input_mib": (X.nbytes + Y.nbytes) / 2**20,
        "status": res.status.value,
        "sparsity": res.sparsity,
    }


def slope(rows: list[dict], dimension: str, key: str) -> float:
    """Least-squares slope of ``log rows[key]`` against ``log rows[dimension]``."""
    x = np.log([r[dimension] for r in rows])
    y = np.log([r[key] for r in rows])
    return float(np.polyfit(x, y, 1)[0])


def sweep(config: dict) -> dict[str, list[dict]]:
    runs = {}
    for dimension in DIMENSIONS:
        runs[dimension] = []
        for factor in config["factors"]:
            size = dict(config["base"])
            size[dimension] = max(2, round(size[dimension] * factor))
            runs[dimension].append(measure(**size, repeats=config["repeats"]))
            r = runs[dimension][-1]
            print(
                f"  {dimension}={size[dimension]}: {r['seconds']:.3f} s, "
                f"{r['iterations']} iterations, {r['peak_mib']:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
    return runs


COLUMNS = [
    ("varied", "varied", ""),
    ("n", "n", ""),
    ("d_in", "d_in", ""),
    ("d_out", "d_out", ""),
    ("seconds", "seconds", ".3f"),
    ("iters", "iterations", ""),
    ("s/iter", "seconds_per_iteration", ".2e"),
    ("peak MiB", "peak_mib", ".1f"),
    ("input MiB", "input_mib", ".1f"),
    ("status", "status", ""),
]
SLOPE_COLUMNS = [
    ("varied", "varied", ""),
    ("time slope", "time", ".2f"),
    ("s/iter slope", "per_iteration", ".2f"),
    ("memory slope", "memory", ".2f"),
]


def report(payload: dict) -> str:
    rows = [{"varied": d, **r} for d, runs in payload["runs"].items() for r in runs]
    slopes = [{"varied": d, **s} for d, s in payload["slopes"].items()]
    base = payload["config"]["base"]
    return "\n\n".join(
        [
            f"# ADMM scaling in n, d_in, d_out ({'quick' if payload['quick'] else 'full'} run)",
            format_machine(payload["machine"]),
            f"Base size n={base['n']}, d_in={base['d_in']}, d_out={base['d_out']}; eps = {EPS} "
            f"layer-wide, float64, 1 BLAS thread, best of {payload['config']['repeats']}. "
            "Peak MiB: tracemalloc's peak during the solve (NumPy and Python allocations).",
            column_table(rows, COLUMNS),
            "## Fitted log-log slopes",
            column_table(slopes, SLOPE_COLUMNS),
        ]
    )


def plot(payload: dict, stem: str) -> list:
    """Time and peak memory against each dimension, log-log, slopes in the legend."""
    from plots import log_axis, save, subplots

    fig, (left, right) = subplots(2, width=5.2, height=4.2)
    for dimension, rows in payload["runs"].items():
        sizes = [r[dimension] / payload["config"]["base"][dimension] for r in rows]
        s = payload["slopes"][dimension]
        left.plot(
            sizes, [r["seconds"] for r in rows], "o-", label=f"{dimension} (slope {s['time']:.2f})"
        )
        right.plot(
            sizes,
            [r["peak_mib"] for r in rows],
            "o-",
            label=f"{dimension} (slope {s['memory']:.2f})",
        )
    for ax in (left, right):
        log_axis(ax, "xy")
        ax.set_xticks(
            payload["config"]["factors"], [f"{f:g}" for f in payload["config"]["factors"]]
        )
        ax.set_xlabel("size / base size (one dimension varied)")
        ax.legend(title="varied")
    base = payload["config"]["base"]
    where = f"base n={base['n']}, d_in={base['d_in']}, d_out={base['d_out']}"
    left.set(ylabel="seconds (ADMM solve)", title=f"Time, {where}")
    right.set(ylabel="peak traced memory (MiB)", title=f"Memory, {where}")
    return [save(fig, stem)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    with threadpool_limits(1):
        info = machine_info()
        print(format_machine(info), flush=True)
        warm_up(np.float64)
        measure(50, 5, 3, repeats=1)  # cvxpy-free warm path: numba kernels loaded
        runs = sweep(config)
    slopes = {
        d: {
            "time": slope(rows, d, "seconds"),
            "per_iteration": slope(rows, d, "seconds_per_iteration"),
            "memory": slope(rows, d, "peak_mib"),
        }
        for d, rows in runs.items()
    }
    payload = {
        "benchmark": "scaling",
        "quick": args.quick,
        "machine": info,
        "eps": EPS,
        "config": config,
        "runs": runs,
        "slopes": slopes,
    }
    text = report(payload)
    print(text)
    print("wrote", *write_results("scaling_quick" if args.quick else "scaling", payload, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())

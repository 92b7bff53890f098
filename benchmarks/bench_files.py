"""Pruned networks that are actually smaller: file bytes, load time, sparse forward (issue 12).

Cases: the bundled 64-128-128-10 digits MLP pruned by cascade Net-Trim (eps 0.05, all 1257
calibration rows), the 784-300-100-10 MNIST MLP (``mnist_mlp.py``) pruned by cascade
Net-Trim (eps 0.1, its 3500 training images; the pruned network is cached in
``benchmarks/.cache/``), and one 784x300 layer pruned 2:4 by magnitude (MNIST's first layer;
a Gaussian one in ``--quick``). For each: the file bytes of ``.npz`` (deflated and not) and
``.safetensors``, dense and in the sparse layouts ``Network.save`` picks by default; the
ideal ``nnz * (value bytes + 4) + 4 * (d_out + 1)`` bytes per weight (CSR with int32
indices) plus the biases' bytes, and the file's ratio to it (target <= 1.3); the best-of-5
load time of each file; and the forward time of the dense network and of its
``nettrim.sparse.to_sparse`` copy on the held-out inputs (one BLAS thread for both, best of
a few runs, one process). PyTorch: the same 784x300 layer as an ``nn.Linear`` at 90% and
95% sparsity, ``F.linear`` against ``torch.sparse.mm`` with a CSR and a COO weight (float32,
one thread).

Crossover: a 784x300 Gaussian layer at sparsities 50% to 99.5% (random support), 4096
samples, float32 and float64, 1 and 2 threads (threadpoolctl; SciPy's sparse product is
single-threaded, so "2 threads" is dense BLAS on 2 threads against the same sparse code):
``X @ W`` dense against ``X @ csr_array(W)``, the lowest sparsity where sparse is faster
(the last change of sign, interpolated in log time), and the verdict at 95% with 1 thread.

Timings are noisy on a shared machine (best of several repeats, load average recorded).
``--quick`` (CI): the digits network and the Gaussian 2:4 layer, fewer repeats, a coarser
grid. Results: ``benchmarks/results/files[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from machine import format_machine, machine_info, markdown_table, write_results
from nettrim import DenseLayer, Network, load_digits_mlp, net_trim, prune_layer
from nettrim.io import stored_layouts
from nettrim.sparse import to_sparse

TARGET_RATIO = 1.3
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
FULL_GRID = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995)
QUICK_GRID = (0.5, 0.8, 0.9, 0.95, 0.99)
CROSSOVER_SHAPE, CROSSOVER_ROWS = (784, 300), 4096
MNIST_EPS, DIGITS_EPS = 0.1, 0.05


def best_time(f, repeats: int) -> float:
    f()  # warm: caches, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def ideal_bytes(network: Network) -> int:
    """CSR with int32 indices per weight (rows = outputs), plus the biases dense."""
    total = 0
    for layer in network.layers:
        W = np.asarray(layer.W)
        total += layer.nnz * (W.itemsize + 4) + 4 * (W.shape[1] + 1)
        total += 0 if layer.b is None else layer.b.nbytes
    return total


def pruned_mnist() -> tuple[Network, Network, np.ndarray]:
    from mnist_mlp import load_mnist_mlp

    net, X_train, _, X_test, _ = load_mnist_mlp()
    path = CACHE_DIR / f"files_mnist_cascade_eps{MNIST_EPS}.npz"
    if not path.is_file():
        result = net_trim(net, X_train, scheme="cascade", eps=MNIST_EPS, n_jobs=1)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        result.network.save(path)  # atomic: a concurrent reader never sees a partial file
    return net, Network.load(path), X_test


def two_four_layer(quick: bool) -> tuple[str, Network, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, 784))
    if quick:
        W, b, name = rng.standard_normal((784, 300)) / 28.0, np.zeros(300), "gaussian 784x300"
    else:
        from mnist_mlp import load_mnist_mlp

        net, _, _, X_test, _ = load_mnist_mlp()
        W, b, name, X = net[0].W, net[0].b, "mnist layer 0 (784x300)", X_test
    result = prune_layer(None, W, b, gram=np.eye(784), pattern="2:4", method="magnitude")
    return f"{name}, 2:4 by magnitude", Network((DenseLayer(result.W, b, "relu"),)), X


def file_rows(name: str, network: Network, X: np.ndarray, repeats: int) -> list[dict]:
    rows = []
    ideal = ideal_bytes(network)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, options in [
            ("npz", {"compressed": False}),
            ("npz deflated", {"compressed": True}),
            ("safetensors", {}),
        ]:
            ext = "safetensors" if fmt == "safetensors" else "npz"
            sizes, loads = {}, {}
            for layout in ("dense", "auto"):
                path = os.path.join(tmp, f"{layout}.{ext}")
                network.save(path, layout=layout, **options)
                sizes[layout] = os.path.getsize(path)
                loads[layout] = best_time(lambda path=path: Network.load(path), repeats)
            rows.append(
                {
                    "case": name,
                    "format": fmt,
                    "layouts": stored_layouts(path),
                    "dense_bytes": sizes["dense"],
                    "sparse_bytes": sizes["auto"],
                    "ratio": sizes["dense"] / sizes["auto"],
                    "ideal_bytes": ideal,
                    "vs_ideal": sizes["auto"] / ideal,
                    "load_dense_s": loads["dense"],
                    "load_sparse_s": loads["auto"],
                }
            )
    return rows


def forward_row(name: str, network: Network, X: np.ndarray, repeats: int) -> dict:
    sparse_net = to_sparse(network)
    with threadpool_limits(1):
        dense_s = best_time(lambda: network(X), repeats)
        sparse_s = best_time(lambda: sparse_net(X), repeats)
    return {
        "case": name,
        "rows": len(X),
        "sparsity": 1 - network.nnz / network.size,
        "layer_sparsity": [1 - layer.nnz / layer.W.size for layer in network.layers],
        "threads": 1,
        "dense_s": dense_s,
        "sparse_s": sparse_s,
        "speedup": dense_s / sparse_s,
        "max_abs_difference": float(np.abs(sparse_net(X) - network(X)).max()),
    }


def crossover(grid, repeats: int) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((CROSSOVER_ROWS, CROSSOVER_SHAPE[0])).astype(dtype)
        base = rng.standard_normal(CROSSOVER_SHAPE).astype(dtype)
        for threads in (1, 2):
            with threadpool_limits(threads):
                points = []
                for sparsity in grid:
                    W = np.where(rng.random(CROSSOVER_SHAPE) >= sparsity, base, 0).astype(dtype)
                    Ws = to_sparse(Network((DenseLayer(W, None, "linear"),)))[0].W
                    dense_s = best_time(lambda X=X, W=W: X @ W, repeats)
                    sparse_s = best_time(lambda X=X, Ws=Ws: X @ Ws, repeats)
                    points.append({"sparsity": sparsity, "dense_s": dense_s, "sparse_s": sparse_s})
            rows.append(
                {
                    "dtype": np.dtype(dtype).name,
                    "threads": threads,
                    "points": points,
                    "crossover": crossing(points),
                }
            )
    return rows


def torch_sparse(repeats: int) -> list[dict]:
    """PyTorch's write-back: a 784x300 ``nn.Linear`` (float32, 4096 samples, one thread) run
    dense (``F.linear``) against ``torch.sparse.mm`` with its weight in CSR and COO, at 90%
    and 95% sparsity (random support)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    X = torch.from_numpy(rng.standard_normal((CROSSOVER_ROWS, CROSSOVER_SHAPE[0]), np.float32))
    rows = []
    for sparsity in (0.9, 0.95):
        W = rng.standard_normal(CROSSOVER_SHAPE[::-1]).astype(np.float32)  # (d_out, d_in)
        W[rng.random(W.shape) < sparsity] = 0.0
        Wt = torch.from_numpy(W)
        b = torch.zeros(W.shape[0])
        csr, coo = Wt.to_sparse_csr(), Wt.to_sparse()
        with torch.no_grad():
            dense_s = best_time(lambda Wt=Wt, b=b: F.linear(X, Wt, b), repeats)
            # (d_out, d_in) @ (d_in, n), then back to rows: what a sparse Linear computes
            csr_s = best_time(lambda W=csr, b=b: torch.sparse.mm(W, X.T).T + b, repeats)
            coo_s = best_time(lambda W=coo, b=b: torch.sparse.mm(W, X.T).T + b, repeats)
            error = float((torch.sparse.mm(csr, X.T).T + b - F.linear(X, Wt, b)).abs().max())
        rows.append(
            {
                "sparsity": sparsity,
                "dense_s": dense_s,
                "csr_s": csr_s,
                "coo_s": coo_s,
                "csr_speedup": dense_s / csr_s,
                "coo_speedup": dense_s / coo_s,
                "max_abs_difference": error,
            }
        )
    torch.set_num_threads(os.cpu_count() or 1)
    return rows


def crossing(points: list[dict]) -> float | None:
    """The sparsity from which sparse is faster at every grid point above it: the last
    change of sign of ``log(dense / sparse)``, interpolated linearly between the two grid
    points around it (noise can flip a single point; this takes the conservative side).
    ``None`` when sparse is not faster even at the sparsest point."""
    gains = [np.log(p["dense_s"] / p["sparse_s"]) for p in points]
    if gains[-1] <= 0:
        return None
    slower = [i for i, g in enumerate(gains) if g <= 0]
    if not slower:
        return points[0]["sparsity"]
    i = slower[-1]
    a, b, ga, gb = points[i], points[i + 1], gains[i], gains[i + 1]
    return a["sparsity"] + (b["sparsity"] - a["sparsity"]) * (-ga) / (gb - ga)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits and a Gaussian 2:4 layer")
    args = parser.parse_args()
    info = machine_info()
    print(format_machine(info), flush=True)
    repeats = 3 if args.quick else 7
    load_before = os.getloadavg()
    start = time.perf_counter()
    model = load_digits_mlp()
    digits = net_trim(model.network, model.X_calib, scheme="cascade", eps=DIGITS_EPS, n_jobs=1)
    cases = [(f"digits 64-128-128-10, cascade eps {DIGITS_EPS}", digits.network, model.X_test)]
    if not args.quick:
        _, mnist, X_test = pruned_mnist()
        cases.append((f"mnist 784-300-100-10, cascade eps {MNIST_EPS}", mnist, X_test))
    cases.append(two_four_layer(args.quick))
    files, forwards = [], []
    for name, network, X in cases:
        print(f"{name}: files and forward", flush=True)
        files += file_rows(name, network, X, repeats)
        forwards.append(forward_row(name, network, X, repeats))
    print("crossover", flush=True)
    cross = crossover(QUICK_GRID if args.quick else FULL_GRID, repeats)
    print("torch.sparse", flush=True)
    torch_rows = torch_sparse(repeats)
    payload = {
        "benchmark": "files",
        "quick": args.quick,
        "machine": info,
        "target_ratio": TARGET_RATIO,
        "files": files,
        "forward": forwards,
        "crossover": cross,
        "torch_sparse": torch_rows,
        "load_average": [load_before[0], os.getloadavg()[0]],
        "seconds": time.perf_counter() - start,
    }
    report(payload, "files_quick" if args.quick else "files")


def verdicts(payload: dict) -> dict:
    files = payload["files"]
    worst = max(row["vs_ideal"] for row in files if row["format"] != "npz deflated")
    at95 = {}
    for row in payload["crossover"]:
        if row["threads"] == 1:
            point = next(p for p in row["points"] if p["sparsity"] == 0.95)
            at95[row["dtype"]] = point["dense_s"] / point["sparse_s"]
    return {
        "worst_vs_ideal": worst,
        "size_target_met": worst <= payload["target_ratio"],
        "speedup_at_95_1_thread": at95,
        "sparse_faster_at_95_1_thread": all(s > 1 for s in at95.values()),
    }


def report(payload: dict, name: str) -> None:
    payload["verdicts"] = v = verdicts(payload)
    file_table = markdown_table(
        ["case", "format", "layouts", "dense bytes", "sparse bytes", "dense/sparse", "ideal",
         "sparse/ideal", "load dense ms", "load sparse ms"],
        [
            [r["case"], r["format"], ", ".join(r["layouts"]), f"{r['dense_bytes']:,}",
             f"{r['sparse_bytes']:,}", f"{r['ratio']:.2f}x", f"{r['ideal_bytes']:,}",
             f"{r['vs_ideal']:.3f}", f"{1e3 * r['load_dense_s']:.2f}",
             f"{1e3 * r['load_sparse_s']:.2f}"]
            for r in payload["files"]
        ],
    )  # fmt: skip
    forward_table = markdown_table(
        ["case", "rows", "sparsity", "per layer", "dense ms", "sparse ms", "dense/sparse"],
        [
            [r["case"], r["rows"], f"{r['sparsity']:.1%}",
             ", ".join(f"{s:.1%}" for s in r["layer_sparsity"]), f"{1e3 * r['dense_s']:.2f}",
             f"{1e3 * r['sparse_s']:.2f}", f"{r['speedup']:.2f}x"]
            for r in payload["forward"]
        ],
    )  # fmt: skip
    grid = [p["sparsity"] for p in payload["crossover"][0]["points"]]
    cross_table = markdown_table(
        ["dtype", "threads", *(f"{s:.1%}" for s in grid), "crossover"],
        [
            [r["dtype"], r["threads"],
             *(f"{p['dense_s'] / p['sparse_s']:.2f}x" for p in r["points"]),
             "never" if r["crossover"] is None else f"{r['crossover']:.1%}"]
            for r in payload["crossover"]
        ],
    )  # fmt: skip
    speed = ", ".join(f"{k} {s:.2f}x" for k, s in v["speedup_at_95_1_thread"].items())
    torch_table = markdown_table(
        ["sparsity", "dense ms", "CSR ms", "COO ms", "dense/CSR", "dense/COO"],
        [
            [f"{r['sparsity']:.0%}", f"{1e3 * r['dense_s']:.2f}", f"{1e3 * r['csr_s']:.2f}",
             f"{1e3 * r['coo_s']:.2f}", f"{r['csr_speedup']:.2f}x", f"{r['coo_speedup']:.2f}x"]
            for r in payload["torch_sparse"]
        ],
    )  # fmt: skip
    lines = [
        f"# Network files and the sparse forward{', quick run' if payload['quick'] else ''}, "
        f"{payload['seconds']:.0f} s in all",
        "",
        format_machine(payload["machine"]),
        "",
        f"load average before/after: {payload['load_average'][0]:.2f}/"
        f"{payload['load_average'][1]:.2f} (1-minute; a shared machine: timings are noisy)",
        "",
        "## File bytes (sparse = the layouts `Network.save` picks by default) and load time",
        "",
        file_table,
        "",
        "ideal = sum over weights of nnz * (value bytes + 4) + 4 * (d_out + 1) (CSR, int32 "
        "indices), plus the biases; load = best of the repeats",
        "",
        f"File size target (sparse <= {payload['target_ratio']}x ideal, .npz and .safetensors "
        f"without deflate): worst {v['worst_vs_ideal']:.3f}x: "
        + ("met" if v["size_target_met"] else "NOT met"),
        "",
        "## Forward time, dense vs sparse (1 BLAS thread for both, held-out inputs)",
        "",
        forward_table,
        "",
        f"## Crossover: {CROSSOVER_SHAPE[0]}x{CROSSOVER_SHAPE[1]} layer, {CROSSOVER_ROWS} "
        "samples, dense time / sparse time by sparsity",
        "",
        cross_table,
        "",
        "2 threads: dense BLAS on 2 threads; SciPy's sparse product runs on one.",
        "",
        f"Sparse faster than dense at 95% with 1 thread: {speed}: "
        + (
            "yes"
            if v["sparse_faster_at_95_1_thread"]
            else "NO: the dense path stays the default (to_sparse is opt-in)"
        ),
        "",
        f"## PyTorch: {CROSSOVER_SHAPE[0]}x{CROSSOVER_SHAPE[1]} `nn.Linear`, "
        f"{CROSSOVER_ROWS} samples, float32, 1 thread: `F.linear` vs `torch.sparse.mm`",
        "",
        torch_table,
        "",
        "The adapter writes weights back dense (`nn.Linear` as it was); "
        "`nettrim.torch.sparsify_linear` then runs the modules at least 90% sparse through a "
        "CSR weight (`torch.sparse.mm`).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    json_path, md_path = write_results(name, payload, markdown)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()

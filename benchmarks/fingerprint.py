"""Fingerprints of the weights nettrim computes: a guard for changes meant to change nothing.

Runs a fixed set of cases through the public API — the demo's network (both schemes), every
Net-Trim program variant and solver, reweighting, tuning, every L0 method and pattern, and
the network-level L0 driver — and records the SHA-256 of every returned weight and bias
array. A refactor that keeps behaviour leaves every hash unchanged:

    python benchmarks/fingerprint.py --write   # before: writes results/fingerprint.json
    python benchmarks/fingerprint.py           # after: compares, exits 1 on any change

Hashes are of the raw bytes, so they hold on one machine and BLAS build; compare runs made
on the same machine (the file records it). Runs in about a minute, in-process, with one
BLAS thread (thread counts change reduction orders).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import nettrim
from nettrim.tuning import tune_layer

RESULTS = Path(__file__).resolve().parent / "results" / "fingerprint.json"


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _relu_layer(seed: int, n: int = 200, d_in: int = 12, d_out: int = 6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in)) @ (np.eye(d_in) + 0.3 * rng.standard_normal((d_in, d_in)))
    W = rng.standard_normal((d_in, d_out)) * (rng.random((d_in, d_out)) < 0.5)
    b = 0.3 * rng.standard_normal(d_out)
    Z = X @ W + b
    return X.astype(dtype), W, b, np.maximum(Z, 0.0).astype(dtype), Z.astype(dtype)


def _trim_cases() -> Iterator[tuple[str, Callable]]:
    X, _, _, Y, Z = _relu_layer(0)
    X32, _, _, Y32, _ = _relu_layer(0, dtype=np.float32)
    Xl, _, _, Yl, _ = _relu_layer(1, n=600, d_in=40, d_out=20)
    upper = np.abs(Z) * 0.1
    for solver in ("admm", "clarabel", "scs"):
        yield f"trim/relu/{solver}", lambda s=solver: nettrim.trim_layer(X, Y, solver=s)
        yield (
            f"trim/relu-per-neuron/{solver}",
            lambda s=solver: nettrim.trim_layer(X, Y, solver=s, per_neuron=True),
        )
        yield (
            f"trim/linear/{solver}",
            lambda s=solver: nettrim.trim_layer(X, Z, activation="linear", solver=s),
        )
    for solver in ("admm", "clarabel", "osqp"):
        yield (
            f"trim/penalty/{solver}",
            lambda s=solver: nettrim.trim_layer(X, Y, solver=s, penalty=5),
        )
    yield "trim/upper/admm", lambda: nettrim.trim_layer(X, Y, solver="admm", upper=upper)
    yield "trim/eps0/admm", lambda: nettrim.trim_layer(X, Y, solver="admm", eps=0.0)
    yield "trim/float32/admm", lambda: nettrim.trim_layer(X32, Y32, solver="admm")
    yield "trim/nobias/admm", lambda: nettrim.trim_layer(X, Y, solver="admm", bias=False)
    yield "trim/larger/admm", lambda: nettrim.trim_layer(Xl, Yl, solver="admm", eps=0.05)
    yield (
        "trim/larger-per-neuron/admm",
        lambda: nettrim.trim_layer(Xl, Yl, solver="admm", eps=0.05, per_neuron=True),
    )
    yield "reweighted/admm", lambda: nettrim.reweighted_trim_layer(X, Y, solver="admm", rounds=2)
    yield "tune/sparsity", lambda: tune_layer(X, Y, target_sparsity=0.6, solver="admm").result


def _l0_cases() -> Iterator[tuple[str, Callable]]:
    X, W, b, _, _ = _relu_layer(2, n=300, d_in=16, d_out=8)
    for method in ("admm", "iht", "magnitude", "wanda", "sparsegpt"):
        for pattern in ("unstructured", "2:4"):
            yield (
                f"l0/{method}/{pattern}",
                lambda m=method, p=pattern: nettrim.prune_layer(
                    X, W, b, sparsity=0.5, method=m, pattern=p
                ),
            )
    for pattern in ("per_output", "inputs", "outputs"):
        yield (
            f"l0/admm/{pattern}",
            lambda p=pattern: nettrim.prune_layer(X, W, b, sparsity=0.5, pattern=p),
        )
    yield (
        "l0/admm-relu",
        lambda: nettrim.prune_layer(X, W, b, sparsity=0.5, activation="relu", method="iht"),
    )


def _weights(result) -> tuple:
    return (result.W, result.b)


def _network_of(result):
    """The pruned network of a scheme's result (an object with ``.network``, or a tuple)."""
    return result[0] if isinstance(result, tuple) else result.network


def _network_cases() -> Iterator[tuple[str, Callable, Callable]]:
    model = nettrim.load_digits_mlp()
    net, Xc = model.network, model.X_calib
    for scheme in ("parallel", "cascade"):
        yield (
            f"net/digits/{scheme}",
            lambda s=scheme: nettrim.net_trim(net, Xc, scheme=s, eps=0.05, n_jobs=1),
            lambda r: [(layer.W, layer.b) for layer in r.network.layers],
        )
    yield (
        "net/digits/cascade-reweighted",
        lambda: nettrim.net_trim(
            net, Xc[:400], scheme="cascade", eps=0.1, n_jobs=1, reweight_rounds=2
        ),
        lambda r: [(layer.W, layer.b) for layer in r.network.layers],
    )
    yield (
        "net/digits/l0",
        lambda: nettrim.prune_network(net, Xc, sparsity=0.7),
        # prune_network returns the network first (a tuple today, a result object later)
        lambda r: [
            (layer.W, layer.b)
            for layer in getattr(r, "network", r[0] if isinstance(r, tuple) else r).layers
        ],
    )


def fingerprints() -> dict[str, str]:
    out: dict[str, str] = {}
    with threadpool_limits(1):
        for name, run in (*_trim_cases(), *_l0_cases()):
            out[name] = _digest(*_weights(run()))
            print(f"{name:40s} {out[name]}", flush=True)
        for name, run, weights in _network_cases():
            out[name] = _digest(*(a for pair in weights(run()) for a in pair))
            print(f"{name:40s} {out[name]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the fingerprints")
    parser.add_argument("--file", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    current = fingerprints()
    if args.write:
        args.file.write_text(json.dumps(current, indent=1) + "\n")
        print(f"wrote {args.file}")
        return 0
    recorded = json.loads(args.file.read_text())
    changed = sorted(k for k in recorded if current.get(k) != recorded[k])
    missing = sorted(set(recorded) - set(current))
    for k in changed:
        print(f"CHANGED {k}: {recorded[k]} -> {current.get(k)}")
    print(
        f"{len(recorded) - len(changed)} of {len(recorded)} unchanged; missing: {missing or 'none'}"
    )
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())

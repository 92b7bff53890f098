"""The demo job: prune the bundled digits network layer by layer and report."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .datasets import load_digits_mlp
from .guarantees import verify
from .layer import relative_discrepancy
from .network import Network
from .results import deprecated_alias
from .schemes import net_trim
from .tables import format_layer_table


@dataclass(frozen=True)
class LayerRow:
    index: int
    shape: tuple[int, int]
    nnz_before: int
    nnz_after: int
    residual: float
    radius: float
    status: str
    solver: str
    seconds: float
    relative_residual: float = float("nan")
    eps: float = float("nan")
    budget: str = "-"


@dataclass(frozen=True)
class DemoReport:
    model: str
    eps: float
    scheme: str
    n_calib: int
    n_calib_total: int
    rows: list[LayerRow]
    accuracy_before: float
    accuracy_after: float
    discrepancy_test: float
    seconds: float
    pruned: Network

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "eps": self.eps,
            "scheme": self.scheme,
            "n_calib": self.n_calib,
            "n_calib_total": self.n_calib_total,
            "layers": [row.__dict__ | {"shape": list(row.shape)} for row in self.rows],
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
            "discrepancy_test": self.discrepancy_test,
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """The demo's table (the layout of ``nettrim prune``'s) and its held-out figures."""
        title = (
            f"nettrim demo — {self.model}, {self.scheme} Net-Trim, eps = {self.eps} (relative, "
            f"layer-wide), {self.n_calib} of {self.n_calib_total} calibration samples"
        )
        rows = [
            {
                "layer": r.index,
                "shape": r.shape,
                "nnz_before": r.nnz_before,
                "nnz_after": r.nnz_after,
                "sparsity": 1.0 - r.nnz_after / (r.shape[0] * r.shape[1]),
                "relative_residual": r.relative_residual,
                "eps": r.eps,
                "budget": r.budget,
                "status": r.status,
                "seconds": r.seconds,
            }
            for r in self.rows
        ]
        before = sum(r.nnz_before for r in self.rows)
        after = sum(r.nnz_after for r in self.rows)
        footer = [
            "discrep. = ||(X W + b - Y)_Omega||_F / ||Y||_F on the calibration inputs; eps = "
            "its budget; budget = 'met', 'within tol' or 'FAILS' (as nettrim prune)",
            f"weights kept: {after} of {before} ({after / before:.1%})",
            f"test accuracy: {self.accuracy_before:.4f} before, {self.accuracy_after:.4f} after "
            f"({len(self.rows)} layers, held-out test split)",
            f"relative output discrepancy on the test split: {self.discrepancy_test:.4f}",
            f"total seconds: {self.seconds:.1f}",
        ]
        return format_layer_table(title, rows, footer)

    format = deprecated_alias("format", "summary")

    def __str__(self) -> str:
        return self.summary()


def run_demo(
    *,
    eps: float = 0.05,
    scheme: str = "parallel",
    n_calib: int | None = None,
    solver: str = "auto",
    seed: int = 0,
) -> DemoReport:
    """Prune every layer of the bundled network with :func:`~nettrim.net_trim`; measure it.

    Layers are fitted on the calibration split (or a seeded subsample of ``n_calib`` rows
    of it), in this process; accuracy and discrepancy are measured on the held-out split.
    """
    started = time.perf_counter()
    model = load_digits_mlp()
    net = model.network
    X = model.X_calib
    if n_calib is not None and n_calib < len(X):
        rows = np.sort(np.random.default_rng(seed).choice(len(X), n_calib, replace=False))
        X = X[rows]
    # in-process with BLAS on every core: three small layers do not pay for a pool
    result = net_trim(net, X, scheme=scheme, eps=eps, solver=solver, n_jobs=1, blas_threads=None)
    checked = verify(net, result, X)
    norms = [float(np.linalg.norm(Y)) for Y in net.record(X)[1:]]
    table = [
        LayerRow(
            index=i,
            shape=layer.shape,
            nnz_before=layer.nnz,
            nnz_after=res.nnz,
            residual=res.info.residual,
            radius=res.info.radius,
            status=res.status.value,
            solver=res.info.solver,
            seconds=res.info.seconds,
            relative_residual=res.info.residual / norms[i] if norms[i] > 0 else float("nan"),
            eps=float(result.eps[i]),
            budget=checked.layers[i].budget,
        )
        for i, (layer, res) in enumerate(zip(net.layers, result.layers, strict=True))
    ]
    pruned = result.network
    out_before = net.forward(model.X_test)
    out_after = pruned.forward(model.X_test)
    return DemoReport(
        model=model.name,
        eps=eps,
        scheme=scheme,
        n_calib=len(X),
        n_calib_total=len(model.X_calib),
        rows=table,
        accuracy_before=net.accuracy(model.X_test, model.y_test),
        accuracy_after=pruned.accuracy(model.X_test, model.y_test),
        discrepancy_test=relative_discrepancy(out_after, out_before),
        seconds=time.perf_counter() - started,
        pruned=pruned,
    )

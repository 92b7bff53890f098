"""The demo job: prune the bundled digits network layer by layer and report."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .datasets import load_digits_mlp
from .layer import relative_discrepancy
from .network import Network
from .results import deprecated_alias
from .schemes import net_trim


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
        """The demo's table and its held-out figures."""
        lines = [
            f"nettrim demo — {self.model}, {self.scheme} Net-Trim, eps = {self.eps} (relative, "
            f"layer-wide), {self.n_calib} of {self.n_calib_total} calibration samples",
            "",
            f"{'layer':>5} {'shape':>9} {'nnz before':>10} {'nnz after':>9} {'kept':>6} "
            f"{'||resid||':>10} {'eps_abs':>10} {'status':>9} {'solver':>8} {'seconds':>8}",
        ]
        for r in self.rows:
            kept = r.nnz_after / r.nnz_before if r.nnz_before else 0.0
            lines.append(
                f"{r.index:>5} {r.shape[0]:>4}x{r.shape[1]:<4} {r.nnz_before:>10} "
                f"{r.nnz_after:>9} {kept:>6.1%} {r.residual:>10.4g} {r.radius:>10.4g} "
                f"{r.status:>9} {r.solver:>8} {r.seconds:>8.2f}"
            )
        before = sum(r.nnz_before for r in self.rows)
        after = sum(r.nnz_after for r in self.rows)
        lines += [
            "",
            f"weights kept: {after} of {before} ({after / before:.1%})",
            f"test accuracy: {self.accuracy_before:.4f} before, {self.accuracy_after:.4f} after "
            f"({len(self.rows)} layers, held-out test split)",
            f"relative output discrepancy on the test split: {self.discrepancy_test:.4f}",
            f"total seconds: {self.seconds:.1f}",
        ]
        return "\n".join(lines)

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

"""Sweeps: one pruning per point of an ``eps`` grid (Net-Trim) or a sparsity grid (L0), each
measured the same way — sparsity, the network's relative output discrepancy and, with
labels, accuracy — so the trade-off reads off one table or one curve.

Net-Trim points are warm-started from the previous point's weights (``net_trim``'s
``warm_start``, which the ADMM uses): sort the grid so that neighbours are close. The L0
methods take no per-layer warm start from a network result, so each point starts afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .network import Network
from .validation import check_network, check_network_inputs, check_scalar


@dataclass(frozen=True)
class SweepPoint:
    """One point: the grid value, and what the pruned network measured.

    ``discrepancy`` is ``||f_pruned(X) - f(X)||_F / ||f(X)||_F`` on the evaluation inputs;
    ``accuracy`` the fraction of evaluation labels the pruned network predicts (``None``
    without labels); ``success`` whether every layer's solve ended ``optimal``.
    """

    value: float
    sparsity: float
    nnz: int
    discrepancy: float
    accuracy: float | None
    success: bool
    seconds: float


@dataclass(frozen=True)
class SweepResult:
    """The points of a sweep, in grid order, and the unpruned network's figures."""

    parameter: str
    method: str
    points: tuple[SweepPoint, ...]
    accuracy_before: float | None = None
    options: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(p.success for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "sweep",
            "parameter": self.parameter,
            "method": self.method,
            "accuracy_before": self.accuracy_before,
            "options": self.options,
            "points": [asdict(p) for p in self.points],
        }

    def summary(self) -> str:
        """One row per point."""
        lines = [
            f"sweep of {self.parameter} ({self.method}), {len(self.points)} points"
            + (
                f"; accuracy before pruning {self.accuracy_before:.4f}" if self.has_accuracy else ""
            ),
            "",
            f"{self.parameter:>9} {'sparsity':>8} {'nnz':>8} {'discrep.':>9} "
            f"{'accuracy':>8} {'optimal':>7} {'seconds':>8}",
        ]
        for p in self.points:
            accuracy = "-" if p.accuracy is None else f"{p.accuracy:.4f}"
            lines.append(
                f"{p.value:>9.4g} {p.sparsity:>8.1%} {p.nnz:>8} {p.discrepancy:>9.4g} "
                f"{accuracy:>8} {'yes' if p.success else 'no':>7} {p.seconds:>8.2f}"
            )
        return "\n".join(lines)

    @property
    def has_accuracy(self) -> bool:
        return self.accuracy_before is not None

    def __str__(self) -> str:
        return self.summary()


def sweep(
    network: Network,
    X,
    grid: Sequence[float],
    *,
    method: str = "nettrim",
    eval_inputs=None,
    labels=None,
    progress: Callable[[int, SweepPoint], None] | None = None,
    **options: Any,
) -> SweepResult:
    """Prune ``network`` once per grid value and measure each pruned network.

    Parameters
    ----------
    network : Network
    X : array-like of shape (n, d_0)
        Calibration inputs.
    grid : sequence of float
        ``eps`` values (``method="nettrim"``) or sparsities (an L0 method).
    method : str
        ``"nettrim"`` (:func:`~nettrim.net_trim`) or a method of
        :func:`~nettrim.prune_network`.
    eval_inputs : array-like of shape (m, d_0), optional
        Where the discrepancy and accuracy are measured (``X`` when ``None``; held-out
        samples say more).
    labels : array-like of shape (m,), optional
        Class labels of the evaluation inputs: accuracy is ``argmax`` of the outputs.
    progress : callable, optional
        ``progress(index, point)`` after each point.
    **options
        Passed to ``net_trim`` or ``prune_network`` at every point.

    Returns
    -------
    SweepResult
    """
    from .pruning import prune_network
    from .schemes import net_trim

    check_network(network)
    grid = [check_scalar(f"grid[{i}]", v, low=0.0) for i, v in enumerate(grid)]
    if not grid:
        raise ValueError("grid is empty; give at least one value")
    evaluation = X if eval_inputs is None else eval_inputs
    evaluation = check_network_inputs(network, evaluation, np.dtype(np.float64))
    labels = _check_labels(labels, evaluation.shape[0])
    reference = network(evaluation)
    points, previous = [], None
    for i, value in enumerate(grid):
        started = time.perf_counter()
        if method == "nettrim":
            # a network with convolutions is solved stage by stage, without warm starts
            warm = previous if network.is_dense else None
            result = net_trim(network, X, eps=value, warm_start=warm, **options)
            previous = result
        else:
            result = prune_network(network, X, sparsity=value, method=method, **options)
        pruned = result.network
        outputs = pruned(evaluation)
        norm = float(np.linalg.norm(reference))
        point = SweepPoint(
            value=float(value),
            sparsity=1.0 - pruned.nnz / network.size,
            nnz=pruned.nnz,
            discrepancy=float(np.linalg.norm(outputs - reference)) / norm if norm else np.nan,
            accuracy=None if labels is None else _accuracy(outputs, labels),
            success=bool(result.success),
            seconds=time.perf_counter() - started,
        )
        points.append(point)
        if progress is not None:
            progress(i, point)
    return SweepResult(
        parameter="eps" if method == "nettrim" else "sparsity",
        method=method,
        points=tuple(points),
        accuracy_before=None if labels is None else _accuracy(reference, labels),
        options=dict(options),
    )


def _check_labels(labels, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n or labels.dtype.kind not in "iub":
        raise ValueError(
            f"labels must be integers of shape ({n},), one class per evaluation sample; got "
            f"dtype {labels.dtype} and shape {labels.shape}"
        )
    return labels


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=1) == labels))

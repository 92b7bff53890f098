"""The budgets of the Net-Trim schemes: each layer's absolute radius and, in the cascade, its
bound off Omega. Written once for the pruning (:func:`~nettrim.net_trim`) and the check
(:func:`~nettrim.verify`).

* **parallel**, and the cascade's first layer: ``radius_l = eps_l ||Y^(l)||_F`` (per neuron
  ``eps_l ||y_j^(l)||_2``);
* **cascade**, layer ``l >= 2``: with ``V_l = Yhat~^(l-1) W~_l`` (the original weights on the
  pruned input), ``radius_l^2 = gamma_l ||(V_l - Y^(l))_Omega||_F^2`` (per column in per-neuron
  mode; times ``kappa^2`` for the last layer), and the bound off Omega ``max(V_l, 0)``
  (``cascade_bound="relaxed"``) or ``V_l`` (``"paper"``) for a ReLU layer.

See ``docs/networks.md`` for the schemes and their guarantees.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .network import DenseLayer


def absolute_radius(Y: np.ndarray, eps, per_neuron: bool) -> float | np.ndarray:
    """The relative radius rule: ``eps * ||Y||_F``, or ``eps_j * ||y_j||_2`` per column."""
    if per_neuron:
        return np.broadcast_to(np.asarray(eps, np.float64), (Y.shape[1],)) * np.linalg.norm(
            Y, axis=0
        )
    return float(eps) * float(np.linalg.norm(Y))


def relative_budget(radius, Y: np.ndarray, per_neuron: bool) -> float | np.ndarray:
    """The inverse of :func:`absolute_radius`: ``radius / ||Y||`` (0 where ``Y`` is 0)."""
    if per_neuron:
        norms = np.linalg.norm(Y, axis=0)
        return np.divide(radius, norms, out=np.zeros_like(radius), where=norms > 0)
    norm = float(np.linalg.norm(Y))
    return radius / norm if norm > 0 else 0.0


def cascade_budget(
    layer: DenseLayer,
    X_hat: np.ndarray,
    Y: np.ndarray,
    *,
    gamma: float,
    kappa: float,
    per_neuron: bool,
    active_tol: float,
    cascade_bound: str,
) -> tuple[Any, np.ndarray | None]:
    """The cascade's rule for a layer after the first: its absolute radius and bound ``V``.

    ``layer`` is the original layer, ``X_hat`` the pruned network's input to it, ``Y`` the
    original output. ``V = Yhat~ W~`` (the original weights on the pruned input),
    ``radius^2 = gamma * kappa^2 * ||(V - Y)_Omega||^2`` (per column in per-neuron mode;
    ``kappa`` is 1 except for the last layer), and off Omega of a ReLU layer the bound
    ``max(V, 0)`` (``"relaxed"``) or ``V`` (``"paper"``; ``None`` for a linear layer).
    """
    V = layer.preactivation(X_hat)
    R = V - Y
    if layer.activation == "relu":
        R = np.where(active_tol < Y, R, 0.0)
    factor = gamma * kappa**2
    if per_neuron:
        radius = np.sqrt(factor) * np.linalg.norm(R, axis=0)
    else:
        radius = math.sqrt(factor) * float(np.linalg.norm(R))
    upper = None
    if layer.activation == "relu":
        upper = np.maximum(V, 0.0) if cascade_bound == "relaxed" else V
    return radius, upper


def warn_unlikely_budgets(eps_list, n_samples: int, widths) -> None:
    """Warn (``UserWarning``) where a run's settings are most likely a mistake: a relative
    ``eps >= 1`` (the all-zero layer meets it, so every weight may go) and fewer calibration
    samples than a layer has inputs (the pruned layer can fit the calibration set exactly
    and say little about other inputs)."""
    loose = [
        (l, float(np.max(e)))
        for l, e in enumerate(eps_list)
        if np.size(e) and float(np.max(e)) >= 1.0
    ]
    if loose:
        where = ", ".join(f"layer {l}: {e:g}" for l, e in loose)
        warnings.warn(
            f"eps >= 1 ({where}): a relative budget of 1 or more is met by the all-zero "
            "layer, so every weight may be pruned; budgets are fractions of ||Y||, e.g. 0.05",
            UserWarning,
            stacklevel=3,
        )
    thin = [(l, int(d)) for l, d in enumerate(widths) if n_samples < d]
    if thin:
        where = ", ".join(f"layer {l} has {d}" for l, d in thin)
        warnings.warn(
            f"{n_samples} calibration samples but {where} inputs: with fewer samples than "
            "inputs the pruned network fits the calibration set and its guarantees say "
            "little about other inputs; measure it on held-out data, or calibrate on more",
            UserWarning,
            stacklevel=3,
        )

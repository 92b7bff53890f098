"""(P5), the ReLU-aware L0 program, by projected gradient (IHT) with momentum and restart."""

from __future__ import annotations

import time

import numpy as np

from ..projections import SparsityPattern
from ..result import L0Info, SolverResult
from .iht import accelerated_iht
from .scaling import dot, lipschitz


def p5_loss(
    X: np.ndarray, W: np.ndarray, Y: np.ndarray, active: np.ndarray, upper: np.ndarray
) -> tuple[float, float, float, np.ndarray]:
    """``(loss, residual on Omega, violation off Omega, R)`` of (P5) at ``W``.

    ``R`` ``(n, m)`` is the residual whose ``2 X^T R`` is the gradient:
    ``X W - Y`` on Omega, ``(X W - V)_+`` off it.
    """
    Z = X @ W
    on = np.where(active, Z - Y, 0.0)
    off = np.where(active, 0.0, np.maximum(Z - upper, 0.0))
    residual = float(np.sqrt(np.vdot(on, on)))
    violation = float(off.max(initial=0.0))
    return residual**2 + dot(off, off), residual, violation, on + off


def solve_p5_iht(
    X: np.ndarray,
    Y: np.ndarray,
    W_init: np.ndarray,
    pattern: SparsityPattern,
    *,
    active: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    n_free: int = 0,
    max_iter: int = 200,
    tol: float = 1e-7,
    momentum: bool = True,
) -> SolverResult:
    """(P5), the ReLU-aware L0 program, by projected gradient (IHT) with momentum/restart.

    ``f(W) = ||(X W - Y)_Omega||_F^2 + ||(X W - V)_+ on Omega^c||_F^2`` has gradient
    ``2 X^T R`` (:func:`p5_loss`), Lipschitz with ``Lip = 2 lambda_max(X^T X)``; the
    iteration is that of :func:`solve_iht` with this gradient, on columns of ``X`` scaled to
    unit norm. (P5) is not a quadratic, so no ADMM: its B-step would not be a linear solve.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Samples (with the ones column when the last row of ``W`` is a bias).
    Y : ndarray of shape (n, m)
        Targets (the original layer's post-activation outputs).
    W_init : ndarray of shape (d, m)
        Start point (typically the (P4) solution); projected onto ``K`` first.
    pattern : SparsityPattern
    active : ndarray of bool, shape (n, m), optional
        Omega; ``Y > 0`` when ``None``.
    upper : ndarray of shape (n, m), optional
        ``V`` (zeros when ``None``).
    n_free, max_iter, tol, momentum
        As in :func:`solve_iht`.

    Returns
    -------
    SolverResult
        ``info.objective`` the (P5) loss, ``info.residual`` ``||(X W - Y)_Omega||_F``,
        ``info.violation`` the largest ``(X W - V)_+`` off Omega.
    """
    started = time.perf_counter()
    active = Y > 0 if active is None else active
    upper = np.zeros_like(Y) if upper is None else upper
    norms = np.linalg.norm(X, axis=0)
    scale = np.where(norms > 0, norms, 1.0)
    Xs = X / scale
    Lip = 2.0 * max(lipschitz(Xs.T @ Xs), 1e-300)

    def grad(B: np.ndarray) -> tuple[float, np.ndarray]:
        f, _, _, R = p5_loss(Xs, B, Y, active, upper)
        return f, 2.0 * (Xs.T @ R)

    run = accelerated_iht(
        W_init * scale[:, None],
        pattern,
        n_free,
        Lip,
        grad,
        max_iter=max_iter,
        tol=tol,
        momentum=momentum,
    )
    W, mask, status, it, restarts = run.W, run.mask, run.status, run.iterations, run.restarts
    f_start = run.loss_at_start
    Wout = np.where(mask, W / scale[:, None], 0.0).astype(W_init.dtype, copy=False)
    f, residual, violation, _ = p5_loss(X, Wout, Y, active, upper)
    info = L0Info(
        solver="iht-p5",
        objective=f,
        iterations=it,
        seconds=time.perf_counter() - started,
        residual=residual,
        violation=violation,
        message=status.message,
        extra={
            "lipschitz": Lip,
            "restarts": restarts,
            "loss_at_start": f_start,
            "nnz": int(np.count_nonzero(Wout)),
        },
    )
    return SolverResult(W=Wout, status=status, info=info)

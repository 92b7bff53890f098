"""Polishing: bring a nearly feasible sparse point inside the constraints on its support.

ADMM returns ``S`` exactly sparse but only feasible to the accuracy of its iterates. On the
support of ``S`` (fixed), a least-squares refit towards the targets — ``Y`` on Omega,
``min(X S, V)`` off it — is computed by conjugate gradients batched over
columns; then the point moves from ``S`` towards that refit only as far as feasibility
needs (the smallest step on the segment, found by bisection on the precomputed products),
so the L1 norm changes as little as possible and the support never grows.
"""

from __future__ import annotations

import numpy as np

from .problem import NetTrimProblem

#: Conjugate-gradient iterations of the support refit (each costs two products).
POLISH_CG_ITERATIONS = 30
#: Bisection steps on the segment from S to the refit.
POLISH_BISECTION_STEPS = 30


def _column_dot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->j", A, B, dtype=np.float64)


def support_refit(
    X: np.ndarray,
    S: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
    *,
    iterations: int = POLISH_CG_ITERATIONS,
) -> np.ndarray:
    """Least squares ``min ||rows * (X S' - targets)||_F`` over ``S'`` on ``S``'s support.

    Conjugate gradients on the normal equations, batched over columns (each column has
    its own step sizes), started at ``S``.
    """
    support = S != 0
    S_new = S.copy()
    residual = np.where(rows, X @ S_new - targets, 0.0)
    g = np.where(support, X.T @ residual, 0.0)
    p = -g
    gg = _column_dot(g, g)
    for _ in range(iterations):
        if not np.any(gg > 0):
            break
        Xp = np.where(rows, X @ p, 0.0)
        curvature = _column_dot(Xp, Xp)
        step = np.where(curvature > 0, gg / np.where(curvature > 0, curvature, 1.0), 0.0)
        S_new += (step * p).astype(S.dtype, copy=False)
        residual += (step * Xp).astype(S.dtype, copy=False)
        g = np.where(support, X.T @ residual, 0.0)
        gg_new = _column_dot(g, g)
        beta = np.where(gg > 0, gg_new / np.where(gg > 0, gg, 1.0), 0.0)
        p = -g + (beta * p).astype(S.dtype, copy=False)
        gg = gg_new
    return S_new


def _feasible(problem: NetTrimProblem, XS: np.ndarray, feas_tol: float) -> bool:
    R = XS - problem.Y
    violation = 0.0
    if problem.active is not None:
        R = np.where(problem.active, R, 0.0)
        off = np.where(problem.active, -np.inf, XS - problem.upper_bounds())
        violation = max(0.0, float(off.max(initial=0.0)))
    return problem.is_feasible(np.sqrt(_column_dot(R, R)), violation, feas_tol)


def polish_support(
    problem: NetTrimProblem, S: np.ndarray, *, feas_tol: float
) -> tuple[np.ndarray, dict]:
    """A point on ``S``'s support that is feasible to ``feas_tol``, as close to ``S`` as found.

    Returns the point and figures for ``info.extra`` (``polish_step``: 0 = ``S`` itself,
    1 = the full refit; ``polished``: whether the result is feasible).
    """
    X, Y = problem.X, problem.Y
    XS = X @ S
    rows = np.ones_like(Y, dtype=bool)
    targets = Y
    if problem.active is not None:
        # off Omega, aim at the bound where it is violated and stay put elsewhere, so the
        # refit does not trade the ball's excess for new violations
        targets = np.where(problem.active, Y, np.minimum(XS, problem.upper_bounds()))
        targets = np.where(np.isfinite(targets), targets, XS)
    refit = support_refit(X, S, targets, rows)
    X_refit = X @ refit
    if not _feasible(problem, X_refit, feas_tol):
        return S, {"polished": False, "polish_step": 0.0}
    low, high = 0.0, 1.0
    for _ in range(POLISH_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        if _feasible(problem, XS + mid * (X_refit - XS), feas_tol):
            high = mid
        else:
            low = mid
    point = S + np.asarray(high, S.dtype) * (refit - S)
    return point, {"polished": True, "polish_step": high}

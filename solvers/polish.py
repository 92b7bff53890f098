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
from scipy.linalg import cho_factor, cho_solve

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


#: Rounds of :func:`repair_violations` (each holds the entries violated so far at their bound).
REPAIR_ROUNDS = 3
#: Entries violated by more than this fraction of the tolerance are moved to their bound.
REPAIR_THRESHOLD = 0.5
#: Ridge of the repair's Gram matrix, relative to its mean diagonal.
REPAIR_RIDGE = 1e-10
_TINY = 1e-300


def repair_violations(
    problem: NetTrimProblem,
    S: np.ndarray,
    *,
    feas_tol: float,
    rounds: int = REPAIR_ROUNDS,
) -> np.ndarray:
    """A small change of ``S`` on its support that puts its violations off Omega at ``V``.

    The ADMM's point ``S`` is exactly sparse; near convergence its duality gap is small
    long before its largest violation off Omega, a max over ``n x m`` entries, is below
    ``feas_tol * max|Y|`` (the iterate ``Z`` meets the bounds, ``X S`` only in the limit).
    Per column, the entries violated by more than ``REPAIR_THRESHOLD`` of the tolerance
    are held at their bound by the change ``delta`` of the column on its support that moves
    its outputs least (:func:`_least_output_change`); with a per-column ball, one more row
    asks the first-order change of the column's residual for what its ball needs, so the
    repair does not trade violations for ball excess. ``rounds`` times, since moving a
    column may push other entries over. The caller measures the result and keeps it only
    when it is feasible with a certified gap. The support never grows.
    """
    if problem.active is None:
        return S
    X = problem.X
    V = problem.upper_bounds()
    threshold = REPAIR_THRESHOLD * feas_tol * problem.target_scale[2]
    X64 = X.astype(np.float64, copy=False)
    gram = problem.gram
    ridge = REPAIR_RIDGE * (np.trace(gram) / max(gram.shape[0], 1) + _TINY)
    radii = problem.program.column_radii  # a ball per column, or None
    S = S.copy()
    XS = X @ S
    held = np.zeros(XS.shape, dtype=bool)
    for _ in range(rounds):
        excess = XS - V
        over = ~problem.active & (excess > threshold)
        if not over.any():
            break
        held |= over
        if radii is not None:
            R = np.where(problem.active, XS - problem.Y, 0.0).astype(np.float64)
            residual_sq = np.einsum("ij,ij->j", R, R)
            slope = X64.T @ R  # the gradient of half the squared residual, per column
        for j in np.flatnonzero(over.any(axis=0)):
            rows, support = np.flatnonzero(held[:, j]), np.flatnonzero(S[:, j])
            if support.size == 0:
                continue
            G = gram[np.ix_(support, support)]
            A, target = X64[np.ix_(rows, support)], V[rows, j] - XS[rows, j]
            delta = _least_output_change(G, ridge, A, target)
            if radii is not None:
                # ||r + X delta||^2 <= ||r||^2 + 2 <X^T r, delta> + delta^T G delta (G over
                # every row, Omega's part and more); past the radius, ask the first-order
                # term for what the ball needs, as one more row
                g, curvature = slope[support, j], float(delta @ G @ delta)
                budget = float(radii[j]) ** 2 - residual_sq[j] - curvature
                if 2 * float(g @ delta) > budget:
                    A, target = np.vstack([A, g]), np.append(target, 0.5 * budget)
                    delta = _least_output_change(G, ridge, A, target)
            S[support, j] += delta.astype(S.dtype, copy=False)
        XS = X @ S  # one product for every column moved this round
    return S


def _least_output_change(
    gram: np.ndarray, ridge: float, A: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """``delta`` with ``A delta = target`` that changes the outputs ``X delta`` least.

    ``min ||X delta||^2 s.t. A delta = target`` with ``G = X^T X`` on the support (plus a
    ridge that keeps it definite): ``delta = G^-1 A^T (A G^-1 A^T)^-1 target``, the last
    system solved by least squares (its rows may be dependent or outnumber the support).
    Moving the outputs least keeps the ball's residual and the other entries where they
    were, where a least change of ``delta`` itself would not.
    """
    G = gram + ridge * np.eye(gram.shape[0])
    GA = cho_solve(cho_factor(G), A.T)
    K = A @ GA
    if K.shape[0] <= K.shape[1]:
        try:
            return GA @ cho_solve(cho_factor(K), target)
        except np.linalg.LinAlgError:
            pass  # dependent rows: least squares below
    return GA @ np.linalg.lstsq(K, target, rcond=None)[0]

"""Polishing: bring a nearly feasible sparse point inside the constraints on its support.

ADMM returns ``S`` exactly sparse but only feasible to the accuracy of its iterates. On the
support of ``S`` (fixed), a least-squares refit towards the targets — ``Y`` on Omega,
``min(X S, V)`` off it — is computed by conjugate gradients batched over
columns; then the point moves from ``S`` towards that refit only as far as feasibility
needs (the smallest step on the segment, found by bisection on the precomputed products),
so the L1 norm changes as little as possible and the support never grows.
"""

from __future__ import annotations

import contextlib

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .linalg import masked_products, take_block
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
#: A column that holds more than this many rows per entry of its support is past a small
#: repair (no change on the support meets them all, and the systems grow with the rows):
#: the repair gives up and the iterations go on.
REPAIR_MAX_HELD_RATIO = 4.0
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
    its outputs least (:class:`_HeldRows`). The ball is kept too
    (:func:`_column_changes`): with a per-column ball, one more row asks the first-order
    change of the column's residual for what its ball needs; with a layer-wide ball, the
    moving columns share its slack through one multiplier. ``rounds`` times, since moving
    a column may push other entries over. The caller measures the result and keeps it only
    when it is feasible with a certified gap. The support never grows; ``S`` itself comes
    back when nothing moved or the repair gave up (``REPAIR_MAX_HELD_RATIO``).
    """
    if problem.active is None:
        return S
    X = problem.X
    V = problem.upper_bounds()
    threshold = REPAIR_THRESHOLD * feas_tol * problem.target_scale[2]
    gram = problem.gram
    ridge = REPAIR_RIDGE * (np.trace(gram) / max(gram.shape[0], 1) + _TINY)
    start, S = S, S.copy()
    XS = X @ S
    held = np.zeros(XS.shape, dtype=bool)
    for _ in range(rounds):
        excess = XS - V
        over = ~problem.active & (excess > threshold)
        if not over.any():
            break
        held |= over
        columns = np.flatnonzero(over.any(axis=0))
        changes = _column_changes(problem, ridge, S, XS, V, held, columns)
        if changes is None:
            return start
        for j, support, delta in changes:
            S[support, j] += delta.astype(S.dtype, copy=False)
        XS = X @ S  # one product for every column moved this round
    return S


class _HeldRows:
    """The changes of one column on its support that keep its held rows where asked.

    ``G = X^T X`` on the support (plus a ridge that keeps it definite), ``A`` the rows of
    ``X`` held (on the support). Both systems are factored once.
    """

    def __init__(self, gram: np.ndarray, ridge: float, A: np.ndarray):
        self.G = gram + ridge * np.eye(gram.shape[0])
        self.factor = cho_factor(self.G)
        self.GA = cho_solve(self.factor, A.T)
        K = A @ self.GA
        self._K, self._K_factor = K, None
        if K.shape[0] <= K.shape[1]:
            # dependent rows fail the factorization: least squares (:meth:`_solve_K`)
            with contextlib.suppress(np.linalg.LinAlgError):
                self._K_factor = cho_factor(K)

    def _solve_K(self, v: np.ndarray) -> np.ndarray:
        if self._K_factor is not None:
            return cho_solve(self._K_factor, v)
        return np.linalg.lstsq(self._K, v, rcond=None)[0]

    def change(self, target: np.ndarray) -> np.ndarray:
        """``delta`` with ``A delta = target`` that changes the outputs ``X delta`` least:
        ``min ||X delta||^2 s.t. A delta = target``, ``delta = G^-1 A^T (A G^-1 A^T)^-1
        target`` (the last system by least squares when its rows are dependent or outnumber
        the support). Moving the outputs least keeps the ball's residual and the other
        entries where they were, where a least change of ``delta`` itself would not."""
        return self.GA @ self._solve_K(target)

    def descent(self, g: np.ndarray) -> np.ndarray:
        """The change with ``A delta = 0`` that minimizes ``2 <g, delta> + delta^T G
        delta``: ``-G^-1 g`` projected (in ``G``'s metric) onto the null space of ``A``."""
        return -cho_solve(self.factor, g) + self.GA @ self._solve_K(self.GA.T @ g)


def _least_output_change(
    gram: np.ndarray, ridge: float, A: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """:meth:`_HeldRows.change` of one system."""
    return _HeldRows(gram, ridge, A).change(target)


def _column_changes(
    problem: NetTrimProblem,
    ridge: float,
    S: np.ndarray,
    XS: np.ndarray,
    V: np.ndarray,
    held: np.ndarray,
    columns: np.ndarray,
) -> list[tuple[int, np.ndarray, np.ndarray]] | None:
    """``(j, support, delta)`` of each column of ``columns`` (with a support): its held
    rows at their bound, and its ball's residual kept within the radius to first order
    (``||r + X delta||^2 <= ||r||^2 + 2 <X^T r, delta> + delta^T G delta``, ``G`` over
    every row: Omega's part and more; ``ridge`` the ridge of ``G``). ``None`` when a
    column holds too many rows.
    """
    gram = problem.gram
    radii, layer_radius = problem.program.column_radii, problem.program.layer_radius
    if radii is not None or layer_radius is not None:
        # the gradient of half the squared residual, per column, and the squared residual
        slope, residual_sq = masked_products(problem.X, XS, problem.Y, mask=problem.active)
    changes, pooled = [], []
    for j in columns:
        rows, support = np.flatnonzero(held[:, j]), np.flatnonzero(S[:, j])
        if support.size == 0:
            continue
        if rows.size > REPAIR_MAX_HELD_RATIO * support.size:
            return None
        G = take_block(gram, support, support)
        A = take_block(problem.X, rows, support)
        target = V[rows, j] - XS[rows, j]
        system = _HeldRows(G, ridge, A)
        delta = system.change(target)
        if radii is not None:
            # past the radius, ask the first-order term for what the ball needs, as one
            # more row
            g, curvature = slope[support, j], float(delta @ G @ delta)
            budget = float(radii[j]) ** 2 - residual_sq[j] - curvature
            if 2 * float(g @ delta) > budget:
                A, target = np.vstack([A, g]), np.append(target, 0.5 * budget)
                delta = _least_output_change(G, ridge, A, target)
        elif layer_radius is not None:
            pooled.append((len(changes), *_slack_terms(system, slope[support, j], delta)))
        changes.append((j, support, delta))
    if pooled:
        _share_layer_slack(changes, pooled, layer_radius**2 - float(residual_sq.sum()))
    return changes


def _slack_terms(
    system: _HeldRows, g: np.ndarray, dt: np.ndarray
) -> tuple[float, float, float, np.ndarray]:
    """One column's part of :func:`_share_layer_slack`: the coefficients of its growth
    bound ``2 <g, delta(c)> + delta(c)^T G delta(c)`` in ``c`` (``a0 + a1 c + a2 c^2``)
    and its descent ``d``, for ``delta(c) = dt + c d``. Taken as each column is solved, so
    that its system (the support's Gram and factor) is let go at once: held for every
    column of a ``2048 x 2048`` layer until the end, they took some 5 GB."""
    d = system.descent(g)
    Gd = system.G @ d
    a0 = 2 * float(g @ dt) + float(dt @ system.G @ dt)
    a1 = 2 * float(g @ d) + 2 * float(dt @ Gd)
    return a0, a1, float(d @ Gd), d


def _share_layer_slack(
    changes: list[tuple[int, np.ndarray, np.ndarray]],
    pooled: list[tuple[int, float, float, float, np.ndarray]],
    budget: float,
) -> None:
    """Keep a layer-wide ball: the moving columns share its slack ``budget`` (the squared
    radius less the squared residual) through one multiplier.

    The changes that minimize ``sum_j ||X delta_j||^2`` under the held rows and the bound
    ``sum_j (2 <g_j, delta_j> + delta_j^T G_j delta_j) <= budget`` are
    ``delta_j(c) = delta_j + c d_j`` (``d_j`` the :meth:`_HeldRows.descent` of ``g_j``,
    ``c = nu / (1 + nu)`` for the constraint's multiplier ``nu``), with one ``c`` for every
    column; the bound is a quadratic in ``c`` (the sum of the columns' :func:`_slack_terms`),
    least at ``c = 1``. Take the smallest ``c`` in ``[0, 1]`` that meets it (1 when none
    does; the caller's check then rejects the point). In place on ``changes``.
    """
    a0 = sum(terms[1] for terms in pooled)
    if a0 <= budget:
        return  # the held rows alone keep the ball
    a1 = sum(terms[2] for terms in pooled)
    a2 = sum(terms[3] for terms in pooled)
    # a0 + a1 c + a2 c^2 = budget: the smaller root (a2 >= 0; a1 <= -2 a2 since c = 1 is
    # the least point, so the quadratic decreases on [0, 1])
    disc = a1 * a1 - 4 * a2 * (a0 - budget)
    c = 1.0
    if disc >= 0 and a2 > _TINY:
        c = min(1.0, (-a1 - np.sqrt(disc)) / (2 * a2))
    elif a1 < 0:
        c = min(1.0, (budget - a0) / a1)
    for i, _, _, _, d in pooled:
        j, support, dt = changes[i]
        changes[i] = (j, support, dt + c * d)

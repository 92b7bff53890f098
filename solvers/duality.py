"""Dual certificates for the Net-Trim programs: lower bounds on the optimal objective.

With a multiplier ``Lam`` ``(n, m)`` for ``Z = X W`` (Lagrangian term ``<Lam, X W - Z>``),
the dual of (P1)/(P2) is::

    maximize   - <Lam_Omega, Y_Omega> - rho(Lam_Omega) - <Lam_{Omega^c}, V_{Omega^c}>
    subject to |(X^T Lam)_ij| <= c_i  (entry-wise),   Lam_{Omega^c} >= 0

with ``rho(L) = radius * ||L||_F`` for the layer-wide ball or ``sum_j radius_j ||l_j||_2``
per column; (P3) replaces it by ``||Lam_Omega||_F^2 / (2 lam)``. Rows with ``c_i = 0``
(an unpenalized bias) turn their constraint into ``(X^T Lam)_ij = 0``.

Any multiplier is made dual-feasible by (1) clipping it at 0 on Omega^c (and to 0 where
``V = +inf``), (2) removing, column by column on Omega, its component along unpenalized
rows, and (3) dividing it by ``max(1, max_ij |X^T Lam|_ij / c_i)``. By weak duality the
dual objective of the result is a lower bound on the optimum, whatever the multiplier.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .problem import NetTrimProblem


def feasible_multiplier(problem: NetTrimProblem, Lam: np.ndarray) -> np.ndarray:
    """A dual-feasible multiplier close to ``Lam`` (a new float64 array)."""
    Lam = np.array(Lam, dtype=np.float64)
    X = problem.X
    active = problem.active
    if active is not None:
        inactive = ~active
        Lam[inactive & (Lam < 0)] = 0.0
        if problem.upper is not None:
            Lam[inactive & np.isposinf(problem.upper)] = 0.0
    free_rows = np.flatnonzero(problem.l1_weights == 0)
    if free_rows.size:
        _remove_free_components(X[:, free_rows].astype(np.float64), active, Lam)
    G = X.T @ Lam.astype(X.dtype, copy=False)
    penalized = problem.l1_weights > 0
    if penalized.any():
        ratio = np.abs(G[penalized]).max(axis=1) / problem.l1_weights[penalized]
        scale = max(1.0, float(ratio.max(initial=0.0)))
        Lam /= scale
    return Lam


def _remove_free_components(F: np.ndarray, active: np.ndarray | None, Lam: np.ndarray) -> None:
    """Make ``F^T Lam = 0`` per column by a least-squares correction on Omega only.

    Entries off Omega stay as they are (they must stay non-negative); a column whose
    inactive part cannot be balanced from Omega is zeroed, which is always feasible.
    """
    if active is None:
        coef, *_ = np.linalg.lstsq(F, Lam, rcond=None)
        Lam -= F @ coef
        return
    if F.shape[1] == 1:  # the usual case, one unpenalized bias: vectorized over columns
        f = F[:, 0]
        numer = f @ Lam
        denom = (f * f) @ active
        solvable = denom > 0
        coef = np.where(solvable, numer / np.where(solvable, denom, 1.0), 0.0)
        Lam -= np.where(active, f[:, None] * coef, 0.0)
        Lam[:, ~solvable & (numer != 0)] = 0.0
        return
    for j in range(Lam.shape[1]):
        rows = active[:, j]
        target = F.T @ Lam[:, j]
        if not np.any(target):
            continue
        Fj = F[rows]
        # the minimum-norm correction x on Omega_j with Fj^T x = F^T lam_j
        x, *_ = np.linalg.lstsq(Fj.T, target, rcond=None) if rows.any() else (None,)
        if x is None or not np.allclose(Fj.T @ x, target, rtol=1e-9):
            Lam[:, j] = 0.0
            continue
        Lam[rows, j] -= x


def dual_objective(problem: NetTrimProblem, Lam: np.ndarray) -> float:
    """The dual function at a dual-feasible ``Lam`` (see :func:`feasible_multiplier`)."""
    Y = problem.Y
    active = problem.active
    L_on = Lam if active is None else np.where(active, Lam, 0.0)
    value = -float(np.vdot(L_on, Y))
    if active is not None:
        V = problem.upper_bounds()
        off = ~active & (Lam != 0)
        value -= float(np.sum(Lam[off] * V[off]))
    if problem.penalized:
        return value - float(np.vdot(L_on, L_on)) / (2.0 * problem.penalty)
    if problem.per_column:
        return value - float(np.linalg.norm(L_on, axis=0) @ np.asarray(problem.radius))
    return value - float(problem.radius) * float(np.linalg.norm(L_on))


def dual_bound(problem: NetTrimProblem, Lam: np.ndarray) -> float:
    """A certified lower bound on the optimal objective from any multiplier ``Lam``.

    The dual function is evaluated at ``t * feasible_multiplier(Lam)`` with the best
    ``t >= 0`` (for the constrained programs the dual is positively homogeneous, so ``t`` is
    0 or 1; for (P3) it is a concave quadratic in ``t``).
    """
    L = feasible_multiplier(problem, Lam)
    if problem.penalized:
        active = problem.active
        L_on = L if active is None else np.where(active, L, 0.0)
        quad = float(np.vdot(L_on, L_on)) / (2.0 * problem.penalty)
        linear = dual_objective(problem, L) + quad
        if quad <= 0:
            return max(0.0, linear)
        t = min(1.0, max(0.0, linear / (2.0 * quad)))  # t > 1 could break |X^T L| <= c
        return t * linear - t * t * quad
    return max(0.0, dual_objective(problem, L))


class DualCertifier:
    """:func:`dual_bound` with preallocated buffers and fused kernels, for use in a loop.

    Gives the same bound as :func:`dual_bound` (tested); the multiplier is passed as
    ``rho * U`` without forming it.
    """

    def __init__(self, problem: NetTrimProblem):
        self.problem = problem
        n, _, m = problem.shape
        self.L = np.zeros((n, m), problem.dtype)
        self.col_sq = np.zeros(m, np.float64)
        self.all_active = problem.active is None
        self.active = np.ones((1, 1), np.bool_) if self.all_active else problem.active
        self.has_upper = problem.upper is not None
        self.upper = problem.upper if self.has_upper else np.zeros((1, 1), problem.dtype)
        self.free_rows = np.flatnonzero(problem.l1_weights == 0)
        self.penalized_rows = problem.l1_weights > 0

    def bound(self, U: np.ndarray, rho: float) -> float:
        p = self.problem
        L = self.L
        kernels.clip_multiplier(U, rho, self.active, self.upper, self.has_upper, self.all_active, L)
        if self.free_rows.size:
            Lam = L.astype(np.float64)
            _remove_free_components(p.X[:, self.free_rows].astype(np.float64), p.active, Lam)
            L[...] = Lam
        scale = 1.0
        if self.penalized_rows.any():
            G = p.X.T @ L
            ratio = np.abs(G[self.penalized_rows]).max(axis=1) / p.l1_weights[self.penalized_rows]
            scale = max(1.0, float(ratio.max(initial=0.0)))
        on, off = kernels.dual_terms(
            L, p.Y, self.active, self.upper, self.has_upper, self.all_active, self.col_sq
        )
        linear = -(on + off) / scale
        if p.penalized:
            quad = float(self.col_sq.sum()) / (2.0 * p.penalty * scale**2)
            if quad <= 0:
                return max(0.0, linear)
            t = min(1.0, max(0.0, linear / (2.0 * quad)))
            return t * linear - t * t * quad
        if p.per_column:
            ball = float(np.sqrt(self.col_sq) @ np.asarray(p.radius))
        else:
            ball = float(p.radius) * float(np.sqrt(self.col_sq.sum()))
        return max(0.0, linear - ball / scale)

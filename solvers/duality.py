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
rows, and (3) dividing each column ``j`` by ``s_j = max(1, max_i |X^T Lam|_ij / c_i)`` (the
dual constraints are per column, so one bad column does not shrink the others). By weak
duality the dual objective of the result is a lower bound on the optimum, whatever the
multiplier. Where the objective separates by column (per-column balls, (P3)), each column
is further scaled by its best factor in ``[0, 1]``.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .problem import NetTrimProblem


def _clip_and_balance(problem: NetTrimProblem, Lam: np.ndarray) -> np.ndarray:
    """Steps (1) and (2): a new float64 multiplier, before the per-column scaling."""
    Lam = np.array(Lam, dtype=np.float64)
    active = problem.active
    if active is not None:
        inactive = ~active
        Lam[inactive & (Lam < 0)] = 0.0
        if problem.upper is not None:
            Lam[inactive & np.isposinf(problem.upper)] = 0.0
    free_rows = np.flatnonzero(problem.l1_weights == 0)
    if free_rows.size:
        _remove_free_components(problem.X[:, free_rows].astype(np.float64), active, Lam)
    return Lam


def column_scales(problem: NetTrimProblem, Lam: np.ndarray) -> np.ndarray:
    """``s_j = max(1, max_i |X^T Lam|_ij / c_ij)`` over the penalized rows, shape ``(m,)``.

    ``c_ij = c_i e_ij`` with per-entry weights; an entry weight of 0 on a penalized row
    would make its dual constraint an equality, which no scaling meets: the column's scale
    is then infinite and it contributes nothing to the bound (still a valid bound).
    """
    penalized = problem.l1_weights > 0
    if not penalized.any():
        return np.ones(Lam.shape[1])
    G = problem.X.T @ Lam.astype(problem.X.dtype, copy=False)
    weights = problem.weight_matrix()[penalized]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(weights > 0, np.abs(G[penalized]) / weights, np.inf)
    ratio = np.where((weights == 0) & (G[penalized] == 0), 0.0, ratio)
    return np.maximum(1.0, ratio.max(axis=0))


def feasible_multiplier(problem: NetTrimProblem, Lam: np.ndarray) -> np.ndarray:
    """A dual-feasible multiplier close to ``Lam`` (a new float64 array)."""
    Lam = _clip_and_balance(problem, Lam)
    return Lam / column_scales(problem, Lam)


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
    return value - problem.program.dual_term(L_on)


def dual_bound(
    problem: NetTrimProblem,
    Lam: np.ndarray,
    *,
    XS: np.ndarray | None = None,
    column_residuals: np.ndarray | None = None,
) -> float:
    """A certified lower bound on the optimal objective from any multiplier ``Lam``.

    NumPy reference of :class:`DualCertifier` (see there for ``XS`` and
    ``column_residuals``, which relax the program to the one a given point satisfies).
    """
    L = _clip_and_balance(problem, Lam)
    scales = column_scales(problem, L)
    active = problem.active
    L_on = L if active is None else np.where(active, L, 0.0)
    on = np.einsum("ij,ij->j", L_on, problem.Y)
    on_sq = np.einsum("ij,ij->j", L_on, L_on)
    off = np.zeros(L.shape[1])
    if active is not None:
        V = problem.upper_bounds()
        if XS is not None:
            V = np.maximum(V, XS)
        mask = ~active & (L != 0)
        off = np.where(mask, L * np.where(mask, V, 0.0), 0.0).sum(axis=0)
    radius = problem.program.relaxed_radius(column_residuals)
    return problem.program.bound(on, off, on_sq, scales, radius)


class DualCertifier:
    """:func:`dual_bound` with preallocated buffers and fused kernels, for use in a loop.

    Gives the same bound as :func:`dual_bound` (tested); the multiplier is passed as
    ``rho * U`` without forming it.
    """

    def __init__(self, problem: NetTrimProblem):
        self.problem = problem
        n, _, m = problem.shape
        self.L = np.zeros((n, m), problem.dtype)
        self.terms = np.zeros((3, m), np.float64)  # per column: on, off, on_sq
        _, self.active, self.upper, self.has_upper, self.all_active = problem.kernel_arrays()
        self.free_rows = np.flatnonzero(problem.l1_weights == 0)

    def bound(
        self,
        U: np.ndarray,
        rho: float | np.ndarray,
        *,
        XS: np.ndarray | None = None,
        column_residuals: np.ndarray | None = None,
        per_column: bool = False,
    ) -> float | np.ndarray:
        """The bound from the multiplier ``rho_j U[:, j]`` (``rho`` scalar or per column).

        Given a point's product ``XS`` and its column residuals, the bound is taken for the
        program that point satisfies exactly — radius ``max(radius, its residual)``, bound
        ``max(V, XS)`` off Omega. That program contains the original one, so the bound is
        still a lower bound on the original optimum, and the point's objective minus it is
        never negative: a gap that certifies the point itself.

        With ``per_column`` (separable programs only) the bounds of the columns, one each
        (:meth:`.programs.Program.column_bounds`), instead of their sum.
        """
        p = self.problem
        L = self.L
        rho = np.ascontiguousarray(
            np.broadcast_to(np.asarray(rho, dtype=np.float64), (U.shape[1],))
        )
        kernels.clip_multiplier(U, rho, self.active, self.upper, self.has_upper, self.all_active, L)
        if self.free_rows.size:
            Lam = L.astype(np.float64)
            _remove_free_components(p.X[:, self.free_rows].astype(np.float64), p.active, Lam)
            L[...] = Lam
        scales = column_scales(p, L)
        relax = XS is not None
        kernels.dual_terms(
            L,
            p.Y,
            self.active,
            self.upper,
            self.has_upper,
            self.all_active,
            XS if relax else self.upper,
            relax,
            self.terms,
        )
        on, off, on_sq = self.terms
        combine = p.program.column_bounds if per_column else p.program.bound
        return combine(on, off, on_sq, scales, p.program.relaxed_radius(column_residuals))

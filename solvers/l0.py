"""L0-constrained reconstruction: IHT and ADMM with hard thresholding for (P4), IHT for (P5).

(P4), on the Gram matrix ``G = X~^T X~`` of shape ``(d, d)`` and weights ``W0`` ``(d, m)``::

    minimize    f(W) = 1/2 tr((W0 - W)^T G (W0 - W)) = 1/2 ||X~ W0 - X~ W||_F^2
    subject to  W in K                       (a sparsity set, :mod:`.projections`)

(P5), the ReLU-aware loss on samples ``X~`` ``(n, d)``, targets ``Y`` ``(n, m)``, the active set
``Omega`` and upper bounds ``V`` on its complement::

    minimize    ||(X~ W - Y)_Omega||_F^2 + ||(X~ W - V)_+ on Omega^c||_F^2
    subject to  W in K

Conventions shared by every solver here:

* Damping. ``G`` is replaced by ``G_lam = G + lam I``, ``lam = damping * mean(diag(G))``
  (:func:`~.gram.damping_amount`; 0.01 by default, SparseGPT's dampening). This adds
  ``lam/2 ||W0 - W||_F^2`` to the objective: it keeps a singular ``G`` (dead inputs, fewer
  samples than inputs) well posed, and it is what the reported figures exclude — ``info``
  always measures the *undamped* ``f``.
* Scaling. The iterations run on ``B = S W`` with ``S = diag(sqrt(diag(G_lam)))``, so the
  scaled Gram ``S^-1 G_lam S^-1`` has a unit diagonal (Jacobi preconditioning). The hard
  threshold in these variables keeps the entries with the largest ``|W_ij| sqrt(G_ii)``:
  still an exact projection onto ``K`` (supports do not see the scaling), in the metric of
  ``diag(G_lam)``.
* Free rows. The last ``n_free`` rows of ``W`` (a bias row) are never thresholded.
* Refit. Every solver ends by re-fitting the kept weights on their support
  (:func:`refit`): for each column ``j`` with support ``S_j`` this solves
  ``G_lam[S_j, S_j] w = (G_lam W0)[S_j, j]``, the exact minimizer of the damped objective on
  that support (Cholesky per distinct support, or batched conjugate gradients when that is
  too costly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

from . import l0_kernels as kernels
from .gram import DEFAULT_DAMPING, damping_amount
from .projections import SparsityPattern, support_mask, top_mask
from .result import SolveInfo, SolverResult, Status

#: ``refit(method="auto")`` factorizes every support exactly when its estimated cost is below
#: this many flop-equivalents or below that of the CG steps; batched CG otherwise.
REFIT_EXACT_MAX_FLOPS = 1e9
#: Per-support overhead of the exact refit in flop-equivalents (about 0.3 ms measured).
REFIT_GROUP_OVERHEAD = 3e7
#: Conjugate-gradient refit: iteration limit and relative residual target per column.
REFIT_CG_MAX_ITER = 40
REFIT_CG_TOL = 1e-6
#: ``factorization="auto"`` uses a Cholesky inverse per penalty up to this many penalties.
CHOLESKY_MAX_PENALTIES = 8
#: Safety factor on the power-iteration estimate of ``lambda_max`` (it estimates from below).
LIPSCHITZ_SAFETY = 1.02
POWER_ITERATIONS = 100
_NAN = float("nan")


@dataclass(frozen=True)
class AdmmL0Settings:
    """Settings of :func:`solve_l0_admm` (ALPS-style penalty schedule).

    Attributes
    ----------
    rho : float
        Initial penalty, on the unit-diagonal scaled Gram matrix.
    update_every : int
        Iterations between penalty updates (the support change is measured over them).
    grow_fast, grow, grow_slow : float
        Factors applied to ``rho`` when the fraction of the support that changed since the
        last update is above ``fast_above``, above ``slow_above``, or smaller but not zero.
    fast_above, slow_above : float
        Support-change fractions (of the number of kept entries) that select the factor.
    stop_change : float
        Stop once the support-change fraction falls below this (after ``min_iter``).
    min_iter, max_iter : int
        Iteration bounds.
    rho_max : float
        Cap on ``rho``.
    refit_iter : int
        Conjugate-gradient iterations of the final refit (when it is done by CG).
    dtype : {"auto", "float32", "float64"}
        Working precision of the iterations (``"auto"``: that of ``W0``). The refit's
        result and every reported figure are float64 whatever it is.
    factorization : {"auto", "eigh", "cholesky"}
        How ``(G + rho I)^{-1}`` is formed. ``"eigh"``: one eigendecomposition, then each new
        ``rho`` costs a product ``Q diag(1/(L + rho)) Q^T`` — the right choice for long runs
        with many penalty changes. ``"cholesky"``: a Cholesky factorization and inverse per
        ``rho`` (about ``d^3`` flops, a tenth of an eigendecomposition here) — cheaper when
        ``rho`` takes few values. ``"auto"`` picks Cholesky when at most
        :data:`CHOLESKY_MAX_PENALTIES` penalties can occur (``max_iter / update_every``).

    Notes
    -----
    The defaults are a short run — 4 iterations (a penalty update after the 2nd; the 4th is
    the last check) then 3 CG steps of refit, ten products with ``G`` in all —
    chosen on the benchmarks (``benchmarks/bench_l0.py``): most of the gain over the
    baselines comes from the first iterations and the refit, and this budget keeps the
    solve within 5x SparseGPT's time.
    A short run may still be exploring, so the solver returns the better of its last
    iterate and its start (see :func:`solve_l0_admm`). :meth:`thorough` runs the full
    ALPS-style schedule (at least 30, up to 300 iterations, until the support settles): a
    lower error at high sparsity for about 10x the time.
    """

    rho: float = 0.1
    update_every: int = 2
    grow_fast: float = 1.3
    grow: float = 1.2
    grow_slow: float = 1.1
    fast_above: float = 0.1
    slow_above: float = 0.005
    stop_change: float = 3e-4
    min_iter: int = 4
    max_iter: int = 4
    rho_max: float = 1e6
    refit_iter: int = 3
    dtype: str = "auto"
    factorization: str = "auto"

    @classmethod
    def thorough(cls) -> AdmmL0Settings:
        """ALPS's full schedule: penalty updates every 3 iterations, at least 30 and up to 300
        iterations (until the support settles), 20 CG steps of refit."""
        return cls(update_every=3, min_iter=30, max_iter=300, refit_iter=20)


def _dot(A: np.ndarray, B: np.ndarray) -> float:
    """``<A, B>`` accumulated in float64 whatever the arrays' dtype (2-D arrays)."""
    if A.dtype != B.dtype or A.ndim != 2 or A.dtype not in (np.float32, np.float64):
        return float(np.einsum("ij,ij->", A, B, dtype=np.float64))
    return float(kernels.dot64(np.ascontiguousarray(A), np.ascontiguousarray(B)))


def _spd_inverse(G: np.ndarray, rho: float) -> np.ndarray:
    """``(G + rho I)^{-1}`` of a symmetric positive semi-definite ``G`` (``rho > 0``) by a
    Cholesky factorization and LAPACK's ``potri`` (about ``d^3`` flops)."""
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (G,))
    A = G + np.asarray(rho, G.dtype) * np.eye(G.shape[0], dtype=G.dtype)
    factor, info = potrf(A, lower=False, overwrite_a=True, clean=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"G + rho I is not positive definite (potrf info {info})")
    inv, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed (info {info})")
    upper = np.triu(inv)
    return upper + np.triu(inv, 1).T


def _free_mask(mask_in: np.ndarray, n_free: int) -> np.ndarray:
    """Full ``(d, m)`` support: the thresholded rows' mask stacked over ``n_free`` True rows."""
    if not n_free:
        return mask_in
    return np.vstack([mask_in, np.ones((n_free, mask_in.shape[1]), dtype=bool)])


def hard_threshold(
    A: np.ndarray, pattern: SparsityPattern, n_free: int = 0, *, state: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(H_K(A), support)`` with the last ``n_free`` rows of ``A`` left as they are.

    ``state`` is scratch an iterative solver carries between calls (speed only).
    """
    d = A.shape[0] - n_free
    top = A[:d] if n_free else A
    mask = _free_mask(support_mask(top * top, pattern, state=state), n_free)
    return np.where(mask, A, np.zeros((), A.dtype)), mask


def objective(G: np.ndarray, W0: np.ndarray, W: np.ndarray) -> float:
    """``f(W) = 1/2 tr((W0 - W)^T G (W0 - W))``."""
    E = W0 - W
    return 0.5 * _dot(E, G @ E)


def lipschitz(G: np.ndarray, *, method: str = "eigh") -> float:
    """``lambda_max(G)`` of a symmetric positive semi-definite ``G``.

    ``method="eigh"`` computes it exactly (LAPACK, largest eigenvalue only);
    ``"power"`` runs :data:`POWER_ITERATIONS` power iterations from a fixed start and
    multiplies by :data:`LIPSCHITZ_SAFETY` (an estimate from above in practice).
    """
    d = G.shape[0]
    if method == "eigh":
        return float(scipy.linalg.eigh(G, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0])
    v = np.ones(d) / np.sqrt(d)
    value = 0.0
    for _ in range(POWER_ITERATIONS):
        u = G @ v
        value = float(np.linalg.norm(u))
        if value == 0:
            return 0.0
        v = u / value
    return LIPSCHITZ_SAFETY * value


class _Scaled:
    """The damped, unit-diagonal program ``(S^-1 G_lam S^-1, S W0)`` and its way back.

    ``G``, ``W0`` and ``C = G W0`` (scaled) are held in ``dtype`` (the working precision of
    the iterations); the scale and the reported figures stay in float64.
    """

    def __init__(self, G: np.ndarray, W0: np.ndarray, damping: float, dtype=np.float64) -> None:
        self.lam = damping_amount(G, damping)
        diag = np.diag(G) + self.lam
        scale = np.sqrt(np.where(diag > 0, diag, 1.0))
        self.scale = scale
        Gs = G / scale[:, None] / scale[None, :]
        Gs[np.diag_indices_from(Gs)] = diag / scale**2
        self.G = Gs.astype(dtype, copy=False)
        # in the working precision directly (no float64 temporary of W0's size)
        self.W0 = np.asarray(W0, dtype=dtype) * scale.astype(dtype)[:, None]
        self.C = self.G @ self.W0  # the right-hand side G W0, scaled
        self.base = 0.5 * _dot(self.W0, self.C)  # damped f(0)
        self.lam_norm0 = _dot(W0, W0)

    def unscale(self, B: np.ndarray, dtype=np.float64) -> np.ndarray:
        """``S^-1 B`` in ``dtype`` (computed in ``B``'s precision when it is ``dtype``)."""
        if B.dtype == dtype:
            return B / self.scale.astype(dtype)[:, None]
        return B.astype(np.float64, copy=False) / self.scale[:, None]

    def damped_objective(self, B: np.ndarray, R: np.ndarray) -> float:
        """Damped ``f`` at ``B`` supported where ``R = C - G B`` is the residual on the
        support (zero off it), without a product: ``<B, G B> = <B, C> - <B, R>``."""
        bc = _dot(B, self.C)
        return self.base - 0.5 * bc - 0.5 * _dot(B, R)

    def undamped(self, f_damped: float, W: np.ndarray, W0: np.ndarray) -> float:
        """Undamped ``f`` from the damped one: subtract ``lam/2 ||W0 - W||_F^2``."""
        if not self.lam:
            return f_damped
        E = W0 - W
        return max(f_damped - 0.5 * self.lam * _dot(E, E), 0.0)


def _auto_refit(mask: np.ndarray, cg_iter: int) -> str:
    """``"exact"`` when it is cheap in absolute terms or cheaper than ``cg_iter`` CG steps.

    Estimated costs in flop-equivalents: exact = ``sum over distinct supports of |S|^3/3``
    plus :data:`REFIT_GROUP_OVERHEAD` per support (gathers and LAPACK calls dominate for
    small blocks); CG = ``(cg_iter + 1) * 2 d^2 m`` (one product per step).
    """
    d, m = mask.shape
    counts = mask.sum(axis=0).astype(np.float64)
    exact = float(np.sum(counts**3)) / 3.0 + REFIT_GROUP_OVERHEAD * m
    cg = (cg_iter + 1) * 2.0 * d * d * m
    return "exact" if exact <= max(REFIT_EXACT_MAX_FLOPS, cg) else "cg"


def _refit_scaled(
    Gs: np.ndarray,
    C: np.ndarray,
    mask: np.ndarray,
    B: np.ndarray | None,
    method: str,
    max_iter: int,
    tol: float,
    GB: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Solve ``Gs[S_j, S_j] b = C[S_j, j]`` for every column (zeros off ``S_j``).

    Returns ``(B, R, info)`` with ``R`` the residual ``C - Gs B`` on the support (zero off
    it) when the method tracks it (CG), else ``None``.
    """
    if method == "auto":
        method = _auto_refit(mask, max_iter)
    if method == "exact":
        return _refit_exact(Gs, C, mask), None, {"refit": "exact"}
    if method == "cg":
        return _refit_cg(Gs, C, mask, B, max_iter, tol, GB)
    raise ValueError(f"refit method must be 'auto', 'exact' or 'cg', got {method!r}")


def _refit_exact(Gs: np.ndarray, C: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cholesky on each distinct support (columns sharing a support share a factorization)."""
    Gs = Gs.astype(np.float64, copy=False)
    out = np.zeros(C.shape, dtype=np.float64)
    keys = np.packbits(mask, axis=0).T  # one row of bytes per column
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(first) + 1))
    for group in range(len(first)):
        cols = order[bounds[group] : bounds[group + 1]]
        rows = np.flatnonzero(mask[:, cols[0]])
        if not len(rows):
            continue
        block = Gs[np.ix_(rows, rows)]
        rhs = C[np.ix_(rows, cols)].astype(np.float64, copy=False)
        try:
            factor = scipy.linalg.cho_factor(block, lower=True, check_finite=False)
            sol = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
        except np.linalg.LinAlgError:
            # singular (no damping): the minimum-norm minimizer, still optimal on the support
            sol = scipy.linalg.lstsq(block, rhs, check_finite=False)[0]
        out[np.ix_(rows, cols)] = sol
    return out


def _refit_cg(
    Gs: np.ndarray,
    C: np.ndarray,
    mask: np.ndarray,
    B: np.ndarray | None,
    max_iter: int,
    tol: float,
    GB: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Batched conjugate gradients on the masked systems, one column per system.

    CG decreases the quadratic monotonically, so the refit never worsens the start point.
    ``GB`` is ``Gs @ B`` when the caller has it (``B`` must then be zero off ``mask``).
    """
    zero = np.zeros((), C.dtype)
    mask = np.ascontiguousarray(mask)
    if B is None:
        X, GB = np.zeros_like(C), None
    elif GB is None:
        X = np.where(mask, B, zero).astype(C.dtype, copy=False)
    else:
        X = B.astype(C.dtype, copy=True)
    if GB is None:
        GB = Gs @ X
    R, P = np.empty_like(C), np.empty_like(C)
    rr, c_norm2 = np.empty(C.shape[1]), np.empty(C.shape[1])
    kernels.cg_start(C, np.ascontiguousarray(GB, dtype=C.dtype), mask, R, P, rr, c_norm2)
    target = tol * np.maximum(np.sqrt(c_norm2), 1e-300)
    AP = np.empty_like(P)
    pap = np.empty(P.shape[1])
    rr_new = np.empty(P.shape[1])
    done = 0
    for _ in range(max_iter):
        if np.all(np.sqrt(rr) <= target):
            break
        np.matmul(Gs, P, out=AP)
        kernels.cg_curvature(P, AP, mask, pap)
        alpha = np.divide(rr, pap, out=np.zeros_like(rr), where=pap > 0)
        kernels.cg_step(X, R, P, AP, alpha, rr_new)
        beta = np.divide(rr_new, rr, out=np.zeros_like(rr), where=rr > 0)
        kernels.cg_direction(R, P, beta)
        rr, rr_new = rr_new, rr
        done += 1
    worst = float(np.max(np.sqrt(rr) / target * tol)) if rr.size else 0.0
    return X, R, {"refit": "cg", "refit_iterations": done, "refit_residual": worst}


def refit(
    G: np.ndarray,
    W0: np.ndarray,
    support: np.ndarray,
    *,
    damping: float = DEFAULT_DAMPING,
    method: str = "auto",
    W_start: np.ndarray | None = None,
    max_iter: int = REFIT_CG_MAX_ITER,
    tol: float = REFIT_CG_TOL,
) -> np.ndarray:
    """Least-squares re-fit of the kept weights on a fixed support.

    For every column ``j`` with support ``S_j = {i : support[i, j]}``::

        minimize over w (w_i = 0 off S_j)   1/2 (w0_j - w)^T G_lam (w0_j - w)
        <=>  G_lam[S_j, S_j] w[S_j] = (G_lam w0_j)[S_j]

    Parameters
    ----------
    G : ndarray of shape (d, d)
        Gram matrix (symmetric positive semi-definite).
    W0 : ndarray of shape (d, m)
        Reference weights.
    support : ndarray of bool, shape (d, m)
        Kept entries.
    damping : float
        Relative damping (module docstring); with ``damping=0`` a singular block is solved
        by minimum-norm least squares (still optimal on the support).
    method : {"auto", "exact", "cg"}
        ``"exact"``: a Cholesky factorization per distinct support (optimal to rounding);
        ``"cg"``: batched conjugate gradients on the unit-diagonal scaled systems started
        from ``W_start`` (monotone: never worse than the start); ``"auto"``: exact when
        ``sum_j |S_j|^3 / 3 <= REFIT_EXACT_MAX_FLOPS``.
    W_start : ndarray of shape (d, m), optional
        Start point of CG (zeros when ``None``).
    max_iter, tol : int, float
        CG iteration limit and relative residual target per column.

    Returns
    -------
    ndarray of shape (d, m)
        Weights supported on ``support``.
    """
    sc = _Scaled(G, W0, damping)
    B0 = None if W_start is None else W_start * sc.scale[:, None]
    B, _, _ = _refit_scaled(sc.G, sc.C, support, B0, method, max_iter, tol)
    return np.where(support, sc.unscale(B), 0.0)


def _finish(
    solver: str,
    sc: _Scaled,
    G: np.ndarray,
    W0: np.ndarray,
    B: np.ndarray,
    mask: np.ndarray,
    R: np.ndarray | None,
    status: Status,
    iterations: int,
    started: float,
    extra: dict,
) -> SolverResult:
    """Unscale, zero off the support, measure the undamped objective, wrap up.

    With the residual ``R`` of a CG refit the objective costs no product
    (:meth:`_Scaled.damped_objective`); otherwise one product with ``G``.
    """
    # every route leaves B exactly zero off the support (CG keeps its iterates there)
    W = sc.unscale(B, W0.dtype if W0.dtype == B.dtype else np.float64)
    f = sc.undamped(sc.damped_objective(B, R), W, W0) if R is not None else objective(G, W0, W)
    base = sc.base - 0.5 * sc.lam * sc.lam_norm0
    extra = dict(extra)
    extra["relative_error"] = f / base if base > 0 else 0.0
    extra["nnz"] = int(np.count_nonzero(W))
    extra["damping"] = sc.lam
    info = SolveInfo(
        solver=solver,
        objective=f,
        iterations=iterations,
        seconds=time.perf_counter() - started,
        residual=float(np.sqrt(max(2.0 * f, 0.0))),
        radius=_NAN,
        ball_excess=_NAN,
        violation=0.0,
        message=status.message,
        extra=extra,
    )
    return SolverResult(x=W.astype(W0.dtype, copy=False), status=status, info=info)


def _admm_rho_step(st: AdmmL0Settings, rho: float, change: float, grown: bool):
    """``(new rho, grown, restart)`` from the support-change fraction (ALPS schedule)."""
    if change > st.fast_above:
        return rho * st.grow_fast, True, False
    if change > st.slow_above:
        return rho * st.grow, True, False
    if change > 0 or grown:
        return rho * st.grow_slow, True, False
    return rho / 5.0, False, True  # nothing moved and rho never grew: it started too large


def _solve_outputs_exactly(
    solver: str,
    G: np.ndarray,
    W0: np.ndarray,
    pattern: SparsityPattern,
    n_free: int,
    damping: float,
    started: float,
) -> SolverResult:
    """The ``outputs`` set in closed form: columns decouple, so keeping column ``j`` costs
    nothing (its refit is ``w0_j``) and removing it costs ``f_j``, the damped objective of
    its free rows alone. Keep the ``k`` columns with the largest ``f_j`` (lower index wins
    ties): the exact optimum of (P4), which no iteration improves."""
    sc = _Scaled(G, W0, damping)
    d, m = W0.shape
    free_only = np.zeros((d, m), dtype=bool)
    free_only[d - n_free :] = True
    Bfree, _, _ = _refit_scaled(sc.G, sc.C, free_only, None, "exact", 0, REFIT_CG_TOL)
    E = sc.W0 - Bfree
    cost = 0.5 * np.einsum("ij,ij->j", E, sc.G @ E)
    cols = top_mask(cost, pattern.keep, axis=0)
    mask = np.repeat(cols[None, :], d, axis=0) | free_only
    B, R, info = _refit_scaled(sc.G, sc.C, mask, None, "exact", 0, REFIT_CG_TOL)
    extra = {"closed_form": True, **info}
    return _finish(solver, sc, G, W0, B, mask, R, Status.OPTIMAL, 0, started, extra)


def solve_l0_admm(
    G: np.ndarray,
    W0: np.ndarray,
    pattern: SparsityPattern,
    *,
    n_free: int = 0,
    damping: float = DEFAULT_DAMPING,
    W_init: np.ndarray | None = None,
    settings: AdmmL0Settings | None = None,
    refit_method: str = "auto",
    refit_iter: int | None = None,
) -> SolverResult:
    """(P4) by ADMM with hard thresholding (ALPS, Meng et al. 2024), then a refit.

    Splitting ``W = D`` with ``D in K`` (scaled variables, module docstring)::

        B  <- (G + rho I)^{-1} (G W0 - Mu + rho D)
        D  <- H_K(B + Mu / rho)
        Mu <- Mu + rho (B - D)

    Every ``update_every`` iterations ``rho`` grows by a factor chosen from how much of the
    support changed (:class:`AdmmL0Settings`); if it did not change before ``rho`` ever
    grew, ``rho`` was too large: it is divided by 5 and the iteration restarts. The
    eigendecomposition ``G = Q diag(L) Q^T`` is computed once; each new ``rho`` costs one
    product ``Q diag(1 / (L + rho)) Q^T``. The iteration stops when the support is stable
    (``stop_change``) or at ``max_iter``. Safeguard: of the last iterate ``D`` and the start
    ``D0 = H_K(start)``, the one with the lower damped objective is kept (one extra product
    ``G D0``; the other product starts the refit). The kept support is re-fitted
    (:func:`refit`, batched CG from ``D`` for large layers).

    Parameters
    ----------
    G : ndarray of shape (d, d)
        Gram matrix ``X~^T X~`` (undamped).
    W0 : ndarray of shape (d, m)
        Dense weights to prune.
    pattern : SparsityPattern
        The set ``K`` for the first ``d - n_free`` rows.
    n_free : int
        Trailing rows never thresholded (a bias row).
    damping : float
        Relative damping of ``G``.
    W_init : ndarray of shape (d, m), optional
        Start for ``D`` (projected onto ``K``), e.g. a SparseGPT or Wanda solution;
        ``H_K(W0)`` in scaled variables when ``None``.
    settings : AdmmL0Settings, optional
    refit_method : {"auto", "exact", "cg", "none"}
    refit_iter : int, optional
        CG iterations of the refit (``settings.refit_iter`` when ``None``).

    Returns
    -------
    SolverResult
        ``x`` ``(d, m)`` in ``K``; ``info.objective`` the undamped ``f``; ``info.extra``
        holds ``relative_error`` (``f / f(0)``), ``rho``, ``support_change``, ``history``
        ``[(iteration, rho, change), ...]`` and the refit figures.
    """
    started = time.perf_counter()
    if pattern.kind == "outputs":
        return _solve_outputs_exactly("admm-l0", G, W0, pattern, n_free, damping, started)
    st = settings or AdmmL0Settings()
    dtype = np.dtype(W0.dtype if st.dtype == "auto" else st.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        dtype = np.dtype(np.float64)
    sc = _Scaled(G, W0, damping, dtype)
    factorization = st.factorization
    if factorization == "auto":
        penalties = st.max_iter // max(st.update_every, 1) + 1
        factorization = "cholesky" if penalties <= CHOLESKY_MAX_PENALTIES else "eigh"
    kept = max(pattern.nnz, 1)
    if factorization == "eigh":
        evals, Q = scipy.linalg.eigh(sc.G, check_finite=False)
        evals = np.maximum(evals, 0.0)

        def inverse(rho: float) -> np.ndarray:
            return (Q * (1.0 / (evals + rho)).astype(Q.dtype)) @ Q.T

    elif factorization == "cholesky":

        def inverse(rho: float) -> np.ndarray:
            return _spd_inverse(sc.G, rho)

    else:
        raise ValueError(
            f"factorization must be 'auto', 'eigh' or 'cholesky', got {factorization!r}"
        )

    start = sc.W0 if W_init is None else (W_init * sc.scale[:, None]).astype(sc.W0.dtype)
    state: dict = {}
    D0, mask0 = hard_threshold(start, pattern, n_free, state=state)
    mask, Mu = mask0, np.zeros_like(sc.W0)
    GD0 = sc.G @ D0
    f0 = sc.base - _dot(D0, sc.C) + 0.5 * _dot(D0, GD0)
    rho = st.rho
    Minv = inverse(rho)
    grown = False
    last_mask = mask
    history: list[tuple[int, float, float]] = []
    status = Status.MAX_ITER if st.max_iter else Status.OPTIMAL
    it = 0
    d_k = W0.shape[0] - n_free
    rhs, B, V, S = (np.empty_like(sc.W0) for _ in range(4))
    D = D0.copy()
    for it in range(1, st.max_iter + 1):
        rho_t = sc.W0.dtype.type(rho)
        kernels.admm_rhs(sc.C, Mu, D, rho_t, rhs)
        np.matmul(Minv, rhs, out=B)
        kernels.admm_point(B, Mu, sc.W0.dtype.type(1.0 / rho), V, S)
        mask = _free_mask(support_mask(S[:d_k], pattern, state=state), n_free)
        changed = kernels.admm_dual(B, V, mask, last_mask, rho_t, D, Mu)
        if it % st.update_every and it != st.max_iter:
            continue
        change = changed / kept
        last_mask = mask
        history.append((it, rho, change))
        if it >= st.min_iter and change < st.stop_change:
            status = Status.OPTIMAL
            break
        if it == st.max_iter:
            break
        rho, grown, restart = _admm_rho_step(st, rho, change, grown)
        if restart:
            D[...] = D0
            Mu[...] = 0.0
            mask = last_mask = mask0
        rho = min(rho, st.rho_max)
        Minv = inverse(rho)
    extra = {
        "rho": rho,
        "support_change": history[-1][2] if history else _NAN,
        "history": history,
        "factorization": factorization,
        "dtype": dtype.name,
    }
    # Safeguard: return the better (damped objective before refit) of the final iterate D
    # and the start D0 -- a short run can still be exploring. Its product G D also starts
    # the CG refit, so the check costs one product (G D0) in all.
    GD = sc.G @ D if it else GD0
    fD = sc.base - _dot(D, sc.C) + 0.5 * _dot(D, GD)
    extra["objective_iterate"] = fD
    extra["objective_start"] = f0
    if f0 < fD:
        D, mask, GD = D0, mask0, GD0
        extra["kept_start"] = True
    R = None
    if refit_method != "none":
        iters = st.refit_iter if refit_iter is None else refit_iter
        D, R, rinfo = _refit_scaled(sc.G, sc.C, mask, D, refit_method, iters, REFIT_CG_TOL, GB=GD)
        extra.update(rinfo)
    return _finish("admm-l0", sc, G, W0, D, mask, R, status, it, started, extra)


def solve_iht(
    G: np.ndarray,
    W0: np.ndarray,
    pattern: SparsityPattern,
    *,
    n_free: int = 0,
    damping: float = DEFAULT_DAMPING,
    W_init: np.ndarray | None = None,
    max_iter: int = 300,
    tol: float = 1e-7,
    momentum: bool = True,
    refit_method: str = "auto",
    refit_iter: int = REFIT_CG_MAX_ITER,
) -> SolverResult:
    """(P4) by iterative hard thresholding with momentum and restart, then a refit.

    One product with ``G`` per iteration: the gradient at the extrapolated point is the
    same extrapolation of the gradients (``grad f`` is affine).

    In scaled variables, with ``Lip = lambda_max(G)`` (exact, :func:`lipschitz`)::

        Z <- H_K(Y - G (Y - W0) / Lip)
        accept Z if f(Z) <= f(W) (then W_prev, W <- W, Z; Y <- W + (t-1)/t' (W - W_prev));
        otherwise restart the momentum from W (Y <- W): a plain IHT step from W never
        increases f when the step is 1/Lip.

    Stops when the support did not change and the relative decrease of ``f`` was below
    ``tol`` for two consecutive iterations, or at ``max_iter``; then refits the support.

    Parameters and return value as :func:`solve_l0_admm` (``momentum=False`` gives plain
    IHT).
    """
    started = time.perf_counter()
    if pattern.kind == "outputs":
        return _solve_outputs_exactly("iht", G, W0, pattern, n_free, damping, started)
    sc = _Scaled(G, W0, damping)
    Lip = max(lipschitz(sc.G), 1e-300)
    start = sc.W0 if W_init is None else W_init * sc.scale[:, None]
    W, mask = hard_threshold(start, pattern, n_free)
    gW = sc.G @ (W - sc.W0)
    fW = 0.5 * _dot(W - sc.W0, gW)
    Y, gY, t = W, gW, 1.0
    W_prev, gW_prev = W, gW
    status, quiet, restarts, it = Status.MAX_ITER, 0, 0, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        Z, zmask = hard_threshold(Y - gY / Lip, pattern, n_free)
        gZ = sc.G @ (Z - sc.W0)
        fZ = 0.5 * _dot(Z - sc.W0, gZ)
        if fZ > fW and Y is not W:  # momentum overshot: restart from W
            restarts += 1
            Y, gY, t = W, gW, 1.0
            continue
        decrease = (fW - fZ) / max(abs(fW), 1e-300)
        same = bool(np.array_equal(zmask, mask))
        W_prev, gW_prev = W, gW
        W, gW, fW, mask = Z, gZ, fZ, zmask
        quiet = quiet + 1 if (same and decrease < tol) else 0
        if quiet >= 2:
            status = Status.OPTIMAL
            break
        if momentum:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            Y = W + beta * (W - W_prev)
            gY = gW + beta * (gW - gW_prev)  # the gradient is affine: no product needed
            t = t_next
        else:
            Y, gY = W, gW
    extra = {"lipschitz": Lip, "restarts": restarts}
    R = None
    if refit_method != "none":
        W, R, rinfo = _refit_scaled(sc.G, sc.C, mask, W, refit_method, refit_iter, REFIT_CG_TOL)
        extra.update(rinfo)
    return _finish("iht", sc, G, W0, W, mask, R, status, it, started, extra)


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
    return residual**2 + _dot(off, off), residual, violation, on + off


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

    W, mask = hard_threshold(W_init * scale[:, None], pattern, n_free)
    fW, gW = grad(W)
    f_start = fW
    Y_pt, gY, t, W_prev = W, gW, 1.0, W
    status, quiet, restarts, it = Status.MAX_ITER, 0, 0, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        Z, zmask = hard_threshold(Y_pt - gY / Lip, pattern, n_free)
        fZ, gZ = grad(Z)
        if fZ > fW and Y_pt is not W:
            restarts += 1
            Y_pt, gY, t = W, gW, 1.0
            continue
        decrease = (fW - fZ) / max(abs(fW), 1e-300)
        same = bool(np.array_equal(zmask, mask))
        W_prev, W, gW, fW, mask = W, Z, gZ, fZ, zmask
        quiet = quiet + 1 if (same and decrease < tol) else 0
        if quiet >= 2:
            status = Status.OPTIMAL
            break
        if momentum:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            Y_pt = W + ((t - 1.0) / t_next) * (W - W_prev)
            _, gY = grad(Y_pt)
            t = t_next
        else:
            Y_pt, gY = W, gW
    Wout = np.where(mask, W / scale[:, None], 0.0).astype(W_init.dtype, copy=False)
    f, residual, violation, _ = p5_loss(X, Wout, Y, active, upper)
    info = SolveInfo(
        solver="iht-p5",
        objective=f,
        iterations=it,
        seconds=time.perf_counter() - started,
        residual=residual,
        radius=_NAN,
        ball_excess=_NAN,
        violation=violation,
        message=status.message,
        extra={
            "lipschitz": Lip,
            "restarts": restarts,
            "loss_at_start": f_start,
            "nnz": int(np.count_nonzero(Wout)),
        },
    )
    return SolverResult(x=Wout, status=status, info=info)

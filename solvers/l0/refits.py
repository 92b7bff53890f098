"""Refits of the kept weights on a fixed support, the closed form of the ``outputs`` set,
and the wrap-up every (P4) solver ends with (:func:`finish`)."""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg

from .. import l0_kernels as kernels
from ..gram import DEFAULT_DAMPING
from ..projections import SparsityPattern, top_mask
from ..result import L0Info, SolverResult, Status
from .scaling import Scaled, objective

#: ``refit(method="auto")`` factorizes every support exactly when its estimated cost is below
#: this many flop-equivalents or below that of the CG steps; batched CG otherwise.
REFIT_EXACT_MAX_FLOPS = 1e9
#: Per-support overhead of the exact refit in flop-equivalents (about 0.3 ms measured).
REFIT_GROUP_OVERHEAD = 3e7
#: How many times slower per flop the column-by-column refit kernel
#: (:func:`~nettrim.solvers.l0_kernels.refit_columns`, scalar numba) runs than a BLAS
#: product: 12-20 measured on the benchmark's layers (supports of 38 to 115 entries).
REFIT_KERNEL_SLOWDOWN = 20.0
#: Conjugate-gradient refit: iteration limit and relative residual target per column.
REFIT_CG_MAX_ITER = 40
REFIT_CG_TOL = 1e-6
#: The refit methods of the (P4) solvers (``"none"``: keep the iterate as it is).
REFIT_METHODS = ("auto", "exact", "columns", "cg", "none")


def choose_refit(mask: np.ndarray, cg_iter: int) -> str:
    """The cheapest exact-enough refit: ``"exact"`` (a factorization per distinct support),
    ``"columns"`` (the compiled factorization per column) or ``"cg"``.

    Estimated costs in flop-equivalents of a BLAS product: exact = ``sum over distinct
    supports of |S|^3/3`` plus :data:`REFIT_GROUP_OVERHEAD` per support (gathers and LAPACK
    calls dominate for small blocks), taken whenever it is cheap in absolute terms
    (:data:`REFIT_EXACT_MAX_FLOPS`); columns = ``sum_j (|S_j|^3/3 + 2 |S_j|^2)`` times
    :data:`REFIT_KERNEL_SLOWDOWN`; CG = ``(cg_iter + 1) * 2 d^2 m`` (one product per step
    and the product that starts it).
    """
    d, m = mask.shape
    counts = mask.sum(axis=0).astype(np.float64)
    exact = float(np.sum(counts**3)) / 3.0 + REFIT_GROUP_OVERHEAD * m
    columns = REFIT_KERNEL_SLOWDOWN * float(np.sum(counts**3 / 3.0 + 2.0 * counts**2))
    cg = (cg_iter + 1) * 2.0 * d * d * m
    if exact <= REFIT_EXACT_MAX_FLOPS:
        return "exact"
    return min((cg, "cg"), (columns, "columns"), (exact, "exact"))[1]


def refit_scaled(
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
        method = choose_refit(mask, max_iter)
    if method == "columns":
        cols, rows = np.nonzero(mask.T)  # column-major: each column's support, in order
        out = np.zeros(C.shape, dtype=np.float64)
        if kernels.refit_columns(
            Gs, C, rows, np.searchsorted(cols, np.arange(C.shape[1] + 1)), out
        ):
            # solved exactly on every support: the residual there is zero (to rounding)
            return out, np.zeros_like(out), {"refit": "columns"}
        method = "exact"  # a block that is not positive definite: least squares by LAPACK
    if method == "exact":
        return _refit_exact(Gs, C, mask), None, {"refit": "exact"}
    if method == "cg":
        return _refit_cg(Gs, C, mask, B, max_iter, tol, GB)
    raise ValueError(f"refit method must be 'auto', 'exact', 'columns' or 'cg', got {method!r}")


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
    method : {"auto", "exact", "columns", "cg"}
        ``"exact"``: a Cholesky factorization per distinct support (optimal to rounding);
        ``"columns"``: the same, one compiled factorization per column (for many small
        distinct supports: high sparsity); ``"cg"``: batched conjugate gradients on the
        unit-diagonal scaled systems started from ``W_start`` (monotone: never worse than
        the start); ``"auto"``: the cheapest by :func:`choose_refit`'s cost estimates.
    W_start : ndarray of shape (d, m), optional
        Start point of CG (zeros when ``None``).
    max_iter, tol : int, float
        CG iteration limit and relative residual target per column.

    Returns
    -------
    ndarray of shape (d, m)
        Weights supported on ``support``.
    """
    sc = Scaled(G, W0, damping)
    B0 = None if W_start is None else W_start * sc.scale[:, None]
    B, _, _ = refit_scaled(sc.G, sc.C, support, B0, method, max_iter, tol)
    return np.where(support, sc.unscale(B), 0.0)


def finish(
    solver: str,
    sc: Scaled,
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

    With the residual ``R`` of a CG refit in ``W0``'s precision (or finer) the objective
    costs no product (:meth:`.Scaled.damped_objective`); otherwise one product with ``G``.
    """
    # every route leaves B exactly zero off the support (CG keeps its iterates there)
    W = sc.unscale(B, W0.dtype if W0.dtype == B.dtype else np.float64)
    # the residual shortcut is as precise as B and the scaled G; float64 weights iterated
    # in float32 get their objective from one float64 product instead
    fine = min(np.dtype(B.dtype).itemsize, np.dtype(sc.G.dtype).itemsize)
    precise = R is not None and fine >= np.dtype(W0.dtype).itemsize
    f = sc.undamped(sc.damped_objective(B, R), W, W0) if precise else objective(G, W0, W)
    base = sc.base - 0.5 * sc.lam * sc.lam_norm0
    extra = dict(extra)
    extra["relative_error"] = f / base if base > 0 else 0.0
    extra["nnz"] = int(np.count_nonzero(W))
    extra["damping"] = sc.lam
    info = L0Info(
        solver=solver,
        objective=f,
        iterations=iterations,
        seconds=time.perf_counter() - started,
        residual=float(np.sqrt(max(2.0 * f, 0.0))),
        violation=0.0,
        message=status.message,
        extra=extra,
    )
    return SolverResult(W=W.astype(W0.dtype, copy=False), status=status, info=info)


def solve_outputs_exactly(
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
    sc = Scaled(G, W0, damping)
    d, m = W0.shape
    free_only = np.zeros((d, m), dtype=bool)
    free_only[d - n_free :] = True
    Bfree, _, _ = refit_scaled(sc.G, sc.C, free_only, None, "exact", 0, REFIT_CG_TOL)
    E = sc.W0 - Bfree
    cost = 0.5 * np.einsum("ij,ij->j", E, sc.G @ E)
    cols = top_mask(cost, pattern.keep, axis=0)
    mask = np.repeat(cols[None, :], d, axis=0) | free_only
    B, R, info = refit_scaled(sc.G, sc.C, mask, None, "exact", 0, REFIT_CG_TOL)
    extra = {"closed_form": True, **info}
    return finish(solver, sc, G, W0, B, mask, R, Status.OPTIMAL, 0, started, extra)

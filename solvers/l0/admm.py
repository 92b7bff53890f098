"""(P4) by ADMM with hard thresholding (ALPS, Meng et al. 2024), then a refit."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

from .. import l0_kernels as kernels
from ..gram import DEFAULT_DAMPING
from ..projections import HINT_BAND, SparsityPattern, support_mask
from ..result import SolverResult, Status
from .refits import REFIT_CG_TOL, finish, refit_scaled, solve_outputs_exactly
from .scaling import Scaled, dot, free_mask, hard_threshold
from .settings import CHOLESKY_MAX_PENALTIES, AdmmL0Settings

_NAN = float("nan")


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


def _shifted_inverse(Gs: np.ndarray, st: AdmmL0Settings) -> tuple[str, Callable]:
    """``(factorization, inverse)``: the way ``(Gs + rho I)^{-1}`` is formed
    (``AdmmL0Settings.factorization``) and the function of ``rho`` that forms it."""
    factorization = st.factorization
    if factorization == "auto":
        penalties = st.max_iter // max(st.update_every, 1) + 1
        factorization = "cholesky" if penalties <= CHOLESKY_MAX_PENALTIES else "eigh"
    if factorization == "eigh":
        evals, Q = scipy.linalg.eigh(Gs, check_finite=False)
        evals = np.maximum(evals, 0.0)

        def inverse(rho: float) -> np.ndarray:
            return (Q * (1.0 / (evals + rho)).astype(Q.dtype)) @ Q.T

    elif factorization == "cholesky":

        def inverse(rho: float) -> np.ndarray:
            return _spd_inverse(Gs, rho)

    else:
        raise ValueError(
            f"factorization must be 'auto', 'eigh' or 'cholesky', got {factorization!r}"
        )
    return factorization, inverse


def _admm_rho_step(st: AdmmL0Settings, rho: float, change: float, grown: bool):
    """``(new rho, grown, restart)`` from the support-change fraction (ALPS schedule)."""
    if change > st.fast_above:
        return rho * st.grow_fast, True, False
    if change > st.slow_above:
        return rho * st.grow, True, False
    if change > 0 or grown:
        return rho * st.grow_slow, True, False
    return rho / 5.0, False, True  # nothing moved and rho never grew: it started too large


def _kth_unstructured(scores: np.ndarray, keep: int, state: dict) -> float:
    """The ``keep``-th largest of ``scores`` (exact), searched first in a band around the
    previous iteration's value ``state["kth"]`` (one fused pass); ``-inf`` / ``inf`` when
    everything / nothing is kept."""
    flat = scores.reshape(-1)
    if keep >= flat.size:
        return -np.inf
    if keep <= 0:
        return np.inf
    hint, kth = state.get("kth"), _NAN
    if hint is not None and hint > 0 and np.isfinite(hint):
        band = state.get("band")
        if band is None:  # the band's buffer once per solve (setdefault would build it anew)
            band = state["band"] = np.empty_like(flat)
        lo, hi = hint * (1.0 - HINT_BAND), hint * (1.0 + HINT_BAND)
        kth = kernels.kth_largest_banded(flat, keep, lo, hi, band)[0]
    if not np.isfinite(kth):
        kth = float(np.partition(flat, flat.size - keep)[flat.size - keep])
    state["kth"] = kth
    return kth


def _project_and_update(pattern, n_free, state, B, V, S, last_mask, rho_t, D, Mu):
    """The D- and dual steps: ``(mask, changed)`` with ``D = H_K(V)``, ``Mu += rho (B - D)``
    and ``changed = #(mask != last_mask)``. The unstructured set selects its threshold and
    builds the mask inside the update kernel (no separate passes over the scores)."""
    d_k = S.shape[0] - n_free
    if pattern.kind == "unstructured":
        kth = _kth_unstructured(S[:d_k], pattern.keep, state)
        mask = np.empty(B.shape, dtype=bool)
        changed = kernels.admm_dual_threshold(
            B, V, S[:d_k], kth, pattern.keep, last_mask, rho_t, D, Mu, mask
        )
        return mask, changed
    mask = free_mask(support_mask(S[:d_k], pattern, state=state), n_free)
    return mask, kernels.admm_dual(B, V, mask, last_mask, rho_t, D, Mu)


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
    product ``Q diag(1 / (L + rho)) Q^T`` (or, with few penalties, a Cholesky inverse per
    penalty). The iteration stops with status ``optimal`` when the support is stable
    (``stop_change``), or when it has settled (``settle_change``) and the objective at ``B``
    improved by less than ``objective_tol`` since the last check (free: the B-step gives
    ``G B = rhs - rho B``); at ``max_iter`` otherwise.
    Safeguard: of the last iterate ``D`` and the start ``D0 = H_K(start)``, the one with
    the lower damped objective is kept (one extra product ``G D0``; the other product starts
    the refit). The kept support is re-fitted
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
        ``W`` ``(d, m)`` in ``K``; ``info.objective`` the undamped ``f``; ``info.extra``
        holds ``relative_error`` (``f / f(0)``), ``rho``, ``support_change``, ``history``
        ``[(iteration, rho, change), ...]`` and the refit figures.
    """
    started = time.perf_counter()
    if pattern.kind == "outputs":
        return solve_outputs_exactly("admm-l0", G, W0, pattern, n_free, damping, started)
    st = settings or AdmmL0Settings()
    dtype = np.dtype(W0.dtype if st.dtype == "auto" else st.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        dtype = np.dtype(np.float64)
    sc = Scaled(G, W0, damping, dtype)
    factorization, inverse = _shifted_inverse(sc.G, st)
    kept = max(pattern.nnz, 1)
    start = sc.W0 if W_init is None else (W_init * sc.scale[:, None]).astype(sc.W0.dtype)
    state: dict = {}
    D0, mask0 = hard_threshold(start, pattern, n_free, state=state)
    mask, Mu = mask0, np.zeros_like(sc.W0)
    GD0 = sc.G @ D0
    f0 = sc.base - dot(D0, sc.C) + 0.5 * dot(D0, GD0)
    rho = st.rho
    Minv = inverse(rho)
    grown = False
    last_mask = mask
    history: list[tuple[int, float, float]] = []
    status = Status.MAX_ITER if st.max_iter else Status.OPTIMAL
    it = 0
    rhs, B, V, S = (np.empty_like(sc.W0) for _ in range(4))
    D = D0.copy()
    f_last = np.inf
    for it in range(1, st.max_iter + 1):
        rho_t = sc.W0.dtype.type(rho)
        kernels.admm_rhs(sc.C, Mu, D, rho_t, rhs)
        np.matmul(Minv, rhs, out=B)
        kernels.admm_point(B, Mu, sc.W0.dtype.type(1.0 / rho), V, S)
        mask, changed = _project_and_update(
            pattern, n_free, state, B, V, S, last_mask, rho_t, D, Mu
        )
        if it % st.update_every and it != st.max_iter:
            continue
        change = changed / kept
        last_mask = mask
        history.append((it, rho, change))
        if it >= st.min_iter and change < max(st.settle_change, st.stop_change):
            # the support has (nearly) settled: is the objective still improving? Measured
            # at B, whose product with G the B-step already gives: G B = rhs - rho B.
            fB = sc.base - dot(B, sc.C) + 0.5 * (dot(B, rhs) - rho * dot(B, B))
            flat = np.isfinite(f_last) and f_last - fB <= st.objective_tol * abs(f_last)
            f_last = fB
            if change < st.stop_change or flat:
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
    # and the start D0 -- a run cut by max_iter can still be exploring. Its product G D starts
    # the CG refit, so the check costs one product (G D0) in all.
    GD = sc.G @ D
    fD = sc.base - dot(D, sc.C) + 0.5 * dot(D, GD)
    extra["objective_iterate"] = fD
    extra["objective_start"] = f0
    if f0 < fD:
        D, mask, GD = D0, mask0, GD0
        extra["kept_start"] = True
    R = None
    if refit_method != "none":
        iters = st.refit_iter if refit_iter is None else refit_iter
        D, R, rinfo = refit_scaled(sc.G, sc.C, mask, D, refit_method, iters, REFIT_CG_TOL, GB=GD)
        extra.update(rinfo)
    return finish("admm-l0", sc, G, W0, D, mask, R, status, it, started, extra)

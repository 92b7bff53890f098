"""Fused element-wise steps of the L0 solvers (numba): one pass over memory each.

Every kernel takes C-contiguous arrays of one float dtype (float32 or float64), 2-D but for
the 1-D scores of ``kth_largest_banded`` (also the threshold search of
:func:`~nettrim.solvers.projections.kth_largest`), and preallocated outputs; reductions run
in a fixed order, so results are bit-reproducible.
Pure-NumPy references live in ``tests/solvers/test_l0_kernels.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def admm_rhs(C, Mu, D, rho, out):  # pragma: no cover (compiled)
    """``out = C - Mu + rho * D`` (the right-hand side of the B-step)."""
    n, m = C.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = C[i, j] - Mu[i, j] + rho * D[i, j]


@njit(cache=True)
def admm_point(B, Mu, inv_rho, V, S):  # pragma: no cover (compiled)
    """``V = B + Mu / rho`` and its scores ``S = V * V`` (the point the D-step projects)."""
    n, m = B.shape
    for i in range(n):
        for j in range(m):
            v = B[i, j] + Mu[i, j] * inv_rho
            V[i, j] = v
            S[i, j] = v * v


@njit(cache=True)
def admm_dual(B, V, mask, last, rho, D, Mu):  # pragma: no cover (compiled)
    """``D = V on mask, 0 elsewhere``; ``Mu += rho (B - D)``; returns ``#(mask != last)``."""
    n, m = B.shape
    changed = 0
    for i in range(n):
        for j in range(m):
            keep = mask[i, j]
            d = V[i, j] if keep else 0.0
            D[i, j] = d
            Mu[i, j] += rho * (B[i, j] - d)
            if keep != last[i, j]:
                changed += 1
    return changed


@njit(cache=True)
def cg_curvature(P, AP, mask, pap):  # pragma: no cover (compiled)
    """``AP *= mask`` and ``pap[j] = sum_i P[i, j] AP[i, j]`` (in float64)."""
    n, m = P.shape
    pap[:] = 0.0
    for i in range(n):
        for j in range(m):
            a = AP[i, j] if mask[i, j] else 0.0
            AP[i, j] = a
            pap[j] += P[i, j] * a


@njit(cache=True)
def cg_step(X, R, P, AP, alpha, rr):  # pragma: no cover (compiled)
    """``X += alpha P``; ``R -= alpha AP``; ``rr[j] = sum_i R[i, j]^2`` (in float64)."""
    n, m = X.shape
    rr[:] = 0.0
    for i in range(n):
        for j in range(m):
            a = alpha[j]
            X[i, j] += a * P[i, j]
            r = R[i, j] - a * AP[i, j]
            R[i, j] = r
            rr[j] += r * r


@njit(cache=True)
def cg_direction(R, P, beta):  # pragma: no cover (compiled)
    """``P = R + beta P`` (column-wise ``beta``)."""
    n, m = R.shape
    for i in range(n):
        for j in range(m):
            P[i, j] = R[i, j] + beta[j] * P[i, j]


def as_kernel_dtype(rho: float, like: np.ndarray):
    """A scalar in the arrays' dtype (so numba compiles one signature per dtype)."""
    return like.dtype.type(rho)


@njit(cache=True)
def dot64(A, B):  # pragma: no cover (compiled)
    """``<A, B>`` accumulated in float64 (a fixed order: per row, four interleaved partial
    sums, so the additions pipeline instead of waiting on one another)."""
    n, m = A.shape
    total = 0.0
    for i in range(n):
        s0 = s1 = s2 = s3 = 0.0
        j = 0
        while j + 4 <= m:
            s0 += np.float64(A[i, j]) * np.float64(B[i, j])
            s1 += np.float64(A[i, j + 1]) * np.float64(B[i, j + 1])
            s2 += np.float64(A[i, j + 2]) * np.float64(B[i, j + 2])
            s3 += np.float64(A[i, j + 3]) * np.float64(B[i, j + 3])
            j += 4
        while j < m:
            s0 += np.float64(A[i, j]) * np.float64(B[i, j])
            j += 1
        total += (s0 + s1) + (s2 + s3)
    return total


@njit(cache=True)
def mirror_upper(A):  # pragma: no cover (compiled)
    """Copy the upper triangle of the square ``A`` onto its lower one, in place."""
    n = A.shape[0]
    for i in range(n):
        for j in range(i):
            A[i, j] = A[j, i]


@njit(cache=True)
def cg_start(C, GB, mask, R, P, rr, c_norm2):  # pragma: no cover (compiled)
    """``R = P = mask * (C - GB)``, ``rr[j] = ||R[:, j]||^2``, ``c_norm2[j] = ||mask C||^2``."""
    n, m = C.shape
    rr[:] = 0.0
    c_norm2[:] = 0.0
    for i in range(n):
        for j in range(m):
            if mask[i, j]:
                c = C[i, j]
                r = c - GB[i, j]
                rr[j] += r * r
                c_norm2[j] += c * c
            else:
                r = 0.0
            R[i, j] = r
            P[i, j] = r


@njit(cache=True)
def kth_largest_banded(scores, keep, lo, hi, band):  # pragma: no cover (compiled)
    """``(kth, above)``: the ``keep``-th largest of the 1-D ``scores`` when it lies in
    ``(lo, hi]`` and ``above = #(scores > hi) < keep``, found in one pass (the band's entries
    gathered into the scratch ``band``, then partially sorted); ``(nan, -1)`` when the band
    misses (the caller then partially sorts everything). The value is exact either way."""
    above = 0
    count = 0
    for x in scores:
        # branch-free (scores are unpredictable): always write, advance only on a hit
        above += x > hi
        band[count] = x
        count += (x > lo) & (x <= hi)
    need = keep - above
    if need <= 0 or need > count:
        return np.nan, -1
    part = np.partition(band[:count], count - need)
    return np.float64(part[count - need]), above


@njit(cache=True)
def admm_dual_threshold(B, V, S, kth, keep, last, rho, D, Mu, mask):  # pragma: no cover
    """:func:`admm_dual` with the unstructured support built on the fly: ``mask`` keeps the
    ``keep`` entries of the first ``S.shape[0]`` rows with ``S > kth`` and, of those equal to
    ``kth``, the first in row-major order (the lower index wins, as
    :func:`~nettrim.solvers.projections.top_mask`); later rows (free rows) are always kept.
    Returns ``#(mask != last)``."""
    d_k, m = S.shape
    above = 0
    equal = 0
    for i in range(d_k):
        for j in range(m):
            above += S[i, j] > kth
            equal += S[i, j] == kth
    if above + equal == keep:  # every tie is kept (the usual case): a branch-free pass
        return _dual_at_least(B, V, S, kth, last, rho, D, Mu, mask)
    return _dual_with_ties(B, V, S, kth, keep - above, last, rho, D, Mu, mask)


@njit(cache=True)
def _dual_at_least(B, V, S, kth, last, rho, D, Mu, mask):  # pragma: no cover (compiled)
    """The dual step with the support ``S >= kth`` (and every free row). Its loop is kept
    apart from :func:`_dual_with_ties`' (the same update) so that it compiles without the
    tie counter's dependence between entries: about 3-4x faster (a shared inlined helper
    measured slower still)."""
    n, m = B.shape
    d_k = S.shape[0]
    changed = 0
    for i in range(n):
        for j in range(m):
            keep_ij = True if i >= d_k else S[i, j] >= kth
            mask[i, j] = keep_ij
            d = V[i, j] if keep_ij else 0.0
            D[i, j] = d
            Mu[i, j] += rho * (B[i, j] - d)
            changed += keep_ij != last[i, j]
    return changed


@njit(cache=True)
def _dual_with_ties(B, V, S, kth, ties, last, rho, D, Mu, mask):  # pragma: no cover
    """The dual step keeping ``S > kth`` and the first ``ties`` entries equal to ``kth``."""
    n, m = B.shape
    d_k = S.shape[0]
    changed = 0
    for i in range(n):
        for j in range(m):
            if i >= d_k:
                keep_ij = True
            else:
                s = S[i, j]
                keep_ij = s > kth
                if not keep_ij and s == kth and ties > 0:
                    keep_ij = True
                    ties -= 1
            mask[i, j] = keep_ij
            d = V[i, j] if keep_ij else 0.0
            D[i, j] = d
            Mu[i, j] += rho * (B[i, j] - d)
            changed += keep_ij != last[i, j]
    return changed


@njit(cache=True)
def _row_dot(L, a, b, n):  # pragma: no cover (compiled)
    """``sum_{c < n} L[a, c] L[b, c]`` in four interleaved partial sums (a fixed order)."""
    s0 = s1 = s2 = s3 = 0.0
    c = 0
    while c + 4 <= n:
        s0 += L[a, c] * L[b, c]
        s1 += L[a, c + 1] * L[b, c + 1]
        s2 += L[a, c + 2] * L[b, c + 2]
        s3 += L[a, c + 3] * L[b, c + 3]
        c += 4
    while c < n:
        s0 += L[a, c] * L[b, c]
        c += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def refit_columns(G, C, rows, starts, out):  # pragma: no cover (compiled)
    """Exact refit, column by column: ``G[S_j, S_j] w = C[S_j, j]`` by a Cholesky
    factorization in float64, written into ``out`` (zero elsewhere: the caller's). ``S_j`` is
    ``rows[starts[j]:starts[j + 1]]``. For the small supports of high sparsity, where a
    factorization per column costs less than the products of a CG refit. Returns False
    (``out`` incomplete) when a block is not positive definite."""
    m = C.shape[1]
    kmax = 0
    for j in range(m):
        kmax = max(kmax, starts[j + 1] - starts[j])
    L = np.empty((kmax, kmax))
    y = np.empty(kmax)
    for j in range(m):
        idx = rows[starts[j] : starts[j + 1]]
        k = idx.size
        for a in range(k):  # Cholesky-Banachiewicz on the gathered lower triangle
            for b in range(a + 1):
                s = np.float64(G[idx[a], idx[b]]) - _row_dot(L, a, b, b)
                if a == b:
                    if not s > 0.0:
                        return False
                    L[a, a] = np.sqrt(s)
                else:
                    L[a, b] = s / L[b, b]
            s = np.float64(C[idx[a], j])  # forward substitution, row a
            for c in range(a):
                s -= L[a, c] * y[c]
            y[a] = s / L[a, a]
        for a in range(k - 1, -1, -1):  # back substitution with L^T
            s = y[a]
            for c in range(a + 1, k):
                s -= L[c, a] * y[c]
            y[a] = s / L[a, a]
            out[idx[a], j] = y[a]
    return True

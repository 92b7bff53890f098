"""Fused element-wise kernels of the Net-Trim ADMM (numba, one pass over memory each).

The matrix products stay in BLAS; these kernels do everything else an iteration needs
over the ``(n, m)`` and ``(d, m)`` arrays, in place, without temporaries, and return the
norms the stopping rule and the adaptive penalty need; :func:`gather` takes the blocks the
finishes' small column systems are formed from. Serial on purpose: they are
memory-bound, and a serial kernel never starts numba's threading layer (so processes
may still be forked safely, and results do not depend on a thread count).

Constants are typed as the arrays (``XW.dtype.type(1.0)``): a float64 literal such as
``1.0 - alpha`` or ``min(a, 0.0)`` promotes every float32 element it meets to float64, which
halves the SIMD width and adds conversions (the projection pass took four times as long on a
1257 x 128 float32 block; ``docs/solvers.md``, "Kernel operands").

A NumPy reference of each kernel lives in ``tests/solvers/test_kernels.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def relax_and_measure(XW, Z, U, Y, active, alpha, all_active, col_sq):  # pragma: no cover
    """``col_sq[j] = ||(A - Y)_{Omega_j}||^2`` with ``A = alpha XW + (1 - alpha) Z + U``.

    ``A`` is the point the constraint set is projected from; the per-column squared
    distances to the targets give the ball's scaling (a reduction before the projection).
    ``A`` itself is not stored: :func:`project_and_update` recomputes it, which costs less
    memory traffic than writing and re-reading it.
    """
    n, m = XW.shape
    zero = XW.dtype.type(0.0)
    beta = XW.dtype.type(1.0) - alpha
    for j in range(m):
        col_sq[j] = 0.0
    if all_active:
        for i in range(n):
            for j in range(m):
                r = alpha * XW[i, j] + beta * Z[i, j] + U[i, j] - Y[i, j]
                col_sq[j] += r * r
        return
    for i in range(n):
        for j in range(m):
            r = alpha * XW[i, j] + beta * Z[i, j] + U[i, j] - Y[i, j]
            # a select, not a branch: Omega is data-dependent and would defeat branch
            # prediction, and a select of two values compiles to a vector blend
            col_sq[j] += r * r if active[i, j] else zero


@njit(cache=True)
def project_and_update(
    XW,
    Y,
    active,
    upper,
    has_upper,
    all_active,
    alpha,
    ball_scale,
    Z,
    U,
    D,
    stats,
    with_stats,
    skip_free,
):  # pragma: no cover
    """Project ``A = alpha XW + (1 - alpha) Z + U`` onto the constraint set; update; measure.

    On Omega: ``Z = Y + ball_scale[j] (A - Y)`` (the ball's projection, its scale computed
    from the reduction of :func:`relax_and_measure`). Off Omega: ``Z = min(A, V)``. Then
    ``U = A - Z`` and ``D = Z - U`` (the next W-update's right-hand side, saving a pass).

    ``stats`` ``(5, m)`` receives, per column, ``||XW - Z||^2, ||Z - Z_old||^2, ||XW||^2,
    ||Z||^2, ||U||^2`` (per-column sums vectorize, where a scalar float reduction would not
    without reassociation, and they feed per-column penalties); only ``with_stats``, as they
    cost a third of the pass and serve only the iterations that check or adapt. With
    ``skip_free`` the free entries (off Omega with ``V = +inf``) count in none of them: a
    W-update that leaves each column's free rows out (``AdmmSettings.column_grams``) makes
    them no part of the splitting.
    """
    n, m = XW.shape
    zero = XW.dtype.type(0.0)
    one = XW.dtype.type(1.0)
    inf = XW.dtype.type(np.inf)
    beta = one - alpha
    acc = stats
    acc[...] = 0.0
    for i in range(n):
        for j in range(m):
            xw = XW[i, j]
            z_old = Z[i, j]
            a = alpha * xw + beta * z_old + U[i, j]
            y = Y[i, j]
            z_on = y + ball_scale[j] * (a - y)
            keep = one
            if all_active:
                z = z_on
            else:
                v = upper[i, j] if has_upper else zero
                z_off = min(a, v)
                z = z_on if active[i, j] else z_off  # a select (a vector blend), no branch
                if skip_free:
                    keep = one if (active[i, j] or v < inf) else zero
            dz = z - z_old
            r = xw - z
            u = a - z
            Z[i, j] = z
            U[i, j] = u
            D[i, j] = z - u
            if not with_stats:
                continue
            r, dz, xw, z = keep * r, keep * dz, keep * xw, keep * z
            acc[0, j] += r * r
            acc[1, j] += dz * dz
            acc[2, j] += xw * xw
            acc[3, j] += z * z
            acc[4, j] += u * u


@njit(cache=True)
def shrink_and_update(W, S, T, weights, inv_rho, alpha, stats):  # pragma: no cover
    """``B = alpha W + (1 - alpha) S + T``; ``S = soft(B, c_ij / rho_j)``; ``T = B - S``.

    ``weights`` holds the L1 weights: ``(d, 1)`` for one weight ``c_i`` per row (0 leaves a
    row, a bias, unshrunk) or ``(d, m)`` for per-entry weights (reweighted L1);
    ``inv_rho[j]`` is the inverse penalty of column ``j``. ``stats`` ``(5, m)`` receives per
    column ``||W - S||^2, ||S - S_old||^2, ||W||^2, ||S||^2, ||T||^2``.
    """
    d, m = W.shape
    beta = 1.0 - alpha
    acc = stats
    acc[...] = 0.0
    step = 1 if weights.shape[1] == m else 0  # 0 broadcasts the row weight over columns
    for i in range(d):
        for j in range(m):
            c = weights[i, j * step]
            t = c * inv_rho[j]
            w = W[i, j]
            b = alpha * w + beta * S[i, j] + T[i, j]
            s = max(b - t, 0.0) + min(b + t, 0.0)
            ds = s - S[i, j]
            r = w - s
            S[i, j] = s
            T[i, j] = b - s
            acc[0, j] += r * r
            acc[1, j] += ds * ds
            acc[2, j] += w * w
            acc[3, j] += s * s
            acc[4, j] += (b - s) * (b - s)


@njit(cache=True)
def measure_point(
    XS, Y, active, upper, has_upper, all_active, col_sq, col_worst
):  # pragma: no cover
    """Feasibility of a point from its product ``XS = X S``, in one pass.

    ``col_sq[j] = ||(XS - Y)_{Omega_j}||^2``, ``col_worst[j]`` the largest ``(XS - V)_+``
    off Omega in column ``j``; returns the largest over all columns.
    """
    n, m = XS.shape
    for j in range(m):
        col_sq[j] = 0.0
        col_worst[j] = 0.0
    for i in range(n):
        for j in range(m):
            x = XS[i, j]
            r = x - Y[i, j]
            if all_active:
                col_sq[j] += r * r
            else:
                on = active[i, j]
                col_sq[j] += on * (r * r)
                v = upper[i, j] if has_upper else 0.0
                if not on:
                    col_worst[j] = max(col_worst[j], x - v)
    worst = 0.0
    for j in range(m):
        worst = max(worst, col_worst[j])
    return worst


@njit(cache=True)
def combine_rhs(P, S, T, r, out):  # pragma: no cover
    """``out = P + r_j (S - T)``: the right-hand side of the W-update (``r`` per column)."""
    d, m = P.shape
    for i in range(d):
        for j in range(m):
            out[i, j] = P[i, j] + r[j] * (S[i, j] - T[i, j])


@njit(cache=True)
def difference(A, B, out):  # pragma: no cover
    """``out = A - B``."""
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = A[i, j] - B[i, j]


@njit(cache=True)
def clip_multiplier(U, rho, active, upper, has_upper, all_active, out):  # pragma: no cover
    """``out = rho_j U``, then off Omega clipped at 0 (and 0 where ``V = +inf``)."""
    n, m = U.shape
    for i in range(n):
        for j in range(m):
            lam = rho[j] * U[i, j]
            off_omega = not (all_active or active[i, j])
            if off_omega and (lam < 0.0 or (has_upper and upper[i, j] == np.inf)):
                lam = 0.0
            out[i, j] = lam


@njit(cache=True)
def dual_terms(L, Y, active, upper, has_upper, all_active, XS, relax, terms):  # pragma: no cover
    """Per column ``j``: ``terms[0, j] = <L_{Omega_j}, y_j>``, ``terms[1, j] = <L_off, V>_j``,
    ``terms[2, j] = ||L_{Omega_j}||^2``.

    With ``relax``, ``V`` is replaced by ``max(V, XS)``: the bound off Omega that the point
    with product ``XS`` satisfies exactly.
    """
    n, m = L.shape
    terms[...] = 0.0
    for i in range(n):
        for j in range(m):
            lam = L[i, j]
            if all_active or active[i, j]:
                terms[0, j] += lam * Y[i, j]
                terms[2, j] += lam * lam
            elif lam != 0.0:
                v = upper[i, j] if has_upper else 0.0
                if relax:
                    v = max(v, XS[i, j])
                terms[1, j] += lam * v


@njit(cache=True)
def gather(A, rows, cols, out):  # pragma: no cover
    """``out = A[rows][:, cols]``, cast to ``out``'s precision.

    The column systems of the finishes gather a block of ``X`` (or of its Gram) per column,
    hundreds of them a solve: NumPy's ``A[np.ix_(rows, cols)]`` took 86 us for a
    ``600 x 30`` block of the digits layer, this loop 17 us (``docs/solvers.md``,
    "Active-set finish").
    """
    for i in range(rows.size):
        r = rows[i]
        for a in range(cols.size):
            out[i, a] = A[r, cols[a]]


def warm_up(dtype=np.float64) -> None:
    """Compile (or load from the cache) every kernel for ``dtype`` on tiny arrays."""
    n, d, m = 3, 2, 2
    XW, Z, U, Y = (np.zeros((n, m), dtype) for _ in range(4))
    A = np.zeros((n, m), dtype)
    active = np.ones((n, m), np.bool_)
    upper = np.zeros((n, m), dtype)
    col = np.zeros(m, np.float64)
    stats = np.zeros((5, m), np.float64)
    ones = np.ones(m)
    alpha = np.dtype(dtype).type(1.5)  # the solver passes scalars in the working precision
    relax_and_measure(XW, Z, U, Y, active, alpha, False, col)
    project_and_update(
        XW, Y, active, upper, True, False, alpha, ones.astype(dtype), Z, U, A, stats, True, True
    )
    W, S, T = (np.zeros((d, m), dtype) for _ in range(3))
    shrink_and_update(W, S, T, np.ones((d, 1)), ones, 1.5, stats)
    measure_point(XW, Y, active, upper, True, False, col, col.copy())
    clip_multiplier(Z, ones, active, upper, True, False, A)
    dual_terms(A, Y, active, upper, True, False, XW, True, stats[:3])
    combine_rhs(W, S, T, ones, W.copy())
    difference(Z, U, A)
    index = np.arange(2)
    gather(XW, index, index, np.zeros((2, 2)))

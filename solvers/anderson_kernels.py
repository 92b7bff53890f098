"""Per-column kernels of :class:`~.anderson.ColumnAnderson` (numba, one pass each).

Each column of a ``(rows, k)`` array has its own memory, so the normal equations need ``k``
separate dot products per pair of vectors, and the combination ``k`` separate sums. NumPy
has no BLAS form of either: ``einsum`` with float64 accumulation over float32 arrays casts
through buffers and ran the digits hidden layer's step (1322 x 128, memory 3) in 3 ms, a
third of it the combination; these kernels take about a third of that. Serial, like
:mod:`.kernels`, so that no threading layer starts.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def column_dots(A, b, out):  # pragma: no cover
    """``out[j, a] = sum_i A[a, i, j] b[i, j]`` accumulated in float64.

    ``A`` is ``(memory, rows, k)``, ``b`` is ``(rows, k)``, ``out`` is ``(k, memory)``
    float64. Rows are the outer loop so that every array is read once, in order.
    """
    m, r, k = A.shape
    acc = np.zeros((m, k))
    for i in range(r):
        for a in range(m):
            for j in range(k):
                acc[a, j] += np.float64(A[a, i, j]) * np.float64(b[i, j])
    for a in range(m):
        for j in range(k):
            out[j, a] = acc[a, j]


@njit(cache=True)
def subtract_combination(f, dF, gamma, columns, x):  # pragma: no cover
    """``x[:, j] = f[:, j] - sum_a gamma[a, j] dF[a, :, j]`` for the columns ``j`` where
    ``columns[j]``; the others of ``x`` are left as they are.

    ``gamma`` is ``(memory, k)`` in the arrays' precision; a zero coefficient skips its
    slot, so an unused slot's contents (from before a column's restart) never reach it.
    """
    m, r, k = dF.shape
    for i in range(r):
        for j in range(k):
            if columns[j]:
                s = f[i, j]
                for a in range(m):
                    if gamma[a, j] != 0:
                        s -= gamma[a, j] * dF[a, i, j]
                x[i, j] = s


__all__ = ["column_dots", "subtract_combination"]

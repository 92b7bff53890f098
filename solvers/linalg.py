"""Dense linear algebra shared by the solvers: rank-revealing reductions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

#: Singular directions of ``X`` below this fraction of the largest, times ``max(n, d)``,
#: are treated as exact zeros (LAPACK's usual rank rule, relative to machine precision).
RANK_RTOL_FACTOR = 1.0


@dataclass(frozen=True)
class RangeReduction:
    """``X = Q R`` with ``Q`` orthonormal of rank ``r``, applied to targets ``Y``.

    For any ``W``: ``||X W - Y||_F^2 = ||R W - C||_F^2 + ||outside||^2`` (per column),
    where ``C = Q^T Y`` and ``outside[j] = ||(I - Q Q^T) y_j||_2`` is computed directly
    (not as ``||y||^2 - ||Q^T y||^2``, which cancels).
    """

    R: np.ndarray  # (r, d), columns in the original order
    C: np.ndarray  # (r, m)
    outside: np.ndarray  # (m,)

    @property
    def rank(self) -> int:
        return self.R.shape[0]


def numerical_rank(diag_r: np.ndarray, shape: tuple[int, int], dtype: np.dtype) -> int:
    """Rank from the diagonal of a column-pivoted QR factor (non-increasing in magnitude)."""
    if diag_r.size == 0:
        return 0
    magnitude = np.abs(diag_r)
    tol = magnitude[0] * max(shape) * np.finfo(dtype).eps * RANK_RTOL_FACTOR
    return int(np.count_nonzero(magnitude > tol))


def reduce_to_range(X: np.ndarray, Y: np.ndarray) -> RangeReduction:
    """Project the least-squares residual of ``X W ~ Y`` onto the range of ``X``.

    Uses a column-pivoted thin QR, so rank-deficient ``X`` (constant-zero features, dead
    neurons, fewer samples than features) is handled with a rank cutoff.
    """
    n, d = X.shape
    if n == 0:
        return RangeReduction(
            R=np.zeros((0, d), X.dtype), C=np.zeros((0, Y.shape[1]), X.dtype),
            outside=np.zeros(Y.shape[1], X.dtype),
        )
    Q, R, perm = scipy.linalg.qr(X, mode="economic", pivoting=True)
    r = numerical_rank(np.diag(R), X.shape, X.dtype)
    Q = Q[:, :r]
    R_orig = np.empty((r, d), dtype=R.dtype)
    R_orig[:, perm] = R[:r, :]
    C = Q.T @ Y
    outside = np.linalg.norm(Y - Q @ C, axis=0)
    return RangeReduction(R=R_orig, C=C, outside=outside)

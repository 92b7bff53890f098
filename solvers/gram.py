"""Gram statistics of a design matrix, accumulated batch by batch.

The L0 reconstruction program (P4) needs the data only through ``G = X~^T X~`` (``X~`` the
design matrix, optionally with a column of ones appended for the bias), so a calibration
set of any size fits in memory: feed it in batches. Accumulation is in float64 whatever the
batch dtype, so float32 recordings lose nothing to the sum.

Damping. ``G`` is singular whenever an input is always zero (a dead ReLU, a border pixel)
or there are fewer samples than inputs. The solvers then use ``G + lam I`` with
``lam = damping * mean(diag(G))`` (SparseGPT's dampening, 0.01 by default); when every
diagonal entry is zero (no signal at all) ``lam = damping``. See :meth:`GramAccumulator.gram`.
"""

from __future__ import annotations

import numpy as np

#: Relative damping used by default: ``lam = DEFAULT_DAMPING * mean(diag(G))``.
DEFAULT_DAMPING = 0.01


def damping_amount(G: np.ndarray, damping: float) -> float:
    """``lam = damping * mean(diag(G))``, or ``damping`` itself when that mean is 0."""
    if damping == 0:
        return 0.0
    mean_diag = float(np.mean(np.diag(G))) if G.shape[0] else 0.0
    return damping * (mean_diag if mean_diag > 0 else 1.0)


def damped(G: np.ndarray, damping: float) -> np.ndarray:
    """``G + lam I`` with ``lam`` from :func:`damping_amount` (a new array)."""
    out = np.array(G, dtype=np.float64, copy=True)
    lam = damping_amount(G, damping)
    if lam:
        out[np.diag_indices_from(out)] += lam
    return out


class GramAccumulator:
    """Accumulates ``G = X~^T X~`` (float64) over batches of rows of ``X``.

    Parameters
    ----------
    d : int
        Number of columns of ``X`` (layer inputs).
    bias : bool
        Append a column of ones: ``X~ = [X, 1]``, so ``G`` is ``(d + 1, d + 1)`` with the
        column sums and the sample count in its last row and column.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(4, 3)
    >>> acc = GramAccumulator(3)
    >>> acc.update(X[:2]); acc.update(X[2:])
    >>> bool(np.array_equal(acc.gram(), X.T @ X)), acc.n_samples
    (True, 4)
    """

    def __init__(self, d: int, *, bias: bool = False) -> None:
        if isinstance(d, bool) or int(d) != d or d < 1:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        self.d = int(d)
        self.bias = bool(bias)
        self._xtx = np.zeros((self.d, self.d), dtype=np.float64)
        self._sums = np.zeros(self.d, dtype=np.float64)
        self._n = 0

    @classmethod
    def from_data(cls, X: np.ndarray, *, bias: bool = False) -> GramAccumulator:
        """An accumulator that has seen every row of ``X`` (shape ``(n, d)``)."""
        X = np.asarray(X)
        acc = cls(X.shape[1], bias=bias)
        acc.update(X)
        return acc

    @classmethod
    def from_gram(
        cls, G: np.ndarray, n_samples: int, *, column_sums: np.ndarray | None = None
    ) -> GramAccumulator:
        """Wrap a precomputed ``X^T X`` (``(d, d)``; with ``column_sums`` it supports ``bias``)."""
        G = np.asarray(G, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != G.shape[1]:
            raise ValueError(f"G must be a square (d, d) matrix, got shape {G.shape}")
        acc = cls(G.shape[0], bias=column_sums is not None)
        acc._xtx[...] = G
        if column_sums is not None:
            acc._sums[...] = np.asarray(column_sums, dtype=np.float64).reshape(G.shape[0])
        acc._n = int(n_samples)
        return acc

    @property
    def n_samples(self) -> int:
        """Rows seen so far."""
        return self._n

    @property
    def dim(self) -> int:
        """Size of ``G``: ``d + 1`` with the bias column, ``d`` without."""
        return self.d + self.bias

    def update(self, X_batch: np.ndarray) -> None:
        """Add the rows of ``X_batch`` (shape ``(b, d)``) to the statistics."""
        X_batch = np.asarray(X_batch)
        if X_batch.ndim != 2 or X_batch.shape[1] != self.d:
            raise ValueError(f"X_batch has shape {X_batch.shape}; expected (rows, {self.d})")
        if not np.isfinite(X_batch).all():
            raise ValueError("X_batch contains NaN or infinite values; all must be finite")
        Xb = X_batch.astype(np.float64, copy=False)
        self._xtx += Xb.T @ Xb
        self._sums += Xb.sum(axis=0)
        self._n += Xb.shape[0]

    def merge(self, other: GramAccumulator) -> GramAccumulator:
        """Add another accumulator's statistics into this one (e.g. from parallel workers)."""
        if other.d != self.d:
            raise ValueError(f"cannot merge accumulators of {other.d} and {self.d} columns")
        self._xtx += other._xtx
        self._sums += other._sums
        self._n += other._n
        return self

    def gram(self, *, damping: float = 0.0) -> np.ndarray:
        """``G = X~^T X~ + lam I`` as a new float64 array of shape ``(dim, dim)``.

        ``lam = damping * mean(diag(X~^T X~))`` (``damping`` itself when that mean is 0);
        ``damping=0`` returns the plain Gram matrix.
        """
        if self.bias:
            G = np.empty((self.d + 1, self.d + 1), dtype=np.float64)
            G[: self.d, : self.d] = self._xtx
            G[: self.d, self.d] = self._sums
            G[self.d, : self.d] = self._sums
            G[self.d, self.d] = self._n
        else:
            G = self._xtx.copy()
        return damped(G, damping) if damping else G

    def column_norms(self) -> np.ndarray:
        """``||X[:, i]||_2`` for every input column (shape ``(d,)``), from ``diag(X^T X)``."""
        return np.sqrt(np.maximum(np.diag(self._xtx), 0.0))

"""Dense linear algebra shared by the solvers: rank-revealing reductions, the shifted Gram
solves of the ADMM, blocks for small column systems, and the BLAS's priming for float32
products and its thread limit for small ones."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np
import scipy.linalg
from threadpoolctl import ThreadpoolController

from .kernels import gather

#: Singular directions of ``X`` below this fraction of the largest, times ``max(n, d)``,
#: are treated as exact zeros (LAPACK's usual rank rule, relative to machine precision).
RANK_RTOL_FACTOR = 1.0
#: A target whose distance to the range of ``X`` is within this fraction of its norm counts
#: as inside the range (so ``eps = 0`` stays feasible up to rounding).
RANGE_RTOL = 1e-8


#: Rows per block of :func:`masked_products`: its float64 temporaries stay bounded on tall
#: layers (a float64 copy of a float32 layer's ``(n, m)`` array weighs two of its own),
#: and a layer of at most this many rows is summed in one product, as before the blocks.
PRODUCT_BLOCK_ROWS = 8192


def masked_products(
    X: np.ndarray, A: np.ndarray, B: np.ndarray | None = None, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``X^T R`` and the squared norms of ``R``'s columns, in float64, for ``R = A - B``
    on ``mask`` and zero off it (``B`` zero, ``mask`` everywhere, when ``None``).

    ``R`` is formed in the operands' precision and cast, block by block of
    ``PRODUCT_BLOCK_ROWS`` rows: on a taller layer neither ``R`` nor ``X`` is copied whole
    to float64 (a layer of at most that many rows is one block).
    """
    products = np.zeros((X.shape[1], A.shape[1]))
    squares = np.zeros(A.shape[1])
    for start in range(0, X.shape[0], PRODUCT_BLOCK_ROWS):
        rows = slice(start, start + PRODUCT_BLOCK_ROWS)
        R = A[rows] if B is None else A[rows] - B[rows]
        if mask is not None:
            R = np.where(mask[rows], R, 0.0)
        R = np.asarray(R, dtype=np.float64)
        products += np.asarray(X[rows], dtype=np.float64).T @ R
        squares += np.einsum("ij,ij->j", R, R)
    return products, squares


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


def reduced_radius(radius: float, outside: float, scale: float) -> float | None:
    """The radius left for the part of a residual inside the range of ``X``.

    ``sqrt(radius^2 - outside^2)`` (a :class:`RangeReduction`'s ``outside``), ``0`` within
    rounding (``RANGE_RTOL`` of ``scale``), ``None`` when the targets are farther than
    ``radius`` from the range: no ``W`` fits them.
    """
    slack = radius**2 - outside**2
    if slack >= 0:
        return float(np.sqrt(slack))
    if outside <= radius + RANGE_RTOL * scale:
        return 0.0
    return None


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
            R=np.zeros((0, d), X.dtype),
            C=np.zeros((0, Y.shape[1]), X.dtype),
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


class ShiftedGramSolver:
    """Solves ``(X^T X + r I) W = B`` for any shift ``r > 0`` from one eigendecomposition.

    The eigendecomposition is taken on the smaller side of ``X`` (``n x d``):

    * ``d <= n``: ``X^T X = Q diag(lam) Q^T`` and ``W = Q diag(1/(lam + r)) Q^T B``
      (two ``d x d x m`` products);
    * ``n < d`` (Woodbury): ``X X^T = P diag(mu) P^T`` and
      ``W = (B - X^T P diag(1/(mu + r)) P^T X B) / r``.

    A change of ``r`` costs only a new diagonal, which makes adaptive penalties free.
    The Gram matrix is formed and factored in float64 whatever the working dtype; the
    eigenvectors are stored in the working dtype for the products.
    """

    def __init__(self, X: np.ndarray):
        self.n, self.d = X.shape
        self.dtype = X.dtype
        self.woodbury = self.n < self.d
        X64 = X.astype(np.float64, copy=False)
        gram = X64 @ X64.T if self.woodbury else X64.T @ X64
        evals, evecs = np.linalg.eigh(gram)
        self.eigenvalues = np.clip(evals, 0.0, None)
        self.eigenvectors = np.ascontiguousarray(evecs.astype(self.dtype))
        self._X = X

    def _inverse_spectrum(self, r: np.ndarray) -> np.ndarray:
        """``1 / (lam + r_j)``, shape ``(k, m)``; kept while ``r`` does not change (penalties
        change rarely, and it is as large as ``W``)."""
        cached = self.__dict__.get("_inverse_cache")
        if cached is not None and cached[0].shape == r.shape and np.array_equal(cached[0], r):
            return cached[1]
        # one shift for all columns, or one per column: (X^T X + r_j I) w_j = b_j
        inv = (1.0 / (self.eigenvalues[:, None] + r.reshape(1, -1))).astype(self.dtype)
        self.__dict__["_inverse_cache"] = (r.copy(), inv)
        return inv

    @property
    def lambda_max(self) -> float:
        """Largest eigenvalue of ``X^T X`` (the squared spectral norm of ``X``)."""
        return float(self.eigenvalues[-1]) if self.eigenvalues.size else 0.0

    def scaled(self, factor: float) -> ShiftedGramSolver:
        """The solver for ``X * factor`` without refactoring (eigenvalues times factor**2)."""
        clone = object.__new__(ShiftedGramSolver)
        clone.__dict__.update(self.__dict__)
        clone.eigenvalues = self.eigenvalues * factor**2
        clone.__dict__.pop("_inverse_cache", None)
        clone._X = self._X * np.asarray(factor, dtype=self.dtype)
        return clone

    def solve(
        self,
        B: np.ndarray,
        r: float,
        *,
        out: np.ndarray | None = None,
        work: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(X^T X + r I)^{-1} B`` for ``B`` of shape ``(d, m)``; ``r`` scalar or ``(m,)``.

        ``out`` (may not alias ``B``) and ``work`` (``(d, m)``, used when ``d <= n``)
        are optional preallocated buffers.
        """
        Q = self.eigenvectors
        r = np.asarray(r, dtype=np.float64)
        inv = self._inverse_spectrum(r)
        if not self.woodbury:
            work = np.matmul(Q.T, B, out=work)
            work *= inv
            return np.matmul(Q, work, out=out)
        XB = self._X @ B
        small = Q.T @ XB
        small *= inv
        correction = self._X.T @ (Q @ small)
        result = np.subtract(B, correction, out=out)
        result /= r.astype(self.dtype).reshape(1, -1)
        return result


#: :func:`row_grams` sums the rows' outer products by their pattern of kept columns in
#: groups of this many columns (at most ``2**PATTERN_COLUMNS`` patterns held at once).
PATTERN_COLUMNS = 8


def row_grams(X: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """``X_j^T X_j`` for every column ``j``, ``X_j`` the rows of ``X`` that ``rows[:, j]``
    keeps (float64).

    By groups of :data:`PATTERN_COLUMNS` columns: in a group the rows are grouped by their
    pattern of kept columns, and each pattern's Gram is formed once and added to the
    columns it holds, so a row costs one outer product a group rather than one for each
    column that keeps it (a Gram per column gathers and multiplies every kept row again).
    """
    grams: list[np.ndarray] = []
    for start in range(0, rows.shape[1], PATTERN_COLUMNS):
        grams += _pattern_grams(X, rows[:, start : start + PATTERN_COLUMNS])
    return grams


def _pattern_grams(X: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """:func:`row_grams` of the columns of ``rows`` (at most 32), by patterns."""
    k, d = rows.shape[1], X.shape[1]
    codes = rows.astype(np.uint32) @ (np.uint32(1) << np.arange(k, dtype=np.uint32))
    kept = np.flatnonzero(codes)  # rows kept in no column of the group add nothing
    order = kept[np.argsort(codes[kept], kind="stable")]
    codes, Xs = codes[order], X[order].astype(np.float64, copy=False)
    grams = [np.zeros((d, d)) for _ in range(k)]
    if not len(codes):
        return grams
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(codes)], strict=True):
        part = Xs[s:e]
        gram = part.T @ part
        for j in np.flatnonzero((codes[s] >> np.arange(k, dtype=np.uint32)) & 1):
            grams[j] += gram
    return grams


class ColumnGramSolver:
    """Solves ``(X_j^T X_j + r_j I) w_j = b_j`` per column, ``X_j`` the rows of ``X`` that
    ``rows[:, j]`` keeps, from one eigendecomposition per column.

    For a splitting whose column ``j`` constrains only some rows of ``X`` (the others
    free: off Omega with ``V = +inf``), the W-update may leave the free rows out: they
    would only damp the step (``||X_i (w_j - w_j^prev)||`` for every free row ``i``). Row
    generation's shared layout (``docs/solvers.md``, "Tall programs") stacks every column's
    ball rows, free in the other columns: there this update is its flat layout's
    block-diagonal one at a ``d x d`` factor per column. The caller passes the right-hand
    side built from the kept rows only (:meth:`masked`). ``lambda_max`` is the whole
    ``X``'s, which bounds every column's (the scaling keeps each spectrum in ``[0, 1]``).
    Grams are formed and factored in float64; eigenvectors kept in the working dtype.
    """

    woodbury = False

    def __init__(self, X: np.ndarray, rows: np.ndarray):
        self.dtype = X.dtype
        X64 = X.astype(np.float64, copy=False)
        self.lambda_max = float(np.linalg.eigvalsh(X64.T @ X64)[-1]) if X.size else 0.0
        eigenvalues, eigenvectors = [], []
        for gram in row_grams(X64, rows):
            lam, Q = np.linalg.eigh(gram)
            eigenvalues.append(np.clip(lam, 0.0, None))
            eigenvectors.append(Q)
        # stacked (m, d) and (m, d, d): an iteration's m small solves are two batched products
        self.eigenvalues = np.array(eigenvalues).reshape(len(eigenvalues), X.shape[1])
        self.eigenvectors = np.array(eigenvectors, dtype=self.dtype).reshape(
            len(eigenvectors), X.shape[1], X.shape[1]
        )
        self.mask = rows.astype(self.dtype)
        self.blocks = _own_blocks(rows)

    def scaled(self, factor: float) -> ColumnGramSolver:
        """The solver for ``X * factor`` without refactoring (eigenvalues times factor**2)."""
        clone = object.__new__(ColumnGramSolver)
        clone.__dict__.update(self.__dict__)
        clone.eigenvalues = self.eigenvalues * factor**2
        clone.lambda_max = self.lambda_max * factor**2
        return clone

    def masked(self, D: np.ndarray, columns: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``D`` with the rows each column leaves out set to zero (``columns``: the
        original positions of ``D``'s columns)."""
        mask = self.mask if columns.size == self.mask.shape[1] else self.mask[:, columns]
        return np.multiply(D, mask, out=out)

    def adjoint(
        self, X: np.ndarray, D: np.ndarray, *, columns: np.ndarray, out: np.ndarray, work
    ) -> np.ndarray:
        """``X^T`` times ``D`` with each column's free rows left out (:meth:`masked`,
        into ``work``); the rows of one column alone (:func:`_own_blocks`) as one
        product per column instead of passing through every column."""
        D = self.masked(D, columns, out=work)
        if self.blocks is None or columns.size != self.mask.shape[1]:
            return np.matmul(X.T, D, out=out)
        split, bounds = self.blocks
        np.matmul(X[split:].T, D[split:], out=out)
        for j, (s, e) in enumerate(bounds):
            out[:, j] += X[s:e].T @ D[s:e, j]
        return out

    def product(
        self, X: np.ndarray, W: np.ndarray, *, columns: np.ndarray, out: np.ndarray
    ) -> np.ndarray:
        """``X W`` on the entries the columns keep; on the rows of one column alone
        (:func:`_own_blocks`) in that column only, the others (free there, out of the
        splitting) left as they were."""
        if self.blocks is None or columns.size != self.mask.shape[1]:
            return np.matmul(X, W, out=out)
        split, bounds = self.blocks
        np.matmul(X[split:], W, out=out[split:])
        for j, (s, e) in enumerate(bounds):
            out[s:e, j] = X[s:e] @ W[:, j]
        return out

    def solve(self, B: np.ndarray, r, *, columns: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``w_j = (X_j^T X_j + r_j I)^{-1} b_j`` for the columns ``columns`` of ``B``
        (``(d, k)``, ``columns`` their original positions); ``r`` scalar or ``(k,)``."""
        every = columns.size == self.eigenvectors.shape[0]
        Q = self.eigenvectors if every else self.eigenvectors[columns]
        lam = self.eigenvalues if every else self.eigenvalues[columns]
        r = np.broadcast_to(np.asarray(r, dtype=np.float64), (B.shape[1],))
        inv = (1.0 / (lam + r[:, None])).astype(self.dtype)
        coords = np.matmul(B.T[:, None, :], Q)[:, 0, :]  # row b: (Q_b^T b_b)^T
        coords *= inv
        out[...] = np.matmul(Q, coords[:, :, None])[:, :, 0].T
        return out


def _own_blocks(rows: np.ndarray) -> tuple[int, list[tuple[int, int]]] | None:
    """``(split, bounds)`` when the first ``split`` rows come in ``m`` consecutive blocks,
    block ``j`` (rows ``bounds[j]``) kept in column ``j`` alone, and no later row is kept
    in one column alone: row generation's shared layout (its columns' ball rows, then the
    generated rows). Their products then cost ``size_j d`` per column rather than
    ``split d`` (``docs/solvers.md``, "Tall programs"). ``None`` otherwise."""
    n, m = rows.shape
    single = rows.sum(axis=1) == 1
    split = n if single.all() else int(np.argmin(single))
    if m < 2 or split == 0 or single[split:].any():
        return None
    owners = np.argmax(rows[:split], axis=1)
    if np.any(np.diff(owners) < 0) or owners[0] != 0 or owners[-1] != m - 1:
        return None
    edges = np.searchsorted(owners, np.arange(m + 1))
    return split, [(int(a), int(b)) for a, b in pairwise(edges)]


def take_block(A: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``A[np.ix_(rows, cols)]`` in float64, by one pass of :func:`.kernels.gather` (a
    fifth of NumPy's time on the finishes' blocks; the same values)."""
    out = np.empty((rows.size, cols.size))
    gather(A, rows, cols, out)
    return out


@cache
def _threadpools() -> ThreadpoolController:
    # Inspecting the loaded libraries costs about 1 ms, more than a finish round's small
    # systems on the digits layers; the BLAS libraries are loaded before the first call
    # (NumPy's and SciPy's, at this module's import)
    return ThreadpoolController()


def one_blas_thread():
    """A context in which the BLAS runs one thread: for many small products, where
    OpenBLAS's threads cost more than they save (``threadpoolctl``'s limit, on a
    controller inspected once per process)."""
    return _threadpools().limit(limits=1, user_api="blas")


#: ``(rows, inner, columns)`` of the product :func:`prime_blas` runs.
PRIME_SHAPE = (512, 64, 512)


def prime_blas(dtype: np.dtype) -> None:
    """Run one float32 product of shape :data:`PRIME_SHAPE` (about 1.2 ms; 2.7 ms at a
    process's first call) when ``dtype`` is float32, so that the iteration's float32
    products run at the library's full speed.

    Why: single-threaded OpenBLAS (0.3.30 and 0.3.31, Haswell kernels, here) ran float32
    products at a third to a half of its speed -- the same kernel, with bit-identical
    results -- until the process had run one product large in both outer dimensions; the
    larger that product, the larger the products that then run fast. A narrow layer's
    solve runs none (the digits hidden layers, ``1257 x 65 -> 128``: ``X^T D`` 1.7 ms
    against 0.67 ms, ``X W`` 1.2 ms against 0.6 ms), and before this priming its first
    certificate check ran one by chance. ``512 x 64 x 512`` is the smallest measured that
    brings every narrow layer of ``benchmarks/bench_admm.py`` (``products``) to the full
    speed; float64 products were not affected. The mechanism inside the library was not
    found (not the allocator, not page faults); ``docs/solvers.md``, "Products". Run at
    every solve, not once per process: it costs about half an iteration of the digits layers,
    and nothing has to know what the library has run before.
    """
    if np.dtype(dtype) != np.float32:
        return
    rows, inner, columns = PRIME_SHAPE
    np.ones((rows, inner), np.float32) @ np.ones((inner, columns), np.float32)


@dataclass(frozen=True)
class RotatedReduction:
    """``X = P diag(s) V^T`` (thin, rank ``k``) from the eigendecomposition of ``X^T X``.

    The rotated form of :class:`RangeReduction`: with ``R = diag(s) V^T`` and
    ``C = P^T Y = diag(1/s) V^T X^T Y``, for any ``W``
    ``||X W - Y||_F^2 = ||R W - C||_F^2 + ||outside||^2`` (per column, up to the
    directions below the rank cutoff). ``R`` has orthogonal rows, so the ADMM's W-update
    on it is diagonal in the rotated coordinates (:class:`RotatedGram`). Nothing of size
    ``n`` is kept: ``outside[j]^2 = ||y_j||^2 - ||c_j||^2`` (in float64; the cancellation
    costs ``eps * ||y_j||^2``, far below any radius the tolerances can resolve).
    """

    s: np.ndarray  # (k,) singular values, decreasing, float64
    V: np.ndarray  # (d, k) right singular vectors, float64
    C: np.ndarray  # (k, m), float64
    outside: np.ndarray  # (m,), float64

    @property
    def rank(self) -> int:
        return self.s.size

    @property
    def R(self) -> np.ndarray:
        """``diag(s) V^T``, shape ``(k, d)``."""
        return self.s[:, None] * self.V.T

    def gram(self, dtype: np.dtype) -> RotatedGram:
        """The W-update of the ADMM on ``R``, in ``dtype``."""
        return RotatedGram(self.s, self.V, dtype)


def rotate_to_range(
    X: np.ndarray, Y: np.ndarray, gram: np.ndarray | None = None
) -> RotatedReduction:
    """The :class:`RotatedReduction` of ``X W ~ Y`` from ``X^T X`` (``gram``, float64, when
    already computed) and one ``d x n x m`` product ``X^T Y``.

    Rank cutoff: an eigenvalue of ``X^T X`` is known to about ``eps * lambda_max * max(n,
    d)``; directions below it are dropped (their singular values are below
    ``sqrt(max(n, d) eps)`` of the largest, so they move ``X W`` by that fraction at most).
    """
    n, d = X.shape
    X64 = X.astype(np.float64, copy=False)
    gram = X64.T @ X64 if gram is None else gram
    evals, evecs = np.linalg.eigh(gram)
    evals, evecs = evals[::-1], evecs[:, ::-1]  # decreasing
    lam_max = max(float(evals[0]), 0.0) if evals.size else 0.0
    k = int(
        np.count_nonzero(evals > lam_max * max(n, d) * np.finfo(np.float64).eps * RANK_RTOL_FACTOR)
    )
    s = np.sqrt(evals[:k])
    V = np.ascontiguousarray(evecs[:, :k])
    Y64 = Y.astype(np.float64, copy=False)
    C = (V.T @ (X64.T @ Y64)) / s[:, None]
    y_sq = np.einsum("ij,ij->j", Y64, Y64)
    outside = np.sqrt(np.maximum(y_sq - np.einsum("ij,ij->j", C, C), 0.0))
    return RotatedReduction(s=s, V=V, C=C, outside=outside)


class RotatedGram:
    """The ADMM's W-update and ``X W`` for ``X = diag(s) V^T`` with orthonormal ``V``
    ``(d, k)``: two ``d x k x m`` products instead of four.

    ``W = (X^T X + r I)^{-1} (X^T D + r (S - T))`` with ``E = S - T``, ``P = V^T E`` is
    ``W = E + V B``, ``B = s/(s^2 + r) D - s^2/(s^2 + r) P``, and then
    ``X W = s (P + B)`` needs no product (``V^T V = I``).
    """

    woodbury = False

    def __init__(self, s: np.ndarray, V: np.ndarray, dtype: np.dtype):
        self.s64 = np.asarray(s, dtype=np.float64)
        self.dtype = np.dtype(dtype)
        self.V = np.ascontiguousarray(V.astype(self.dtype))
        self.VT = np.ascontiguousarray(self.V.T)
        self.s = self.s64.astype(self.dtype)[:, None]
        self._cache: tuple | None = None

    @property
    def lambda_max(self) -> float:
        return float(self.s64[0] ** 2) if self.s64.size else 0.0

    def scaled(self, factor: float) -> RotatedGram:
        """The update for ``X * factor``."""
        return RotatedGram(self.s64 * factor, self.V, self.dtype)

    def _coefficients(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``s/(s^2 + r_j)`` and ``s^2/(s^2 + r_j)``, ``(k, m)``; kept while ``r`` does not
        change (penalties change rarely)."""
        if self._cache is not None and np.array_equal(self._cache[0], r):
            return self._cache[1], self._cache[2]
        s = self.s64[:, None]
        inv = 1.0 / (s**2 + r.reshape(1, -1))
        a, b = (s * inv).astype(self.dtype), (s**2 * inv).astype(self.dtype)
        self._cache = (r.copy(), a, b)
        return a, b

    def update(self, D, S, T, r, *, W, XW, E) -> None:
        """``W`` and ``XW = X W`` of the W-update (``E`` ``(d, m)`` is a work buffer;
        ``XW`` holds ``P`` on the way)."""
        a, b = self._coefficients(np.asarray(r, dtype=np.float64))
        B = self.__dict__.get("_B")
        if B is None or B.shape != D.shape:
            B = self._B = np.empty_like(D)
        np.subtract(S, T, out=E)
        np.matmul(self.VT, E, out=XW)  # P
        np.multiply(a, D, out=B)
        B -= b * XW
        np.matmul(self.V, B, out=W)
        W += E
        XW += B
        XW *= self.s

"""Type-II Anderson acceleration of a fixed-point iteration, with a safeguard.

For a map ``F`` whose fixed points are wanted (here ``interval`` ADMM iterations), Anderson
acceleration (Walker & Ni 2011; Zhang, O'Donoghue & Boyd 2020 for its type-II, safeguarded
form in SCS) replaces the plain step ``x+ = F(x)`` by the combination of the last
``memory`` images that best cancels the residuals ``g = F(x) - x``::

    gamma = argmin || g_k - dG gamma ||        dG, dF: the differences of successive g, F(x)
    x+    = F(x_k) - dF gamma

The least squares go through their ``memory x memory`` normal equations (kept up to date
one column at a time, so a step costs about ``3 memory`` passes over the vectors), with a
small Tikhonov term. The safeguard accepts an accelerated point only when the residual
there is at most ``safeguard`` times the residual it came from; otherwise the plain image
``F(x_k)`` (kept) takes its place and the memory starts again.

The classes work on plain arrays and know nothing of the ADMM: the caller maps its state
to them (in the norm the iteration contracts in) and back. :class:`Anderson` combines one
flat vector; :class:`ColumnAnderson` keeps one memory per column of a matrix, for a map
that acts on each column alone (a separable program: one ball per neuron), so that one
column's restart, rejection or departure leaves the others' memories as they are.
"""

from __future__ import annotations

import numpy as np

from .anderson_kernels import column_dots, subtract_combination

#: Tikhonov term of the normal equations, relative to their trace (at least ten roundings
#: of the vectors' precision): small enough not to bias a well-posed combination, large
#: enough to keep near-parallel differences solvable.
REGULARIZATION = 1e-8
#: Combinations with a coefficient larger than this are refused (an ill-posed step).
MAX_COEFFICIENT = 1e4


class Anderson:
    """Anderson acceleration of ``x -> F(x)`` on vectors of length ``size``.

    The caller keeps its point in :attr:`x` (set it with :meth:`restart`), applies ``F``
    to it, writes ``F(x)`` into :attr:`f` and calls :meth:`step`, which leaves the point
    to continue from in :attr:`x`. ``accepted`` and ``rejected`` count the accelerated
    points the safeguard kept and refused. Buffers: ``2 memory + 4`` vectors, the
    differences and four working ones (each reused, so no step allocates a vector).

    Parameters
    ----------
    size : int
        Length of the vectors.
    memory : int
        Differences kept (``>= 1``).
    dtype : dtype
        Of the vectors (the iteration's working precision); the normal equations are
        solved in float64.
    safeguard : float
        An accelerated point is kept only if its residual is at most this many times the
        residual of the point it was computed from.
    """

    def __init__(self, size: int, memory: int, dtype, *, safeguard: float = 1.0):
        self.memory, self.safeguard = int(memory), float(safeguard)
        self.dG = np.zeros((self.memory, size), dtype)
        self.dF = np.zeros((self.memory, size), dtype)
        self.gram = np.zeros((self.memory, self.memory))
        self.x, self.f = np.zeros(size, dtype), np.zeros(size, dtype)
        self.f_prev, self.g_prev = np.zeros(size, dtype), np.zeros(size, dtype)
        self.accepted = self.rejected = 0
        self.restart()

    def restart(self) -> None:
        """Forget every difference; :attr:`x` is the caller's to set (the next
        :meth:`step` only records its point)."""
        self.count = self.slot = 0
        self.have_prev = False
        self.accelerated = False  # whether x came from an accelerated step
        self.g_prev_norm = np.inf

    def step(self, *, extrapolate: bool = True) -> bool:
        """Given ``f = F(x)`` in :attr:`f`, put the point to continue from in :attr:`x`:
        an accelerated one; the plain image kept from before when the safeguard rejects
        ``x``; or ``f`` itself (no difference remembered yet, an ill-posed combination, or
        ``extrapolate=False``: the safeguard and the memory only, for a last step whose
        accelerated point could not be checked). Returns whether :attr:`x` differs from
        ``f``, i.e. whether the caller must move its state there."""
        g = np.subtract(self.f, self.x, out=self.x)  # x is not needed any more
        g_norm = float(np.linalg.norm(g))
        if self.accelerated and not g_norm <= self.safeguard * self.g_prev_norm:
            self.rejected += 1
            np.copyto(self.x, self.f_prev)  # F of the point the rejected one came from
            self.restart()
            return True
        self.accepted += self.accelerated
        if self.have_prev:
            self._remember(g, self.f)
        # g and f become the previous ones by swapping buffers (no copies)
        self.x, self.g_prev = self.g_prev, self.x
        self.f, self.f_prev = self.f_prev, self.f
        self.g_prev_norm, self.have_prev = g_norm, True
        gamma = self._coefficients(self.g_prev) if self.count and extrapolate else None
        self.accelerated = gamma is not None
        if gamma is None:
            np.copyto(self.x, self.f_prev)
            return False
        np.dot(gamma.astype(self.x.dtype), self.dF[: self.count], out=self.x)
        np.subtract(self.f_prev, self.x, out=self.x)
        return True

    def counts(self) -> tuple[int, int]:
        """``(accepted, rejected)`` so far."""
        return self.accepted, self.rejected

    def _remember(self, g: np.ndarray, f: np.ndarray) -> None:
        """Store the newest differences in the ring and update the normal equations."""
        s = self.slot
        np.subtract(g, self.g_prev, out=self.dG[s])
        np.subtract(f, self.f_prev, out=self.dF[s])
        self.count = min(self.count + 1, self.memory)
        row = self.dG[: self.count] @ self.dG[s]
        self.gram[s, : self.count] = row
        self.gram[: self.count, s] = row
        self.slot = (s + 1) % self.memory

    def _coefficients(self, g: np.ndarray) -> np.ndarray | None:
        """``gamma`` of the regularized least squares, or ``None`` when ill-posed."""
        k = self.count
        H = self.gram[:k, :k]
        scale = float(np.trace(H))
        if not scale > 0:  # no residual has changed: nothing to combine
            return None
        rhs = (self.dG[:k] @ g).astype(np.float64)
        # the products were accumulated in the vectors' precision: a Tikhonov term below
        # its rounding would not regularize anything
        shift = max(REGULARIZATION, 10 * float(np.finfo(self.dG.dtype).eps)) * scale
        try:
            gamma = np.linalg.solve(H + shift * np.eye(k), rhs)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(gamma)) or np.max(np.abs(gamma)) > MAX_COEFFICIENT:
            return None
        return gamma


class ColumnAnderson:
    """:class:`Anderson` on each column of ``(rows, k)`` arrays, for a map that acts on
    every column alone.

    The same step, safeguard and regularization per column: column ``j`` combines only
    its own differences, is refused and restarted alone, and keeps its memory while
    other columns restart or leave (:meth:`restrict`). The differences share one ring of
    ``memory`` slots; column ``j`` uses its ``count[j]`` newest, which were all written
    after its last restart. Same buffers as :class:`Anderson` (``2 memory + 4`` arrays),
    and per column a ``memory x memory`` system.

    Parameters
    ----------
    rows, k : int
        Shape of the arrays: ``k`` columns of ``rows`` entries.
    memory, dtype, safeguard
        As in :class:`Anderson`, for every column.
    """

    def __init__(self, rows: int, k: int, memory: int, dtype, *, safeguard: float = 1.0):
        self.memory, self.safeguard = int(memory), float(safeguard)
        shape = (rows, k)
        self.dG = np.zeros((self.memory, *shape), dtype)
        self.dF = np.zeros((self.memory, *shape), dtype)
        self.gram = np.zeros((k, self.memory, self.memory))
        self._dots = np.zeros((k, self.memory))  # the kernels' products, per column
        self.x, self.f = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.f_prev, self.g_prev = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.count = np.zeros(k, dtype=np.int64)
        self.have_prev = np.zeros(k, dtype=bool)
        self.accelerated = np.zeros(k, dtype=bool)
        self.g_prev_norm = np.full(k, np.inf)
        self.slot = 0
        self.accepted = self.rejected = 0

    def restart(self, columns: np.ndarray | None = None) -> None:
        """Forget the differences of ``columns`` (a boolean mask; all by default), and
        that their :attr:`x` came from an accelerated step: the caller sets it anew."""
        columns = slice(None) if columns is None else columns
        self.count[columns] = 0
        self.have_prev[columns] = False
        self.accelerated[columns] = False
        self.g_prev_norm[columns] = np.inf

    def restrict(self, keep: np.ndarray) -> None:
        """Keep only the columns of the boolean mask ``keep``, with their memories."""
        for name in ("dG", "dF"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[:, :, keep]))
        for name in ("x", "f", "f_prev", "g_prev"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[:, keep]))
        for name in ("gram", "_dots", "count", "have_prev", "accelerated", "g_prev_norm"):
            setattr(self, name, getattr(self, name)[keep].copy())

    def step(self, *, extrapolate: bool = True) -> bool:
        """:meth:`Anderson.step` column by column: given ``f = F(x)`` in :attr:`f`, put in
        :attr:`x` each column's point to continue from. Returns whether :attr:`x`
        differs from ``f`` in any column."""
        g = np.subtract(self.f, self.x, out=self.x)  # x is not needed any more
        column_dots(g[None], g, self._dots[:, :1])
        g_norm = np.sqrt(self._dots[:, 0])
        refused = self.accelerated & ~(g_norm <= self.safeguard * self.g_prev_norm)
        self.rejected += int(refused.sum())
        self.accepted += int((self.accelerated & ~refused).sum())
        going = ~refused
        if np.any(going & self.have_prev):
            self._remember(g, self.f, going & self.have_prev)
        # g and f become the previous ones by swapping buffers; the refused columns' own
        # previous image (the point to go back to) is then in self.f
        self.x, self.g_prev = self.g_prev, self.x
        self.f, self.f_prev = self.f_prev, self.f
        back = self.f
        np.copyto(self.x, self.f_prev)
        np.copyto(self.x, back, where=refused[None, :])
        self.restart(refused)
        self.g_prev_norm[going] = g_norm[going]
        self.have_prev |= going
        candidates = going & (self.count > 0) if extrapolate else np.zeros_like(going)
        self.accelerated = np.zeros_like(going)
        if candidates.any():
            gamma, good = self._coefficients(self.g_prev)
            self.accelerated = candidates & good
            coefficients = np.ascontiguousarray(gamma.T, dtype=self.dF.dtype)
            subtract_combination(self.f_prev, self.dF, coefficients, self.accelerated, self.x)
        return bool(refused.any() or self.accelerated.any())

    def counts(self) -> tuple[int, int]:
        """``(accepted, rejected)`` accelerated columns so far."""
        return self.accepted, self.rejected

    def _remember(self, g: np.ndarray, f: np.ndarray, columns: np.ndarray) -> None:
        """Store the newest differences in the ring (for every column; only ``columns``
        count them) and update the normal equations."""
        s = self.slot
        np.subtract(g, self.g_prev, out=self.dG[s])
        np.subtract(f, self.f_prev, out=self.dF[s])
        row = self._dots
        column_dots(self.dG, self.dG[s], row)
        self.gram[:, s, :] = row
        self.gram[:, :, s] = row
        self.count[columns] = np.minimum(self.count[columns] + 1, self.memory)
        self.slot = (s + 1) % self.memory

    def _coefficients(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per column ``gamma`` (``(k, memory)``, zero on slots a column does not use) and
        whether it is well posed (:meth:`Anderson._coefficients`)."""
        m = self.memory
        newest = (self.slot - 1 - np.arange(m)) % m  # the slots, newest first
        valid = np.zeros((self.count.size, m), dtype=bool)
        valid[:, newest] = self.count[:, None] > np.arange(m)[None, :]
        # np.where, not a product: a non-finite unused slot must not reach the others
        H = np.where(valid[:, :, None] & valid[:, None, :], self.gram, 0.0)
        scale = np.einsum("jaa->j", H)
        column_dots(self.dG, g, self._dots)
        rhs = np.where(valid, self._dots, 0.0)
        regularization = max(REGULARIZATION, 10 * float(np.finfo(self.dG.dtype).eps))
        shift = regularization * np.where(scale > 0, scale, 1.0)
        # unused slots get an identity row, so every system is square and solvable
        A = H + np.eye(m) * (shift[:, None, None] + ~valid[:, :, None])
        try:
            gamma = np.linalg.solve(A, rhs[:, :, None])[:, :, 0] * valid
        except np.linalg.LinAlgError:
            return np.zeros_like(rhs), np.zeros(rhs.shape[0], dtype=bool)
        finite = np.all(np.isfinite(gamma), axis=1)
        good = (
            (scale > 0) & finite & (np.max(np.abs(gamma), axis=1, initial=0.0) <= MAX_COEFFICIENT)
        )
        return np.where(good[:, None], gamma, 0.0), good


__all__ = ["Anderson", "ColumnAnderson"]

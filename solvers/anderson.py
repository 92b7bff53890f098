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

The class works on flat vectors and knows nothing of the ADMM: the caller maps its state
to a vector (in the norm the iteration contracts in) and back.
"""

from __future__ import annotations

import numpy as np

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


__all__ = ["Anderson"]

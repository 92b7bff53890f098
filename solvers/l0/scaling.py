"""The damped, unit-diagonal form of (P4) every L0 solver iterates on, and its measures.

See :mod:`nettrim.solvers.l0` (damping, scaling, free rows) and ``docs/l0.md``, "Damping".
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .. import l0_kernels as kernels
from ..gram import damping_amount
from ..projections import SparsityPattern, support_mask

#: Safety factor on the power-iteration estimate of ``lambda_max`` (it estimates from below).
LIPSCHITZ_SAFETY = 1.02
POWER_ITERATIONS = 100


def dot(A: np.ndarray, B: np.ndarray) -> float:
    """``<A, B>`` accumulated in float64 whatever the arrays' dtype (2-D arrays)."""
    if A.dtype != B.dtype or A.ndim != 2 or A.dtype not in (np.float32, np.float64):
        return float(np.einsum("ij,ij->", A, B, dtype=np.float64))
    return float(kernels.dot64(np.ascontiguousarray(A), np.ascontiguousarray(B)))


def free_mask(mask_in: np.ndarray, n_free: int) -> np.ndarray:
    """Full ``(d, m)`` support: the thresholded rows' mask stacked over ``n_free`` True rows."""
    if not n_free:
        return mask_in
    return np.vstack([mask_in, np.ones((n_free, mask_in.shape[1]), dtype=bool)])


def hard_threshold(
    A: np.ndarray, pattern: SparsityPattern, n_free: int = 0, *, state: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(H_K(A), support)`` with the last ``n_free`` rows of ``A`` left as they are.

    ``state`` is scratch an iterative solver carries between calls (speed only).
    """
    d = A.shape[0] - n_free
    top = A[:d] if n_free else A
    mask = free_mask(support_mask(top * top, pattern, state=state), n_free)
    return np.where(mask, A, np.zeros((), A.dtype)), mask


def objective(G: np.ndarray, W0: np.ndarray, W: np.ndarray) -> float:
    """``f(W) = 1/2 tr((W0 - W)^T G (W0 - W))``."""
    E = W0 - W
    return 0.5 * dot(E, G @ E)


def lipschitz(G: np.ndarray, *, method: str = "eigh") -> float:
    """``lambda_max(G)`` of a symmetric positive semi-definite ``G``.

    ``method="eigh"`` computes it exactly (LAPACK, largest eigenvalue only);
    ``"power"`` runs :data:`POWER_ITERATIONS` power iterations from a fixed start and
    multiplies by :data:`LIPSCHITZ_SAFETY` (an estimate from above in practice).
    """
    d = G.shape[0]
    if method == "eigh":
        return float(scipy.linalg.eigh(G, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0])
    v = np.ones(d) / np.sqrt(d)
    value = 0.0
    for _ in range(POWER_ITERATIONS):
        u = G @ v
        value = float(np.linalg.norm(u))
        if value == 0:
            return 0.0
        v = u / value
    return LIPSCHITZ_SAFETY * value


class Scaled:
    """The damped, unit-diagonal program ``(S^-1 G_lam S^-1, S W0)`` and its way back.

    ``G``, ``W0`` and ``C = G W0`` (scaled) are held in ``dtype`` (the working precision of
    the iterations); the scale and the reported figures stay in float64.
    """

    def __init__(self, G: np.ndarray, W0: np.ndarray, damping: float, dtype=np.float64) -> None:
        self.lam = damping_amount(G, damping)
        diag = np.diag(G) + self.lam
        scale = np.sqrt(np.where(diag > 0, diag, 1.0))
        self.scale = scale
        Gs = G / scale[:, None] / scale[None, :]
        Gs[np.diag_indices_from(Gs)] = diag / scale**2
        self.G = Gs.astype(dtype, copy=False)
        # in the finer of W0's and the working precision (the reported f(0) is as precise
        # as W0), then in the working precision
        fine = np.result_type(W0.dtype, dtype)
        W0s = np.asarray(W0, dtype=fine) * scale.astype(fine)[:, None]
        C = Gs.astype(fine, copy=False) @ W0s  # the right-hand side G W0, scaled
        self.base = 0.5 * dot(W0s, C)  # damped f(0)
        # C order whatever W0's: the solvers' in-place BLAS steps rely on it
        self.W0 = np.ascontiguousarray(W0s, dtype=dtype)
        self.C = np.ascontiguousarray(C, dtype=dtype)
        self.lam_norm0 = dot(W0, W0)

    def unscale(self, B: np.ndarray, dtype=np.float64) -> np.ndarray:
        """``S^-1 B`` in ``dtype`` (computed in ``B``'s precision when it is ``dtype``)."""
        if B.dtype == dtype:
            return B / self.scale.astype(dtype)[:, None]
        return B.astype(np.float64, copy=False) / self.scale[:, None]

    def damped_objective(self, B: np.ndarray, R: np.ndarray) -> float:
        """Damped ``f`` at ``B`` supported where ``R = C - G B`` is the residual on the
        support (zero off it), without a product: ``<B, G B> = <B, C> - <B, R>``."""
        bc = dot(B, self.C)
        return self.base - 0.5 * bc - 0.5 * dot(B, R)

    def undamped(self, f_damped: float, W: np.ndarray, W0: np.ndarray) -> float:
        """Undamped ``f`` from the damped one: subtract ``lam/2 ||W0 - W||_F^2``."""
        if not self.lam:
            return f_damped
        E = W0 - W
        return max(f_damped - 0.5 * self.lam * dot(E, E), 0.0)

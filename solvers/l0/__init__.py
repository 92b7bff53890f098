"""L0-constrained reconstruction: IHT and ADMM with hard thresholding for (P4), IHT for (P5).

(P4), on the Gram matrix ``G = X~^T X~`` of shape ``(d, d)`` and weights ``W0`` ``(d, m)``::

    minimize    f(W) = 1/2 tr((W0 - W)^T G (W0 - W)) = 1/2 ||X~ W0 - X~ W||_F^2
    subject to  W in K                       (a sparsity set, :mod:`.projections`)

(P5), the ReLU-aware loss on samples ``X~`` ``(n, d)``, targets ``Y`` ``(n, m)``, the active set
``Omega`` and upper bounds ``V`` on its complement::

    minimize    ||(X~ W - Y)_Omega||_F^2 + ||(X~ W - V)_+ on Omega^c||_F^2
    subject to  W in K

Conventions shared by every solver here:

* Damping. ``G`` is replaced by ``G_lam = G + lam I``, ``lam = damping * mean(diag(G))``
  (:func:`~.gram.damping_amount`; 0.01 by default, SparseGPT's dampening). This adds
  ``lam/2 ||W0 - W||_F^2`` to the objective: it keeps a singular ``G`` (dead inputs, fewer
  samples than inputs) well posed, and it is what the reported figures exclude — ``info``
  always measures the *undamped* ``f``.
* Scaling. The iterations run on ``B = S W`` with ``S = diag(sqrt(diag(G_lam)))``, so the
  scaled Gram ``S^-1 G_lam S^-1`` has a unit diagonal (Jacobi preconditioning). The hard
  threshold in these variables keeps the entries with the largest ``|W_ij| sqrt(G_ii)``:
  still an exact projection onto ``K`` (supports do not see the scaling), in the metric of
  ``diag(G_lam)``.
* Free rows. The last ``n_free`` rows of ``W`` (a bias row) are never thresholded.
* Refit. Every solver ends by re-fitting the kept weights on their support
  (:func:`refit`): for each column ``j`` with support ``S_j`` this solves
  ``G_lam[S_j, S_j] w = (G_lam W0)[S_j, j]``, the exact minimizer of the damped objective on
  that support (Cholesky per distinct support, or batched conjugate gradients when that is
  too costly).
"""

from __future__ import annotations

from .admm import solve_l0_admm
from .iht import solve_iht
from .p5 import p5_loss, solve_p5_iht
from .refits import (
    REFIT_CG_MAX_ITER,
    REFIT_CG_TOL,
    REFIT_EXACT_MAX_FLOPS,
    REFIT_GROUP_OVERHEAD,
    REFIT_METHODS,
    refit,
)
from .scaling import LIPSCHITZ_SAFETY, POWER_ITERATIONS, hard_threshold, lipschitz, objective
from .settings import CHOLESKY_MAX_PENALTIES, AdmmL0Settings

__all__ = [
    "CHOLESKY_MAX_PENALTIES",
    "LIPSCHITZ_SAFETY",
    "POWER_ITERATIONS",
    "REFIT_CG_MAX_ITER",
    "REFIT_CG_TOL",
    "REFIT_EXACT_MAX_FLOPS",
    "REFIT_GROUP_OVERHEAD",
    "REFIT_METHODS",
    "AdmmL0Settings",
    "hard_threshold",
    "lipschitz",
    "objective",
    "p5_loss",
    "refit",
    "solve_iht",
    "solve_l0_admm",
    "solve_p5_iht",
]

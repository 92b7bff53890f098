"""The feasibility rule: how far outside its constraints a point may be and still count as
meeting them to a tolerance ``tol``.

One rule for every place that asks (the ADMM's stopping test, the polish and repair, the
pruning report and ``nettrim verify``), written on plain figures so that each caller
measures in its own way and judges alike:

* the ball: ``residual <= radius + max(tol * radius, tol**2 * ||Y_Omega||)`` (per column
  with per-column balls). Relative to the radius; the absolute floor ``tol**2 * ||Y_Omega||``
  gives ``eps = 0`` (and radii below ``tol * ||Y_Omega||``) a tolerance without loosening the
  relative one, and scales with the targets, so small activations get no absolute slack;
* off Omega: ``violation <= tol * max|Y|`` (relative to the targets' largest magnitude).

A measure taken in a lower precision than the problem's (the ADMM's float32 iterates of a
float64 problem) asks the ball for ``rounding * ||Y_Omega||`` more, at most half the slack, so
that the point measured again in full precision still meets ``tol``.
"""

from __future__ import annotations

import numpy as np

#: The tolerance the exact backends' results (Clarabel, SCS, OSQP through cvxpy, after their
#: tiny entries are rounded to exact zeros) are held to by this rule. Measured on random
#: networks and the bundled digits network, parallel and cascade, eps 0.05 and 0 (backend
#: defaults): the largest ball excess was 2.4e-7 of the radius and 7.4e-9 of ||Y_Omega|| for
#: Clarabel, 4.6e-5 and 6.3e-7 for SCS; the largest violation 3e-8 and 5.4e-5 of max|Y|.
#: ``1e-3`` (the ADMM's default, an absolute floor of 1e-6 ||Y_Omega||) covers them all.
EXACT_FEAS_TOL = 1e-3


def allowed_residual(radius, target_norm, tol: float, rounding: float = 0.0):
    """The largest ball residual that meets ``radius`` to ``tol``.

    Parameters
    ----------
    radius : float or ndarray
        The ball's absolute radius (one per column for per-column balls).
    target_norm : float or ndarray
        ``||Y_Omega||_F`` (``||y_j on Omega_j||`` per column): the scale of the absolute floor.
    tol : float
        The relative tolerance.
    rounding : float
        Relative to ``target_norm``: taken off the slack (at most half of it) when the
        residual is measured in a lower precision than the problem's.

    Returns
    -------
    float or ndarray
    """
    # the solvers' own expression, operation for operation (their stopping depends on it)
    slack = np.maximum(tol * radius, tol**2 * target_norm)
    allowed = radius + slack - np.minimum(rounding * target_norm, 0.5 * slack)
    return float(allowed) if np.ndim(allowed) == 0 else allowed


def allowed_violation(target_max: float, tol: float) -> float:
    """The largest violation off Omega (``max (X W - V)_+``) that meets the bounds to ``tol``:
    ``tol * max|Y|``."""
    return float(tol * target_max)


def bounds_met(violation: float, target_max: float, tol: float) -> bool:
    """Whether ``violation`` is within :func:`allowed_violation`."""
    return bool(violation <= allowed_violation(target_max, tol))

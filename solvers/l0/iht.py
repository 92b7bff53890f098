"""(P4) by iterative hard thresholding with momentum and restart, then a refit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..gram import DEFAULT_DAMPING
from ..projections import SparsityPattern
from ..result import SolverResult, Status
from .refits import REFIT_CG_MAX_ITER, REFIT_CG_TOL, finish, refit_scaled, solve_outputs_exactly
from .scaling import Scaled, dot, hard_threshold, lipschitz


@dataclass(frozen=True)
class IhtRun:
    """Where :func:`accelerated_iht` ended: the point, its support and loss, and why."""

    W: np.ndarray
    mask: np.ndarray
    loss: float
    loss_at_start: float
    status: Status
    iterations: int
    restarts: int


def accelerated_iht(
    start: np.ndarray,
    pattern: SparsityPattern,
    n_free: int,
    Lip: float,
    loss: Callable[[np.ndarray], tuple[float, np.ndarray]],
    *,
    max_iter: int,
    tol: float,
    momentum: bool,
    extrapolated_gradient: Callable | None = None,
) -> IhtRun:
    """Projected gradient onto ``K`` with Nesterov momentum and restart (the IHT loop of
    :func:`solve_iht` and :func:`.solve_p5_iht`)::

        Z <- H_K(Y - grad f(Y) / Lip)
        accept Z if f(Z) <= f(W) (then W_prev, W <- W, Z; Y <- W + (t-1)/t' (W - W_prev));
        otherwise restart the momentum from W (Y <- W): a plain IHT step from W never
        increases f when the step is 1/Lip.

    ``loss(W)`` returns ``(f(W), grad f(W))``. ``extrapolated_gradient(Y, beta, gW,
    gW_prev)`` gives the gradient at the extrapolated point ``Y`` when it is cheaper than
    ``loss(Y)`` (an affine gradient); ``None`` evaluates ``loss(Y)``. Stops when the support
    did not change and the relative decrease of ``f`` was below ``tol`` for two consecutive
    iterations (status ``optimal``), or at ``max_iter``.
    """
    W, mask = hard_threshold(start, pattern, n_free)
    fW, gW = loss(W)
    f_start = fW
    Y, gY, t = W, gW, 1.0
    W_prev, gW_prev = W, gW
    status, quiet, restarts, it = Status.MAX_ITER, 0, 0, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        Z, zmask = hard_threshold(Y - gY / Lip, pattern, n_free)
        fZ, gZ = loss(Z)
        if fZ > fW and Y is not W:  # momentum overshot: restart from W
            restarts += 1
            Y, gY, t = W, gW, 1.0
            continue
        decrease = (fW - fZ) / max(abs(fW), 1e-300)
        same = bool(np.array_equal(zmask, mask))
        W_prev, gW_prev = W, gW
        W, gW, fW, mask = Z, gZ, fZ, zmask
        quiet = quiet + 1 if (same and decrease < tol) else 0
        if quiet >= 2:
            status = Status.OPTIMAL
            break
        if momentum:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            Y = W + beta * (W - W_prev)
            if extrapolated_gradient is None:
                _, gY = loss(Y)
            else:
                gY = extrapolated_gradient(Y, beta, gW, gW_prev)
            t = t_next
        else:
            Y, gY = W, gW
    return IhtRun(W, mask, fW, f_start, status, it, restarts)


def solve_iht(
    G: np.ndarray,
    W0: np.ndarray,
    pattern: SparsityPattern,
    *,
    n_free: int = 0,
    damping: float = DEFAULT_DAMPING,
    W_init: np.ndarray | None = None,
    max_iter: int = 300,
    tol: float = 1e-7,
    momentum: bool = True,
    refit_method: str = "auto",
    refit_iter: int = REFIT_CG_MAX_ITER,
) -> SolverResult:
    """(P4) by iterative hard thresholding with momentum and restart, then a refit.

    One product with ``G`` per iteration: the gradient at the extrapolated point is the
    same extrapolation of the gradients (``grad f`` is affine).

    In scaled variables, with ``Lip = lambda_max(G)`` (exact, :func:`lipschitz`)::

        Z <- H_K(Y - G (Y - W0) / Lip)
        accept Z if f(Z) <= f(W) (then W_prev, W <- W, Z; Y <- W + (t-1)/t' (W - W_prev));
        otherwise restart the momentum from W (Y <- W): a plain IHT step from W never
        increases f when the step is 1/Lip.

    Stops when the support did not change and the relative decrease of ``f`` was below
    ``tol`` for two consecutive iterations, or at ``max_iter``; then refits the support.

    Parameters and return value as :func:`solve_l0_admm` (``momentum=False`` gives plain
    IHT).
    """
    started = time.perf_counter()
    if pattern.kind == "outputs":
        return solve_outputs_exactly("iht", G, W0, pattern, n_free, damping, started)
    sc = Scaled(G, W0, damping)
    Lip = max(lipschitz(sc.G), 1e-300)
    start = sc.W0 if W_init is None else W_init * sc.scale[:, None]

    def loss(W: np.ndarray) -> tuple[float, np.ndarray]:
        g = sc.G @ (W - sc.W0)
        return 0.5 * dot(W - sc.W0, g), g

    def extrapolated_gradient(Y, beta, gW, gW_prev):
        return gW + beta * (gW - gW_prev)  # the gradient is affine: no product needed

    run = accelerated_iht(
        start,
        pattern,
        n_free,
        Lip,
        loss,
        max_iter=max_iter,
        tol=tol,
        momentum=momentum,
        extrapolated_gradient=extrapolated_gradient,
    )
    W, mask, status, it, restarts = run.W, run.mask, run.status, run.iterations, run.restarts
    extra = {"lipschitz": Lip, "restarts": restarts}
    R = None
    if refit_method != "none":
        W, R, rinfo = refit_scaled(sc.G, sc.C, mask, W, refit_method, refit_iter, REFIT_CG_TOL)
        extra.update(rinfo)
    return finish("iht", sc, G, W0, W, mask, R, status, it, started, extra)

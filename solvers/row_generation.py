"""Row generation for tall programs (convolutions: many patch rows, few inputs).

A conv layer's program has ``n`` = images x output pixels rows for a few dozen inputs, and
at the solution nearly every inequality off Omega is slack. :func:`solve_row_generation`
solves an equivalent program with far fewer rows, certified on all of them:

* **The ball, exactly, in ``d`` rows per column.** For column ``j`` with ``G_j =
  X_Oj^T X_Oj`` and ``c_j = X_Oj^T y_Oj`` (``O_j`` = Omega's rows of column ``j``; every
  row for (P2)), the eigendecomposition ``G_j = U diag(lam) U^T`` (rank cutoff) gives
  ``A_j = diag(sqrt(lam)) U^T`` and ``t_j = diag(1/sqrt(lam)) U^T c_j`` with
  ``||(X w - y)_Oj||^2 = ||A_j w - t_j||^2 + r_j`` for every ``w``, where
  ``r_j = ||y_Oj - X_Oj w_ls||^2`` is the least-squares residual (computed directly, not by
  a cancelling difference). The ball ``sum_j ||..||^2 <= radius^2`` becomes
  ``sum_j ||A_j w_j - t_j||^2 <= radius^2 - sum_j r_j`` (per column with per-column balls);
  a negative right-hand side means the program is infeasible.
* **The inequalities off Omega by row generation.** Start with none; solve; evaluate
  ``X W <= V`` on every row; add the most violated rows (all of them up to
  ``rows_per_round``); re-solve from the last weights; stop when no row is violated beyond
  the feasibility tolerance.

Every round solves a *relaxation* of the full program (the exact ball, a subset of its
inequalities), so the final weights, feasible on every row, are optimal for the full
program within the round's certified duality gap. The returned ``info`` is measured on the
full program.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .admm import AdmmSettings, solve_admm
from .problem import NetTrimProblem
from .result import SolverResult, Status

#: Eigenvalues below this fraction of the largest are taken as zero (rank cutoff).
RANK_CUTOFF = 1e-12
#: Rows added per round at most (the most violated first).
DEFAULT_ROWS_PER_ROUND = 2000
DEFAULT_MAX_ROUNDS = 30


def reduce_ball(problem: NetTrimProblem) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """``(A, t, r)``: per column the rows ``A_j`` (``k_j x d``), targets ``t_j`` and the
    least-squares residual ``r_j`` with ``||(X w - y)_Oj||^2 = ||A_j w - t_j||^2 + r_j``."""
    m = problem.shape[2]
    X = problem.X
    A, t, r = [], [], np.zeros(m)
    for j in range(m):
        rows = slice(None) if problem.active is None else problem.active[:, j]
        Xj = np.asarray(X[rows], dtype=np.float64)
        yj = np.asarray(problem.Y[rows, j], dtype=np.float64)
        lam, U = np.linalg.eigh(Xj.T @ Xj)
        keep = lam > RANK_CUTOFF * max(float(lam.max(initial=0.0)), 1e-300)
        lam, U = lam[keep], U[:, keep]
        c = U.T @ (Xj.T @ yj)
        root = np.sqrt(lam)
        A.append(root[:, None] * U.T)
        t.append(c / root)
        w_ls = U @ (c / lam)
        r[j] = float(np.sum(np.square(Xj @ w_ls - yj)))
    return A, t, r


def _subproblem(problem, A, t, radius, rows) -> NetTrimProblem:
    """The reduced ball's rows (block ``j`` active in column ``j`` only) and the original
    rows ``rows`` carrying only their inequalities."""
    d, m = problem.shape[1:]
    blocks = [a.shape[0] for a in A]
    k = sum(blocks)
    X = np.zeros((k + len(rows), d))
    Y = np.zeros((k + len(rows), m))
    active = np.zeros((k + len(rows), m), dtype=bool)
    upper = np.full((k + len(rows), m), np.inf)
    start = 0
    for j, (a, target) in enumerate(zip(A, t, strict=True)):
        X[start : start + len(a)] = a
        Y[start : start + len(a), j] = target
        active[start : start + len(a), j] = True
        start += len(a)
    if len(rows):
        X[k:] = problem.X[rows]
        V = problem.upper_bounds()[rows]
        upper[k:] = np.where(problem.active[rows], np.inf, V)
    return NetTrimProblem(
        X=X,
        Y=Y,
        active=active,
        upper=upper,
        radius=radius,
        l1_weights=problem.l1_weights,
        entry_weights=problem.entry_weights,
        violation_scale=problem.target_scale[2],
    )


def solve_row_generation(
    problem: NetTrimProblem,
    settings: AdmmSettings | None = None,
    *,
    warm_start: np.ndarray | None = None,
    rows_per_round: int = DEFAULT_ROWS_PER_ROUND,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> SolverResult:
    """Solve (P1) or (P2) on the reduced ball and generated rows (module docstring).

    Parameters
    ----------
    problem : NetTrimProblem
        The full program ((P3) is not supported: it has no ball to reduce).
    settings : AdmmSettings, optional
        For every round's :func:`~nettrim.solvers.admm.solve_admm`; its ``feas_tol`` is
        also the tolerance of the row check.
    warm_start : ndarray of shape (d, m), optional
    rows_per_round : int
        Violated rows added per round at most (the most violated first).
    max_rounds : int
        Rounds at most; a program still violated then returns status ``max_iter``.

    Returns
    -------
    SolverResult
        Weights, status and ``info`` measured on the full program; ``info.extra`` adds
        ``rounds``, ``rows`` (original rows in the last round's program) and
        ``reduced_rows`` (the ball's rows).
    """
    if problem.penalized:
        raise ValueError("row generation solves (P1)/(P2); (P3) has no ball to reduce")
    settings = settings or AdmmSettings()
    started = time.perf_counter()
    A, t, r = reduce_ball(problem)
    if problem.per_column:
        left = np.square(np.asarray(problem.radius, dtype=np.float64)) - r
    else:
        left = np.array(float(problem.radius) ** 2 - r.sum())
    if np.any(left < 0):
        return SolverResult.without_weights(
            Status.INFEASIBLE,
            solver="admm+rows",
            seconds=time.perf_counter() - started,
            message="the radius is below the least-squares residual: no weights fit the ball",
        )
    radius = np.sqrt(left) if problem.per_column else float(np.sqrt(left))
    rows = np.zeros(0, dtype=np.int64)
    tol = settings.feas_tol * problem.target_scale[2]
    W, iterations, result = warm_start, 0, None
    rounds = 0
    for _ in range(max_rounds):
        rounds += 1
        sub = _subproblem(problem, A, t, radius, rows)
        result = solve_admm(sub, settings, warm_start=W)
        iterations += result.info.iterations
        if result.W is None:
            return result
        W = result.W
        if problem.active is None:
            break
        excess = np.where(problem.active, -np.inf, problem.X @ W - problem.upper_bounds())
        worst = excess.max(axis=1)
        violated = np.flatnonzero(worst > tol)
        if not len(violated):
            break
        order = violated[np.argsort(-worst[violated], kind="stable")][:rows_per_round]
        rows = np.union1d(rows, order)
    figures = problem.evaluate(W)
    feasible = problem.is_feasible(problem.column_residuals(W), figures["violation"],
                                   settings.feas_tol)  # fmt: skip
    status = result.status if feasible else Status.MAX_ITER
    info = replace(
        result.info,
        solver="admm+rows",
        iterations=iterations,
        seconds=time.perf_counter() - started,
        extra={
            **result.info.extra,
            "rounds": rounds,
            "rows": len(rows),
            "reduced_rows": int(sum(len(a) for a in A)),
        },
        **figures,
    )
    return SolverResult(W=W, status=status, info=info)

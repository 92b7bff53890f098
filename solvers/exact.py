"""Exact solution of the Net-Trim programs through cvxpy (Clarabel, SCS, OSQP).

These backends certify the fast solver on small problems and serve users who want an
interior-point answer; they are not the fast path. cvxpy is imported lazily (its import
alone takes about a second).

The programs are reduced before they reach cvxpy. The ball on each column's active rows
``A_j`` is rewritten through a rank-revealing QR of ``X[A_j]`` (``docs/solvers.md``, "Exact
path")::

    ||X[A_j] w - y[A_j]||^2 = ||R_j w - c_j||^2 + outside_j^2

so the second-order cone has at most ``d`` entries per column instead of ``|A_j|``. For a
linear layer (every entry active) one factorization serves every column. The inequalities
on the inactive rows stay as they are.

Memory: the conic matrix has up to ``n d m`` nonzeros (``d`` per inactive row and per row of
``R_j``), held several times by cvxpy and the backend, all in float64: about 100 bytes (SCS
200) per sample, input and output at the peak (``docs/hardening.md``, "The exact backends").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .linalg import RangeReduction, reduce_to_range
from .problem import NetTrimProblem
from .result import SolveInfo, SolverResult, Status

#: Backends of this module and the programs each can solve.
EXACT_SOLVERS: dict[str, frozenset[str]] = {
    "clarabel": frozenset({"constrained", "penalized"}),
    "scs": frozenset({"constrained", "penalized"}),
    "osqp": frozenset({"penalized"}),  # a QP solver: the ball constraint is a cone
}

#: Entries of the solution below this fraction of its largest magnitude are set to exact
#: zeros; the solvers' own accuracy decides what "zero" means (interior point ~1e-9,
#: first-order ~1e-6 at tight settings). Feasibility is always measured after rounding.
ZERO_RTOL: dict[str, float] = {"clarabel": 1e-7, "scs": 1e-6, "osqp": 1e-6}

_CVXPY_NAMES = {"clarabel": "CLARABEL", "scs": "SCS", "osqp": "OSQP"}


def _tolerance_options(solver: str, tol: float | None, max_iter: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if tol is not None:
        if solver == "clarabel":
            options.update(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
        else:  # scs and osqp share the names
            options.update(eps_abs=tol, eps_rel=tol)
    if max_iter is not None:
        options["max_iters" if solver == "scs" else "max_iter"] = max_iter
    # OSQP: cvxpy already turns polishing on, under the name the installed version knows
    # ("polish" before 1.0, "polishing" since; passing "polish" to 1.x is deprecated).
    return options


def _column_reductions(problem: NetTrimProblem) -> list[RangeReduction | None]:
    """Per-column reduction of the ball part (``None`` for a column with no active row)."""
    X, Y, active = problem.X, problem.Y, problem.active
    m = Y.shape[1]
    if active is None:
        shared = reduce_to_range(X, Y)
        return [
            RangeReduction(R=shared.R, C=shared.C[:, [j]], outside=shared.outside[[j]])
            for j in range(m)
        ]
    out: list[RangeReduction | None] = []
    for j in range(m):
        rows = active[:, j]
        if not rows.any():
            out.append(None)
        else:
            out.append(reduce_to_range(X[rows], Y[rows, j : j + 1]))
    return out


def _no_weights(
    status: Status, solver: str, started: float, message: str, iterations: int = 0
) -> SolverResult:
    return SolverResult.without_weights(
        status,
        solver=solver,
        seconds=time.perf_counter() - started,
        message=message,
        iterations=iterations,
    )


def solve_exact(
    problem: NetTrimProblem,
    *,
    solver: str = "clarabel",
    tol: float | None = None,
    max_iter: int | None = None,
    verbose: bool = False,
    solver_options: Mapping[str, Any] | None = None,
) -> SolverResult:
    """Solve (P1), (P2) or (P3) with a conic or QP solver through cvxpy.

    Parameters
    ----------
    problem : NetTrimProblem
        The program (see :mod:`nettrim.solvers.problem`).
    solver : {"clarabel", "scs", "osqp"}
        Backend. ``"osqp"`` solves only the penalized program (P3).
    tol : float, optional
        Tolerance passed to the backend (gap and feasibility for Clarabel, ``eps_abs`` and
        ``eps_rel`` for SCS and OSQP). Backend default when ``None``.
    max_iter : int, optional
        Iteration limit passed to the backend.
    verbose : bool
        Let the backend print its log.
    solver_options : mapping, optional
        Further keyword arguments for ``cvxpy.Problem.solve`` (backend settings).

    Returns
    -------
    SolverResult
        Weights of shape ``(d, m)`` rounded to exact zeros below ``ZERO_RTOL[solver]``
        of their largest magnitude; ``info`` measures those rounded weights.
    """
    if solver not in EXACT_SOLVERS:
        raise ValueError(f"solver must be one of {sorted(EXACT_SOLVERS)}, got {solver!r}")
    kind = problem.program.kind
    if kind not in EXACT_SOLVERS[solver]:
        raise ValueError(
            f"solver={solver!r} cannot solve the {kind} program (it solves: "
            f"{', '.join(sorted(EXACT_SOLVERS[solver]))}); "
            + (
                "pass penalty=lam for the penalized program or choose another solver"
                if kind == "constrained"
                else "choose another solver"
            )
        )
    import cvxpy as cp

    started = time.perf_counter()
    _, d, m = problem.shape
    X, Y = problem.X.astype(np.float64), problem.Y.astype(np.float64)
    W = cp.Variable((d, m), name="W")
    reductions = _column_reductions(problem)

    fits = []  # (column, R_j w_j - c_j)
    for j, red in enumerate(reductions):
        if red is not None and red.rank:
            fits.append((j, red.R @ W[:, j] - red.C[:, 0]))
    # the ball (a cone per column or for the layer) or nothing, as the program asks
    constraints = problem.program.exact_constraints(cp, W, reductions, fits, Y)
    if isinstance(constraints, str):
        return _no_weights(Status.INFEASIBLE, solver, started, constraints)

    if problem.active is not None:
        V = problem.upper_bounds().astype(np.float64)
        for j in range(m):
            rows = ~problem.active[:, j] & np.isfinite(V[:, j])
            if rows.any():
                constraints.append(X[rows] @ W[:, j] <= V[rows, j])

    weights = problem.l1_weights.astype(np.float64)[:, None]
    if problem.entry_weights is not None:  # reweighted L1: sum_ij c_i e_ij |W_ij|
        weights = weights * np.asarray(problem.entry_weights, dtype=np.float64)
    objective = cp.sum(cp.multiply(weights, cp.abs(W)))
    penalty_term = problem.program.exact_objective(cp, fits)
    if penalty_term is not None:
        objective = objective + penalty_term
    cvx_problem = cp.Problem(cp.Minimize(objective), constraints)

    options = _tolerance_options(solver, tol, max_iter)
    options.update(solver_options or {})
    try:
        cvx_problem.solve(solver=_CVXPY_NAMES[solver], verbose=verbose, **options)
    except cp.error.SolverError as exc:
        return _no_weights(Status.SOLVER_ERROR, solver, started, f"{type(exc).__name__}: {exc}")

    status = _map_status(cvx_problem.status)
    stats = cvx_problem.solver_stats
    iterations = int(stats.num_iters) if stats is not None and stats.num_iters else 0
    if not status.has_weights or W.value is None:
        if status.has_weights:
            status = Status.SOLVER_ERROR
        message = f"{solver} reports {cvx_problem.status}"
        return _no_weights(status, solver, started, message, iterations)

    x = np.array(W.value, dtype=np.float64)
    peak = np.abs(x).max(initial=0.0)
    x[np.abs(x) <= ZERO_RTOL[solver] * peak] = 0.0
    x = x.astype(problem.dtype, copy=False)
    seconds = time.perf_counter() - started
    info = SolveInfo(
        solver=solver,
        iterations=iterations,
        seconds=seconds,
        message=f"{solver} reports {cvx_problem.status}",
        **problem.evaluate(x),
    )
    return SolverResult(W=x, status=status, info=info)


def _map_status(cvx_status: str) -> Status:
    if cvx_status == "optimal":
        return Status.OPTIMAL
    if cvx_status == "optimal_inaccurate":
        return Status.INACCURATE
    if cvx_status in ("infeasible", "infeasible_inaccurate"):
        return Status.INFEASIBLE
    if cvx_status == "user_limit":
        return Status.MAX_ITER
    return Status.SOLVER_ERROR

"""Reweighted-L1 Net-Trim: a sparser solution of (P1)/(P2) at the same discrepancy budget.

Candes, Wakin and Boyd (2008), "Enhancing sparsity by reweighted L1 minimization": the L1
norm is a loose convex surrogate of the count of non-zeros; re-solving with weights
inversely proportional to the previous solution's magnitudes pushes small entries to zero
while the constraint set stays the same. Round ``t`` solves::

    minimize   sum_ij c_i e_ij^(t) |W~_ij|
    subject to the Net-Trim constraints of round 0 (same eps, Omega, V)

    e_ij^(t) = 1 / (|W~_ij^(t-1)| + delta),     delta = delta_rel * max_ij |W~_ij^(t-1)|

(for the constrained programs scaled so that ``sum_ij e_ij^(t) |W~_ij^(t-1)| = ||W~^(t-1)||_1``:
the minimizer is the same, and the objective keeps the plain program's scale, which halves
the ADMM's iterations per round on MNIST's first layer).

Every round's weights are feasible for the *same* program as the plain Net-Trim solve, so
the guarantees of Net-Trim (Proposition 1 and the network bounds) hold unchanged.

Per-entry weights live in :attr:`nettrim.solvers.NetTrimProblem.entry_weights`. Every
backend honours them: the ADMM (the default, through ``solver="auto"``) warm-starts each
round from the previous one (a round still costs one to two plain solves: the new
thresholds move the support); the exact
backends (Clarabel, SCS, OSQP for the penalized form) are the small-layer, certified path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .layer import (
    ACTIVATIONS,
    DEFAULT_EPS,
    SOLVERS,
    LayerResult,
    admm_settings,
    build_problem,
    resolve_solver,
    solve_program,
    trim_layer,
)
from .solvers import SolveInfo, Status
from .validation import as_float_dtype, check_choice, check_matrix, check_scalar

#: Reweighting rounds after the plain solve (Candes-Wakin-Boyd report most of the gain in
#: the first two to four).
DEFAULT_ROUNDS = 3
#: ``delta`` relative to the largest magnitude of the previous solution.
DEFAULT_DELTA = 1e-3


def reweighted_trim_layer(
    X,
    Y,
    *,
    rounds: int = DEFAULT_ROUNDS,
    delta: float = DEFAULT_DELTA,
    activation: str = "relu",
    eps: float = DEFAULT_EPS,
    relative: bool = True,
    per_neuron: bool = False,
    bias: bool = True,
    penalize_bias: bool = True,
    upper=None,
    penalty: float | None = None,
    active_tol: float = 0.0,
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    solver_options: Mapping[str, Any] | None = None,
    warm_start=None,
    verbose: bool = False,
) -> LayerResult:
    """Net-Trim with reweighted L1 (Candes-Wakin-Boyd): fewer non-zeros at the same eps.

    Solves the program of :func:`nettrim.trim_layer` (same arguments and meaning), then
    ``rounds`` times re-solves it with per-entry weights ``1 / (|W~_ij| + delta_abs)``
    (module docstring), keeping the last round that solved. Every round is feasible for the
    same constraints, so the residual stays within ``eps``.

    Parameters
    ----------
    X, Y, activation, eps, relative, per_neuron, bias, penalize_bias, upper, penalty,
    active_tol, solver, tol, max_iter, solver_options, warm_start, verbose
        As in :func:`nettrim.trim_layer` (every backend takes per-entry weights; the ADMM
        starts each round from the previous round's weights).
    rounds : int
        Reweighting rounds after the plain solve (0 gives the plain solve).
    delta : float
        ``delta_rel > 0``: the smoothing of the weights relative to the largest magnitude.

    Returns
    -------
    LayerResult
        Weights of the last successful round; ``info`` measured against the plain program
        (``objective`` is the plain weighted L1 norm ``sum_i c_i ||W~[i, :]||_1``),
        ``info.extra["nnz_history"]`` the non-zeros after each round (round 0 first) and
        ``info.extra["rounds"]`` the rounds that solved.

    Examples
    --------
    >>> import numpy as np
    >>> from nettrim import reweighted_trim_layer, trim_layer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 12))
    >>> Y = np.maximum(X @ (rng.standard_normal((12, 3)) * (rng.random((12, 3)) < 0.4)), 0)
    >>> plain = trim_layer(X, Y, eps=0.1, bias=False, solver="clarabel")
    >>> sparser = reweighted_trim_layer(X, Y, eps=0.1, bias=False)
    >>> sparser.nnz <= plain.nnz
    True
    """
    solver = check_choice("solver", solver, SOLVERS)
    activation = check_choice("activation", activation, ACTIVATIONS)
    rounds = int(check_scalar("rounds", rounds, low=0, integer=True))
    delta = check_scalar("delta", delta, low=0.0, low_inclusive=False)
    started = time.perf_counter()
    first = trim_layer(
        X,
        Y,
        activation=activation,
        eps=eps,
        relative=relative,
        per_neuron=per_neuron,
        bias=bias,
        penalize_bias=penalize_bias,
        upper=upper,
        penalty=penalty,
        active_tol=active_tol,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        solver_options=solver_options,
        warm_start=warm_start,
        verbose=verbose,
    )  # validates every argument
    if first.W is None or rounds == 0:
        return first
    dtype = as_float_dtype(X, Y)
    Xa, Ya = check_matrix("X", X, dtype), check_matrix("Y", Y, dtype)
    V = None
    if upper is not None:
        V = np.ascontiguousarray(np.broadcast_to(np.asarray(upper, dtype=dtype), Ya.shape))
    problem = build_problem(
        Xa,
        Ya,
        activation=activation,
        eps=eps,
        relative=relative,
        per_neuron=per_neuron,
        bias=bias,
        penalize_bias=penalize_bias,
        upper=V,
        penalty=penalty,
        active_tol=active_tol,
    )
    backend = resolve_solver(solver, Ya.shape)
    settings = admm_settings(tol, max_iter, solver_options) if backend == "admm" else None
    current = np.vstack([first.W, first.b[None, :]]) if bias else first.W
    status, history, done = first.status, [first.nnz], 0
    weighted = float("nan")
    for _ in range(rounds):
        magnitude = np.abs(current.astype(np.float64))
        floor = delta * float(magnitude.max(initial=0.0))
        if floor == 0.0:
            break
        weights = 1.0 / (magnitude + floor)
        if penalty is None:  # scaled so the previous round keeps its L1 norm (ADMM's pace)
            weights *= magnitude.sum() / float(np.sum(weights * magnitude))
        result = solve_program(
            replace(problem, entry_weights=weights),
            backend,
            settings=settings,
            tol=tol,
            max_iter=max_iter,
            solver_options=solver_options,
            warm_start=current,
            verbose=verbose,
        )
        if result.x is None or (result.status != Status.OPTIMAL and status == Status.OPTIMAL):
            break  # keep the last round that solved as well as the plain solve did
        current, status, done = result.x, result.status, done + 1
        weighted = result.info.objective
        history.append(int(np.count_nonzero(current[: Xa.shape[1]])))
    figures = problem.evaluate(current)
    info = SolveInfo(
        solver=f"{backend}+reweighted",
        iterations=done,
        seconds=time.perf_counter() - started,
        message=f"{done} reweighting round(s) after the plain solve",
        extra={
            "nnz_history": history,
            "rounds": done,
            "weighted_objective": weighted,
            "delta": delta,
        },
        **figures,
    )
    W = np.ascontiguousarray(current[: Xa.shape[1]])
    b = current[-1].copy() if bias else None
    return LayerResult(W=W, b=b, status=status, info=info, program=first.program)

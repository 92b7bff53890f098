"""Reweighted-L1 Net-Trim: a sparser solution of (P1)/(P2) at the same discrepancy budget.

Candes, Wakin and Boyd (2008), "Enhancing sparsity by reweighted L1 minimization": the L1
norm is a loose convex surrogate of the count of non-zeros; re-solving with weights
inversely proportional to the previous solution's magnitudes pushes small entries to zero
while the constraint set stays the same. Round ``t`` solves::

    minimize   sum_ij c_i e_ij^(t) |W~_ij|
    subject to the Net-Trim constraints of round 0 (same eps, Omega, V)

    e_ij^(t) = 1 / (|W~_ij^(t-1)| + delta),     delta = delta_rel * max_ij |W~_ij^(t-1)|

Every round's weights are feasible for the *same* program as the plain Net-Trim solve, so
the guarantees of Net-Trim (Proposition 1 and the network bounds) hold unchanged.

Per-entry weights live in :attr:`nettrim.solvers.NetTrimProblem.entry_weights`, which only
the exact backends (cvxpy: Clarabel, SCS, OSQP for the penalized form) honour: this is the
small-layer, certified path.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .layer import ACTIVATIONS, DEFAULT_EPS, LayerResult, build_problem, trim_layer
from .solvers import EXACT_SOLVERS, SolveInfo, solve_exact
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
    solver: str = "clarabel",
    tol: float | None = None,
    max_iter: int | None = None,
) -> LayerResult:
    """Net-Trim with reweighted L1 (Candes-Wakin-Boyd): fewer non-zeros at the same eps.

    Solves the program of :func:`nettrim.trim_layer` (same arguments and meaning), then
    ``rounds`` times re-solves it with per-entry weights ``1 / (|W~_ij| + delta_abs)``
    (module docstring), keeping the last round that solved. Every round is feasible for the
    same constraints, so the residual stays within ``eps``.

    Parameters
    ----------
    X, Y, activation, eps, relative, per_neuron, bias, penalize_bias, upper, penalty,
    active_tol, tol, max_iter
        As in :func:`nettrim.trim_layer`.
    rounds : int
        Reweighting rounds after the plain solve (0 gives the plain solve).
    delta : float
        ``delta_rel > 0``: the smoothing of the weights relative to the largest magnitude.
    solver : {"clarabel", "scs", "osqp"}
        An exact backend (they alone support per-entry weights; ``"osqp"`` for ``penalty``).

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
    solver = check_choice("solver", solver, tuple(EXACT_SOLVERS))
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
    current = np.vstack([first.W, first.b[None, :]]) if bias else first.W
    status, history, done = first.status, [first.nnz], 0
    weighted = float("nan")
    for _ in range(rounds):
        magnitude = np.abs(current.astype(np.float64))
        floor = delta * float(magnitude.max(initial=0.0))
        if floor == 0.0:
            break
        weights = 1.0 / (magnitude + floor)
        result = solve_exact(
            replace(problem, entry_weights=weights),
            solver=solver,
            tol=tol,
            max_iter=max_iter,
        )
        if result.x is None:
            break
        current, status, done = result.x, result.status, done + 1
        weighted = result.info.objective
        history.append(int(np.count_nonzero(current[: Xa.shape[1]])))
    figures = problem.evaluate(current)
    info = SolveInfo(
        solver=f"{solver}+reweighted",
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

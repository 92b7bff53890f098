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
backend honours them: the ADMM (the default, through ``solver="auto"``) starts each round
from the state the previous one ended in (weights, multipliers and penalties:
:class:`nettrim.solvers.AdmmState`), and solves the rounds between the plain solve and the
last to the looser gap :data:`INTERMEDIATE_GAP_TOL` (``docs/solvers.md``, "Reweighting
rounds"); the exact backends (Clarabel, SCS, OSQP for the penalized form) are the
small-layer, certified path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .layer import LayerResult, PreparedLayer, TrimOptions, prepare_layer
from .solvers import AdmmSettings, NetTrimProblem, SolveInfo, SolverResult, Status, solve_admm
from .validation import check_scalar

#: Reweighting rounds after the plain solve (Candes-Wakin-Boyd report most of the gain in
#: the first two to four).
DEFAULT_ROUNDS = 3
#: ``delta`` relative to the largest magnitude of the previous solution.
DEFAULT_DELTA = 1e-3
#: The ADMM's relative duality gap in the rounds between the plain solve and the last one
#: (at least the caller's ``gap_tol``). Those rounds only give the next round its weights;
#: they stop once feasible (``feas_tol`` as asked) with a gap under 1% (or on their
#: residuals, as any solve), the last round is certified to ``gap_tol``. With
#: ``precision="auto"`` a looser gap may let such a round iterate in float32 where the
#: caller's tolerances kept float64 (``AdmmSettings.mixed_precision_min_tol``); the state
#: passes to the next round in the caller's precision. Measured on the digits layers and
#: MNIST's second layer (three rounds, eps 0.05, layer-wide and per-neuron): 12-31% fewer
#: iterations over the rounds, the same non-zeros within 15 (``docs/solvers.md``,
#: "Reweighting rounds").
INTERMEDIATE_GAP_TOL = 1e-2


@dataclass(frozen=True)
class Reweighting:
    """Checked reweighting settings: ``rounds >= 0`` after the plain solve, ``delta > 0``."""

    rounds: int = DEFAULT_ROUNDS
    delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        rounds = int(check_scalar("rounds", self.rounds, low=0, integer=True))
        object.__setattr__(self, "rounds", rounds)
        delta = check_scalar("delta", self.delta, low=0.0, low_inclusive=False)
        object.__setattr__(self, "delta", delta)


def reweighted_trim_layer(
    X,
    Y,
    *,
    rounds: int = DEFAULT_ROUNDS,
    delta: float = DEFAULT_DELTA,
    upper=None,
    warm_start=None,
    **trim_options,
) -> LayerResult:
    """Net-Trim with reweighted L1 (Candes-Wakin-Boyd): fewer non-zeros at the same eps.

    Solves the program of :func:`nettrim.trim_layer` (same arguments and meaning), then
    ``rounds`` times re-solves it with per-entry weights ``1 / (|W~_ij| + delta_abs)``
    (module docstring), keeping the last round that solved. Every round is feasible for the
    same constraints, so the residual stays within ``eps``.

    Parameters
    ----------
    X, Y, upper, warm_start
        As in :func:`nettrim.trim_layer` (every backend takes per-entry weights; the ADMM
        starts each round from the previous round's weights).
    rounds : int
        Reweighting rounds after the plain solve (0 gives the plain solve).
    delta : float
        ``delta_rel > 0``: the smoothing of the weights relative to the largest magnitude.
    **trim_options
        Every other :func:`nettrim.trim_layer` keyword (``activation``, ``eps``,
        ``solver``, ``tol``, ...): the fields of :class:`~nettrim.layer.TrimOptions`.

    Returns
    -------
    LayerResult
        Weights of the last successful round; ``info`` measured against the plain program
        (``objective`` is the plain weighted L1 norm ``sum_i c_i ||W~[i, :]||_1``),
        ``info.extra["nnz_history"]`` the non-zeros after each round (round 0 first) and
        ``info.extra["rounds"]`` the rounds that solved; ``round_iterations`` and
        ``round_seconds`` the iterations and seconds of every round tried (round 0 first),
        ``round_column_iterations`` their mean iterations per column (the ADMM sets the
        columns of per-neuron balls aside as they finish; else the iterations). The ADMM
        solves the rounds between the first and the last to a gap of
        :data:`INTERMEDIATE_GAP_TOL` (they only weight the next round); when the rounds end
        early on one of those, it is re-solved to ``gap_tol`` from where it stopped
        (``info.extra["recertify_iterations"]``, else 0), and when that does not certify
        it as well as the plain solve was, the plain solve is returned: the weights
        returned are always certified as the plain solve was.

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
    options = TrimOptions.from_keywords("reweighted_trim_layer", trim_options)
    reweighting = Reweighting(rounds, delta)
    return reweight_layer(X, Y, options, reweighting, upper=upper, warm_start=warm_start)


def reweight_layer(
    X,
    Y,
    options: TrimOptions,
    reweighting: Reweighting,
    *,
    upper=None,
    warm_start=None,
    callback=None,
) -> LayerResult:
    """:func:`reweighted_trim_layer` for checked options (the path the schemes take)."""
    started = time.perf_counter()
    prepared = prepare_layer(X, Y, options, upper=upper, warm_start=warm_start)
    if reweighting.rounds == 0:
        first = prepared.solve(callback=callback)
        return prepared.layer_result(first.W, first.status, first.info)
    first = _solve_round(prepared, prepared.problem, prepared.initial, callback)
    if first.W is None:
        return prepared.layer_result(first.W, first.status, _without_state(first.info))

    def solve(problem: NetTrimProblem, start: SolverResult, final: bool) -> SolverResult:
        return _solve_round(prepared, problem, start, callback, final=final)

    d_in = prepared.problem.X.shape[1] - (1 if options.bias else 0)
    kept, extra = reweight_rounds(
        prepared.problem, first, reweighting, solve, d_in=d_in,
        keep_l1=options.penalty is None, loose=prepared.backend == "admm",
    )  # fmt: skip
    info = SolveInfo(
        solver=f"{prepared.backend}+reweighted",
        iterations=extra["rounds"],
        seconds=time.perf_counter() - started,
        message=f"{extra['rounds']} reweighting round(s) after the plain solve",
        extra=extra,
        **prepared.problem.evaluate(kept.W),
    )
    return prepared.layer_result(kept.W, kept.status, info)


RoundSolver = Callable[[NetTrimProblem, SolverResult, bool], SolverResult]


def reweight_rounds(
    problem: NetTrimProblem,
    first: SolverResult,
    reweighting: Reweighting,
    solve: RoundSolver,
    *,
    d_in: int,
    keep_l1: bool,
    loose: bool,
) -> tuple[SolverResult, dict]:
    """The reweighting rounds after the plain solve ``first`` (which has weights): the
    rule every solver path shares (the module docstring).

    ``solve(weighted, start, final)`` solves one round's program from the last round's
    result; a round that is not ``final`` may stop at :data:`INTERMEDIATE_GAP_TOL`
    (:func:`round_settings`) when ``loose``, and then the last round kept is solved again,
    ``final``, to the caller's gap. The last round that solved as well as the plain solve
    did is kept (the plain solve when a recertification fails). Returns its result and
    the figures of ``info.extra`` (``nnz_history`` over the first ``d_in``
    rows, ``rounds``, ``weighted_objective``, ``delta``, ``round_iterations``,
    ``round_seconds``, ``round_column_iterations``, ``recertify_iterations``).
    """
    last, done = first, 0  # the last round kept, and the rounds it is after the plain solve
    round_iterations = [first.info.iterations]
    round_columns = [_column_iterations(first)]
    round_seconds = [first.info.seconds]
    history = [int(np.count_nonzero(first.W[:d_in]))]
    weighted = float("nan")
    unsure = None  # the program of the last round kept, when solved to the intermediate gap
    for k in range(1, reweighting.rounds + 1):
        weights = round_weights(last.W, reweighting.delta, keep_l1=keep_l1)
        if weights is None:
            break
        program = replace(problem, entry_weights=weights)
        final = k == reweighting.rounds or not loose
        result = solve(program, last, final)
        round_iterations.append(result.info.iterations)
        round_columns.append(_column_iterations(result))
        round_seconds.append(result.info.seconds)
        if result.W is None or (result.status != Status.OPTIMAL and last.status == Status.OPTIMAL):
            break  # keep the last round that solved as well as the plain solve did
        last, done = result, done + 1
        unsure = None if final else program
        weighted = result.info.objective
        history.append(int(np.count_nonzero(result.W[:d_in])))
    recertified = 0
    if unsure is not None:  # stopped before the last round: certify the kept one to gap_tol
        again = solve(unsure, last, True)
        recertified = again.info.iterations
        certified = again.status == Status.OPTIMAL or first.status != Status.OPTIMAL
        if again.W is not None and certified:
            last, weighted = again, again.info.objective
            history[-1] = int(np.count_nonzero(again.W[:d_in]))
        else:  # not certified as the plain solve was: return that, certified as asked
            last, done, weighted = first, 0, float("nan")
            history = history[:1]
    extra = {
        "nnz_history": history,
        "rounds": done,
        "weighted_objective": weighted,
        "delta": reweighting.delta,
        "round_iterations": round_iterations,
        "round_seconds": round_seconds,
        "round_column_iterations": round_columns,
        "recertify_iterations": recertified,
    }
    return last, extra


def round_settings(settings: AdmmSettings, final: bool) -> AdmmSettings:
    """The ADMM settings of a round: as asked for the ``final`` one, else to the looser
    gap :data:`INTERMEDIATE_GAP_TOL` at most."""
    if final:
        return settings
    return settings.updated(gap_tol=max(settings.gap_tol, INTERMEDIATE_GAP_TOL))


def round_weights(current: np.ndarray, delta: float, *, keep_l1: bool) -> np.ndarray | None:
    """The entry weights of the round after weights ``current`` (module docstring);
    ``None`` when ``current`` is all zero (nothing to reweight).

    ``keep_l1`` (the constrained programs): scaled so that ``current`` keeps its L1 norm,
    which keeps the pace of the solver's penalties.
    """
    magnitude = np.abs(current.astype(np.float64))
    floor = delta * float(magnitude.max(initial=0.0))
    if floor == 0.0:
        return None
    weights = 1.0 / (magnitude + floor)
    if keep_l1:
        weights *= magnitude.sum() / float(np.sum(weights * magnitude))
    return weights


def _solve_round(
    prepared: PreparedLayer,
    problem: NetTrimProblem,
    start: SolverResult | np.ndarray | None,
    callback,
    *,
    final: bool = True,
) -> SolverResult:
    """One round from ``start`` (the previous round's result, the initial weights or
    none): the ADMM keeps the state it ends in and starts from the previous one's
    (:class:`nettrim.solvers.AdmmState`), and solves a round that is not ``final`` to
    :data:`INTERMEDIATE_GAP_TOL`; an exact backend takes the weights."""
    if prepared.backend != "admm":
        weights = start.W if isinstance(start, SolverResult) else start
        return prepared.solve(problem, weights, callback=callback)
    return solve_admm(
        problem,
        round_settings(prepared.settings, final),
        warm_start=start,
        verbose=prepared.options.verbose,
        callback=callback,
        keep_state=True,
    )


def _column_iterations(result: SolverResult) -> float:
    """The mean iterations per column of a round (its iterations when not recorded)."""
    return float(result.info.extra.get("column_iterations", result.info.iterations))


def _without_state(info: SolveInfo) -> SolveInfo:
    """``info`` without the ADMM's state (large arrays no caller of a layer asks for)."""
    if "state" not in info.extra:
        return info
    return replace(info, extra={k: v for k, v in info.extra.items() if k != "state"})

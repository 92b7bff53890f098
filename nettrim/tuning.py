"""Choosing eps: bisection (in log-space, with warm starts) to a target sparsity or discrepancy.

Both figures grow with ``eps`` (a larger ball admits sparser weights and lets the outputs
drift further), so a bracket ``[eps_lo, eps_hi]`` shrinks by bisection:

* ``target_sparsity=s`` — the *smallest* ``eps`` whose pruned weights have sparsity ``>= s``
  (the least discrepancy that reaches the sparsity);
* ``target_discrepancy=d`` — the *largest* ``eps`` whose relative output discrepancy is
  ``<= d`` (the sparsest weights within the discrepancy), measured on held-out inputs when
  given (on the calibration inputs a layer's discrepancy is essentially ``eps`` itself).

Each solve starts from the nearest solution found so far (``warm_start``; the ADMM uses it,
the exact solvers ignore it). Sparsity is monotone in ``eps`` for exact solutions only up to
ties and solver accuracy; the bisection returns the best point it *evaluated* that meets the
target, and says when none did.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .executors import DEFAULT_BLAS_THREADS, JobRunner, resolve
from .layer import (
    LayerResult,
    TrimOptions,
    absolute_radius,
    relative_discrepancy,
    solve_layer,
)
from .network import DenseLayer, Network
from .results import deprecated_alias
from .schemes import NetTrimResult, net_trim
from .validation import (
    as_float_dtype,
    check_columns,
    check_matrix,
    check_network,
    check_network_inputs,
    check_same_rows,
    check_scalar,
    renamed_argument,
)

#: Default bracket for the relative ``eps``. At ``eps >= 1`` zero weights are feasible (the
#: program is degenerate), so the bracket stops below.
DEFAULT_EPS_RANGE = (1e-3, 0.9)
#: Bisection steps after the two ends are evaluated.
DEFAULT_MAX_STEPS = 10
#: Stop once the met value is this close to the target: absolute for sparsity (half a
#: percentage point), relative for the discrepancy (2 percent of the target).
SPARSITY_TOL = 0.005
DISCREPANCY_RTOL = 0.02


@dataclass(frozen=True)
class TuningResult:
    """The chosen ``eps`` and the solution at it.

    Attributes
    ----------
    eps : float or tuple of float
        The chosen relative budget (one per layer for per-layer tuning of a network).
    value : float or tuple of float
        The sparsity or relative discrepancy reached at ``eps``.
    target : float
    criterion : {"sparsity", "discrepancy"}
    success : bool or tuple of bool
        Whether the target was met (when not, the closest evaluated point is returned);
        ``met`` is its deprecated name.
    result : NetTrimResult or LayerResult
        The solution at ``eps``.
    history : tuple
        ``(eps, value)`` for every solve, in order (per layer for per-layer tuning).
    """

    eps: Any
    value: Any
    target: float
    criterion: str
    success: Any
    result: NetTrimResult | LayerResult
    history: tuple

    met = deprecated_alias("met", "success")

    def summary(self) -> str:
        """One line per tuned layer (one for a network tuned as a whole)."""
        if not isinstance(self.eps, tuple):
            return _tuned_line(self.criterion, self.target, self.eps, self.value, self.success)
        return "\n".join(
            f"layer {l}: " + _tuned_line(self.criterion, self.target, e, v, ok)
            for l, (e, v, ok) in enumerate(zip(self.eps, self.value, self.success, strict=True))
        )

    def __str__(self) -> str:
        return self.summary()


def _tuned_line(criterion: str, target: float, eps: float, value: float, success: bool) -> str:
    verdict = "met" if success else "not met"
    return f"{criterion} {value:.4g} at eps {eps:.4g} (target {target:.4g}: {verdict})"


@dataclass(frozen=True)
class _Bisection:
    """A checked bisection: the criterion and target, the bracket, the steps, the tolerance."""

    criterion: str
    target: float
    lo: float
    hi: float
    max_steps: int
    tol: float

    @classmethod
    def check(
        cls, target_sparsity, target_discrepancy, eps_range, max_steps, target_tol
    ) -> _Bisection:
        """Validate the public arguments (one place for tune_layer and tune_network)."""
        if (target_sparsity is None) == (target_discrepancy is None):
            raise ValueError("give exactly one of target_sparsity or target_discrepancy")
        if target_sparsity is not None:
            criterion = "sparsity"
            target = check_scalar("target_sparsity", target_sparsity, low=0.0, high=1.0)
        else:
            criterion = "discrepancy"
            target = check_scalar(
                "target_discrepancy", target_discrepancy, low=0.0, low_inclusive=False
            )
        try:
            lo, hi = (float(v) for v in eps_range)
        except (TypeError, ValueError):
            raise TypeError(f"eps_range must be a pair (lo, hi), got {eps_range!r}") from None
        if not (0 < lo < hi and math.isfinite(hi)):
            raise ValueError(f"eps_range must satisfy 0 < lo < hi < inf, got {eps_range!r}")
        max_steps = int(check_scalar("max_steps", max_steps, low=0, integer=True))
        if target_tol is None:
            tol = SPARSITY_TOL if criterion == "sparsity" else DISCREPANCY_RTOL
        else:
            tol = check_scalar("target_tol", target_tol, low=0.0)
        return cls(criterion, target, lo, hi, max_steps, tol)

    def met(self, value: float) -> bool:
        return value >= self.target if self.criterion == "sparsity" else value <= self.target

    def close(self, value: float) -> bool:
        """Whether a met ``value`` is within ``tol`` of the target (no need to go on)."""
        if self.criterion == "sparsity":
            return value - self.target <= self.tol
        return self.target - value <= self.tol * self.target

    def run(self, evaluate: Callable[[float, Any], tuple[float, Any]]) -> TuningResult:
        """Log-space bisection of an increasing ``value(eps)`` towards the target.

        ``evaluate(eps, warm)`` returns ``(value, solution)``; ``warm`` is the solution at
        the nearest evaluated ``eps``.
        """
        history: list[tuple[float, float]] = []
        solved: dict[float, tuple[float, Any]] = {}

        def run(eps: float) -> float:
            warm = solved[min(solved, key=lambda e: abs(math.log(e / eps)))][1] if solved else None
            value, solution = evaluate(eps, warm)
            solved[eps] = (value, solution)
            history.append((eps, value))
            return value

        def result(eps: float, met: bool) -> TuningResult:
            value, solution = solved[eps]
            return TuningResult(
                eps, value, self.target, self.criterion, met, solution, tuple(history)
            )

        # sparsity: want the smallest met eps (met at hi); discrepancy: the largest (met at lo)
        good, bad = (self.hi, self.lo) if self.criterion == "sparsity" else (self.lo, self.hi)
        if not self.met(run(good)):
            return result(good, False)
        if self.met(run(bad)):
            return result(bad, True)
        for _ in range(self.max_steps):
            if self.close(solved[good][0]):
                break
            mid = math.sqrt(good * bad)
            if self.met(run(mid)):
                good = mid
            else:
                bad = mid
        return result(good, True)


_TOL_WHY = "the bisection's tolerance; trim_layer's tol goes in options=TrimOptions(tol=...)"


def _trim_options(
    caller: str, options: TrimOptions | None, keywords: dict, **set_here: Any
) -> TrimOptions:
    """The tuner's :class:`TrimOptions`: ``options`` or ``keywords`` (not both), with the
    fields the tuner sets itself (``set_here``) replaced."""
    if options is None:
        options = TrimOptions.from_keywords(caller, keywords)
    elif not isinstance(options, TrimOptions):
        raise TypeError(f"options must be a TrimOptions, got {type(options).__name__}")
    elif keywords:
        raise TypeError(f"{caller}: give trim_layer's options as options= or as keywords, not both")
    return replace(options, **set_here) if set_here else options


def layer_discrepancy(result: LayerResult, X: np.ndarray, Y: np.ndarray, activation: str) -> float:
    """``||act(X W + b) - Y||_F / ||Y||_F`` for a pruned layer."""
    return relative_discrepancy(DenseLayer(result.W, result.b, activation)(X), Y)


def tune_layer(
    X,
    Y,
    *,
    target_sparsity: float | None = None,
    target_discrepancy: float | None = None,
    activation: str = "relu",
    X_val=None,
    Y_val=None,
    eps_range: tuple[float, float] = DEFAULT_EPS_RANGE,
    max_steps: int = DEFAULT_MAX_STEPS,
    target_tol: float | None = None,
    tol: float | None = None,
    options: TrimOptions | None = None,
    **trim_options: Any,
) -> TuningResult:
    """The ``eps`` of :func:`~nettrim.trim_layer` that reaches a target for one layer.

    Parameters
    ----------
    X, Y : array-like of shape (n, d_in), (n, d_out)
        The layer's recorded input and output.
    target_sparsity : float in [0, 1], optional
        Fraction of zero weights to reach (smallest such ``eps``).
    target_discrepancy : float > 0, optional
        Relative output discrepancy ``||act(X W + b) - Y||_F / ||Y||_F`` not to exceed
        (largest such ``eps``), on ``(X_val, Y_val)`` when given.
    activation : {"relu", "linear"}
    X_val, Y_val : array-like, optional
        Held-out recordings for the discrepancy.
    eps_range : (float, float)
        Bracket for the relative ``eps``.
    max_steps : int
        Bisection steps after the two ends.
    target_tol : float, optional
        Stop once the met value is within ``target_tol`` of the target (absolute for
        sparsity, relative for the discrepancy); ``SPARSITY_TOL`` / ``DISCREPANCY_RTOL`` by
        default.
    tol : float, optional
        Deprecated name of ``target_tol`` (``trim_layer``'s own ``tol`` goes in
        ``options=TrimOptions(tol=...)``; once this alias is gone, in ``**trim_options``).
    options : TrimOptions, optional
        The :func:`~nettrim.trim_layer` options as one object (instead of
        ``**trim_options``); its ``activation`` and ``eps`` are set here.
    **trim_options
        Passed to :func:`~nettrim.trim_layer` (``solver``, ``per_neuron``, ...).

    Returns
    -------
    TuningResult
        ``result`` is the :class:`~nettrim.LayerResult` at the chosen ``eps``.
    """
    target_tol = renamed_argument("tune_layer", "tol", tol, "target_tol", target_tol, _TOL_WHY)
    bisection = _Bisection.check(
        target_sparsity, target_discrepancy, eps_range, max_steps, target_tol
    )
    for key in ("eps", "warm_start", "activation"):
        if key in trim_options:
            raise TypeError(f"tune_layer sets {key!r} itself")
    options = _trim_options("tune_layer", options, trim_options, activation=activation)
    dtype = as_float_dtype(X, Y)
    X, Y = check_matrix("X", X, dtype), check_matrix("Y", Y, dtype)
    check_same_rows(("Y", "X"), (Y, X))
    if (X_val is None) != (Y_val is None):
        raise ValueError("give both X_val and Y_val, or neither")
    if X_val is not None:
        X_val, Y_val = check_matrix("X_val", X_val, dtype), check_matrix("Y_val", Y_val, dtype)
        check_same_rows(("Y_val", "X_val"), (Y_val, X_val))
        check_columns("X_val", X_val, X.shape[1], "X")
        check_columns("Y_val", Y_val, Y.shape[1], "Y")
    X_eval, Y_eval = (X, Y) if X_val is None else (X_val, Y_val)

    def evaluate(eps: float, warm):
        result = solve_layer(X, Y, replace(options, eps=eps), warm_start=warm)
        if result.W is None:
            raise RuntimeError(
                f"trim_layer at eps={eps:.4g} returned status {result.status.value!r}"
            )
        if bisection.criterion == "sparsity":
            return result.sparsity, result
        return layer_discrepancy(result, X_eval, Y_eval, activation), result

    return bisection.run(evaluate)


def _tune_layer_job(args: tuple) -> TuningResult:
    """One layer's bisection inside a worker (arrays memory-mapped there)."""
    X, Y, X_val, Y_val, kwargs = args
    return tune_layer(resolve(X), resolve(Y), X_val=resolve(X_val), Y_val=resolve(Y_val), **kwargs)


def tune_network(
    network: Network,
    X,
    *,
    target_sparsity: float | None = None,
    target_discrepancy: float | None = None,
    scheme: str = "parallel",
    per_layer: bool = False,
    X_val=None,
    eps_range: tuple[float, float] = DEFAULT_EPS_RANGE,
    max_steps: int = DEFAULT_MAX_STEPS,
    target_tol: float | None = None,
    tol: float | None = None,
    executor: Executor | None = None,
    n_jobs: int | None = None,
    blas_threads: int | None = DEFAULT_BLAS_THREADS,
    store_dir: str | os.PathLike | None = None,
    **options: Any,
) -> TuningResult:
    """The ``eps`` of :func:`~nettrim.net_trim` that reaches a target for a network.

    Parameters
    ----------
    network : Network
    X : array-like of shape (n, d_0)
        Calibration inputs.
    target_sparsity : float in [0, 1], optional
        Sparsity to reach: of the whole network, or of every layer when ``per_layer``.
    target_discrepancy : float > 0, optional
        Relative output discrepancy ``||Yhat^(L) - Y^(L)||_F / ||Y^(L)||_F`` not to exceed
        (of every layer's own output when ``per_layer``), on ``X_val`` when given.
    scheme : {"parallel", "cascade"}
        Network-wide tuning bisects the parallel scheme's common ``eps`` or the cascade's
        first-layer ``eps`` (``gamma`` fixed).
    per_layer : bool
        Parallel scheme only: one bisection per layer, each layer a job of its own on the
        executor; the chosen ``eps`` is one per layer.
    X_val : array-like, optional
        Held-out inputs for the discrepancy.
    eps_range, max_steps, target_tol, tol
        As in :func:`tune_layer` (``tol`` is the deprecated name of ``target_tol``).
    executor, n_jobs, blas_threads, store_dir
        As in :func:`~nettrim.net_trim`; joblib's workers serve every step (started once).
    **options
        Further :func:`~nettrim.net_trim` options (``solver``, ``gamma``, ``per_neuron``,
        ``tol``, ``options=TrimOptions(...)``, ...); with ``per_layer``, only
        :func:`~nettrim.trim_layer` options.

    Returns
    -------
    TuningResult
        ``result`` is the :class:`~nettrim.schemes.NetTrimResult` at the chosen ``eps``.
    """
    target_tol = renamed_argument("tune_network", "tol", tol, "target_tol", target_tol, _TOL_WHY)
    bisection = _Bisection.check(
        target_sparsity, target_discrepancy, eps_range, max_steps, target_tol
    )
    if per_layer and scheme != "parallel":
        raise ValueError(
            "per_layer tuning needs scheme='parallel' (cascade layers depend on "
            "the layers before them)"
        )
    for key in ("eps", "warm_start", "activations"):
        if key in options:
            raise TypeError(f"tune_network sets {key!r} itself")
    dtype = as_float_dtype(X)
    network = check_network(network)
    X = check_network_inputs(network, X, dtype)
    if X_val is not None:
        X_val = check_network_inputs(network, X_val, dtype, name="X_val")

    if per_layer:
        with JobRunner(
            executor,
            n_jobs,
            blas_threads=blas_threads,
            max_parallel=len(network),
            store_dir=store_dir,
        ) as runner:
            return _tune_per_layer(network, X, X_val, bisection, options, runner)
    Y_eval = network(X if X_val is None else X_val)

    def evaluate(eps: float, warm):
        # joblib keeps its workers between these calls: the pool starts once per sweep
        result = net_trim(
            network,
            X,
            scheme=scheme,
            eps=eps,
            warm_start=warm,
            executor=executor,
            n_jobs=n_jobs,
            blas_threads=blas_threads,
            store_dir=store_dir,
            **options,
        )
        if bisection.criterion == "sparsity":
            return result.sparsity, result
        out = result.network(X if X_val is None else X_val)
        return relative_discrepancy(out, Y_eval), result

    return bisection.run(evaluate)


def _tune_per_layer(
    network: Network,
    X: np.ndarray,
    X_val: np.ndarray | None,
    bisection: _Bisection,
    options: dict,
    runner: JobRunner,
) -> TuningResult:
    """One bisection per layer, each a job on ``runner``; parallel scheme."""
    given = dict(options)
    trim = _trim_options("per-layer tuning", given.pop("options", None), given)
    acts = network.record(X)
    acts_val = network.record(X_val) if X_val is not None else None
    key = f"target_{bisection.criterion}"
    shared = [runner.share(a) for a in acts]
    shared_val = [runner.share(a) for a in acts_val] if acts_val is not None else None
    tasks = []
    for l, layer in enumerate(network.layers):
        kwargs = {
            key: bisection.target,
            "activation": layer.activation,
            "eps_range": (bisection.lo, bisection.hi),
            "max_steps": bisection.max_steps,
            "target_tol": bisection.tol,
            "options": replace(trim, bias=layer.b is not None),
        }
        tasks.append(
            (
                shared[l],
                shared[l + 1],
                None if shared_val is None else shared_val[l],
                None if shared_val is None else shared_val[l + 1],
                kwargs,
            )
        )
    tuned = runner.map(_tune_layer_job, tasks)
    layers = tuple(t.result for t in tuned)
    pruned = Network(
        tuple(
            layer.with_weights(res.W, res.b)
            for layer, res in zip(network.layers, layers, strict=True)
        )
    )
    eps = tuple(t.eps for t in tuned)
    per_neuron = bool(trim.per_neuron)
    radii = tuple(absolute_radius(a, e, per_neuron) for e, a in zip(eps, acts[1:], strict=True))
    result = NetTrimResult(
        network=pruned,
        layers=layers,
        scheme="parallel",
        eps=eps,
        radii=radii,
        per_neuron=per_neuron,
    )
    return TuningResult(
        eps=eps,
        value=tuple(t.value for t in tuned),
        target=bisection.target,
        criterion=bisection.criterion,
        success=tuple(t.success for t in tuned),
        result=result,
        history=tuple(t.history for t in tuned),
    )

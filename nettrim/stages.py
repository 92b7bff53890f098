"""Pruning stage by stage: one dense program per prunable module, in forward order.

A *stage* is a layer or framework module with dense weights ``W`` of shape
``(d_in, d_out)``: a dense layer, a convolution on its patch rows, a PyTorch ``nn.Linear``
or ``nn.Conv2d``. :func:`prune_stages` prunes a sequence of them from recorded program rows
``(X, Y)``, in either scheme, with Net-Trim or an L0 method. It knows nothing about where
the rows come from: :func:`net_trim_stages` feeds it a :class:`~nettrim.Network` with
convolutions and pooling (``net_trim`` calls it for such networks), and
:mod:`nettrim.torch` feeds it a PyTorch model.

* **parallel**: every stage uses the original rows; the stages are independent jobs.
* **cascade**: stage ``i`` gets its input ``X_hat`` re-recorded from the model with stages
  ``0..i-1`` already pruned (``reinput``), the original output ``Y`` and, for Net-Trim, the
  cascade budget of ``net_trim``: ``eps_i^2 = gamma ||(X_hat~ W~ - Y)_Omega||_F^2`` with the
  original weights ``W~`` (times ``kappa^2`` for the last stage) and, for a ReLU stage, the
  bound ``max(V, 0)`` (``"relaxed"``) or ``V`` (``"paper"``) off Omega, ``V = X_hat~ W~``.
  L0 methods reconstruct the original weights' output on the pruned input (SparseGPT's
  sequential driver).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import budgets
from .executors import DEFAULT_BLAS_THREADS, JobRunner, StoredArray, resolve
from .layer import DEFAULT_EPS, LayerResult, TrimOptions, build_problem, check_eps, trim_layer
from .network import DenseLayer, Network
from .progress import JobCounter, check_progress
from .pruning import METHODS as L0_METHODS
from .pruning import check_layer_budgets, prune_layer
from .reweighted import (
    DEFAULT_DELTA,
    Reweighting,
    reweight_rounds,
    reweighted_trim_layer,
    round_settings,
)
from .schemes import (
    CASCADE_BOUNDS,
    DEFAULT_GAMMA,
    DEFAULT_KAPPA,
    SCHEMES,
    LayerSolveError,
    NetTrimResult,
    check_cascade_only,
)
from .solvers import SolveInfo, SolverResult
from .solvers.row_generation import solve_row_generation
from .validation import (
    as_float_dtype,
    check_choice,
    check_matrix,
    check_network_inputs,
    check_same_rows,
    check_scalar,
)

#: ``method`` words: Net-Trim's convex programs, then the L0 methods of ``prune_layer``.
METHODS = ("net-trim", *L0_METHODS)
#: ``rows`` option of a Net-Trim stage: every row at once, or row generation.
ROWS = ("all", "generate")
#: ``rows="generate"`` applies to programs with at least this many times the reduced
#: ball's ``(d_in + 1) * d_out`` rows; shorter ones are solved on all rows. Measured with
#: both layouts of row generation (``docs/torch.md``): on a trained 16 -> 32 channel conv
#: 4.03x, 7.23x, 13.69x and 25.6x faster than all rows at 2.1, 4.1, 8.3 and 17 times
#: (benchmarks/results/tall.md); by hand LeNet's second conv about twice as fast at 4.1
#: times, two to three times slower at 2 and 1 times.
TALL_FACTOR = 4


@dataclass(frozen=True)
class Stage:
    """One prunable module: its dense weights and the program it gets.

    Attributes
    ----------
    name : str
        The module's name (a layer index, a PyTorch module path).
    W : ndarray of shape (d_in, d_out)
    b : ndarray of shape (d_out,) or None
    activation : {"relu", "linear"}
        ``"relu"`` when the module's only consumer is a ReLU: Net-Trim's (P1), with the
        recorded ``Y`` the ReLU's output; else (P2) on the module's own output.
    """

    name: str
    W: np.ndarray
    b: np.ndarray | None
    activation: str


@dataclass(frozen=True)
class _StageJob:
    X: np.ndarray | StoredArray
    Y: np.ndarray | StoredArray | None
    upper: np.ndarray | StoredArray | None
    W: np.ndarray
    b: np.ndarray | None
    activation: str
    eps: Any
    relative: bool
    method: str
    options: dict


#: What each stage's job sets itself, from the stage, never from ``options``.
_FROM_STAGE = {"X", "Y", "W", "b", "activation", "eps", "relative", "bias", "upper", "method"}
#: Options of the stage job itself (rows, and the reweighted rounds of Net-Trim).
_JOB_OPTIONS = {"rows", "reweight_rounds", "reweight_delta"}


def check_stage_options(method: str, options: Mapping[str, Any]) -> None:
    """Every option a keyword of the stage's solver, before any recording is solved."""
    solver = trim_layer if method == "net-trim" else prune_layer
    known = set(inspect.signature(solver).parameters) - _FROM_STAGE
    if method == "net-trim":
        known |= _JOB_OPTIONS
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for method={method!r}; the options are those of "
            f"{solver.__name__}: {', '.join(sorted(known))}"
        )


def _run_stage_job(job: _StageJob) -> LayerResult:
    """Solve one stage (runs in a worker; arrays memory-mapped there)."""
    X, Y, upper = resolve(job.X), resolve(job.Y), resolve(job.upper)
    options = dict(job.options)
    rows = check_choice("rows", options.pop("rows", "all"), ROWS)
    rounds = options.pop("reweight_rounds", 0)
    delta = options.pop("reweight_delta", DEFAULT_DELTA)
    # worth it above a few times the reduced ball's (d_in + 1) * d_out rows (TALL_FACTOR)
    tall = X.shape[0] >= TALL_FACTOR * (X.shape[1] + 1) * job.W.shape[1]
    if job.method == "net-trim" and rows == "generate" and tall:
        return trim_layer_rows(
            X, Y, activation=job.activation, eps=job.eps, relative=job.relative,
            bias=job.b is not None, upper=upper, reweight_rounds=rounds,
            reweight_delta=delta, **options,
        )  # fmt: skip
    if job.method == "net-trim" and rounds:
        return reweighted_trim_layer(
            X, Y, rounds=rounds, delta=delta, activation=job.activation, eps=job.eps,
            relative=job.relative, bias=job.b is not None, upper=upper, **options,
        )  # fmt: skip
    if job.method == "net-trim":
        return trim_layer(
            X,
            Y,
            activation=job.activation,
            eps=job.eps,
            relative=job.relative,
            bias=job.b is not None,
            upper=upper,
            **options,
        )
    return prune_layer(X, job.W, job.b, method=job.method, **options)


def trim_layer_rows(
    X,
    Y,
    *,
    activation: str,
    eps,
    relative: bool,
    bias: bool,
    upper=None,
    per_neuron: bool = False,
    penalize_bias: bool = True,
    active_tol: float = 0.0,
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    solver_options: dict | None = None,
    reweight_rounds: int = 0,
    reweight_delta: float = DEFAULT_DELTA,
) -> LayerResult:
    """:func:`~nettrim.trim_layer` by row generation
    (:func:`nettrim.solvers.row_generation.solve_row_generation`): the ball reduced to
    ``d`` rows per column, the inequalities off Omega generated; for tall programs (conv
    layers). ADMM only (``solver`` ``"auto"`` or ``"admm"``); the weights are certified
    feasible on every row. ``reweight_rounds`` re-solves with reweighted L1 as
    :func:`~nettrim.reweighted_trim_layer` does (its entry weights, each round by row
    generation from the last weights), keeping the last round that solved as the plain
    solve did; ``info.extra["nnz_history"]`` gives the non-zeros after each."""
    reweighting = Reweighting(rounds=reweight_rounds, delta=reweight_delta)
    if solver not in ("auto", "admm"):
        raise ValueError(f"rows='generate' solves with the ADMM; got solver={solver!r}")
    dtype = as_float_dtype(X, Y)
    X, Y = check_matrix("X", X, dtype), check_matrix("Y", Y, dtype)
    check_same_rows(("Y", "X"), (Y, X))
    problem = build_problem(
        X, Y, activation=activation, eps=eps, relative=relative, per_neuron=per_neuron,
        bias=bias, penalize_bias=penalize_bias, upper=upper, penalty=None,
        active_tol=check_scalar("active_tol", active_tol, low=0.0),
    )  # fmt: skip
    settings = TrimOptions(tol=tol, max_iter=max_iter, solver_options=solver_options)
    result = _reweighted_rows(problem, settings.admm_settings(), reweighting, X.shape[1])
    W = b = None
    if result.W is not None:
        W = np.ascontiguousarray(result.W[: X.shape[1]]).astype(dtype)
        b = result.W[-1].astype(dtype) if bias else None
    program = "P1" if activation == "relu" else "P2"
    return LayerResult(W=W, b=b, status=result.status, info=result.info, program=program)


def _reweighted_rows(problem, settings, reweighting: Reweighting, d_in: int) -> SolverResult:
    """Row generation, then ``reweighting.rounds`` reweighted rounds by the rule of
    :func:`nettrim.reweighted.reweight_rounds`, each from the last round's result: its
    weights, the inequalities it generated and its ADMM state (a round then solves on the
    rows the last one needed instead of generating them again; fewer iterations on the
    wide conv case of ``benchmarks/bench_tall.py``, ``docs/solvers.md``, "Tall programs").
    ``info.extra["generation"]`` holds the last round's row-generation figures."""
    started = time.perf_counter()
    first = solve_row_generation(problem, settings, keep_state=bool(reweighting.rounds))
    if first.W is None or not reweighting.rounds:
        return first

    def solve(weighted, start: SolverResult, final: bool) -> SolverResult:
        return solve_row_generation(
            weighted, round_settings(settings, final), warm_start=start, keep_state=True
        )

    kept, extra = reweight_rounds(
        problem, first, reweighting, solve, d_in=d_in, keep_l1=True, loose=True
    )
    generation = {k: v for k, v in kept.info.extra.items() if k != "states"}
    # measured on the program as given; the last round's certificate is of its weighted
    # norm, so none is claimed for the plain one (as reweighted_trim_layer)
    info = SolveInfo(
        solver=f"{first.info.solver}+reweighted",
        iterations=extra["rounds"],
        seconds=time.perf_counter() - started,
        message=f"{extra['rounds']} reweighting round(s) after the plain solve",
        extra={**extra, "generation": generation},
        **problem.evaluate(kept.W),
    )
    return SolverResult(W=kept.W, status=kept.status, info=info)


def cascade_budget(
    X_hat: np.ndarray,
    Y: np.ndarray,
    stage: Stage,
    *,
    factor: float,
    bound: str,
    active_tol: float,
    per_neuron: bool,
) -> tuple[Any, np.ndarray | None, Any]:
    """``(radius, upper, relative_eps)`` of a cascade stage after the first: the rule of
    :func:`nettrim.budgets.cascade_budget` (the original weights on the pruned input stay
    feasible), with ``factor = gamma * kappa**2``."""
    layer = DenseLayer(stage.W, stage.b, stage.activation)
    radius, upper = budgets.cascade_budget(
        layer,
        X_hat,
        Y,
        gamma=factor,
        kappa=1.0,
        per_neuron=per_neuron,
        active_tol=active_tol,
        cascade_bound=bound,
    )
    return radius, upper, budgets.relative_budget(radius, Y, per_neuron)


def prune_stages(
    stages: Sequence[Stage],
    recordings: Callable[[int], tuple[Any, np.ndarray | None]],
    *,
    method: str = "net-trim",
    scheme: str = "parallel",
    reinput: Callable[[int], Any] | None = None,
    on_solved: Callable[[int, LayerResult], None] | None = None,
    eps: float | Sequence[float] = DEFAULT_EPS,
    gamma: float | Sequence[float] = DEFAULT_GAMMA,
    kappa: float = DEFAULT_KAPPA,
    cascade_bound: str = "relaxed",
    executor: Executor | None = None,
    n_jobs: int | None = None,
    blas_threads: int | None = DEFAULT_BLAS_THREADS,
    store_dir=None,
    options: dict | None = None,
    resume: Mapping[int, LayerResult] | None = None,
) -> tuple[list[LayerResult], list[Any], list[Any]]:
    """Prune ``stages`` in forward order; returns ``(results, radii, relative_eps)``.

    Parameters
    ----------
    stages : sequence of Stage
    recordings : callable
        ``recordings(i) -> (X, Y)``: stage ``i``'s original program rows (arrays or
        memory-maps; ``Y`` is only needed by Net-Trim; for L0 methods ``X`` may be a
        :class:`~nettrim.GramAccumulator`).
    method : str
        ``"net-trim"`` (:func:`~nettrim.trim_layer`) or a :func:`~nettrim.prune_layer`
        method (``"admm"``, ``"iht"``, ``"sparsegpt"``, ``"wanda"``, ``"magnitude"``).
    scheme : {"parallel", "cascade"}
    reinput : callable, optional
        Cascade: ``reinput(i) -> X_hat``, stage ``i``'s input rows re-recorded with the
        stages before it pruned (``on_solved`` has written them back by then).
    on_solved : callable, optional
        ``on_solved(i, result)``, called in forward order as soon as stage ``i`` is solved.
    eps, gamma, kappa, cascade_bound
        Net-Trim's budgets, as in :func:`~nettrim.net_trim` (``eps`` relative: one for
        every stage or, parallel only, a list or tuple with one per stage; cascade: the
        first stage's).
    executor, n_jobs, blas_threads, store_dir
        Where the jobs run (parallel: all stages at once), as in :func:`~nettrim.net_trim`.
    options : dict, optional
        Further keyword arguments of the solver: :func:`~nettrim.trim_layer`'s for
        Net-Trim (``solver``, ``active_tol``, ``per_neuron``, ``reweight_rounds`` and
        ``reweight_delta`` of :func:`~nettrim.reweighted_trim_layer` for the programs
        solved on all rows, ``rows``), else
        :func:`~nettrim.prune_layer`'s (``sparsity``, ``pattern``, ``damping``, ...).
    resume : mapping of int to LayerResult, optional
        Stages already solved (by an earlier, interrupted run with the same inputs): their
        results are taken as they are, not solved again; their budgets are recomputed, and
        in the cascade their weights feed the later stages as a solve's would.

    Raises
    ------
    LayerSolveError
        When a Net-Trim stage is infeasible or its solver fails.
    """
    method = check_choice("method", method, METHODS)
    scheme = check_choice("scheme", scheme, SCHEMES)
    cascade_bound = check_choice("cascade_bound", cascade_bound, CASCADE_BOUNDS)
    kappa = check_scalar("kappa", kappa, low=0.0, low_inclusive=False, high=1.0)
    check_cascade_only(scheme, gamma=gamma, kappa=kappa, cascade_bound=cascade_bound)
    n = len(stages)
    gammas = _gammas(gamma, n) if scheme == "cascade" else ()
    if scheme == "cascade" and reinput is None and n > 1:
        raise ValueError("the cascade scheme needs reinput (the pruned model's stage inputs)")
    options = dict(options or {})
    check_stage_options(method, options)
    if method != "net-trim":
        shapes = {f"stage {s.name!r}": (s.W.shape, options.get("sparsity")) for s in stages}
        check_layer_budgets(options.get("pattern", "unstructured"), shapes, options.get("k"))
    active_tol = float(options.get("active_tol", 0.0))
    per_neuron = bool(options.get("per_neuron", False))
    eps_of = _stage_eps(eps, stages, scheme, per_neuron) if method == "net-trim" else [eps] * n
    resume = dict(resume or {})
    results: list[LayerResult] = []
    radii: list[Any] = []
    rel_eps: list[Any] = []

    def job(i: int, X, Y, upper, eps_i, relative: bool) -> _StageJob:
        s = stages[i]
        return _StageJob(
            runner.share(X) if isinstance(X, np.ndarray) else X,
            runner.share(Y),
            runner.share(upper),
            s.W,
            s.b,
            s.activation,
            eps_i,
            relative,
            method,
            options,
        )

    def finish(i: int, result: LayerResult, radius, relative) -> None:
        if result.W is None:
            raise LayerSolveError(i, result, stages[i].W.shape, f"stage {stages[i].name!r}")
        results.append(result)
        radii.append(radius)
        rel_eps.append(relative)
        if on_solved is not None:
            on_solved(i, result)

    max_parallel = n if scheme == "parallel" else 1
    with JobRunner(
        executor, n_jobs, blas_threads=blas_threads, max_parallel=max_parallel, store_dir=store_dir
    ) as runner:
        if scheme == "parallel":
            jobs, figures = [], []
            for i in range(n):
                X, Y = recordings(i)
                if i not in resume:
                    jobs.append(job(i, X, Y, None, eps_of[i], True))
                figures.append(_first_radius(Y, eps_of[i], per_neuron, method))
            todo = [i for i in range(n) if i not in resume]

            def relative(i: int):
                return eps_of[i] if method == "net-trim" else None

            def solved(k: int, result: LayerResult) -> None:
                # jobs come back in order: the resumed stages before this one, then it, so a
                # run directory keeps each stage as soon as it is solved
                for i in range(len(results), todo[k]):
                    finish(i, resume[i], figures[i], relative(i))
                finish(todo[k], result, figures[todo[k]], relative(todo[k]))

            runner.map(_run_stage_job, jobs, on_done=solved)
            for i in range(len(results), n):  # resumed stages after the last solved one
                finish(i, resume[i], figures[i], relative(i))
            return results, radii, rel_eps
        for i in range(n):
            X, Y = recordings(i)
            if i == 0 or method != "net-trim":
                X_hat = X if i == 0 else reinput(i)
                radius = _first_radius(Y, eps_of[0], per_neuron, method) if i == 0 else None
                relative = eps_of[0] if method == "net-trim" else None
                task = job(i, X_hat, Y, None, eps_of[0], True)
            else:
                X_hat = reinput(i)
                factor = gammas[i - 1] * (kappa**2 if i == n - 1 else 1.0)
                radius, upper, relative = cascade_budget(
                    X_hat,
                    Y,
                    stages[i],
                    factor=factor,
                    bound=cascade_bound,
                    active_tol=active_tol,
                    per_neuron=per_neuron,
                )
                task = job(i, X_hat, Y, upper, radius, False)
            result = resume[i] if i in resume else runner.map(_run_stage_job, [task])[0]
            finish(i, result, radius, relative)
    return results, radii, rel_eps


def _stage_eps(eps, stages: Sequence[Stage], scheme: str, per_neuron: bool) -> list:
    """One relative budget per stage, as given (the cascade uses only the first)."""
    if not isinstance(eps, (list, tuple)):
        return [eps] * len(stages)
    if scheme == "cascade":
        raise ValueError(
            "scheme='cascade' takes one eps (the first stage's); gamma sets the later "
            "stages' budgets"
        )
    if len(eps) != len(stages):
        raise ValueError(
            f"eps has {len(eps)} values but there are {len(stages)} stages; give one eps "
            "or one per stage"
        )
    return [
        check_eps(f"eps[{s.name!r}]", e, per_neuron=per_neuron, d_out=s.W.shape[1])
        for s, e in zip(stages, eps, strict=True)
    ]


def _first_radius(Y, eps, per_neuron: bool, method: str):
    """The absolute budget of a stage solved with the relative ``eps``."""
    if method != "net-trim":
        return None
    return budgets.absolute_radius(Y, eps, per_neuron)


def _gammas(gamma, n: int) -> tuple[float, ...]:
    values = [gamma] * max(n - 1, 0) if np.ndim(gamma) == 0 else list(gamma)
    if len(values) != max(n - 1, 0):
        raise ValueError(
            f"gamma has {len(values)} values; give one, or one per stage after the first ({n - 1})"
        )
    return tuple(float(check_scalar("gamma", g, low=1.0)) for g in values)


def net_trim_stages(
    network: Network,
    X,
    *,
    scheme: str = "parallel",
    eps: float = DEFAULT_EPS,
    gamma: float | Sequence[float] = DEFAULT_GAMMA,
    kappa: float = DEFAULT_KAPPA,
    cascade_bound: str = "relaxed",
    executor: Executor | None = None,
    n_jobs: int | None = None,
    blas_threads: int | None = DEFAULT_BLAS_THREADS,
    store_dir=None,
    progress=None,
    resume: Mapping[int, LayerResult] | None = None,
    **layer_options: Any,
) -> NetTrimResult:
    """Net-Trim on a network with convolutions and pooling: one program per prunable layer.

    ``X`` is the network's input (NCHW images for a convolution first). The result's
    ``layers[i]``, ``eps[i]`` and ``radii[i]`` belong to layer ``network.prunable[i]``;
    the conv programs' rows are (sample, output pixel) patch rows
    (:func:`nettrim.conv.im2col`). ``progress`` receives a ``"job"`` and a ``"layer"``
    event per prunable layer as it is solved, ``resume`` takes finished layers keyed by
    their position in the network (as the events name them), as in
    :func:`~nettrim.net_trim`.
    """
    start = time.perf_counter()
    X = check_network_inputs(network, X, as_float_dtype(X))
    acts = network.record(X)
    positions = network.prunable
    stages = [Stage(str(l), network[l].W, network[l].b, network[l].activation) for l in positions]
    current = list(network.layers)

    def recordings(i: int):
        l = positions[i]
        return network[l].program_input(acts[l]), network[l].program_output(acts[l + 1])

    def reinput(i: int):
        l = positions[i]
        return current[l].program_input(Network(tuple(current[:l])).forward(X))

    resumed = {positions.index(l): res for l, res in (resume or {}).items()}
    counter = JobCounter(check_progress(progress), len(network), len(stages) - len(resumed))

    def on_solved(i: int, result: LayerResult) -> None:
        l = positions[i]
        current[l] = current[l].with_weights(result.W, result.b)
        if i in resumed:
            counter.layer(l, result, resumed=True)
        else:
            counter.job(l, 0, 1, result)
            counter.layer(l, result)

    results, radii, rel_eps = prune_stages(
        stages,
        recordings,
        scheme=scheme,
        reinput=reinput,
        on_solved=on_solved,
        eps=eps,
        gamma=gamma,
        kappa=kappa,
        cascade_bound=cascade_bound,
        executor=executor,
        n_jobs=n_jobs,
        blas_threads=blas_threads,
        store_dir=store_dir,
        options=layer_options,
        resume=resumed,
    )
    return NetTrimResult(
        network=Network(tuple(current)),
        layers=tuple(results),
        scheme=scheme,
        eps=tuple(rel_eps),
        radii=tuple(radii),
        gamma=_gammas(gamma, len(stages)) if scheme == "cascade" else (),
        kappa=kappa,
        per_neuron=bool(layer_options.get("per_neuron", False)),
        seconds=time.perf_counter() - start,
        options={
            "positions": positions,
            # what verify reads back as the bound the cascade's layers were solved to
            **({"cascade_bound": cascade_bound} if scheme == "cascade" else {}),
            **layer_options,
        },
    )

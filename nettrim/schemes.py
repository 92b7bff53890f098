"""Net-Trim over a whole network: the parallel and the cascade schemes.

Notation (``docs/theory.md``, "Conventions"): ``Y^(0) = X`` and ``Y^(l)`` the original
network's layer outputs, ``Yhat^(l)`` the pruned network's, ``W~_l = [W_l; b_l]``,
``Omega_l = {Y^(l) > active_tol}``.

* **parallel** — every layer ``l`` is pruned on the original network's own input and output,
  ``(Y^(l-1), Y^(l))``, with ``V = 0`` and ``eps_abs = eps_l * ||Y^(l)||_F``. The layers are
  independent jobs (one per layer, or per block of output columns in per-neuron mode).
* **cascade** — layer 1 as in the parallel scheme; layer ``l >= 2`` is pruned on the pruned
  network's input ``Yhat^(l-1)`` against the original output ``Y^(l)``, with
  ``V_l = Yhat~^(l-1) W~_l`` (the original weights on the pruned input, which keeps them
  feasible) and the absolute radius
  ``eps_l^2 = gamma_l * ||(Yhat~^(l-1) W~_l - Y^(l))_Omega||_F^2`` (times ``kappa^2`` for the
  last layer). Layers run in sequence; in per-neuron mode the column blocks of a layer still
  run in parallel (a layer-wide ball couples all columns and is never split).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .budgets import absolute_radius, cascade_budget, relative_budget, warn_unlikely_budgets
from .executors import (
    DEFAULT_BLAS_THREADS,
    JobRunner,
    StoredArray,
    WorkerDiedError,
    resolve,
    split_columns,
)
from .layer import DEFAULT_EPS, LayerResult, TrimOptions, check_eps, solve_layer
from .network import Network
from .progress import IterationSampler, JobCounter, check_progress
from .results import NetworkResult
from .reweighted import DEFAULT_DELTA, Reweighting, reweight_layer
from .solvers import SolveInfo, Status
from .tables import format_columns
from .validation import (
    as_float_dtype,
    check_choice,
    check_matrix,
    check_network,
    check_network_inputs,
    check_scalar,
)

SCHEMES = ("parallel", "cascade")
#: The reference code's cascade inflation factor.
DEFAULT_GAMMA = 1.1
DEFAULT_KAPPA = 1.0
#: Bounds off Omega of the cascade's ReLU layers: ``"relaxed"`` ``max(V, 0)``, ``"paper"`` ``V``.
CASCADE_BOUNDS = ("relaxed", "paper")
#: Output columns per job in per-neuron mode. Fixed (not derived from ``n_jobs``) so the
#: jobs, and therefore the results, are the same whatever runs them.
DEFAULT_NEURON_BLOCK = 64
#: What a scheme sets for every layer itself (a caller may not pass them as layer options).
_SET_PER_LAYER = (*TrimOptions.LAYER_FIELDS, "upper", "warm_start")
#: Statuses that come back with weights but without the requested accuracy.
_DEGRADED = (Status.INACCURATE, Status.MAX_ITER)


class LayerSolveError(RuntimeError):
    """A layer's program came back infeasible or the solver failed: no weights to use."""

    def __init__(
        self, layer: int, result: LayerResult, shape: tuple[int, int], hint: str = ""
    ) -> None:
        self.layer = layer
        self.result = result
        super().__init__(
            f"layer {layer} ({shape[0]}x{shape[1]}): solver {result.info.solver!r} returned "
            f"status {result.status.value!r} ({result.status.message}); "
            f"{result.info.message or 'no further detail'}" + (f"; {hint}" if hint else "")
        )


@dataclass(frozen=True, repr=False)
class NetTrimResult(NetworkResult):
    """A pruned network with the per-layer results and the budgets that produced it.

    Attributes
    ----------
    network : Network
        The pruned network (same layers, activations and shapes as the original).
    layers : tuple of LayerResult
        One per layer (column blocks merged in per-neuron mode).
    scheme : {"parallel", "cascade"}
    eps : tuple
        Relative budget per layer: the given ``eps`` in the parallel scheme and for the
        first cascade layer; for later cascade layers the radius the cascade chose divided by
        ``||Y^(l)||_F`` (per column in per-neuron mode).
    radii : tuple
        The absolute budgets each layer was solved with (a float, or one per column).
    gamma : tuple of float
        ``gamma_l`` for layers ``2..L`` (cascade; empty for the parallel scheme).
    kappa : float
        The last layer's extra factor (cascade).
    per_neuron : bool
    seconds : float
        Wall time of the whole run (jobs, transfers and pool start included).
    options : dict
        The solver, ``neuron_block`` and the layer options the run used.
    """

    network: Network
    layers: tuple[LayerResult, ...]
    scheme: str
    eps: tuple[Any, ...]
    radii: tuple[Any, ...]
    gamma: tuple[float, ...] = ()
    kappa: float = DEFAULT_KAPPA
    per_neuron: bool = False
    seconds: float = 0.0
    options: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A per-layer table: shape, non-zeros, sparsity, residual vs radius, status, time."""
        rows = [
            (
                l,
                f"{res.W.shape[0]}x{res.W.shape[1]}",
                res.nnz,
                f"{res.sparsity:.1%}",
                f"{res.info.residual:.4g}",
                f"{float(np.linalg.norm(np.atleast_1d(radius))):.4g}",
                res.status.value,
                f"{res.info.seconds:.2f}",
            )
            for l, (res, radius) in enumerate(zip(self.layers, self.radii, strict=True))
        ]
        if not self.per_neuron:
            return "\n".join([self._headline("Net-Trim"), *format_columns(_SUMMARY_COLUMNS, rows)])
        # a layer's budget is then one radius per column: the table compares norms over
        # the columns, and each column's own ball is in the layer's summary
        columns = tuple(("radii norm", 10) if c[0] == "radius" else c for c in _SUMMARY_COLUMNS)
        largest = max((res.info.ball_excess for res in self.layers), default=0.0)
        footer = (
            "per-neuron balls: residual and radii as norms over the columns; "
            f"largest excess of a column over its radius {largest:.3g}"
        )
        return "\n".join([self._headline("Net-Trim"), *format_columns(columns, rows), footer])


#: The columns of :meth:`NetTrimResult.summary`.
_SUMMARY_COLUMNS = (
    ("layer", 5),
    ("shape", 10),
    ("nnz", 8),
    ("sparsity", 8),
    ("residual", 10),
    ("radius", 10),
    ("status", 10),
    ("seconds", 8),
)


@dataclass(frozen=True)
class _LayerJob:
    """One job: a layer (or a block of its output columns) and everything to solve it."""

    layer: int
    X: np.ndarray | StoredArray
    Y: np.ndarray | StoredArray
    upper: np.ndarray | StoredArray | None
    columns: slice | None
    options: TrimOptions
    warm_start: tuple[np.ndarray, np.ndarray | None] | None
    reweighting: Reweighting | None


def _run_layer_job(job: _LayerJob, report=None) -> LayerResult:
    """Solve one job (runs in a worker; arrays memory-mapped there); ``report`` (from
    :meth:`JobRunner.map`) carries samples of the ADMM's checks to the driver."""
    X, Y, upper = resolve(job.X), resolve(job.Y), resolve(job.upper)
    if job.columns is not None:
        Y = Y[:, job.columns]
        if upper is not None:
            upper = upper[:, job.columns]
    callback = None if report is None else IterationSampler(report)
    if job.reweighting is not None:
        return reweight_layer(
            X,
            Y,
            job.options,
            job.reweighting,
            upper=upper,
            warm_start=job.warm_start,
            callback=callback,
        )
    return solve_layer(X, Y, job.options, upper=upper, warm_start=job.warm_start, callback=callback)


def net_trim(
    network: Network,
    X=None,
    *,
    activations: Sequence[np.ndarray] | None = None,
    scheme: str = "parallel",
    eps: float | Sequence[float] = DEFAULT_EPS,
    gamma: float | Sequence[float] = DEFAULT_GAMMA,
    kappa: float = DEFAULT_KAPPA,
    cascade_bound: str = "relaxed",
    per_neuron: bool = False,
    solver: str = "auto",
    executor: Executor | None = None,
    n_jobs: int | None = None,
    blas_threads: int | None = DEFAULT_BLAS_THREADS,
    neuron_block: int = DEFAULT_NEURON_BLOCK,
    warm_start: NetTrimResult | Sequence[LayerResult] | None = None,
    store_dir: str | os.PathLike | None = None,
    reweight_rounds: int = 0,
    reweight_delta: float = DEFAULT_DELTA,
    options: TrimOptions | None = None,
    progress=None,
    resume: Mapping[int, LayerResult] | None = None,
    **layer_options: Any,
) -> NetTrimResult:
    """Prune every layer of ``network`` with Net-Trim (parallel or cascade scheme).

    Parameters
    ----------
    network : Network
        The trained network (dense layers; convolutions as dense layers on patches).
    X : array-like of shape (n, d_0), optional
        Calibration inputs, one sample per row. Give either ``X`` or ``activations``.
    activations : sequence of arrays, optional
        ``[X, Y^(1), ..., Y^(L)]`` recorded elsewhere (e.g. by a framework we cannot run);
        parallel scheme only. ``Y^(l)`` is post-ReLU for a ReLU layer and the plain output
        of a linear one. Gives the same result as ``X`` when it holds the same arrays.
    scheme : {"parallel", "cascade"}
    eps : float or sequence of float
        Relative budget. Parallel: one for all layers or one per layer. Cascade: the first
        layer's (``gamma`` sets the others).
    gamma : float or sequence of float
        Cascade only: ``gamma_l >= 1`` for layers ``2..L`` (one value, or ``L - 1``).
    kappa : float
        Cascade only: ``kappa in (0, 1]`` multiplies the last layer's radius.
    cascade_bound : {"relaxed", "paper"}
        Cascade only: the bound on a ReLU layer's pre-activations off Omega. ``"paper"`` is
        the paper's ``V = Yhat~ W~`` (the original weights on the pruned input);
        ``"relaxed"`` (default) is ``max(V, 0)``. Both keep the original weights feasible
        and bound the pruned outputs off Omega by ``relu(V)``, so Theorem 2 and the
        non-normalized bound hold unchanged; the relaxed one no longer forces a neuron the
        recordings never activate to stay strictly negative, which is sparser (such a
        neuron can be pruned entirely) and several times faster for the ADMM (see
        ``docs/networks.md``).
    per_neuron : bool
        One ball per output neuron; each layer's columns are then split into blocks of
        ``neuron_block`` columns that run as separate jobs.
    solver : str
        :func:`~nettrim.trim_layer`'s ``solver`` (``"auto"`` by default).
    executor : concurrent.futures.Executor, optional
        Where the jobs run (a process pool, ``dask.distributed.Client.get_executor()``).
        Large arrays reach the workers as memory-mapped ``.npy`` files in ``store_dir``.
    n_jobs : int, optional
        Without an executor: size of the process pool to start (``None``: every core, capped
        by the jobs that can run at once; ``1``: in-process).
    blas_threads : int or None
        BLAS threads per job (1 by default, which makes the results independent of
        ``n_jobs`` and of the executor); ``None`` leaves BLAS alone.
    neuron_block : int
        Columns per job in per-neuron mode.
    warm_start : NetTrimResult or sequence of LayerResult, optional
        Solutions at a nearby ``eps``, passed to every layer's solver (the ADMM uses them).
    store_dir : str, optional
        Directory for the memory-mapped arrays (must be visible to every worker).
    reweight_rounds : int
        Reweighted-L1 rounds per layer after the plain solve
        (:func:`~nettrim.reweighted_trim_layer`): fewer non-zeros under the same
        constraints, so every guarantee holds unchanged. 0 (the default) is plain Net-Trim.
    reweight_delta : float
        The smoothing ``delta`` of the reweighting, relative to the largest weight.
    options : TrimOptions, optional
        The layer options as one checked object, instead of ``solver``, ``per_neuron`` and
        ``**layer_options``; its ``activation``, ``eps``, ``relative`` and ``bias`` are set
        for every layer by the scheme.
    progress : callable, optional
        Called in this process with a :class:`~nettrim.progress.ProgressEvent` as each job
        and each layer finishes, and with samples of the ADMM's certificate checks while a
        job runs (``"iteration"`` events; jobs in pool or Dask workers included, their
        checks relayed by a thread of this process; none when the callback has an attribute
        ``wants_iterations = False``, nor on a network with convolutions, which reports its
        layers only). The weights do not depend on it.
    resume : mapping of int to LayerResult, optional
        Layers already solved by an interrupted run of the same call
        (:class:`nettrim.runs.RunDirectory`): they are not solved again, and the result
        is the one the uninterrupted run gives, bit for bit.
    **layer_options
        Further :func:`~nettrim.trim_layer` options (``active_tol``, ``penalize_bias``,
        ``tol``, ``max_iter``, ``solver_options``, ...).

    Returns
    -------
    NetTrimResult

    Raises
    ------
    LayerSolveError
        When a layer's program is infeasible or its solver fails (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> from nettrim import Network, net_trim
    >>> rng = np.random.default_rng(0)
    >>> net = Network.from_arrays([rng.standard_normal((6, 8)), rng.standard_normal((8, 3))],
    ...                           [np.zeros(8), np.zeros(3)])
    >>> result = net_trim(net, rng.standard_normal((40, 6)), eps=0.1, solver="clarabel",
    ...                   n_jobs=1)
    >>> result.scheme, len(result.layers), result.network.dims
    ('parallel', 2, (6, 8, 3))
    """
    start = time.perf_counter()
    if isinstance(network, Network) and len(network) and not network.is_dense:
        # convolutions, pooling: one dense program per prunable layer
        from .stages import net_trim_stages

        unsupported = {
            "activations": activations is not None,
            "warm_start": warm_start is not None,
            "options": options is not None,  # its fields are keyword arguments here
            "neuron_block": neuron_block != DEFAULT_NEURON_BLOCK,
        }
        if any(unsupported.values()):
            given = ", ".join(name for name, on in unsupported.items() if on)
            raise ValueError(
                f"a network with convolutions or pooling takes X and the layer options as "
                f"keyword arguments; got {given}, which it does not support"
            )
        return net_trim_stages(
            network, X, scheme=scheme, eps=eps, gamma=gamma, kappa=kappa,
            cascade_bound=cascade_bound, per_neuron=per_neuron, solver=solver,
            executor=executor, n_jobs=n_jobs, blas_threads=blas_threads, store_dir=store_dir,
            progress=progress, resume=_check_resume(resume, network),
            **_check_cnn_reweighting(reweight_rounds, reweight_delta), **layer_options,
        )  # fmt: skip
    run = _check_run(
        network,
        scheme=scheme,
        eps=eps,
        gamma=gamma,
        kappa=kappa,
        cascade_bound=cascade_bound,
        options=_check_layer_options(options, layer_options, solver, per_neuron),
        neuron_block=neuron_block,
        warm_start=warm_start,
        reweighting=_check_reweighting(reweight_rounds, reweight_delta),
    )
    acts = _check_inputs(network, X, activations, scheme)
    warn_unlikely_budgets(run.eps, acts[0].shape[0], network.dims[:-1])
    solve = _parallel if scheme == "parallel" else _cascade
    resume = _check_resume(resume, network)
    total = sum(len(run.blocks(l)) for l in range(len(network)) if l not in resume)
    counter = JobCounter(check_progress(progress), len(network), total)
    with JobRunner(
        executor,
        n_jobs,
        blas_threads=blas_threads,
        max_parallel=run.max_parallel,
        store_dir=store_dir,
    ) as runner:
        results, radii, rel_eps = solve(run, acts, runner, counter, resume)
    pruned = Network(
        tuple(
            layer.with_weights(res.W, res.b)
            for layer, res in zip(network.layers, results, strict=True)
        )
    )
    return NetTrimResult(
        network=pruned,
        layers=tuple(results),
        scheme=scheme,
        eps=tuple(rel_eps),
        radii=tuple(radii),
        gamma=run.gammas,
        kappa=run.kappa,
        per_neuron=run.per_neuron,
        seconds=time.perf_counter() - start,
        options=run.described(),
    )


@dataclass(frozen=True)
class _Run:
    """A checked ``net_trim`` call: the network, the budgets and the layer options."""

    network: Network
    scheme: str
    eps: list
    gammas: tuple[float, ...]
    kappa: float
    cascade_bound: str
    options: TrimOptions
    neuron_block: int
    warm: list | None
    reweighting: Reweighting | None

    @property
    def per_neuron(self) -> bool:
        return bool(self.options.per_neuron)

    def blocks(self, l: int) -> list[slice | None]:
        """The column blocks of layer ``l`` (one ``None`` block unless per-neuron)."""
        if not self.per_neuron:
            return [None]
        return list(split_columns(self.network[l].W.shape[1], self.neuron_block))

    @property
    def max_parallel(self) -> int:
        """Jobs that can run at once: every block of every layer, or of one layer (cascade)."""
        counts = [len(self.blocks(l)) for l in range(len(self.network))]
        return sum(counts) if self.scheme == "parallel" else max(counts)

    def jobs(self, l: int, X, Y, upper, eps, relative: bool) -> list[_LayerJob]:
        """Layer ``l``'s jobs, one per column block: the one place a job is built."""
        layer = self.network[l]
        options = replace(
            self.options,
            activation=layer.activation,
            relative=relative,
            bias=layer.b is not None,
        )
        return [
            _LayerJob(
                layer=l,
                X=X,
                Y=Y,
                upper=upper,
                columns=cols,
                options=replace(options, eps=_slice_eps(eps, cols)),
                warm_start=_slice_warm(self.warm, l, cols),
                reweighting=self.reweighting,
            )
            for cols in self.blocks(l)
        ]

    def merge(self, l: int, parts: list[LayerResult]) -> LayerResult:
        return _merge_blocks(l, parts, self.blocks(l), self.network[l].W.shape, self.per_neuron)

    def described(self) -> dict:
        """``NetTrimResult.options``: the solver, the block size and what differs from the
        defaults."""
        default = TrimOptions()
        changed = {
            name: getattr(self.options, name)
            for name in TrimOptions.names()
            if name not in (*TrimOptions.LAYER_FIELDS, "solver", "per_neuron")
            and getattr(self.options, name) != getattr(default, name)
        }
        reweighting = {}
        if self.reweighting is not None:
            reweighting = {
                "reweight_rounds": self.reweighting.rounds,
                "reweight_delta": self.reweighting.delta,
            }
        return {
            "solver": self.options.solver,
            "neuron_block": self.neuron_block,
            **({"cascade_bound": self.cascade_bound} if self.scheme == "cascade" else {}),
            **changed,
            **reweighting,
        }


def _parallel(
    run: _Run, acts: list[np.ndarray], runner: JobRunner, counter: JobCounter, resume: Mapping
) -> tuple[list, list, list]:
    """Every layer on the original network's own input and output: all jobs at once; each
    layer merged and reported as soon as its last job is back."""
    todo = [l for l in range(len(run.network)) if l not in resume]
    shared = {i: runner.share(acts[i]) for l in todo for i in (l, l + 1)}
    jobs = [
        job
        for l in todo
        for job in run.jobs(l, shared[l], shared[l + 1], None, run.eps[l], relative=True)
    ]
    results: dict[int, LayerResult] = {}
    for l, res in resume.items():
        results[l] = res
        counter.layer(l, res, resumed=True)
    parts: dict[int, list[LayerResult]] = {l: [] for l in todo}

    first = {l: next(i for i, job in enumerate(jobs) if job.layer == l) for l in todo}

    def on_done(index: int, part: LayerResult) -> None:
        l = jobs[index].layer
        parts[l].append(part)
        n_blocks = len(run.blocks(l))
        counter.job(l, len(parts[l]) - 1, n_blocks, part)
        if len(parts[l]) == n_blocks:
            results[l] = run.merge(l, parts.pop(l))
            counter.layer(l, results[l])

    def on_report(index: int, figures: dict) -> None:
        l = jobs[index].layer
        counter.iteration(l, index - first[l], len(run.blocks(l)), figures)

    try:
        runner.map(
            _run_layer_job,
            jobs,
            on_done=on_done,
            on_report=on_report if counter.wants_iterations else None,
            label=_label,
        )
    except WorkerDiedError as exc:  # keep the layers whose every job came back
        exc.layers = [results.get(l) for l in range(len(run.network))]
        for l in todo:  # an executor's later jobs may have finished after the death
            parts = [exc.finished[i] for i, job in enumerate(jobs) if job.layer == l]
            if exc.layers[l] is None and all(p is not None and p.W is not None for p in parts):
                exc.layers[l] = run.merge(l, parts)
        raise
    results = [results[l] for l in range(len(run.network))]
    radii = [absolute_radius(acts[l + 1], e, run.per_neuron) for l, e in enumerate(run.eps)]
    return results, radii, list(run.eps)


def _cascade(
    run: _Run, acts: list[np.ndarray], runner: JobRunner, counter: JobCounter, resume: Mapping
) -> tuple[list, list, list]:
    """Layer by layer on the pruned network's input; the radius and bound from
    :func:`~nettrim.budgets.cascade_budget`. A resumed layer's weights feed the next layer
    exactly as the solved ones would."""
    results, radii, rel_eps = [], [], []
    X_hat, last = acts[0], len(run.network) - 1
    for l, layer in enumerate(run.network.layers):
        Y = acts[l + 1]
        if l == 0:
            upper, eps_l, relative = None, run.eps[0], True
            radius, relative_eps = absolute_radius(Y, eps_l, run.per_neuron), eps_l
        else:
            radius, upper = cascade_budget(
                layer,
                X_hat,
                Y,
                gamma=run.gammas[l - 1],
                kappa=run.kappa if l == last else 1.0,
                per_neuron=run.per_neuron,
                active_tol=run.options.active_tol,
                cascade_bound=run.cascade_bound,
            )
            eps_l, relative = radius, False
            relative_eps = relative_budget(radius, Y, run.per_neuron)
        if l in resume:
            merged = resume[l]
            counter.layer(l, merged, resumed=True)
        else:
            try:
                merged = _cascade_layer(run, l, runner, counter, (X_hat, Y, upper), eps_l, relative)
            except WorkerDiedError as exc:
                exc.layers = results + [None] * (len(run.network) - l)  # the layers done
                raise
        results.append(merged)
        radii.append(radius)
        rel_eps.append(relative_eps)
        X_hat = layer.with_weights(merged.W, merged.b)(X_hat)
    return results, radii, rel_eps


def _cascade_layer(run: _Run, l: int, runner, counter, arrays, eps_l, relative) -> LayerResult:
    """One cascade layer's jobs, merged (the last layer's infeasibility explained)."""
    X_hat, Y, upper = (runner.share(a) for a in arrays)
    jobs = run.jobs(l, X_hat, Y, upper, eps_l, relative)
    layer, last = run.network[l], len(run.network) - 1

    def on_done(index: int, part: LayerResult) -> None:
        counter.job(l, index, len(jobs), part)

    def on_report(index: int, figures: dict) -> None:
        counter.iteration(l, index, len(jobs), figures)

    reporting = on_report if counter.wants_iterations else None
    try:
        parts = runner.map(_run_layer_job, jobs, on_done=on_done, on_report=reporting, label=_label)
        merged = run.merge(l, parts)
    except LayerSolveError as exc:
        if l != last or run.kappa == 1.0:
            raise
        hint = (
            f"kappa={run.kappa:g} asks the last layer to beat the original weights' "
            "error on the pruned input by that factor, which no weights reach "
            "here; raise kappa"
        )
        raise LayerSolveError(l, exc.result, layer.W.shape, hint) from None
    counter.layer(l, merged)
    return merged


# ---------------------------------------------------------------------------------------
# validation


def _check_inputs(network: Network, X, activations, scheme: str) -> list[np.ndarray]:
    if (X is None) == (activations is None):
        raise ValueError(
            "give exactly one of X (network inputs) or activations "
            "([X, Y_1, ..., Y_L] recorded elsewhere)"
        )
    if X is not None:
        dtype = as_float_dtype(X, *(layer.W for layer in network.layers))
        return network.record(check_network_inputs(network, X, dtype))
    if scheme != "parallel":
        raise ValueError(
            "activations are accepted for scheme='parallel' only: the cascade "
            "scheme needs to run the pruned network, so pass X"
        )
    activations = list(activations)
    if len(activations) != len(network) + 1:
        raise ValueError(
            f"activations has {len(activations)} arrays; expected "
            f"{len(network) + 1}: [X, Y_1, ..., Y_{len(network)}]"
        )
    dtype = as_float_dtype(*activations)
    checked = [check_matrix(f"activations[{i}]", a, dtype) for i, a in enumerate(activations)]
    for i, (a, width) in enumerate(zip(checked, network.dims, strict=True)):
        if a.shape[1] != width:
            raise ValueError(
                f"activations[{i}] has {a.shape[1]} columns but the network has width {width} there"
            )
        if a.shape[0] != checked[0].shape[0]:
            raise ValueError(
                f"activations[{i}] has {a.shape[0]} rows but activations[0] has "
                f"{checked[0].shape[0]}; all must have one row per sample"
            )
    return checked


def _check_run(
    network: Network,
    *,
    scheme: str,
    eps,
    gamma,
    kappa: float,
    cascade_bound: str,
    options: TrimOptions,
    neuron_block: int,
    warm_start,
    reweighting: Reweighting | None,
) -> _Run:
    check_network(network)
    scheme = check_choice("scheme", scheme, SCHEMES)
    cascade_bound = check_choice("cascade_bound", cascade_bound, CASCADE_BOUNDS)
    check_cascade_only(scheme, gamma=gamma, kappa=kappa, cascade_bound=cascade_bound)
    n_layers = len(network)
    return _Run(
        network=network,
        scheme=scheme,
        eps=_check_eps(eps, n_layers, scheme, options.per_neuron, network),
        gammas=_check_gamma(gamma, n_layers) if scheme == "cascade" else (),
        kappa=check_scalar("kappa", kappa, low=0.0, low_inclusive=False, high=1.0),
        cascade_bound=cascade_bound,
        options=options,
        neuron_block=int(check_scalar("neuron_block", neuron_block, low=1, integer=True)),
        warm=_check_warm_start(warm_start, n_layers),
        reweighting=reweighting,
    )


def _check_eps(eps, n_layers: int, scheme: str, per_neuron: bool, network: Network) -> list:
    if isinstance(eps, (list, tuple)):
        if scheme == "cascade":
            raise ValueError(
                "scheme='cascade' takes one eps (the first layer's); gamma sets "
                "the later layers' budgets"
            )
        if len(eps) != n_layers:
            raise ValueError(
                f"eps has {len(eps)} values but the network has {n_layers} "
                "layers; give one eps or one per layer"
            )
        return [
            check_eps(f"eps[{l}]", e, per_neuron=per_neuron, d_out=network[l].W.shape[1])
            for l, e in enumerate(eps)
        ]
    value = check_eps("eps", eps, per_neuron=per_neuron, d_out=network[0].W.shape[1])
    if np.ndim(value) and scheme == "parallel" and n_layers > 1:
        raise ValueError(
            "an array eps is one budget per column of a single layer; for several "
            "layers give a list with one entry per layer"
        )
    return [value] * (n_layers if scheme == "parallel" else 1)


def check_cascade_only(scheme: str, *, gamma, kappa, cascade_bound) -> None:
    """Refuse the cascade's own options under ``scheme="parallel"``, where a value given
    would change nothing without a word (the command line refuses them the same way)."""
    if scheme == "cascade":
        return
    defaults = (("gamma", gamma, DEFAULT_GAMMA), ("kappa", kappa, DEFAULT_KAPPA))
    given = [name for name, value, default in defaults if not _is_number(value, default)]
    if cascade_bound != CASCADE_BOUNDS[0]:
        given.append("cascade_bound")
    if given:
        raise ValueError(
            f"{' and '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to "
            "scheme='cascade' only (the budgets of the "
            "layers after the first); scheme='parallel' gives every layer its eps"
        )


def _is_number(value, number: float) -> bool:
    return np.ndim(value) == 0 and not isinstance(value, (Mapping, str)) and value == number


def _check_gamma(gamma, n_layers: int) -> tuple[float, ...]:
    if np.ndim(gamma) == 0:
        return (check_scalar("gamma", gamma, low=1.0),) * (n_layers - 1)
    gamma = list(gamma)
    if len(gamma) != n_layers - 1:
        raise ValueError(
            f"gamma has {len(gamma)} values; the cascade needs one, or one per "
            f"layer after the first ({n_layers - 1})"
        )
    return tuple(check_scalar(f"gamma[{i}]", g, low=1.0) for i, g in enumerate(gamma))


def _check_layer_options(
    options: TrimOptions | None, layer_options: dict, solver: str, per_neuron: bool
) -> TrimOptions:
    """The run's :class:`TrimOptions`: given whole, or from ``solver``, ``per_neuron`` and
    the layer keywords (the ones the scheme sets per layer refused)."""
    if options is None:
        keywords = {**layer_options, "solver": solver, "per_neuron": per_neuron}
        return TrimOptions.from_keywords("net_trim", keywords, owned=_SET_PER_LAYER)
    if not isinstance(options, TrimOptions):
        raise TypeError(f"options must be a TrimOptions, got {type(options).__name__}")
    if layer_options or solver != "auto" or per_neuron:
        raise TypeError(
            "give the layer options either as options=TrimOptions(...) or as solver=, "
            "per_neuron= and keywords, not both"
        )
    return options


def _check_reweighting(rounds, delta) -> Reweighting | None:
    rounds = int(check_scalar("reweight_rounds", rounds, low=0, integer=True))
    if not rounds:
        return None
    return Reweighting(rounds, check_scalar("reweight_delta", delta, low=0.0, low_inclusive=False))


def _check_cnn_reweighting(rounds, delta) -> dict:
    """The reweighting options a CNN's stages take as layer options (none for 0 rounds)."""
    reweighting = _check_reweighting(rounds, delta)
    if reweighting is None:
        return {}
    return {"reweight_rounds": reweighting.rounds, "reweight_delta": reweighting.delta}


def _check_resume(resume, network: Network) -> dict[int, LayerResult]:
    """``{layer: LayerResult}`` of the layers already solved, each of the layer's shape."""
    if resume is None:
        return {}
    checked = {}
    for l, res in dict(resume).items():
        if not (isinstance(l, (int, np.integer)) and l in network.prunable):
            raise ValueError(
                f"resume has key {l!r}; keys are the positions of layers with weights "
                f"{list(network.prunable)}"
            )
        if not isinstance(res, LayerResult) or res.W is None:
            raise TypeError(f"resume[{l}] must be a LayerResult with weights")
        if res.W.shape != network[l].W.shape:
            raise ValueError(
                f"resume[{l}] has weights of shape {res.W.shape} but layer {l} has "
                f"{network[l].W.shape}"
            )
        checked[int(l)] = res
    return checked


def _check_warm_start(warm_start, n_layers: int) -> list | None:
    if warm_start is None:
        return None
    layers = warm_start.layers if isinstance(warm_start, NetTrimResult) else list(warm_start)
    if len(layers) != n_layers:
        raise ValueError(f"warm_start has {len(layers)} layers; the network has {n_layers}")
    return [(r.W, r.b) if isinstance(r, LayerResult) else tuple(r) for r in layers]


# ---------------------------------------------------------------------------------------
# blocks


def _slice_eps(eps, cols: slice | None):
    if cols is None or np.ndim(eps) == 0:
        return eps
    return np.asarray(eps)[cols]


def _slice_warm(warm: list | None, l: int, cols: slice | None):
    if warm is None or warm[l][0] is None:
        return None
    W, b = warm[l]
    if cols is None:
        return (W, b)
    return (np.asarray(W)[:, cols], None if b is None else np.asarray(b)[cols])


def _label(job: _LayerJob) -> str:
    """What a job does, for an error that names it."""
    columns = "" if job.columns is None else f", columns {job.columns.start}:{job.columns.stop}"
    return f"layer {job.layer}{columns}"


def _merge_blocks(
    l: int, parts: list[LayerResult], cols: list, shape: tuple[int, int], per_neuron: bool
) -> LayerResult:
    """One LayerResult per layer; raises on an infeasible or failed block."""
    for part in parts:
        if part.W is None:
            raise LayerSolveError(l, part, shape)
    for part in parts:
        if part.status in _DEGRADED:
            warnings.warn(
                f"layer {l}: status {part.status.value!r} ({part.status.message})",
                RuntimeWarning,
                stacklevel=3,
            )
            break
    if len(parts) == 1:
        return parts[0]
    infos = [p.info for p in parts]
    worst = max((p.status for p in parts), key=_status_rank)
    info = SolveInfo(
        solver=infos[0].solver,
        objective=sum(i.objective for i in infos),
        iterations=max(i.iterations for i in infos),
        seconds=sum(i.seconds for i in infos),
        residual=float(np.sqrt(sum(i.residual**2 for i in infos))),
        radius=max(i.radius for i in infos),
        ball_excess=max(i.ball_excess for i in infos),
        violation=max(i.violation for i in infos),
        dual_bound=sum(i.dual_bound for i in infos),
        gap=sum(i.gap for i in infos),
        per_column=infos[0].per_column,
        compile_seconds=max(i.compile_seconds for i in infos),
        message=f"{len(parts)} column blocks of layer {l}",
        extra={"blocks": [(c.start, c.stop) for c in cols]},
    )
    W = np.hstack([p.W for p in parts])
    b = None if parts[0].b is None else np.concatenate([p.b for p in parts])
    return LayerResult(W=W, b=b, status=worst, info=info, program=parts[0].program)


def _status_rank(status: Status) -> int:
    order = (
        Status.OPTIMAL,
        Status.INACCURATE,
        Status.MAX_ITER,
        Status.INFEASIBLE,
        Status.SOLVER_ERROR,
    )
    return order.index(status)

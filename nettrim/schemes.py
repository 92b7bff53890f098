"""Net-Trim over a whole network: the parallel and the cascade schemes.

Notation (DESIGN §5): ``Y^(0) = X`` and ``Y^(l)`` the original network's layer outputs,
``Yhat^(l)`` the pruned network's, ``W~_l = [W_l; b_l]``, ``Omega_l = {Y^(l) > active_tol}``.

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

import functools
import inspect
import math
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .executors import DEFAULT_BLAS_THREADS, JobRunner, StoredArray, resolve, split_columns
from .layer import DEFAULT_EPS, LayerResult, trim_layer
from .network import Network
from .reweighted import DEFAULT_DELTA, reweighted_trim_layer
from .solvers import SolveInfo, Status
from .validation import as_float_dtype, check_choice, check_matrix, check_scalar

SCHEMES = ("parallel", "cascade")
#: The reference code's cascade inflation factor.
DEFAULT_GAMMA = 1.1
DEFAULT_KAPPA = 1.0
#: Bounds off Omega of the cascade's ReLU layers: ``"relaxed"`` ``max(V, 0)``, ``"paper"`` ``V``.
CASCADE_BOUNDS = ("relaxed", "paper")
#: Output columns per job in per-neuron mode. Fixed (not derived from ``n_jobs``) so the
#: jobs, and therefore the results, are the same whatever runs them.
DEFAULT_NEURON_BLOCK = 64
#: ``trim_layer`` arguments that the scheme sets itself and a caller may not pass.
_SCHEME_OWNED = frozenset(
    {
        "X",
        "Y",
        "activation",
        "eps",
        "relative",
        "per_neuron",
        "upper",
        "bias",
        "warm_start",
        "solver",
        "verbose",
    }
)
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


@dataclass(frozen=True)
class NetTrimResult:
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

    @property
    def nnz(self) -> int:
        """Non-zero weights of the pruned network (biases not counted)."""
        return self.network.nnz

    @property
    def sparsity(self) -> float:
        """Fraction of the network's weights that are zero (biases not counted)."""
        return 1.0 - self.network.nnz / self.network.size

    @property
    def success(self) -> bool:
        return all(result.status is Status.OPTIMAL for result in self.layers)

    def summary(self) -> str:
        """A per-layer table: shape, non-zeros, sparsity, residual vs radius, status, time."""
        lines = [
            f"{self.scheme} Net-Trim, {len(self.layers)} layers, "
            f"sparsity {self.sparsity:.1%}, {self.seconds:.2f} s"
        ]
        lines.append(
            f"{'layer':>5} {'shape':>10} {'nnz':>8} {'sparsity':>8} "
            f"{'residual':>10} {'radius':>10} {'status':>10} {'seconds':>8}"
        )
        for l, (res, radius) in enumerate(zip(self.layers, self.radii, strict=True)):
            shape = f"{res.W.shape[0]}x{res.W.shape[1]}"
            rad = float(np.linalg.norm(np.atleast_1d(radius)))
            lines.append(
                f"{l:>5} {shape:>10} {res.nnz:>8} {res.sparsity:>8.1%} "
                f"{res.info.residual:>10.4g} {rad:>10.4g} {res.status.value:>10} "
                f"{res.info.seconds:>8.2f}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"NetTrimResult(scheme={self.scheme!r}, layers={len(self.layers)}, "
            f"sparsity={self.sparsity:.3f}, seconds={self.seconds:.2f})"
        )


@dataclass(frozen=True)
class _LayerJob:
    """One job: a layer (or a block of its output columns) and everything to solve it."""

    layer: int
    X: np.ndarray | StoredArray
    Y: np.ndarray | StoredArray
    upper: np.ndarray | StoredArray | None
    columns: slice | None
    activation: str
    eps: Any
    relative: bool
    per_neuron: bool
    bias: bool
    solver: str
    warm_start: tuple[np.ndarray, np.ndarray | None] | None
    options: dict


def _run_layer_job(job: _LayerJob) -> LayerResult:
    """Solve one job (runs in a worker; arrays memory-mapped there)."""
    X, Y, upper = resolve(job.X), resolve(job.Y), resolve(job.upper)
    if job.columns is not None:
        Y = Y[:, job.columns]
        if upper is not None:
            upper = upper[:, job.columns]
    kwargs = dict(job.options)
    if job.warm_start is not None:
        kwargs["warm_start"] = job.warm_start
    rounds = kwargs.pop("reweight_rounds", 0)
    delta = kwargs.pop("reweight_delta", DEFAULT_DELTA)
    solve = trim_layer
    if rounds:
        solve = functools.partial(reweighted_trim_layer, rounds=rounds, delta=delta)
    return solve(
        X,
        Y,
        activation=job.activation,
        eps=job.eps,
        relative=job.relative,
        per_neuron=job.per_neuron,
        bias=job.bias,
        upper=upper,
        solver=job.solver,
        **kwargs,
    )


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
    if not isinstance(network, Network):
        raise TypeError(f"network must be a nettrim.Network, got {type(network).__name__}")
    if len(network) == 0:
        raise ValueError("network has no layers")
    if not network.is_dense:  # convolutions, pooling: one dense program per prunable layer
        from .stages import net_trim_stages

        if activations is not None or warm_start is not None or reweight_rounds:
            raise ValueError(
                "a network with convolutions or pooling takes X (no activations, "
                "warm_start or reweight_rounds)"
            )
        return net_trim_stages(
            network, X, scheme=scheme, eps=eps, gamma=gamma, kappa=kappa,
            cascade_bound=cascade_bound, per_neuron=per_neuron, solver=solver,
            executor=executor, n_jobs=n_jobs, blas_threads=blas_threads, store_dir=store_dir,
            **layer_options,
        )  # fmt: skip
    scheme = check_choice("scheme", scheme, SCHEMES)
    n_layers = len(network)
    acts = _check_inputs(network, X, activations, scheme)
    eps_list = _check_eps(eps, n_layers, scheme, per_neuron, network)
    gammas = _check_gamma(gamma, n_layers) if scheme == "cascade" else ()
    kappa = check_scalar("kappa", kappa, low=0.0, low_inclusive=False, high=1.0)
    cascade_bound = check_choice("cascade_bound", cascade_bound, CASCADE_BOUNDS)
    options = _check_layer_options(layer_options)
    reweight_rounds = int(check_scalar("reweight_rounds", reweight_rounds, low=0, integer=True))
    if reweight_rounds:
        options["reweight_rounds"] = reweight_rounds
        options["reweight_delta"] = check_scalar(
            "reweight_delta", reweight_delta, low=0.0, low_inclusive=False
        )
    warm = _check_warm_start(warm_start, n_layers)
    neuron_block = int(check_scalar("neuron_block", neuron_block, low=1, integer=True))

    def blocks(l: int) -> list[slice | None]:
        d_out = network[l].W.shape[1]
        return list(split_columns(d_out, neuron_block)) if per_neuron else [None]

    if scheme == "parallel":
        max_parallel = sum(len(blocks(l)) for l in range(n_layers))
    else:
        max_parallel = max(len(blocks(l)) for l in range(n_layers))

    results: list[LayerResult] = []
    radii: list[Any] = []
    rel_eps: list[Any] = []
    with JobRunner(
        executor, n_jobs, blas_threads=blas_threads, max_parallel=max_parallel, store_dir=store_dir
    ) as runner:
        if scheme == "parallel":
            shared = [runner.share(a) for a in acts]
            futures = []
            for l in range(n_layers):
                layer = network[l]
                futures.append(
                    [
                        runner.submit(
                            _run_layer_job,
                            _LayerJob(
                                layer=l,
                                X=shared[l],
                                Y=shared[l + 1],
                                upper=None,
                                columns=cols,
                                activation=layer.activation,
                                eps=_slice_eps(eps_list[l], cols),
                                relative=True,
                                per_neuron=per_neuron,
                                bias=layer.b is not None,
                                solver=solver,
                                warm_start=_slice_warm(warm, l, cols),
                                options=options,
                            ),
                        )
                        for cols in blocks(l)
                    ]
                )
            for l in range(n_layers):
                results.append(
                    _merge_blocks(
                        l,
                        [f.result() for f in futures[l]],
                        blocks(l),
                        network[l].W.shape,
                        per_neuron,
                    )
                )
                radii.append(_absolute_radius(acts[l + 1], eps_list[l], per_neuron))
                rel_eps.append(eps_list[l])
        else:
            active_tol = float(options.get("active_tol", 0.0))
            X_hat = acts[0]
            for l in range(n_layers):
                layer, Y = network[l], acts[l + 1]
                if l == 0:
                    upper, eps_l, relative = None, eps_list[0], True
                    radius = _absolute_radius(Y, eps_l, per_neuron)
                    relative_eps = eps_l
                else:
                    V = layer.preactivation(X_hat)
                    R = V - Y
                    if layer.activation == "relu":
                        R = np.where(active_tol < Y, R, 0.0)
                    factor = gammas[l - 1] * (kappa**2 if l == n_layers - 1 else 1.0)
                    if per_neuron:
                        radius = np.sqrt(factor) * np.linalg.norm(R, axis=0)
                        norms = np.linalg.norm(Y, axis=0)
                        relative_eps = np.divide(
                            radius, norms, out=np.zeros_like(radius), where=norms > 0
                        )
                    else:
                        radius = math.sqrt(factor) * float(np.linalg.norm(R))
                        norm = float(np.linalg.norm(Y))
                        relative_eps = radius / norm if norm > 0 else 0.0
                    upper = None
                    if layer.activation == "relu":
                        upper = np.maximum(V, 0.0) if cascade_bound == "relaxed" else V
                    eps_l, relative = radius, False
                shared_X, shared_Y, shared_V = (
                    runner.share(X_hat),
                    runner.share(Y),
                    runner.share(upper),
                )
                futures = [
                    runner.submit(
                        _run_layer_job,
                        _LayerJob(
                            layer=l,
                            X=shared_X,
                            Y=shared_Y,
                            upper=shared_V,
                            columns=cols,
                            activation=layer.activation,
                            eps=_slice_eps(eps_l, cols),
                            relative=relative,
                            per_neuron=per_neuron,
                            bias=layer.b is not None,
                            solver=solver,
                            warm_start=_slice_warm(warm, l, cols),
                            options=options,
                        ),
                    )
                    for cols in blocks(l)
                ]
                try:
                    merged = _merge_blocks(
                        l, [f.result() for f in futures], blocks(l), layer.W.shape, per_neuron
                    )
                except LayerSolveError as exc:
                    if l != n_layers - 1 or kappa == 1.0:
                        raise
                    hint = (
                        f"kappa={kappa:g} asks the last layer to beat the original weights' "
                        "error on the pruned input by that factor, which no weights reach "
                        "here; raise kappa"
                    )
                    raise LayerSolveError(l, exc.result, layer.W.shape, hint) from None
                results.append(merged)
                radii.append(radius)
                rel_eps.append(relative_eps)
                X_hat = layer.with_weights(merged.W, merged.b)(X_hat)

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
        gamma=tuple(gammas),
        kappa=kappa,
        per_neuron=bool(per_neuron),
        seconds=time.perf_counter() - start,
        options={
            "solver": solver,
            "neuron_block": neuron_block,
            **({"cascade_bound": cascade_bound} if scheme == "cascade" else {}),
            **options,
        },
    )


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
        X = check_matrix("X", X, dtype)
        if X.shape[1] != network.dims[0]:
            raise ValueError(
                f"X has {X.shape[1]} columns but the network's first layer "
                f"expects {network.dims[0]} inputs"
            )
        return network.record(X)
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


def _check_eps(eps, n_layers: int, scheme: str, per_neuron: bool, network: Network) -> list:
    def one(name: str, value, d_out: int):
        if np.ndim(value) == 0:
            return check_scalar(name, value, low=0.0)
        if not per_neuron:
            raise ValueError(
                f"{name} has shape {np.shape(value)}; per-column budgets need per_neuron=True"
            )
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (d_out,) or not np.isfinite(value).all() or (value < 0).any():
            raise ValueError(
                f"{name} must hold {d_out} finite values >= 0, got shape {value.shape}"
            )
        return value

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
        return [one(f"eps[{l}]", e, network[l].W.shape[1]) for l, e in enumerate(eps)]
    value = one("eps", eps, network[0].W.shape[1])
    if np.ndim(value) and scheme == "parallel" and n_layers > 1:
        raise ValueError(
            "an array eps is one budget per column of a single layer; for several "
            "layers give a list with one entry per layer"
        )
    return [value] * (n_layers if scheme == "parallel" else 1)


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


def _check_layer_options(options: dict) -> dict:
    allowed = set(inspect.signature(trim_layer).parameters) - _SCHEME_OWNED
    for key in options:
        if key in _SCHEME_OWNED:
            raise TypeError(
                f"net_trim sets {key!r} for every layer itself; it cannot be "
                "passed as a layer option"
            )
        if key not in allowed:
            raise TypeError(
                f"unknown layer option {key!r}; trim_layer accepts {', '.join(sorted(allowed))}"
            )
    return dict(options)


def _check_warm_start(warm_start, n_layers: int) -> list | None:
    if warm_start is None:
        return None
    if "warm_start" not in inspect.signature(trim_layer).parameters:
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


def _absolute_radius(Y: np.ndarray, eps, per_neuron: bool) -> Any:
    """``eps * ||Y||_F``, or ``eps_j * ||y_j||_2`` per column."""
    if per_neuron:
        return np.broadcast_to(np.asarray(eps, np.float64), (Y.shape[1],)) * np.linalg.norm(
            Y, axis=0
        )
    return float(eps) * float(np.linalg.norm(Y))


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

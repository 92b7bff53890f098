"""L0 pruning of a layer or a network: a sparsity budget, a pattern, a method.

Where Net-Trim (:func:`nettrim.trim_layer`) asks for the sparsest weights within a
discrepancy budget, these functions ask for the best reconstruction within a sparsity budget:

(P4)  ``minimize 1/2 ||X~ W~0 - X~ W~||_F^2  s.t.  W in K``  (needs only ``G = X~^T X~``)

(P5)  ``minimize ||(X~ W~ - Y)_Omega||_F^2 + ||(X~ W~ - V)_+ on Omega^c||_F^2  s.t.  W in K``
      (the ReLU-aware loss; needs the samples)

with ``K`` one of the sparsity sets of :mod:`nettrim.solvers.projections`. Methods:
``"admm"`` (ADMM with hard thresholding, ALPS-style, then a refit: the default and the most
accurate), ``"iht"`` (iterative hard thresholding with momentum, then a refit), and the
baselines ``"magnitude"``, ``"wanda"``, ``"sparsegpt"`` (:mod:`nettrim.baselines`).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np

from .executors import DEFAULT_BLAS_THREADS, call_limited, check_blas_threads
from .layer import LayerResult
from .network import ACTIVATIONS, DenseLayer, Network
from .progress import JobCounter, check_progress
from .results import NetworkResult
from .schemes import SCHEMES
from .solvers import baselines
from .solvers.gram import DEFAULT_DAMPING, GramAccumulator
from .solvers.l0 import (
    REFIT_CG_MAX_ITER,
    REFIT_METHODS,
    AdmmL0Settings,
    objective,
    solve_iht,
    solve_l0_admm,
    solve_p5_iht,
)
from .solvers.projections import SparsityPattern, make_pattern
from .solvers.result import L0Info, Status
from .tables import format_columns
from .validation import (
    check_choice,
    check_matrix,
    check_network,
    check_network_inputs,
    check_scalar,
    renamed_argument,
)

FITTING_METHODS = ("admm", "iht")
BASELINES = ("magnitude", "wanda", "sparsegpt")
METHODS = (*FITTING_METHODS, *BASELINES)
#: Patterns each method supports (SparseGPT defines only unstructured and N:M).
METHOD_PATTERNS: dict[str, frozenset[str]] = {
    "admm": frozenset({"unstructured", "per_output", "nm", "inputs", "outputs"}),
    "iht": frozenset({"unstructured", "per_output", "nm", "inputs", "outputs"}),
    "magnitude": frozenset({"unstructured", "per_output", "nm", "inputs", "outputs"}),
    "wanda": frozenset({"unstructured", "per_output", "nm"}),
    "sparsegpt": frozenset({"unstructured", "nm"}),
}
#: Relative asymmetry ``max|G - G^T| / max|G|`` above which a Gram matrix is refused.
SYMMETRY_RTOL = 1e-8
DEFAULT_IHT_ITER = 100
DEFAULT_P5_ITER = 200


def _check_gram(G, dim_options: tuple[int, ...]) -> np.ndarray:
    G = check_matrix("gram", G, np.dtype(np.float64))
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"gram must be a square (d_in, d_in) matrix, got shape {G.shape}")
    if G.shape[0] not in dim_options:
        expected = " or ".join(str(d) for d in dim_options)
        raise ValueError(
            f"gram has shape {G.shape} but W has {dim_options[0]} inputs; expected a square "
            f"matrix of size {expected} (d_in, or d_in + 1 with the bias column)"
        )
    scale = float(np.abs(G).max(initial=0.0))
    asym = float(np.abs(G - G.T).max(initial=0.0))
    if asym > SYMMETRY_RTOL * max(scale, 1e-300):
        raise ValueError(
            f"gram is not symmetric (max |G - G^T| = {asym:.3g}, max |G| = {scale:.3g}); pass X^T X"
        )
    if np.any(np.diag(G) < -SYMMETRY_RTOL * scale):
        raise ValueError("gram has negative diagonal entries; it must be X^T X")
    return 0.5 * (G + G.T)


def _statistics(X, gram, d_in: int, want_bias: bool):
    """``(G, samples, augmented)``: the Gram matrix (augmented when possible and wanted),
    the samples (or ``None``) and whether ``G`` carries the bias column."""
    if X is not None and gram is not None:
        raise ValueError("pass the samples X or a gram matrix, not both")
    if isinstance(X, GramAccumulator):
        if X.d != d_in:
            raise ValueError(f"the GramAccumulator has {X.d} columns but W has {d_in} inputs")
        if X.n_samples == 0:
            raise ValueError("the GramAccumulator has seen no samples; call update() first")
        augmented = want_bias and X.bias
        G = X.gram()
        if X.bias and not augmented:
            G = G[:d_in, :d_in]
        return G, None, augmented
    if gram is not None:
        G = _check_gram(gram, (d_in, d_in + 1))
        augmented = G.shape[0] == d_in + 1
        if augmented and not want_bias:
            G = G[:d_in, :d_in]
            augmented = False
        return G, None, augmented
    if X is None:
        raise ValueError("pass the layer input X (n, d_in), a GramAccumulator, or gram=")
    Xa = check_matrix("X", X, np.dtype(np.float64))
    if Xa.shape[1] != d_in:
        raise ValueError(
            f"X has {Xa.shape[1]} columns but W has {d_in} rows; X must be (n, d_in) with "
            "one column per input of W (W is (d_in, d_out))"
        )
    G = GramAccumulator.from_data(Xa, bias=want_bias).gram()
    return G, Xa, want_bias


def prune_layer(
    X,
    W,
    b=None,
    *,
    gram=None,
    sparsity: float | None = None,
    k: int | None = None,
    pattern: str = "unstructured",
    method: str = "admm",
    activation: str = "linear",
    Y=None,
    upper=None,
    active_tol: float = 0.0,
    damping: float = DEFAULT_DAMPING,
    fit_bias: bool = True,
    max_iter: int | None = None,
    stop_tol: float | None = None,
    tol: float | None = None,
    refit: str = "auto",
    refit_iter: int = REFIT_CG_MAX_ITER,
    warm_start: str | np.ndarray | None = None,
    settings: AdmmL0Settings | None = None,
) -> LayerResult:
    """Prune one dense layer to a sparsity budget by L0-constrained reconstruction.

    With ``X~ = [X, 1]`` and ``W~ = [W; b]`` when the bias is re-fitted (``b`` given,
    ``fit_bias``, a method that fits, and statistics with the ones column), else
    ``X~ = X``, ``W~ = W`` and the bias is kept:

    * ``activation="linear"`` — (P4)::

          minimize 1/2 ||X~ W~0 - X~ W~||_F^2  s.t.  W in K

      on ``G = X~^T X~`` only (samples, a :class:`~nettrim.solvers.gram.GramAccumulator`
      or a Gram matrix).
    * ``activation="relu"`` — (P5), ``Omega = {Y > active_tol}``::

          minimize ||(X~ W~ - Y)_Omega||_F^2 + ||(X~ W~ - V)_+ on Omega^c||_F^2  s.t.  W in K

      by projected gradient (IHT), started from the (P4) solution of ``method``
      (``"admm"`` or ``"iht"``); needs the samples ``X``.

    Parameters
    ----------
    X : array-like of shape (n, d_in), GramAccumulator, or None
        Layer input (one sample per row) or its accumulated statistics. ``None`` with
        ``gram=``.
    W : array-like of shape (d_in, d_out)
        Dense weights (nettrim layout: ``Z = X @ W + b``).
    b : array-like of shape (d_out,), optional
        Bias.
    gram : array-like of shape (d_in, d_in) or (d_in + 1, d_in + 1), optional
        ``X^T X`` (or ``X~^T X~`` with the ones column last) instead of ``X``.
    sparsity : float in [0, 1), optional
        Fraction of units to remove (entries; entries per output for ``"per_output"``;
        inputs for ``"inputs"``; outputs for ``"outputs"``); ``round(sparsity * units)`` are
        removed, so the budget is met exactly. Implied by ``"N:M"``.
    k : int, optional
        Units to keep instead of ``sparsity``.
    pattern : str
        ``"unstructured"``, ``"per_output"``, ``"N:M"`` (e.g. ``"2:4"``: at most N non-zeros
        in every M consecutive inputs of each output; ``d_in`` must be a multiple of M),
        ``"inputs"`` (whole rows of ``W``) or ``"outputs"`` (whole columns).
    method : {"admm", "iht", "magnitude", "wanda", "sparsegpt"}
        Solver or baseline (module docstring). Wanda compares scores per output, so with
        ``"unstructured"`` it keeps the same count in every column. SparseGPT supports
        ``"unstructured"`` and ``"N:M"``.
    activation : {"linear", "relu"}
        Selects (P4) or (P5). The baselines solve neither; they need ``"linear"``.
    Y : array-like of shape (n, d_out), optional
        (P5) targets; ``relu(X W + b)`` of the dense layer when ``None``.
    upper : array-like broadcastable to (n, d_out), optional
        (P5) ``V`` on Omega^c (0 when ``None``).
    active_tol : float
        (P5) threshold defining Omega.
    damping : float
        Relative damping: the solvers use ``G + lam I``, ``lam = damping * mean(diag(G))``
        (``damping`` itself when that mean is 0). It makes a singular ``G`` (dead inputs,
        fewer samples than inputs) well posed; 0.01 is SparseGPT's dampening. The reported
        objective is always the undamped one.
    fit_bias : bool
        Re-fit the bias with the weights (``"admm"``/``"iht"``; the baselines keep it).
    max_iter, stop_tol : optional
        Iteration limit and stopping tolerance of the solver (``"admm"``: the
        support-change fraction at which it stops; ``"iht"`` and (P5): the relative
        decrease).
    tol : optional
        Deprecated name of ``stop_tol``.
    refit : {"auto", "exact", "columns", "cg", "none"}
        Final re-fit of the kept weights on their support (:func:`nettrim.solvers.l0.refit`).
    refit_iter : int
        Conjugate-gradient iterations of the refit when it is done by CG.
    warm_start : {"wanda", "sparsegpt", "magnitude"} or array of shape (d_in, d_out), optional
        Start of ``"admm"``/``"iht"`` (projected onto ``K``); ``H_K`` of the scaled ``W`` when
        ``None``.
    settings : AdmmL0Settings, optional
        Penalty schedule of ``"admm"``.

    Returns
    -------
    LayerResult
        ``W`` exactly in ``K`` (``nnz`` = the budget unless weights are exactly 0), ``b``,
        ``status``, ``info`` (``objective`` = the (P4) or (P5) loss of the returned weights,
        undamped; ``residual`` = ``||X~ W~0 - X~ W~||_F`` for (P4), ``||(X~ W~ - Y)_Omega||_F``
        for (P5); ``violation``: (P5) ``max (X~ W~ - V)_+`` off Omega, 0 for (P4);
        ``extra["relative_error"]`` = ``||X~(W~0 - W~)||^2 / ||X~ W~0||^2``), and
        ``program`` ``"P4"`` or ``"P5"``.

    Examples
    --------
    >>> import numpy as np
    >>> from nettrim import prune_layer
    >>> rng = np.random.default_rng(0)
    >>> X, W = rng.standard_normal((500, 16)), rng.standard_normal((16, 8))
    >>> result = prune_layer(X, W, sparsity=0.5, method="admm")
    >>> result.nnz, result.program
    (64, 'P4')
    """
    started = time.perf_counter()
    stop_tol = renamed_argument("prune_layer", "tol", tol, "stop_tol", stop_tol)
    method = check_choice("method", method, METHODS)
    activation = check_choice("activation", activation, ACTIVATIONS)
    refit = check_choice("refit", refit, REFIT_METHODS)
    W0, b0, out_dtype = _check_weights(W, b)
    d_in, d_out = W0.shape
    damping = check_scalar("damping", damping, low=0.0)
    if max_iter is not None:
        max_iter = int(check_scalar("max_iter", max_iter, low=1, integer=True))
    if stop_tol is not None:
        stop_tol = check_scalar("stop_tol", stop_tol, low=0.0, low_inclusive=False)
    refit_iter = int(check_scalar("refit_iter", refit_iter, low=0, integer=True))
    K = make_pattern(pattern, (d_in, d_out), sparsity=sparsity, k=k)
    _check_method(method, K, pattern, activation)
    fits = method in FITTING_METHODS
    G, samples, augmented = _statistics(X, gram, d_in, b0 is not None and fits and fit_bias)
    if activation == "relu" and samples is None:
        raise ValueError("activation='relu' (P5) needs the samples X, not Gram statistics")
    if not fits:
        Wp = _baseline(method, G, W0.astype(out_dtype) if method == "sparsegpt" else W0, K, damping)
        return _baseline_result(method, G, W0, b0, Wp.astype(np.float64), out_dtype, started)

    W0a = np.vstack([W0, b0[None, :]]) if augmented else W0
    start = _warm_start(warm_start, G, W0, K, damping, d_in, d_out)
    if augmented and start is not None:
        start = np.vstack([start, b0[None, :]])
    common = dict(
        n_free=1 if augmented else 0,
        damping=damping,
        W_init=start,
        refit_method=refit,
        refit_iter=refit_iter,
    )
    if method == "admm":
        st = _admm_settings(settings, out_dtype, max_iter, stop_tol)
        result = solve_l0_admm(G, W0a, K, settings=st, **common)
    else:
        tol_iht = stop_tol if stop_tol is not None else 1e-7
        result = solve_iht(G, W0a, K, max_iter=max_iter or DEFAULT_IHT_ITER, tol=tol_iht, **common)
    program = "P4"
    if activation == "relu":
        result = _solve_p5(
            samples,
            W0a,
            b0,
            augmented,
            result.W,
            K,
            Y,
            upper,
            active_tol,
            max_iter,
            stop_tol,
            result,
        )
        program = "P5"
    x = result.W
    Wout = np.ascontiguousarray(x[:d_in]).astype(out_dtype, copy=False)
    bout = None
    if b0 is not None:
        bout = (x[d_in] if augmented else b0).astype(out_dtype, copy=True)
    info = _with_seconds(result.info, time.perf_counter() - started)
    return LayerResult(W=Wout, b=bout, status=result.status, info=info, program=program)


def _check_method(method: str, K: SparsityPattern, pattern: str, activation: str) -> None:
    """Whether ``method`` supports the pattern and the program."""
    if K.kind not in METHOD_PATTERNS[method]:
        raise ValueError(
            f"method={method!r} does not support pattern {pattern!r}; it supports "
            + ", ".join(sorted(METHOD_PATTERNS[method]))
        )
    if activation == "relu" and method not in FITTING_METHODS:
        raise ValueError(
            f"activation='relu' solves (P5) by IHT from an 'admm' or 'iht' start; the baseline "
            f"{method!r} solves neither program — use activation='linear'"
        )


def _check_weights(W, b) -> tuple[np.ndarray, np.ndarray | None, np.dtype]:
    """``W`` and ``b`` as float64 arrays, and the dtype the result is returned in."""
    W_in = np.asarray(W)
    out_dtype = W_in.dtype if W_in.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    W0 = check_matrix("W", W_in, np.dtype(np.float64))
    d_out = W0.shape[1]
    b0 = None
    if b is not None:
        b0 = np.asarray(b, dtype=np.float64)
        if b0.shape != (d_out,):
            raise ValueError(
                f"b has shape {b0.shape} but W has {d_out} outputs; b must be ({d_out},)"
            )
        if not np.isfinite(b0).all():
            raise ValueError("b contains NaN or infinite values; all must be finite")
    return W0, b0, out_dtype


def _admm_settings(settings, out_dtype, max_iter, stop_tol) -> AdmmL0Settings:
    """``settings`` (or the defaults) with ``prune_layer``'s own arguments applied."""
    st = settings or AdmmL0Settings()
    changes = {}
    if st.dtype == "auto":  # W0 was converted to float64: keep the caller's precision
        changes["dtype"] = np.dtype(out_dtype).name
    if max_iter is not None:
        changes["max_iter"] = max_iter
        changes["min_iter"] = min(st.min_iter, max_iter)
    if stop_tol is not None:
        changes["stop_change"] = stop_tol
    return replace(st, **changes) if changes else st


def _baseline(method: str, G: np.ndarray, W0: np.ndarray, K: SparsityPattern, damping: float):
    """The baseline ``method``'s weights (``"magnitude"``, ``"wanda"``, ``"sparsegpt"``)."""
    d_in = W0.shape[0]
    if method == "magnitude":
        return baselines.magnitude(W0, K)
    if method == "wanda":
        return baselines.wanda(W0, np.sqrt(np.maximum(np.diag(G)[:d_in], 0.0)), K)
    return baselines.sparsegpt(G[:d_in, :d_in], W0, K, damping=damping)


def _warm_start(warm_start, G, W0, K: SparsityPattern, damping, d_in, d_out):
    if warm_start is None:
        return None
    if isinstance(warm_start, str):
        choice = check_choice("warm_start", warm_start, BASELINES)
        if choice == "sparsegpt" and K.kind not in METHOD_PATTERNS["sparsegpt"]:
            raise ValueError(f"warm_start='sparsegpt' does not support pattern {K.label!r}")
        return _baseline(choice, G, W0, K, damping)
    start = check_matrix("warm_start", warm_start, np.dtype(np.float64))
    if start.shape != (d_in, d_out):
        raise ValueError(f"warm_start has shape {start.shape}; expected ({d_in}, {d_out})")
    return start


def _solve_p5(
    samples, W0a, b0, augmented, W_start, K, Y, upper, active_tol, max_iter, tol, p4_result
):
    n = samples.shape[0]
    Xa = np.hstack([samples, np.ones((n, 1))]) if augmented else samples
    d_out = W0a.shape[1]
    if Y is None:
        Z = samples @ W0a[: samples.shape[1]]
        if b0 is not None:
            Z = Z + b0
        Yv = np.maximum(Z, 0.0)
    else:
        Yv = check_matrix("Y", Y, np.dtype(np.float64))
        if Yv.shape != (n, d_out):
            raise ValueError(f"Y has shape {Yv.shape}; expected ({n}, {d_out}) (n, d_out)")
        if (Yv < 0).any():
            raise ValueError("Y must be the ReLU layer's outputs (>= 0) for activation='relu'")
    active_tol = check_scalar("active_tol", active_tol, low=0.0)
    active = Yv > active_tol
    Yv = np.where(active, Yv, 0.0)
    if upper is None:
        V = np.zeros_like(Yv)
    else:
        try:
            V = np.broadcast_to(np.asarray(upper, dtype=np.float64), Yv.shape).copy()
        except ValueError:
            raise ValueError(
                f"upper has shape {np.shape(upper)}, which does not broadcast to {Yv.shape}"
            ) from None
        if np.isnan(V).any():
            raise ValueError("upper must not contain NaN")
    if not augmented and b0 is not None:  # the kept bias shifts the targets
        Yv_fit, V_fit = Yv - b0, V - b0
        Yv_fit = np.where(active, Yv_fit, 0.0)
    else:
        Yv_fit, V_fit = Yv, V
    res = solve_p5_iht(
        Xa,
        Yv_fit,
        W_start,
        K,
        active=active,
        upper=V_fit,
        n_free=1 if augmented else 0,
        max_iter=max_iter or DEFAULT_P5_ITER,
        tol=tol if tol is not None else 1e-7,
    )
    extra = dict(res.info.extra)
    extra["p4_objective"] = p4_result.info.objective
    extra["p4_iterations"] = p4_result.info.iterations
    return replace(res, info=replace(res.info, extra=extra))


def _with_seconds(info: L0Info, seconds: float) -> L0Info:
    return replace(info, seconds=seconds)


def _baseline_result(method, G, W0, b0, Wp, out_dtype, started) -> LayerResult:
    d_in = W0.shape[0]
    Gw = G[:d_in, :d_in]
    f = objective(Gw, W0, Wp)
    base = 0.5 * float(np.vdot(W0, Gw @ W0))
    info = L0Info(
        solver=method,
        objective=f,
        iterations=0,
        seconds=time.perf_counter() - started,
        residual=float(np.sqrt(max(2.0 * f, 0.0))),
        violation=0.0,
        message=Status.OPTIMAL.message,
        extra={"relative_error": f / base if base > 0 else 0.0, "nnz": int(np.count_nonzero(Wp))},
    )
    b = None if b0 is None else b0.astype(out_dtype, copy=True)
    return LayerResult(
        W=Wp.astype(out_dtype, copy=False), b=b, status=Status.OPTIMAL, info=info, program="P4"
    )


@dataclass(frozen=True, repr=False)
class PruneNetworkResult(NetworkResult):
    """A network pruned by :func:`prune_network`, with the per-layer results.

    Attributes
    ----------
    network : Network
        The pruned network (layers not pruned are kept as they were).
    layers : tuple of LayerResult or None
        One per layer (``None`` for a layer not pruned).
    scheme : {"cascade", "parallel"}
    seconds : float
        Wall time of the run.

    Notes
    -----
    Unpacking as ``network, results = prune_network(...)`` (the old return value) still
    works, with a ``DeprecationWarning``.
    """

    network: Network
    layers: tuple[LayerResult | None, ...]
    scheme: str
    seconds: float = 0.0

    def summary(self) -> str:
        """A per-layer table: shape, program, non-zeros, sparsity, objective, status, time."""
        rows = []
        for l, (res, layer) in enumerate(zip(self.layers, self.network.layers, strict=True)):
            shape = f"{layer.W.shape[0]}x{layer.W.shape[1]}"
            if res is None:
                rows.append((l, shape, "-", layer.nnz, "-", "-", "kept dense", "-"))
                continue
            rows.append(
                (
                    l,
                    shape,
                    res.program,
                    res.nnz,
                    f"{res.sparsity:.1%}",
                    f"{res.info.objective:.4g}",
                    res.status.value,
                    f"{res.info.seconds:.2f}",
                )
            )
        return "\n".join([self._headline("L0 pruning"), *format_columns(_SUMMARY_COLUMNS, rows)])

    def __iter__(self):
        warnings.warn(
            "prune_network returns a PruneNetworkResult; unpacking it as (network, results) "
            "is deprecated: use result.network and result.layers",
            DeprecationWarning,
            stacklevel=2,
        )
        return iter((self.network, list(self.layers)))


#: The columns of :meth:`PruneNetworkResult.summary`.
_SUMMARY_COLUMNS = (
    ("layer", 5),
    ("shape", 10),
    ("program", 7),
    ("nnz", 8),
    ("sparsity", 8),
    ("objective", 10),
    ("status", 10),
    ("seconds", 8),
)


def prune_network(
    network: Network,
    X,
    *,
    sparsity: float | Sequence[float] | None = None,
    pattern: str = "unstructured",
    method: str = "admm",
    scheme: str | None = None,
    sequential: bool | None = None,
    activation: str = "linear",
    layers: Sequence[int] | None = None,
    executor: Executor | None = None,
    blas_threads: int | None = DEFAULT_BLAS_THREADS,
    progress=None,
    resume: Mapping[int, LayerResult] | None = None,
    **options,
) -> PruneNetworkResult:
    """Prune every (or the chosen) layer of a dense network with :func:`prune_layer`.

    * ``scheme="cascade"`` (the default; SparseGPT's driver): layer ``l`` is fitted on the
      outputs of the already pruned layers ``0..l-1`` — (P4) keeps ``X^_l W_l`` with the
      original ``W_l`` applied to the pruned input ``X^_l``. In-process, one layer after
      another.
    * ``scheme="parallel"``: every layer sees the original network's input to it. Layers
      are independent; with an ``executor`` (any :class:`concurrent.futures.Executor`)
      they are submitted as separate jobs.

    The scheme words are :func:`~nettrim.net_trim`'s (``docs/l0.md``, "Networks").

    Parameters
    ----------
    network : Network
    X : array-like of shape (n, d_0)
        Calibration inputs of the network.
    sparsity : float or sequence of float, optional
        Per-layer budget (one value for every layer, or one per pruned layer); implied for
        ``"N:M"``.
    pattern, method : str
        As in :func:`prune_layer` (the same for every layer).
    scheme : {"cascade", "parallel"}
        Inputs from the pruned layers before (cascade) or from the original network.
    sequential : bool, optional
        Deprecated: ``True`` is ``scheme="cascade"``, ``False`` ``scheme="parallel"``.
    activation : {"linear", "relu"}
        ``"relu"`` solves (P5) on the ReLU layers (targets: the dense layer's outputs on the
        same inputs); linear layers always get (P4).
    layers : sequence of int, optional
        Indices of the layers to prune (all when ``None``); the others are kept dense.
    executor : concurrent.futures.Executor, optional
        Runs the layers of the parallel scheme as jobs (ignored by the cascade).
    blas_threads : int or None
        BLAS threads of every layer's solve (1 by default), set inside the job wherever it
        runs, as in :func:`~nettrim.net_trim`: the float32 iterations of the L0 methods sum
        in an order that depends on BLAS's thread count, so the same weights come out
        in-process and on any executor only at the same count. ``None``: the process's own.
    progress : callable, optional
        Called with a :class:`~nettrim.progress.ProgressEvent` as each layer finishes.
    resume : mapping of int to LayerResult, optional
        Layers already pruned by an interrupted run of the same call
        (:class:`nettrim.runs.RunDirectory`): not pruned again; the result is the
        uninterrupted run's, bit for bit.
    **options
        Further keyword arguments of :func:`prune_layer` (``damping``, ``max_iter``, ...).

    Returns
    -------
    PruneNetworkResult
        ``network`` (the pruned network), ``layers`` (one LayerResult per layer, ``None``
        for layers not pruned), ``success``, ``summary()``.
    """
    started = time.perf_counter()
    if sequential is not None:
        old = "cascade" if sequential else "parallel"
        scheme = renamed_argument("prune_network", "sequential", old, "scheme", scheme)
    scheme = check_choice("scheme", "cascade" if scheme is None else scheme, SCHEMES)
    check_network(network)
    activation = check_choice("activation", activation, ACTIVATIONS)
    X = check_network_inputs(network, X, np.dtype(np.float64))
    budgets = _check_budgets(sparsity, layers, len(network))
    shapes = {f"layer {l}": (network[l].W.shape, budgets[l]) for l in budgets}
    check_layer_budgets(pattern, shapes, options.get("k"))
    resume = {int(l): r for l, r in (resume or {}).items()}
    if any(l not in budgets for l in resume):
        raise ValueError(f"resume names layers {sorted(resume)}; only {sorted(budgets)} are pruned")
    counter = JobCounter(
        check_progress(progress), len(network), sum(l not in resume for l in budgets)
    )

    blas_threads = check_blas_threads(blas_threads)

    def kwargs_for(i: int) -> dict:
        layer = network[i]
        act = "relu" if (activation == "relu" and layer.activation == "relu") else "linear"
        kwargs = dict(sparsity=budgets[i], pattern=pattern, method=method, activation=act)
        return {"blas_threads": blas_threads, **kwargs, **options}

    for l, res in resume.items():
        counter.layer(l, res, resumed=True)
    if scheme == "cascade":
        results = _prune_cascade(network, X, budgets, kwargs_for, counter, resume)
    else:
        results = _prune_parallel(network, X, budgets, kwargs_for, executor, counter, resume)
    new_layers = tuple(
        layer if res is None else DenseLayer(res.W, res.b, layer.activation)
        for layer, res in zip(network.layers, results, strict=True)
    )
    return PruneNetworkResult(
        network=Network(new_layers),
        layers=tuple(results),
        scheme=scheme,
        seconds=time.perf_counter() - started,
    )


def check_layer_budgets(
    pattern: str, layers: Mapping[str, tuple[tuple[int, int], float | None]], k: int | None
) -> None:
    """Each layer's budget checked against its shape before any job starts, the error
    naming the layer: ``layers`` maps a name (``"layer 2"``, ``"module 'fc1'"``) to the
    layer's ``(d_in, d_out)`` and sparsity (an N:M pattern needs ``d_in`` a multiple of M)."""
    for name, (shape, sparsity) in layers.items():
        try:
            make_pattern(pattern, shape, sparsity=sparsity, k=k)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


def _check_budgets(sparsity, layers, n_layers: int) -> dict[int, float | None]:
    """``{layer index: sparsity}`` for the layers to prune."""
    chosen = list(range(n_layers)) if layers is None else sorted({int(i) for i in layers})
    if any(not (0 <= i < n_layers) for i in chosen):
        raise ValueError(f"layers must be indices in [0, {n_layers}), got {layers!r}")
    if sparsity is None or np.isscalar(sparsity):
        return dict.fromkeys(chosen, sparsity)
    values = list(sparsity)
    if len(values) != len(chosen):
        raise ValueError(f"sparsity has {len(values)} values but {len(chosen)} layers are pruned")
    return dict(zip(chosen, values, strict=True))


def _done(counter: JobCounter, i: int, res: LayerResult) -> LayerResult:
    counter.job(i, 0, 1, res)
    counter.layer(i, res)
    return res


def _layer_job(X, W, b, *, blas_threads: int | None, **kwargs) -> LayerResult:
    """:func:`prune_layer` with BLAS limited inside the job, wherever it runs."""
    return call_limited(functools.partial(prune_layer, **kwargs), blas_threads, X, W, b)


def _prune_cascade(
    network: Network, X, budgets: dict, kwargs_for, counter: JobCounter, resume: dict
) -> list[LayerResult | None]:
    """Layer by layer, each on the outputs of the pruned layers before it."""
    results: list[LayerResult | None] = [None] * len(network)
    current = X
    for i, layer in enumerate(network.layers):
        if i in budgets:
            res = resume.get(i)
            if res is None:
                res = _done(counter, i, _layer_job(current, layer.W, layer.b, **kwargs_for(i)))
            results[i] = res
            layer = DenseLayer(res.W, res.b, layer.activation)
        current = layer(current)
    return results


def _prune_parallel(
    network: Network,
    X,
    budgets: dict,
    kwargs_for,
    executor: Executor | None,
    counter: JobCounter,
    resume: dict,
) -> list[LayerResult | None]:
    """Every chosen layer on the original network's input to it; jobs on ``executor``."""
    results: list[LayerResult | None] = [resume.get(i) for i in range(len(network))]
    inputs = network.record(X)[:-1]
    todo = [i for i in budgets if i not in resume]
    if executor is None:
        for i in todo:
            res = _layer_job(inputs[i], network[i].W, network[i].b, **kwargs_for(i))
            results[i] = _done(counter, i, res)
        return results
    futures = {
        i: executor.submit(_layer_job, inputs[i], network[i].W, network[i].b, **kwargs_for(i))
        for i in todo
    }
    for i in todo:
        results[i] = _done(counter, i, futures[i].result())
    return results

"""Net-Trim on one layer: from recorded arrays to a program, a solve, and sparse weights.

``trim_layer`` checks its options once into a :class:`TrimOptions` and hands it, unchanged,
to :func:`solve_layer`; the schemes, the reweighting and the tuners build the same object at
their own boundary and call :func:`solve_layer` (or :func:`prepare_layer`) with it
(``docs/architecture.md``, "One trim_layer call").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from .budgets import absolute_radius
from .network import ACTIVATIONS
from .solvers import (
    EXACT_SOLVERS,
    L0Info,
    NetTrimProblem,
    SolveInfo,
    SolverResult,
    Status,
    solve_exact,
)
from .solvers.admm import AdmmCallback, AdmmSettings, solve_admm
from .validation import (
    as_float_dtype,
    check_choice,
    check_matrix,
    check_same_rows,
    check_scalar,
)

SOLVERS = ("auto", "admm", *EXACT_SOLVERS)
DEFAULT_EPS = 0.05
#: What ``solver="auto"`` runs: Clarabel for layers of at most ``AUTO_EXACT_MAX_ENTRIES``
#: output entries ``n * d_out``, the ADMM above. Measured side by side
#: (benchmarks/results/admm.md, "size rule" table): Clarabel was faster at 60 samples x 5
#: outputs (300 entries), the ADMM from 100 x 10 (1000 entries) up.
AUTO_SOLVER = "admm"
AUTO_EXACT_SOLVER = "clarabel"
AUTO_EXACT_MAX_ENTRIES = 500
#: Arrays whose largest magnitude lies in ``[2^-SAFE_EXPONENT, 2^SAFE_EXPONENT]`` are solved
#: as given (bit for bit); outside, :class:`Scaling` rescales them by an exact power of two.
SAFE_EXPONENT = 20


@dataclass(frozen=True)
class LayerResult:
    """A pruned layer: exactly sparse weights with the status and figures of the solve.

    Attributes
    ----------
    W : ndarray of shape (d_in, d_out), or None
        Pruned weights (``None`` when the program is infeasible or the solver failed).
    b : ndarray of shape (d_out,), or None
        Pruned bias (``None`` also when the layer was fitted without one).
    status : Status
        ``"optimal"``, ``"inaccurate"``, ``"max_iter"``, ``"infeasible"``, ``"solver_error"``.
    info : SolveInfo
        Objective, iterations, seconds, realized residual, radius, ball excess and largest
        violation on Omega^c — all measured on the returned ``W`` and ``b``.
    program : str
        ``"P1"`` (ReLU, constrained), ``"P2"`` (linear, constrained) or ``"P3"`` (penalized).
    """

    W: np.ndarray | None
    b: np.ndarray | None
    status: Status
    info: SolveInfo
    program: str

    @property
    def success(self) -> bool:
        """Whether the solve ended ``"optimal"``."""
        return self.status is Status.OPTIMAL

    @property
    def nnz(self) -> int:
        """Non-zero weights in ``W`` (the bias is not counted)."""
        return 0 if self.W is None else int(np.count_nonzero(self.W))

    @property
    def sparsity(self) -> float:
        """Fraction of ``W``'s entries that are exactly zero (``nan`` without weights)."""
        if self.W is None:
            return float("nan")
        return 1.0 - self.nnz / self.W.size

    @property
    def _shape(self) -> str:
        return "none" if self.W is None else f"{self.W.shape[0]}x{self.W.shape[1]}"

    def summary(self) -> str:
        """One line: program, shape, status, sparsity, residual against its radius (the
        relative error for programs without one: penalized, L0), solver."""
        return (
            f"{self.program} {self._shape}: status {self.status.value}, sparsity "
            f"{self.sparsity:.1%}, residual {self.info.residual:.4g} ({self._budget()}), "
            f"{self.info.solver}, {self.info.seconds:.2f} s"
        )

    def _budget(self) -> str:
        """What the residual is measured against: a Net-Trim ball's radius
        (:meth:`.SolveInfo.budget`); for an L0 program (no ball) its relative error, or its
        violation off Omega ((P5))."""
        info = self.info
        if isinstance(info, L0Info):
            if "relative_error" in info.extra:
                return f"relative error {info.extra['relative_error']:.4g}"
            return f"violation {info.violation:.4g}"
        return info.budget()

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"LayerResult({self.program}, W={self._shape}, status={self.status.value!r}, "
            f"sparsity={self.sparsity:.3f}, residual={self.info.residual:.4g}, "
            f"radius={self.info.radius:.4g}, solver={self.info.solver!r})"
        )


@dataclass(frozen=True)
class TrimOptions:
    """Everything :func:`trim_layer` takes besides the arrays, checked once.

    Built at a public boundary (``trim_layer``, ``reweighted_trim_layer``, ``net_trim``, the
    tuners) and passed unchanged inward; a scheme derives a layer's options with
    ``dataclasses.replace(options, activation=..., eps=..., relative=..., bias=...)`` (the
    :attr:`LAYER_FIELDS`), a tuner with ``replace(options, eps=...)``. The fields mean what
    :func:`trim_layer`'s parameters of the same names mean. Checks that need the arrays
    (``eps`` against ``Y``'s columns, the backend ``"auto"`` picks) are made by
    :func:`prepare_layer`.
    """

    activation: str = "relu"
    eps: float | np.ndarray = DEFAULT_EPS
    relative: bool = True
    per_neuron: bool = False
    bias: bool = True
    penalize_bias: bool = True
    penalty: float | None = None
    active_tol: float = 0.0
    solver: str = "auto"
    tol: float | None = None
    max_iter: int | None = None
    verbose: bool = False
    solver_options: Mapping[str, Any] | None = None

    #: What describes one layer rather than the run: a scheme sets these for every layer.
    LAYER_FIELDS: ClassVar[tuple[str, ...]] = ("activation", "eps", "relative", "bias")

    def __post_init__(self) -> None:
        checked = {
            "activation": check_choice("activation", self.activation, ACTIVATIONS),
            "solver": check_choice("solver", self.solver, SOLVERS),
            "eps": check_eps("eps", self.eps, per_neuron=self.per_neuron),
            "active_tol": check_scalar("active_tol", self.active_tol, low=0.0),
        }
        if self.penalty is not None:
            checked["penalty"] = check_scalar("penalty", self.penalty, low=0.0, low_inclusive=False)
        if self.tol is not None:
            checked["tol"] = check_scalar("tol", self.tol, low=0.0, low_inclusive=False)
        if self.max_iter is not None:
            checked["max_iter"] = int(check_scalar("max_iter", self.max_iter, low=1, integer=True))
        if self.solver_options is not None:
            checked["solver_options"] = dict(self.solver_options)
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: the checked value replaces the given

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_keywords(
        cls, caller: str, keywords: Mapping[str, Any], *, owned: Iterable[str] = ()
    ) -> TrimOptions:
        """The options named by a caller's ``**keywords``; ``owned`` are the names the caller
        sets itself (a ``TypeError`` names any of them, and any unknown name)."""
        owned = set(owned)
        for key in keywords:
            if key in owned:
                raise TypeError(
                    f"{caller} sets {key!r} for every layer itself; it cannot be passed as a "
                    "layer option"
                )
            if key not in cls.names():
                allowed = ", ".join(sorted(set(cls.names()) - owned))
                raise TypeError(f"unknown layer option {key!r}; trim_layer accepts {allowed}")
        return cls(**keywords)

    @property
    def program(self) -> str:
        """``"P1"`` (ReLU, constrained), ``"P2"`` (linear, constrained), ``"P3"`` (penalized)."""
        if self.penalty is not None:
            return "P3"
        return "P1" if self.activation == "relu" else "P2"

    def admm_settings(self) -> AdmmSettings:
        """:class:`AdmmSettings` from ``tol`` (the relative duality gap, ``gap_tol``),
        ``max_iter`` and ``solver_options`` (field names; an unknown one raises
        ``ValueError`` naming it)."""
        changes = dict(self.solver_options or {})
        if self.tol is not None:
            changes.setdefault("gap_tol", self.tol)
        if self.max_iter is not None:
            changes.setdefault("max_iter", self.max_iter)
        try:
            return AdmmSettings().updated(**changes)
        except TypeError as exc:
            raise ValueError(f"solver_options: {exc}") from None


def relative_discrepancy(out: np.ndarray, Y: np.ndarray) -> float:
    """``||out - Y||_F / ||Y||_F`` (0 when ``Y`` is 0): how far outputs drift, relatively."""
    norm = float(np.linalg.norm(Y))
    return float(np.linalg.norm(out - Y)) / norm if norm > 0 else 0.0


def check_eps(name: str, eps, *, per_neuron: bool, d_out: int | None = None):
    """A budget ``>= 0``: a scalar, or (``per_neuron`` only) one finite value per column.

    ``d_out``, when known, is the number of columns an array must have.
    """
    if np.ndim(eps) == 0:
        return check_scalar(name, eps, low=0.0)
    if not per_neuron:
        raise ValueError(
            f"{name} has shape {np.shape(eps)}; one eps per output needs per_neuron=True, "
            "otherwise pass a scalar"
        )
    eps = np.asarray(eps, dtype=np.float64)
    if eps.ndim != 1 or (d_out is not None and eps.shape != (d_out,)):
        expected = f"({d_out},)" if d_out is not None else "(d_out,)"
        raise ValueError(
            f"{name} has shape {eps.shape}"
            + (f" but Y has {d_out} columns" if d_out is not None else "")
            + f"; per-neuron eps must have shape {expected}"
        )
    if not np.isfinite(eps).all() or (eps < 0).any():
        raise ValueError(f"{name} must be finite and >= 0 in every column")
    return eps


def build_problem(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    activation: str,
    eps: float | np.ndarray,
    relative: bool,
    per_neuron: bool,
    bias: bool,
    penalize_bias: bool,
    upper: np.ndarray | None,
    penalty: float | None,
    active_tol: float,
    bias_weight: float = 1.0,
) -> NetTrimProblem:
    """The program for validated arrays (``X`` ``(n, d_in)``, ``Y`` ``(n, d_out)``).

    ``bias_weight`` is the L1 weight of a penalized bias row (1 for the program as stated;
    :class:`Scaling` sets another for the rescaled equivalent).
    """
    n = X.shape[0]
    dtype = X.dtype
    X_aug = np.hstack([X, np.ones((n, 1), dtype)]) if bias else X
    l1_weights = np.ones(X_aug.shape[1], dtype=np.float64)
    if bias:
        l1_weights[-1] = bias_weight if penalize_bias else 0.0
    active = None
    if activation == "relu":
        active = active_tol < Y
    if relative:
        radius = absolute_radius(Y, eps, per_neuron)
    elif per_neuron:
        radius = np.broadcast_to(np.asarray(eps, dtype=np.float64), (Y.shape[1],)) * 1.0
    else:
        radius = float(eps)
    if activation == "relu" and active_tol > 0:
        # entries at or below the threshold are not fitted: the target there is 0
        Y = np.where(active, Y, 0.0).astype(dtype, copy=False)
    return NetTrimProblem(
        X=X_aug,
        Y=Y,
        active=active,
        upper=upper,
        radius=radius,
        l1_weights=l1_weights,
        penalty=penalty,
    )


def safe_exponent(array: np.ndarray) -> int:
    """The power of two ``k`` that :class:`Scaling` multiplies ``array`` by: 0 when
    ``max |array|`` lies in ``[2^-SAFE_EXPONENT, 2^SAFE_EXPONENT]`` (or is 0), otherwise the
    ``k`` that brings it into ``[1/2, 1)``."""
    peak = float(np.abs(array).max(initial=0.0))
    if peak == 0.0 or math.ldexp(1.0, -SAFE_EXPONENT) <= peak <= math.ldexp(1.0, SAFE_EXPONENT):
        return 0
    return -math.frexp(peak)[1]  # peak = m * 2**exponent with 1/2 <= m < 1


@dataclass(frozen=True)
class Scaling:
    """The layer solved at ``X' = 2^x X``, ``Y' = 2^y Y``: the same program, well scaled.

    Products of values near ``1e150`` (or ``1e-150``, or float32's range limits) overflow or
    underflow inside any solver; powers of two rescale exactly. With ``a = 2^x``, ``s = 2^y``
    the weights ``W' = (s/a) W``, ``b' = s b`` are feasible for ``(X', Y', s V, s radius)``
    exactly when ``(W, b)`` are for the given program, and the given objective
    ``||W||_1 + ||b||_1`` is ``(a/s) (||W'||_1 + ||b'||_1 / a)``: the rescaled program weighs
    a penalized bias row by ``1/a`` (and a penalty ``lam`` becomes ``lam / (a s)``). The
    minimizers correspond one to one; :meth:`weights` and :meth:`info` map back.
    ``x = y = 0`` (every well-scaled layer, see :func:`safe_exponent`) changes nothing.
    """

    x: int = 0
    y: int = 0

    @classmethod
    def of(cls, X: np.ndarray, Y: np.ndarray) -> Scaling:
        return cls(safe_exponent(X), safe_exponent(Y))

    @property
    def identity(self) -> bool:
        return self.x == 0 and self.y == 0

    def weights(self, x_aug: np.ndarray, bias: bool, *, inward: bool = False) -> np.ndarray:
        """Augmented weights of the rescaled program mapped back (``inward``: to it)."""
        if self.identity:
            return x_aug
        sign = -1 if inward else 1
        out = np.empty_like(x_aug)
        d_in = x_aug.shape[0] - (1 if bias else 0)
        out[:d_in] = np.ldexp(x_aug[:d_in], sign * (self.x - self.y))
        if bias:
            out[d_in:] = np.ldexp(x_aug[d_in:], sign * -self.y)
        return out

    def info(self, info: SolveInfo) -> SolveInfo:
        """The rescaled solve's figures in the given program's units."""
        if self.identity:
            return info
        objective, discrepancy = self.x - self.y, -self.y  # the factors a/s and 1/s

        def back(value: float, exponent: int) -> float:
            with np.errstate(over="ignore"):
                return float(np.ldexp(value, exponent))

        return replace(
            info,
            objective=back(info.objective, objective),
            dual_bound=back(info.dual_bound, objective),
            gap=back(info.gap, objective),
            residual=back(info.residual, discrepancy),
            radius=back(info.radius, discrepancy),
            ball_excess=back(info.ball_excess, discrepancy),
            violation=back(info.violation, discrepancy),
            extra={**info.extra, "scaling": (self.x, self.y)},
        )


def trim_layer(
    X,
    Y,
    *,
    activation: str = "relu",
    eps: float | np.ndarray = DEFAULT_EPS,
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
    warm_start=None,
    verbose: bool = False,
    solver_options: Mapping[str, Any] | None = None,
) -> LayerResult:
    """Prune one layer with Net-Trim: the sparsest weights that keep its outputs.

    With ``X~ = [X, 1]`` (when ``bias``), ``Omega = {Y > active_tol}`` and ``V = upper``:

    * ``activation="relu"``, constrained (P1)::

          minimize ||W~||_1  s.t.  ||(X~ W~ - Y)_Omega||_F <= eps_abs,  (X~ W~)_{Omega^c} <= V

    * ``activation="linear"`` (P2): ``minimize ||W~||_1  s.t.  ||X~ W~ - Y||_F <= eps_abs``
    * ``penalty=lam`` (P3): ``minimize ||W~||_1 + lam/2 ||(X~ W~ - Y)_Omega||_F^2`` under the
      same inequalities (``eps`` is then not used).

    Any weights feasible for (P1) with ``V = 0`` satisfy ``||Y - relu(X W + b)||_F <= eps_abs``
    (Proposition 1 of Net-Trim, ``docs/theory.md``).

    Parameters
    ----------
    X : array-like of shape (n, d_in)
        Layer input, one sample per row.
    Y : array-like of shape (n, d_out)
        Layer output: post-activation for ``"relu"`` (non-negative), plain for ``"linear"``.
    activation : {"relu", "linear"}
        The layer's activation; selects (P1) or (P2).
    eps : float or array-like of shape (d_out,)
        Discrepancy budget, ``>= 0``. Relative by default: ``eps_abs = eps * ||Y||_F``
        (layer-wide) or ``eps_j * ||y_j||_2`` (per-neuron; an array gives one per column).
        ``eps=0`` asks for exact reconstruction on Omega.
    relative : bool
        Whether ``eps`` is relative to the norm of ``Y`` (or of its columns).
    per_neuron : bool
        One ball per output column instead of one for the layer; the program then separates
        into ``d_out`` independent problems.
    bias : bool
        Fit a bias (augment ``X`` with a column of ones).
    penalize_bias : bool
        Count the bias in the L1 objective (the reference method does).
    upper : array-like broadcastable to Y's shape, optional
        ``V``: upper bound for the pre-activations on Omega^c (0 by default, the parallel
        scheme); the cascade scheme passes the original weights applied to the pruned input.
        ``+inf`` imposes nothing. Only for ``"relu"``.
    penalty : float, optional
        ``lam > 0``: solve the penalized program (P3) instead of the constrained one.
    active_tol : float
        Entries of ``Y`` above it form Omega (0 by default; recordings from float32
        frameworks may need e.g. ``1e-6`` to keep rounding noise out of Omega).
    solver : {"auto", "admm", "clarabel", "scs", "osqp"}
        Backend. ``"admm"`` is the fast path (:func:`nettrim.solvers.solve_admm`); the
        others go through cvxpy, ``"osqp"`` for (P3) only. ``"auto"``: Clarabel for tiny
        layers (``n * d_out <= AUTO_EXACT_MAX_ENTRIES``), the ADMM for the rest (the
        size rule the benchmark measured).
    tol : float, optional
        Backend tolerance; for the ADMM the relative duality gap at which it stops
        (``AdmmSettings.gap_tol``). Backend default when ``None``.
    max_iter : int, optional
        Iteration limit (backend default when ``None``).
    warm_start : LayerResult or (W, b), optional
        Initial weights for the ADMM (e.g. the solution at a nearby ``eps``); ignored by
        the exact backends.
    verbose : bool
        Let the backend print its log.
    solver_options : mapping, optional
        Further backend settings: :class:`~nettrim.solvers.AdmmSettings` fields for the
        ADMM, cvxpy/backend keyword arguments otherwise.

    Returns
    -------
    LayerResult
        ``W`` ``(d_in, d_out)`` and ``b`` ``(d_out,)`` (or ``None``), exactly sparse; the
        status; and ``info`` measured on these weights.

    Examples
    --------
    >>> import numpy as np
    >>> from nettrim import trim_layer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 10))
    >>> W = rng.standard_normal((10, 4)) * (rng.random((10, 4)) < 0.3)
    >>> Y = np.maximum(X @ W, 0)
    >>> result = trim_layer(X, Y, eps=0.01, bias=False, solver="clarabel")
    >>> result.status
    <Status.OPTIMAL: 'optimal'>
    >>> bool(result.info.residual <= 0.01 * np.linalg.norm(Y) * (1 + 1e-6))
    True
    """
    options = TrimOptions(
        activation=activation,
        eps=eps,
        relative=relative,
        per_neuron=per_neuron,
        bias=bias,
        penalize_bias=penalize_bias,
        penalty=penalty,
        active_tol=active_tol,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        solver_options=solver_options,
    )
    return solve_layer(X, Y, options, upper=upper, warm_start=warm_start)


@dataclass(frozen=True)
class PreparedLayer:
    """A checked layer program and its backend: what one solve, or several rounds, need."""

    problem: NetTrimProblem
    options: TrimOptions
    backend: str
    settings: AdmmSettings | None
    initial: np.ndarray | None
    scaling: Scaling = Scaling()

    def solve(
        self,
        problem: NetTrimProblem | None = None,
        warm_start: np.ndarray | None = None,
        *,
        callback: AdmmCallback | None = None,
    ) -> SolverResult:
        """Run the backend on ``problem`` (this one by default) from ``warm_start``
        (the checked initial weights by default); ``callback`` sees the ADMM's checks."""
        return solve_program(
            self.problem if problem is None else problem,
            self.backend,
            settings=self.settings,
            tol=self.options.tol,
            max_iter=self.options.max_iter,
            solver_options=self.options.solver_options,
            warm_start=self.initial if warm_start is None else warm_start,
            verbose=self.options.verbose,
            callback=callback,
        )

    def layer_result(self, x: np.ndarray | None, status: Status, info: SolveInfo) -> LayerResult:
        """``W`` and ``b`` split from the augmented weights ``x`` of :attr:`problem`
        (``None``: no weights), both and ``info`` mapped back through :attr:`scaling`."""
        W = b = None
        info = self.scaling.info(info)
        if x is not None:
            x = self.scaling.weights(x, self.options.bias)
            d_in = x.shape[0] - (1 if self.options.bias else 0)
            W = np.ascontiguousarray(x[:d_in])
            b = x[-1].copy() if self.options.bias else None
        return LayerResult(W=W, b=b, status=status, info=info, program=self.options.program)


def prepare_layer(X, Y, options: TrimOptions, *, upper=None, warm_start=None) -> PreparedLayer:
    """Check the arrays against ``options`` and build the program (no solve)."""
    dtype = as_float_dtype(X, Y)
    X = check_matrix("X", X, dtype)
    Y = check_matrix("Y", Y, dtype)
    check_same_rows(("Y", "X"), (Y, X))
    if options.activation == "relu" and (Y < 0).any():
        raise ValueError(
            f"Y has {int(np.count_nonzero(Y < 0))} negative entries (min {Y.min():.4g}) but "
            "activation='relu' expects post-activation outputs >= 0; pass the ReLU outputs, "
            "or activation='linear' for a layer without ReLU"
        )
    check_eps("eps", options.eps, per_neuron=options.per_neuron, d_out=Y.shape[1])
    if upper is not None:
        if options.activation != "relu":
            raise ValueError(
                "upper bounds the pre-activations on Omega^c; it applies only to activation='relu'"
            )
        upper = _check_upper(upper, Y.shape, dtype)
    backend = resolve_solver(options.solver, Y.shape)
    initial = _check_warm_start(warm_start, X.shape[1], Y.shape[1], options.bias, dtype)
    settings = options.admm_settings() if backend == "admm" else None
    scaling = Scaling.of(X, Y)
    problem = build_problem(**_scaled_program(scaling, X, Y, upper, options))
    if initial is not None:
        initial = scaling.weights(initial, options.bias, inward=True)
    return PreparedLayer(
        problem=problem,
        options=options,
        backend=backend,
        settings=settings,
        initial=initial,
        scaling=scaling,
    )


def _scaled_program(scaling: Scaling, X, Y, upper, options: TrimOptions) -> dict[str, Any]:
    """:func:`build_problem`'s arguments for the program rescaled by ``scaling``: every
    quantity in ``Y``'s units times ``2^y``, ``X`` times ``2^x``, a penalized bias row
    weighed by ``2^-x`` and a penalty times ``2^-(x+y)`` (:class:`Scaling`)."""
    eps, active_tol, penalty, bias_weight = (
        options.eps,
        options.active_tol,
        options.penalty,
        1.0,
    )
    if not scaling.identity:
        X, Y = np.ldexp(X, scaling.x), np.ldexp(Y, scaling.y)
        upper = None if upper is None else np.ldexp(upper, scaling.y)
        if not options.relative:
            eps = np.ldexp(eps, scaling.y) if np.ndim(eps) else float(np.ldexp(eps, scaling.y))
        active_tol = float(np.ldexp(active_tol, scaling.y))
        if penalty is not None:
            penalty = float(np.ldexp(penalty, -(scaling.x + scaling.y)))
        bias_weight = float(np.ldexp(1.0, -scaling.x))
    return {
        "X": X,
        "Y": Y,
        "activation": options.activation,
        "eps": eps,
        "relative": options.relative,
        "per_neuron": options.per_neuron,
        "bias": options.bias,
        "penalize_bias": options.penalize_bias,
        "upper": upper,
        "penalty": penalty,
        "active_tol": active_tol,
        "bias_weight": bias_weight,
    }


def solve_layer(
    X, Y, options: TrimOptions, *, upper=None, warm_start=None, callback=None
) -> LayerResult:
    """:func:`trim_layer` for checked ``options`` (the path the schemes and tuners take);
    ``callback`` sees the ADMM's certificate checks (:func:`nettrim.solvers.solve_admm`)."""
    prepared = prepare_layer(X, Y, options, upper=upper, warm_start=warm_start)
    result = prepared.solve(callback=callback)
    return prepared.layer_result(result.W, result.status, result.info)


def solve_program(
    problem: NetTrimProblem,
    backend: str,
    *,
    settings: AdmmSettings | None,
    tol: float | None,
    max_iter: int | None,
    solver_options: Mapping[str, Any] | None,
    warm_start: np.ndarray | None,
    verbose: bool,
    callback: AdmmCallback | None = None,
) -> SolverResult:
    """Run ``backend`` (``"admm"`` with ``settings``, or an exact one) on ``problem``;
    ``callback`` sees the ADMM's certificate checks (the exact solvers report none)."""
    if backend == "admm":
        return solve_admm(
            problem, settings, warm_start=warm_start, verbose=verbose, callback=callback
        )
    return solve_exact(
        problem,
        solver=backend,
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        solver_options=solver_options,
    )


def resolve_solver(solver: str, shape: tuple[int, int]) -> str:
    """The backend that ``solver`` (one of ``SOLVERS``) names for outputs of ``shape``.

    ``"auto"`` is ``AUTO_EXACT_SOLVER`` up to ``AUTO_EXACT_MAX_ENTRIES`` entries ``n * d_out``
    and ``AUTO_SOLVER`` above.
    """
    if solver != "auto":
        return solver
    n, d_out = shape
    return AUTO_EXACT_SOLVER if n * d_out <= AUTO_EXACT_MAX_ENTRIES else AUTO_SOLVER


def _check_warm_start(warm_start, d_in: int, d_out: int, bias: bool, dtype) -> np.ndarray | None:
    """Augmented ``(d_in [+1], d_out)`` initial weights from a LayerResult or ``(W, b)``."""
    if warm_start is None:
        return None
    if isinstance(warm_start, LayerResult):
        W, b = warm_start.W, warm_start.b
        if W is None:
            return None
    else:
        try:
            W, b = warm_start
        except (TypeError, ValueError):
            raise TypeError("warm_start must be a LayerResult or a pair (W, b)") from None
    W = np.asarray(W, dtype=dtype)
    if W.shape != (d_in, d_out):
        raise ValueError(f"warm_start W has shape {W.shape}; expected ({d_in}, {d_out})")
    if not bias:
        return W
    b = np.zeros(d_out, dtype) if b is None else np.asarray(b, dtype=dtype)
    if b.shape != (d_out,):
        raise ValueError(f"warm_start b has shape {b.shape}; expected ({d_out},)")
    return np.vstack([W, b[None, :]])


def _check_upper(upper, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    try:
        upper = np.asarray(upper, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"upper must be numeric and array-like, got {upper!r:.60}") from None
    try:
        upper = np.broadcast_to(upper, shape)
    except ValueError:
        raise ValueError(
            f"upper has shape {upper.shape}, which does not broadcast to Y's shape {shape}"
        ) from None
    if np.isnan(upper).any() or (upper == -np.inf).any():
        raise ValueError("upper must not contain NaN or -inf (+inf imposes no bound)")
    return np.ascontiguousarray(upper)

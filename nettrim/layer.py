"""Net-Trim on one layer: from recorded arrays to a program, a solve, and sparse weights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .solvers import EXACT_SOLVERS, NetTrimProblem, SolveInfo, SolverResult, Status, solve_exact
from .solvers.admm import AdmmSettings, solve_admm
from .validation import (
    as_float_dtype,
    check_choice,
    check_matrix,
    check_same_rows,
    check_scalar,
)

ACTIVATIONS = ("relu", "linear")
SOLVERS = ("auto", "admm", *EXACT_SOLVERS)
DEFAULT_EPS = 0.05
#: What ``solver="auto"`` runs: Clarabel for layers of at most ``AUTO_EXACT_MAX_ENTRIES``
#: output entries ``n * d_out``, the ADMM above. Measured side by side
#: (benchmarks/results/admm.md, "size rule" table): Clarabel was faster at 60 samples x 5
#: outputs (300 entries), the ADMM from 100 x 10 (1000 entries) up.
AUTO_SOLVER = "admm"
AUTO_EXACT_SOLVER = "clarabel"
AUTO_EXACT_MAX_ENTRIES = 500


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

    def __repr__(self) -> str:
        shape = "none" if self.W is None else f"{self.W.shape[0]}x{self.W.shape[1]}"
        return (
            f"LayerResult({self.program}, W={shape}, status={self.status.value!r}, "
            f"sparsity={self.sparsity:.3f}, residual={self.info.residual:.4g}, "
            f"radius={self.info.radius:.4g}, solver={self.info.solver!r})"
        )


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
) -> NetTrimProblem:
    """The program for validated arrays (``X`` ``(n, d_in)``, ``Y`` ``(n, d_out)``)."""
    n = X.shape[0]
    dtype = X.dtype
    X_aug = np.hstack([X, np.ones((n, 1), dtype)]) if bias else X
    l1_weights = np.ones(X_aug.shape[1], dtype=np.float64)
    if bias and not penalize_bias:
        l1_weights[-1] = 0.0
    active = None
    if activation == "relu":
        active = active_tol < Y
    if per_neuron:
        scale = np.linalg.norm(Y, axis=0) if relative else np.ones(Y.shape[1])
        radius = np.broadcast_to(np.asarray(eps, dtype=np.float64), (Y.shape[1],)) * scale
    else:
        radius = float(eps) * (float(np.linalg.norm(Y)) if relative else 1.0)
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
    (Proposition 1 of Net-Trim).

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
    activation = check_choice("activation", activation, ACTIVATIONS)
    solver = check_choice("solver", solver, SOLVERS)
    dtype = as_float_dtype(X, Y)
    X = check_matrix("X", X, dtype)
    Y = check_matrix("Y", Y, dtype)
    check_same_rows(("Y", "X"), (Y, X))
    if activation == "relu" and (Y < 0).any():
        raise ValueError(
            f"Y has {int(np.count_nonzero(Y < 0))} negative entries (min {Y.min():.4g}) but "
            "activation='relu' expects post-activation outputs >= 0; pass the ReLU outputs, "
            "or activation='linear' for a layer without ReLU"
        )
    eps = _check_eps(eps, Y.shape[1], per_neuron)
    active_tol = check_scalar("active_tol", active_tol, low=0.0)
    if penalty is not None:
        penalty = check_scalar("penalty", penalty, low=0.0, low_inclusive=False)
    if upper is not None:
        if activation != "relu":
            raise ValueError(
                "upper bounds the pre-activations on Omega^c; it applies only to activation='relu'"
            )
        upper = _check_upper(upper, Y.shape, dtype)
    if tol is not None:
        tol = check_scalar("tol", tol, low=0.0, low_inclusive=False)
    if max_iter is not None:
        max_iter = int(check_scalar("max_iter", max_iter, low=1, integer=True))
    backend = resolve_solver(solver, Y.shape)
    initial = _check_warm_start(warm_start, X.shape[1], Y.shape[1], bias, dtype)
    settings = admm_settings(tol, max_iter, solver_options) if backend == "admm" else None

    problem = build_problem(
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
    )
    result = solve_program(
        problem,
        backend,
        settings=settings,
        tol=tol,
        max_iter=max_iter,
        solver_options=solver_options,
        warm_start=initial,
        verbose=verbose,
    )
    program = "P3" if penalty is not None else ("P1" if activation == "relu" else "P2")
    W = b = None
    if result.x is not None:
        W = np.ascontiguousarray(result.x[: X.shape[1]])
        b = result.x[-1].copy() if bias else None
    return LayerResult(W=W, b=b, status=result.status, info=result.info, program=program)


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
) -> SolverResult:
    """Run ``backend`` (``"admm"`` with ``settings``, or an exact one) on ``problem``."""
    if backend == "admm":
        return solve_admm(problem, settings, warm_start=warm_start, verbose=verbose)
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


def admm_settings(
    tol: float | None, max_iter: int | None, solver_options: Mapping[str, Any] | None
) -> AdmmSettings:
    """:class:`AdmmSettings` from ``trim_layer``'s ``tol``, ``max_iter``, ``solver_options``.

    ``tol`` is the relative duality gap (``gap_tol``); ``solver_options`` names fields, and
    an unknown name raises ``ValueError`` naming it.
    """
    changes = dict(solver_options or {})
    if tol is not None:
        changes.setdefault("gap_tol", tol)
    if max_iter is not None:
        changes.setdefault("max_iter", max_iter)
    try:
        return AdmmSettings().updated(**changes)
    except TypeError as exc:
        raise ValueError(f"solver_options: {exc}") from None


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


def _check_eps(eps, d_out: int, per_neuron: bool) -> float | np.ndarray:
    if np.ndim(eps) == 0:
        return check_scalar("eps", eps, low=0.0)
    if not per_neuron:
        raise ValueError(
            f"eps has shape {np.shape(eps)}; one eps per output needs per_neuron=True, "
            "otherwise pass a scalar"
        )
    eps = np.asarray(eps, dtype=np.float64)
    if eps.shape != (d_out,):
        raise ValueError(
            f"eps has shape {eps.shape} but Y has {d_out} columns; "
            f"per-neuron eps must have shape ({d_out},)"
        )
    if not np.isfinite(eps).all() or (eps < 0).any():
        raise ValueError("eps must be finite and >= 0 in every column")
    return eps


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

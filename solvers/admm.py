"""ADMM for the Net-Trim programs (P1), (P2), (P3): the fast path for large layers.

Splitting (journal Net-Trim, in our conventions): ``Z = X W`` carries the constraint set
``C`` (ball on Omega, ``<= V`` off it), ``S = W`` carries the weighted L1 norm::

    W <- (X^T X + r I)^{-1} (X^T (Z - U) + r (S - T))          r = rho2 / rho1
    Z <- Proj_C(alpha X W + (1 - alpha) Z + U)                  (prox of lam/2 ||.-Y||^2 for P3)
    S <- soft(alpha W + (1 - alpha) S + T, c / rho2)
    U <- U + alpha X W + (1 - alpha) Z_old - Z ;   T <- T + alpha W + (1 - alpha) S_old - S

with over-relaxation ``alpha``. The data are scaled by one scalar (``X / sigma``,
``sigma = ||X||_2``; ``Y``, ``V`` and the radius with it) so the program in ``W`` is
unchanged and ``X^T X`` has spectrum in ``[0, 1]``. One eigendecomposition of ``X^T X`` (or
of ``X X^T`` when ``n < d``) serves every iteration and makes every change of ``r`` free,
so both penalties adapt by residual balancing. ``S`` is returned: it is exactly sparse.

Every ``check_every`` iterations the returned point ``S`` itself is measured (ball excess,
violation off Omega, L1 norm) and the multiplier ``Lam = rho1 U`` is turned into a dual
certificate (:mod:`.duality`): the solve stops when ``S`` is feasible to ``feas_tol`` and
the relative duality gap is below ``gap_tol``, or when the primal and dual residuals are
below ``tol_abs``/``tol_rel`` (Boyd et al. 2011, §3.3). A certified ``S`` whose only fault
is a small violation off Omega (a max over every entry, which lags the gap by a third of
the iterations) is repaired on its support (:func:`.polish.repair_violations`) and
returned when the repaired point is feasible with a certified gap. A diverging multiplier
that is a Farkas ray proves the program infeasible (it is returned as
``info.infeasibility_certificate``).

(P2) (a ball on every entry, no inequalities) with many more samples than rows is solved
through its reduction to the range of ``X`` (:func:`_solve_reduced`): the same iteration
on ``R W`` against ``C = P^T Y`` (``X = P R``, ``R = diag(s) V^T``), whose W-update is
diagonal in the rotated coordinates (:class:`.linalg.RotatedGram`), the weights measured on
the original program.

:func:`solve_admm` is a driver over three stages, as cvxpy splits ``apply`` /
``solve_via_data`` / ``invert``: :func:`_prepare` (scaling, penalties, start),
:func:`_iterate` (steps and checks until a :class:`Stop`) and :func:`_report` (measure,
polish, certify, back to the caller's units). What differs between the program variants
is asked of ``problem.program`` (:mod:`.programs`); every knob is an :class:`AdmmSettings`
field (``docs/solvers.md``, "Code layout").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import Enum

import numpy as np

from . import kernels
from .active_set import ActiveSetPoint, active_set_finish, system_work
from .anderson import Anderson, ColumnAnderson
from .duality import DualCertifier, feasible_multiplier
from .exact_columns import ExactColumns, estimated_work, solve_columns
from .linalg import (
    ColumnGramSolver,
    RotatedGram,
    RotatedReduction,
    ShiftedGramSolver,
    prime_blas,
    rotate_to_range,
)
from .polish import polish_support, repair_violations
from .problem import NetTrimProblem
from .result import SolveInfo, SolverResult, Status

_TINY = 1e-30
#: The fixed cost of an iteration (its kernel and BLAS calls), in multiply-adds: about 10
#: microseconds, the time of a small layer's whole iteration, on the machine of
#: docs/benchmarks.md; it makes the active-set finish's cost in iterations right on small
#: layers, where its own fixed costs dominate.
ITERATION_OVERHEAD = 2e5
#: The gap's rate of decrease, for the iterations it has left, is taken over this many
#: check intervals at most.
FINISH_RATE_CHECKS = 3
#: The columns still iterating are solved exactly (``exact_columns``) once the solve has
#: run this many times the mean iterations of the columns set aside (twice as many after
#: every attempt that kept nothing).
EXACT_LAG = 3.0
#: Choices of ``AdmmSettings.precision``.
PRECISIONS = ("auto", "float32", "float64")
REPAIRED_MESSAGE = "feasible with a certified duality gap after a repair of its violations"
ACTIVE_SET_MESSAGE = (
    "feasible with a certified duality gap, solved exactly on the iterate's active set"
)
COLUMNS_DONE_MESSAGE = "every column feasible with a certified duality gap of its own"


@dataclass(frozen=True)
class AdmmSettings:
    """Settings of :func:`solve_admm` (OSQP-style: one object, defaults that work).

    Attributes
    ----------
    rho : float or None
        Initial penalty of ``Z = X W`` on the scaled data; ``None`` takes
        ``default_rho`` for a layer-wide ball and ``separable_rho`` for separable programs
        (per-neuron balls, (P3)), which are solved column-normalized: another scale.
    ratio : float
        Initial ``r = rho2 / rho1`` (penalty of ``S = W`` relative to ``rho``).
    alpha : float
        Over-relaxation in ``(0, 2)``; 1.6 is the usual sweet spot.
    tol_abs, tol_rel : float
        Absolute and relative tolerances of the primal/dual residual test.
    gap_tol : float
        Stop when the relative duality gap ``(||S||_1 - LB) / ||S||_1`` is below it and
        ``S`` is feasible to ``feas_tol``.
    feas_tol : float
        Feasibility asked of the returned ``S``: ball excess ``<= feas_tol * radius`` (per
        column for per-column balls) and violation off Omega ``<= feas_tol * max|Y|``.
    max_iter : int
        Iteration limit (status ``max_iter`` when reached).
    check_every : int
        Iterations between certificate checks (each costs about one iteration).
    adaptive_rho : bool
        Rebalance both penalties from the residuals.
    adapt_every : int
        Iterations between penalty updates.
    adapt_factor : float
        A penalty changes only when the balancing factor exceeds this (or its inverse).
    polish : bool
        Work on the support of ``S`` (see :mod:`.polish`): during the solve, repair a
        certified point whose violations off Omega lag (it stops there when the repaired
        point is feasible with a certified gap); at the end, when ``S`` is still outside the
        constraints, refit it until it is inside to ``feas_tol``.
    infeasibility_tol : float
        Tolerance of the Farkas-ray test that declares the program infeasible.
    time_limit : float or None
        Seconds after which the solve stops with status ``max_iter``.
    precision : {"auto", "float32", "float64"}
        Precision of the iterations. The returned weights are always measured, polished
        and certified in the problem's own precision, so float32 iterations on a float64
        problem cost accuracy only below the float32 rounding level (about 1e-6 relative),
        far under the default tolerances, and halve the time of every product. ``"auto"``
        iterates in float32 when ``gap_tol`` and ``feas_tol`` are at least
        ``mixed_precision_min_tol``, every radius is positive (``eps = 0`` asks for
        exact fits) and there are at least as many samples as rows (the Woodbury form of
        the solve cancels digits that float32 does not have), else in the problem's
        precision.
    freeze_columns : bool
        Separable programs (per-column balls, (P3)): at a check, set aside the columns that
        are feasible with a certified gap of their own and iterate on the others only, so
        a layer costs the sum of its columns' iterations, not its slowest column's times
        the width.
    freeze_fraction : float
        Columns are set aside once at least this fraction of those still iterating are
        done (default 0.1): fewer, larger compactions.
    default_rho : float
        Initial ``rho1`` of a layer-wide ball when ``rho`` is ``None`` (default 1.0), on
        data scaled to ``||X||_2 = 1``.
    separable_rho : float
        ... and of a separable program, solved column-normalized (unit targets per column;
        default 100.0). Set by measurement: against 1.0 it took 12% fewer column iterations
        over the bundled network's layers at eps 0.01-0.3 and 27% fewer on random
        per-neuron and (P3) layers (``docs/solvers.md``, "Per-column penalties").
    farkas_every : int
        The infeasibility test (one extra product) runs at every this many certificate
        checks (default 5).
    mixed_precision_min_tol : float
        ``precision="auto"`` iterates in float32 only when both ``gap_tol`` and
        ``feas_tol`` are at least this (default 1e-4): float32 iterates carry relative
        errors near 1e-6, a hundred times below it.
    mixed_rounding : float
        Checks of mixed-precision iterations take this much (relative to the targets'
        norm) off the ball's tolerance (default 1e-5): a float32 measure of a residual errs
        by about 1e-6 of the targets.
    repair_max_violation : float
        A certified point is repaired (:func:`.polish.repair_violations`) when its ball is
        met and its violation off Omega is at most this many times the tolerance
        (default 10.0).
    repair_gap_fraction : float
        ... and, for a layer-wide ball, its gap at most this fraction of ``gap_tol``
        (default 0.8): the repair adds to the L1 norm and moves every column. Separable
        programs try at any certified gap: the columns still iterating are few by then,
        and an attempt is cheap.
    reduce_range : bool
        (P2) (a ball on every entry, no inequalities) with at least ``reduce_min_ratio``
        times as many samples as rows: iterate on the program reduced to the range of
        ``X`` (:func:`_solve_reduced`), whose iterations cost ``d x d x m`` products
        instead of ``n x d x m`` ones (default True).
    reduce_min_ratio : float
        ... ``n >= reduce_min_ratio * d`` (default 2.0): below it the reduction's setup
        (``X^T Y``, one eigendecomposition) is not won back.
    reduced_rho : float
        Initial ``rho1`` of a layer-wide ball solved through the reduction when ``rho`` is
        ``None`` (default 300.0). Set by measurement: the penalties of those solves settle
        near 500-2000, and against ``default_rho`` it took 40-45% fewer iterations on
        correlated linear layers (4096 x 128 -> 128, 8192 x 256 -> 256, eps 0.05).
    anderson_memory : int
        Differences kept by the Anderson acceleration of the iteration
        (:mod:`.anderson`; 0 turns it off).
    anderson_interval : int
        ADMM iterations per accelerated step: the accelerated map is this many
        iterations, so its cost (about twenty passes over the state with memory 3) is
        spread over them.
    anderson_safeguard : float
        An accelerated point is kept when its fixed-point residual is at most this many
        times the residual of the point it came from; else the plain iterate replaces it.
    active_set : bool
        At checks, solve the optimality conditions on the support and bounds the iterate
        points to (:mod:`.active_set`); the solve stops there when that point is feasible
        with a certified gap (default True).
    active_set_gap : float
        ... tried once the certified gap is at most this (default 0.05): further out, the
        support is still moving.
    active_set_payoff : float
        ... when the iterations left, at the rate the gap fell over the last check
        intervals, are at least this many times the attempt's estimated work (default
        2.0: on the digits layers about half the attempts at the gaps where this lets
        them try end the solve), twice as many after every attempt that kept nothing.
    active_set_budget : float
        ... and while the attempts so far took work (in iterations) of at most this
        fraction of the iterations run (default 0.25), so attempts that fail cost a
        bounded share of a solve. Work is counted in multiply-adds (``docs/solvers.md``, "Active-set
        finish"), not seconds, which keeps the solve deterministic.
    exact_columns : int
        A program with one ball per column: once at most this many columns still iterate
        and they have run ``EXACT_LAG`` times the mean iterations of those set aside, solve
        them exactly (:mod:`.exact_columns`: small cone programs through Clarabel, by row
        and entry generation) and set aside those feasible with a certified gap (default 8;
        0 turns it off). Neurons that fire on a handful of samples make such laggards.
    column_grams : bool
        Leave each column's free rows (off Omega with ``V = +inf``) out of its W-update,
        with one ``d x d`` eigendecomposition per column
        (:class:`~nettrim.solvers.linalg.ColumnGramSolver`), instead of one Gram for all
        (default False). The free rows are then out of the splitting: out of the
        residuals that adapt the penalties and stop, and of the Anderson acceleration's
        vector, too. For programs whose columns are mostly free rows: row generation's
        shared layout asks for it (``docs/solvers.md``, "Tall programs"). A program with
        no free row is solved as without it.
    """

    rho: float | None = None
    ratio: float = 0.1
    alpha: float = 1.6
    tol_abs: float = 1e-7
    tol_rel: float = 1e-5
    gap_tol: float = 1e-3
    feas_tol: float = 1e-3
    max_iter: int = 20000
    check_every: int = 20
    adaptive_rho: bool = True
    adapt_every: int = 20
    adapt_factor: float = 2.0
    polish: bool = True
    infeasibility_tol: float = 1e-7
    time_limit: float | None = None
    precision: str = "auto"
    freeze_columns: bool = True
    freeze_fraction: float = 0.1
    default_rho: float = 1.0
    separable_rho: float = 100.0
    farkas_every: int = 5
    mixed_precision_min_tol: float = 1e-4
    mixed_rounding: float = 1e-5
    repair_max_violation: float = 10.0
    repair_gap_fraction: float = 0.8
    reduce_range: bool = True
    reduce_min_ratio: float = 2.0
    reduced_rho: float = 300.0
    anderson_memory: int = 3
    anderson_interval: int = 10
    anderson_safeguard: float = 1.0
    active_set: bool = True
    active_set_gap: float = 0.05
    active_set_payoff: float = 2.0
    active_set_budget: float = 0.25
    exact_columns: int = 8
    column_grams: bool = False

    def __post_init__(self) -> None:
        if self.rho is not None and not self.rho > 0:
            raise ValueError(f"AdmmSettings.rho must be > 0 or None, got {self.rho!r}")
        positive = (
            "ratio",
            "tol_rel",
            "gap_tol",
            "feas_tol",
            "infeasibility_tol",
            "default_rho",
            "separable_rho",
            "repair_max_violation",
            "repair_gap_fraction",
            "reduce_min_ratio",
            "reduced_rho",
            "anderson_safeguard",
            "active_set_gap",
            "active_set_payoff",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"AdmmSettings.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.alpha < 2:
            raise ValueError(f"AdmmSettings.alpha must be in (0, 2), got {self.alpha!r}")
        for name in (
            "tol_abs",
            "freeze_fraction",
            "mixed_precision_min_tol",
            "mixed_rounding",
            "active_set_budget",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AdmmSettings.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("max_iter", "check_every", "adapt_every", "farkas_every", "anderson_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AdmmSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"AdmmSettings.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        for name in ("anderson_memory", "exact_columns"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"AdmmSettings.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.adapt_factor < 1:
            raise ValueError(f"AdmmSettings.adapt_factor must be >= 1, got {self.adapt_factor!r}")

    def updated(self, **changes) -> AdmmSettings:
        """A copy with some settings changed (unknown names raise ``TypeError``)."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise TypeError(
                f"unknown ADMM setting(s) {sorted(unknown)}; known: {sorted(asdict(self))}"
            )
        return replace(self, **changes)


# The former module-level knobs, read from the settings' defaults (one value each).
MIXED_PRECISION_MIN_TOL = AdmmSettings.mixed_precision_min_tol
MIXED_ROUNDING = AdmmSettings.mixed_rounding
FREEZE_FRACTION = AdmmSettings.freeze_fraction
DEFAULT_RHO = AdmmSettings.default_rho
SEPARABLE_RHO = AdmmSettings.separable_rho
FARKAS_EVERY = AdmmSettings.farkas_every
REPAIR_MAX_VIOLATION = AdmmSettings.repair_max_violation
REPAIR_GAP_FRACTION = AdmmSettings.repair_gap_fraction


@dataclass(frozen=True)
class AdmmIterate:
    """What :func:`solve_admm` passes its ``callback`` at each certificate check.

    SciPy's ``minimize(callback=...)`` convention: one object of plain numbers (no array of
    the solver's state, so a callback cannot change the iterations). Figures are those the
    check measured on the current ``S``, in the stopping rules' own scales.

    Attributes
    ----------
    iteration : int
        Iterations so far.
    objective : float
        ``||S||_1`` (the program's objective) of the current point.
    lower_bound : float
        The dual certificate's lower bound on the optimal objective.
    gap : float
        The certified relative duality gap ``(objective - lower_bound) / |objective|``
        (the solve stops below ``gap_tol`` once ``feasible``).
    ball_excess : float
        How far ``S`` is outside its ball(s), relative to the largest radius.
    violation : float
        Largest positive pre-activation off Omega above its bound, relative to ``max |Y|``.
    feasible : bool
        Whether ``S`` meets the constraints to ``feas_tol``.
    primal_residual, dual_residual : float
        The residuals of the splitting (Boyd et al. 2011, §3.3) on the scaled program.
    columns : int
        Columns still iterating (fewer than the layer's once columns are set aside).
    seconds : float
        Since the solve started (after its setup).
    """

    iteration: int
    objective: float
    lower_bound: float
    gap: float
    ball_excess: float
    violation: float
    feasible: bool
    primal_residual: float
    dual_residual: float
    columns: int
    seconds: float


#: ``callback`` of :func:`solve_admm`: called with an :class:`AdmmIterate`; its return
#: value is ignored.
AdmmCallback = Callable[[AdmmIterate], object]


@dataclass(frozen=True)
class AdmmState:
    """Where a solve of :func:`solve_admm` ended, to start another from
    (``keep_state=True`` puts it in ``info.extra["state"]``; pass it, or that result, as
    ``warm_start``).

    Everything is in the caller's units (independent of the solver's scaling of the data
    and of its column units), so a state serves any program of the same shape: the same
    layer with other L1 weights (a reweighting round), another ``eps``. The penalties
    matter most: a solve's settle far from the initial ones (thousands on the bundled
    network's layers against the default 1), and a start there saves the iterations spent
    reaching them.

    Attributes
    ----------
    W, S : ndarray of shape (d, m)
        The iterate of the W-update and the weights returned (the sparse iterate, or the
        point of a repair, of the active-set finish or of the polish the solve ended at).
    Z : ndarray of shape (k, m)
        The split pre-activations ``Z = X W`` (``k = n``, or the rank of ``X`` when the
        solve went through the range reduction).
    dual_z : ndarray of shape (k, m)
        The multiplier of ``Z = X W``.
    dual_s : ndarray of shape (d, m)
        The multiplier of ``S = W``.
    rho_z, rho_s : ndarray of shape (m,)
        The penalties of both splittings per column.
    weights : ndarray of shape (d, m) or (d, 1), optional
        The L1 weights ``c_ij`` of the program the state came from
        (``problem.weight_matrix()``), for :meth:`for_weights`; ``None`` when unknown.
    """

    W: np.ndarray
    S: np.ndarray
    Z: np.ndarray
    dual_z: np.ndarray
    dual_s: np.ndarray
    rho_z: np.ndarray
    rho_s: np.ndarray
    weights: np.ndarray | None = None

    def for_weights(self, weights: np.ndarray) -> AdmmState:
        """This state with ``dual_s`` times ``c_new / c_old`` entry by entry (where both
        weights are positive), for a program with the L1 weights ``weights``: at the
        carried ``S`` the condition ``dual_s in c * d|S|`` then holds for the new weights
        as it held for the old (on the support ``|dual_s| = c``, off it at most ``c``).

        Not what ``warm_start`` does with a state: measured (``docs/solvers.md``,
        "Warm start"), the rescaled multiplier made the reweighting rounds of
        :func:`nettrim.reweighted_trim_layer` on the bundled network's and MNIST's layers
        take about twice the iterations, while the first programs of row generation's
        rounds, which start from it, took a half to a third of them."""
        if self.weights is None:
            return self
        old, new = np.broadcast_arrays(self.weights, np.asarray(weights, dtype=np.float64))
        ratio = np.divide(new, old, out=np.ones(old.shape), where=(old > 0) & (new > 0))
        return replace(self, dual_s=self.dual_s * ratio, weights=np.array(new))


#: What ``warm_start`` of :func:`solve_admm` takes.
WarmStart = np.ndarray | AdmmState | SolverResult | None


def working_dtype(problem: NetTrimProblem, settings: AdmmSettings) -> np.dtype:
    """The dtype the iterations run in (see ``AdmmSettings.precision``)."""
    if settings.precision != "auto":
        return np.dtype(settings.precision)
    loose = min(settings.gap_tol, settings.feas_tol) >= settings.mixed_precision_min_tol
    # a zero radius on a column with targets asks for an exact fit (dead neurons, with
    # nothing on Omega, have a zero radius that asks nothing)
    exact_fit = problem.program.asks_exact_fit(problem.target_scale)
    # with fewer samples than rows the solve takes the Woodbury form, which subtracts two
    # nearly equal terms and divides by the (small) shift: float32 cannot afford that
    n, d, _ = problem.shape
    return np.dtype(np.float32) if loose and not exact_fit and n >= d else problem.dtype


def _cast(problem: NetTrimProblem, dtype: np.dtype) -> NetTrimProblem:
    """The same program with its float arrays in ``dtype`` (itself when already so)."""
    if problem.dtype == dtype:
        return problem
    return replace(
        problem,
        X=problem.X.astype(dtype),
        Y=problem.Y.astype(dtype),
        upper=None if problem.upper is None else problem.upper.astype(dtype),
    )


def scale_problem(problem: NetTrimProblem, sigma: float) -> NetTrimProblem:
    """The same program in ``W`` with ``X``, ``Y``, ``V``, radius divided by ``sigma``."""
    inv = np.asarray(1.0 / sigma, dtype=problem.dtype)
    return replace(
        problem,
        X=problem.X * inv,
        Y=problem.Y * inv,
        upper=None if problem.upper is None else problem.upper * inv,
        **problem.program.scaled(sigma),
        violation_scale=None
        if problem.violation_scale is None
        else problem.violation_scale / sigma,
    )


class _State:
    """The iterates and work buffers of one solve (all preallocated)."""

    def __init__(self, n: int, d: int, m: int, dtype: np.dtype):
        self.W = np.zeros((d, m), dtype)
        self.S = np.zeros((d, m), dtype)
        self.T = np.zeros((d, m), dtype)
        self.rhs = np.zeros((d, m), dtype)
        self.Z = np.zeros((n, m), dtype)
        self.U = np.zeros((n, m), dtype)
        self.D = np.zeros((n, m), dtype)  # Z - U, the W-update's data term
        self.work = np.zeros((d, m), dtype)
        self.XW = np.zeros((n, m), dtype)
        self.col_sq = np.zeros(m, np.float64)
        self.zstats = np.zeros((5, m), np.float64)  # per column, see kernels
        self.sstats = np.zeros((5, m), np.float64)

    def restrict(self, keep: np.ndarray) -> _State:
        """The state of the columns ``keep`` alone (copies)."""
        clone = object.__new__(_State)
        for name, value in vars(self).items():
            clone.__dict__[name] = np.ascontiguousarray(value[..., keep])
        return clone


def _feasibility(
    problem: NetTrimProblem, figures: dict, feas_tol: float, rounding: float = 0.0
) -> bool:
    return problem.is_feasible(
        figures["column_residuals"], figures["violation"], feas_tol, rounding
    )


class _Meter:
    """Objective and feasibility of a point ``S`` from one product and one fused pass."""

    def __init__(self, problem: NetTrimProblem):
        n, _, m = problem.shape
        self.problem = problem
        self.XS = np.zeros((n, m), problem.dtype)
        self.col_sq = np.zeros(m, np.float64)
        self.col_worst = np.zeros(m, np.float64)
        self.weights = problem.weight_matrix()
        self.args = (*problem.kernel_arrays(), self.col_sq, self.col_worst)

    def __call__(self, S: np.ndarray) -> dict:
        p = self.problem
        np.matmul(p.X, S, out=self.XS)
        violation = max(0.0, float(kernels.measure_point(self.XS, *self.args)))
        col = np.sqrt(self.col_sq)
        residual = float(np.sqrt(self.col_sq.sum()))
        column_l1 = (np.abs(S) * self.weights).sum(axis=0, dtype=np.float64)
        objective, radius, excess = p.program.measure(float(column_l1.sum()), col, residual)
        return {
            "objective": objective,
            "residual": residual,
            "radius": radius,
            "ball_excess": excess,
            "violation": violation,
            "column_residuals": col,
            "column_objectives": p.program.column_objectives(column_l1, self.col_sq),
            "column_violations": self.col_worst.copy(),
        }


def _farkas_ray(problem: NetTrimProblem, delta: np.ndarray, tol: float) -> np.ndarray | None:
    """The Farkas ray ``D`` in ``delta`` (a change of the multiplier), or ``None``.

    The program is infeasible iff some ``D`` with ``X^T D = 0`` and ``D >= 0`` off Omega has
    a negative support value ``<D_Omega, Y> + radius ||D_Omega|| + <D_off, V>``. The ray
    returned is ``delta`` scaled to a largest entry of 1, clipped at 0 off Omega: both
    conditions are invariant under the scaling of the data by one scalar, so it certifies
    the caller's program as well as the scaled one.
    """
    size = float(np.abs(delta).max(initial=0.0))
    program = problem.program
    if size <= _TINY or (not program.has_ball and problem.active is None):
        return None
    D = delta / size
    active = problem.active
    if active is not None:
        D = np.where(~active & (D < 0), 0.0, D)
    if float(np.abs(problem.X.T @ D.astype(problem.dtype)).max()) > tol * np.sqrt(D.shape[0]):
        return None
    D_on = D if active is None else np.where(active, D, 0.0)
    support = float(np.vdot(D_on, problem.Y))
    if active is not None:
        V = problem.upper_bounds()
        off = ~active & (D > 0)
        if np.isposinf(V[off]).any():
            return None
        support += float(np.sum(D[off] * V[off]))
    support += program.support_term(D_on)
    scale = float(np.abs(problem.Y).max(initial=0.0)) + 1.0
    return D if support < -tol * scale * 1e3 else None


class Stop(Enum):
    """Why :func:`solve_admm` stopped: the status and message of each way (the one list).

    The checks (:func:`_stop_at_check`) try them in this order; the time limit is tested
    after every iteration, the iteration limit when the loop runs out.
    """

    CERTIFIED = (Status.OPTIMAL, "feasible with a certified duality gap")
    #: the gap may lag when the multiplier estimate is poor; converged residuals with a
    #: feasible point are the classical ADMM optimality test (Boyd et al. 2011, §3.3)
    RESIDUALS = (Status.OPTIMAL, "primal and dual residuals converged")
    ACTIVE_SET = (Status.OPTIMAL, ACTIVE_SET_MESSAGE)
    REPAIRED = (Status.OPTIMAL, REPAIRED_MESSAGE)
    COLUMNS_DONE = (Status.OPTIMAL, COLUMNS_DONE_MESSAGE)
    INFEASIBLE = (Status.INFEASIBLE, "a Farkas ray certifies infeasibility")
    TIME_LIMIT = (Status.MAX_ITER, "reached time_limit={time_limit}s")
    MAX_ITER = (Status.MAX_ITER, "reached max_iter={max_iter}")

    @property
    def status(self) -> Status:
        return self.value[0]

    def message(self, settings: AdmmSettings) -> str:
        return self.value[1].format(time_limit=settings.time_limit, max_iter=settings.max_iter)


def solve_admm(
    problem: NetTrimProblem,
    settings: AdmmSettings | None = None,
    *,
    warm_start: WarmStart = None,
    verbose: bool = False,
    callback: AdmmCallback | None = None,
    keep_state: bool = False,
) -> SolverResult:
    """Solve (P1), (P2) or (P3) by ADMM (see the module docstring for the iteration).

    Three stages (``docs/solvers.md``, "Code layout"): :func:`_prepare` scales the program
    and sets up the iterates, :func:`_iterate` runs the splitting until a :class:`Stop`,
    :func:`_report` measures, polishes and certifies the returned weights in the caller's
    units.

    Parameters
    ----------
    problem : NetTrimProblem
        The program, float32 or float64 (``settings.precision`` sets the precision of the
        iterations; the result is measured and certified in the problem's).
    settings : AdmmSettings, optional
        Penalties, tolerances, limits (defaults when ``None``).
    warm_start : ndarray of shape (d, m), AdmmState or SolverResult, optional
        Initial weights (e.g. the solution for a nearby ``eps``), or the whole state a
        solve ended in (:class:`AdmmState`: weights, multipliers and penalties), or a
        result of :func:`solve_admm` (its ``info.extra["state"]`` when it kept one, else
        its weights). A state from a program with another number of rows (or one solved
        through the range reduction when this one is not, or the reverse) gives its
        weights only.
    verbose : bool
        Print one line per certificate check.
    callback : callable, optional
        Called at every certificate check (every ``settings.check_every`` iterations) with
        an :class:`AdmmIterate`: iteration, certified gap, feasibility, residuals. It only
        observes: the iterations and the returned weights are the same with or without
        it, bit for bit (an exception it raises ends the solve and reaches the caller).
    keep_state : bool
        Put the :class:`AdmmState` the solve ended in into ``info.extra["state"]``, to
        start another solve from it (a reweighting round: a third to a half fewer
        iterations than from the weights alone on the bundled network's layers).

    Returns
    -------
    SolverResult
        ``W = S`` (exactly sparse; or the point of the active-set finish, when the solve
        ended there), status, and ``info`` measured on those weights, with the dual bound
        and gap of the certificate; ``info.extra`` holds the final penalties, the number
        of penalty updates, the working precision, the mean iterations per column
        (``column_iterations``: fewer than ``iterations`` when columns were set aside),
        the polish figures and the finish's (``active_set_attempts``, ``_rounds`` of the
        one kept, ``_work`` in iterations, ``_seconds``) and the exact solves' of lagging
        columns (``exact_attempts``, ``exact_columns`` solved and set aside,
        ``exact_seconds``). An infeasible program returns
        no weights and ``info.infeasibility_certificate``, the Farkas ray that proves it.
    """
    settings = settings or AdmmSettings()
    _check_entry_weights(problem)
    warm_start = _check_warm_start(warm_start, problem.shape)
    if _reducible(problem, settings):
        result = _solve_reduced(problem, settings, warm_start, verbose, callback, keep_state)
        if result is not None:
            return result
    run = _prepare(problem, settings, warm_start, keep_state=keep_state)
    stop = _iterate(run, settings, verbose, callback)
    return _report(run, settings, stop)


def _check_warm_start(warm_start: WarmStart, shape: tuple[int, int, int]) -> WarmStart:
    """``warm_start`` as an array or an :class:`AdmmState` of the program's ``(d, m)``."""
    if isinstance(warm_start, SolverResult):
        warm_start = warm_start.info.extra.get("state", warm_start.W)
    if warm_start is None:
        return None
    _, d, m = shape
    if not isinstance(warm_start, AdmmState):
        warm_start = np.asarray(warm_start)
        if warm_start.shape != (d, m):
            raise ValueError(
                f"warm_start has weights of shape {warm_start.shape}; expected {(d, m)}"
            )
        return warm_start
    st = warm_start
    wanted = {"W": (d, m), "S": (d, m), "dual_s": (d, m), "rho_z": (m,), "rho_s": (m,)}
    wanted.update(Z=(st.Z.shape[0], m), dual_z=(st.Z.shape[0], m))  # k rows: n or the rank
    for name, want in wanted.items():
        got = getattr(st, name).shape
        if got != want:
            raise ValueError(f"warm_start is an AdmmState whose {name} has shape {got}; "
                             f"this program needs {want}")  # fmt: skip
    return warm_start


def _check_entry_weights(problem: NetTrimProblem) -> None:
    if problem.entry_weights is None:
        return
    weights = problem.weight_matrix()
    penalized_rows = problem.l1_weights > 0
    if not (np.isfinite(weights).all() and (weights[penalized_rows] > 0).all()):
        raise ValueError(
            "problem.entry_weights must be finite and > 0 on every penalized row for "
            "solve_admm (a zero weight leaves an entry free; use solve_exact for that)"
        )


def _reducible(problem: NetTrimProblem, settings: AdmmSettings) -> bool:
    """Whether the solve goes through the range reduction (``AdmmSettings.reduce_range``)."""
    n, d, _ = problem.shape
    return bool(
        settings.reduce_range
        and problem.active is None
        and problem.program.has_ball
        and n >= settings.reduce_min_ratio * d
    )


def _solve_reduced(
    problem: NetTrimProblem,
    settings: AdmmSettings,
    warm_start: WarmStart,
    verbose: bool,
    callback: AdmmCallback | None = None,
    keep_state: bool = False,
) -> SolverResult | None:
    """(P2) through its reduction to the range of ``X``; ``None`` when the targets are
    farther than the radius from the range (the unreduced ADMM then proves the program
    infeasible).

    The ADMM runs on ``R W`` against ``C = P^T Y`` (:class:`.linalg.RotatedReduction`, in
    the rotated form) with the radius left inside the range. That program has the same
    feasible ``W`` (up to the rank cutoff) and the same objective, so its dual bound bounds
    the original optimum: its multiplier ``L`` lifts to ``P L + mu O / ||O||_F`` (``O`` the
    targets' part outside the range, ``X^T O = 0``, with the best ``mu >= 0``), which is
    dual-feasible for the original with the same dual value. The returned weights are
    measured on the original program (:func:`_lift`).
    """
    started = time.perf_counter()
    rotation = rotate_to_range(problem.X, problem.Y, problem.gram)
    radius = problem.program.in_range(rotation.outside, problem.target_scale)
    if radius is None:
        return None
    reduced = NetTrimProblem(
        X=rotation.R.astype(problem.dtype),
        Y=rotation.C.astype(problem.dtype),
        active=None,
        upper=None,
        l1_weights=problem.l1_weights,
        entry_weights=problem.entry_weights,
        **radius,
    )
    reduction_seconds = time.perf_counter() - started
    run = _prepare(reduced, settings, warm_start, rotation, keep_state=keep_state)
    stop = _iterate(run, settings, verbose, callback)
    inner = _report(run, settings, stop)
    extra = {"range_rank": rotation.rank, "reduction_seconds": reduction_seconds}
    return _lift(problem, inner, settings, started, extra)


def _lift(
    problem: NetTrimProblem,
    inner: SolverResult,
    settings: AdmmSettings,
    started: float,
    extra: dict,
) -> SolverResult:
    """The reduced program's result as the original's: the weights measured on the
    original (one ``X W`` product), polished there when rounding left them outside, the
    reduced bound as the certificate (:func:`_solve_reduced`). A result without weights
    passes through (the reduced program is always feasible, so none is expected)."""
    S = inner.W
    if S is None:
        return inner
    col = problem.column_residuals(S)
    feasible = problem.is_feasible(col, 0.0, settings.feas_tol)
    polish_info: dict = {}
    if settings.polish and not feasible:
        S, polish_info = polish_support(problem, S, feas_tol=settings.feas_tol)
        col = problem.column_residuals(S)
        feasible = problem.is_feasible(col, 0.0, settings.feas_tol)
    residual = float(np.sqrt(np.sum(col**2)))
    objective, radius, excess = problem.program.measure(problem.l1(S), col, residual)
    status, message = inner.status, inner.info.message
    if status is Status.OPTIMAL and not feasible:
        status = Status.INACCURATE
        message += "; the returned weights are outside the constraints beyond feas_tol"
    info = replace(
        inner.info,
        seconds=time.perf_counter() - started,
        objective=objective,
        residual=residual,
        radius=radius,
        ball_excess=excess,
        violation=0.0,
        gap=objective - inner.info.dual_bound,
        message=message,
        extra={**inner.info.extra, **polish_info, **extra, "feasible": feasible},
    )
    return replace(inner, W=S, status=status, info=info)


class _Run:
    """One solve across its stages: the scaled program, the columns still iterating, what
    the columns set aside left behind, and the counters the report reads.

    Units: ``scaled`` is the caller's program with ``X``, ``Y``, ``V`` and the radius
    divided by ``sigma = ||X||_2`` (the program in ``W`` is unchanged), in the problem's
    precision; it measures, polishes and certifies the returned weights. ``X`` and ``gram``
    are that scaled ``X`` in the working precision, as the iterations use them. The columns
    (:class:`_Columns`) hold the program again in the working precision and
    column-normalized.
    """

    def __init__(
        self,
        *,
        problem: NetTrimProblem,
        settings: AdmmSettings,
        dtype: np.dtype,
        sigma: float,
        scaled: NetTrimProblem,
        gram: ShiftedGramSolver | ColumnGramSolver | RotatedGram,
        columns: _Columns,
        started: float,
        compile_seconds: float,
        keep_state: bool = False,
    ):
        self.dtype, self.sigma, self.scaled, self.gram = dtype, sigma, scaled, gram
        self.columns = columns
        self.X = columns.working.X
        self.started, self.compile_seconds = started, compile_seconds
        self.setup_seconds = time.perf_counter() - started
        self.n, self.d, self.m = n, d, m = problem.shape
        self.separable = scaled.program.separable
        self.y_max = scaled.target_scale[2] or 1.0  # the violation's scale (the log line's)
        self.radius_max = scaled.program.largest_radius() or 1.0
        # checks in a lower working precision ask the ball a little more, so that the
        # returned weights, measured again in the problem's precision, meet feas_tol
        # without a polish
        self.rounding = settings.mixed_rounding if dtype != problem.dtype else 0.0
        self.iteration = self.column_iterations = self.n_updates = self.n_checks = 0
        self.next_adapt = settings.adapt_every
        self.history: list[tuple[int, float, float]] = []
        # columns set aside (separable programs): their weights, multipliers, objective and
        # bound, added to the totals of the checks
        self.S_done = np.zeros((d, m), problem.dtype) if self.separable else None
        self.Lam_done = np.zeros((n, m)) if self.separable else None
        self.objective_done = self.lower_done = 0.0
        self.S_repaired: np.ndarray | None = None
        # the multiplier of the active-set finish, when the solve stopped there
        self.Lam_final: np.ndarray | None = None
        self.finish_work = 0.0  # the finish's attempts, in iterations of the whole layer
        self.finish_attempts = self.finish_rounds = self.finish_failures = 0
        self.finish_seconds = 0.0
        # the exact solves of lagging columns (separable programs with per-column balls)
        self.exact_attempts = self.exact_failures = self.exact_solved = 0
        self.exact_seconds = 0.0
        self.n_repaired = 0  # columns finished by a repair (those iterating when it succeeds)
        self.certificate: np.ndarray | None = None  # a Farkas ray, in the caller's columns
        self.keep_state = keep_state
        self.weights = problem.weight_matrix()  # the L1 weights, for the state (keep_state)
        # the AdmmState fields of the columns set aside (keep_state), in the caller's columns
        self.state_done: dict[str, np.ndarray] | None = None
        # columns solved outside the iterations (keep_state): (index, S, Lam) each
        self.solved_points: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.acceleration: _Acceleration | None = None

    def keep_done_state(self, done: np.ndarray) -> None:
        """Record the state of the columns ``done`` before they are set aside."""
        if not self.keep_state:
            return
        c = self.columns
        state = c.state(self.sigma)
        if self.state_done is None:
            self.state_done = {
                key: np.zeros((*value.shape[:-1], self.m)) for key, value in state.items()
            }
        for key, value in state.items():
            self.state_done[key][..., c.index[done]] = value[..., done]

    def keep_solved_state(self, index: np.ndarray, S: np.ndarray, Lam: np.ndarray) -> None:
        """Record, for the columns ``index`` (the caller's) solved outside the iterations,
        the iteration's fixed point at their weights ``S`` and multiplier ``Lam`` (of the
        scaled program): ``W = S``, ``Z = X S``, ``dual_z = Lam / sigma`` and ``dual_s =
        -X^T dual_z`` (the penalties as the iterations left them). A solve started from
        the state starts these columns at their solution, not at the iterate they left."""
        if self.keep_state:
            self.solved_points.append((index, S, Lam))

    def _at_solved_points(self, state: dict[str, np.ndarray]) -> None:
        """Put the points of :meth:`keep_solved_state` into ``state`` (in place)."""
        X = self.scaled.X
        for index, S, Lam in self.solved_points:
            state["W"][:, index] = state["S"][:, index] = S
            state["Z"][:, index] = (X @ S.astype(X.dtype, copy=False)) * self.sigma
            state["dual_z"][:, index] = Lam / self.sigma
            state["dual_s"][:, index] = -(X.T @ Lam.astype(X.dtype, copy=False))

    def final_state(self, S: np.ndarray) -> AdmmState:
        """The :class:`AdmmState` of every column: those set aside and those iterating,
        with ``S`` the weights returned (the iterate's unless the solve ended at a point of
        its own: a repair, the active-set finish, the polish)."""
        c = self.columns
        state = c.state(self.sigma)
        if self.state_done is not None:
            for key, value in self.state_done.items():
                value[..., c.index] = state[key]
            state = self.state_done
        self._at_solved_points(state)
        state["S"] = S.astype(np.float64)
        return AdmmState(**state, weights=self.weights)


def _prepare(
    problem: NetTrimProblem,
    settings: AdmmSettings,
    warm_start: WarmStart,
    rotation: RotatedReduction | None = None,
    *,
    keep_state: bool = False,
) -> _Run:
    """Scale the program, set the penalties and the start point (``Z = Proj_C(X W)``).

    With a ``rotation`` (``problem.X`` is its ``R``), the W-update is the rotated one.
    """
    dtype = working_dtype(problem, settings)
    compile_started = time.perf_counter()
    kernels.warm_up(dtype)
    if problem.dtype != dtype:
        kernels.warm_up(problem.dtype)  # measures and certificates
    compile_seconds = time.perf_counter() - compile_started
    started = time.perf_counter()
    prime_blas(dtype)  # counted in the solve's time
    # the working-precision copy runs the iterations; ``scaled`` (the problem's precision)
    # measures, certifies and polishes the returned weights
    working = _cast(problem, dtype)
    gram = _gram_solver(working, settings, rotation, dtype)
    sigma = float(np.sqrt(gram.lambda_max)) or 1.0
    scaled = scale_problem(problem, sigma)
    working = scale_problem(working, sigma) if working is not problem else scaled
    columns = _first_columns(problem, scaled, working, settings, reduced=rotation is not None)
    columns.free_rows_out = isinstance(gram, ColumnGramSolver)
    run = _Run(
        problem=problem,
        settings=settings,
        dtype=dtype,
        sigma=sigma,
        scaled=scaled,
        gram=gram.scaled(1.0 / sigma),
        columns=columns,
        started=started,
        compile_seconds=compile_seconds,
        keep_state=keep_state,
    )
    # the penalties adapt from the start again: carrying the schedule of the state (rarer
    # changes) took more iterations in the reweighting rounds of the bundled network's
    # layers (over eight times as many in one per-neuron round)
    _start(columns, run.X, warm_start, sigma)
    return run


def _gram_solver(working: NetTrimProblem, settings: AdmmSettings, rotation, dtype):
    """The W-update's solver: the rotated one of a reduced (P2), one Gram per column with
    ``column_grams`` when some column has free rows (off Omega, ``V = +inf``), else one
    Gram for all."""
    if rotation is not None:
        return rotation.gram(dtype)
    if settings.column_grams and working.active is not None and working.upper is not None:
        rows = working.active | np.isfinite(working.upper)
        if not rows.all():
            return ColumnGramSolver(working.X, rows)
    return ShiftedGramSolver(working.X)


def _first_columns(
    problem: NetTrimProblem,
    scaled: NetTrimProblem,
    working: NetTrimProblem,
    settings: AdmmSettings,
    *,
    reduced: bool = False,
) -> _Columns:
    """Every column, with its units ``beta_j``, initial penalties and a zero state
    (``reduced``: the program is a (P2) reduced to the range of ``X``)."""
    n, d, m = problem.shape
    # penalties per column: rho2 (S = W) always separates by column; rho1 (Z = X W) only
    # when the constraint set does (per-column balls, P3), since the projection onto a
    # layer-wide ball is the plain radial one only in an unweighted norm
    separable = scaled.program.separable
    beta, normalized = _normalize_columns(scaled, working, separable)
    if settings.rho is not None:
        rho1 = np.full(m, float(settings.rho))
    else:
        layer_rho = settings.reduced_rho if reduced else settings.default_rho
        rho1 = np.full(m, float(settings.separable_rho if separable else layer_rho))
    return _Columns(
        index=np.arange(m),
        scaled=scaled,
        working=working,
        normalized=normalized,
        beta=beta,
        rho1=rho1,
        rho2=rho1 * float(settings.ratio),
        weights=problem.weight_matrix(),
        st=_State(n, d, m, working.dtype),
    )


def _start(c: _Columns, X: np.ndarray, warm_start: WarmStart, sigma: float) -> None:
    """``W = S =`` the warm start (or 0), ``Z = Proj_C(X W)``, ``U = 0``: a feasible-set
    start; or the whole state of an :class:`AdmmState` of a program with as many rows."""
    st = c.st
    if isinstance(warm_start, AdmmState):
        if warm_start.Z.shape == st.Z.shape:
            c.load_state(warm_start, sigma)
            return
        warm_start = warm_start.S
    if warm_start is not None:
        st.W[...] = warm_start / c.beta_w
        st.S[...] = st.W
        np.matmul(X, st.W, out=st.XW)
        st.Z[...] = st.XW
    c.relax(st.XW, 1.0)
    c.project(st.XW, 1.0)
    st.U[...] = 0.0
    st.D[...] = st.Z


def _normalize_columns(
    scaled: NetTrimProblem, working: NetTrimProblem, separable: bool
) -> tuple[np.ndarray, NetTrimProblem]:
    """``(beta, normalized)``: the column units and the working program in them.

    Separable programs are solved column-normalized: column j in units of
    ``beta_j = ||y_j on Omega_j||`` (``W_j = beta_j W'_j``, L1 weight ``beta_j``), so that a
    neuron that is almost dead and one that is always on converge at the same pace.
    Measures and certificates stay in the problem's units (the multiplier maps as
    ``rho1_j / beta_j``). A layer-wide ball keeps ``beta = 1``.
    """
    m = scaled.shape[2]
    if not separable:
        return np.ones(m), working
    column_norms = scaled.target_scale[1]
    beta = np.where(column_norms > 0, column_norms, 1.0)
    beta_w = beta.astype(working.dtype)
    normalized = replace(
        working,
        Y=working.Y / beta_w,
        upper=None if working.upper is None else working.upper / beta_w,
        **working.program.in_column_units(beta),
    )
    return beta, normalized


def _iterate(
    run: _Run, settings: AdmmSettings, verbose: bool, callback: AdmmCallback | None = None
) -> Stop:
    """Iterate the splitting until one of the ways of :class:`Stop` applies."""
    run.acceleration = _Acceleration(run, settings) if settings.anderson_memory else None
    for iteration in range(1, settings.max_iter + 1):
        run.iteration = iteration
        # no local name for run.columns: a check that sets columns aside replaces them,
        # and the old ones' state must go before the acceleration copies its memory
        k = run.columns.index.size
        run.column_iterations += k
        checking = iteration % settings.check_every == 0
        adapting = settings.adaptive_rho and iteration >= run.next_adapt
        _step(run.columns, run, settings.alpha, with_stats=checking or adapting)
        if (
            settings.time_limit is not None
            and time.perf_counter() - run.started > settings.time_limit
        ):
            return Stop.TIME_LIMIT
        if checking or adapting:  # the residual figures serve only those two
            residuals = _Residuals(run.columns, settings, run.n, run.d)
            if checking:
                stop = _check(run, settings, residuals, verbose, callback)
                if stop is not None:
                    return stop
            if adapting and run.columns.index.size == k:
                _adapt(run, settings, residuals, iteration)
        if run.acceleration is not None and iteration < settings.max_iter:
            run.acceleration.after_iteration(run)  # last: it overwrites the statistics
    return Stop.MAX_ITER


def _step(c: _Columns, run: _Run, alpha: float, *, with_stats: bool) -> None:
    """One ADMM iteration on the columns still iterating (module docstring)."""
    st = c.st
    r = c.rho2 / c.rho1
    if isinstance(run.gram, RotatedGram):  # a reduced (P2): two products, not four
        run.gram.update(st.D, st.S, st.T, r, W=st.W, XW=st.XW, E=st.rhs)
    elif isinstance(run.gram, ColumnGramSolver):  # each column's free rows left out
        run.gram.adjoint(run.X, st.D, columns=c.index, out=st.rhs, work=st.XW)
        kernels.combine_rhs(st.rhs, st.S, st.T, r, st.rhs)
        run.gram.solve(st.rhs, r, columns=c.index, out=st.W)
        run.gram.product(run.X, st.W, columns=c.index, out=st.XW)
    else:
        np.matmul(run.X.T, st.D, out=st.rhs)  # D = Z - U, left by the previous projection
        kernels.combine_rhs(st.rhs, st.S, st.T, r, st.rhs)
        run.gram.solve(st.rhs, r, out=st.W, work=st.work)
        np.matmul(run.X, st.W, out=st.XW)
    c.relax(st.XW, alpha)
    c.project(st.XW, alpha, with_stats=with_stats)
    kernels.shrink_and_update(st.W, st.S, st.T, c.weights, c.beta / c.rho2, alpha, st.sstats)


class _Residuals:
    """Primal and dual residuals of both splittings and their tolerances (Boyd et al.
    2011, §3.3), from the per-column statistics the kernels left in the state."""

    def __init__(self, c: _Columns, settings: AdmmSettings, n: int, d: int):
        st, k = c.st, c.index.size
        self.zc, self.sc = np.sqrt(st.zstats), np.sqrt(st.sstats)  # per-column norms
        zt, stt = np.sqrt(st.zstats.sum(axis=1)), np.sqrt(st.sstats.sum(axis=1))
        self.zt = zt
        r1, s1 = zt[0], float(np.sqrt(np.sum((c.rho1 * self.zc[1]) ** 2)))
        r2, s2 = stt[0], float(np.sqrt(np.sum((c.rho2 * self.sc[1]) ** 2)))
        self.s1 = s1
        eps_pri = settings.tol_abs * np.sqrt(n * k + d * k) + settings.tol_rel * max(
            np.hypot(zt[2], stt[2]), np.hypot(zt[3], stt[3])
        )
        eps_dual = settings.tol_abs * np.sqrt(d * k) + settings.tol_rel * (
            float(np.sqrt(np.sum((c.rho1 * self.zc[4]) ** 2)))
            + float(np.sqrt(np.sum((c.rho2 * self.sc[4]) ** 2)))
        )
        self.primal, self.dual = float(np.hypot(r1, r2)), float(np.hypot(s1, s2))
        self.converged = self.primal <= eps_pri and self.dual <= eps_dual


class _Acceleration:
    """Anderson acceleration (:mod:`.anderson`) of blocks of ``anderson_interval``
    iterations, on the columns iterating.

    The fixed-point variable of the splitting is ``(Z + U, S + T)``: the points the two
    projections are taken from (``Z = Proj_C(Z + U)``, ``S = soft(S + T)``), from which the
    next iteration follows whole (the W-update reads only ``Z - U``, ``S`` and ``T``). It
    is weighted by ``sqrt(rho1_j)`` and ``sqrt(rho2_j)`` per column, the norm the
    iteration is nonexpansive in. An accelerated point goes back through both
    projections, so ``S`` stays exactly sparse and the checks certify it as any iterate.

    A coupled program (one ball for the layer) combines one vector, whose memory starts
    again whenever the map changes: new penalties or fewer columns. A separable one (a
    ball per neuron, or (P3)) is a map on each column alone, so every column keeps its
    own memory (:class:`~.anderson.ColumnAnderson`): it starts again only on that
    column's new penalties or refused step, and survives other columns being set aside
    (measured: a tenth to over a quarter fewer column iterations than one shared memory,
    which every set-aside restarted; ``docs/solvers.md``).
    """

    def __init__(self, run: _Run, settings: AdmmSettings):
        self.settings = settings
        self.per_column = run.separable
        # a W-update that leaves each column's free rows out makes their Z + U a function
        # of the other coordinates, not of the map's state: left out of the vector
        self.kept_rows = run.gram.mask if isinstance(run.gram, ColumnGramSolver) else None
        self.anderson: Anderson | ColumnAnderson | None = None
        self._restart(run.columns)

    def _restart(self, c: _Columns) -> None:
        st, s = c.st, self.settings
        self._weigh(c)
        shape = (st.Z.shape[0] + st.S.shape[0], st.Z.shape[1])
        if not self.per_column:
            shape = (shape[0] * shape[1],)
        if self.anderson is None or self.anderson.x.shape != shape:
            counts = (0, 0) if self.anderson is None else self.anderson.counts()
            self.anderson = None  # the old buffers go before the new ones come
            memory, safeguard = int(s.anderson_memory), s.anderson_safeguard
            if self.per_column:
                self.anderson = ColumnAnderson(*shape, memory, st.Z.dtype, safeguard=safeguard)
            else:
                self.anderson = Anderson(*shape, memory, st.Z.dtype, safeguard=safeguard)
            self.anderson.accepted, self.anderson.rejected = counts  # over the whole solve
        self.anderson.restart()
        self._read(c, self.anderson.x)
        self.steps = 0

    def _weigh(self, c: _Columns) -> None:
        """The columns and penalties the memory is for, and the norm's weights."""
        st = c.st
        self.columns, self.rho1, self.rho2 = c, c.rho1.copy(), c.rho2.copy()
        self.w1 = np.sqrt(c.rho1).astype(st.Z.dtype)
        self.w2 = np.sqrt(c.rho2).astype(st.Z.dtype)
        self.mask = None if self.kept_rows is None else self.kept_rows[:, c.index]

    def _follow(self, c: _Columns) -> bool:
        """Follow a change of the map since the last iteration; whether there was one
        (the block then starts again from the current state)."""
        if c is not self.columns and self.per_column:  # columns set aside: keep the rest's
            keep = np.isin(self.columns.index, c.index)
            self.columns = c  # the old columns' state goes before the memory is copied
            self.anderson.restrict(keep)
            self.rho1, self.rho2 = self.rho1[keep], self.rho2[keep]
            self.w1, self.w2 = self.w1[keep], self.w2[keep]
            self.mask = None if self.mask is None else self.mask[:, keep]
        elif c is not self.columns:
            self._restart(c)
            return True
        new = (c.rho1 != self.rho1) | (c.rho2 != self.rho2)
        if not new.any():
            return False
        if not self.per_column:
            self._restart(c)
            return True
        self._weigh(c)
        self.anderson.restart(new)
        self.anderson.accelerated[...] = False  # x is re-read: no accelerated point now
        self._read(c, self.anderson.x)
        self.steps = 0
        return True

    def after_iteration(self, run: _Run) -> None:
        c = run.columns
        if self._follow(c):
            return
        self.steps += 1
        if self.steps < self.settings.anderson_interval:
            return
        self.steps = 0
        self._read(c, self.anderson.f)
        # an accelerated point needs a whole block before the safeguard has looked at it:
        # none that the iteration limit would cut short (a solve stopped by max_iter
        # returns a point checked, or a plain iterate)
        interval = self.settings.anderson_interval
        if self.anderson.step(extrapolate=run.iteration + interval < self.settings.max_iter):
            self._load(c, self.anderson.x)

    def _views(self, c: _Columns, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        st = c.st
        if vector.ndim == 2:  # per column: (n + d, k), Z + U above S + T
            return vector[: st.Z.shape[0]], vector[st.Z.shape[0] :]
        return vector[: st.Z.size].reshape(st.Z.shape), vector[st.Z.size :].reshape(st.S.shape)

    def _read(self, c: _Columns, vector: np.ndarray) -> None:
        st = c.st
        v, q = self._views(c, vector)
        np.add(st.Z, st.U, out=v)
        v *= self.w1
        if self.mask is not None:
            v *= self.mask
        np.add(st.S, st.T, out=q)
        q *= self.w2

    def _load(self, c: _Columns, vector: np.ndarray) -> None:
        """The state whose fixed-point variable is ``vector``: both projections of it."""
        st = c.st
        v, q = self._views(c, vector)
        np.divide(v, self.w1, out=st.XW)
        st.U[...] = 0.0
        c.relax(st.XW, 1.0)  # from XW + U = v
        c.project(st.XW, 1.0, with_stats=False)
        np.divide(q, self.w2, out=st.rhs)
        st.T[...] = 0.0
        # alpha as _step passes it (a Python float: the kernel's compiled signature)
        kernels.shrink_and_update(st.rhs, st.S, st.T, c.weights, c.beta / c.rho2, 1.0, st.sstats)

    def figures(self) -> dict:
        """Accepted and rejected accelerated points, for ``info.extra`` (on a separable
        program, accelerated columns: each column's point counts once)."""
        return {
            "anderson_accepted": self.anderson.accepted,
            "anderson_rejected": self.anderson.rejected,
        }


def _check(
    run: _Run,
    settings: AdmmSettings,
    residuals: _Residuals,
    verbose: bool,
    callback: AdmmCallback | None,
) -> Stop | None:
    """Measure and certify the current ``S``, report it (``verbose``, ``callback``), then
    decide (:func:`_stop_at_check`)."""
    c = run.columns
    # checks measure in the working precision (its rounding is far below the tolerances);
    # the returned weights are measured again in the problem's
    figures = c.measure(c.weights_working())
    bounds = c.certifier.bound(
        c.st.U,
        c.rho1 / c.beta,
        XS=c.measure.XS,
        column_residuals=figures["column_residuals"],
        per_column=run.separable,
    )
    lower = float(np.sum(bounds)) + run.lower_done
    objective = figures["objective"] + run.objective_done
    feasible = _feasibility(c.working, figures, settings.feas_tol, run.rounding)
    rel_gap = (objective - lower) / max(abs(objective), _TINY)
    if verbose:
        print(
            f"admm {run.iteration:6d}  obj {objective:.6e}  lb {lower:.6e}  "
            f"gap {rel_gap:.2e}  excess/radius {figures['ball_excess'] / run.radius_max:.2e}"
            f"  viol/max|Y| {figures['violation'] / run.y_max:.2e}  "
            f"rho {np.median(c.rho1):.2e},{np.median(c.rho2):.2e}  columns {c.index.size}"
        )
    run.history.append((run.iteration, objective, lower))
    if callback is not None:
        callback(
            AdmmIterate(
                iteration=run.iteration,
                objective=float(objective),
                lower_bound=lower,
                gap=float(rel_gap),
                ball_excess=float(figures["ball_excess"] / run.radius_max),
                violation=float(figures["violation"] / run.y_max),
                feasible=bool(feasible),
                primal_residual=residuals.primal,
                dual_residual=residuals.dual,
                columns=int(c.index.size),
                seconds=time.perf_counter() - run.started,
            )
        )
    return _stop_at_check(run, settings, figures, bounds, feasible, rel_gap, residuals.converged)


def _stop_at_check(
    run: _Run,
    settings: AdmmSettings,
    figures: dict,
    bounds: np.ndarray,
    feasible: bool,
    rel_gap: float,
    converged: bool,
) -> Stop | None:
    """The stopping rules of a check, in order (see :class:`Stop`); ``None`` goes on.

    The last two act as they test: a Farkas test that fails keeps the multiplier for the
    next one, and columns that are done are set aside.
    """
    c = run.columns
    if feasible and rel_gap <= settings.gap_tol:
        return Stop.CERTIFIED
    if converged and feasible:
        return Stop.RESIDUALS
    if _finish_due(run, settings, rel_gap):
        if _finished(run, settings):
            return Stop.COLUMNS_DONE if run.separable else Stop.ACTIVE_SET
        if run.columns is not c:
            return None  # some columns were finished and set aside: the figures are stale
    if _exact_due(run, settings):
        if _solved_exactly(run, settings):
            return Stop.COLUMNS_DONE
        if run.columns is not c:
            return None
    gap_fraction = 1.0 if run.separable else settings.repair_gap_fraction
    if (
        settings.polish
        and rel_gap <= gap_fraction * settings.gap_tol
        and _repairable(c.working, figures, settings)
        and _repaired(run, settings)
    ):
        return Stop.REPAIRED
    run.n_checks += 1
    if run.n_checks % settings.farkas_every == 0 and _farkas_test(run, settings):
        return Stop.INFEASIBLE
    if run.separable and settings.freeze_columns and _set_aside(run, settings, figures, bounds):
        return Stop.COLUMNS_DONE
    return None


def _repaired(run: _Run, settings: AdmmSettings) -> bool:
    """Repair a certified point whose violations off Omega lag the gap (on its support);
    keep it (``run.S_repaired``) when it is feasible with a certified gap."""
    repaired = _repair(run.columns, settings)
    if repaired is None:
        return False
    S_fix, objective_fix, bound_fix, feasible_fix = repaired
    total = run.objective_done + objective_fix
    if feasible_fix and total - run.lower_done - bound_fix <= (
        settings.gap_tol * max(abs(total), _TINY)
    ):
        run.S_repaired, run.n_repaired = S_fix, run.columns.index.size
        return True
    return False


def _finish_due(run: _Run, settings: AdmmSettings, rel_gap: float) -> bool:
    """Whether to try the active-set finish at this check: a gap within
    ``active_set_gap``, the attempts so far within the budget, and more iterations left,
    at the rate the gap fell over the last checks (:func:`_iterations_left`), than the
    attempt costs (by ``active_set_payoff``, doubled by every attempt that kept
    nothing)."""
    if not settings.active_set or rel_gap > settings.active_set_gap or rel_gap <= settings.gap_tol:
        return False
    if run.finish_work > settings.active_set_budget * run.column_iterations / run.m:
        return False
    payoff = settings.active_set_payoff * 2.0**run.finish_failures
    return _iterations_left(run, settings, rel_gap) >= payoff * _finish_cost(run)


def _iterations_left(run: _Run, settings: AdmmSettings, rel_gap: float) -> float:
    """The iterations until the gap reaches ``gap_tol`` if it keeps falling at its mean
    rate over the last ``FINISH_RATE_CHECKS`` check intervals (``inf`` when it did not
    fall; the gap of an ADMM iterate is not monotone)."""
    if len(run.history) < 2:
        return 0.0
    back = min(FINISH_RATE_CHECKS, len(run.history) - 1)
    (it0, obj0, low0), (it1, _, _) = run.history[-1 - back], run.history[-1]
    before = (obj0 - low0) / max(abs(obj0), _TINY)
    if not rel_gap < before:
        return np.inf
    per_iteration = np.log(before / max(rel_gap, _TINY)) / (it1 - it0)
    return np.log(rel_gap / settings.gap_tol) / per_iteration


def _finish_cost(run: _Run) -> float:
    """The work of a finish from the current guess, in iterations of the whole layer
    (:mod:`.active_set`'s measure: about two column systems per column, five rounds; at
    most ``k - 1`` bounds held on a support of ``k`` entries, as the finish holds them)."""
    c = run.columns
    n, d, k = c.scaled.shape
    support = np.count_nonzero(c.st.S, axis=0).astype(np.float64)
    on = c.scaled.active
    if on is None:
        rows = held = np.zeros(k)
    else:
        held = np.count_nonzero(~on & (c.st.U > 0), axis=0).astype(np.float64)
        held = np.minimum(held, np.maximum(support - 1.0, 0.0))
        n_on = np.count_nonzero(on, axis=0)
        rows = np.minimum(n_on, n - n_on).astype(np.float64)
    work = 2 * float(np.sum(system_work(rows, support, held))) + (2 + 5 * 2) * n * d * k
    return _in_iterations(run, work)


def _in_iterations(run: _Run, work: float) -> float:
    """Multiply-adds of the finish (float64) in iterations of the whole layer: two
    ``n x d x m`` products and two ``d x d x m`` ones, at twice the rate in float32, and
    the iteration's fixed cost (``ITERATION_OVERHEAD``)."""
    n, d, m = run.n, run.d, run.m
    slower = 2.0 if run.dtype == np.float32 else 1.0
    return slower * work / (2.0 * (n + d) * d * m + slower * ITERATION_OVERHEAD)


def _finished(run: _Run, settings: AdmmSettings) -> bool:
    """Solve on the iterate's active set (:mod:`.active_set`) and keep what is feasible
    with a certified gap (:func:`_keep_finish`); whether the solve ends there. An attempt
    that keeps nothing doubles the payoff the next one must promise."""
    c = run.columns
    started = time.perf_counter()
    point = active_set_finish(c.scaled, c.weights_true(), c.st.U, feas_tol=settings.feas_tol)
    run.finish_work += _in_iterations(run, point.work)
    run.finish_attempts += 1
    run.finish_seconds += time.perf_counter() - started
    kept, ends = (False, False) if point.W is None else _keep_finish(run, settings, point)
    run.finish_failures += not kept
    return ends


def _keep_finish(run: _Run, settings: AdmmSettings, point: ActiveSetPoint) -> tuple[bool, bool]:
    """Measure and certify the finish's point in the problem's precision; keep, for a
    layer-wide ball, the point (``run.S_repaired``, ``run.Lam_final``), for a separable
    program every column that is feasible with a certified gap (:func:`_keep_columns`).
    ``(kept, ends)``."""
    c = run.columns
    if run.separable:
        point.XW = None
        kept, ends = _keep_columns(run, settings, point)
        run.finish_rounds += point.rounds if kept else 0
        return kept, ends
    meter = _Meter(c.scaled)
    figures = meter(point.W)
    bounds = DualCertifier(c.scaled).bound(
        point.Lam, 1.0, XS=meter.XS, column_residuals=figures["column_residuals"]
    )
    total = run.objective_done + float(figures["objective"])
    certified = total - run.lower_done - bounds <= settings.gap_tol * max(abs(total), _TINY)
    if not (certified and _feasibility(c.scaled, figures, settings.feas_tol)):
        return False, False
    run.S_repaired, run.Lam_final = point.W, point.Lam
    run.finish_rounds = point.rounds
    return True, True


def _keep_columns(
    run: _Run,
    settings: AdmmSettings,
    point: ActiveSetPoint | ExactColumns,
    *,
    at_solution: bool = False,
) -> tuple[bool, bool]:
    """Measure and certify the weights ``point.W`` and multiplier ``point.Lam`` of the
    columns iterating (a separable program) in the problem's precision, and set aside as
    done the columns ``point.solved`` that are feasible with a certified gap (with
    ``freeze_columns=False`` only every column at once); ``at_solution``: keep their state
    at that point (:meth:`_Run.keep_solved_state`). ``(kept, ends)``."""
    c = run.columns
    meter = _Meter(c.scaled)
    figures = meter(point.W)
    bounds = DualCertifier(c.scaled).bound(
        point.Lam, 1.0, XS=meter.XS, column_residuals=figures["column_residuals"], per_column=True
    )
    done = point.solved & _columns_done(c.scaled, figures, bounds, settings, 0.0)
    if not (done.all() or (settings.freeze_columns and done.any())):
        return False, False
    S_done, Lam_done, index = point.W[:, done], point.Lam[:, done], c.index[done]
    # the point's (n, m) arrays and the meter's go before the columns are restricted
    point.W = point.Lam = None
    del meter
    ends = _store_done(run, done, figures, bounds, S_done, Lam_done)
    if at_solution:
        run.keep_solved_state(index, S_done, Lam_done)
    return True, ends


def _exact_due(run: _Run, settings: AdmmSettings) -> bool:
    """Whether to solve the columns still iterating exactly (``exact_columns``): one ball
    per column, at most ``exact_columns`` columns left (others set aside), the iterations
    run at least ``EXACT_LAG`` times the mean of those set aside (twice that after every
    attempt that kept nothing), and the exact solves' estimated work at most what the
    iterations of these columns cost so far (a layer whose iterations are cheap lets the
    ADMM finish its laggards)."""
    c = run.columns
    left = c.index.size
    if not (0 < left <= settings.exact_columns and left < run.m):
        return False
    if not run.scaled.program.per_column:
        return False
    done_mean = (run.column_iterations - left * run.iteration) / (run.m - left)
    if run.iteration < EXACT_LAG * 2.0**run.exact_failures * done_mean:
        return False
    work = estimated_work(c.scaled, c.weights_true(), c.multiplier())
    return _in_iterations(run, work) <= run.iteration * left / run.m


def _solved_exactly(run: _Run, settings: AdmmSettings) -> bool:
    """Solve the columns iterating exactly (:mod:`.exact_columns`) and set aside those
    feasible with a certified gap (:func:`_keep_columns`); whether that was every one."""
    c = run.columns
    started = time.perf_counter()
    point = solve_columns(c.scaled, c.weights_true(), c.multiplier())
    left = c.index.size
    kept, ends = _keep_columns(run, settings, point, at_solution=True)
    run.exact_attempts += 1
    run.exact_failures += not kept
    run.exact_solved += left - (0 if ends else run.columns.index.size)
    run.exact_seconds += time.perf_counter() - started
    return ends


def _farkas_test(run: _Run, settings: AdmmSettings) -> bool:
    """Whether the multiplier's change since the last test is a Farkas ray (kept in
    ``run.certificate``, zero on the columns set aside); else remember the multiplier."""
    c = run.columns
    Lam = c.multiplier()
    ray = _farkas_ray(c.scaled, Lam - c.Lam_prev, settings.infeasibility_tol)
    if ray is None:
        c.Lam_prev[...] = Lam
        return False
    run.certificate = np.zeros((run.n, run.m))
    run.certificate[:, c.index] = ray
    return True


def _set_aside(run: _Run, settings: AdmmSettings, figures: dict, bounds: np.ndarray) -> bool:
    """Set aside the columns done (:func:`_columns_done`) once there are enough of them;
    whether that was every column."""
    c = run.columns
    done = _columns_done(c.working, figures, bounds, settings, run.rounding)
    if done.sum() < max(1.0, settings.freeze_fraction * c.index.size):
        return False
    return _store_done(run, done, figures, bounds, c.weights_true()[:, done], c.multiplier(done))


def _store_done(
    run: _Run, done: np.ndarray, figures: dict, bounds: np.ndarray, S: np.ndarray, Lam: np.ndarray
) -> bool:
    """Store the columns ``done`` (of those iterating) with their weights ``S`` and
    multipliers ``Lam`` (of those columns alone: no ``(n, m)`` array beyond the state
    while it is restricted) and iterate on the others; whether that was every column."""
    c = run.columns
    run.objective_done += float(np.sum(figures["column_objectives"][done]))
    run.lower_done += float(np.sum(bounds[done]))
    run.S_done[:, c.index[done]] = S
    run.keep_done_state(done)
    run.Lam_done[:, c.index[done]] = Lam
    if done.all():
        return True
    run.columns = c.restrict(~done)
    return False


def _adapt(run: _Run, settings: AdmmSettings, res: _Residuals, iteration: int) -> None:
    """Rebalance both penalties from the residuals (OSQP's rule, :func:`_balance`).

    Penalties adapt ever more rarely (the interval grows with each change), so they settle
    and the fixed-penalty convergence theory applies eventually.
    """
    c = run.columns
    zc, sc, zt = res.zc, res.sc, res.zt
    run.next_adapt = iteration + settings.adapt_every * (1 + run.n_updates)
    rho1, rho2 = c.rho1, c.rho2
    if run.separable:
        f1 = _balance(zc[0], np.maximum(zc[2], zc[3]), rho1 * zc[1], rho1 * zc[4])
    else:
        dual_scale = float(np.sqrt(np.sum((rho1 * zc[4]) ** 2)))
        f1 = np.full(c.index.size, _balance(zt[0], max(zt[2], zt[3]), res.s1, dual_scale))
    f2 = _balance(sc[0], np.maximum(sc[2], sc[3]), rho2 * sc[1], rho2 * sc[4])
    changed = False
    for f, rho, dual in ((f1, rho1, c.st.U), (f2, rho2, c.st.T)):
        f = np.where((f > settings.adapt_factor) | (f < 1 / settings.adapt_factor), f, 1.0)
        if np.any(f != 1.0):
            dual /= f.astype(run.dtype)  # keep the unscaled multiplier rho * dual fixed
            rho *= f
            changed = True
    run.n_updates += changed


def _report(run: _Run, settings: AdmmSettings, stop: Stop) -> SolverResult:
    """Measure, polish and certify the returned ``S`` in the problem's precision; report
    in the caller's units."""
    status, message = stop.status, stop.message(settings)
    if stop is Stop.INFEASIBLE:
        result = SolverResult.without_weights(
            status,
            solver="admm",
            seconds=time.perf_counter() - run.started,
            message=message,
            iterations=run.iteration,
            compile_seconds=run.compile_seconds,
        )
        info = replace(result.info, infeasibility_certificate=run.certificate)
        return replace(result, info=info)
    S, Lam = _assemble(run, stop)
    scaled = run.scaled
    measure, certifier = _Meter(scaled), DualCertifier(scaled)
    figures = measure(S)
    polish_info: dict = {}
    if settings.polish and not _feasibility(scaled, figures, settings.feas_tol):
        S, polish_info = polish_support(scaled, S, feas_tol=settings.feas_tol)
        figures = measure(S)
    lower = certifier.bound(Lam, 1.0, XS=measure.XS, column_residuals=figures["column_residuals"])
    feasible = _feasibility(scaled, figures, settings.feas_tol)
    if status is Status.OPTIMAL and not feasible:
        status = Status.INACCURATE
        message += "; the returned weights are outside the constraints beyond feas_tol"
    # the objective of W is unchanged by the scaling; the residual, radius, excess and
    # violation scale with sigma
    sigma = run.sigma
    final = {
        "objective": figures["objective"],
        **{key: figures[key] * sigma for key in ("residual", "radius", "ball_excess", "violation")},
    }
    info = SolveInfo(
        solver="admm",
        iterations=run.iteration,
        seconds=time.perf_counter() - run.started,
        dual_bound=lower,
        gap=final["objective"] - lower,
        per_column=run.scaled.program.per_column,
        compile_seconds=run.compile_seconds,
        message=message,
        extra={**_extra(run), "feasible": feasible, **polish_info},
        **final,
    )
    if run.keep_state:
        info.extra["state"] = run.final_state(S)
    return SolverResult(W=S, status=status, info=info)


def _assemble(run: _Run, stop: Stop) -> tuple[np.ndarray, np.ndarray]:
    """``(S, Lam)`` of every column: those set aside and those still iterating (repaired
    when the solve stopped at a repair)."""
    c, m = run.columns, run.m
    if stop is Stop.COLUMNS_DONE:
        return run.S_done, run.Lam_done
    S_iterating = c.weights_true() if run.S_repaired is None else run.S_repaired
    Lam_iterating = c.multiplier() if run.Lam_final is None else run.Lam_final
    if c.index.size == m:  # nothing set aside: the state is the whole program's
        return S_iterating, Lam_iterating
    S, Lam = run.S_done, run.Lam_done
    S[:, c.index] = S_iterating
    Lam[:, c.index] = Lam_iterating
    return S, Lam


def _extra(run: _Run) -> dict:
    """The ADMM's own figures for ``info.extra`` (documented in :func:`solve_admm`)."""
    c = run.columns
    return {
        "setup_seconds": run.setup_seconds,
        "rho": float(np.median(c.rho1)),
        "rho2": float(np.median(c.rho2)),
        "repaired_columns": run.n_repaired,
        "active_set_attempts": run.finish_attempts,
        "active_set_rounds": run.finish_rounds,
        "active_set_work": run.finish_work,
        "active_set_seconds": run.finish_seconds,
        "exact_attempts": run.exact_attempts,
        "exact_columns": run.exact_solved,
        "exact_seconds": run.exact_seconds,
        "penalty_updates": run.n_updates,
        "sigma": run.sigma,
        "woodbury": run.gram.woodbury,
        "column_grams": isinstance(run.gram, ColumnGramSolver),
        "precision": run.dtype.name,
        "column_iterations": run.column_iterations / max(run.m, 1),
        "history": run.history,
        **({} if run.acceleration is None else run.acceleration.figures()),
    }


class _Columns:
    """What a solve keeps per column, restricted together when columns are set aside.

    The same program three times, each with ``X``, ``Y``, ``V`` and the radius divided by
    ``sigma``: ``scaled`` in the problem's precision (the repair and the infeasibility
    test), ``working`` in the working precision (the checks' measures and certificates),
    and ``normalized``, that one in column units ``beta_j`` (separable programs; the
    kernels iterate on it). The state ``st`` is in the normalized units: ``S_j`` there is
    ``S_j / beta_j`` here.
    """

    def __init__(
        self,
        *,
        index,
        scaled,
        working,
        normalized,
        beta,
        rho1,
        rho2,
        weights,
        st,
        Lam_prev=None,
        free_rows_out=False,
    ):
        self.index, self.st = index, st
        # the W-update leaves each column's free rows out (ColumnGramSolver): they are not
        # of the splitting then, and the residuals the penalties and stops read skip them
        self.free_rows_out = free_rows_out
        self.scaled, self.working, self.normalized = scaled, working, normalized
        self.beta, self.rho1, self.rho2, self.weights = beta, rho1, rho2, weights
        self.beta_w = beta.astype(normalized.dtype)
        self.beta_true = beta.astype(scaled.dtype)
        self.measure = _Meter(working)
        self.certifier = DualCertifier(working)
        self.Lam_prev = np.zeros(st.U.shape) if Lam_prev is None else Lam_prev
        self.kernel_args = normalized.kernel_arrays()

    # scalars and factors reach the kernels in the working precision: a float64 operand
    # would promote every float32 element and halve the SIMD width (twice the time)
    def relax(self, XW: np.ndarray, alpha: float) -> None:
        st = self.st
        Y, active, _, _, all_active = self.kernel_args
        alpha = XW.dtype.type(alpha)
        kernels.relax_and_measure(XW, st.Z, st.U, Y, active, alpha, all_active, st.col_sq)

    def project(self, XW: np.ndarray, alpha: float, with_stats: bool = True) -> None:
        st = self.st
        program = self.normalized.program
        scale = program.projection_scale(st.col_sq, self.rho1, self.beta).astype(XW.dtype)
        kernels.project_and_update(
            XW,
            *self.kernel_args,
            XW.dtype.type(alpha),
            scale,
            st.Z,
            st.U,
            st.D,
            st.zstats,
            with_stats,
            self.free_rows_out,
        )

    def weights_true(self) -> np.ndarray:
        """``S`` in the problem's units and precision."""
        return np.multiply(self.st.S, self.beta_true, dtype=self.scaled.dtype)

    def weights_working(self) -> np.ndarray:
        """``S`` in the problem's units, working precision."""
        return self.st.S * self.beta_w

    def multiplier(self, columns: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The multiplier ``Lam = (rho1_j / beta_j) U`` of ``Z = X W`` (of ``columns``),
        float64."""
        return (self.rho1[columns] / self.beta[columns]) * self.st.U[:, columns]

    def state(self, sigma: float) -> dict[str, np.ndarray]:
        """The :class:`AdmmState` fields of these columns in the caller's units (float64):
        the iterations run on the data divided by ``sigma`` and, per column, in units
        ``beta_j`` (:func:`_normalize_columns`)."""
        st, beta, rho1, rho2 = self.st, self.beta, self.rho1, self.rho2
        as64 = np.float64
        return {
            "W": st.W.astype(as64) * beta,
            "S": st.S.astype(as64) * beta,
            "Z": st.Z.astype(as64) * (beta * sigma),
            "dual_z": st.U.astype(as64) * (rho1 / (beta * sigma)),
            "dual_s": st.T.astype(as64) * (rho2 / beta),
            "rho_z": rho1 / (sigma * beta) ** 2,
            "rho_s": rho2 / beta**2,
        }

    def load_state(self, state: AdmmState, sigma: float) -> None:
        """Start from ``state`` (the inverse of :meth:`state`)."""
        st, beta = self.st, self.beta
        rho1 = state.rho_z * (sigma * beta) ** 2
        if not self.normalized.program.separable:
            rho1 = np.full(rho1.shape, float(np.median(rho1)))  # one penalty for one ball
        self.rho1[...] = rho1
        self.rho2[...] = state.rho_s * beta**2
        st.W[...] = state.W / beta
        st.S[...] = state.S / beta
        st.Z[...] = state.Z / (beta * sigma)
        st.U[...] = state.dual_z * ((beta * sigma) / self.rho1)
        st.T[...] = state.dual_s * (beta / self.rho2)
        np.subtract(st.Z, st.U, out=st.D)
        self.Lam_prev[...] = self.multiplier()  # the Farkas test looks at changes from here

    def restrict(self, keep: np.ndarray) -> _Columns:
        weights = self.weights
        if weights.shape[1] > 1:
            weights = np.ascontiguousarray(weights[:, keep])
        scaled = self.scaled.columns(keep)
        clone = _Columns(
            index=self.index[keep],
            scaled=scaled,
            working=scaled if self.working is self.scaled else self.working.columns(keep),
            normalized=self.normalized.columns(keep),
            beta=self.beta[keep],
            rho1=self.rho1[keep],
            rho2=self.rho2[keep],
            weights=weights,
            st=self.st.restrict(keep),
            Lam_prev=np.ascontiguousarray(self.Lam_prev[:, keep]),
            free_rows_out=self.free_rows_out,
        )
        return clone


def _columns_done(
    problem: NetTrimProblem,
    figures: dict,
    bounds: np.ndarray,
    settings: AdmmSettings,
    rounding: float,
) -> np.ndarray:
    """Columns of a separable program that are feasible with a certified gap of their own."""
    done = problem.feasible_columns(
        figures["column_residuals"], figures["column_violations"], settings.feas_tol, rounding
    )
    objective = figures["column_objectives"]
    return done & (objective - bounds <= settings.gap_tol * np.maximum(np.abs(objective), _TINY))


def _repairable(problem: NetTrimProblem, figures: dict, settings: AdmmSettings) -> bool:
    """Whether only a violation off Omega, not too large, keeps a point from feasibility."""
    feas_tol = settings.feas_tol
    return (
        problem.is_feasible(figures["column_residuals"], 0.0, feas_tol)
        and figures["violation"]
        <= settings.repair_max_violation * feas_tol * problem.target_scale[2]
    )


def _repair(c: _Columns, settings: AdmmSettings) -> tuple[np.ndarray, float, float, bool] | None:
    """:func:`.polish.repair_violations` on the current ``S`` (of the columns iterating).

    Measured and certified in the problem's precision, with the bound of the relaxed
    program at the repaired point (as in the checks). Returns the repaired weights, their
    objective, the dual bound and whether they are feasible; ``None`` when nothing moved.
    """
    S = c.weights_true()
    repaired = repair_violations(c.scaled, S, feas_tol=settings.feas_tol)
    if repaired is S:
        return None
    meter = _Meter(c.scaled)
    figures = meter(repaired)
    bound = DualCertifier(c.scaled).bound(
        c.st.U, c.rho1 / c.beta, XS=meter.XS, column_residuals=figures["column_residuals"]
    )
    feasible = _feasibility(c.scaled, figures, settings.feas_tol)
    return repaired, float(figures["objective"]), float(bound), feasible


def _balance(r, r_scale, s, s_scale):
    """OSQP's balancing factor ``sqrt((r / r_scale) / (s / s_scale))``, element-wise.

    1 where it is undefined (a zero residual or scale).
    """
    r, r_scale, s, s_scale = (np.asarray(v, dtype=np.float64) for v in (r, r_scale, s, s_scale))
    ok = (r > _TINY) & (s > _TINY) & (r_scale > _TINY) & (s_scale > _TINY)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.sqrt((r / r_scale) / (s / s_scale))
    return np.where(ok, f, 1.0)[()]


__all__ = [
    "MIXED_PRECISION_MIN_TOL",
    "AdmmCallback",
    "AdmmIterate",
    "AdmmSettings",
    "AdmmState",
    "Stop",
    "WarmStart",
    "feasible_multiplier",
    "scale_problem",
    "solve_admm",
    "working_dtype",
]

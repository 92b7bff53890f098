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
that is a Farkas ray proves the program infeasible.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from . import kernels
from .duality import DualCertifier, feasible_multiplier
from .linalg import ShiftedGramSolver
from .polish import polish_support, repair_violations
from .problem import NetTrimProblem
from .result import SolveInfo, SolverResult, Status

_TINY = 1e-30
#: The infeasibility test (one extra product) runs at every this many certificate checks.
FARKAS_EVERY = 5
#: Columns are set aside (``freeze_columns``) once at least this fraction of those still
#: iterating are done: fewer, larger compactions.
FREEZE_FRACTION = 0.1
#: Initial penalty ``rho1`` of a layer-wide ball (``AdmmSettings.rho=None``), on data scaled
#: to ``||X||_2 = 1``.
DEFAULT_RHO = 1.0
#: ... and of a separable program, solved column-normalized (unit targets per column). Set
#: by measurement: against 1.0 it took 12% fewer column iterations over the bundled
#: network's layers at eps 0.01-0.3 and 27% fewer on random per-neuron and (P3) layers
#: (``docs/solvers.md``).
SEPARABLE_RHO = 100.0
#: Choices of ``AdmmSettings.precision``.
PRECISIONS = ("auto", "float32", "float64")
#: ``precision="auto"`` iterates in float32 only when both tolerances are at least this:
#: float32 iterates carry relative errors near 1e-6, a thousand times below it.
MIXED_PRECISION_MIN_TOL = 1e-4
#: Checks of mixed-precision iterations take this much (relative to the targets' norm) off
#: the ball's tolerance: a float32 measure of a residual errs by about 1e-6 of the targets.
MIXED_ROUNDING = 1e-5
#: A certified point is repaired (:func:`.polish.repair_violations`) when its ball is met
#: and its violation off Omega is at most this many times the tolerance.
REPAIR_MAX_VIOLATION = 10.0
#: ... and, for a layer-wide ball, its gap at most this fraction of ``gap_tol``: the repair
#: adds to the L1 norm and moves every column. (Separable programs try at any certified gap:
#: the columns still iterating are few by then, and an attempt is cheap.)
REPAIR_GAP_FRACTION = 0.8
REPAIRED_MESSAGE = "feasible with a certified duality gap after a repair of its violations"
COLUMNS_DONE_MESSAGE = "every column feasible with a certified duality gap of its own"


@dataclass(frozen=True)
class AdmmSettings:
    """Settings of :func:`solve_admm` (OSQP-style: one object, defaults that work).

    Attributes
    ----------
    rho : float or None
        Initial penalty of ``Z = X W`` on the scaled data; ``None`` takes
        ``DEFAULT_RHO`` for a layer-wide ball and ``SEPARABLE_RHO`` for separable programs
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
        ``MIXED_PRECISION_MIN_TOL``, every radius is positive (``eps = 0`` asks for
        exact fits) and there are at least as many samples as rows (the Woodbury form of
        the solve cancels digits that float32 does not have), else in the problem's
        precision.
    freeze_columns : bool
        Separable programs (per-column balls, (P3)): at a check, set aside the columns that
        are feasible with a certified gap of their own and iterate on the others only, so
        a layer costs the sum of its columns' iterations, not its slowest column's times
        the width.
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

    def __post_init__(self) -> None:
        if self.rho is not None and not self.rho > 0:
            raise ValueError(f"AdmmSettings.rho must be > 0 or None, got {self.rho!r}")
        positive = ("ratio", "tol_rel", "gap_tol", "feas_tol", "infeasibility_tol")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"AdmmSettings.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.alpha < 2:
            raise ValueError(f"AdmmSettings.alpha must be in (0, 2), got {self.alpha!r}")
        if self.tol_abs < 0:
            raise ValueError(f"AdmmSettings.tol_abs must be >= 0, got {self.tol_abs!r}")
        for name in ("max_iter", "check_every", "adapt_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AdmmSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"AdmmSettings.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
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


def working_dtype(problem: NetTrimProblem, settings: AdmmSettings) -> np.dtype:
    """The dtype the iterations run in (see ``AdmmSettings.precision``)."""
    if settings.precision != "auto":
        return np.dtype(settings.precision)
    loose = min(settings.gap_tol, settings.feas_tol) >= MIXED_PRECISION_MIN_TOL
    # a zero radius on a column with targets asks for an exact fit (dead neurons, with
    # nothing on Omega, have a zero radius that asks nothing)
    targets = problem.target_scale[1] if problem.per_column else problem.target_scale[0]
    exact_fit = not problem.penalized and bool(
        np.any((np.asarray(problem.radius) <= 0) & (np.asarray(targets) > 0))
    )
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
    radius = problem.radius / sigma if problem.per_column else float(problem.radius) / sigma
    return replace(
        problem,
        X=problem.X * inv,
        Y=problem.Y * inv,
        upper=None if problem.upper is None else problem.upper * inv,
        radius=radius,
        penalty=None if problem.penalty is None else problem.penalty * sigma**2,
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


def _ball_scale(
    problem: NetTrimProblem, col_sq: np.ndarray, rho1: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Per-column factor of the projection (or prox) on Omega (columns scaled by ``beta``).

    (P3) on a column divided by ``beta_j`` has the penalty ``lam * beta_j`` relative to its
    L1 weight ``beta_j``: its prox weighs ``lam * beta_j**2`` against ``rho1_j``.
    """
    if problem.penalized:
        return rho1 / (problem.penalty * beta**2 + rho1)
    if problem.per_column:
        norms = np.sqrt(col_sq)
        return np.where(norms > problem.radius, problem.radius / np.maximum(norms, _TINY), 1.0)
    norm = float(np.sqrt(col_sq.sum()))
    radius = float(problem.radius)
    return np.full(col_sq.shape[0], radius / norm if norm > radius else 1.0)


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
        l1 = float(column_l1.sum())
        if p.penalized:
            objective, radius, excess = l1 + 0.5 * p.penalty * residual**2, np.nan, np.nan
        elif p.per_column:
            objective, radius = l1, float(np.max(p.radius, initial=0.0))
            excess = float(max(0.0, np.max(col - p.radius, initial=0.0)))
        else:
            objective, radius = l1, float(p.radius)
            excess = max(0.0, residual - radius)
        return {
            "objective": objective,
            "residual": residual,
            "radius": radius,
            "ball_excess": excess,
            "violation": violation,
            "column_residuals": col,
            "column_objectives": column_l1 + 0.5 * p.penalty * self.col_sq
            if p.penalized
            else column_l1,
            "column_violations": self.col_worst.copy(),
        }


def _farkas_ray(problem: NetTrimProblem, delta: np.ndarray, tol: float) -> bool:
    """Whether ``delta`` (a change of the multiplier) certifies that ``C`` misses range(X).

    The program is infeasible iff some ``D`` with ``X^T D = 0`` and ``D >= 0`` off Omega has
    a negative support value ``<D_Omega, Y> + radius ||D_Omega|| + <D_off, V>``.
    """
    size = float(np.abs(delta).max(initial=0.0))
    if size <= _TINY or (problem.penalized and problem.active is None):
        return False
    D = delta / size
    active = problem.active
    if active is not None:
        D = np.where(~active & (D < 0), 0.0, D)
    if float(np.abs(problem.X.T @ D.astype(problem.dtype)).max()) > tol * np.sqrt(D.shape[0]):
        return False
    D_on = D if active is None else np.where(active, D, 0.0)
    support = float(np.vdot(D_on, problem.Y))
    if active is not None:
        V = problem.upper_bounds()
        off = ~active & (D > 0)
        if np.isposinf(V[off]).any():
            return False
        support += float(np.sum(D[off] * V[off]))
    if not problem.penalized:
        if problem.per_column:
            support += float(np.linalg.norm(D_on, axis=0) @ problem.radius)
        else:
            support += float(problem.radius) * float(np.linalg.norm(D_on))
    scale = float(np.abs(problem.Y).max(initial=0.0)) + 1.0
    return support < -tol * scale * 1e3


def solve_admm(
    problem: NetTrimProblem,
    settings: AdmmSettings | None = None,
    *,
    warm_start: np.ndarray | None = None,
    verbose: bool = False,
) -> SolverResult:
    """Solve (P1), (P2) or (P3) by ADMM (see the module docstring for the iteration).

    Parameters
    ----------
    problem : NetTrimProblem
        The program, float32 or float64 (``settings.precision`` sets the precision of the
        iterations; the result is measured and certified in the problem's).
    settings : AdmmSettings, optional
        Penalties, tolerances, limits (defaults when ``None``).
    warm_start : ndarray of shape (d, m), optional
        Initial weights (e.g. the solution for a nearby ``eps``).
    verbose : bool
        Print one line per certificate check.

    Returns
    -------
    SolverResult
        ``x = S`` (exactly sparse), status, and ``info`` measured on ``S`` itself, with the
        dual bound and gap of the certificate; ``info.extra`` holds the final penalties,
        the number of penalty updates, the working precision, the mean iterations per
        column (``column_iterations``: fewer than ``iterations`` when columns were set
        aside) and the polish figures.
    """
    settings = settings or AdmmSettings()
    weights = problem.weight_matrix()
    if problem.entry_weights is not None:
        penalized_rows = problem.l1_weights > 0
        if not (np.isfinite(weights).all() and (weights[penalized_rows] > 0).all()):
            raise ValueError(
                "problem.entry_weights must be finite and > 0 on every penalized row for "
                "solve_admm (a zero weight leaves an entry free; use solve_exact for that)"
            )
    dtype = working_dtype(problem, settings)
    compile_started = time.perf_counter()
    kernels.warm_up(dtype)
    if problem.dtype != dtype:
        kernels.warm_up(problem.dtype)  # measures and certificates
    compile_seconds = time.perf_counter() - compile_started
    started = time.perf_counter()

    n, d, m = problem.shape
    # ``sp`` (the problem's precision) measures, certifies and polishes the returned
    # weights; ``it`` (its copy in the working precision) runs the iterations
    it = _cast(problem, dtype)
    gram = ShiftedGramSolver(it.X)
    sigma = float(np.sqrt(gram.lambda_max)) or 1.0
    sp = scale_problem(problem, sigma)
    it = scale_problem(it, sigma) if it is not problem else sp
    gram = gram.scaled(1.0 / sigma)
    X = it.X
    # penalties per column: rho2 (S = W) always separates by column; rho1 (Z = X W) only
    # when the constraint set does (per-column balls, P3), since the projection onto a
    # layer-wide ball is the plain radial one only in an unweighted norm
    separable = sp.per_column or sp.penalized
    # Separable programs are also solved column-normalized: column j in units of
    # beta_j = ||y_j on Omega_j|| (W_j = beta_j W'_j, L1 weight beta_j), so that a neuron that
    # is almost dead and one that is always on converge at the same pace. Measures and
    # certificates stay in the problem's units (the multiplier maps as rho1_j / beta_j).
    beta = np.ones(m)
    work = it
    if separable:
        column_norms = sp.target_scale[1]
        beta = np.where(column_norms > 0, column_norms, 1.0)
        work = replace(
            it,
            Y=it.Y / beta.astype(dtype),
            upper=None if it.upper is None else it.upper / beta.astype(dtype),
            radius=it.radius / beta if it.per_column else it.radius,
        )
    if settings.rho is not None:
        rho1 = np.full(m, float(settings.rho))
    else:
        rho1 = np.full(m, SEPARABLE_RHO if separable else DEFAULT_RHO)
    c = _Columns(
        index=np.arange(m),
        sp=sp,
        it=it,
        work=work,
        beta=beta,
        rho1=rho1,
        rho2=rho1 * float(settings.ratio),
        weights=weights,
        st=_State(n, d, m, dtype),
    )
    y_max = sp.target_scale[2] or 1.0  # the violation's scale (and its set-up cost)
    radius_max = (float(np.max(sp.radius, initial=0.0)) if not sp.penalized else 0.0) or 1.0
    # checks in a lower working precision ask the ball a little more, so that the returned
    # weights, measured again in the problem's precision, meet feas_tol without a polish
    rounding = MIXED_ROUNDING if dtype != problem.dtype else 0.0
    setup_seconds = time.perf_counter() - started
    st = c.st
    if warm_start is not None:
        st.W[...] = warm_start / c.beta_w
        st.S[...] = st.W
        np.matmul(X, st.W, out=st.XW)
        st.Z[...] = st.XW
    # Z <- Proj_C(X W): a feasible-set start (U = 0)
    c.relax(st.XW, 1.0)
    c.project(st.XW, 1.0)
    st.U[...] = 0.0
    st.D[...] = st.Z

    # columns set aside (separable programs): their weights and multipliers
    S_done = np.zeros((d, m), problem.dtype) if separable else None
    Lam_done = np.zeros((n, m)) if separable else None
    column_iterations = 0
    objective_done = lower_done = 0.0  # their objective and bound, in the totals below
    status = Status.MAX_ITER
    message = f"reached max_iter={settings.max_iter}"
    n_updates = 0
    next_adapt = settings.adapt_every
    n_checks = 0
    polish_info: dict = {}
    S_repaired = None
    n_repaired = 0  # columns finished by a repair (those still iterating when it succeeds)
    all_set_aside = False
    iteration = 0
    history = []
    for iteration in range(1, settings.max_iter + 1):
        st, k = c.st, c.index.size
        column_iterations += k
        checking = iteration % settings.check_every == 0
        adapting = settings.adaptive_rho and iteration >= next_adapt
        r = c.rho2 / c.rho1
        np.matmul(X.T, st.D, out=st.rhs)  # D = Z - U, left by the previous projection
        kernels.combine_rhs(st.rhs, st.S, st.T, r, st.rhs)
        gram.solve(st.rhs, r, out=st.W, work=st.work)
        np.matmul(X, st.W, out=st.XW)
        c.relax(st.XW, settings.alpha)
        c.project(st.XW, settings.alpha, with_stats=checking or adapting)
        kernels.shrink_and_update(
            st.W, st.S, st.T, c.weights, c.beta / c.rho2, settings.alpha, st.sstats
        )

        if settings.time_limit is not None and time.perf_counter() - started > settings.time_limit:
            message = f"reached time_limit={settings.time_limit}s"
            break
        if not (checking or adapting):
            continue  # the residual figures below serve only those two
        zc, sc = np.sqrt(st.zstats), np.sqrt(st.sstats)  # per-column norms
        zt, stt = np.sqrt(st.zstats.sum(axis=1)), np.sqrt(st.sstats.sum(axis=1))
        r1, s1 = zt[0], float(np.sqrt(np.sum((c.rho1 * zc[1]) ** 2)))
        r2, s2 = stt[0], float(np.sqrt(np.sum((c.rho2 * sc[1]) ** 2)))
        eps_pri = settings.tol_abs * np.sqrt(n * k + d * k) + settings.tol_rel * max(
            np.hypot(zt[2], stt[2]), np.hypot(zt[3], stt[3])
        )
        eps_dual = settings.tol_abs * np.sqrt(d * k) + settings.tol_rel * (
            float(np.sqrt(np.sum((c.rho1 * zc[4]) ** 2)))
            + float(np.sqrt(np.sum((c.rho2 * sc[4]) ** 2)))
        )
        residuals_met = np.hypot(r1, r2) <= eps_pri and np.hypot(s1, s2) <= eps_dual

        if checking:
            # checks measure in the working precision (its rounding is far below the
            # tolerances); the returned weights are measured again in the problem's
            S_true = c.weights_working()
            figures = c.measure(S_true)
            bounds = c.certifier.bound(
                st.U,
                c.rho1 / c.beta,
                XS=c.measure.XS,
                column_residuals=figures["column_residuals"],
                per_column=separable,
            )
            lower = float(np.sum(bounds)) + lower_done
            objective = figures["objective"] + objective_done
            gap = objective - lower
            feasible = _feasibility(c.it, figures, settings.feas_tol, rounding)
            rel_gap = gap / max(abs(objective), _TINY)
            if verbose:
                print(
                    f"admm {iteration:6d}  obj {objective:.6e}  lb {lower:.6e}  "
                    f"gap {rel_gap:.2e}  excess/radius {figures['ball_excess'] / radius_max:.2e}"
                    f"  viol/max|Y| {figures['violation'] / y_max:.2e}  "
                    f"rho {np.median(c.rho1):.2e},{np.median(c.rho2):.2e}  columns {k}"
                )
            history.append((iteration, objective, lower))
            if feasible and rel_gap <= settings.gap_tol:
                status, message = Status.OPTIMAL, "feasible with a certified duality gap"
                break
            if residuals_met and feasible:
                # the gap may lag when the multiplier estimate is poor; converged residuals
                # with a feasible point are the classical ADMM optimality test
                status, message = Status.OPTIMAL, "primal and dual residuals converged"
                break
            if (
                settings.polish
                and rel_gap <= (1.0 if separable else REPAIR_GAP_FRACTION) * settings.gap_tol
                and _repairable(c.it, figures, settings.feas_tol)
            ):
                # certified, and outside the constraints only by violations off Omega that
                # lag the gap: repaired on the support, the point may be done already
                repaired = _repair(c, settings)
                if repaired is not None:
                    S_fix, objective_fix, bound_fix, feasible_fix = repaired
                    total = objective_done + objective_fix
                    if feasible_fix and total - lower_done - bound_fix <= (
                        settings.gap_tol * max(abs(total), _TINY)
                    ):
                        S_repaired, n_repaired = S_fix, c.index.size
                        status, message = Status.OPTIMAL, REPAIRED_MESSAGE
                        break
            n_checks += 1
            if n_checks % FARKAS_EVERY == 0:
                Lam = c.multiplier()
                if _farkas_ray(c.sp, Lam - c.Lam_prev, settings.infeasibility_tol):
                    status, message = Status.INFEASIBLE, "a Farkas ray certifies infeasibility"
                    break
                c.Lam_prev[...] = Lam
            if separable and settings.freeze_columns:
                done = _columns_done(c.it, figures, bounds, settings, rounding)
                if done.sum() >= max(1.0, FREEZE_FRACTION * k):
                    objective_done += float(np.sum(figures["column_objectives"][done]))
                    lower_done += float(np.sum(bounds[done]))
                    S_done[:, c.index[done]] = c.weights_true()[:, done]
                    Lam_done[:, c.index[done]] = c.multiplier()[:, done]
                    if done.all():  # every column is set aside: the whole program is done
                        all_set_aside = True
                        status, message = Status.OPTIMAL, COLUMNS_DONE_MESSAGE
                        break
                    c = c.restrict(~done)
        # penalties adapt ever more rarely (interval grows with each change), so they
        # settle and the fixed-penalty convergence theory applies eventually
        if adapting and c.index.size == k:
            next_adapt = iteration + settings.adapt_every * (1 + n_updates)
            rho1, rho2 = c.rho1, c.rho2
            if separable:
                f1 = _balance(zc[0], np.maximum(zc[2], zc[3]), rho1 * zc[1], rho1 * zc[4])
            else:
                f1 = np.full(
                    k,
                    _balance(
                        zt[0], max(zt[2], zt[3]), s1, float(np.sqrt(np.sum((rho1 * zc[4]) ** 2)))
                    ),
                )
            f2 = _balance(sc[0], np.maximum(sc[2], sc[3]), rho2 * sc[1], rho2 * sc[4])
            changed = False
            for f, rho, dual in ((f1, rho1, st.U), (f2, rho2, st.T)):
                f = np.where((f > settings.adapt_factor) | (f < 1 / settings.adapt_factor), f, 1.0)
                if np.any(f != 1.0):
                    dual /= f.astype(dtype)  # keep the unscaled multiplier rho * dual fixed
                    rho *= f
                    changed = True
            n_updates += changed

    if status is Status.INFEASIBLE:
        return SolverResult.without_weights(
            status,
            solver="admm",
            seconds=time.perf_counter() - started,
            message=message,
            iterations=iteration,
            compile_seconds=compile_seconds,
        )

    if S_repaired is not None and c.index.size == m:
        S, Lam = S_repaired, c.multiplier()
    elif S_repaired is not None:
        S, Lam = S_done, Lam_done
        S[:, c.index] = S_repaired
        Lam[:, c.index] = c.multiplier()
    elif all_set_aside:
        S, Lam = S_done, Lam_done
    elif c.index.size == m:  # nothing set aside: the state is the whole program's
        S, Lam = c.weights_true(), c.multiplier()
    else:
        S, Lam = S_done, Lam_done
        S[:, c.index] = c.weights_true()
        Lam[:, c.index] = c.multiplier()
    measure, certifier = _Meter(sp), DualCertifier(sp)
    figures = measure(S)
    if settings.polish and not _feasibility(sp, figures, settings.feas_tol):
        S, polish_info = polish_support(sp, S, feas_tol=settings.feas_tol)
        figures = measure(S)
    lower = certifier.bound(Lam, 1.0, XS=measure.XS, column_residuals=figures["column_residuals"])
    feasible = _feasibility(sp, figures, settings.feas_tol)
    if status is Status.OPTIMAL and not feasible:
        status = Status.INACCURATE
        message += "; the returned weights are outside the constraints beyond feas_tol"

    # report in the caller's units: the objective of W is unchanged by the scaling; the
    # residual, radius, excess and violation scale with sigma
    final = {
        "objective": figures["objective"],
        **{key: figures[key] * sigma for key in ("residual", "radius", "ball_excess", "violation")},
    }
    info = SolveInfo(
        solver="admm",
        iterations=iteration,
        seconds=time.perf_counter() - started,
        dual_bound=lower,
        gap=final["objective"] - lower,
        compile_seconds=compile_seconds,
        message=message,
        extra={
            "setup_seconds": setup_seconds,
            "rho": float(np.median(c.rho1)),
            "rho2": float(np.median(c.rho2)),
            "repaired_columns": n_repaired,
            "penalty_updates": n_updates,
            "sigma": sigma,
            "woodbury": gram.woodbury,
            "precision": dtype.name,
            "column_iterations": column_iterations / max(m, 1),
            "feasible": feasible,
            "history": history,
            **polish_info,
        },
        **final,
    )
    return SolverResult(x=S, status=status, info=info)


class _Columns:
    """What a solve keeps per column, restricted together when columns are set aside.

    All three programs are scaled: ``sp`` in the problem's precision (the infeasibility
    test), ``it`` in the working precision (the checks' measures and certificates), ``work``
    that one column-normalized for separable programs (the kernels).
    """

    def __init__(self, *, index, sp, it, work, beta, rho1, rho2, weights, st):
        self.index, self.sp, self.it, self.work, self.st = index, sp, it, work, st
        self.beta, self.rho1, self.rho2, self.weights = beta, rho1, rho2, weights
        self.beta_w = beta.astype(work.dtype)
        self.beta_true = beta.astype(sp.dtype)
        self.measure = _Meter(it)
        self.certifier = DualCertifier(it)
        self.Lam_prev = np.zeros(st.U.shape)
        self.kernel_args = work.kernel_arrays()

    # scalars and factors reach the kernels in the working precision: a float64 operand
    # would promote every float32 element and halve the SIMD width (twice the time)
    def relax(self, XW: np.ndarray, alpha: float) -> None:
        st = self.st
        Y, active, _, _, all_active = self.kernel_args
        alpha = XW.dtype.type(alpha)
        kernels.relax_and_measure(XW, st.Z, st.U, Y, active, alpha, all_active, st.col_sq)

    def project(self, XW: np.ndarray, alpha: float, with_stats: bool = True) -> None:
        st = self.st
        scale = _ball_scale(self.work, st.col_sq, self.rho1, self.beta).astype(XW.dtype)
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
        )

    def weights_true(self) -> np.ndarray:
        """``S`` in the problem's units and precision."""
        return np.multiply(self.st.S, self.beta_true, dtype=self.sp.dtype)

    def weights_working(self) -> np.ndarray:
        """``S`` in the problem's units, working precision."""
        return self.st.S * self.beta_w

    def multiplier(self) -> np.ndarray:
        """The multiplier ``Lam = (rho1_j / beta_j) U`` of ``Z = X W``, float64."""
        return (self.rho1 / self.beta) * self.st.U

    def restrict(self, keep: np.ndarray) -> _Columns:
        weights = self.weights
        if weights.shape[1] > 1:
            weights = np.ascontiguousarray(weights[:, keep])
        sp = self.sp.columns(keep)
        clone = _Columns(
            index=self.index[keep],
            sp=sp,
            it=sp if self.it is self.sp else self.it.columns(keep),
            work=self.work.columns(keep),
            beta=self.beta[keep],
            rho1=self.rho1[keep],
            rho2=self.rho2[keep],
            weights=weights,
            st=self.st.restrict(keep),
        )
        clone.Lam_prev = np.ascontiguousarray(self.Lam_prev[:, keep])
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


def _repairable(problem: NetTrimProblem, figures: dict, feas_tol: float) -> bool:
    """Whether only a violation off Omega, not too large, keeps a point from feasibility."""
    return (
        problem.is_feasible(figures["column_residuals"], 0.0, feas_tol)
        and figures["violation"] <= REPAIR_MAX_VIOLATION * feas_tol * problem.target_scale[2]
    )


def _repair(c: _Columns, settings: AdmmSettings) -> tuple[np.ndarray, float, float, bool] | None:
    """:func:`.polish.repair_violations` on the current ``S`` (of the columns iterating).

    Measured and certified in the problem's precision, with the bound of the relaxed
    program at the repaired point (as in the checks). Returns the repaired weights, their
    objective, the dual bound and whether they are feasible; ``None`` when nothing moved.
    """
    S = c.weights_true()
    repaired = repair_violations(c.sp, S, feas_tol=settings.feas_tol)
    if repaired is S:
        return None
    meter = _Meter(c.sp)
    figures = meter(repaired)
    bound = DualCertifier(c.sp).bound(
        c.st.U, c.rho1 / c.beta, XS=meter.XS, column_residuals=figures["column_residuals"]
    )
    feasible = _feasibility(c.sp, figures, settings.feas_tol)
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
    "AdmmSettings",
    "feasible_multiplier",
    "scale_problem",
    "solve_admm",
    "working_dtype",
]

"""Row generation for tall programs (convolutions: many patch rows, few inputs).

A conv layer's program has ``n`` = images x output pixels rows for a few dozen inputs, and
at the solution nearly every inequality off Omega is slack. :func:`solve_row_generation`
solves an equivalent program with far fewer rows, certified on all of them:

* **The ball, exactly, in ``d`` rows per column.** For column ``j`` with ``G_j =
  X_Oj^T X_Oj`` and ``c_j = X_Oj^T y_Oj`` (``O_j`` = Omega's rows of column ``j``; every
  row for (P2)), the eigendecomposition ``G_j = U diag(lam) U^T`` (rank cutoff) gives
  ``A_j = diag(sqrt(lam)) U^T`` and ``t_j = diag(1/sqrt(lam)) U^T c_j`` with
  ``||(X w - y)_Oj||^2 = ||A_j w - t_j||^2 + r_j`` for every ``w``, where
  ``r_j = ||y_Oj - X_Oj w_ls||^2`` is the least-squares residual (computed directly, not by
  a cancelling difference). The ball ``sum_j ||..||^2 <= radius^2`` becomes
  ``sum_j ||A_j w_j - t_j||^2 <= radius^2 - sum_j r_j`` (per column with per-column balls);
  a negative right-hand side means the program is infeasible. The Grams are summed over
  the rows grouped by their pattern of Omega (one pass over ``X`` per group of
  :data:`.linalg.PATTERN_COLUMNS` columns).
* **The inequalities off Omega, one entry at a time.** Identical rows of ``X`` (a conv's
  background and padding patches) carry one inequality per column, at the smallest bound
  among them. Start with none; solve; evaluate ``X W <= V`` on every distinct row; add the
  most violated *entries* ``(row, column)`` (all of them up to ``rows_per_round``);
  re-solve from the last weights; stop when no entry is violated beyond the feasibility
  tolerance.
* **Two layouts of a round's program.** Per-column balls, and a layer-wide ball over few
  columns, are written in ``w = vec(W)`` (the columns stacked, ``layout="flat"``): the
  ball's rows are block-diagonal, each generated entry is one row ``x_i`` in its column's
  block, so an entry costs one row of one column. Its ADMM factors a ``(k d) x (k d)``
  Gram (``k`` columns of ``d`` inputs), which grows as ``(k d)^2`` in memory and
  ``(k d)^3`` in time: a conv with 64 channels and 3x3 kernels over 64 input channels
  would ask for an 11 GB Gram. A layer-wide ball over many columns is written in ``W``
  itself (``layout="shared"``): every column's ball rows ``A_j`` stacked, on Omega in
  column ``j`` and free (``V = +inf``) in the others, then the generated *rows*, bounded in
  every column; its ADMM factors a ``d x d`` Gram. ``layout="auto"`` takes the flat one
  while ``k d <= FLAT_SIZE`` (measured by hand, ``docs/solvers.md``: about even on the
  digits conv, ``k d = 80``, the flat one faster at 160, the shared one from about 300 on).
  The shared layout's ADMM leaves each column's free rows out of its W-update
  (``AdmmSettings.column_grams``): the flat layout's block-diagonal step, at one ``d x d``
  eigendecomposition per column.
  The generated rows are scaled by one factor (``row_scale``: their median norm a tenth of
  the ball rows' largest by default; the same inequalities, a better conditioned
  splitting), their tolerance with them.

Every round solves a *relaxation* of the full program (the exact ball, a subset of its
inequalities), so its dual bound bounds the full program's optimum, and the final weights,
feasible on every row, are optimal for it within that certified gap. The returned ``info``
is measured on the full program.

A program with the same rows solved again (other entry weights: a round of reweighted L1)
starts from the earlier result (``warm_start``): its generated inequalities held from the
first round, and, kept with ``keep_state``, the ADMM state its last round ended in, on
exactly those rows (``docs/solvers.md``, "Tall programs").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .admm import AdmmSettings, AdmmState, solve_admm
from .linalg import row_grams
from .problem import NetTrimProblem
from .result import SolveInfo, SolverResult, Status

#: Eigenvalues below this fraction of the largest are taken as zero (rank cutoff).
RANK_CUTOFF = 1e-12
#: Entries ``(row, column)`` added per round at most (the most violated first).
DEFAULT_ROWS_PER_ROUND = 2000
DEFAULT_MAX_ROUNDS = 30
#: The generated rows' typical norm relative to the reduced ball's rows (default of
#: ``row_scale``; ``benchmarks/bench_tall.py`` measures a sweep).
ROW_SCALE = 0.1
#: ``layout`` choices: by size, ``vec(W)`` per ball, ``(n, m)`` with every column's ball rows.
LAYOUTS = ("auto", "flat", "shared")
#: ``layout="auto"`` writes a ball over ``k`` columns of ``d`` inputs in ``vec(W)`` while
#: ``k d`` is at most this (its ADMM factors a ``(k d) x (k d)`` Gram), else in ``(n, m)``.
FLAT_SIZE = 256
_SOLVER = "admm+rows"


def reduce_ball(problem: NetTrimProblem) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """``(A, t, r)``: per column the rows ``A_j`` (``k_j x d``), targets ``t_j`` and the
    least-squares residual ``r_j`` with ``||(X w - y)_Oj||^2 = ||A_j w - t_j||^2 + r_j``."""
    X = problem.X.astype(np.float64)
    Y = problem.Y.astype(np.float64)
    if problem.active is not None:
        Y = np.where(problem.active, Y, 0.0)
    G = _column_grams(X, problem.active, problem.shape[2])
    C = X.T @ Y
    A, t, W_ls = [], [], np.zeros_like(C)
    factored = None
    for j, G_j in enumerate(G):
        if factored is None or factored[0] is not G_j:  # (P2): one Gram shared by every column
            lam, U = np.linalg.eigh(G_j)
            keep = lam > RANK_CUTOFF * max(float(lam.max(initial=0.0)), 1e-300)
            factored = (G_j, lam[keep], U[:, keep])
        lam, U = factored[1:]
        c = U.T @ C[:, j]
        root = np.sqrt(lam)
        A.append(root[:, None] * U.T)
        t.append(c / root)
        W_ls[:, j] = U @ (c / lam)
    R = X @ W_ls - Y
    if problem.active is not None:
        R = np.where(problem.active, R, 0.0)
    return A, t, np.einsum("ij,ij->j", R, R)


def _column_grams(X: np.ndarray, active: np.ndarray | None, m: int) -> list[np.ndarray]:
    """``X_Oj^T X_Oj`` for every column (:func:`.linalg.row_grams`; on the wide conv of
    ``bench_tall.py``, a third of the rows on Omega in each of 32 columns, five to seven
    times faster than a Gram per column)."""
    if active is None:
        return [X.T @ X] * m
    return row_grams(X, active)


def distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first, order, starts)``: the rows of ``X`` grouped into identical ones.

    ``order`` sorts the rows so that identical ones are adjacent (stably), ``starts`` are
    the positions in ``order`` where each group begins and ``first = order[starts]`` the
    first index of each group, so ``X[order]`` equals ``X[first]`` repeated group by group.
    Rows are grouped by one fixed random projection (a sort of ``n`` numbers rather than of
    rows), then checked equal; a collision of the projection falls back to sorting the rows.
    """
    key = _row_keys(X)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    if not np.array_equal(X[order], np.repeat(X[order[starts]], sizes, axis=0)):
        rows = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
        _, inverse = np.unique(rows.ravel(), return_inverse=True)
        order = np.argsort(inverse.ravel(), kind="stable")
        sorted_inverse = inverse.ravel()[order]
        starts = np.flatnonzero(np.r_[True, sorted_inverse[1:] != sorted_inverse[:-1]])
    return order[starts], order, starts


def _row_keys(X: np.ndarray) -> np.ndarray:
    """One number per row, equal for identical rows: a fixed random projection."""
    return X.astype(np.float64) @ np.random.default_rng(0).standard_normal(X.shape[1])


@dataclass(frozen=True)
class Inequalities:
    """The inequalities off Omega on the distinct rows: ``X[u] w_j <= bound[u, j]``
    (``+inf`` where nothing is bounded), the smallest bound of the identical rows."""

    X: np.ndarray
    bound: np.ndarray
    #: the first row of ``X`` of each distinct row, and each row's distinct row
    first: np.ndarray
    group: np.ndarray

    @classmethod
    def of(cls, problem: NetTrimProblem) -> Inequalities:
        first, order, starts = distinct_rows(problem.X)
        bounds = np.where(problem.active, np.inf, problem.upper_bounds())
        bound = np.minimum.reduceat(bounds[order], starts, axis=0)
        group = np.empty(len(order), dtype=np.int64)
        group[order] = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
        return cls(X=problem.X[first], bound=bound, first=first, group=group)

    def excess(self, W: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``X W - bound`` on the columns ``cols`` (``W`` holds those), ``-inf`` unbounded."""
        return self.X @ W - self.bound[:, cols]


class _Layout:
    """How one ball's rounds are written: the reduced ball of the columns ``cols`` (their
    rows ``A[j]`` and targets ``t[j]``, ``radius``), the distinct rows' inequalities and
    the generated rows' ``scale``. A round's program holds the ball's ``n_ball`` rows, then
    one row per generation *key* (sorted), so a round's rows extend the last one's.

    ``program(keys)`` builds it; ``start(W)`` and ``weights(w)`` map ``(d, m)`` weights to
    its variable and back; ``grow(keys, excess, tol, most)`` adds the most violated keys
    (``None`` when nothing is violated); ``entries(keys)`` names the ``(row, column)``
    inequalities they bound (distinct rows), ``keys_of(rows, columns)`` the keys of such
    entries (those of ``cols`` that are bounded); ``fresh_z(state, keys)`` starts new keys'
    split."""

    def __init__(self, problem, A, t, radius, cols, ineq, scale):
        self.problem, self.A, self.t, self.radius = problem, A, t, radius
        self.cols, self.ineq, self.scale = cols, ineq, scale
        self.d, self.k = problem.shape[1], len(cols)
        self.n_ball = sum(len(A[j]) for j in cols)


class _Flat(_Layout):
    """The program in ``w = vec(W[:, cols])``: the ball's rows block-diagonal, then one row
    per generated entry ``(distinct row, position in cols)``, scaled by ``scale``. Keys are
    ``row * k + position``. Its ADMM factors one ``(k d) x (k d)`` Gram: for one column, or
    few (:data:`FLAT_SIZE`)."""

    def settings(self, settings: AdmmSettings) -> AdmmSettings:
        """The ADMM settings of a round."""
        return settings

    def program(self, keys: np.ndarray) -> NetTrimProblem:
        problem, d, k, n_ball = self.problem, self.d, self.k, self.n_ball
        rows, where = keys // k, keys % k
        X = np.zeros((n_ball + len(rows), k * d), problem.dtype)
        Y = np.zeros((n_ball + len(rows), 1), problem.dtype)
        upper = np.full((n_ball + len(rows), 1), np.inf, problem.dtype)
        start = 0
        for b, j in enumerate(self.cols):
            a = self.A[j]
            X[start : start + len(a), b * d : (b + 1) * d] = a
            Y[start : start + len(a), 0] = self.t[j]
            start += len(a)
        if len(rows):
            generated = X[n_ball:].reshape(len(rows), k, d)
            generated[np.arange(len(rows)), where] = self.ineq.X[rows] * self.scale
            upper[n_ball:, 0] = self.ineq.bound[rows, self.cols[where]] * self.scale
        active = np.zeros((len(X), 1), dtype=bool)
        active[:n_ball] = True
        weights = np.broadcast_to(problem.weight_matrix(), (d, problem.shape[2]))
        return NetTrimProblem(
            X=X,
            Y=Y,
            active=active,
            upper=upper,
            radius=self.radius,
            l1_weights=np.ascontiguousarray(weights[:, self.cols].T).ravel(),
            violation_scale=problem.target_scale[2] * self.scale,
        )

    def start(self, W: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(W[:, self.cols].T).reshape(-1, 1)

    def weights(self, w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w.reshape(self.k, self.d).T)

    def grow(self, keys: np.ndarray, excess: np.ndarray, tol: float, most: int):
        """``keys`` with the ``most`` most violated entries added; ``None`` when none is."""
        rows, where = np.nonzero(excess > tol)
        if not len(rows):
            return None
        worst = np.argsort(-excess[rows, where], kind="stable")[:most]
        return np.union1d(keys, rows[worst] * self.k + where[worst])

    def entries(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return keys // self.k, self.cols[keys % self.k]

    def keys_of(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        where = np.searchsorted(self.cols, columns)  # cols are sorted
        mine = (where < self.k) & (self.cols[np.minimum(where, self.k - 1)] == columns)
        rows, where = rows[mine], where[mine]
        bounded = np.isfinite(self.ineq.bound[rows, self.cols[where]])
        return np.unique(rows[bounded] * self.k + where[bounded])

    def fresh_z(self, state: AdmmState, keys: np.ndarray) -> np.ndarray:
        """``min(x w, bound)`` of new entries (scaled rows): where their split starts."""
        rows, where = keys // self.k, keys % self.k
        W = state.S.reshape(self.k, -1)  # vec(W): one column's weights per block
        xw = np.einsum("ij,ij->i", self.ineq.X[rows], W[where]) * self.scale
        return np.minimum(xw, self.ineq.bound[rows, self.cols[where]] * self.scale)[:, None]


class _Shared(_Layout):
    """The program in ``W[:, cols]`` itself (``(n, k)`` layout): every column's ball rows
    ``A_j`` stacked, on Omega in column ``j`` only (free, ``V = +inf``, in the others),
    then the generated distinct rows, bounded in every column (a row violated in one column
    is likely near its bound in others; each bound holds in the full program). Keys are
    distinct rows. Its ADMM factors a ``d x d`` Gram: for a layer-wide ball over many
    columns, where the flat program's ``(k d) x (k d)`` one would not fit. Its products
    cost about ``k d^2`` an iteration for the ball rows, each column's block taken in that
    column alone (:meth:`.linalg.ColumnGramSolver.product`), plus ``g d k`` for ``g``
    generated rows; the flat program's dense blocks cost ``(k d)^2``."""

    def settings(self, settings: AdmmSettings) -> AdmmSettings:
        """Each column's W-update on its own rows (:class:`.linalg.ColumnGramSolver`): the
        others' ball rows, free in it, would damp its steps."""
        return settings.updated(column_grams=True)

    def program(self, keys: np.ndarray) -> NetTrimProblem:
        problem, k, n_ball = self.problem, self.k, self.n_ball
        weights = problem.entry_weights
        common = {
            "radius": self.radius,
            "l1_weights": problem.l1_weights,
            "entry_weights": None if weights is None else weights[:, self.cols],
            "violation_scale": problem.target_scale[2] * self.scale,
        }
        if self.ineq is None:  # (P2): one Gram for every column, so one block serves all
            X = self.A[self.cols[0]]
            Y = np.stack([self.t[j] for j in self.cols], axis=1)
            return NetTrimProblem(X=X, Y=Y, active=None, upper=None, **common)
        generated = (self.ineq.X[keys] * self.scale).astype(problem.dtype)
        X = np.concatenate([self.A[j] for j in self.cols] + [generated])
        Y = np.zeros((len(X), k), problem.dtype)
        active = np.zeros((len(X), k), dtype=bool)
        upper = np.full((len(X), k), np.inf, problem.dtype)
        start = 0
        for b, j in enumerate(self.cols):
            size = len(self.A[j])
            Y[start : start + size, b] = self.t[j]
            active[start : start + size, b] = True
            start += size
        upper[n_ball:] = self.ineq.bound[np.ix_(keys, self.cols)] * self.scale
        return NetTrimProblem(X=X, Y=Y, active=active, upper=upper, **common)

    def start(self, W: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(W[:, self.cols])

    def weights(self, w: np.ndarray) -> np.ndarray:
        return w

    def grow(self, keys: np.ndarray, excess: np.ndarray, tol: float, most: int):
        """``keys`` with the ``most`` most violated rows added; ``None`` when none is."""
        worst = excess.max(axis=1, initial=-np.inf)
        rows = np.flatnonzero(worst > tol)
        if not len(rows):
            return None
        return np.union1d(keys, rows[np.argsort(-worst[rows], kind="stable")[:most]])

    def entries(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.ineq is None:
            return keys, keys
        rows, where = np.nonzero(np.isfinite(self.ineq.bound[np.ix_(keys, self.cols)]))
        return keys[rows], self.cols[where]

    def keys_of(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        mine = np.isin(columns, self.cols)
        rows, columns = rows[mine], columns[mine]
        return np.unique(rows[np.isfinite(self.ineq.bound[rows, columns])])

    def fresh_z(self, state: AdmmState, keys: np.ndarray) -> np.ndarray:
        xw = (self.ineq.X[keys] @ state.S.astype(self.ineq.X.dtype)) * self.scale
        return np.minimum(xw, self.ineq.bound[np.ix_(keys, self.cols)] * self.scale)


@dataclass(frozen=True)
class _Part:
    """Row generation on one program (one ball) of the columns ``cols``: its weights ``(d,
    len(cols))`` (``None`` when a round returned none), last round's result, rounds,
    iterations per round and the entries ``(row, column)`` generated."""

    W: np.ndarray | None
    result: SolverResult
    rounds: int
    iterations: list[int]
    entries: tuple[np.ndarray, np.ndarray]

    @property
    def state(self) -> AdmmState | None:
        """The ADMM state the last round ended in (on the program of its keys)."""
        return self.result.info.extra.get("state")


def _generate(layout: _Layout, settings, limits, prior: _Prior, state) -> _Part:
    """Rounds on one program: solve (on the keys of the prior solve's entries, from its
    state when it fits), add the most violated entries (rows), re-solve from the last
    weights, until none is violated; the last round is re-solved on its gap alone when it
    stopped uncertified (on its residuals)."""
    rows_per_round, max_rounds = limits
    problem, ineq = layout.problem, layout.ineq
    tol = settings.feas_tol * problem.target_scale[2]
    keys = np.zeros(0, np.int64)
    if prior.entries is not None and ineq is not None:
        keys = layout.keys_of(*prior.entries).astype(np.int64)
    start: np.ndarray | AdmmState | None = None if prior.W is None else layout.start(prior.W)
    same = state is not None and start is not None and state.S.shape == start.shape
    if same and state.Z.shape[0] == layout.n_ball + len(keys):
        # the same program's rows: its multipliers and penalties carry over, the
        # multiplier of S = W made to fit this program's L1 weights (a reweighting round)
        start = state.for_weights(layout.program(keys).weight_matrix())
    iterations: list[int] = []
    for rounds in range(1, max_rounds + 1):
        sub = layout.program(keys)
        result = solve_admm(sub, layout.settings(settings), warm_start=start, keep_state=True)
        spent = result.info.iterations
        if result.status is Status.OPTIMAL and result.info.gap > settings.gap_tol * abs(
            result.info.objective
        ):
            # stopped on its residuals: ask the gap (a round that adds rows needs no
            # certificate, but which round is the last is known only after its check),
            # resuming the same program from the whole state it stopped in
            gap_only = settings.updated(tol_abs=0.0, tol_rel=1e-12)
            result = solve_admm(sub, gap_only, warm_start=result, keep_state=True)
            spent += result.info.iterations
        iterations.append(spent)
        if result.W is None:
            return _Part(None, result, rounds, iterations, layout.entries(keys))
        W = layout.weights(result.W)
        if ineq is None:
            break
        grown = layout.grow(keys, ineq.excess(W, layout.cols), tol, rows_per_round)
        if grown is None:
            break
        start = _carried_state(result, layout, keys, grown)
        keys = grown
    return _Part(W, result, rounds, iterations, layout.entries(keys))


def _carried_state(result, layout: _Layout, old_keys, keys) -> AdmmState | np.ndarray:
    """The state the last round ended in, on the next round's rows: the ball's rows and
    the keys kept (both sorted) at their places; each new key with its split ``Z`` at
    ``min(x w, bound)`` and a zero multiplier. Carrying the multipliers of the rows that
    stay saves the iterations that would rebuild them from zero."""
    state = result.info.extra.get("state")
    if state is None:
        return result.W
    n_ball = layout.n_ball
    n = n_ball + len(keys)
    kept = np.concatenate([np.arange(n_ball), n_ball + np.searchsorted(keys, old_keys)])
    fresh = np.ones(n, dtype=bool)
    fresh[kept] = False
    Z = np.zeros((n, state.Z.shape[1]))
    dual_z = np.zeros_like(Z)
    Z[kept], dual_z[kept] = state.Z, state.dual_z
    Z[fresh] = layout.fresh_z(state, keys[fresh[n_ball:]])
    return replace(state, Z=Z, dual_z=dual_z)


def _row_scale(A: list[np.ndarray], ineq: Inequalities | None, row_scale) -> float:
    """``row_scale`` times the ball rows' largest norm over a typical generated row's."""
    if row_scale is None or ineq is None or not len(ineq.X):
        return 1.0
    ball = max((float(np.linalg.norm(a, 2)) for a in A if a.size), default=0.0)
    typical = float(np.median(np.linalg.norm(ineq.X.astype(np.float64), axis=1)))
    return row_scale * ball / typical if ball > 0 and typical > 0 else 1.0


def solve_row_generation(
    problem: NetTrimProblem,
    settings: AdmmSettings | None = None,
    *,
    warm_start: np.ndarray | SolverResult | None = None,
    keep_state: bool = False,
    rows_per_round: int = DEFAULT_ROWS_PER_ROUND,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    row_scale: float | None = ROW_SCALE,
    layout: str = "auto",
) -> SolverResult:
    """Solve (P1) or (P2) on the reduced ball and generated entries (module docstring).

    Parameters
    ----------
    problem : NetTrimProblem
        The full program ((P3) is not supported: it has no ball to reduce).
    settings : AdmmSettings, optional
        For every round's :func:`~nettrim.solvers.admm.solve_admm`; its ``feas_tol`` is
        also the tolerance of the row check.
    warm_start : ndarray of shape (d, m) or SolverResult, optional
        Weights to start from, or an earlier result of this function on a program with
        the same rows (``X``, Omega and the bounds off it; the entry weights may differ,
        as in the rounds of reweighted L1): its weights, and its generated inequalities
        (``info.extra["generated_entries"]``), which the first round then holds instead
        of generating them again; when it kept its state (``keep_state``), the first
        round also starts from the ADMM state its last round ended in. Any set of
        inequalities is a relaxation, so the result is certified on every row as
        without it.
    keep_state : bool
        Keep each program's last ADMM state in ``info.extra["states"]`` (for a
        ``warm_start``; a list, one per ball).
    rows_per_round : int
        Violated entries ``(row, column)`` added per round at most (the most violated
        first); in the shared layout, violated rows (each bounded in every column).
    max_rounds : int
        Rounds at most; a program still violated then returns status ``max_iter``.
    row_scale : float or None
        The generated rows are multiplied by one factor that makes their typical (median)
        norm ``row_scale`` times the reduced ball rows' largest (the same inequalities, a
        better conditioned splitting); ``None`` leaves them unscaled.
    layout : {"auto", "flat", "shared"}
        How a round's program is written (module docstring): ``vec(W)`` per ball, ``W``
        with every column's ball rows, or by size (flat while the ball's columns times
        inputs are at most :data:`FLAT_SIZE`). Per-column balls are always flat.

    Returns
    -------
    SolverResult
        Weights, status and ``info`` measured on the full program (the dual bound is the
        last round's, a bound of the full program); ``info.extra`` adds ``rounds``,
        ``round_iterations``, ``entries`` (generated ``(row, column)`` inequalities),
        ``rows`` (the distinct rows they use), ``distinct_rows`` (of ``X``),
        ``reduced_rows`` (the ball's), ``row_scale``, ``layout`` (the one used) and
        ``generated_entries`` (``(e, 2)``: the row of ``X`` and the column of each
        generated inequality).
    """
    if problem.penalized:
        raise ValueError("row generation solves (P1)/(P2); (P3) has no ball to reduce")
    for name, value in (("rows_per_round", rows_per_round), ("max_rounds", max_rounds)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if row_scale is not None and not (np.isfinite(row_scale) and row_scale > 0):
        raise ValueError(f"row_scale must be a finite number > 0 or None, got {row_scale!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    prior = _Prior.of(warm_start, problem.shape)
    settings = settings or AdmmSettings()
    started = time.perf_counter()
    A, t, r = reduce_ball(problem)
    left = np.square(np.asarray(problem.radius, dtype=np.float64)) - (
        r if problem.per_column else r.sum()
    )
    if np.any(left < 0):
        return SolverResult.without_weights(
            Status.INFEASIBLE,
            solver=_SOLVER,
            seconds=time.perf_counter() - started,
            message="the radius is below the least-squares residual: no weights fit the ball",
        )
    A, t = _nonempty_ball(A, t, problem.shape[1])
    A = [a.astype(problem.dtype) for a in A]
    t = [v.astype(problem.dtype) for v in t]
    ineq = None if problem.active is None else Inequalities.of(problem)
    prior = prior.on(ineq)
    scale = _row_scale(A, ineq, row_scale)
    m = problem.shape[2]
    if problem.per_column:
        groups = [(np.array([j]), float(np.sqrt(left[j]))) for j in range(m)]
    else:
        groups = [(np.arange(m), float(np.sqrt(left)))]
    W = np.zeros(problem.shape[1:], problem.dtype)
    parts = []
    kinds = [_Flat if _flat(layout, len(c), problem.shape[1]) else _Shared for c, _ in groups]
    for ball, ((cols, radius), kind) in enumerate(zip(groups, kinds, strict=True)):
        part = _generate(
            kind(problem, A, t, radius, cols, ineq, scale), settings,
            (int(rows_per_round), int(max_rounds)), prior, prior.state(ball, len(groups)),
        )  # fmt: skip
        if part.W is None:
            info = part.result.info
            return SolverResult.without_weights(
                part.result.status,
                solver=_SOLVER,
                seconds=time.perf_counter() - started,
                message=info.message,
                iterations=sum(part.iterations),
            )
        W[:, cols] = part.W
        parts.append(part)
    extra = {
        "reduced_rows": int(sum(len(a) for a in A)),
        "distinct_rows": 0 if ineq is None else len(ineq.X),
        "row_scale": scale,
        "layout": "shared" if _Shared in kinds else "flat",
    }
    if keep_state:
        extra["states"] = [part.state for part in parts]
    return _report(problem, W, parts, settings, started, extra, ineq)


@dataclass(frozen=True)
class _Prior:
    """What a row generation starts from: weights ``W`` (``(d, m)`` or ``None``), the
    generated ``entries`` of an earlier solve (rows of ``X`` and columns, ``(e, 2)``; by
    :meth:`on` distinct rows and columns) and its ``states``, one per ball."""

    W: np.ndarray | None = None
    entries: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
    states: list | None = None

    @classmethod
    def of(cls, warm_start, shape) -> _Prior:
        """The checked start of ``warm_start`` (weights or an earlier result)."""
        if not isinstance(warm_start, SolverResult):
            return cls(W=warm_start)
        n, d, m = shape
        extra = warm_start.info.extra
        if warm_start.W is None or warm_start.W.shape != (d, m) or "generated_entries" not in extra:
            raise ValueError(
                f"warm_start: a result of solve_row_generation with weights of shape "
                f"{(d, m)} is needed; got one without generated entries or of another shape"
            )
        entries = extra["generated_entries"]
        if len(entries) and (entries[:, 0].max() >= n or entries[:, 0].min() < 0):
            raise ValueError(f"warm_start: its entries name rows outside the {n} rows of X")
        return cls(W=warm_start.W, entries=entries, states=extra.get("states"))

    def on(self, ineq: Inequalities | None) -> _Prior:
        """The entries as distinct rows of ``ineq`` (none for a program without them)."""
        if self.entries is None or ineq is None:
            return replace(self, entries=None)
        return replace(self, entries=(ineq.group[self.entries[:, 0]], self.entries[:, 1]))

    def state(self, ball: int, balls: int) -> AdmmState | None:
        """The earlier solve's last state of ball ``ball`` of ``balls`` (``None`` when it
        kept none, or had other balls)."""
        if self.states is None or len(self.states) != balls:
            return None
        return self.states[ball]


def _flat(layout: str, k: int, d: int) -> bool:
    """Whether a ball over ``k`` columns of ``d`` inputs is solved in the flat layout (for
    one column both layouts are the same program)."""
    return k == 1 or layout == "flat" or (layout == "auto" and k * d <= FLAT_SIZE)


def _nonempty_ball(A, t, d):
    """A column without rows on Omega has no ball rows; one zero row (target 0) keeps its
    program non-empty and asks nothing."""
    A = [a if len(a) else np.zeros((1, d)) for a in A]
    t = [v if len(v) else np.zeros(1) for v in t]
    return A, t


def _report(problem, W, parts, settings, started, extra, ineq) -> SolverResult:
    """The weights measured on the full program; the rounds' bounds as its certificate."""
    col = problem.column_residuals(W)
    violation = problem.violation(W)
    residual = float(np.sqrt(np.sum(col**2)))
    objective, radius, excess = problem.program.measure(problem.l1(W), col, residual)
    feasible = problem.is_feasible(col, violation, settings.feas_tol)
    lower = float(sum(p.result.info.dual_bound for p in parts))
    certified = feasible and objective - lower <= settings.gap_tol * max(abs(objective), 1e-30)
    statuses = [p.result.status for p in parts if p.result.status is not Status.OPTIMAL]
    status = Status.MAX_ITER if not feasible else (statuses[0] if statuses else Status.OPTIMAL)
    if not feasible:
        message = "still violated on some rows after max_rounds"
    elif certified:
        message = "feasible on every row with a certified duality gap"
    else:
        message = parts[-1].result.info.message
    rows = np.unique(np.concatenate([p.entries[0] for p in parts]))
    generated = np.zeros((0, 2), np.int64)
    if ineq is not None:
        generated = np.concatenate(
            [np.stack([ineq.first[p.entries[0]], p.entries[1]], axis=1) for p in parts]
        ).astype(np.int64)
    rounds = max(p.rounds for p in parts)
    # iterations per round, summed over the programs (one per column with per-column balls)
    per_round = [
        sum(p.iterations[i] for p in parts if i < len(p.iterations)) for i in range(rounds)
    ]
    info = SolveInfo(
        solver=_SOLVER,
        objective=objective,
        iterations=int(sum(per_round)),
        seconds=time.perf_counter() - started,
        residual=residual,
        radius=radius,
        ball_excess=excess,
        violation=violation,
        per_column=problem.program.per_column,
        dual_bound=lower,
        gap=objective - lower,
        compile_seconds=float(sum(p.result.info.compile_seconds for p in parts)),
        message=message,
        extra={
            **extra,
            "rounds": rounds,
            "round_iterations": per_round,
            "entries": int(sum(len(p.entries[0]) for p in parts)),
            "rows": len(rows),
            "feasible": feasible,
            "certified": bool(certified),
            "generated_entries": generated,
        },
    )
    return SolverResult(W=W, status=status, info=info)

"""Active-set finish: the exact optimum on the support and bounds an ADMM iterate points to.

The ADMM converges linearly, and its last digits cost most of its iterations. Long before
they are reached, its sparse point ``S`` usually has the support and signs of the solution,
and its multiplier is positive exactly on the bounds off Omega the solution holds. Given
such a guess — support ``K_j`` and signs ``sigma`` per column, held bounds ``A_j`` — the
optimality conditions of the program are linear but for the ball's multiplier ``mu``:
on ``K_j``

    H_j w + B_j^T nu' = f_j - (1 / mu) c_K sigma ,    B_j w = V_A

with ``H_j = X_K^T P_j X_K`` (``P_j`` the rows of Omega in column ``j``), ``B_j`` the held
rows of ``X_K``, ``f_j = X_K^T P_j y_j`` and ``nu = mu nu'`` the multipliers of the held
bounds. Its solution is ``w_a + t w_b`` in ``t = 1 / mu`` (two right-hand sides of one
system), so the ball's condition ``||P (X W - Y)|| = radius`` is a quadratic in ``t``
(:meth:`.programs.Program.active_set_multiplier`; (P3) fixes ``mu`` at its penalty).

The guess is then corrected the way a primal-dual active-set method does (Hintermüller,
Ito & Kunisch 2002, SIAM J. Optim. 13(3)): an entry whose sign flips leaves the support, a
bound whose multiplier is negative is released, a bound the point violates is held, and an
entry whose dual constraint ``|(X^T Lam)_ij| <= c_ij`` fails joins the support with the
sign the multiplier asks. That rule alone swaps bounds in and out of a column that holds
nearly as many as its support has entries (a neuron that fires on few samples), and one
such column keeps a layer-wide ball from being met; so from the second correction on, a
column where the rule changes anything has its bounds decided by its own program on the
new support at the same ``mu``, a small convex QP solved exactly
(:meth:`_Layer.bound_program`). When a round changes nothing, the point and its multiplier
``Lam`` (``mu (X W - Y)`` on Omega, ``nu`` on the held bounds) satisfy every optimality
condition: the certificate of :mod:`.duality` then closes the gap to rounding. Only the
columns whose guess changed are solved again. The caller measures and certifies what comes
back and keeps it only when it is feasible with a certified gap; otherwise the ADMM goes on
(``docs/solvers.md``, "Active-set finish"). OSQP's solution polishing (Stellato et al.
2020, §5.2) is the model: the same guess of the active constraints from the ADMM's
multiplier, and an exact solve on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs, dtrtrs
from scipy.optimize import nnls

from .linalg import masked_products, one_blas_thread, take_block
from .problem import NetTrimProblem

#: Rounds of corrections at most (on the digits layers a guess that converges does so in 2-7).
FINISH_ROUNDS = 8
#: A round that changes more than the last one ends the finish, and so does one that
#: changes more than this many times the first correction (a guess gone astray: on a correlated
#: random ``4096 x 256 -> 256`` layer, 255 changes and then 20,000, shrinking by a third a
#: round from there) ...
FINISH_GROWTH = 2.0
#: ... unless they are this few: a few changes may take a few rounds to settle (on small
#: layers, where every change is a large share of the guess).
FINISH_FEW = 16
#: Releases of the held bounds per finish, for a layer-wide ball (see
#: :func:`active_set_finish`); a column of a separable program releases as often as needed.
FINISH_RELEASES = 1
#: The cost of one column's system beyond its multiply-adds (gathers, the LAPACK calls, the
#: interpreter), in multiply-adds: measured 0.19 ms a system on the digits layers (0.34 ms
#: before the gathers were one numba loop, when this was 6e6), on the 2-core machine of
#: docs/benchmarks.md, where an iteration runs 20-30 million a millisecond.
FINISH_SOLVE_OVERHEAD = 4e6
#: A bound off Omega is held once violated by this fraction of the tolerance ``feas_tol max|Y|``.
FINISH_HOLD = 0.1
#: Passes of a column's bound program (:meth:`_Layer.bound_program`) at most: each adds the
#: bounds the last one's point passes (on the bundled and MNIST layers one or two do).
FINISH_BOUND_PASSES = 8
#: ``E u - f`` of a least-distance program (:func:`_least_distance`) ends in ``h^T u - 1``,
#: in ``[-1, 0]``: at 0 the bounds admit no point.
_LDP_TINY = 1e-12
#: An entry joins the support once ``|X^T Lam|`` exceeds its weight by this relative amount:
#: an entry whose optimal value is zero with its dual constraint tight would otherwise join
#: and leave in turn on rounding alone (the certificate pays at most this much for it).
FINISH_DUAL_SLACK = 1e-6
#: A column's system is given up when its support's Gram on Omega is this ill-conditioned
#: (the square of the ratio of its Cholesky factor's extreme diagonal entries, a lower
#: bound on the condition number): a neuron that fires on fewer samples than its support
#: has entries, for one.
FINISH_MAX_CONDITION = 1e12


def factor_work(rows, k):
    """Multiply-adds of a support's Gram on Omega from ``rows`` rows on ``k`` entries and
    of its Cholesky factor (arrays broadcast)."""
    return rows * k**2 + k**3 / 3


def system_work(rows, k, a):
    """Multiply-adds of one column's system (arrays broadcast): its Gram and factor
    (:func:`factor_work`), the Cholesky factor of the Schur complement of ``a`` held rows,
    the solves, and ``FINISH_SOLVE_OVERHEAD``."""
    return factor_work(rows, k) + a**3 / 3 + 2.0 * k * k * a + a * a * k + FINISH_SOLVE_OVERHEAD


@dataclass
class ActiveSetPoint:
    """What :func:`active_set_finish` found: weights, their multiplier and the path there.

    Attributes
    ----------
    W : ndarray of shape (d, m) or None
        The weights, zero off the final support (the problem's precision); ``None`` when
        the guess led nowhere (for a layer-wide ball: some column could not be solved,
        or no multiplier of the ball put the point on it).
    XW : ndarray of shape (n, m) or None
        ``X W``.
    Lam : ndarray of shape (n, m) or None
        The multiplier of ``Z = X W`` (float64): ``mu_j (X W - Y)`` on Omega, the held
        bounds' multipliers off it (the certificate of :mod:`.duality` takes it as it is).
    solved : ndarray of shape (m,) of bool
        The columns solved; the others (only in separable programs) are zero in ``W`` and
        ``Lam`` and are not the finish's to offer.
    rounds : int
        Rounds of corrections run.
    converged : bool
        Whether the last round changed nothing: then the solved columns meet every
        optimality condition of the program up to rounding.
    changes : list of int
        The guess's changes in each round (entries and bounds in or out).
    work : float
        Multiply-adds spent (the column systems and two ``n x d x m`` products a round),
        a deterministic measure of the finish's cost for the caller's budget.
    """

    W: np.ndarray | None
    XW: np.ndarray | None
    Lam: np.ndarray | None
    solved: np.ndarray
    rounds: int
    converged: bool
    changes: list[int]
    work: float


@dataclass
class _Guess:
    """The support ``(d, m)`` with the signs on it (0 off it and on unweighted entries) and
    the held bounds ``(n, m)`` off Omega, as masks."""

    support: np.ndarray
    signs: np.ndarray
    held: np.ndarray

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column ``j``'s support (sorted), its signs there and its held rows (sorted)."""
        K = np.flatnonzero(self.support[:, j])
        return K, self.signs[K, j], np.flatnonzero(self.held[:, j])


@dataclass
class _ColumnSolution:
    """The column's system solved for both right-hand sides, and the figures of the
    quadratic in ``t``: ``a0 = ||r_a||^2``, ``a1 = <r_a, X w_b>``, ``a2 = ||X w_b||^2``
    on Omega (``r_a = X w_a - y``), on the support ``K`` with the held rows ``A``."""

    K: np.ndarray
    A: np.ndarray
    w_a: np.ndarray
    w_b: np.ndarray
    nu_a: np.ndarray
    nu_b: np.ndarray
    a: tuple[float, float, float]


_EMPTY = np.zeros(0, dtype=np.intp)
_NO_SOLUTION = _ColumnSolution(
    _EMPTY, _EMPTY, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), (0.0, 0.0, 0.0)
)


class _Layer:
    """The problem's data as the column systems need it, float64 where it is summed."""

    def __init__(self, problem: NetTrimProblem):
        self.problem = problem
        self.X = problem.X
        n, d, m = problem.shape
        self.active = problem.active
        self.V = None if self.active is None else problem.upper_bounds()
        self.C = np.broadcast_to(problem.weight_matrix().astype(np.float64), (d, m))
        # X^T P_j y_j for every support at once, and ||P_j y_j||^2
        self.F, self.y_sq = masked_products(self.X, problem.Y, mask=self.active)
        self.gram = problem.gram
        self.work = 2.0 * n * d * m  # X^T P Y above

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return take_block(self.X, rows, cols)

    def hessian(self, j: int, K: np.ndarray) -> np.ndarray:
        """``X_K^T P_j X_K`` from the smaller of Omega's rows and the others."""
        if self.active is None:
            return take_block(self.gram, K, K)
        on = self.active[:, j]
        few_on = 2 * int(np.count_nonzero(on)) <= on.size
        rows = np.flatnonzero(on if few_on else ~on)
        B = self.block(rows, K)
        return B.T @ B if few_on else take_block(self.gram, K, K) - B.T @ B

    def solve(
        self, j: int, K: np.ndarray, signs: np.ndarray, A: np.ndarray
    ) -> _ColumnSolution | None:
        """Column ``j``'s system on support ``K`` with held rows ``A``, by the Schur
        complement of the held rows; ``None`` when the support's Gram is singular."""
        if K.size == 0:  # the column is zero: its residual is its targets
            return _ColumnSolution(_EMPTY, _EMPTY, *[np.zeros(0)] * 4, (self.y_sq[j], 0.0, 0.0))
        k, a = K.size, A.size
        factor = self.factor(j, K)
        rows = self._rows(j)
        self.work += float(system_work(rows, k, a) - factor_work(rows, k))
        if factor is None:
            return None
        f = self.F[K, j]
        rhs = np.stack([f, -self.C[K, j] * signs], axis=1)
        w = dpotrs(factor, rhs, lower=False)[0]
        nu = np.zeros((a, 2))
        if a:
            B = self.block(A, K)
            HB = dpotrs(factor, np.ascontiguousarray(B.T), lower=False)[0]
            schur = B @ HB
            target = B @ w
            target[:, 0] -= self.V[A, j]
            schur_factor, info = dpotrf(schur, lower=False, clean=False)
            if info == 0:
                nu = dpotrs(schur_factor, target, lower=False)[0]
            else:  # dependent held rows (more of them than the support has entries, say)
                nu = np.linalg.lstsq(schur, target, rcond=None)[0]
            w -= HB @ nu
        Hw = factor.T @ (factor @ w)
        figures = (
            max(0.0, float(w[:, 0] @ Hw[:, 0] - 2 * f @ w[:, 0] + self.y_sq[j])),
            float(w[:, 1] @ Hw[:, 0] - f @ w[:, 1]),
            max(0.0, float(w[:, 1] @ Hw[:, 1])),
        )
        return _ColumnSolution(K, A, w[:, 0], w[:, 1], nu[:, 0], nu[:, 1], figures)

    def factor(self, j: int, K: np.ndarray) -> np.ndarray | None:
        """The upper Cholesky factor of column ``j``'s Gram on Omega on support ``K``;
        ``None`` when it is singular or too ill-conditioned (``FINISH_MAX_CONDITION``).
        Not kept between calls: a factor per column of a wide layer would outweigh the
        ADMM's state (2048 columns of ~1000 entries: 16 GB)."""
        self.work += float(factor_work(self._rows(j), K.size))
        # LAPACK directly: the column systems are small, and SciPy's checked wrappers
        # cost more than the factorization
        factor, info = dpotrf(self.hessian(j, K), lower=False, clean=True)
        if info != 0:
            return None
        diagonal = np.abs(np.diag(factor))
        if diagonal.min() ** 2 * FINISH_MAX_CONDITION < diagonal.max() ** 2:
            return None
        return factor

    def _rows(self, j: int) -> int:
        """The rows column ``j``'s Gram on Omega is formed from (:meth:`hessian`)."""
        if self.active is None:
            return 0
        n_on = int(np.count_nonzero(self.active[:, j]))
        return min(n_on, self.active.shape[0] - n_on)

    def bound_program(
        self,
        j: int,
        K: np.ndarray,
        signs: np.ndarray,
        t: float,
        start: np.ndarray,
        hold: float,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Column ``j``'s own program on support ``K`` with signs ``signs`` at
        ``t = 1 / mu``::

            minimize  1/2 w^T H w - (f - t c_K sigma)^T w   s.t.  X_K w <= V  off Omega

        (``H``, ``f`` as in the module docstring): its optimum ``w`` on ``K`` and the rows
        it holds (its bounds' multipliers are positive there; sorted); ``None`` when the
        support's Gram is singular or no point on it meets the bounds.

        Solved exactly as a least-distance program (Lawson & Hanson 1974, ch. 23,
        :func:`_least_distance`): with ``H = R^T R`` and ``w0`` the unconstrained
        minimizer, ``z = R (w - w0)`` is the shortest vector meeting the bounds. Only the
        bounds of a working set enter it, from ``start`` (a mask of rows), and each pass
        adds those the point passes by more than ``hold`` (the finish's threshold for
        holding a bound); the others stay within it.
        """
        if K.size == 0:  # nothing to hold a zero column at
            return np.zeros(0), _EMPTY
        factor = self.factor(j, K)
        if factor is None:
            return None
        g = self.F[K, j] - t * self.C[K, j] * signs
        w0 = dtrtrs(factor, dtrtrs(factor, g, lower=0, trans=1)[0], lower=0)[0]
        off = np.flatnonzero(~self.active[:, j])
        B, V = self.block(off, K), self.V[off, j]
        working = np.flatnonzero(start[off])  # positions in off
        held = _EMPTY
        for _ in range(FINISH_BOUND_PASSES):
            w = w0
            if working.size:
                found = _least_distance(factor, B[working], B[working] @ w0 - V[working])
                if found is None:
                    return None
                z, u = found
                w = w0 + dtrtrs(factor, z, lower=0)[0]
                held = working[u > 0]
                self.work += float(working.size * K.size**2)
            self.work += float(B.size)
            passed = B @ w - V > hold
            passed[working] = False
            if not passed.any():
                return w, off[held]
            working = np.union1d(held, np.flatnonzero(passed))
        return None


def _first_guess(layer: _Layer, S: np.ndarray, U: np.ndarray) -> _Guess:
    """The support and signs of ``S`` (with every unweighted entry); per column, the
    bounds where the multiplier ``U`` is positive, the largest ``k - 1`` of them at most
    for a support of ``k`` entries (:func:`_most_held`)."""
    free = layer.C == 0
    support = (S != 0) | free
    signs = np.where(free, 0.0, np.sign(S))
    held = np.zeros(U.shape, dtype=bool)
    if layer.active is not None:
        positive = ~layer.active & (U > 0)
        for j in np.flatnonzero(positive.any(axis=0) & support.any(axis=0)):
            rows = _most_held(layer, j, np.flatnonzero(support[:, j]), positive[:, j], U[:, j])
            held[rows, j] = True
    return _Guess(support, signs, held)


def _most_held(
    layer: _Layer, j: int, K: np.ndarray, positive: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """The bounds of column ``j`` to hold first. A row of ``X`` that is zero on the support
    can never pass its bound (``V >= 0`` there, or the program is infeasible) and is left
    out. A vertex of the program holds at most ``k - 1`` independent bounds on a support of
    ``k`` entries (one degree of freedom goes to the ball), and an early iterate's
    multiplier is positive on many more: holding all of them leaves no point that fits
    (on a random ``120 x 10 -> 5`` layer at a gap of 1e-2, 19 bounds on 5 entries). The
    ``k - 1`` with the largest multipliers are kept; the corrections hold any other the
    point then violates."""
    rows = np.flatnonzero(positive)
    rows = rows[np.any(layer.block(rows, K) != 0, axis=1)]
    limit = max(K.size - 1, 0)
    if rows.size <= limit:
        return rows
    largest = np.argsort(-u[rows], kind="stable")[:limit]
    return np.sort(rows[largest])


def _assemble(
    layer: _Layer, solutions: list[_ColumnSolution | None], mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W, X W, Lam)`` at the multipliers ``mu`` (per column; columns without a
    solution stay zero). ``Lam`` is formed in place: on a float32 layer each ``(n, m)``
    float64 temporary costs two of the ADMM's ``(n, m)`` arrays."""
    problem = layer.problem
    d, m = problem.shape[1:]
    W = np.zeros((d, m))
    for j, sol in enumerate(solutions):
        if sol is not None:
            W[sol.K, j] = sol.w_a + (1.0 / mu[j] if mu[j] > 0 else 0.0) * sol.w_b
    W = W.astype(problem.dtype)
    XW = problem.X @ W
    Lam = (XW - problem.Y).astype(np.float64)
    Lam *= mu
    if layer.active is not None:  # off Omega: the held bounds' multipliers, else zero
        np.copyto(Lam, 0.0, where=~layer.active)
        for j, sol in enumerate(solutions):
            if sol is not None and sol.A.size:
                Lam[sol.A, j] = mu[j] * sol.nu_a + sol.nu_b
    solved = np.array([sol is not None for sol in solutions])
    Lam[:, ~solved] = 0.0
    return W, XW, Lam


def _corrected(
    layer: _Layer,
    guess: _Guess,
    point: tuple[np.ndarray, np.ndarray, np.ndarray],
    mu: np.ndarray,
    solved: np.ndarray,
    hold: float,
    *,
    programs: bool = True,
) -> tuple[_Guess, np.ndarray]:
    """The next guess after the point ``(W, X W, Lam)`` at the multipliers ``mu`` (the
    columns not ``solved`` are not changed) and, per column, how many entries and bounds
    changed.

    Entries follow the primal-dual active-set rule. So do the bounds of a column where
    that rule changes nothing; where it changes an entry or a bound, the column's own
    program on the new support at the same ``mu`` decides its bounds
    (:meth:`_Layer.bound_program`; ``programs=False``: the rule alone). The rule alone
    swaps bounds in and out on a column that holds nearly as many bounds as its support
    has entries: on MNIST's second layer one such column (32 entries, 27 bounds at the
    optimum) swapped about 15 each round, and the layer's ball could then not be met.
    """
    W, XW, Lam = point
    C = layer.C
    G = (layer.X.T @ Lam.astype(layer.X.dtype)).astype(np.float64)
    flipped = solved & guess.support & (guess.signs != 0) & (np.sign(W) != guess.signs)
    joining = solved & ~guess.support & (C > 0) & (np.abs(G) > C * (1.0 + FINISH_DUAL_SLACK))
    support = (guess.support & ~flipped) | joining
    signs = np.where(joining, -np.sign(G), np.where(flipped, 0.0, guess.signs))
    moved = np.count_nonzero(flipped | joining, axis=0)
    held = guess.held
    if layer.active is not None:
        excess = XW - layer.V
        kept = held & (Lam >= 0)
        violated = ~layer.active & (hold < excess) & ~kept
        held = np.where(solved, (kept | violated) & support.any(axis=0), held)
        exact = np.zeros(solved.shape, dtype=bool)
        unsettled = solved & ((moved > 0) | np.any(held != guess.held, axis=0)) & programs
        with one_blas_thread():  # small products (see multipliers)
            for j in np.flatnonzero(unsettled):
                K = np.flatnonzero(support[:, j])
                t = 1.0 / mu[j] if mu[j] > 0 else 0.0
                found = layer.bound_program(j, K, signs[K, j], t, held[:, j], hold)
                if found is not None:
                    held[:, j] = False
                    held[found[1], j] = True
                    exact[j] = True
        _cap_held(held, kept, excess, np.count_nonzero(support, axis=0), ~exact)
    changes = moved + np.count_nonzero(held != guess.held, axis=0)
    return _Guess(support, signs, held), changes


def _cap_held(
    held: np.ndarray, kept: np.ndarray, excess: np.ndarray, k: np.ndarray, columns: np.ndarray
) -> None:
    """At most ``k_j - 1`` held bounds in each of ``columns`` (mask; :func:`_most_held`),
    in place: those held before first, then the newly violated by how far they pass their
    bound. Without the cap a wrong guess piles up bounds, and the column's system, a
    least-squares problem in as many multipliers, took 0.1 s (a random ``2048 x 64 -> 64``
    layer)."""
    counts = np.count_nonzero(held, axis=0)
    for j in np.flatnonzero(columns & (counts > np.maximum(k - 1, 0))):
        rows = np.flatnonzero(held[:, j])
        rank = np.where(kept[rows, j], np.inf, excess[rows, j])
        keep = rows[np.argsort(-rank, kind="stable")[: max(int(k[j]) - 1, 0)]]
        held[:, j] = False
        held[keep, j] = True


def _least_distance(
    factor: np.ndarray, B: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The shortest ``z`` with ``-B R^{-1} z >= h`` (``R`` = ``factor``, upper
    triangular) and the bounds' multipliers' pattern ``u`` (positive where a bound
    holds), by the non-negative least-squares problem of Lawson & Hanson's least-distance
    programming; ``None`` when no ``z`` meets the bounds (or NNLS stops short)."""
    k = factor.shape[0]
    M = dtrtrs(factor, np.ascontiguousarray(B.T), lower=0, trans=1)[0]  # R^{-T} B^T
    E = np.vstack([-M, h[None, :]])
    f = np.zeros(k + 1)
    f[-1] = 1.0
    try:
        u, _ = nnls(E, f)
    except RuntimeError:  # its iteration limit
        return None
    r = E @ u - f
    if not r[-1] < -_LDP_TINY:  # ||E u - f|| = 0: the bounds exclude every point
        return None
    return -r[:-1] / r[-1], u


def _settled(guess: _Guess, current: _Guess, older: _Guess | None, changes: np.ndarray) -> _Guess:
    """``guess``, but for the columns where it returns to ``older`` (the guess before
    ``current``), which keep ``current``: a column that goes back and forth between two
    guesses (an entry at zero whose dual constraint is tight, say, which joins when a bound
    is released and leaves when it is held) stops there, counted as unchanged (``changes``,
    in place). The caller certifies the point whatever it is."""
    if older is None:
        return guess
    back = (
        (changes > 0)
        & np.all(guess.support == older.support, axis=0)
        & np.all(guess.held == older.held, axis=0)
        & np.all(guess.signs == older.signs, axis=0)
    )
    if not back.any():
        return guess
    changes[back] = 0
    return _Guess(
        np.where(back, current.support, guess.support),
        np.where(back, current.signs, guess.signs),
        np.where(back, current.held, guess.held),
    )


def _release(
    guess: _Guess, solutions: list[_ColumnSolution | None], columns: np.ndarray
) -> np.ndarray:
    """Release, in place, the held bounds of ``columns`` whose multiplier in the pure fit
    is negative (the fit pushes away from them); which columns changed."""
    changed = np.zeros(len(solutions), dtype=bool)
    for j in columns:
        negative = solutions[j].nu_a < 0
        if negative.any():
            guess.held[solutions[j].A[negative], j] = False
            changed[j] = True
    return changed


class _Rounds:
    """One finish across its rounds: the guess, the column solutions, what changed."""

    def __init__(self, problem: NetTrimProblem, S: np.ndarray, U: np.ndarray, feas_tol: float):
        self.problem, self.layer = problem, _Layer(problem)
        self.separable = problem.program.separable
        self.guess = _first_guess(self.layer, S, U)
        m = S.shape[1]
        self.hold = FINISH_HOLD * feas_tol * problem.target_scale[2]
        self.solutions: list[_ColumnSolution | None] = [None] * m
        self.redo = np.ones(m, dtype=bool)
        self.releases = np.zeros(m, dtype=np.intp)
        self.history: list[int] = []
        self.released = False
        self.older: _Guess | None = None  # the guess before the current one
        self.first = 0  # the changes of the first correction

    def multipliers(self, rounds: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Solve the columns whose guess changed; ``(solved, mu)``, or ``None`` when a
        layer-wide finish gives up. When the support cannot fit the targets under the
        bounds held, those the fit pushes away from are released (``solved`` is then all
        False, and the round ends there): as often as needed in a column of a separable
        program, once for a layer-wide ball (on MNIST's second layer its releases
        cycled). A column with nothing left to release is not solved."""
        # One BLAS thread: the systems are small, and OpenBLAS's threads cost more than
        # they save on them (a 4096 x 256 -> 256 layer's finish took 18 s on 2 threads,
        # 2.8 s on one); the layer-sized products between rounds keep every thread
        with one_blas_thread():
            for j in np.flatnonzero(self.redo):
                self.solutions[j] = self.layer.solve(j, *self.guess.column(j))
        solved = np.array([sol is not None for sol in self.solutions])
        figures = np.array([(sol or _NO_SOLUTION).a for sol in self.solutions]).T
        mu = self.problem.program.active_set_multiplier(*figures)
        unfit = solved & np.isnan(mu)
        if unfit.any():
            most = rounds if self.separable else FINISH_RELEASES
            self.redo = _release(
                self.guess, self.solutions, np.flatnonzero(unfit & (self.releases < most))
            )
            self.releases += self.redo
            if self.redo.any():
                self.history.append(int(self.redo.sum()))
                self.released = True
                return np.zeros_like(solved), mu
            solved &= ~unfit
        if not (solved.all() or (self.separable and solved.any())):
            return None
        return solved, np.where(solved, mu, 0.0)

    def correct(
        self, solved: np.ndarray, mu: np.ndarray, r: int, rounds: int
    ) -> ActiveSetPoint | None:
        """Assemble the point at ``mu`` and correct the guess; the point when the
        rounds end here (converged, stalled or the last), else ``None``."""
        n, d, m = self.problem.shape
        layer = self.layer
        kept = [sol if ok else None for sol, ok in zip(self.solutions, solved, strict=True)]
        W, XW, Lam = _assemble(layer, kept, mu)
        layer.work += 2.0 * n * d * m
        # the first correction of the ADMM's guess by the rule alone: it changes many
        # columns, and the programs pay off only on those that keep changing
        first = self.older is None
        guess, changes = _corrected(
            layer, self.guess, (W, XW, Lam), mu, solved, self.hold, programs=not first
        )
        if first:
            self.first = int(changes.sum())
        self.guess, self.older = _settled(guess, self.guess, self.older, changes), self.guess
        history = self.history
        history.append(int(changes.sum()))
        done = history[-1] == 0
        stalled = (
            not self.released
            and len(history) >= 2
            and history[-1] > max(min(history[-2], FINISH_GROWTH * self.first), FINISH_FEW)
        )
        self.released = False
        self.redo = changes > 0
        if done or stalled or r == rounds:
            return ActiveSetPoint(W, XW, Lam, solved, r, done, history, layer.work)
        return None

    def nothing(self) -> ActiveSetPoint:
        """The finish's answer when it found no point."""
        m = self.problem.shape[2]
        rounds, work = len(self.history), self.layer.work
        return ActiveSetPoint(
            None, None, None, np.zeros(m, bool), rounds, False, self.history, work
        )


def active_set_finish(
    problem: NetTrimProblem,
    S: np.ndarray,
    U: np.ndarray,
    *,
    feas_tol: float,
    rounds: int = FINISH_ROUNDS,
) -> ActiveSetPoint:
    """The optimum on the active set that ``S`` and the multiplier ``U`` point to.

    Parameters
    ----------
    problem : NetTrimProblem
        The program (any variant: a layer-wide ball, a ball per column, (P3)).
    S : ndarray of shape (d, m)
        The ADMM's sparse point: its support and signs are the first guess.
    U : ndarray of shape (n, m)
        The multiplier of ``Z = X W`` (or any positive multiple per column): the bounds
        off Omega where it is positive are held first.
    feas_tol : float
        A bound is held once violated by ``FINISH_HOLD feas_tol max|Y|``.
    rounds : int
        Rounds of corrections at most.

    Returns
    -------
    ActiveSetPoint
        The last round's point, which the caller certifies. A column whose support's Gram
        is singular, or whose support cannot fit its targets to its radius even after the
        bounds the fit pushes away from are released, is not solved (a layer-wide ball
        then gives no point). The rounds stop early when the guess stops changing, or
        when a round changes more than the last, or more than ``FINISH_GROWTH`` times the
        first (and more than ``FINISH_FEW``): a guess that does so rarely converges.
    """
    run = _Rounds(problem, S, U, feas_tol)
    for r in range(1, rounds + 1):
        found = run.multipliers(rounds)
        if found is None:
            break
        solved, mu = found
        if not solved.any():
            continue  # bounds were released: solve those columns again
        point = run.correct(solved, mu, r, rounds)
        if point is not None:
            return point
    return run.nothing()

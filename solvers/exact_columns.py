"""Exact solves of single columns of a per-column program, by row and entry generation.

A few columns of a per-neuron program can take the ADMM thousands of iterations where the
others settle in a hundred: a neuron that fires on a handful of samples (``|Omega_j|`` of 1
to 6 among thousands, as on MNIST's second hidden layer) has a ball on so few rows that its
program is nearly a linear program — the least weighted L1 norm over the polyhedron of its
thousands of bounds off Omega, at a vertex held by about as many bounds as the column has
nonzero entries. The ADMM approaches such a vertex slowly, and the active-set finish
(:mod:`.active_set`) cannot solve it: the Gram of ``X`` on Omega is singular there. Those
columns are sparse at the optimum and few bounds hold, so :func:`solve_columns` solves each
exactly as a small second-order cone program (Clarabel), restricted to

* ``E``, the entries that may be nonzero: those whose dual constraint the ADMM's
  multiplier nearly meets (``|x_i^T lam| >= ENTRY_FRACTION c_i`` once the multiplier is
  scaled to meet them all) and every unpenalized row (a bias);
* ``K``, the bounds off Omega that may hold: where the multiplier is positive or the
  ADMM's point is within ``ROW_MARGIN`` (of the column's targets) of its bound.

On them, with ``t`` bounding ``|w_E|`` on the penalized entries::

    minimize    sum_{i in E} c_i t_i
    subject to  ||R w_E - q||_2 <= r'        the ball on Omega_j
                X_{K,E} w_E <= V_K           the bounds guessed
                -t <= w_E <= t

where the ball is the column's own, reduced by a QR of ``X_{Omega_j,E}`` (``R`` square)
when ``Omega_j`` has more rows than ``E`` entries (``||X_{Omega,E} w - y||^2 = ||R w -
Q^T y||^2 + ||y - Q Q^T y||^2``, so ``r'^2 = r^2 - ||y - Q Q^T y||^2``). Its solution and
multipliers satisfy the column's optimality conditions on every row and entry when no
bound off ``K`` is violated and no entry off ``E`` breaks its dual constraint
``|x_i^T lam| <= c_i``; else the most violated bounds and entries join and it is solved
again (entries by the Farkas certificate when Clarabel proves the restriction infeasible).

The caller measures and certifies what comes back on the whole program
(:mod:`.duality`), as any point; the multiplier on Omega is lifted from the cone's so that
a solved column's gap is Clarabel's (:meth:`_Ball.multiplier`).
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.sparse as sp

from .linalg import take_block
from .problem import NetTrimProblem

#: An entry joins the first guess when the ADMM multiplier's ``|x_i^T lam|``, scaled to
#: meet every dual constraint, reaches this fraction of ``c_i``.
ENTRY_FRACTION = 0.8
#: A bound joins the first guess when the ADMM point is within this fraction of the
#: column's largest target of it.
ROW_MARGIN = 0.01
#: A bound off the guess counts as violated past this fraction of the column's largest
#: target; an entry's dual constraint as broken past ``1 + ENTRY_TOL`` times its weight.
ROW_TOL = 1e-9
ENTRY_TOL = 1e-7
#: Bounds and entries added per round at most (the most violated first).
ROWS_PER_ROUND = 100
ENTRIES_PER_ROUND = 20
#: Restricted programs solved per column at most.
MAX_ROUNDS = 12
#: Clarabel's tolerances (its defaults, stated: the certificate needs them tight).
CLARABEL_TOL = 1e-8
#: :func:`estimated_work`'s model of a column's cost, in multiply-adds at the rate of the
#: ADMM's products (20-30 million a millisecond): restricted programs a column, the fixed
#: cost of one (building it, Clarabel's setup), and the factor of its size
#: ``(rows + entries) x entries^2`` (Clarabel's sparse factorizations of these dense blocks,
#: over its iterations). Fitted to Clarabel's times on MNIST's columns (``docs/solvers.md``,
#: "Exact solves of lagging columns").
EXPECTED_ROUNDS = 4
SOLVE_OVERHEAD = 4e7
SOLVE_WORK = 600.0


@dataclass
class ExactColumns:
    """What :func:`solve_columns` found.

    Attributes
    ----------
    W : ndarray of shape (d, m)
        The weights of the columns solved (the problem's precision), zero elsewhere.
    Lam : ndarray of shape (n, m)
        Their multiplier of ``Z = X W`` (float64; :mod:`.duality` takes it as it is).
    solved : ndarray of shape (m,) of bool
        The columns solved.
    rounds : int
        Restricted programs solved, over every column.
    """

    W: np.ndarray
    Lam: np.ndarray
    solved: np.ndarray
    rounds: int


@dataclass
class _Column:
    """One column's program: the layer's ``X``, the column's rows of Omega (``on``, their
    targets ``y``, the radius ``r``), the candidates for its bounds (the ``off`` rows with
    a finite bound ``V``), its entry weights ``c`` and the scale of its targets."""

    X: np.ndarray
    on: np.ndarray
    y: np.ndarray
    r: float
    off: np.ndarray
    V: np.ndarray
    c: np.ndarray
    scale: float


def solve_columns(problem: NetTrimProblem, S: np.ndarray, Lam: np.ndarray) -> ExactColumns:
    """Solve every column of the per-column program ``problem`` exactly (module docstring).

    Parameters
    ----------
    problem : NetTrimProblem
        A program with one ball per column (not (P3)).
    S : ndarray of shape (d, m)
        The ADMM's point: which bounds lie near it.
    Lam : ndarray of shape (n, m)
        The ADMM's multiplier of ``Z = X W`` (any positive multiple per column): which
        entries and bounds to guess first.

    Returns
    -------
    ExactColumns
        A column is not solved when Clarabel fails on it or ``MAX_ROUNDS`` restricted
        programs did not settle it.
    """
    radii = problem.program.column_radii
    if radii is None or problem.penalized:
        raise ValueError("solve_columns needs a program with one ball per column")
    n, d, m = problem.shape
    W = np.zeros((d, m), problem.dtype)
    L = np.zeros((n, m))
    solved = np.zeros(m, dtype=bool)
    rounds = 0
    for j, (column, xs, lam) in enumerate(_columns(problem, S, Lam)):
        found = _solve_column(column, xs, lam)
        rounds += found[2]
        if found[0] is not None:
            W[:, j], L[:, j], solved[j] = found[0], found[1], True
    return ExactColumns(W=W, Lam=L, solved=solved, rounds=rounds)


def estimated_work(problem: NetTrimProblem, S: np.ndarray, Lam: np.ndarray) -> float:
    """What :func:`solve_columns` would cost, in multiply-adds at the rate of the ADMM's
    products (the caller's unit of work): ``EXPECTED_ROUNDS`` restricted programs a column,
    each ``SOLVE_OVERHEAD`` plus ``SOLVE_WORK`` times ``(rows + entries) x entries^2`` of its
    first guess (the ball's rows at most as many as the entries). Costs two products of the
    columns' size, no solve, so it is deterministic and cheap."""
    work = 0.0
    for column, xs, lam in _columns(problem, S, Lam):
        E, K = _first_guess(column, xs, lam)
        size = (K.size + E.size + min(column.on.size, E.size)) * float(E.size) ** 2
        work += EXPECTED_ROUNDS * (SOLVE_OVERHEAD + SOLVE_WORK * size)
    return work


def _columns(problem: NetTrimProblem, S: np.ndarray, Lam: np.ndarray):
    """Per column of ``problem``: its :class:`_Column`, ``X s`` and the multiplier."""
    radii = problem.program.column_radii
    n, d, m = problem.shape
    weights = np.broadcast_to(problem.weight_matrix(), (d, m))
    V = problem.upper_bounds()
    XS = problem.X @ S
    for j in range(m):
        on = np.ones(n, bool) if problem.active is None else problem.active[:, j]
        off = np.flatnonzero(~on & np.isfinite(V[:, j]))
        y = np.asarray(problem.Y[on, j], dtype=np.float64)
        column = _Column(
            X=problem.X,
            on=np.flatnonzero(on),
            y=y,
            r=float(radii[j]),
            off=off,
            V=np.asarray(V[off, j], dtype=np.float64),
            c=weights[:, j],
            scale=max(float(np.abs(y).max(initial=0.0)), float(radii[j])) or 1.0,
        )
        yield column, XS[:, j], np.asarray(Lam[:, j], dtype=np.float64)


def _solve_column(
    col: _Column, xs: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """``(w, lam, rounds)`` of one column; ``w`` and ``lam`` ``None`` when not solved."""
    E, K = _first_guess(col, xs, lam)
    for rounds in range(1, MAX_ROUNDS + 1):
        found = _restricted(col, E, K)
        if found is None:
            return None, None, rounds
        w, multiplier, ray = found
        if ray is not None:  # no point on E: the entries the certificate rules out join
            grown = _join(E, _entry_excess(col, ray, E, strict=False))
            if grown.size == E.size:
                return None, None, rounds
            E = grown
            continue
        rows = _join(K, _row_excess(col, w))
        entries = _join(E, _entry_excess(col, multiplier, E, strict=True))
        if rows.size == K.size and entries.size == E.size:
            return w, multiplier, rounds
        E, K = entries, rows
    return None, None, MAX_ROUNDS


def _first_guess(col: _Column, xs: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries and bounds of the first restricted program (module docstring)."""
    g = np.abs(col.X.T @ lam.astype(col.X.dtype, copy=False)).astype(np.float64)
    penalized = col.c > 0
    ratio = np.divide(g, col.c, out=np.zeros_like(g), where=penalized)
    top = float(ratio.max(initial=0.0))
    E = np.flatnonzero(~penalized | ((ratio >= ENTRY_FRACTION * top) & (top > 0)))
    near = xs[col.off] - col.V > -ROW_MARGIN * col.scale
    K = col.off[near | (lam[col.off] > 0)]
    return E, K


def _join(current: np.ndarray, candidates: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    """``current`` with the most excessive of ``candidates`` (indices, excess, how many)."""
    index, excess, most = candidates
    if index.size == 0:
        return current
    keep = index[np.argsort(-excess, kind="stable")[:most]]
    return np.union1d(current, keep)


def _row_excess(col: _Column, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The bounds ``w`` violates past ``ROW_TOL`` (indices into the rows, by how much)."""
    excess = col.X[col.off] @ w.astype(col.X.dtype, copy=False) - col.V
    bad = excess > ROW_TOL * col.scale
    return col.off[bad], excess[bad], ROWS_PER_ROUND


def _entry_excess(
    col: _Column, lam: np.ndarray, E: np.ndarray, *, strict: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """The entries off ``E`` whose dual constraint ``lam`` breaks (``strict``: past
    ``1 + ENTRY_TOL`` times its weight; else any entry ``lam`` reaches, a Farkas ray's
    test), by how much."""
    g = np.abs(col.X.T @ lam.astype(col.X.dtype, copy=False)).astype(np.float64)
    outside = np.ones(g.size, dtype=bool)
    outside[E] = False
    limit = col.c * (1 + ENTRY_TOL) if strict else ENTRY_TOL * float(g.max(initial=0.0))
    excess = g - limit
    bad = outside & (excess > 0)
    return np.flatnonzero(bad), excess[bad], ENTRIES_PER_ROUND


def _restricted(
    col: _Column, E: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Solve the program restricted to entries ``E`` and bounds ``K``: ``(w, lam, None)``
    at its optimum, ``(None, None, ray)`` with a Farkas ray (an ``(n,)`` multiplier) when it
    is infeasible, ``None`` when Clarabel fails. In units of the column's scale inside."""
    n = col.X.shape[0]
    s = col.scale
    X_on = take_block(col.X, col.on, E)
    ball = _Ball(X_on, col.y / s, col.r / s)
    R, q, r = ball.R, ball.q, ball.radius
    if r is None:  # the fit alone misses the radius on E: add what reduces the residual
        residual = np.zeros(n)
        residual[col.on] = ball.outside
        return None, None, residual
    X_K = take_block(col.X, K, E)
    k = E.size
    penalized = np.flatnonzero(col.c[E] > 0)
    p = penalized.size
    pick = sp.csc_matrix((np.ones(p), (np.arange(p), penalized)), shape=(p, k))
    ident = sp.identity(p, format="csc")
    A = sp.vstack(
        [
            sp.hstack([pick, -ident]),
            sp.hstack([-pick, -ident]),
            sp.hstack([sp.csc_matrix(X_K), sp.csc_matrix((K.size, p))]),
            sp.csc_matrix((1, k + p)),
            sp.hstack([sp.csc_matrix(R), sp.csc_matrix((R.shape[0], p))]),
        ],
        format="csc",
    )
    b = np.concatenate([np.zeros(2 * p), col.V[np.searchsorted(col.off, K)] / s, [r], q])
    cost = np.concatenate([np.zeros(k), col.c[E][penalized]])
    cones = [clarabel.NonnegativeConeT(2 * p + K.size), clarabel.SecondOrderConeT(1 + q.size)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = CLARABEL_TOL
    solution = clarabel.DefaultSolver(
        sp.csc_matrix((k + p, k + p)), cost, A, b, cones, settings
    ).solve()
    status = str(solution.status)
    z = np.asarray(solution.z)
    z_K, z_ball = z[2 * p : 2 * p + K.size], z[2 * p + K.size + 1 :]
    if status in ("PrimalInfeasible", "AlmostPrimalInfeasible"):
        ray = np.zeros(n)
        ray[K] = z_K
        ray[col.on] = ball.multiplier(z_ball)
        return None, None, ray
    if status not in ("Solved", "AlmostSolved"):
        return None
    w_E = np.asarray(solution.x[:k])
    w = np.zeros(col.X.shape[1])
    w[E] = w_E * s
    lam = np.zeros(n)
    lam[K] = z_K
    lam[col.on] = ball.multiplier(z_ball)
    return w, lam, None


class _Ball:
    """The ball ``||X_on w - y|| <= r`` on a restriction: ``||R w - q|| <= r'``.

    ``X_on`` itself when it has no more rows than columns; else its QR ``X_on = Q R`` with
    ``q = Q^T y``: ``||X_on w - y||^2 = ||R w - q||^2 + ||y_perp||^2`` for the part
    ``y_perp = y - Q q`` of ``y`` outside the range, so ``r'^2 = r^2 - ||y_perp||^2``
    (``radius`` None when that is not positive: no point on these entries fits).
    """

    def __init__(self, X_on: np.ndarray, y: np.ndarray, r: float):
        self.Q = None
        self.R, self.q, self.outside, self.radius = X_on, y, np.zeros_like(y), r
        if X_on.shape[0] > X_on.shape[1]:
            self.Q, self.R = np.linalg.qr(X_on)
            self.q = self.Q.T @ y
            self.outside = y - self.Q @ self.q
            left = r * r - float(self.outside @ self.outside)
            self.radius = float(np.sqrt(left)) if left > 0 else None

    def multiplier(self, z: np.ndarray) -> np.ndarray:
        """The multiplier on the rows of Omega from the cone's ``z``: ``Q z - (||z|| /
        r') y_perp``. Its products with the restriction's columns are ``R^T z`` (``y_perp``
        is orthogonal to them), so stationarity holds as Clarabel left it, and its dual
        objective for the full ball, ``-<lam, y> - r ||lam||``, equals the restricted one,
        ``-<z, q> - r' ||z||``: the gap is Clarabel's."""
        if self.Q is None:
            return z
        lam = self.Q @ z
        if self.radius is not None:
            lam -= (float(np.linalg.norm(z)) / self.radius) * self.outside
        return lam

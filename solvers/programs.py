"""The three Net-Trim program variants as small objects: what differs between them, once.

Every Net-Trim program minimizes the weighted L1 norm of ``W`` under the bounds off Omega
(:mod:`.problem`); the variants differ only in what they ask of the residual
``R = (X W - Y)_Omega``:

* :class:`LayerBall` ((P1)/(P2)): ``||R||_F <= radius``, one ball for the layer;
* :class:`ColumnBalls`: ``||r_j||_2 <= radius_j``, one ball per column;
* :class:`Penalty` ((P3)): ``(lam / 2) ||R||_F^2`` added to the objective.

Each variant answers what the solvers need of it (skglm's datafit/penalty objects are the
model): the measures (:meth:`Program.measure`), the ADMM's projection step onto the ball or
the prox of the penalty (:meth:`Program.projection_scale`), the certificate's dual term and
bound (:mod:`.duality`), the exact path's cone or quadratic (:mod:`.exact`) and what the
polish needs (:mod:`.polish`). :attr:`.NetTrimProblem.program` builds the variant from the
problem's ``radius`` and ``penalty``. A new variant is a new subclass here and one line in
:func:`program_of` (``docs/solvers.md``, "Code layout").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .linalg import reduced_radius

_TINY = 1e-30


class Program:
    """What one variant of the Net-Trim program asks of the residual on Omega.

    Attributes
    ----------
    kind : {"constrained", "penalized"}
        The family, as :data:`.exact.EXACT_SOLVERS` lists what each backend solves.
    separable : bool
        Whether the program splits into one independent program per column (its dual
        too): the ADMM then keeps penalties per column, solves column-normalized and sets
        finished columns aside.
    has_ball : bool
        Whether the residual is constrained (a ball) rather than penalized.
    per_column : bool
        Whether the residual has one ball per column (:class:`ColumnBalls`): what the
        reports call per-neuron balls (:attr:`.SolveInfo.per_column`) and what the exact
        solves of lagging columns ask for.
    column_radii : ndarray of shape (m,) or None
        The radii of a ball per column (``None`` for the other variants).
    layer_radius : float or None
        The radius of the one ball of the layer (``None`` for the other variants).
    """

    kind = "constrained"
    separable = False
    has_ball = True
    per_column = False
    column_radii: np.ndarray | None = None
    layer_radius: float | None = None

    # --- the problem's fields under the transformations the solvers apply -------------
    def scaled(self, sigma: float) -> dict[str, Any]:
        """The problem's fields of this program once ``X`` and ``Y`` are divided by ``sigma``."""
        raise NotImplementedError

    def in_column_units(self, beta: np.ndarray) -> dict[str, Any]:
        """... once column ``j`` of ``Y`` is divided by ``beta_j`` (separable programs)."""
        return {}

    def columns(self, keep: np.ndarray) -> dict[str, Any]:
        """... of the program of the columns ``keep`` alone (separable programs)."""
        raise ValueError("only a separable program (per-column balls or P3) splits by column")

    # --- measures ----------------------------------------------------------------------
    def measure(
        self, l1: float, column_residuals: np.ndarray, residual: float
    ) -> tuple[float, float, float]:
        """``(objective, radius, ball excess)`` of a point with these figures, as
        :class:`.SolveInfo` reports them."""
        raise NotImplementedError

    def column_objectives(self, column_l1: np.ndarray, column_sq: np.ndarray) -> np.ndarray:
        """Each column's share of the objective (separable programs)."""
        return column_l1

    def largest_radius(self) -> float:
        """The largest radius (0 without a ball): the scale of the ADMM's log line."""
        return 0.0

    def asks_exact_fit(self, target_scale: tuple[float, np.ndarray, float]) -> bool:
        """Whether a zero radius asks some targets to be fitted exactly (a radius of 0 on
        columns with nothing on Omega asks nothing)."""
        return False

    def in_range(
        self, outside: np.ndarray, target_scale: tuple[float, np.ndarray, float]
    ) -> dict[str, Any] | None:
        """The radius fields once the targets are reduced to the range of ``X``
        (``outside[j]``: the distance of ``y_j`` to it, every entry on Omega): the radius
        left for the part inside, or ``None`` when the targets are farther than the radius
        from the range (no ``W`` is feasible). Only programs with a ball reduce so (the
        penalty of (P3) would gain a constant)."""
        raise NotImplementedError

    # --- the ADMM ----------------------------------------------------------------------
    def projection_scale(
        self, column_sq: np.ndarray, rho1: np.ndarray, beta: np.ndarray
    ) -> np.ndarray:
        """Per column, the factor of the projection (or prox) of the residual on Omega.

        ``column_sq`` holds the squared residuals on Omega of the point projected, ``rho1``
        the penalties of ``Z = X W``, ``beta`` the column units (:mod:`.admm`).
        """
        raise NotImplementedError

    def active_set_multiplier(self, a0: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
        """Per column, the multiplier ``mu`` of the residual at the active-set point
        ``w_a + w_b / mu`` (:mod:`.active_set`), from that column's ``a0 = ||r_a||^2``,
        ``a1 = <r_a, X w_b>`` and ``a2 = ||X w_b||^2`` on Omega (``r_a = X w_a - y``):
        the ``mu`` that puts the point on its ball, or the penalty of (P3). 0 where the
        point needs no ball (``w_b = 0``); NaN where no positive ``mu`` fits (every
        column, for a layer-wide ball)."""
        raise NotImplementedError

    # --- the certificate ---------------------------------------------------------------
    def support_term(self, L_on: np.ndarray) -> float:
        """The support function of the ball at ``L_on`` (0 without a ball): the ball's part
        of a Farkas ray's support value."""
        return 0.0

    def dual_term(self, L_on: np.ndarray) -> float:
        """The term the dual objective subtracts for the residual part (``rho(L)``)."""
        return self.support_term(L_on)

    def relaxed_radius(self, column_residuals: np.ndarray | None) -> float | np.ndarray:
        """The radius of the program a point with these residuals satisfies exactly,
        ``max(radius, residual)`` (the radius itself when ``None``)."""
        return 0.0

    def bound(
        self,
        on: np.ndarray,
        off: np.ndarray,
        on_sq: np.ndarray,
        scales: np.ndarray,
        radius: float | np.ndarray,
    ) -> float:
        """The dual bound from per-column terms of a clipped, balanced multiplier ``L``.

        ``on_j = <L_{Omega_j}, y_j>``, ``off_j = <L_off_j, V_j>``,
        ``on_sq_j = ||L_{Omega_j}||^2``, ``scales`` the ``s_j`` of
        :func:`.duality.column_scales`, ``radius`` the (possibly relaxed) radius. A
        separable program sums its :meth:`column_bounds`.
        """
        return float(np.sum(self.column_bounds(on, off, on_sq, scales, radius)))

    def column_bounds(
        self,
        on: np.ndarray,
        off: np.ndarray,
        on_sq: np.ndarray,
        scales: np.ndarray,
        radius: float | np.ndarray,
    ) -> np.ndarray:
        """Per-column lower bounds of a separable program (arguments as in :meth:`bound`).

        Such a program is one independent program per column, and so is its dual: entry
        ``j`` bounds column ``j``'s optimal objective, each column scaled by its best factor
        in ``[0, 1]``.
        """
        raise ValueError("column_bounds needs a separable program (per-column balls or P3)")

    # --- the exact path ----------------------------------------------------------------
    def exact_constraints(self, cp, W, reductions: list, fits: list, Y: np.ndarray) -> list | str:
        """The cvxpy constraints of the residual part, or a message when the reduction
        alone shows the program infeasible.

        ``reductions[j]`` is column ``j``'s :class:`.RangeReduction` on its active rows
        (``None`` without any), ``fits`` the pairs ``(j, R_j w_j - c_j)``.
        """
        return []

    def exact_objective(self, cp, fits: list):
        """The cvxpy term the residual part adds to the objective (``None`` for none)."""
        return None


class LayerBall(Program):
    """(P1)/(P2) with one ball for the layer: ``||(X W - Y)_Omega||_F <= radius``."""

    def __init__(self, radius: float):
        self.radius = self.layer_radius = float(radius)

    def scaled(self, sigma):
        return {"radius": self.radius / sigma}

    def measure(self, l1, column_residuals, residual):
        return l1, self.radius, max(0.0, residual - self.radius)

    def largest_radius(self):
        return float(np.max(self.radius, initial=0.0))

    def asks_exact_fit(self, target_scale):
        return bool(np.any((np.asarray(self.radius) <= 0) & (np.asarray(target_scale[0]) > 0)))

    def in_range(self, outside, target_scale):
        radius = reduced_radius(self.radius, float(np.linalg.norm(outside)), target_scale[0])
        return None if radius is None else {"radius": radius}

    def projection_scale(self, column_sq, rho1, beta):
        # the layer-wide ball couples the columns: one radial factor for all of them
        norm = float(np.sqrt(column_sq.sum()))
        radius = self.radius
        return np.full(column_sq.shape[0], radius / norm if norm > radius else 1.0)

    def active_set_multiplier(self, a0, a1, a2):
        mu = _ball_multiplier(float(a0.sum()), float(a1.sum()), float(a2.sum()), self.radius)
        return np.full(a0.shape, mu)

    def support_term(self, L_on):
        return self.radius * float(np.linalg.norm(L_on))

    def relaxed_radius(self, column_residuals):
        radius = np.asarray(self.radius, dtype=np.float64)
        if column_residuals is None:
            return radius
        return np.maximum(radius, np.sqrt(np.sum(column_residuals**2)))

    def bound(self, on, off, on_sq, scales, radius):
        # two valid bounds, each column scaled by its own s_j or all by the largest: the
        # better of them (and 0, which the objective never undercuts)
        linear = -(on + off) / scales
        norms = np.sqrt(on_sq) / scales
        per_column_scaled = float(np.sum(linear)) - float(radius) * float(np.sqrt(np.sum(norms**2)))
        s_max = float(scales.max(initial=1.0))
        uniform = (-float(np.sum(on + off)) - float(radius) * float(np.sqrt(np.sum(on_sq)))) / s_max
        return max(0.0, per_column_scaled, uniform)

    def exact_constraints(self, cp, W, reductions, fits, Y):
        outside_sq = 0.0
        for red in reductions:
            if red is not None:
                outside_sq += float(red.outside[0] ** 2)
        r = reduced_radius(self.radius, float(np.sqrt(outside_sq)), float(np.linalg.norm(Y)))
        if r is None:
            return (
                f"the distance of the targets to the range of X ({np.sqrt(outside_sq):.3g}) "
                f"exceeds the radius ({self.radius:.3g})"
            )
        if not fits:
            return []
        stacked = cp.hstack([e for _, e in fits])
        return [stacked == 0 if r == 0 else cp.norm(stacked, 2) <= r]


class ColumnBalls(Program):
    """One ball per column: ``||(X w_j - y_j)_{Omega_j}||_2 <= radius_j`` (separable)."""

    separable = True
    per_column = True

    def __init__(self, radius: np.ndarray):
        self.radius = self.column_radii = np.asarray(radius)

    def scaled(self, sigma):
        return {"radius": self.radius / sigma}

    def in_column_units(self, beta):
        return {"radius": self.radius / beta}

    def columns(self, keep):
        return {"radius": self.radius[keep]}

    def measure(self, l1, column_residuals, residual):
        radius = float(np.max(self.radius, initial=0.0))
        excess = float(max(0.0, np.max(column_residuals - self.radius, initial=0.0)))
        return l1, radius, excess

    def largest_radius(self):
        return float(np.max(self.radius, initial=0.0))

    def asks_exact_fit(self, target_scale):
        return bool(np.any((self.radius <= 0) & (np.asarray(target_scale[1]) > 0)))

    def in_range(self, outside, target_scale):
        radii = [
            reduced_radius(float(r), float(o), float(c))
            for r, o, c in zip(self.radius, outside, target_scale[1], strict=True)
        ]
        return None if None in radii else {"radius": np.asarray(radii, dtype=self.radius.dtype)}

    def projection_scale(self, column_sq, rho1, beta):
        norms = np.sqrt(column_sq)
        return np.where(norms > self.radius, self.radius / np.maximum(norms, _TINY), 1.0)

    def active_set_multiplier(self, a0, a1, a2):
        figures = zip(a0, a1, a2, self.radius, strict=True)
        return np.array([_ball_multiplier(*column) for column in figures])

    def support_term(self, L_on):
        return float(np.linalg.norm(L_on, axis=0) @ self.radius)

    def relaxed_radius(self, column_residuals):
        radius = np.asarray(self.radius, dtype=np.float64)
        if column_residuals is None:
            return radius
        return np.maximum(radius, column_residuals)

    def column_bounds(self, on, off, on_sq, scales, radius):
        linear = -(on + off) / scales
        return np.maximum(0.0, linear - radius * np.sqrt(on_sq) / scales)

    def exact_constraints(self, cp, W, reductions, fits, Y):
        constraints = []
        for j, red in enumerate(reductions):
            if red is None:
                continue
            col_scale = float(np.linalg.norm(Y[:, j]))
            rj = reduced_radius(float(self.radius[j]), float(red.outside[0]), col_scale)
            if rj is None:
                return (
                    f"column {j}: the distance of its targets to the range of X "
                    f"({red.outside[0]:.3g}) exceeds its radius ({self.radius[j]:.3g})"
                )
            if red.rank:
                expr = red.R @ W[:, j] - red.C[:, 0]
                constraints.append(expr == 0 if rj == 0 else cp.norm(expr, 2) <= rj)
        return constraints


class Penalty(Program):
    """(P3): ``(lam / 2) ||(X W - Y)_Omega||_F^2`` added to the objective (separable)."""

    kind = "penalized"
    separable = True
    has_ball = False

    def __init__(self, penalty: float):
        self.penalty = penalty

    def scaled(self, sigma):
        # X and Y divided by sigma divide the residual by sigma: lam * sigma^2 keeps the
        # program in W
        return {"penalty": self.penalty * sigma**2}

    def columns(self, keep):
        return {}

    def measure(self, l1, column_residuals, residual):
        return l1 + 0.5 * self.penalty * residual**2, np.nan, np.nan

    def column_objectives(self, column_l1, column_sq):
        return column_l1 + 0.5 * self.penalty * column_sq

    def projection_scale(self, column_sq, rho1, beta):
        # (P3) on a column divided by beta_j has the penalty lam * beta_j relative to its
        # L1 weight beta_j: its prox weighs lam * beta_j**2 against rho1_j
        return rho1 / (self.penalty * beta**2 + rho1)

    def active_set_multiplier(self, a0, a1, a2):
        # stationarity of c |w| + (lam / 2) ||r||^2 + <nu, held>: the residual's
        # multiplier is lam itself
        return np.full(a0.shape, float(self.penalty))

    def dual_term(self, L_on):
        return float(np.vdot(L_on, L_on)) / (2.0 * self.penalty)

    def column_bounds(self, on, off, on_sq, scales, radius):
        # each column's dual along the ray t * L_j, maximized over t in [0, 1]
        linear = -(on + off) / scales
        quad = on_sq / (2.0 * self.penalty * scales**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(np.where(quad > 0, linear / (2.0 * quad), 1.0), 0.0, 1.0)
        t = np.where((quad <= 0) & (linear < 0), 0.0, t)
        return t * linear - t * t * quad

    def exact_objective(self, cp, fits):
        if not fits:
            return None
        return 0.5 * self.penalty * cp.sum([cp.sum_squares(e) for _, e in fits])


def _ball_multiplier(a0: float, a1: float, a2: float, radius: float) -> float:
    """The ``mu > 0`` with ``a0 + 2 a1 t + a2 t^2 = radius^2`` at ``t = 1 / mu`` (the
    positive root); 0 when ``w_b = 0`` and ``w_a`` is inside; NaN when ``w_a`` is already
    outside."""
    slack = float(radius) ** 2 - a0
    if slack < 0:
        return np.nan
    if a2 <= _TINY:
        return 0.0 if abs(a1) <= _TINY else np.nan
    t = (-a1 + np.sqrt(a1 * a1 + a2 * slack)) / a2
    return 1.0 / t if t > 0 else np.nan


def program_of(radius: float | np.ndarray, penalty: float | None) -> Program:
    """The variant a problem's ``radius`` and ``penalty`` select (a penalty wins)."""
    if penalty is not None:
        return Penalty(penalty)
    if np.ndim(radius) == 1:
        return ColumnBalls(radius)
    return LayerBall(radius)


__all__ = ["ColumnBalls", "LayerBall", "Penalty", "Program", "program_of"]

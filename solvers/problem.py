"""The Net-Trim layer programs as plain data on arrays.

With ``X`` of shape ``(n, d)``, targets ``Y`` ``(n, m)``, an active set ``Omega`` (boolean
``(n, m)``), upper bounds ``V`` on its complement and non-negative row weights ``c`` ``(d,)``:

(P1)/(P2), constrained::

    minimize    sum_i c_i ||W[i, :]||_1
    subject to  ||(X W - Y)_Omega||_F <= radius            (layer-wide ball), or
                ||(X w_j - y_j)_{Omega_j}||_2 <= radius_j   (one ball per column)
                (X W)_{Omega^c} <= V_{Omega^c}

(P3), penalized::

    minimize    sum_i c_i ||W[i, :]||_1 + (lam / 2) ||(X W - Y)_Omega||_F^2
    subject to  (X W)_{Omega^c} <= V_{Omega^c}

(P2) is the case ``Omega`` = every entry (``active=None``). Nothing here knows about neural
networks: ``X`` is a design matrix, the columns of ``W`` are coupled only through the
layer-wide ball.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from . import feasibility
from .programs import Program, program_of


@dataclass(frozen=True)
class NetTrimProblem:
    """One instance of (P1), (P2) or (P3). Arrays are trusted: validate before building.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Design matrix (for a layer: its input with a column of ones appended for the bias).
    Y : ndarray, shape (n, m)
        Targets. Only entries in ``active`` are fitted.
    active : ndarray of bool, shape (n, m), or None
        The set Omega. ``None`` means every entry is active and there are no inequalities.
    upper : ndarray, shape (n, m), or None
        ``V``: upper bounds on ``X W`` over the inactive set (``None`` means 0). ``+inf``
        entries impose nothing.
    radius : float or ndarray of shape (m,)
        Absolute budget of the ball; an array gives one ball per column. Unused by (P3).
    l1_weights : ndarray, shape (d,)
        ``c``: weight of each row in the L1 norm (0 leaves a row, e.g. a bias, unpenalized).
    penalty : float or None
        ``lam`` of (P3); ``None`` selects the constrained program.
    entry_weights : ndarray, shape (d, m), or None
        ``e``: optional non-negative per-entry weights multiplying the row weights, so the
        norm becomes ``sum_ij c_i e_ij |W_ij|`` (reweighted L1, Candes-Wakin-Boyd). Every
        backend honours them (the ADMM needs them ``> 0`` on penalized rows); ``None`` (the
        default) is the plain row-weighted norm.
    violation_scale : float or None
        The scale of the tolerance on the violation off Omega (``feas_tol`` times it);
        ``None`` means ``max |Y|``. A program cut out of a larger one (some of its columns)
        keeps the larger one's scale.
    """

    X: np.ndarray
    Y: np.ndarray
    active: np.ndarray | None
    upper: np.ndarray | None
    radius: float | np.ndarray
    l1_weights: np.ndarray
    penalty: float | None = None
    entry_weights: np.ndarray | None = None
    violation_scale: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n, d, m)``: samples, rows of ``W``, columns of ``W``."""
        n, d = self.X.shape
        return n, d, self.Y.shape[1]

    @property
    def per_column(self) -> bool:
        return np.ndim(self.radius) == 1

    @property
    def penalized(self) -> bool:
        return self.penalty is not None

    @cached_property
    def program(self) -> Program:
        """The variant (:mod:`.programs`) that ``radius`` and ``penalty`` select: a
        layer-wide ball, a ball per column, or the penalty of (P3)."""
        return program_of(self.radius, self.penalty)

    @property
    def has_inequalities(self) -> bool:
        return self.active is not None

    @property
    def dtype(self) -> np.dtype:
        return self.X.dtype

    @cached_property
    def target_scale(self) -> tuple[float, np.ndarray, float]:
        """``(||Y_Omega||_F, per-column ||y_j on Omega_j||, max |Y|)`` (computed once; the
        last is ``violation_scale`` when set)."""
        Y_on = self.Y if self.active is None else np.where(self.active, self.Y, 0.0)
        cols = np.sqrt(np.einsum("ij,ij->j", Y_on, Y_on, dtype=np.float64))
        y_max = self.violation_scale
        if y_max is None:
            y_max = float(np.abs(self.Y).max(initial=0.0))
        return float(np.sqrt(np.sum(cols**2))), cols, float(y_max)

    @cached_property
    def gram(self) -> np.ndarray:
        """``X^T X`` in float64 (computed once; shared by the programs of :meth:`columns`)."""
        X = self.X.astype(np.float64, copy=False)
        return X.T @ X

    def is_feasible(
        self,
        column_residuals: np.ndarray,
        violation: float,
        feas_tol: float,
        rounding: float = 0.0,
    ) -> bool:
        """Whether a point with these figures satisfies the constraints to ``feas_tol``.

        The rule of :mod:`.feasibility`: ball ``residual <= radius + max(feas_tol * radius,
        feas_tol**2 * ||Y_Omega||)`` (per column with per-column balls; less ``rounding``,
        see :meth:`allowed_residuals`), off Omega ``violation <= feas_tol * max|Y|``.
        """
        if not feasibility.bounds_met(violation, self.target_scale[2], feas_tol):
            return False
        if self.penalized:
            return True
        allowed = self.allowed_residuals(feas_tol, rounding)
        if self.per_column:
            return bool(np.all(column_residuals <= allowed))
        return float(np.sqrt(np.sum(np.square(column_residuals)))) <= allowed

    def allowed_residuals(self, feas_tol: float, rounding: float = 0.0) -> float | np.ndarray:
        """The ball's residual allowed by :meth:`is_feasible` (per column with per-column
        balls; ``inf`` for (P3)).

        ``rounding`` (relative to the targets' norm) is taken off the tolerance, at most
        half of it: a measure in a lower precision than the problem's asks that much more.
        """
        if self.penalized:
            return np.inf
        total, cols, _ = self.target_scale
        radius, scale = (self.radius, cols) if self.per_column else (float(self.radius), total)
        return feasibility.allowed_residual(radius, scale, feas_tol, rounding)

    def feasible_columns(
        self,
        column_residuals: np.ndarray,
        column_violations: np.ndarray,
        feas_tol: float,
        rounding: float = 0.0,
    ) -> np.ndarray:
        """Per column, whether it is feasible to ``feas_tol`` (separable programs only)."""
        ok = np.asarray(column_violations) <= feasibility.allowed_violation(
            self.target_scale[2], feas_tol
        )
        if not self.penalized:
            ok &= np.asarray(column_residuals) <= self.allowed_residuals(feas_tol, rounding)
        return ok

    def upper_bounds(self) -> np.ndarray:
        """``V`` as a full ``(n, m)`` array (zeros when none was given)."""
        if self.upper is None:
            return np.zeros_like(self.Y)
        return self.upper

    def columns(self, keep: np.ndarray) -> NetTrimProblem:
        """The program of the columns ``keep`` (a boolean mask or indices) alone.

        Only a separable program (per-column balls, or (P3)) splits this way exactly; the
        violation keeps this program's scale (``violation_scale``).
        """
        if not self.program.separable:
            raise ValueError("only a separable program (per-column balls or P3) splits by column")

        def pick(A):
            return None if A is None else np.ascontiguousarray(A[:, keep])

        _, cols, y_max = self.target_scale
        part = replace(
            self,
            Y=pick(self.Y),
            active=pick(self.active),
            upper=pick(self.upper),
            entry_weights=pick(self.entry_weights),
            violation_scale=y_max,
            **self.program.columns(keep),
        )
        # the target norms of the kept columns are known: spare a pass over Y
        cols = cols[keep]
        part.__dict__["target_scale"] = (float(np.sqrt(np.sum(cols**2))), cols, y_max)
        if "gram" in self.__dict__:  # same X
            part.__dict__["gram"] = self.gram
        return part

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
        """``(Y, active, upper, has_upper, all_active)`` as the numba kernels take them:
        1 x 1 placeholders stand for an absent Omega (every entry active) or ``V``."""
        all_active = self.active is None
        has_upper = self.upper is not None
        return (
            self.Y,
            np.ones((1, 1), np.bool_) if all_active else self.active,
            self.upper if has_upper else np.zeros((1, 1), self.dtype),
            has_upper,
            all_active,
        )

    def weight_matrix(self) -> np.ndarray:
        """The L1 weights as a float64 array: ``c_i e_ij`` ``(d, m)`` with entry weights,
        else ``c`` as one column ``(d, 1)``."""
        rows = np.asarray(self.l1_weights, dtype=np.float64)[:, None]
        if self.entry_weights is None:
            return np.ascontiguousarray(rows)
        return np.ascontiguousarray(rows * np.asarray(self.entry_weights, dtype=np.float64))

    def l1(self, W: np.ndarray) -> float:
        """The weighted L1 norm ``sum_i c_i ||W[i, :]||_1`` (``sum_ij c_i e_ij |W_ij|`` with
        entry weights)."""
        if self.entry_weights is not None:
            return float(np.sum(np.abs(W) * self.entry_weights * self.l1_weights[:, None]))
        return float(np.abs(W).sum(axis=1) @ self.l1_weights)

    def column_residuals(self, W: np.ndarray) -> np.ndarray:
        """``||(X w_j - y_j)_{Omega_j}||_2`` for every column ``j``, shape ``(m,)``."""
        R = self.X @ W - self.Y
        if self.active is not None:
            R = np.where(self.active, R, 0.0)
        return np.sqrt(np.einsum("ij,ij->j", R, R))

    def violation(self, W: np.ndarray) -> float:
        """Largest ``(X W - V)_+`` over the inactive set (0 when there is none)."""
        if self.active is None or self.active.all():
            return 0.0
        excess = np.where(self.active, -np.inf, self.X @ W - self.upper_bounds())
        return float(max(0.0, excess.max()))

    def evaluate(self, W: np.ndarray) -> dict[str, float | bool]:
        """Objective, residual, radius, ball excess and violation of the weights ``W``, and
        whether the ball is per column (the fields of :class:`.SolveInfo` they fill)."""
        col = self.column_residuals(W)
        residual = float(np.sqrt(np.sum(col**2)))
        objective, radius, excess = self.program.measure(self.l1(W), col, residual)
        return {
            "objective": objective,
            "residual": residual,
            "radius": radius,
            "ball_excess": excess,
            "violation": self.violation(W),
            "per_column": self.program.per_column,
        }

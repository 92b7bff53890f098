"""The one result type every solver returns: status, weights, and what was measured.

Vocabulary (shared with :mod:`nettrim`): the success word is ``.success`` (SciPy's), the
weights are ``.W``, and the one rendering method is ``summary()`` (``str()`` gives the
same). A Net-Trim solve measures a :class:`SolveInfo` (ball, dual bound, gap), an L0
solve an :class:`L0Info` (loss and residual only).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Status(str, Enum):
    """How a solve ended. A ``str`` enum, so ``status == "optimal"`` reads naturally."""

    OPTIMAL = "optimal"
    INACCURATE = "inaccurate"
    INFEASIBLE = "infeasible"
    MAX_ITER = "max_iter"
    SOLVER_ERROR = "solver_error"

    def __str__(self) -> str:
        return self.value

    @property
    def message(self) -> str:
        return STATUS_MESSAGES[self]

    @property
    def has_weights(self) -> bool:
        """Whether a solve that ended this way returns weights at all."""
        return self not in (Status.INFEASIBLE, Status.SOLVER_ERROR)


STATUS_MESSAGES: dict[Status, str] = {
    Status.OPTIMAL: "solved to the requested tolerances",
    Status.INACCURATE: "solved, but only to reduced accuracy; check the feasibility figures",
    Status.INFEASIBLE: "the program has no feasible point; no weights are returned",
    Status.MAX_ITER: "stopped at the iteration limit before meeting the tolerances",
    Status.SOLVER_ERROR: "the solver failed; no weights are returned",
}


@dataclass(frozen=True)
class SolveInfo:
    """What a solve measured, about the weights it *returns* (not an internal iterate).

    Attributes
    ----------
    solver : str
        Name of the backend (``"clarabel"``, ``"scs"``, ``"osqp"``, ``"admm"``, ...).
    objective : float
        Weighted L1 norm of the returned weights (the bias row counts only when penalized).
        For the penalized program (P3) the full objective ``l1 + lam/2 * residual**2``.
    iterations : int
        Iterations the backend reports (0 when it reports none).
    seconds : float
        Wall time of the solve, set-up included, compilation excluded.
    residual : float
        ``||(X~ W~ - Y)_Omega||_F`` of the returned weights (the realized discrepancy).
    radius : float
        The absolute budget: ``eps * ||Y||_F`` (layer-wide) or the largest ``eps_j``
        (per-neuron); ``nan`` for the penalized program.
    ball_excess : float
        By how much the returned weights leave the ball: ``max(0, residual - radius)``,
        or the largest per-column excess for per-neuron balls.
    violation : float
        Largest ``(X~ W~ - V)_+`` over the inactive set Omega^c (0 for a linear layer).
    dual_bound : float
        A certified lower bound on the optimal objective (``nan`` when not computed).
    gap : float
        ``objective - dual_bound`` (``nan`` when not computed).
    per_column : bool
        Whether the program has a ball per column (per-neuron): ``radius`` and
        ``ball_excess`` are then the largest column's, and ``residual``, the layer's, is
        not compared with ``radius``.
    compile_seconds : float
        Time spent compiling kernels before the solve (JIT backends), kept out of ``seconds``.
    message : str
        Human-readable detail from the backend.
    extra : dict
        Backend-specific figures (residual histories, penalties, ...).
    infeasibility_certificate : ndarray of shape (n, m), or None
        When the ADMM proves the program infeasible (status ``infeasible``): a Farkas ray
        ``D``, largest entry 1, with ``X^T D = 0`` (to ``infeasibility_tol``), ``D >= 0``
        off Omega and a negative support value
        ``<D_Omega, Y> + rho(D_Omega) + <D_off, V>`` (``rho`` the radius term of the
        ball, absent for (P3)). No feasible ``W`` exists: ``<D, X W> = 0`` for every ``W``,
        while every point of the constraint set has ``<D, Z> <= support < 0``
        (``docs/solvers.md``, "Stopping"). ``None`` otherwise.
    """

    solver: str
    objective: float
    iterations: int
    seconds: float
    residual: float
    radius: float
    ball_excess: float
    violation: float
    dual_bound: float = float("nan")
    gap: float = float("nan")
    per_column: bool = False
    compile_seconds: float = 0.0
    message: str = ""
    extra: dict = field(default_factory=dict)
    infeasibility_certificate: np.ndarray | None = field(default=None, compare=False)

    def summary(self) -> str:
        """One line: solver, objective, residual against the radius (per-neuron: the largest
        column radius and excess), gap, iterations, time."""
        residual = f"residual {self.residual:.4g}"
        if self.per_column or math.isfinite(self.radius):
            residual += f" ({self.budget()})"
        parts = [f"{self.solver}: objective {self.objective:.6g}", residual]
        if self.violation > 0:
            parts.append(f"violation {self.violation:.3g}")
        if not math.isnan(self.gap):
            parts.append(f"gap {self.gap:.3g}")
        parts.append(f"{self.iterations} iterations, {self.seconds:.3g} s")
        return ", ".join(parts)

    def budget(self) -> str:
        """What ``residual`` is measured against, in words: the radius; for per-neuron balls
        the largest column radius and excess (the layer's residual is not their measure);
        ``"no radius"`` for the penalized program."""
        if self.per_column:
            return (
                f"per-neuron balls: largest radius {self.radius:.4g}, "
                f"largest excess {self.ball_excess:.3g}"
            )
        return f"radius {self.radius:.4g}" if math.isfinite(self.radius) else "no radius"

    def __str__(self) -> str:
        return self.summary()


#: Net-Trim figures an L0 solve does not have, read through deprecated properties of
#: :class:`L0Info` (what an L0 result carried in :class:`SolveInfo` before it had its own).
_NOT_L0 = {"radius": math.nan, "ball_excess": math.nan, "dual_bound": math.nan, "gap": math.nan}


@dataclass(frozen=True)
class L0Info:
    """What an L0 solve (:mod:`.l0`) measured, about the weights it returns.

    Attributes
    ----------
    solver : str
        ``"admm-l0"``, ``"iht"``, ``"iht-p5"`` (or a baseline's name).
    objective : float
        The loss of the returned weights: (P4)'s undamped ``f`` or (P5)'s loss.
    iterations : int
        Iterations run (0 for closed forms and the baselines).
    seconds : float
        Wall time of the solve.
    residual : float
        ``sqrt(2 f)`` for (P4) (``||X~ W~0 - X~ W~||_F``), ``||(X W - Y)_Omega||_F`` for (P5).
    violation : float
        Largest ``(X W - V)_+`` off Omega for (P5); 0 for (P4), which has no such set.
    message : str
        Human-readable detail.
    extra : dict
        Method-specific figures (``relative_error``, ``nnz``, penalties, refit figures).

    Notes
    -----
    An L0 program has no ball and no dual certificate: ``radius``, ``ball_excess``,
    ``dual_bound`` and ``gap`` are not fields; reading them gives ``nan`` with a
    ``DeprecationWarning`` (they were ``nan`` fields when L0 results used
    :class:`SolveInfo`).
    """

    solver: str
    objective: float
    iterations: int
    seconds: float
    residual: float
    violation: float = 0.0
    message: str = ""
    extra: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        # only reached for names that are not attributes: the Net-Trim figures of old
        if name in _NOT_L0:
            warnings.warn(
                f"L0Info has no {name!r} (an L0 program has no ball and no dual bound); "
                "reading it is deprecated and gives nan",
                DeprecationWarning,
                stacklevel=2,
            )
            return _NOT_L0[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def summary(self) -> str:
        """One line: solver, loss, residual, relative error when known, iterations, time."""
        parts = [f"{self.solver}: loss {self.objective:.6g}", f"residual {self.residual:.4g}"]
        if "relative_error" in self.extra:
            parts.append(f"relative error {self.extra['relative_error']:.4g}")
        if self.violation > 0:
            parts.append(f"violation {self.violation:.3g}")
        parts.append(f"{self.iterations} iterations, {self.seconds:.3g} s")
        return ", ".join(parts)

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class SolverResult:
    """Weights ``W`` of shape ``(d, m)`` (augmented rows included) with status and info.

    ``W`` is ``None`` when ``status`` is ``infeasible`` or ``solver_error``: such a solve
    never hands back weights that could be mistaken for valid ones. ``info`` is a
    :class:`SolveInfo` (Net-Trim programs) or an :class:`L0Info` (L0 programs).
    """

    W: np.ndarray | None
    status: Status
    info: SolveInfo | L0Info

    @property
    def success(self) -> bool:
        """Whether the solve met its tolerances (status ``optimal``)."""
        return self.status is Status.OPTIMAL

    @property
    def x(self) -> np.ndarray | None:
        """Deprecated name of :attr:`W`."""
        warnings.warn(
            "SolverResult.x is deprecated; use SolverResult.W", DeprecationWarning, stacklevel=2
        )
        return self.W

    def summary(self) -> str:
        """Status, its meaning, and the one line of ``info``."""
        return f"{self.status}: {self.status.message}\n  {self.info.summary()}"

    def __str__(self) -> str:
        return self.summary()

    @classmethod
    def without_weights(
        cls,
        status: Status,
        *,
        solver: str,
        seconds: float,
        message: str,
        iterations: int = 0,
        compile_seconds: float = 0.0,
    ) -> SolverResult:
        """The result of a solve that returns no weights (infeasible, or a failed backend)."""
        nan = float("nan")
        info = SolveInfo(
            solver=solver,
            objective=nan,
            iterations=iterations,
            seconds=seconds,
            residual=nan,
            radius=nan,
            ball_excess=nan,
            violation=nan,
            compile_seconds=compile_seconds,
            message=message,
        )
        return cls(W=None, status=status, info=info)

"""The one result type every solver returns: status, weights, and what was measured."""

from __future__ import annotations

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
    compile_seconds: float = 0.0
    message: str = ""
    extra: dict = field(default_factory=dict)
    infeasibility_certificate: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SolverResult:
    """Weights ``x`` of shape ``(d, m)`` (augmented rows included) with status and info.

    ``x`` is ``None`` when ``status`` is ``infeasible`` or ``solver_error``: such a solve
    never hands back weights that could be mistaken for valid ones.
    """

    x: np.ndarray | None
    status: Status
    info: SolveInfo

    @property
    def success(self) -> bool:
        return self.status is Status.OPTIMAL

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
        return cls(x=None, status=status, info=info)

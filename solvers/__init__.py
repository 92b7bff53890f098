"""nettrim.solvers — the mathematics on arrays (knows nothing about neural networks).

Programs (:class:`NetTrimProblem`, its variant a :class:`Program`: :class:`LayerBall`,
:class:`ColumnBalls` or :class:`Penalty`), the fast ADMM (:func:`solve_admm`) with its dual
certificate, the exact conic/QP path through cvxpy (:func:`solve_exact`), and the one
result type every backend returns.
"""

from .admm import (
    AdmmCallback,
    AdmmIterate,
    AdmmSettings,
    AdmmState,
    scale_problem,
    solve_admm,
)
from .duality import DualCertifier, dual_bound, feasible_multiplier
from .exact import EXACT_SOLVERS, solve_exact
from .gram import GramAccumulator
from .l0 import AdmmL0Settings, refit, solve_iht, solve_l0_admm, solve_p5_iht
from .linalg import RangeReduction, reduce_to_range
from .problem import NetTrimProblem
from .programs import ColumnBalls, LayerBall, Penalty, Program
from .projections import SparsityPattern, make_pattern, project
from .result import STATUS_MESSAGES, L0Info, SolveInfo, SolverResult, Status

__all__ = [
    "EXACT_SOLVERS",
    "STATUS_MESSAGES",
    "AdmmCallback",
    "AdmmIterate",
    "AdmmL0Settings",
    "AdmmSettings",
    "AdmmState",
    "ColumnBalls",
    "DualCertifier",
    "GramAccumulator",
    "L0Info",
    "LayerBall",
    "NetTrimProblem",
    "Penalty",
    "Program",
    "RangeReduction",
    "SolveInfo",
    "SolverResult",
    "SparsityPattern",
    "Status",
    "dual_bound",
    "feasible_multiplier",
    "make_pattern",
    "project",
    "reduce_to_range",
    "refit",
    "scale_problem",
    "solve_admm",
    "solve_exact",
    "solve_iht",
    "solve_l0_admm",
    "solve_p5_iht",
]

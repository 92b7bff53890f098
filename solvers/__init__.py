"""nettrim.solvers — the mathematics on arrays (knows nothing about neural networks).

Programs (:class:`NetTrimProblem`), the fast ADMM (:func:`solve_admm`) with its dual
certificate, the exact conic/QP path through cvxpy (:func:`solve_exact`), and the one
result type every backend returns.
"""

from .admm import AdmmSettings, scale_problem, solve_admm
from .duality import DualCertifier, dual_bound, feasible_multiplier
from .exact import EXACT_SOLVERS, solve_exact
from .linalg import RangeReduction, reduce_to_range
from .problem import NetTrimProblem
from .result import STATUS_MESSAGES, SolveInfo, SolverResult, Status

__all__ = [
    "EXACT_SOLVERS",
    "STATUS_MESSAGES",
    "AdmmSettings",
    "DualCertifier",
    "NetTrimProblem",
    "RangeReduction",
    "SolveInfo",
    "SolverResult",
    "Status",
    "dual_bound",
    "feasible_multiplier",
    "reduce_to_range",
    "scale_problem",
    "solve_admm",
    "solve_exact",
]

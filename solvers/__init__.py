"""nettrim.solvers — the mathematics on arrays (knows nothing about neural networks).

Programs (:class:`NetTrimProblem`), the exact conic/QP path through cvxpy
(:func:`solve_exact`), and the one result type every backend returns.
"""

from .exact import EXACT_SOLVERS, solve_exact
from .linalg import RangeReduction, reduce_to_range
from .problem import NetTrimProblem
from .result import STATUS_MESSAGES, SolveInfo, SolverResult, Status

__all__ = [
    "EXACT_SOLVERS",
    "STATUS_MESSAGES",
    "NetTrimProblem",
    "RangeReduction",
    "SolveInfo",
    "SolverResult",
    "Status",
    "reduce_to_range",
    "solve_exact",
]

"""The pruning baselines (magnitude, Wanda, SparseGPT): array mathematics, which lives in
:mod:`nettrim.solvers.baselines`; re-exported here so that existing imports keep working."""

from .solvers.baselines import *  # noqa: F403
from .solvers.baselines import __all__  # noqa: F401

"""nettrim — post-training pruning of neural networks by convex and L0 layer-wise programs."""

from .datasets import BundledModel, load_digits_mlp
from .guarantees import (
    VerificationReport,
    link_normalize,
    theorem3_samples,
    verify,
    with_pruning_record,
)
from .layer import LayerResult, trim_layer
from .network import DenseLayer, Network, NetworkFileError
from .pruning import prune_layer, prune_network
from .reweighted import reweighted_trim_layer
from .schemes import LayerSolveError, NetTrimResult, net_trim
from .solvers import SolveInfo, Status
from .solvers.gram import GramAccumulator

__version__ = "0.1.0"

__all__ = [
    "BundledModel",
    "DenseLayer",
    "GramAccumulator",
    "LayerResult",
    "LayerSolveError",
    "NetTrimResult",
    "Network",
    "NetworkFileError",
    "SolveInfo",
    "Status",
    "VerificationReport",
    "__version__",
    "link_normalize",
    "load_digits_mlp",
    "net_trim",
    "prune_layer",
    "prune_network",
    "reweighted_trim_layer",
    "theorem3_samples",
    "trim_layer",
    "verify",
    "with_pruning_record",
]

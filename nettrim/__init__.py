"""nettrim — post-training pruning of neural networks by convex and L0 layer-wise programs."""

from .datasets import BundledModel, load_digits_mlp
from .guarantees import VerificationReport, link_normalize, theorem3_samples, verify
from .layer import LayerResult, trim_layer
from .network import (
    Conv2dLayer,
    DenseLayer,
    FlattenLayer,
    MaxPool2dLayer,
    Network,
    NetworkFileError,
)
from .pruning import prune_layer, prune_network
from .reweighted import reweighted_trim_layer
from .schemes import LayerSolveError, NetTrimResult, net_trim
from .solvers import SolveInfo, Status
from .solvers.gram import GramAccumulator
from .store import Recording, StoreError, open_store

__version__ = "0.1.0"

__all__ = [
    "BundledModel",
    "Conv2dLayer",
    "DenseLayer",
    "FlattenLayer",
    "GramAccumulator",
    "LayerResult",
    "LayerSolveError",
    "MaxPool2dLayer",
    "NetTrimResult",
    "Network",
    "NetworkFileError",
    "Recording",
    "SolveInfo",
    "Status",
    "StoreError",
    "VerificationReport",
    "__version__",
    "link_normalize",
    "load_digits_mlp",
    "net_trim",
    "open_store",
    "prune_layer",
    "prune_network",
    "reweighted_trim_layer",
    "theorem3_samples",
    "trim_layer",
    "verify",
]

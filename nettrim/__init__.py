"""nettrim — post-training pruning of neural networks by convex and L0 layer-wise programs."""

from .datasets import BundledModel, load_digits_mlp
from .layer import LayerResult, trim_layer
from .network import DenseLayer, Network
from .solvers import SolveInfo, Status

__version__ = "0.1.0"

__all__ = [
    "BundledModel",
    "DenseLayer",
    "LayerResult",
    "Network",
    "SolveInfo",
    "Status",
    "__version__",
    "load_digits_mlp",
    "trim_layer",
]

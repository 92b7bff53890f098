"""nettrim — post-training pruning of neural networks by convex and L0 layer-wise programs."""

from .datasets import BundledModel, load_digits_mlp
from .guarantees import (
    VerificationReport,
    link_normalize,
    theorem3_samples,
    verify,
    with_pruning_record,
)
from .io import load_safetensors, save_safetensors
from .layer import LayerResult, TrimOptions, trim_layer
from .network import (
    Conv2dLayer,
    DenseLayer,
    FlattenLayer,
    MaxPool2dLayer,
    Network,
    NetworkFileError,
)
from .onnx import OnnxImportError, from_onnx
from .progress import ProgressEvent
from .pruning import PruneNetworkResult, prune_layer, prune_network
from .reweighted import reweighted_trim_layer
from .runs import RunDirectory, RunDirectoryError
from .schemes import LayerSolveError, NetTrimResult, net_trim
from .sklearn import from_sklearn, to_sklearn
from .solvers import L0Info, SolveInfo, Status
from .solvers.gram import GramAccumulator
from .sparse import to_dense, to_sparse
from .store import Recording, StoreError, network_input, open_store
from .structured import ShrinkResult, shrink
from .sweep import SweepPoint, SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    "BundledModel",
    "Conv2dLayer",
    "DenseLayer",
    "FlattenLayer",
    "GramAccumulator",
    "L0Info",
    "LayerResult",
    "LayerSolveError",
    "MaxPool2dLayer",
    "NetTrimResult",
    "Network",
    "NetworkFileError",
    "OnnxImportError",
    "ProgressEvent",
    "PruneNetworkResult",
    "Recording",
    "RunDirectory",
    "RunDirectoryError",
    "ShrinkResult",
    "SolveInfo",
    "Status",
    "StoreError",
    "SweepPoint",
    "SweepResult",
    "TrimOptions",
    "VerificationReport",
    "__version__",
    "from_onnx",
    "from_sklearn",
    "link_normalize",
    "load_digits_mlp",
    "load_safetensors",
    "net_trim",
    "network_input",
    "open_store",
    "prune_layer",
    "prune_network",
    "reweighted_trim_layer",
    "save_safetensors",
    "shrink",
    "sweep",
    "theorem3_samples",
    "to_dense",
    "to_sklearn",
    "to_sparse",
    "trim_layer",
    "verify",
    "with_pruning_record",
]

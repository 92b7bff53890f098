"""A pruned network run sparse: its weights as ``scipy.sparse`` CSR matrices.

``DenseLayer`` computes ``X @ W + b`` whatever ``W`` is; with a CSR ``W`` of shape
``(d_in, d_out)`` SciPy multiplies the dense ``X`` by it without densifying, which is faster
than dense BLAS only at high sparsity: ``benchmarks/bench_files.py`` measures the crossover
(docs/files.md quotes it), so networks stay dense unless asked.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .network import DenseLayer, Network, _dense
from .validation import check_scalar


def to_sparse(network: Network, *, min_sparsity: float = 0.0) -> Network:
    """``network`` with every weight at least ``min_sparsity`` sparse (the fraction of zero
    entries) as a ``scipy.sparse.csr_array``; the other weights, and the biases, as they are.

    Parameters
    ----------
    network : Network
    min_sparsity : float in [0, 1]
        Layers below it stay dense (where dense BLAS is faster).

    Returns
    -------
    Network
        The same function (outputs equal up to the order of the sums).
    """
    if not isinstance(network, Network):
        raise TypeError(f"network must be a nettrim.Network, got {type(network).__name__}")
    min_sparsity = check_scalar("min_sparsity", min_sparsity, low=0.0, high=1.0)
    layers = []
    for layer in network.layers:
        W = layer.W
        if not sparse.issparse(W) and 1.0 - layer.nnz / max(W.size, 1) >= min_sparsity:
            W = sparse.csr_array(W)
        layers.append(DenseLayer(W, layer.b, layer.activation))
    return Network(tuple(layers))


def to_dense(network: Network) -> Network:
    """``network`` with every ``scipy.sparse`` weight as a dense array."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a nettrim.Network, got {type(network).__name__}")
    return Network(
        tuple(
            DenseLayer(np.asarray(_dense(layer.W)), layer.b, layer.activation)
            for layer in network.layers
        )
    )

"""Structured pruning that shrinks: remove the hidden neurons a pruned network no longer uses.

Between layers ``l`` and ``l + 1`` (``Y_l = act_l(Y_{l-1} W_l + b_l)`` feeds
``Y_l W_{l+1} + b_{l+1}``), hidden neuron ``j`` (column ``j`` of ``Y_l``) can go when

* its weights ``W_l[:, j]`` are all zero (``pattern="outputs"`` removed it): its output is
  the constant ``c_j = act_l(b_j)`` (``relu(b_j)`` for a ReLU layer, ``0`` without bias),
  which the next layer receives as ``c_j * W_{l+1}[j, :]`` on every sample — folded into
  ``b_{l+1}``; or
* nothing reads it, ``W_{l+1}[j, :]`` all zero (``pattern="inputs"`` removed input ``j`` of
  layer ``l + 1``).

Column ``j`` of ``W_l``, ``b_l[j]`` and row ``j`` of ``W_{l+1}`` are dropped; removing a row
can empty a row of the layer before, so the passes repeat until nothing changes. The
network's own inputs and outputs are kept. The shrunk network computes the same outputs as
the masked one (up to the rounding of the folded sums).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import DenseLayer, Network, _dense


@dataclass(frozen=True)
class ShrinkResult:
    """A shrunk network and, per hidden layer, the indices of the neurons it kept."""

    network: Network
    kept: tuple[np.ndarray, ...]  # kept[l]: the outputs of layer l kept, for l < L - 1
    original_dims: tuple[int, ...]

    @property
    def removed(self) -> int:
        """Hidden neurons removed in all."""
        return sum(self.original_dims[1:-1]) - sum(len(k) for k in self.kept)


def _activate(activation: str, b: np.ndarray) -> np.ndarray:
    return np.maximum(b, 0.0) if activation == "relu" else b


def shrink(network: Network) -> ShrinkResult:
    """Remove every hidden neuron of ``network`` whose weights in or out are all zero,
    folding a removed neuron's constant output into the next layer's bias (module
    docstring).

    Parameters
    ----------
    network : Network
        Typically the result of ``prune_network(..., pattern="outputs")`` or
        ``pattern="inputs"``; weights may be ``scipy.sparse``.

    Returns
    -------
    ShrinkResult
        ``network``: the same inputs and outputs, narrower hidden layers (dense weights);
        ``kept[l]``: the original indices of layer ``l``'s outputs that remain.
    """
    if not isinstance(network, Network):
        raise TypeError(f"network must be a nettrim.Network, got {type(network).__name__}")
    weights = [np.array(_dense(layer.W)) for layer in network.layers]
    biases = [None if layer.b is None else np.array(layer.b) for layer in network.layers]
    acts = network.activations
    kept = [np.arange(W.shape[1]) for W in weights[:-1]]
    changed = True
    while changed:
        changed = False
        for l in range(len(weights) - 1):
            W, W_next = weights[l], weights[l + 1]
            silent = ~W.any(axis=0)  # the neuron's output is its constant act(b_j)
            unread = ~W_next.any(axis=1)
            drop = silent | unread
            if not drop.any():
                continue
            fold = silent & ~unread
            if fold.any() and biases[l] is not None:
                constant = _activate(acts[l], biases[l][fold])
                if np.any(constant != 0):
                    base = biases[l + 1] if biases[l + 1] is not None else 0.0
                    biases[l + 1] = base + constant @ W_next[fold]
            keep = ~drop
            weights[l], weights[l + 1] = W[:, keep], W_next[keep]
            if biases[l] is not None:
                biases[l] = biases[l][keep]
            kept[l] = kept[l][keep]
            changed = True
    layers = tuple(DenseLayer(W, b, a) for W, b, a in zip(weights, biases, acts, strict=True))
    return ShrinkResult(Network(layers), tuple(kept), network.dims)

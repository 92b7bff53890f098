"""Dense networks as plain arrays: layers, the forward pass, and recording activations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("relu", "linear")


@dataclass(frozen=True)
class DenseLayer:
    """``Y = act(X @ W + b)`` with ``W`` of shape ``(d_in, d_out)`` (samples are rows)."""

    W: np.ndarray
    b: np.ndarray | None = None
    activation: str = "relu"

    def __post_init__(self) -> None:
        W = np.asarray(self.W)
        object.__setattr__(self, "W", W)  # lists are welcome; the layer holds an array
        if self.b is not None:
            object.__setattr__(self, "b", np.asarray(self.b))
        if W.ndim != 2:
            raise ValueError(f"W must be 2-D (d_in, d_out), got shape {W.shape}")
        if self.b is not None and np.shape(self.b) != (W.shape[1],):
            raise ValueError(
                f"b has shape {np.shape(self.b)} but W has {W.shape[1]} outputs; "
                f"b must have shape ({W.shape[1]},)"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.W.shape)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.W))

    @property
    def augmented_weights(self) -> np.ndarray:
        """``W~ = [W; b]`` of shape ``(d_in + 1, d_out)``, or ``W`` for a layer without bias."""
        if self.b is None:
            return np.asarray(self.W)
        return np.vstack([self.W, np.asarray(self.b)[None, :]])

    def with_weights(self, W: np.ndarray, b: np.ndarray | None) -> DenseLayer:
        """The same layer (same activation) with new weights and bias."""
        return DenseLayer(W, b, self.activation)

    def preactivation(self, X: np.ndarray) -> np.ndarray:
        Z = X @ self.W
        if self.b is not None:
            Z = Z + self.b
        return Z

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = self.preactivation(X)
        return np.maximum(Z, 0.0) if self.activation == "relu" else Z


@dataclass(frozen=True)
class Network:
    """A sequence of dense layers; each layer's output is the next one's input."""

    layers: tuple[DenseLayer, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        for i in range(1, len(self.layers)):
            prev, cur = self.layers[i - 1], self.layers[i]
            if prev.W.shape[1] != cur.W.shape[0]:
                raise ValueError(
                    f"layer {i - 1} has {prev.W.shape[1]} outputs but layer {i} expects "
                    f"{cur.W.shape[0]} inputs"
                )

    @classmethod
    def from_arrays(
        cls,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray | None],
        activations: Sequence[str] | None = None,
    ) -> Network:
        """Build from lists; the default activations are ReLU except a linear last layer."""
        if activations is None:
            activations = ["relu"] * (len(weights) - 1) + ["linear"] if len(weights) else []
        if not len(weights) == len(biases) == len(activations):
            raise ValueError(
                f"got {len(weights)} weights, {len(biases)} biases and {len(activations)} "
                "activations; pass one of each per layer (None for a layer without bias)"
            )
        return cls(
            tuple(DenseLayer(W, b, a) for W, b, a in zip(weights, biases, activations, strict=True))
        )

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int | slice) -> DenseLayer | Network:
        """A layer, or for a slice the sub-network of those layers."""
        if isinstance(index, slice):
            return Network(self.layers[index])
        return self.layers[index]

    @property
    def activations(self) -> tuple[str, ...]:
        """Every layer's activation, ``"relu"`` or ``"linear"``."""
        return tuple(layer.activation for layer in self.layers)

    @property
    def dims(self) -> tuple[int, ...]:
        """``(d_0, d_1, ..., d_L)``: the input width, then every layer's output width."""
        if not self.layers:
            return ()
        return (self.layers[0].W.shape[0], *(layer.W.shape[1] for layer in self.layers))

    def with_layer(self, index: int, layer: DenseLayer) -> Network:
        """A copy with layer ``index`` replaced (shapes are checked again)."""
        layers = list(self.layers)
        layers[index] = layer
        return Network(tuple(layers))

    @property
    def nnz(self) -> int:
        return sum(layer.nnz for layer in self.layers)

    @property
    def size(self) -> int:
        return sum(layer.W.size for layer in self.layers)

    def forward(self, X: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            X = layer(X)
        return X

    __call__ = forward

    def record(self, X: np.ndarray) -> list[np.ndarray]:
        """``[X, Y_1, ..., Y_L]``: the input and every layer's output."""
        outputs = [X]
        for layer in self.layers:
            outputs.append(layer(outputs[-1]))
        return outputs

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels: the arg-max of the last layer's output."""
        return np.argmax(self.forward(X), axis=1)

    def accuracy(self, X: np.ndarray, labels: np.ndarray) -> float:
        predicted = self.predict(X)
        labels = np.asarray(labels)
        if labels.shape != predicted.shape:  # (n, 1) labels would broadcast to (n, n)
            raise ValueError(
                f"labels has shape {labels.shape} but X has {len(predicted)} rows; "
                f"pass one label per sample, shape ({len(predicted)},)"
            )
        return float(np.mean(predicted == labels))

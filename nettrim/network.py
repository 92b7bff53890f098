"""Networks as plain arrays: layers, the forward pass, recording activations, and the
network file (one ``.npz`` archive, read without pickles).

Layer kinds: :class:`DenseLayer` (``act(X @ W + b)``), :class:`Conv2dLayer` (a 2-D
convolution, the dense layer of its :func:`~nettrim.conv.im2col` patches), non-overlapping
:class:`MaxPool2dLayer` and :class:`FlattenLayer`. Each layer owns its NumPy forward and its
Lipschitz constant; the prunable ones (dense and conv) expose their dense program: weights
``W`` of shape ``(d_in, d_out)`` and :meth:`~Conv2dLayer.program_input` /
:meth:`~Conv2dLayer.program_output`, which turn the layer's input and output into the rows
``(X, Y)`` of that program.

A network of dense layers only is written as **format version 1**, which holds, for ``L``
layers:

* ``W0, ..., W{L-1}``: the weights, float32 or float64, ``W{l}`` of shape
  ``(d_l, d_{l+1})`` (samples are rows: scikit-learn's ``coefs_`` layout, the transpose of
  PyTorch's ``nn.Linear.weight``);
* ``b0, ..., b{L-1}``: the biases, shape ``(d_{l+1},)``; a missing ``b{l}`` is a layer
  without bias;
* ``activations``: a string array of ``L`` names, ``"relu"`` or ``"linear"``;
* ``format`` (``"nettrim.network"``) and ``format_version`` (an integer), written by
  :meth:`Network.save`. A file written by hand (``np.savez``) may leave both out; it is then
  read as version 1;
* ``metadata`` (optional): one string holding a JSON object, :attr:`Network.metadata` (what
  ``nettrim prune`` records of the pruning: scheme, budgets, the tolerance of each solve).

A weight may instead be stored sparse (CSR, bitmask or N:M: the entries ``W{l}.{part}``
described by the string entry ``sparse``; see docs/files.md and :mod:`nettrim.io`).
Nothing else may be in the archive: an unknown entry is refused rather than ignored.

A network with any other layer kind is written as **format version 2**: ``W{l}``/``b{l}``
for its prunable layers only (``l`` is the layer's position, so the numbers have gaps where
pooling and flattening sit; a convolution's ``W{l}`` is its dense
``(k_h * k_w * c_in, c_out)`` matrix), ``format``, ``format_version`` and ``layers``: one
JSON string, a list with one object per layer, ``{"kind": "dense" | "conv2d" | "maxpool2d" |
"flatten", ...}`` with the activation of prunable layers and a conv's ``in_shape``,
``kernel_size``, ``stride``, ``padding`` and ``dilation``, a pool's ``kernel_size``.
Versions above 2 are refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np
from scipy import sparse

from .conv import _pair, conv_output_shape, im2col, nchw_to_rows, patch_multiplicity

ACTIVATIONS = ("relu", "linear")
#: The ``format`` entry of a network file and the version this code writes (and the newest
#: it reads).
FILE_FORMAT = "nettrim.network"
FILE_VERSION = 2
#: The version a network of dense layers only is written as (readable by older nettrim).
DENSE_FILE_VERSION = 1
_LAYER_KEY = re.compile(r"([Wb])(0|[1-9][0-9]*)")
_META_KEYS = ("activations", "format", "format_version", "metadata")
_META_KEYS_V2 = ("layers", "format", "format_version", "metadata")
_WEIGHT_DTYPES = (np.float32, np.float64)


class NetworkFileError(ValueError):
    """A network file that cannot be read as a :class:`Network`; the message names the file
    and what is wrong with it."""


@dataclass(frozen=True)
class DenseLayer:
    """``Y = act(X @ W + b)`` with ``W`` of shape ``(d_in, d_out)`` (samples are rows).

    ``W`` may be a ``scipy.sparse`` matrix (CSR or CSC): the forward pass then multiplies
    sparse, without densifying (:func:`nettrim.sparse.to_sparse`).
    """

    W: np.ndarray
    b: np.ndarray | None = None
    activation: str = "relu"

    def __post_init__(self) -> None:
        W = self.W if sparse.issparse(self.W) else np.asarray(self.W)
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
        if sparse.issparse(self.W):
            return int(self.W.count_nonzero())
        return int(np.count_nonzero(self.W))

    @property
    def augmented_weights(self) -> np.ndarray:
        """``W~ = [W; b]`` of shape ``(d_in + 1, d_out)``, or ``W`` for a layer without bias."""
        if self.b is None:
            return np.asarray(_dense(self.W))
        return np.vstack([_dense(self.W), np.asarray(self.b)[None, :]])

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

    def __repr__(self) -> str:
        # shapes and counts, never the arrays (a layer of a real network has millions)
        bias = "bias" if self.b is not None else "no bias"
        kind = "sparse " if sparse.issparse(self.W) else ""
        return (
            f"DenseLayer({self.W.shape[0]}x{self.W.shape[1]}, {self.activation}, {bias}, "
            f"{self.nnz} of {self.W.shape[0] * self.W.shape[1]} {kind}weights non-zero, "
            f"{self.W.dtype})"
        )

    #: Dense and conv layers carry weights a pruning program can change.
    prunable = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample's input: ``(d_in,)``."""
        return (self.W.shape[0],)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.W.shape[1],)

    def program_input(self, X: np.ndarray) -> np.ndarray:
        """The rows of the layer's dense program for input ``X``: ``X`` itself."""
        return X

    def program_output(self, Y: np.ndarray) -> np.ndarray:
        """The layer's output ``Y`` as rows of its dense program: ``Y`` itself."""
        return Y

    def lipschitz(self) -> float:
        """``||W||_2`` (bias excluded; ReLU is 1-Lipschitz): ``||f(x) - f(x')|| <=
        lipschitz() * ||x - x'||`` for every pair of batches."""
        return float(np.linalg.norm(np.asarray(self.W, dtype=np.float64), 2))


def _check_weights(W, b, activation: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W, b)`` as arrays after the checks every prunable layer shares."""
    W = np.asarray(W)
    b = None if b is None else np.asarray(b)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (d_in, d_out), got shape {W.shape}")
    if b is not None and b.shape != (W.shape[1],):
        raise ValueError(
            f"b has shape {b.shape} but W has {W.shape[1]} outputs; "
            f"b must have shape ({W.shape[1]},)"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return W, b


@dataclass(frozen=True)
class Conv2dLayer:
    """A 2-D convolution (PyTorch's cross-correlation, NCHW) with its dense program.

    ``W`` is the dense ``(k_h * k_w * c_in, c_out)`` matrix of
    :func:`~nettrim.conv.conv_weight_to_dense`; the layer computes
    ``act(im2col(x) @ W + b)`` and returns it as an NCHW batch. ``in_shape`` is one
    sample's ``(c_in, h, w)``: a convolution is a fixed linear map only on a fixed image size,
    which its Lipschitz constant and the network's shape checks need.
    """

    W: np.ndarray
    b: np.ndarray | None
    in_shape: tuple[int, int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    activation: str = "relu"

    prunable = True

    def __post_init__(self) -> None:
        W, b = _check_weights(self.W, self.b, self.activation)
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "b", b)
        shape = tuple(int(v) for v in np.ravel(self.in_shape))
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"in_shape must be (c_in, h, w) of positive ints, got {self.in_shape}")
        object.__setattr__(self, "in_shape", shape)
        for name, low in (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            object.__setattr__(self, name, _pair(name, getattr(self, name), low=low))
        rows = self.kernel_size[0] * self.kernel_size[1] * shape[0]
        if W.shape[0] != rows:
            raise ValueError(
                f"W has {W.shape[0]} rows; a kernel {self.kernel_size} on {shape[0]} input "
                f"channels needs k_h * k_w * c_in = {rows} (nettrim.conv.conv_weight_to_dense)"
            )
        self.out_hw  # noqa: B018 -- refuses a kernel larger than the padded image

    @property
    def out_hw(self) -> tuple[int, int]:
        return conv_output_shape(
            self.in_shape[1:],
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.W.shape)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.W))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.in_shape

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.W.shape[1], *self.out_hw)

    @property
    def augmented_weights(self) -> np.ndarray:
        return DenseLayer.augmented_weights.fget(self)

    def __repr__(self) -> str:
        # geometry and counts, never the arrays
        c_in, h, w = self.in_shape
        return (
            f"Conv2dLayer({c_in}x{h}x{w} -> {self.W.shape[1]} channels, kernel "
            f"{self.kernel_size}, stride {self.stride}, padding {self.padding}, "
            f"{self.activation}, {self.nnz} of {self.W.size} weights non-zero, {self.W.dtype})"
        )

    def with_weights(self, W: np.ndarray, b: np.ndarray | None) -> Conv2dLayer:
        """The same convolution (geometry, activation) with new dense weights and bias."""
        return Conv2dLayer(
            W, b, self.in_shape, self.kernel_size, self.stride, self.padding, self.dilation,
            self.activation,
        )  # fmt: skip

    def program_input(self, x: np.ndarray) -> np.ndarray:
        """The patch rows ``im2col(x)`` of an NCHW batch: ``(n * h_out * w_out, d_in)``."""
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"x has shape {x.shape}; this convolution takes (n, *{self.in_shape}) images"
            )
        return im2col(
            x, self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation
        )

    def program_output(self, y: np.ndarray) -> np.ndarray:
        """An NCHW output as rows ``(n * h_out * w_out, c_out)`` of the dense program."""
        return nchw_to_rows(y)

    def preactivation(self, x: np.ndarray) -> np.ndarray:
        """``im2col(x) @ W + b`` as an NCHW batch."""
        Z = DenseLayer.preactivation(self, self.program_input(x))
        n = np.shape(x)[0]
        return Z.reshape(n, *self.out_hw, Z.shape[1]).transpose(0, 3, 1, 2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        Z = self.preactivation(x)
        return np.maximum(Z, 0.0) if self.activation == "relu" else Z

    def lipschitz(self) -> float:
        """An upper bound on the convolution's operator norm on images:
        ``sqrt(m) * ||W||_2`` with ``m`` the most patches one pixel falls in
        (:func:`~nettrim.conv.patch_multiplicity`; ``k_h * k_w`` at stride 1). The dense
        matrix's ``||W||_2`` alone underestimates it: every pixel is used up to ``m`` times."""
        m = patch_multiplicity(self.kernel_size, stride=self.stride, dilation=self.dilation)
        return math.sqrt(m) * DenseLayer.lipschitz(self)


@dataclass(frozen=True)
class MaxPool2dLayer:
    """Non-overlapping 2-D max-pooling of an NCHW batch (stride = kernel size, no padding;
    a remainder that does not fill a window is dropped, as PyTorch's default does)."""

    kernel_size: tuple[int, int]
    activation = "linear"
    prunable = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_size", _pair("kernel_size", self.kernel_size, low=1))

    input_shape = None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise ValueError(
                f"max-pooling takes (c, h, w) images, got samples of shape {input_shape}"
            )
        c, h, w = input_shape
        k_h, k_w = self.kernel_size
        if h < k_h or w < k_w:
            raise ValueError(f"a {k_h}x{k_w} max-pool cannot pool a {h}x{w} image")
        return (c, h // k_h, w // k_w)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        n, c, h, w = x.shape
        k_h, k_w = self.kernel_size
        h_out, w_out = h // k_h, w // k_w
        x = x[:, :, : h_out * k_h, : w_out * k_w]
        return x.reshape(n, c, h_out, k_h, w_out, k_w).max(axis=(3, 5))

    def lipschitz(self) -> float:
        """1: each output is the max of its own window, and the windows are disjoint."""
        return 1.0


@dataclass(frozen=True)
class FlattenLayer:
    """``(n, c, h, w) -> (n, c * h * w)`` in C order (``torch.flatten(x, 1)``)."""

    activation = "linear"
    prunable = False
    input_shape = None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return x.reshape(x.shape[0], -1)

    def lipschitz(self) -> float:
        """1: flattening only renames the entries."""
        return 1.0


#: Every layer kind a :class:`Network` holds.
Layer = DenseLayer | Conv2dLayer | MaxPool2dLayer | FlattenLayer
LAYER_KINDS = {
    "dense": DenseLayer,
    "conv2d": Conv2dLayer,
    "maxpool2d": MaxPool2dLayer,
    "flatten": FlattenLayer,
}


@dataclass(frozen=True)
class Network:
    """A sequence of layers; each layer's output is the next one's input.

    Dense layers take ``(n, d)`` rows; convolutions and max-pooling take NCHW batches;
    a :class:`FlattenLayer` turns images into rows. ``metadata`` is a JSON-serializable
    mapping saved with the network file and read back by :meth:`load` (empty by default;
    not compared by ``==``).
    """

    layers: tuple[Layer, ...] = field(default_factory=tuple)
    metadata: Mapping = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        """The dims, each layer's shape, activation and non-zeros (no arrays)."""
        if not self.layers:
            return "Network(no layers)"
        head = "-".join(str(d) for d in self.dims)
        lines = [
            f"Network({head}, {len(self.layers)} layers, {self.nnz} of {self.size} weights non-zero"
        ]
        lines += [f"  {l}: {layer!r}" for l, layer in enumerate(self.layers)]
        return "\n".join(lines) + ")"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, tuple(LAYER_KINDS.values())):
                raise TypeError(
                    f"layers[{i}] is a {type(layer).__name__}; a Network holds DenseLayer, "
                    "Conv2dLayer, MaxPool2dLayer and FlattenLayer"
                )
        self.shapes  # noqa: B018 -- checks that the layers chain

    @property
    def shapes(self) -> tuple[tuple[int, ...] | None, ...]:
        """One sample's shape before every layer and after the last (``None`` before the
        first layer that fixes it: pooling or flattening first)."""
        shape: tuple[int, ...] | None = None
        shapes: list[tuple[int, ...] | None] = []
        for i, layer in enumerate(self.layers):
            expected = layer.input_shape
            if expected is not None and shape is not None and tuple(expected) != shape:
                if len(shape) == len(expected) == 1:
                    raise ValueError(
                        f"layer {i - 1} has {shape[0]} outputs but layer {i} expects "
                        f"{expected[0]} inputs"
                    )
                raise ValueError(
                    f"layer {i - 1} gives samples of shape {shape} but layer {i} "
                    f"({type(layer).__name__}) expects {tuple(expected)}"
                )
            if expected is not None:
                shape = tuple(expected)
            shapes.append(shape)
            if shape is not None:
                try:
                    shape = tuple(layer.output_shape(shape))
                except ValueError as exc:
                    raise ValueError(f"layer {i} ({type(layer).__name__}): {exc}") from None
        shapes.append(shape)
        return tuple(shapes)

    @property
    def is_dense(self) -> bool:
        """Whether every layer is a :class:`DenseLayer` (a plain chain of dense programs)."""
        return all(isinstance(layer, DenseLayer) for layer in self.layers)

    @property
    def prunable(self) -> tuple[int, ...]:
        """Positions of the layers with weights (dense and conv), in forward order."""
        return tuple(i for i, layer in enumerate(self.layers) if layer.prunable)

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
        """``(d_0, d_1, ..., d_L)``: the input width, then every layer's output width (the
        number of entries of one sample, for images)."""
        if not self.layers:
            return ()
        if self.is_dense:  # also for a dense chain whose shapes are known anyway
            return (self.layers[0].W.shape[0], *(layer.W.shape[1] for layer in self.layers))
        shapes = self.shapes
        if shapes[0] is None:
            raise ValueError("the network's input shape is unknown (it starts with no weights)")
        return tuple(math.prod(shape) for shape in shapes)

    def with_layer(self, index: int, layer: Layer) -> Network:
        """A copy with layer ``index`` replaced (shapes are checked again)."""
        layers = list(self.layers)
        layers[index] = layer
        return Network(tuple(layers))

    @property
    def nnz(self) -> int:
        return sum(self.layers[i].nnz for i in self.prunable)

    @property
    def size(self) -> int:
        return sum(math.prod(self.layers[i].W.shape) for i in self.prunable)

    def save(
        self, path: str | os.PathLike, *, compressed: bool = True, layout: str = "auto"
    ) -> None:
        """Write the network to one ``.npz`` (or, by extension, ``.safetensors``) file,
        atomically.

        The archive is written to a temporary file in the same directory, then renamed over
        ``path``: ``path`` holds either its old content or the whole new network, never a
        part (see the module docstring for the layout). :meth:`load` reads it back with the
        same arrays, bit for bit.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (written as given: no ``.npz`` is appended).
        compressed : bool
            Deflate the arrays (``np.savez_compressed``): a pruned network's zeros cost
            almost nothing on disk.
        layout : str
            How weights are stored: ``"auto"`` (each weight in the layout of fewest bytes:
            dense for a dense weight, CSR, bitmask or N:M for a sparse one), ``"dense"``,
            ``"csr"``, ``"bitmask"`` or ``"N:M"`` such as ``"2:4"`` (see docs/files.md).
            A path ending in ``.safetensors`` is written by
            :func:`nettrim.io.save_safetensors`.

        Raises
        ------
        ValueError
            When the network has no layers or weights :meth:`load` would refuse (not
            float32/float64, not finite).
        OSError
            When the file cannot be written (nothing is left behind then).
        """
        if _is_safetensors(path):
            from .io.safetensors import save_safetensors

            return save_safetensors(self, path, layout=layout)
        arrays = self.to_arrays()
        # write only what load() reads back
        _network_from_arrays(arrays, f"cannot save to {os.fspath(path)}")
        from .io.npz import encode_npz

        arrays = encode_npz(arrays, layout)
        write_atomically(path, lambda fh: _write_npz(fh, arrays, compressed=compressed))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The entries of the network file: version 1 for dense layers only, else 2."""
        arrays: dict[str, np.ndarray] = {"format": np.array(FILE_FORMAT)}
        if self.is_dense:
            arrays["format_version"] = np.array(DENSE_FILE_VERSION)
            arrays["activations"] = np.array(self.activations, dtype=str)
        else:
            arrays["format_version"] = np.array(FILE_VERSION)
            arrays["layers"] = np.array(json.dumps([_describe(layer) for layer in self.layers]))
        if self.metadata:
            arrays["metadata"] = np.array(json.dumps(dict(self.metadata), allow_nan=False))
        for l in self.prunable:
            layer = self.layers[l]
            arrays[f"W{l}"] = _dense(layer.W)
            if layer.b is not None:
                arrays[f"b{l}"] = layer.b
        return arrays

    @classmethod
    def load(cls, path: str | os.PathLike) -> Network:
        """Read a network file written by :meth:`save` (or by hand with ``np.savez``).

        Read with ``allow_pickle=False``, so a file cannot run code; every entry is checked
        (names, dtypes, shapes, finite values, the shapes chaining from layer to layer,
        the activations) before a network is built.

        Parameters
        ----------
        path : str or os.PathLike
            A path ending in ``.safetensors`` is read by :func:`nettrim.io.load_safetensors`.

        Returns
        -------
        Network

        Raises
        ------
        NetworkFileError
            When the file is no ``.npz`` archive or does not hold a valid network; the
            message names the file and the entry.
        OSError
            When the file cannot be opened (missing, unreadable).

        Examples
        --------
        >>> import os, tempfile
        >>> net = Network.from_arrays([np.eye(3), np.ones((3, 2))], [np.zeros(3), None])
        >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
        >>> net.save(path)
        >>> Network.load(path).dims, Network.load(path).activations
        ((3, 3, 2), ('relu', 'linear'))
        """
        name = os.fspath(path)
        if _is_safetensors(name):
            from .io.safetensors import load_safetensors

            return load_safetensors(name)
        try:
            archive = np.load(name, allow_pickle=False)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            # np.load takes what is neither .npy nor .npz for a pickle, which it refuses
            detail = "" if isinstance(exc, ValueError) else f" ({exc})"
            raise NetworkFileError(
                f"{name}: not a .npz archive{detail}; a network file is a .npz with "
                "W0, b0, W1, b1, ... and activations"
            ) from None
        if isinstance(archive, np.ndarray):
            raise NetworkFileError(
                f"{name}: holds a single array (.npy); a network file is a .npz archive "
                "with W0, b0, W1, b1, ... and activations"
            )
        with archive:
            arrays = {}
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as exc:  # object arrays need pickles, which are refused
                    raise NetworkFileError(
                        f"{name}: entry {key!r} cannot be read without pickles ({exc}); "
                        "store plain numeric arrays and a string array of activations"
                    ) from None
                except (OSError, EOFError, zipfile.BadZipFile) as exc:
                    raise NetworkFileError(f"{name}: entry {key!r} is damaged ({exc})") from None
                if not isinstance(arrays[key], np.ndarray):  # a zip member that is no .npy
                    raise NetworkFileError(f"{name}: entry {key!r} is not a NumPy array")
        from .io.npz import decode_npz

        return _network_from_arrays(decode_npz(arrays, name), name)

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


def _describe(layer: Layer) -> dict:
    """A layer's entry in a version-2 file's ``layers`` list (weights are separate)."""
    kind = next(k for k, cls in LAYER_KINDS.items() if isinstance(layer, cls))
    entry: dict = {"kind": kind}
    if layer.prunable:
        entry["activation"] = layer.activation
    if isinstance(layer, Conv2dLayer):
        for name in ("in_shape", "kernel_size", "stride", "padding", "dilation"):
            entry[name] = list(getattr(layer, name))
    if isinstance(layer, MaxPool2dLayer):
        entry["kernel_size"] = list(layer.kernel_size)
    return entry


#: The keys of each kind's entry in a version-2 ``layers`` list.
_KIND_KEYS = {
    "dense": {"kind", "activation"},
    "conv2d": {"kind", "activation", "in_shape", "kernel_size", "stride", "padding", "dilation"},
    "maxpool2d": {"kind", "kernel_size"},
    "flatten": {"kind"},
}


def _network_from_arrays(arrays: Mapping[str, np.ndarray], source: str) -> Network:
    """The network a file's arrays describe, or a :class:`NetworkFileError` naming
    ``source`` and the entry at fault."""

    def fail(message: str) -> NetworkFileError:
        return NetworkFileError(f"{source}: {message}")

    version = _check_format(arrays, fail)
    if version >= 2:
        return _network_from_v2(arrays, fail)
    indices: dict[str, set[int]] = {"W": set(), "b": set()}
    unknown = []
    for key in arrays:
        match = _LAYER_KEY.fullmatch(key)
        if match:
            indices[match[1]].add(int(match[2]))
        elif key not in _META_KEYS:
            unknown.append(key)
    if unknown:
        raise fail(
            f"unexpected entries {', '.join(map(repr, sorted(unknown)))}; a network file "
            f"holds only W0, b0, W1, b1, ..., {', '.join(_META_KEYS)}"
        )
    n_layers = len(indices["W"])
    if n_layers == 0:
        raise fail("no weights (W0, W1, ...): a network needs at least one layer")
    missing = sorted(set(range(n_layers)) - indices["W"])
    if missing:
        raise fail(
            f"W{missing[0]} is missing (the file has {', '.join(_names('W', indices['W']))}); "
            "layers are numbered from 0 without gaps"
        )
    stray = sorted(indices["b"] - indices["W"])
    if stray:
        raise fail(f"b{stray[0]} has no W{stray[0]}: a bias belongs to a layer's weights")
    activations = _check_activations(arrays, n_layers, fail)
    weights, biases = [], []
    for l in range(n_layers):
        W = _check_array(f"W{l}", arrays[f"W{l}"], 2, fail)
        if l > 0 and W.shape[0] != weights[-1].shape[1]:
            raise fail(
                f"W{l} has shape {W.shape}: {W.shape[0]} inputs, but W{l - 1} has "
                f"{weights[-1].shape[1]} outputs; layer {l}'s inputs are layer {l - 1}'s outputs"
            )
        b = None
        if f"b{l}" in arrays:
            b = _check_array(f"b{l}", arrays[f"b{l}"], 1, fail)
            if b.shape != (W.shape[1],):
                transposed = b.shape == (W.shape[0],)
                raise fail(
                    f"b{l} has shape {b.shape} but W{l} has {W.shape[1]} outputs; "
                    + (
                        f"W{l} of shape {W.shape} looks transposed (PyTorch's nn.Linear "
                        f"layout is (d_out, d_in)): save W{l}.T, of shape (d_in, d_out)"
                        if transposed
                        else f"b{l} must have shape ({W.shape[1]},)"
                    )
                )
        weights.append(W)
        biases.append(b)
    network = Network.from_arrays(weights, biases, activations)
    if "metadata" in arrays:
        network = replace(network, metadata=_check_metadata(arrays["metadata"], fail))
    return network


def _check_metadata(value: np.ndarray, fail: Callable[[str], Exception]) -> dict:
    """The ``metadata`` entry: one string holding a JSON object."""
    if value.ndim != 0 or value.dtype.kind != "U":
        raise fail(f"metadata must be one string (JSON), got {_show(value)}")
    try:
        metadata = json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise fail(f"metadata is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise fail(f"metadata must be a JSON object, got {type(metadata).__name__}")
    return metadata


def _is_safetensors(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(".safetensors")


def _dense(W) -> np.ndarray:
    """A weight as a dense array (a ``scipy.sparse`` weight is densified for the file)."""
    return W.toarray() if hasattr(W, "toarray") else W


def _network_from_v2(arrays: Mapping[str, np.ndarray], fail: Callable[[str], Exception]) -> Network:
    """A version-2 file: a JSON ``layers`` list and ``W{l}``/``b{l}`` per prunable layer."""
    unknown = [k for k in arrays if not _LAYER_KEY.fullmatch(k) and k not in _META_KEYS_V2]
    if unknown:
        raise fail(
            f"unexpected entries {', '.join(map(repr, sorted(unknown)))}; a version-2 network "
            f"file holds only W{{l}}, b{{l}} and {', '.join(_META_KEYS_V2)}"
        )
    if "layers" not in arrays or arrays["layers"].shape != () or arrays["layers"].dtype.kind != "U":
        raise fail("a version-2 network file needs one JSON string entry 'layers'")
    try:
        entries = json.loads(str(arrays["layers"]))
    except json.JSONDecodeError as exc:
        raise fail(f"'layers' is not valid JSON ({exc})") from None
    if not isinstance(entries, list) or not entries:
        raise fail("'layers' must be a non-empty JSON list with one object per layer")
    layers: list[Layer] = []
    used: set[str] = set()
    for l, entry in enumerate(entries):
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in _KIND_KEYS:
            raise fail(f"layers[{l}] has kind {kind!r}; known kinds: {', '.join(_KIND_KEYS)}")
        if set(entry) != _KIND_KEYS[kind]:
            raise fail(
                f"layers[{l}] ({kind}) must have exactly the keys {sorted(_KIND_KEYS[kind])}"
            )
        try:
            if kind in ("maxpool2d", "flatten"):
                layers.append(
                    MaxPool2dLayer(entry["kernel_size"]) if kind == "maxpool2d" else FlattenLayer()
                )
                continue
            if f"W{l}" not in arrays:
                raise fail(f"W{l} is missing: layers[{l}] is a {kind} layer")
            W = _check_array(f"W{l}", arrays[f"W{l}"], 2, fail)
            b = _check_array(f"b{l}", arrays[f"b{l}"], 1, fail) if f"b{l}" in arrays else None
            used.update({f"W{l}", f"b{l}"})
            geometry = {k: v for k, v in entry.items() if k not in ("kind", "activation")}
            layers.append(
                DenseLayer(W, b, entry["activation"])
                if kind == "dense"
                else Conv2dLayer(W, b, activation=entry["activation"], **geometry)
            )
        except (ValueError, TypeError) as exc:
            if isinstance(exc, NetworkFileError):
                raise
            raise fail(f"layers[{l}] ({kind}): {exc}") from None
    stray = sorted(k for k in arrays if _LAYER_KEY.fullmatch(k) and k not in used)
    if stray:
        raise fail(f"{stray[0]} belongs to no dense or conv layer of 'layers'")
    try:
        network = Network(tuple(layers))
    except ValueError as exc:
        raise fail(str(exc)) from None
    if "metadata" in arrays:
        network = replace(network, metadata=_check_metadata(arrays["metadata"], fail))
    return network


def _names(prefix: str, indices: set[int]) -> list[str]:
    return [f"{prefix}{i}" for i in sorted(indices)]


def _check_format(arrays: Mapping[str, np.ndarray], fail: Callable[[str], Exception]) -> int:
    """The file's format version (1 when it has none), after checking it is one we read."""
    if "format" in arrays:
        value = arrays["format"]
        if value.shape != () or value.dtype.kind != "U" or str(value) != FILE_FORMAT:
            raise fail(f"format is {_show(value)}, not {FILE_FORMAT!r}: not a network file")
    if "format_version" in arrays:
        value = arrays["format_version"]
        if value.shape != () or value.dtype.kind not in "iu":
            raise fail(f"format_version must be one integer, got {_show(value)}")
        if not 1 <= int(value) <= FILE_VERSION:
            raise fail(
                f"format_version is {int(value)}; this nettrim reads format versions "
                f"1 to {FILE_VERSION} (was the file written by a newer nettrim?)"
            )
        return int(value)
    return 1


def _check_activations(
    arrays: Mapping[str, np.ndarray], n_layers: int, fail: Callable[[str], Exception]
) -> list[str]:
    if "activations" not in arrays:
        raise fail(
            "no activations entry; store one name per layer, e.g. "
            "activations=np.array(['relu', ..., 'linear'])"
        )
    value = arrays["activations"]
    if value.dtype.kind == "S":
        value = np.char.decode(value, "ascii", errors="replace")
    if value.dtype.kind != "U" or value.ndim != 1:
        raise fail(f"activations must be a 1-D array of strings, got {_show(value)}")
    if len(value) != n_layers:
        raise fail(
            f"activations has {len(value)} names but the file has {n_layers} layers "
            f"(W0 to W{n_layers - 1}); give one per layer"
        )
    names = [str(a) for a in value]
    for l, name in enumerate(names):
        if name not in ACTIVATIONS:
            raise fail(
                f"activations[{l}] is {name!r}; known activations: "
                f"{', '.join(map(repr, ACTIVATIONS))}"
            )
    return names


def _check_array(
    key: str, value: np.ndarray, ndim: int, fail: Callable[[str], Exception]
) -> np.ndarray:
    if value.dtype.type not in _WEIGHT_DTYPES:
        raise fail(
            f"{key} has dtype {value.dtype}; weights and biases must be float32 or float64 "
            "(convert with .astype(np.float32))"
        )
    if value.ndim != ndim:
        expected = "(d_in, d_out)" if ndim == 2 else "(d_out,)"
        raise fail(f"{key} must be {ndim}-D {expected}, got shape {value.shape}")
    if 0 in value.shape:
        raise fail(f"{key} is empty (shape {value.shape})")
    if not np.isfinite(value).all():
        bad = int(np.count_nonzero(~np.isfinite(value)))
        raise fail(f"{key} holds {bad} NaN or infinite value(s); all must be finite")
    return value


def _show(value: np.ndarray) -> str:
    """A short description of a file entry for a message."""
    if value.size <= 4 and value.dtype.kind in "iufUSb":
        return f"{value.tolist()!r} (dtype {value.dtype}, shape {value.shape})"
    return f"an array of dtype {value.dtype} and shape {value.shape}"


#: The time stamp of every entry of a network file: a fixed one, so the same network gives
#: the same file bytes whenever it is written (a resumed run's output is the uninterrupted
#: run's, byte for byte).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _write_npz(fh: IO[bytes], arrays: dict[str, np.ndarray], *, compressed: bool) -> None:
    """``np.savez`` / ``np.savez_compressed`` with fixed entry time stamps."""
    mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(fh, "w", compression=mode, allowZip64=True) as archive:
        for name, value in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            entry.compress_type = mode
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``os.replace`` is atomic on POSIX and Windows within a directory, so a reader (or a
    crash, or Ctrl-C) sees either the old ``path`` or the complete new file, never a part;
    on any failure the temporary file is removed and ``path`` is left as it was.

    Raises
    ------
    FileNotFoundError
        When the directory of ``path`` does not exist.
    IsADirectoryError
        When ``path`` is a directory.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as fh:  # created with the usual permissions (umask)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise

"""ONNX import (the optional ``onnx`` extra): a chain of dense and convolution layers into a
:class:`Network`.

Supported nodes, each taking the previous node's output as its data input:

* ``Gemm`` (``Y = alpha * A B' + beta * C``, ``B`` and ``C`` initializers, ``transA = 0``):
  one :class:`~nettrim.network.DenseLayer`, ``W = alpha * B`` (or ``alpha * B^T`` with
  ``transB = 1``, PyTorch's export of ``nn.Linear``), ``b = beta * C``;
* ``MatMul`` by an initializer, optionally followed by ``Add`` of an initializer: one layer;
* ``Conv`` (2-D, ``group = 1``, any ``strides`` / ``dilations``, ``pads`` equal on both sides
  of each axis, ``auto_pad`` ``NOTSET`` or ``VALID``): one
  :class:`~nettrim.network.Conv2dLayer`, its ``(c_out, c_in, k_h, k_w)`` weight turned into
  the dense ``(k_h * k_w * c_in, c_out)`` matrix by
  :func:`~nettrim.conv.conv_weight_to_dense`; it needs the input's image size, read from the
  graph input's static shape;
* ``MaxPool`` with ``strides == kernel_shape``, no padding, no dilation (non-overlapping
  windows): one :class:`~nettrim.network.MaxPool2dLayer`; any other pooling is refused;
* ``Relu`` after a layer: that layer's activation (after a ``MaxPool`` that follows a
  convolution too: ``max`` and ``relu`` commute, so it becomes the convolution's activation);
* ``Flatten`` (``axis = 1``) and ``Reshape`` to ``(batch, features)``: after a convolution or
  pooling, a :class:`~nettrim.network.FlattenLayer` (C order over ``(c, h, w)``, the order
  ONNX flattens an NCHW tensor in, so the dense layer after it reads the same features);
  elsewhere no-ops on the rows: before the first layer they flatten an image input, which the
  network then takes flattened the same way (C-order, ``x.reshape(len(x), -1)``);
* ``Constant``: a value for another node (a ``Reshape`` shape).

Anything else is an :class:`OnnxImportError` naming the node's op type and name.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .conv import conv_weight_to_dense
from .network import Conv2dLayer, DenseLayer, FlattenLayer, MaxPool2dLayer, Network

_FLOATS = (np.float32, np.float64)
_SUPPORTED = "Gemm, MatMul, Add, Conv, MaxPool, Relu, Flatten, Reshape and Constant"


class OnnxImportError(ValueError):
    """An ONNX model that does not translate into a :class:`Network`; the message names the
    node (op type and name) or the file."""


@dataclass
class _Layer:
    """A layer being built: weights, then the activation a later ``Relu`` may set."""

    W: np.ndarray
    b: np.ndarray | None
    activation: str
    output: str  # the tensor name carrying this layer's output
    conv: dict | None = None  # Conv2dLayer's geometry (in_shape, kernel_size, ...)

    def build(self) -> DenseLayer | Conv2dLayer:
        if self.conv is None:
            return DenseLayer(self.W, self.b, self.activation)
        return Conv2dLayer(self.W, self.b, activation=self.activation, **self.conv)


@dataclass
class _Fixed:
    """A layer without weights (pooling, flattening)."""

    layer: MaxPool2dLayer | FlattenLayer
    output: str

    def build(self) -> MaxPool2dLayer | FlattenLayer:
        return self.layer


@dataclass
class _Chain:
    """The translation so far: the layers, the tensor carrying the data and one sample's
    shape (``None`` where the graph does not fix it)."""

    current: str
    shape: tuple[int, ...] | None
    layers: list[_Layer | _Fixed] = field(default_factory=list)

    @property
    def last(self) -> _Layer | _Fixed | None:
        """The last layer, when it produced the current tensor."""
        if self.layers and self.layers[-1].output == self.current:
            return self.layers[-1]
        return None


def from_onnx(model) -> Network:
    """The :class:`Network` an ONNX model of dense and convolution layers computes.

    Parameters
    ----------
    model : onnx.ModelProto, str or os.PathLike
        A model, or the ``.onnx`` file to read (a protobuf: nothing in it is executed).

    Returns
    -------
    Network
        Dense ``W`` of shape ``(d_in, d_out)``, convolutions in the dense kernel layout of
        :mod:`nettrim.conv`; the last layer's activation is linear unless the graph ends
        with ``Relu``. A network starting with a convolution takes NCHW images.

    Raises
    ------
    OnnxImportError
        For a file that is no ONNX model, or a graph with a node, a branch or a value that
        does not translate (module docstring).
    ImportError
        When the ``onnx`` package is missing (``pip install nettrim[onnx]``).
    """
    import onnx
    from onnx import numpy_helper

    if isinstance(model, str | os.PathLike):
        name = os.fspath(model)
        try:
            model = onnx.load(name)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as exc:  # protobuf's DecodeError and friends
            raise OnnxImportError(
                f"{name}: not an ONNX model ({type(exc).__name__}: {exc})"
            ) from None
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model must be an onnx.ModelProto or a path, got {type(model).__name__}")
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise OnnxImportError(
            f"the graph has inputs {[value.name for value in inputs]} and {len(graph.output)} "
            "outputs; a network has one data input and one output"
        )
    chain = _Chain(inputs[0].name, _sample_shape(inputs[0]))
    for node in graph.node:
        _translate(node, chain, constants, numpy_helper)
    if graph.output[0].name != chain.current:
        raise OnnxImportError(
            f"the graph's output {graph.output[0].name!r} is not the end of the layer chain "
            f"({chain.current!r})"
        )
    if not any(isinstance(layer, _Layer) for layer in chain.layers):
        raise OnnxImportError("the graph has no Gemm, MatMul or Conv node: no layer to import")
    return Network(tuple(layer.build() for layer in chain.layers))


def _sample_shape(value) -> tuple[int, ...] | None:
    """One sample's shape from a graph input's type (``None`` unless every axis after the
    batch axis has a fixed size)."""
    dims = value.type.tensor_type.shape.dim
    sizes = tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in dims[1:])
    return sizes if dims and None not in sizes else None


def _describe(node) -> str:
    return f"{node.op_type} node {node.name or '(unnamed)'!r}"


def _translate(node, chain: _Chain, constants: dict, numpy_helper) -> None:
    """Apply one node to the chain."""
    where = _describe(node)
    if node.op_type == "Constant":
        constants[node.output[0]] = _constant_value(node, numpy_helper, where)
        return
    handler = _HANDLERS.get(node.op_type)
    if handler is None:
        raise OnnxImportError(
            f"{where}: op {node.op_type} is not supported; nettrim imports {_SUPPORTED}"
        )
    data = [name for name in node.input if name and name not in constants]
    if data != [chain.current] or len(node.output) != 1:
        raise OnnxImportError(
            f"{where}: its data input must be the output of the node before "
            f"({chain.current!r}), got {list(node.input)} and {len(node.output)} outputs; "
            "nettrim imports a chain of layers, no branches"
        )
    handler(node, chain, constants, where)
    chain.current = node.output[0]


def _constant_value(node, numpy_helper, where: str) -> np.ndarray:
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
    raise OnnxImportError(f"{where}: only a Constant with a tensor 'value' is supported")


def _attributes(node) -> dict:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _weight(value: np.ndarray, what: str, where: str, ndim: int = 2) -> np.ndarray:
    if value.dtype.type not in _FLOATS or value.ndim != ndim:
        raise OnnxImportError(
            f"{where}: {what} must be a {ndim}-D float32 or float64 initializer, got dtype "
            f"{value.dtype} and shape {value.shape}"
        )
    return value


def _bias(value: np.ndarray, d_out: int, where: str) -> np.ndarray:
    if value.dtype.type not in _FLOATS or value.size not in (1, d_out) or value.ndim > 2:
        raise OnnxImportError(
            f"{where}: the bias must be a float initializer of {d_out} values, got dtype "
            f"{value.dtype} and shape {value.shape}"
        )
    return np.broadcast_to(value.reshape(-1), (d_out,)).copy()


def _initializer(node, index: int, constants: dict, what: str, where: str) -> np.ndarray:
    if len(node.input) <= index or node.input[index] not in constants:
        raise OnnxImportError(f"{where}: {what} must be an initializer")
    return constants[node.input[index]]


def _gemm(node, chain, constants, where) -> None:
    attrs = _attributes(node)
    if attrs.get("transA", 0):
        raise OnnxImportError(f"{where}: transA=1 (a transposed data input) is not supported")
    W = _weight(_initializer(node, 1, constants, "the weight B", where), "B", where)
    W = W.T if attrs.get("transB", 0) else W
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    W = np.ascontiguousarray(W if alpha == 1.0 else (alpha * W).astype(W.dtype))
    b = None
    if len(node.input) > 2 and node.input[2]:
        b = _bias(constants[node.input[2]], W.shape[1], where)
        b = b if beta == 1.0 else (beta * b).astype(b.dtype)
    _append_dense(chain, _Layer(W, b, "linear", node.output[0]), where)


def _matmul(node, chain, constants, where) -> None:
    if node.input[0] != chain.current:
        raise OnnxImportError(f"{where}: the data must be the left factor (X @ W)")
    W = _weight(constants[node.input[1]], "the right factor", where)
    _append_dense(chain, _Layer(np.ascontiguousarray(W), None, "linear", node.output[0]), where)


def _append_dense(chain: _Chain, layer: _Layer, where: str) -> None:
    shape = chain.shape
    if shape is None:  # an input of unknown width: the layer before says it, if any
        before = [entry for entry in chain.layers if isinstance(entry, _Layer)]
        shape = (before[-1].W.shape[1],) if before and before[-1].conv is None else None
    if shape is not None and shape != (layer.W.shape[0],):
        raise OnnxImportError(
            f"{where}: takes {layer.W.shape[0]} inputs but gets samples of shape {shape}"
        )
    chain.layers.append(layer)
    chain.shape = (layer.W.shape[1],)


def _conv(node, chain, constants, where) -> None:
    attrs = _attributes(node)
    weight = _weight(_initializer(node, 1, constants, "the weight", where), "W", where, ndim=4)
    c_out, c_in, k_h, k_w = weight.shape
    if attrs.get("group", 1) != 1:
        raise OnnxImportError(f"{where}: group={attrs['group']}; only group=1 is supported")
    if tuple(attrs.get("kernel_shape", (k_h, k_w))) != (k_h, k_w):
        raise OnnxImportError(
            f"{where}: kernel_shape {attrs['kernel_shape']} differs from the weight's {(k_h, k_w)}"
        )
    shape = chain.shape
    if shape is None or len(shape) != 3 or shape[0] != c_in:
        raise OnnxImportError(
            f"{where}: needs (c, h, w) images with c = {c_in} and a fixed size (the graph "
            f"input's static shape), got samples of shape {shape}"
        )
    pads = _pads(attrs, where)
    b = None
    if len(node.input) > 2 and node.input[2]:
        b = _bias(_initializer(node, 2, constants, "the bias", where), c_out, where)
    geometry = {
        "in_shape": shape,
        "kernel_size": (k_h, k_w),
        "stride": tuple(attrs.get("strides", (1, 1))),
        "padding": pads,
        "dilation": tuple(attrs.get("dilations", (1, 1))),
    }
    layer = _Layer(conv_weight_to_dense(weight), b, "linear", node.output[0], geometry)
    try:
        built = layer.build()
    except ValueError as exc:
        raise OnnxImportError(f"{where}: {exc}") from None
    chain.layers.append(layer)
    chain.shape = (c_out, *built.out_hw)


def _pads(attrs: dict, where: str) -> tuple[int, int]:
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        return (0, 0)
    if auto_pad != "NOTSET":
        raise OnnxImportError(
            f"{where}: auto_pad={auto_pad} is not supported; give explicit pads (NOTSET)"
        )
    top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
    if (top, left) != (bottom, right):
        raise OnnxImportError(
            f"{where}: pads {[top, left, bottom, right]} differ between the two sides of an "
            "axis; nettrim pads both sides of each axis alike"
        )
    return (top, left)


def _maxpool(node, chain, constants, where) -> None:
    attrs = _attributes(node)
    kernel = tuple(attrs.get("kernel_shape", ()))
    strides = tuple(attrs.get("strides", (1,) * len(kernel)))
    pads = tuple(attrs.get("pads", (0,) * 2 * len(kernel)))
    dilations = tuple(attrs.get("dilations", (1,) * len(kernel)))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if (
        len(kernel) != 2
        or strides != kernel
        or any(pads)
        or any(d != 1 for d in dilations)
        or auto_pad not in (b"NOTSET", "NOTSET", b"VALID", "VALID")
        or attrs.get("storage_order", 0)
    ):
        raise OnnxImportError(
            f"{where}: only non-overlapping 2-D max-pooling is supported (strides equal to "
            f"kernel_shape, no pads, no dilation), got kernel_shape {list(kernel)}, strides "
            f"{list(strides)}, pads {list(pads)}, dilations {list(dilations)}"
        )
    shape = chain.shape
    if shape is None or len(shape) != 3:
        raise OnnxImportError(f"{where}: needs (c, h, w) images, got samples of shape {shape}")
    if attrs.get("ceil_mode", 0) and (shape[1] % kernel[0] or shape[2] % kernel[1]):
        raise OnnxImportError(
            f"{where}: ceil_mode=1 keeps partial windows of the {shape[1]}x{shape[2]} image; "
            "nettrim drops them (ceil_mode=0)"
        )
    layer = MaxPool2dLayer(kernel)
    chain.layers.append(_Fixed(layer, node.output[0]))
    chain.shape = layer.output_shape(shape)


def _add(node, chain, constants, where) -> None:
    last = chain.last
    if (
        not isinstance(last, _Layer)
        or last.conv is not None
        or last.b is not None
        or last.activation != "linear"
    ):
        raise OnnxImportError(f"{where}: an Add must follow a MatMul directly (its bias)")
    (bias_name,) = [name for name in node.input if name != chain.current]
    last.b = _bias(constants[bias_name], last.W.shape[1], where)
    last.output = node.output[0]


def _relu(node, chain, constants, where) -> None:
    last = chain.last
    if isinstance(last, _Fixed) and isinstance(last.layer, MaxPool2dLayer):
        # relu(maxpool(z)) = maxpool(relu(z)): the convolution before the pooling takes it
        before = chain.layers[-2] if len(chain.layers) > 1 else None
        if isinstance(before, _Layer) and before.conv is not None:
            before.activation = "relu"
            last.output = node.output[0]
            return
    if not isinstance(last, _Layer):
        raise OnnxImportError(
            f"{where}: a Relu must follow a layer (Gemm, MatMul, Add or Conv, or a MaxPool "
            "after a Conv)"
        )
    last.activation = "relu"  # relu(relu(z)) = relu(z): a repeated Relu changes nothing
    last.output = node.output[0]


def _flatten(node, chain, constants, where) -> None:
    if _attributes(node).get("axis", 1) != 1:
        raise OnnxImportError(f"{where}: only axis=1 (one row per sample) is supported")
    _to_rows(node, chain)


def _reshape(node, chain, constants, where) -> None:
    shape = constants.get(node.input[1]) if len(node.input) > 1 else None
    if shape is None or shape.ndim != 1 or len(shape) != 2:
        raise OnnxImportError(
            f"{where}: only a Reshape to (batch, features) with a constant shape is supported, "
            f"got {None if shape is None else shape.tolist()}"
        )
    width = int(shape[1])
    if chain.shape is not None and width not in (-1, math.prod(chain.shape)):
        raise OnnxImportError(
            f"{where}: reshapes samples of shape {chain.shape} to {width} features per row"
        )
    _to_rows(node, chain)


def _to_rows(node, chain: _Chain) -> None:
    """Flatten each sample: a FlattenLayer after images the network computes, else a no-op
    on the rows (an image input is then taken flattened)."""
    if chain.layers and chain.shape is not None and len(chain.shape) > 1:
        chain.layers.append(_Fixed(FlattenLayer(), node.output[0]))
    elif chain.last is not None:
        chain.last.output = node.output[0]
    if chain.shape is not None:
        chain.shape = (math.prod(chain.shape),)


_HANDLERS = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Conv": _conv,
    "MaxPool": _maxpool,
    "Relu": _relu,
    "Flatten": _flatten,
    "Reshape": _reshape,
}

"""ONNX import (the optional ``onnx`` extra): a chain of dense layers into a :class:`Network`.

Supported nodes, each taking the previous node's output as its data input:

* ``Gemm`` (``Y = alpha * A B' + beta * C``, ``B`` and ``C`` initializers, ``transA = 0``):
  one layer, ``W = alpha * B`` (or ``alpha * B^T`` with ``transB = 1``, PyTorch's export of
  ``nn.Linear``), ``b = beta * C``;
* ``MatMul`` by an initializer, optionally followed by ``Add`` of an initializer: one layer;
* ``Relu`` after a layer: that layer's activation;
* ``Flatten`` (``axis = 1``) and ``Reshape`` to ``(batch, features)``: no-ops on the rows;
  before the first layer they flatten an image input, which the network then takes flattened
  the same way (C-order, ``x.reshape(len(x), -1)``);
* ``Constant``: a value for another node (a ``Reshape`` shape).

Anything else is an :class:`OnnxImportError` naming the node's op type and name;
``Conv`` and ``MaxPool`` are refused as not supported yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .network import Network

_NOT_YET = ("Conv", "MaxPool")
_FLOATS = (np.float32, np.float64)


class OnnxImportError(ValueError):
    """An ONNX model that does not translate into a :class:`Network`; the message names the
    node (op type and name) or the file."""


@dataclass
class _Layer:
    W: np.ndarray
    b: np.ndarray | None
    activation: str
    output: str  # the tensor name carrying this layer's output


def from_onnx(model) -> Network:
    """The :class:`Network` an ONNX model of dense layers computes.

    Parameters
    ----------
    model : onnx.ModelProto, str or os.PathLike
        A model, or the ``.onnx`` file to read (a protobuf: nothing in it is executed).

    Returns
    -------
    Network
        ``W`` of shape ``(d_in, d_out)``; the last layer's activation is linear unless the
        graph ends with ``Relu``.

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
    inputs = [value.name for value in graph.input if value.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise OnnxImportError(
            f"the graph has inputs {inputs} and {len(graph.output)} outputs; a network has one "
            "data input and one output"
        )
    current, layers = inputs[0], []
    for node in graph.node:
        current = _translate(node, current, layers, constants, numpy_helper)
    if graph.output[0].name != current:
        raise OnnxImportError(
            f"the graph's output {graph.output[0].name!r} is not the end of the layer chain "
            f"({current!r})"
        )
    if not layers:
        raise OnnxImportError("the graph has no Gemm or MatMul node: no layer to import")
    return Network.from_arrays(
        [layer.W for layer in layers], [layer.b for layer in layers], [l.activation for l in layers]
    )


def _describe(node) -> str:
    return f"{node.op_type} node {node.name or '(unnamed)'!r}"


def _translate(node, current: str, layers: list[_Layer], constants: dict, numpy_helper) -> str:
    """Apply one node to the chain; returns the tensor name now carrying the data."""
    where = _describe(node)
    if node.op_type == "Constant":
        constants[node.output[0]] = _constant_value(node, numpy_helper, where)
        return current
    if node.op_type in _NOT_YET:
        raise OnnxImportError(
            f"{where}: {node.op_type} is not supported yet (nettrim imports dense layers: "
            "Gemm, MatMul, Add, Relu, Flatten, Reshape)"
        )
    handler = _HANDLERS.get(node.op_type)
    if handler is None:
        raise OnnxImportError(
            f"{where}: op {node.op_type} is not supported; nettrim imports Gemm, MatMul, Add, "
            "Relu, Flatten, Reshape and Constant"
        )
    data = [name for name in node.input if name and name not in constants]
    if data != [current] or len(node.output) != 1:
        raise OnnxImportError(
            f"{where}: its data input must be the output of the node before ({current!r}), "
            f"got {list(node.input)}; nettrim imports a chain of layers, no branches"
        )
    handler(node, current, layers, constants, where)
    return node.output[0]


def _constant_value(node, numpy_helper, where: str) -> np.ndarray:
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
    raise OnnxImportError(f"{where}: only a Constant with a tensor 'value' is supported")


def _attributes(node) -> dict:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _weight(value: np.ndarray, what: str, where: str) -> np.ndarray:
    if value.dtype.type not in _FLOATS or value.ndim != 2:
        raise OnnxImportError(
            f"{where}: {what} must be a 2-D float32 or float64 initializer, got dtype "
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


def _gemm(node, current, layers, constants, where) -> None:
    attrs = _attributes(node)
    if attrs.get("transA", 0):
        raise OnnxImportError(f"{where}: transA=1 (a transposed data input) is not supported")
    if len(node.input) < 2 or node.input[1] not in constants:
        raise OnnxImportError(f"{where}: the weight B must be an initializer")
    W = _weight(constants[node.input[1]], "B", where)
    W = W.T if attrs.get("transB", 0) else W
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    W = np.ascontiguousarray(W if alpha == 1.0 else (alpha * W).astype(W.dtype))
    b = None
    if len(node.input) > 2 and node.input[2]:
        b = _bias(constants[node.input[2]], W.shape[1], where)
        b = b if beta == 1.0 else (beta * b).astype(b.dtype)
    _append(layers, _Layer(W, b, "linear", node.output[0]), where)


def _matmul(node, current, layers, constants, where) -> None:
    if node.input[0] != current:
        raise OnnxImportError(f"{where}: the data must be the left factor (X @ W)")
    W = _weight(constants[node.input[1]], "the right factor", where)
    _append(layers, _Layer(np.ascontiguousarray(W), None, "linear", node.output[0]), where)


def _add(node, current, layers, constants, where) -> None:
    last = layers[-1] if layers else None
    if last is None or last.output != current or last.b is not None or last.activation != "linear":
        raise OnnxImportError(f"{where}: an Add must follow a MatMul directly (its bias)")
    (bias_name,) = [name for name in node.input if name != current]
    last.b = _bias(constants[bias_name], last.W.shape[1], where)
    last.output = node.output[0]


def _relu(node, current, layers, constants, where) -> None:
    last = layers[-1] if layers else None
    if last is None or last.output != current:
        raise OnnxImportError(f"{where}: a Relu must follow a layer (Gemm, MatMul or Add)")
    last.activation = "relu"  # relu(relu(z)) = relu(z): a repeated Relu changes nothing
    last.output = node.output[0]


def _flatten(node, current, layers, constants, where) -> None:
    if _attributes(node).get("axis", 1) != 1:
        raise OnnxImportError(f"{where}: only axis=1 (one row per sample) is supported")
    _pass_through(node, layers)


def _reshape(node, current, layers, constants, where) -> None:
    shape = constants.get(node.input[1]) if len(node.input) > 1 else None
    if shape is None or shape.ndim != 1 or len(shape) != 2:
        raise OnnxImportError(
            f"{where}: only a Reshape to (batch, features) with a constant shape is supported, "
            f"got {None if shape is None else shape.tolist()}"
        )
    width = int(shape[1])
    if layers and width not in (-1, layers[-1].W.shape[1]):
        raise OnnxImportError(
            f"{where}: reshapes {layers[-1].W.shape[1]} features to {width} per row"
        )
    _pass_through(node, layers)


def _pass_through(node, layers) -> None:
    if layers and layers[-1].output == node.input[0]:
        layers[-1].output = node.output[0]


def _append(layers: list[_Layer], layer: _Layer, where: str) -> None:
    if layers and layers[-1].W.shape[1] != layer.W.shape[0]:
        raise OnnxImportError(
            f"{where}: takes {layer.W.shape[0]} inputs but the layer before gives "
            f"{layers[-1].W.shape[1]}"
        )
    layers.append(layer)


_HANDLERS = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Relu": _relu,
    "Flatten": _flatten,
    "Reshape": _reshape,
}

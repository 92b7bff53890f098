"""Networks in ``.safetensors`` files (the ``safetensors`` library, its NumPy API).

Key convention, for a network of ``L`` layers (``l`` is the layer's position, so a network
with pooling or flattening has gaps in the numbers, as its ``.npz`` file has):

* ``layers.{l}.weight``: the weight of layer ``l`` (a dense layer or a convolution). With
  ``orientation="nettrim"`` a dense layer's ``(d_in, d_out)`` and a convolution's dense
  ``(k_h * k_w * c_in, c_out)`` kernel (:func:`~nettrim.conv.conv_weight_to_dense`); with
  ``orientation="torch"`` PyTorch's ``nn.Linear.weight`` ``(d_out, d_in)`` and
  ``nn.Conv2d.weight`` ``(c_out, c_in, k_h, k_w)``. A weight stored sparse is instead
  ``layers.{l}.weight.{part}`` (``indptr`` / ``indices`` / ``values``, ``mask`` / ``values``
  or ``values`` / ``positions``, always of the nettrim-oriented 2-D matrix, whatever the
  orientation; see :mod:`nettrim.io.layouts`);
* ``layers.{l}.bias``: its bias ``(d_out,)``, absent for a layer without bias;
* the metadata (strings): ``format`` (``"nettrim.network"``), ``format_version``,
  ``orientation``, and the layers: ``activations`` (a JSON list of names) for a chain of
  dense layers, or ``layers`` for a network with convolutions, pooling or flattening (a JSON
  list with one object per layer, as in the ``.npz`` file: ``{"kind": "conv2d",
  "activation": ..., "in_shape": [c_in, h, w], "kernel_size": [k_h, k_w], "stride": ...,
  "padding": ..., "dilation": ...}``, ``{"kind": "maxpool2d", "kernel_size": ...}``,
  ``{"kind": "flatten"}``, ``{"kind": "dense", "activation": ...}``); when a weight is sparse,
  ``sparse`` (the JSON layout description of :mod:`nettrim.io.entries`); and, when the
  network has any, ``metadata`` (:attr:`Network.metadata` as JSON: what ``nettrim prune``
  records of the pruning, which ``nettrim verify`` judges with).

Files written elsewhere (``safetensors.torch.save_file(model.state_dict())`` of an
``nn.Sequential``) are read too: keys ``{prefix}{i}.weight`` / ``{prefix}{i}.bias`` with one
common prefix (``"0.weight"``, ``"net.2.weight"``), the ``k``-th weight in the order of ``i``
(gaps allowed) belonging to the ``k``-th layer with weights; the orientation and the
activations (or, for a CNN, the ``layers`` list) passed as arguments.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

from ..conv import _pair, conv_weight_to_dense, dense_to_conv_weight
from ..network import (
    ACTIVATIONS,
    FILE_FORMAT,
    FILE_VERSION,
    LAYER_KINDS,
    Conv2dLayer,
    Network,
    NetworkFileError,
    _network_from_arrays,
    write_atomically,
)
from .entries import decode_entries, encode_entries

ORIENTATIONS = ("nettrim", "torch")
_KEY = re.compile(
    r"(?P<prefix>(?:[A-Za-z_][A-Za-z0-9_]*\.)*)(?P<index>0|[1-9][0-9]*)\."
    r"(?P<kind>weight|bias)(?:\.(?P<part>[a-z]+))?"
)
#: What a safetensors file spends on a tensor besides its data: its JSON header entry
#: (name, dtype, shape, offsets).
ENTRY_BYTES = 100
_META = ("format", "format_version", "activations", "layers", "orientation", "sparse", "metadata")
_WEIGHTED = ("dense", "conv2d")


def save_safetensors(
    network: Network,
    path: str | os.PathLike,
    *,
    layout: str = "auto",
    orientation: str = "nettrim",
) -> None:
    """Write ``network`` to a ``.safetensors`` file, atomically (key convention: module
    docstring).

    Parameters
    ----------
    network : Network
        Any network: dense layers, convolutions, max-pooling, flattening.
    path : str or os.PathLike
    layout : str
        ``"auto"`` (each weight in its layout of fewest bytes), ``"dense"``, ``"csr"``,
        ``"bitmask"`` or ``"N:M"`` such as ``"2:4"`` (for a convolution, groups of ``M``
        input channels of one kernel position: ``c_in`` must be a multiple of ``M``).
    orientation : {"nettrim", "torch"}
        Dense weights as nettrim's ``(d_in, d_out)`` and dense conv kernels, or as PyTorch's
        ``(d_out, d_in)`` and ``(c_out, c_in, k_h, k_w)``.

    Raises
    ------
    ValueError
        For an unknown layout or orientation, a layout the weights do not satisfy, or
        weights :func:`load_safetensors` would refuse; nothing is written then.
    ImportError
        When the ``safetensors`` package is missing (``pip install nettrim[safetensors]``).
    """
    from safetensors.numpy import save

    _check_orientation(orientation)
    name = os.fspath(path)
    arrays = network.to_arrays()
    _network_from_arrays(arrays, f"cannot save to {name}")  # write only what load reads
    tensors = {_tensor_key(key): value for key, value in arrays.items() if _is_weight_entry(key)}
    weights = [f"layers.{l}.weight" for l in network.prunable]
    channels = {
        f"layers.{l}.weight": layer.in_shape[0]
        for l, layer in enumerate(network.layers)
        if isinstance(layer, Conv2dLayer)
    }
    tensors, description = encode_entries(
        tensors, weights, layout, entry_bytes=ENTRY_BYTES, channels=channels
    )
    if orientation == "torch":
        for l in network.prunable:
            key = f"layers.{l}.weight"
            if key in tensors:  # a sparse weight's parts keep nettrim's orientation
                tensors[key] = _to_torch(network.layers[l], tensors[key])
    metadata = {"format": FILE_FORMAT, "format_version": str(FILE_VERSION)}
    if network.is_dense:  # the chain of dense layers reads as before CNNs were stored
        metadata["activations"] = json.dumps(list(network.activations))
    else:
        metadata["layers"] = str(arrays["layers"])
    metadata["orientation"] = orientation
    if description is not None:
        metadata["sparse"] = description
    if "metadata" in arrays:
        metadata["metadata"] = str(arrays["metadata"])
    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    write_atomically(name, lambda fh: fh.write(data))


def _is_weight_entry(key: str) -> bool:
    return key[0] in "Wb" and key[1:].isdigit()


def _tensor_key(entry: str) -> str:
    """``W3`` -> ``layers.3.weight``, ``b3`` -> ``layers.3.bias``."""
    return f"layers.{entry[1:]}.{'weight' if entry[0] == 'W' else 'bias'}"


def _to_torch(layer, W: np.ndarray) -> np.ndarray:
    if isinstance(layer, Conv2dLayer):
        return dense_to_conv_weight(W, c_in=layer.in_shape[0], kernel_size=layer.kernel_size)
    return W.T


def load_safetensors(
    path: str | os.PathLike,
    *,
    orientation: str | None = None,
    activations: Sequence[str] | None = None,
    layers: Sequence[dict] | None = None,
) -> Network:
    """Read a network from a ``.safetensors`` file (key convention: module docstring).

    Parameters
    ----------
    path : str or os.PathLike
    orientation : {"nettrim", "torch"}, optional
        How the file's dense weights are laid out. Read from the metadata of a file nettrim
        wrote (where a different value here is an error); required for other files. The
        shapes are checked against the layers either way, so a wrong value is an error
        naming the one that fits.
    activations : list of str, optional
        One name per layer, for a chain of dense layers in a file that does not record its
        layers (default: ReLU, and linear for the last layer).
    layers : list of dict, optional
        The layers, as the metadata ``layers`` holds them (module docstring), for a file
        with convolutions that does not record them (a PyTorch CNN's ``state_dict``).

    Raises
    ------
    NetworkFileError
        When the file is no safetensors file (corrupted, truncated), or its tensors and
        metadata do not describe a network; the message names the file and the entry.
    ValueError
        For a wrong or missing ``orientation``, or ``activations`` / ``layers`` that are
        malformed or differ from what the file records.
    ImportError
        When the ``safetensors`` package is missing.
    """
    name = os.fspath(path)

    def fail(message: str) -> NetworkFileError:
        return NetworkFileError(f"{name}: {message}")

    metadata, tensors = _read(name, fail)
    if metadata.get("format") == FILE_FORMAT:
        _check_header(metadata, fail)
    else:  # written elsewhere (safetensors.torch writes {"format": "pt"}): no nettrim fields
        metadata = {}
    orientation = _file_orientation(metadata, orientation, name)
    keys = _layer_keys(tensors, fail)
    description = _description(metadata, activations, layers, len(keys), fail)
    positions = [l for l, entry in enumerate(description) if entry.get("kind") in _WEIGHTED]
    if metadata and [index for index, _, _ in keys] != positions:
        raise fail(
            f"the tensors hold weights of layers {[index for index, _, _ in keys]} but the "
            f"metadata's layers have weights at {positions}"
        )
    if len(keys) != len(positions):
        raise fail(f"{len(keys)} weights in the file, but the layers take {len(positions)}")
    stored_dense = {key for key in tensors if key.endswith(".weight")}
    decoded = decode_entries(tensors, metadata.get("sparse"), fail)
    stored = {}
    for l, (_, weight, bias) in zip(positions, keys, strict=True):
        if weight not in decoded:
            raise fail(f"{weight} is missing (layer {l} has no weight)")
        oriented = weight in stored_dense  # sparse parts are always nettrim's orientation
        stored[l] = (weight, decoded[weight], oriented, decoded.get(bias))
    arrays = {
        "format": np.array(FILE_FORMAT),
        "format_version": np.array(FILE_VERSION),
        "layers": np.array(json.dumps(description)),
    }
    if "metadata" in metadata:
        arrays["metadata"] = np.array(metadata["metadata"])
    return _oriented_network(arrays, stored, description, orientation, fail)


def _oriented_network(arrays, stored, description, orientation: str, fail) -> Network:
    """The network of ``stored`` weights read in ``orientation``; when they do not fit, an
    error naming the other orientation if the weights fit that one."""

    def build(orientation: str) -> Network:
        entries = dict(arrays)
        for l, (key, W, oriented, b) in stored.items():
            if oriented:
                W = _from_orientation(key, W, description[l], orientation, fail)
            entries[f"W{l}"] = W
            if b is not None:
                entries[f"b{l}"] = b
        return _network_from_arrays(entries, "")

    try:
        return build(orientation)
    except NetworkFileError as exc:
        problem = str(exc).removeprefix(": ")
        other = "nettrim" if orientation == "torch" else "torch"
        try:
            build(other)
        except NetworkFileError:
            raise fail(problem) from None
        raise fail(
            f"with orientation={orientation!r}, {problem}; the shapes fit orientation={other!r}"
        ) from None


def _from_orientation(key: str, W: np.ndarray, entry: dict, orientation: str, fail):
    """A stored dense weight as nettrim's 2-D matrix; a conv kernel's shape is checked."""
    conv = entry.get("kind") == "conv2d"
    if orientation == "nettrim":
        if conv and W.ndim == 4:
            raise fail(
                f"{key} has shape {W.shape}, a (c_out, c_in, k_h, k_w) kernel; orientation "
                "'nettrim' stores a convolution as its dense (k_h * k_w * c_in, c_out) matrix"
            )
        return W
    if not conv:
        return W.T if W.ndim == 2 else W  # _network_from_arrays names a weight not 2-D
    try:
        expected = (int(entry["in_shape"][0]), *_pair("kernel_size", entry["kernel_size"], low=1))
    except (KeyError, IndexError, TypeError, ValueError):
        return W  # a malformed entry: _network_from_arrays names it
    if W.ndim != 4 or tuple(W.shape[1:]) != tuple(expected):
        raise fail(
            f"{key} has shape {W.shape}; orientation 'torch' stores this convolution's kernel "
            f"as (c_out, c_in, k_h, k_w) = (c_out, {', '.join(map(str, expected))})"
        )
    return conv_weight_to_dense(W)


def _read(name: str, fail) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    from safetensors import safe_open

    if not os.path.isfile(name):
        open(name, "rb").close()  # the usual FileNotFoundError / IsADirectoryError
    try:
        with safe_open(name, framework="numpy") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise fail(f"not a valid safetensors file ({type(exc).__name__}: {exc})") from None
    return metadata, tensors


def _check_orientation(orientation) -> None:
    if orientation not in ORIENTATIONS:
        raise ValueError(
            f"orientation must be 'nettrim' (weights (d_in, d_out)) or 'torch' "
            f"((d_out, d_in)), got {orientation!r}"
        )


def _file_orientation(metadata: dict, orientation: str | None, name: str) -> str:
    stored = metadata.get("orientation")
    if orientation is not None:
        _check_orientation(orientation)
    if stored is not None:
        if stored not in ORIENTATIONS:
            raise NetworkFileError(
                f"{name}: metadata orientation is {stored!r}, not one of {ORIENTATIONS}"
            )
        if orientation is not None and orientation != stored:
            raise ValueError(
                f"orientation={orientation!r}, but {name} records orientation {stored!r} in "
                "its metadata; leave orientation out for files nettrim wrote"
            )
        return stored
    if orientation is None:
        raise ValueError(
            f"{name} does not record its orientation; pass orientation='torch' for PyTorch's "
            "(d_out, d_in) weights (nn.Linear) or 'nettrim' for (d_in, d_out)"
        )
    return orientation


def _check_header(metadata: dict, fail) -> None:
    """The metadata of a file nettrim wrote."""
    unknown = sorted(set(metadata) - set(_META))
    if unknown:
        raise fail(f"unexpected metadata {', '.join(map(repr, unknown))}")
    if "orientation" not in metadata:
        raise fail("metadata has no orientation ('nettrim' or 'torch')")
    if "activations" in metadata and "layers" in metadata:
        raise fail("metadata holds both activations and layers; a file describes its layers once")
    version = metadata.get("format_version", "")
    if not version.isdigit() or not 1 <= int(version) <= FILE_VERSION:
        raise fail(
            f"format_version is {version!r}; this nettrim reads format versions 1 to "
            f"{FILE_VERSION} (was the file written by a newer nettrim?)"
        )


def _layer_keys(tensors: dict, fail) -> list[tuple[int, str, str]]:
    """``(index, weight key, bias key)`` per layer with weights, in the order of the index."""
    prefixes, indices = set(), set()
    for key in tensors:
        match = _KEY.fullmatch(key)
        if not match or (match["part"] and match["kind"] == "bias"):
            raise fail(
                f"unexpected tensor {key!r}; a network file holds layers.{{l}}.weight "
                "(or its sparse parts layers.{l}.weight.{part}) and layers.{l}.bias"
            )
        prefixes.add(match["prefix"])
        indices.add(int(match["index"]))
    if not indices:
        raise fail("no tensors: a network needs at least one layer (layers.0.weight)")
    if len(prefixes) > 1:
        raise fail(f"tensor names mix the prefixes {sorted(prefixes)}; use one")
    (prefix,) = prefixes
    return [(i, f"{prefix}{i}.weight", f"{prefix}{i}.bias") for i in sorted(indices)]


def _description(metadata: dict, activations, layers, n_weights: int, fail) -> list:
    """The file's layers as the ``.npz`` file's ``layers`` list: from the metadata, else
    from ``layers`` or ``activations`` (checked against the metadata where it has them)."""
    if activations is not None and layers is not None:
        raise ValueError("pass activations (a chain of dense layers) or layers, not both")
    if "layers" in metadata:
        try:
            stored = json.loads(metadata["layers"])
        except json.JSONDecodeError as exc:
            raise fail(f"metadata layers is not valid JSON ({exc})") from None
        if not isinstance(stored, list) or not all(isinstance(e, dict) for e in stored):
            raise fail(f"metadata layers must be a JSON list of objects, got {stored!r}")
        kinds = [entry.get("kind") for entry in stored]
        unknown = [kind for kind in kinds if kind not in LAYER_KINDS]
        if unknown:  # before the weights are matched to the layers that take them
            raise fail(f"metadata layers has kind {unknown[0]!r}; known kinds: {list(LAYER_KINDS)}")
        _check_given(
            "activations", activations, [e.get("activation") for e in stored if _weighted(e)]
        )
        _check_given("layers", layers, stored)
        return stored
    if layers is not None and "activations" not in metadata:
        if isinstance(layers, str | bytes) or not all(isinstance(e, dict) for e in layers):
            raise ValueError(f"layers must be a list of dicts (one per layer), got {layers!r}")
        return [dict(entry) for entry in layers]
    names = _activations(metadata, activations, n_weights, fail)
    _check_given("layers", layers, None)
    return [{"kind": "dense", "activation": a} for a in names]


def _weighted(entry: dict) -> bool:
    return entry.get("kind") in _WEIGHTED


def _check_given(what: str, given, stored) -> None:
    if given is not None and (stored is None or list(given) != list(stored)):
        recorded = "other layers" if stored is None else repr(stored)
        raise ValueError(f"{what}={list(given)!r}, but the file records {recorded}")


def _activations(metadata: dict, given, n_layers: int, fail: Callable) -> list[str]:
    if "activations" in metadata:
        try:
            stored = json.loads(metadata["activations"])
        except json.JSONDecodeError:
            stored = None
        if not isinstance(stored, list) or not all(isinstance(a, str) for a in stored):
            raise fail(f"metadata activations must be a JSON list of names, got {stored!r}")
        _check_given("activations", given, stored)
        return stored
    if given is None:
        return ["relu"] * (n_layers - 1) + ["linear"]
    given = list(given)
    bad = [a for a in given if a not in ACTIVATIONS]
    if bad or len(given) != n_layers:
        raise ValueError(f"activations must be {n_layers} names from {ACTIVATIONS}, got {given!r}")
    return given

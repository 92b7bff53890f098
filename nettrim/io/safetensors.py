"""Networks in ``.safetensors`` files (the ``safetensors`` library, its NumPy API).

Key convention, for a network of ``L`` layers:

* ``layers.{l}.weight``: layer ``l``'s weight, ``(d_in, d_out)`` (``orientation="nettrim"``)
  or PyTorch's ``(d_out, d_in)`` (``orientation="torch"``); a weight stored sparse is instead
  ``layers.{l}.weight.{part}`` (``indptr`` / ``indices`` / ``values``, ``mask`` / ``values``
  or ``values`` / ``positions``; see :mod:`nettrim.io.layouts`, whatever the orientation);
* ``layers.{l}.bias``: its bias ``(d_out,)``, absent for a layer without bias;
* the metadata (strings): ``format`` (``"nettrim.network"``), ``format_version``,
  ``activations`` (a JSON list of names), ``orientation`` and, when a weight is sparse,
  ``sparse`` (the JSON layout description of :mod:`nettrim.io.entries`) and, when the
  network has any, ``metadata`` (:attr:`Network.metadata` as JSON: what ``nettrim prune``
  records of the pruning, which ``nettrim verify`` judges with).

Files written elsewhere (``safetensors.torch.save_file(model.state_dict())`` of an
``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``) are read too: keys ``{prefix}{i}.weight``
/ ``{prefix}{i}.bias`` with one common prefix (``"0.weight"``, ``"net.2.weight"``), layers in
the order of ``i`` (gaps allowed), the orientation and activations passed as arguments.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ..network import (
    ACTIVATIONS,
    FILE_FORMAT,
    FILE_VERSION,
    Network,
    NetworkFileError,
    _dense,
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
_META = ("format", "format_version", "activations", "orientation", "sparse", "metadata")


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
    path : str or os.PathLike
    layout : str
        ``"auto"`` (each weight in its layout of fewest bytes), ``"dense"``, ``"csr"``,
        ``"bitmask"`` or ``"N:M"`` such as ``"2:4"``.
    orientation : {"nettrim", "torch"}
        Dense weights as ``(d_in, d_out)`` or as PyTorch's ``(d_out, d_in)``.

    Raises
    ------
    ValueError
        For an unknown layout or orientation, a layout the weights do not satisfy,
        weights :func:`load_safetensors` would refuse, or a network that is not a chain of
        dense layers (save those as ``.npz``).
    ImportError
        When the ``safetensors`` package is missing (``pip install nettrim[safetensors]``).
    """
    from safetensors.numpy import save

    _check_orientation(orientation)
    name = os.fspath(path)
    if not network.is_dense:
        raise ValueError(
            f"cannot save to {name}: a network with convolutions, pooling or flattening is "
            "saved as .npz (network file version 2); .safetensors files hold chains of dense "
            "layers"
        )
    arrays = {"activations": np.array(network.activations, dtype=str)}
    tensors = {}
    for l, layer in enumerate(network.layers):
        arrays[f"W{l}"] = tensors[f"layers.{l}.weight"] = _dense(layer.W)
        if layer.b is not None:
            arrays[f"b{l}"] = tensors[f"layers.{l}.bias"] = layer.b
    _network_from_arrays(arrays, f"cannot save to {name}")  # write only what load reads
    weights = [f"layers.{l}.weight" for l in range(len(network))]
    tensors, description = encode_entries(tensors, weights, layout, entry_bytes=ENTRY_BYTES)
    if orientation == "torch":
        tensors.update({key: tensors[key].T for key in weights if key in tensors})
    metadata = {
        "format": FILE_FORMAT,
        "format_version": str(FILE_VERSION),
        "activations": json.dumps(list(network.activations)),
        "orientation": orientation,
    }
    if description is not None:
        metadata["sparse"] = description
    if network.metadata:
        metadata["metadata"] = json.dumps(dict(network.metadata), allow_nan=False)
    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    write_atomically(name, lambda fh: fh.write(data))


def load_safetensors(
    path: str | os.PathLike,
    *,
    orientation: str | None = None,
    activations: list[str] | None = None,
) -> Network:
    """Read a network from a ``.safetensors`` file (key convention: module docstring).

    Parameters
    ----------
    path : str or os.PathLike
    orientation : {"nettrim", "torch"}, optional
        How the file's dense weights are laid out. Read from the metadata of a file nettrim
        wrote (where a different value here is an error); required for other files. The
        shapes are checked against the chain of layers either way, so a wrong value is an
        error naming the one that fits.
    activations : list of str, optional
        One name per layer, for a file without them in its metadata (default: ReLU, and
        linear for the last layer).

    Raises
    ------
    NetworkFileError
        When the file is no safetensors file (corrupted, truncated), or its tensors and
        metadata do not describe a network; the message names the file and the entry.
    ValueError
        For a wrong or missing ``orientation``.
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
    layers = _layer_keys(tensors, fail)
    stored_dense = {key for key in tensors if key.endswith(".weight")}
    decoded = decode_entries(tensors, metadata.get("sparse"), fail)
    arrays: dict[str, np.ndarray] = {}
    for rank, (weight, bias) in enumerate(layers):
        if weight not in decoded:
            raise fail(f"{weight} is missing (layer {rank} has no weight)")
        W = decoded[weight]
        arrays[f"W{rank}"] = W.T if orientation == "torch" and weight in stored_dense else W
        if bias in decoded:
            arrays[f"b{rank}"] = decoded[bias]
    _check_orientation_fits(arrays, len(layers), orientation, fail)
    arrays["activations"] = np.array(_activations(metadata, activations, len(layers), fail))
    if "metadata" in metadata:
        arrays["metadata"] = np.array(metadata["metadata"])
    return _network_from_arrays(arrays, name)


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
    version = metadata.get("format_version", "")
    if not version.isdigit() or not 1 <= int(version) <= FILE_VERSION:
        raise fail(
            f"format_version is {version!r}; this nettrim reads format versions 1 to "
            f"{FILE_VERSION} (was the file written by a newer nettrim?)"
        )


def _layer_keys(tensors: dict, fail) -> list[tuple[str, str]]:
    """``(weight key, bias key)`` per layer, in the order of the layer index."""
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
    return [(f"{prefix}{i}.weight", f"{prefix}{i}.bias") for i in sorted(indices)]


def _chain_problem(arrays: dict, n_layers: int) -> str | None:
    """What keeps the weights (as read) from chaining into a network, or ``None``."""
    for l in range(n_layers):
        W = arrays[f"W{l}"]
        if W.ndim != 2:
            return f"layer {l}'s weight has shape {W.shape}, not 2-D"
        b = arrays.get(f"b{l}")
        if b is not None and b.shape != (W.shape[1],):
            return f"layer {l}'s weight read as {W.shape} has {W.shape[1]} outputs, bias {b.shape}"
        if l and W.shape[0] != arrays[f"W{l - 1}"].shape[1]:
            return (
                f"layer {l}'s weight read as {W.shape} takes {W.shape[0]} inputs but layer "
                f"{l - 1} gives {arrays[f'W{l - 1}'].shape[1]}"
            )
    return None


def _check_orientation_fits(arrays: dict, n_layers: int, orientation: str, fail) -> None:
    problem = _chain_problem(arrays, n_layers)
    if problem is None:
        return
    flipped = {k: v.T if k.startswith("W") and v.ndim == 2 else v for k, v in arrays.items()}
    other = "nettrim" if orientation == "torch" else "torch"
    hint = (
        f"; the shapes fit orientation={other!r}"
        if _chain_problem(flipped, n_layers) is None
        else ""
    )
    raise fail(f"with orientation={orientation!r}, {problem}{hint}")


def _activations(metadata: dict, given, n_layers: int, fail) -> list[str]:
    if "activations" in metadata:
        try:
            stored = json.loads(metadata["activations"])
        except json.JSONDecodeError:
            stored = None
        if not isinstance(stored, list) or not all(isinstance(a, str) for a in stored):
            raise fail(f"metadata activations must be a JSON list of names, got {stored!r}")
        if given is not None and list(given) != stored:
            raise ValueError(f"activations={list(given)!r}, but the file records {stored!r}")
        return stored
    if given is None:
        return ["relu"] * (n_layers - 1) + ["linear"]
    given = list(given)
    bad = [a for a in given if a not in ACTIVATIONS]
    if bad or len(given) != n_layers:
        raise ValueError(f"activations must be {n_layers} names from {ACTIVATIONS}, got {given!r}")
    return given

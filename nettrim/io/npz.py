"""Sparse layouts in the ``.npz`` network file: the weights' parts as entries
``W{l}.{part}`` and the layout description as the string entry ``sparse``
(:mod:`nettrim.io.entries`); the rest of the file is :mod:`nettrim.network`'s."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import numpy as np

from ..network import NetworkFileError
from .entries import decode_entries, encode_entries

#: The entry that describes the sparse layouts of an ``.npz`` network file.
SPARSE_ENTRY = "sparse"
#: What an ``.npz`` spends on an entry besides its data: the ``.npy`` header (128 bytes) and
#: the zip's local and central headers with the name twice.
ENTRY_BYTES = 240
_WEIGHT = re.compile(r"W(0|[1-9][0-9]*)")


def encode_npz(arrays: Mapping[str, np.ndarray], layout: str) -> dict[str, np.ndarray]:
    """The entries of a network file with its 2-D weights ``W{l}`` in ``layout``."""
    names = [key for key, value in arrays.items() if _WEIGHT.fullmatch(key) and value.ndim == 2]
    out, description = encode_entries(
        arrays, names, layout, entry_bytes=ENTRY_BYTES, channels=_conv_channels(arrays)
    )
    if description is not None:
        out[SPARSE_ENTRY] = np.array(description)
    return out


def _conv_channels(arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """``W{l}`` -> ``c_in`` for every convolution of a version-2 file's ``layers`` list."""
    if "layers" not in arrays:
        return {}
    layers = json.loads(str(arrays["layers"]))
    return {
        f"W{l}": int(entry["in_shape"][0])
        for l, entry in enumerate(layers)
        if entry["kind"] == "conv2d"
    }


def decode_npz(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The entries of a network file with every sparse weight rebuilt dense; a
    :class:`~nettrim.network.NetworkFileError` naming ``source`` and the entry otherwise."""

    def fail(message: str) -> NetworkFileError:
        return NetworkFileError(f"{source}: {message}")

    arrays = dict(arrays)
    description = arrays.pop(SPARSE_ENTRY, None)
    if description is not None:
        if description.shape != () or description.dtype.kind != "U":
            raise fail(
                f"entry {SPARSE_ENTRY!r} must be one string (the JSON layout description), "
                f"got dtype {description.dtype} and shape {description.shape}"
            )
        description = str(description)
    return decode_entries(arrays, description, fail)

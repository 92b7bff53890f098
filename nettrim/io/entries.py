"""Weights in a file's entries: a weight stored in a sparse layout becomes one entry per part,
``{name}.{part}`` (``W0.indptr``, ``W0.indices``, ``W0.values``), and one description of the
layouts, a JSON object::

    {"version": 1, "layouts": {"W0": {"layout": "csr", "shape": [64, 32]}, ...}}

(``shape`` is the weight's ``(d_in, d_out)``; ``version`` is
:data:`~nettrim.io.layouts.LAYOUT_VERSION`). A weight written dense keeps its own entry and is
not described. The ``.npz`` network file holds the description as the string entry
``sparse``; the ``.safetensors`` file as the metadata field ``sparse``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .layouts import LAYOUT_VERSION, check_layout, decode, encode, smallest


def encode_entries(
    arrays: Mapping[str, np.ndarray],
    names: Iterable[str],
    layout: str,
    *,
    entry_bytes: int,
    channels: Mapping[str, int] | None = None,
) -> tuple[dict[str, np.ndarray], str | None]:
    """``arrays`` with each weight in ``names`` stored in ``layout`` (``"auto"``: the
    smallest layout of each weight, counting ``entry_bytes`` per stored array), and the JSON
    description (``None`` when every weight stays dense). ``channels`` maps a convolution's
    weight to its ``c_in`` (N:M groups of input channels, :mod:`nettrim.io.layouts`)."""
    check_layout(layout)
    out = dict(arrays)
    described = {}
    channels = channels or {}
    for name in names:
        W = out.pop(name)
        c_in = channels.get(name)
        try:
            encoded = (
                smallest(W, entry_bytes=entry_bytes, channels=c_in)
                if layout == "auto"
                else encode(W, layout, channels=c_in)
            )
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if encoded.layout == "dense":
            out[name] = W
            continue
        described[name] = {"layout": encoded.layout, "shape": list(encoded.shape)}
        out.update({f"{name}.{part}": value for part, value in encoded.parts.items()})
    if not described:
        return out, None
    return out, json.dumps({"version": LAYOUT_VERSION, "layouts": described})


def decode_entries(
    arrays: Mapping[str, np.ndarray],
    description: str | None,
    fail: Callable[[str], Exception],
) -> dict[str, np.ndarray]:
    """``arrays`` with every weight the JSON ``description`` names rebuilt dense from its
    parts (bit for bit); ``fail(message)`` builds the exception for a malformed description
    or part (the caller adds the file's name)."""
    out = dict(arrays)
    if description is None:
        return out
    layouts = _parse(description, fail)
    for name, entry in layouts.items():
        layout, shape = entry["layout"], tuple(entry["shape"])
        prefix = f"{name}."
        parts = {key[len(prefix) :]: out.pop(key) for key in list(out) if key.startswith(prefix)}
        if name in out:
            raise fail(f"{name} is stored both dense and as {layout!r} parts")
        where = f"{name} ({layout})"
        out[name] = decode(
            layout, shape, parts, lambda message, where=where: fail(f"{where}: {message}")
        )
    return out  # parts of no described weight stay, for the caller's unknown-entry check


def _parse(description: str, fail: Callable[[str], Exception]) -> dict:
    try:
        document = json.loads(description)
    except (json.JSONDecodeError, TypeError) as exc:
        raise fail(f"the sparse layout description is not JSON ({exc})") from None
    if not isinstance(document, dict) or "version" not in document:
        raise fail("the sparse layout description must be a JSON object with a version")
    version = document["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(f"sparse layout version must be a positive integer, got {version!r}")
    if version > LAYOUT_VERSION:
        raise fail(
            f"sparse layout version is {version}; this nettrim reads versions 1 to "
            f"{LAYOUT_VERSION} (was the file written by a newer nettrim?)"
        )
    layouts = document.get("layouts")
    if not isinstance(layouts, dict) or set(document) != {"version", "layouts"}:
        raise fail('the sparse layout description holds exactly "version" and "layouts"')
    for name, entry in layouts.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or set(entry) != {"layout", "shape"}
            or not isinstance(entry["layout"], str)
            or not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        ):
            raise fail(
                f"layout of {name} must be {{'layout': name, 'shape': [d_in, d_out]}} with "
                f"positive integer sizes, got {entry!r}"
            )
    return layouts


def stored_layouts(path: str | os.PathLike) -> list[str]:
    """The layout each layer's weight is stored in, in a network file nettrim wrote
    (``.npz`` or ``.safetensors``), read from the file's description without loading it."""
    name = os.fspath(path)
    if name.lower().endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(name, framework="numpy") as fh:
            metadata = fh.metadata() or {}
        description = metadata.get("sparse")
        # a chain of dense layers records its activations, any other network its layers
        n_layers = len(json.loads(metadata.get("layers") or metadata["activations"]))
        key = "layers.{}.weight"
    else:
        with np.load(name, allow_pickle=False) as archive:
            description = str(archive["sparse"]) if "sparse" in archive.files else None
            # a version-2 file lists its layers; a version-1 file has one activation each
            listed = "layers" in archive.files
            n_layers = len(json.loads(str(archive["layers"])) if listed else archive["activations"])
        key = "W{}"
    layouts = json.loads(description)["layouts"] if description else {}
    return [layouts.get(key.format(l), {"layout": "dense"})["layout"] for l in range(n_layers)]

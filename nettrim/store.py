"""Activation stores: a recording's arrays on disk, memory-mapped, finished atomically.

A store is one directory per recording:

* one ``.npy`` file per module input ``X`` and output ``Y`` (the rows of the module's
  dense program: samples times tokens for a linear module, (sample, output pixel) patch
  rows for a convolution), preallocated with ``np.lib.format.open_memmap`` and written
  batch by batch, so a recording never has to fit in memory;
* ``manifest.json``, written **last** through a temporary file and a rename: format and
  version, every module's name, kind, program (``"relu"`` when the module's only consumer is
  a ReLU, whose output is then the recorded ``Y``), array files, shapes, dtypes and rows,
  and the row layout. A directory without it is an unfinished recording, and
  :func:`open_store` refuses it.

:func:`open_store` returns a :class:`Recording` whose arrays are read-only memory-maps;
:func:`~nettrim.trim_layer`, :func:`~nettrim.prune_layer` and :func:`~nettrim.net_trim`
take them like any array. What a solver then holds in RAM: the ADMM works on the whole
``X`` of one layer (and copies it into its working dtype and scale), so one layer's
``X`` and ``Y`` must fit in memory, but never the whole recording; the L0 methods need only
the Gram matrix ``X~^T X~``, which :class:`~nettrim.GramAccumulator` builds batch by batch
(``record(..., statistics="gram")`` in :mod:`nettrim.torch`), so any calibration size fits.

:func:`network_input` reads a :class:`~nettrim.Network`'s calibration input back from the
store of its modules (``nettrim prune --inputs STORE``; ``docs/cli.md``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .network import write_atomically

STORE_FORMAT = "nettrim.store"
STORE_VERSION = 1
MANIFEST = "manifest.json"
#: Layout words of the manifest: how a module's rows were formed.
LAYOUTS = {
    "linear": "rows are samples (times tokens), padding positions dropped",
    "conv2d": "rows are (sample, output row, output column); columns of X are (kernel row, "
    "kernel column, input channel) patches (nettrim.conv.im2col)",
}


class StoreError(ValueError):
    """A directory that is no finished activation store; the message says why."""


@dataclass
class Recording:
    """Recorded program rows per module, in memory or memory-mapped from a store.

    Attributes
    ----------
    modules : tuple of str
        Module names in forward order.
    X : dict of str to ndarray
        Each module's input rows ``(rows, d_in)``. Empty for a Gram-only recording.
    Y : dict of str to ndarray
        Each module's output rows ``(rows, d_out)`` (the ReLU's output for a ``"relu"``
        module). Empty for a Gram-only recording.
    activation : dict of str to str
        ``"relu"`` (program P1) or ``"linear"`` (P2) per module.
    info : dict of str to dict
        Per module: ``kind`` (``"linear"`` or ``"conv2d"``) and, for a conv, its geometry.
    gram : dict of str to GramAccumulator
        Gram-only recordings: ``X~^T X~`` per module (with the ones column when the module
        has a bias).
    path : str or None
        The store directory (``None`` in memory).
    """

    modules: tuple[str, ...]
    X: dict[str, np.ndarray] = field(default_factory=dict)
    Y: dict[str, np.ndarray] = field(default_factory=dict)
    activation: dict[str, str] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    gram: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)`` of module ``name``."""
        if name not in self.X:
            raise KeyError(f"no recorded arrays for module {name!r}; recorded: {list(self.X)}")
        return self.X[name], self.Y[name]

    @property
    def rows(self) -> dict[str, int]:
        if self.gram:
            return {name: acc.n_samples for name, acc in self.gram.items()}
        return {name: int(self.X[name].shape[0]) for name in self.modules}


class StoreWriter:
    """Writes a store batch by batch: :meth:`allocate` every array, :meth:`write` rows in
    order, :meth:`finish` writes the manifest. Use it as a context manager: an exception
    inside removes the directory, so nothing that looks like a store is left."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if os.path.exists(self.path):
            raise FileExistsError(f"store {self.path} already exists; pass a new directory")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"cannot create store {self.path}: {parent} does not exist")
        os.mkdir(self.path)
        self._arrays: dict[tuple[str, str], np.memmap] = {}
        self._filled: dict[tuple[str, str], int] = {}
        self._files: dict[tuple[str, str], str] = {}

    def allocate(self, module: str, key: str, shape: tuple[int, int], dtype) -> None:
        """Create ``module``'s ``key`` (``"X"`` or ``"Y"``) array of ``shape``."""
        name = f"{len(self._files) // 2:04d}.{key}.npy"
        self._files[module, key] = name
        self._arrays[module, key] = np.lib.format.open_memmap(
            os.path.join(self.path, name), mode="w+", dtype=np.dtype(dtype), shape=tuple(shape)
        )
        self._filled[module, key] = 0

    def allocated(self, module: str, key: str) -> bool:
        return (module, key) in self._arrays

    def write(self, module: str, key: str, rows: np.ndarray) -> None:
        """Append ``rows`` to ``module``'s ``key`` array."""
        array, start = self._arrays[module, key], self._filled[module, key]
        stop = start + rows.shape[0]
        if stop > array.shape[0] or rows.shape[1:] != array.shape[1:]:
            raise ValueError(
                f"module {module!r}: {rows.shape[0]} more rows of shape {rows.shape[1:]} do not "
                f"fit the {array.shape} array ({start} rows written); were the batches "
                "changed between the passes?"
            )
        array[start:stop] = rows
        self._filled[module, key] = stop

    def finish(self, modules: Mapping[str, Mapping[str, Any]]) -> None:
        """Flush every array and write the manifest (``modules``: name -> kind, activation,
        geometry), which makes the store finished."""
        entries = []
        for module, meta in modules.items():
            entry = dict(meta, name=module, layout=LAYOUTS[meta["kind"]])
            for key in ("X", "Y"):
                array = self._arrays[module, key]
                if self._filled[module, key] != array.shape[0]:
                    raise ValueError(
                        f"module {module!r}: {self._filled[module, key]} of {array.shape[0]} "
                        f"{key} rows written; the recording is incomplete"
                    )
                array.flush()
                entry[key] = {
                    "file": self._files[module, key],
                    "shape": list(array.shape),
                    "dtype": array.dtype.str,
                }
            entries.append(entry)
        self._arrays.clear()
        manifest = {"format": STORE_FORMAT, "format_version": STORE_VERSION, "modules": entries}
        text = json.dumps(manifest, indent=1).encode()
        write_atomically(os.path.join(self.path, MANIFEST), lambda fh: fh.write(text))

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:  # unfinished: leave nothing behind
            self._arrays.clear()
            with contextlib.suppress(OSError):
                shutil.rmtree(self.path)


def open_store(path: str | os.PathLike) -> Recording:
    """A finished store as a :class:`Recording` of read-only memory-maps.

    Raises
    ------
    StoreError
        When ``path`` has no manifest (an unfinished or interrupted recording), a manifest
        of another format or an unknown version, or arrays that do not match it.
    """
    path = os.fspath(path)
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isdir(path):
        raise StoreError(f"{path}: not a directory; an activation store is a directory")
    if not os.path.exists(manifest_path):
        raise StoreError(
            f"{path}: no {MANIFEST}; the recording is unfinished (interrupted or still running)"
        )
    with open(manifest_path, encoding="utf-8") as fh:
        try:
            manifest = json.load(fh)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{manifest_path}: format is not {STORE_FORMAT!r}")
    version = manifest.get("format_version")
    if version != STORE_VERSION:
        raise StoreError(
            f"{manifest_path}: format_version {version!r}; this nettrim reads version "
            f"{STORE_VERSION} (written by a newer nettrim?)"
        )
    rec = Recording(modules=tuple(entry["name"] for entry in manifest["modules"]), path=path)
    for entry in manifest["modules"]:
        name = entry["name"]
        for key in ("X", "Y"):
            spec = entry[key]
            array = np.load(os.path.join(path, spec["file"]), mmap_mode="r", allow_pickle=False)
            if list(array.shape) != spec["shape"] or array.dtype.str != spec["dtype"]:
                raise StoreError(
                    f"{path}: {spec['file']} holds {array.dtype} {array.shape}, the manifest "
                    f"says {spec['dtype']} {tuple(spec['shape'])}"
                )
            getattr(rec, key)[name] = array
        rec.activation[name] = entry["activation"]
        rec.info[name] = {k: v for k, v in entry.items() if k not in ("X", "Y", "name")}
    return rec


def input_files(path: str | os.PathLike) -> list[str]:
    """The files :func:`network_input` reads from the store at ``path``: its manifest and
    the first module's input rows (the identity of a run's inputs: the other modules'
    arrays may be gigabytes a network's pruning never reads).

    Raises
    ------
    StoreError
        When ``path`` has no readable manifest or it lists no module.
    """
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as fh:
            first = json.load(fh)["modules"][0]["X"]["file"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise StoreError(f"{path}: cannot be read as an activation store ({exc})") from None
    return [manifest_path, os.path.join(path, first)]


def network_input(recording: Recording, network) -> np.ndarray:
    """The calibration input of ``network`` read back from a recording of its modules.

    The recording must hold one module per layer with weights of ``network``, in order,
    with the same kinds, shapes, programs (``"relu"`` / ``"linear"``) and convolution
    geometry (the store :func:`nettrim.torch.export` writes beside its network file).
    The input is the first module's recorded input: for a dense first layer its rows
    themselves (the memory-map, not a copy); for a convolution, the NCHW images its patch
    rows were cut from, every pixel copied back from a patch that holds it. A pixel that no
    patch reads (possible with a stride larger than the kernel) is set to 0: it changes
    no output of the network, so the forward pass and every program's rows are the
    recorded images' exactly.

    Raises
    ------
    StoreError
        When the recording does not match ``network`` (the message names the module and
        what differs) or holds Gram statistics only.
    """
    where = recording.path or "the recording"
    if not recording.X:
        raise StoreError(f"{where} holds Gram statistics only; the inputs need recorded rows")
    positions = network.prunable
    if len(recording.modules) != len(positions):
        raise StoreError(
            f"{where} records {len(recording.modules)} modules but the network has "
            f"{len(positions)} layers with weights; use the store written with its network"
        )
    if positions[0] != 0:
        raise StoreError("the network must start with a dense or conv layer to be fed a store")
    for name, l in zip(recording.modules, positions, strict=True):
        _check_module(recording, name, network[l], l, where)
    first, layer = recording.modules[0], network[0]
    X = recording.X[first]
    if not hasattr(layer, "in_shape"):
        return X
    n, rest = divmod(X.shape[0], math.prod(layer.out_hw))
    if rest:
        raise StoreError(
            f"{where}: module {first!r} has {X.shape[0]} patch rows, not a multiple of the "
            f"{math.prod(layer.out_hw)} output pixels of its convolution"
        )
    return _images_from_patches(X, n, layer)


def _check_module(recording: Recording, name: str, layer, l: int, where: str) -> None:
    """Module ``name``'s recording is the program of network layer ``l``."""
    info, (X, Y) = recording.info[name], recording[name]
    kind = "conv2d" if hasattr(layer, "in_shape") else "linear"
    problems = []
    if info.get("kind") != kind:
        problems.append(f"it is a {info.get('kind')} module, the layer a {kind} one")
    elif kind == "conv2d":
        for key in ("kernel_size", "stride", "padding", "dilation"):
            if tuple(info.get(key, ())) != tuple(getattr(layer, key)):
                problems.append(f"{key} {tuple(info.get(key, ()))} != {getattr(layer, key)}")
    if (X.shape[1], Y.shape[1]) != layer.W.shape:
        problems.append(f"its program is {X.shape[1]}x{Y.shape[1]}, the layer's {layer.W.shape}")
    if recording.activation[name] != layer.activation:
        problems.append(
            f"its program is {recording.activation[name]!r}, the layer's {layer.activation!r}"
        )
    if problems:
        raise StoreError(
            f"{where}: module {name!r} does not match network layer {l}: " + "; ".join(problems)
        )


def _images_from_patches(P: np.ndarray, n: int, layer) -> np.ndarray:
    """The NCHW images whose :func:`~nettrim.conv.im2col` patches are ``P`` (pixels no
    patch reads left 0); one kernel tap at a time, so ``P`` is read in slices."""
    c, h, w = layer.in_shape
    (k_h, k_w), (s_h, s_w) = layer.kernel_size, layer.stride
    (p_h, p_w), (d_h, d_w) = layer.padding, layer.dilation
    h_out, w_out = layer.out_hw
    taps = P.reshape(n, h_out, w_out, k_h, k_w, c)
    images = np.zeros((n, c, h + 2 * p_h, w + 2 * p_w), dtype=P.dtype)
    for a in range(k_h):
        for b in range(k_w):
            rows = slice(a * d_h, a * d_h + (h_out - 1) * s_h + 1, s_h)
            cols = slice(b * d_w, b * d_w + (w_out - 1) * s_w + 1, s_w)
            images[:, :, rows, cols] = taps[:, :, :, a, b, :].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images[:, :, p_h : p_h + h, p_w : p_w + w])

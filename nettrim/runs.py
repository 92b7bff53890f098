"""Resumable runs: a directory that records each finished layer of a network run.

``nettrim prune --run-dir DIR`` (or any caller of :func:`~nettrim.net_trim` /
:func:`~nettrim.prune_network`) keeps there:

* ``run.json`` — what the run is: the command's options and the SHA-256 of every input
  file. A run directory belongs to one command: another command (other options, other
  files) is refused with a :class:`RunDirectoryError` that names what differs.
* ``layer{l}.npz`` and ``layer{l}.json`` per finished layer — its weights and bias
  (``allow_pickle=False``) and its figures (status, solver, residual, iterations, ...).
  Both are written atomically (a temporary file renamed over the name) and the JSON last,
  so a layer counts as finished only once both are whole: a run killed at any moment
  (SIGKILL included) leaves only finished layers behind.

Rerunning the same command reads the finished layers back (:meth:`RunDirectory.finished`)
and passes them as ``resume=``; the run then solves only the rest, and its output is the
uninterrupted run's bit for bit (weights round-trip exactly through ``.npy``, floats through
JSON's shortest repr).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .layer import LayerResult
from .network import write_atomically
from .progress import ProgressEvent
from .solvers import SolveInfo, Status
from .solvers.result import L0Info

RUN_FILE = "run.json"
RUN_FORMAT = "nettrim.run"
_INFO_TYPES = {"SolveInfo": SolveInfo, "L0Info": L0Info}


class RunDirectoryError(ValueError):
    """The run directory belongs to another command, or cannot be used."""


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_digest(paths) -> str:
    """The SHA-256 of several files: of their base names and digests, one line each."""
    lines = [f"{os.path.basename(p)} {file_digest(p)}" for p in paths]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class RunDirectory:
    """The record of one run's finished layers (module docstring).

    Parameters
    ----------
    path : str
        The directory (created when missing; its parent must exist).
    command : dict
        What identifies the run: options and input digests, plain JSON data. A directory
        that records another command raises :class:`RunDirectoryError`.

    Examples
    --------
    >>> import tempfile
    >>> run = RunDirectory(tempfile.mkdtemp() + "/run", {"eps": 0.05})
    >>> run.finished()
    {}
    """

    def __init__(self, path: str | os.PathLike, command: Mapping[str, Any]) -> None:
        self.path = os.fspath(path)
        self.command = json.loads(json.dumps(dict(command)))  # plain, comparable data
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise RunDirectoryError(f"run directory {self.path}: {parent} does not exist")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(f"run directory {self.path} is a file; give a directory")
        os.makedirs(self.path, exist_ok=True)
        manifest = os.path.join(self.path, RUN_FILE)
        if os.path.exists(manifest):
            self._check_same(manifest)
        elif any(name.startswith("layer") for name in os.listdir(self.path)):
            raise RunDirectoryError(
                f"run directory {self.path} holds layer files but no {RUN_FILE}; "
                "give an empty or new directory"
            )
        else:
            self._write_json(RUN_FILE, {"format": RUN_FORMAT, "command": self.command})

    def _check_same(self, manifest: str) -> None:
        try:
            with open(manifest, encoding="utf-8") as fh:
                recorded = json.load(fh)["command"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDirectoryError(f"{manifest} cannot be read ({exc})") from None
        if recorded == self.command:
            return
        keys = sorted(set(recorded) | set(self.command))
        differ = [k for k in keys if recorded.get(k) != self.command.get(k)]
        shown = "; ".join(
            f"{k}: recorded {recorded.get(k)!r}, now {self.command.get(k)!r}" for k in differ[:4]
        )
        raise RunDirectoryError(
            f"run directory {self.path} records a different command ({shown}); rerun the "
            "recorded command to resume it, or give another --run-dir"
        )

    def finished(self) -> dict[int, LayerResult]:
        """``{layer: LayerResult}`` of every layer recorded whole."""
        done = {}
        for name in sorted(os.listdir(self.path)):
            if name.startswith("layer") and name.endswith(".json"):
                l = int(name[len("layer") : -len(".json")])
                done[l] = self._read_layer(l)
        return done

    def record(self, layer: int, result: LayerResult) -> None:
        """Write one finished layer: its arrays, then (last) its figures."""
        arrays = {"W": result.W} | ({} if result.b is None else {"b": result.b})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomically(self._file(layer, "npz"), lambda fh: fh.write(buffer.getvalue()))
        info = {
            f.name: _plain(getattr(result.info, f.name)) for f in dataclasses.fields(result.info)
        }
        figures = {
            "status": result.status.value,
            "program": result.program,
            "info_type": type(result.info).__name__,
            "info": info,
        }
        self._write_json(os.path.basename(self._file(layer, "json")), figures)

    def __call__(self, event: ProgressEvent) -> None:
        """As a progress callback: record every layer that was solved (not resumed)."""
        if event.kind == "layer" and not event.resumed:
            self.record(event.layer, event.result)

    def _read_layer(self, layer: int) -> LayerResult:
        try:
            with open(self._file(layer, "json"), encoding="utf-8") as fh:
                figures = json.load(fh)
            with np.load(self._file(layer, "npz"), allow_pickle=False) as arrays:
                W, b = arrays["W"], (arrays["b"] if "b" in arrays.files else None)
            info_type = _INFO_TYPES[figures["info_type"]]
            info = info_type(**figures["info"])
            return LayerResult(
                W=W, b=b, status=Status(figures["status"]), info=info, program=figures["program"]
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDirectoryError(
                f"{self._file(layer, 'json')}: layer {layer}'s record cannot be read ({exc}); "
                "delete the run directory to start over"
            ) from None

    def _file(self, layer: int, ext: str) -> str:
        return os.path.join(self.path, f"layer{layer}.{ext}")

    def _write_json(self, name: str, document: dict) -> None:
        text = json.dumps(document, indent=1, allow_nan=True)
        write_atomically(os.path.join(self.path, name), lambda fh: fh.write(text.encode()))


def _plain(value):
    """JSON data for a figure; arrays as lists, a non-finite float kept (Python's JSON
    reads NaN and Infinity back)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return value

"""Figures of the benchmark results: matplotlib with the Agg backend, PNG beside the JSON.

A suite draws its figures in a ``plot(payload, stem)`` function from what its results JSON
holds, so ``python -m benchmarks --plots`` redraws every figure without solving anything.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot's import
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from machine import RESULTS_DIR, write_atomic

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "font.size": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 9,
        "legend.framealpha": 0.9,
    }
)


def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 5.2, height: float = 4.0):
    """A figure of ``nrows x ncols`` panels of ``width x height`` inches; returns
    ``(figure, flat list of axes)``."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, list(axes.ravel())


def save(fig, name: str) -> Path:
    """Write ``fig`` to ``results/<name>.png`` (atomically, no timestamp in the file) and
    close it."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    path = RESULTS_DIR / f"{name}.png"
    write_atomic(path, buffer.getvalue())
    return path


def log_axis(ax, which: str = "x") -> None:
    """Log scale on ``which`` ("x", "y" or "xy") with ticks written as plain numbers: at 1, 2,
    3 and 5 times powers of ten on a short range, fewer on a long one (matplotlib's default
    crowds short ranges with ``4 x 10^-2``). Call it after plotting: it reads the limits."""
    for name in which:
        axis = ax.xaxis if name == "x" else ax.yaxis
        (ax.set_xscale if name == "x" else ax.set_yscale)("log")
        low, high = ax.get_xlim() if name == "x" else ax.get_ylim()
        decades = math.log10(high / low)
        subs = (1.0, 2.0, 3.0, 5.0) if decades < 1.5 else (1.0, 3.0) if decades < 3 else (1.0,)
        axis.set_major_locator(LogLocator(subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())

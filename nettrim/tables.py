"""The per-layer table ``nettrim prune`` (every method) and ``nettrim demo`` print: one
layout, so the same figures read the same wherever they appear."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: (heading, width) of each column, in order.
COLUMNS = (
    ("layer", 5),
    ("shape", 11),
    ("nnz before", 10),
    ("nnz after", 9),
    ("sparsity", 8),
    ("discrep.", 9),
    ("eps", 9),
    ("budget", 10),
    ("status", 10),
    ("seconds", 8),
)


def _number(value: Any) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
    )


def format_columns(columns: Sequence[tuple], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The header and one line per row. A column is ``(heading, width)``, its cells
    right-aligned, or ``(heading, width, "<")``, left-aligned (names)."""

    def line(cells: Sequence[Any]) -> str:
        pairs = zip(cells, columns, strict=True)
        return " ".join(f"{cell!s:{(col[2:] or ('>',))[0]}{col[1]}}" for cell, col in pairs)

    return [line([col[0] for col in columns]), *(line(row) for row in rows)]


def format_layer_table(title: str, rows: Sequence[Mapping[str, Any]], footer: Sequence[str]) -> str:
    """``title``, a blank line, the table, a blank line, the ``footer`` lines.

    Each row holds ``layer``, ``shape`` (``[d_in, d_out]``), ``nnz_before``, ``nnz_after``,
    ``sparsity`` (the fraction of weights that are zero), ``relative_residual`` (the
    discrepancy, relative), ``eps`` (its budget, relative; NaN for none), ``budget`` (the
    verdict, or ``"-"``), ``status`` and ``seconds``.
    """
    cells = [
        (
            row["layer"],
            "x".join(map(str, row["shape"])),
            row["nnz_before"],
            row["nnz_after"],
            f"{row['sparsity']:.1%}",
            _number(row["relative_residual"]),
            _number(row["eps"]),
            row["budget"],
            row["status"],
            f"{row['seconds']:.2f}",
        )
        for row in rows
    ]
    return "\n".join([title, "", *format_columns(COLUMNS, cells), "", *footer])

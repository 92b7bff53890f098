"""``nettrim report``: PNG plots and one self-contained HTML page from a JSON report.

Reads what ``nettrim prune --json`` writes (per-layer figures and the verification) or what
``nettrim sweep --json`` writes (the points), and draws with matplotlib's Agg backend (no
display needed):

* a prune report — ``layers.png``: each layer's sparsity, and its realized discrepancy
  against its budget (both relative to ``||Y^(l)||_F``); ``bounds.png``: the network's
  discrepancy against each bound ``nettrim verify`` checked (Theorems 1-2, the bounds for
  any network), marked by whether the bound's assumption holds; ``gap.png``: the ADMM's
  certified duality gap per layer, relative to the objective, where the report has one;
* a sweep — ``sweep.png``: sparsity against the network's discrepancy, and against accuracy
  when the sweep had labels.

``index.html`` holds the same plots as base64 ``data:`` images and the tables as HTML, so it
opens anywhere, offline, as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

#: Matplotlib settings of every figure: readable at the page's width.
_STYLE = {"figure.dpi": 110, "font.size": 11, "axes.titlesize": 12, "axes.grid": True}
_HELD, _FAILED, _NOT_APPLICABLE = "#2a7ab0", "#c0392b", "#9aa0a6"


def write_report(
    document: Mapping[str, Any], out: str | os.PathLike, *, source: str = ""
) -> list[str]:
    """Write the PNGs and ``index.html`` for ``document`` into ``out`` (created); return
    the paths written. A ValueError when ``document`` is neither a prune nor a sweep report."""
    kind = _kind(document, source)
    out = os.fspath(out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ValueError(f"--out {out}: directory {parent} does not exist")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; give a directory")
    os.makedirs(out, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    figures = _prune_figures(document) if kind == "prune" else _sweep_figures(document)
    written, images = [], []
    for name, (title, figure) in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        _close(figure)
        data = buffer.getvalue()
        path = os.path.join(out, f"{name}.png")
        _write(path, data)
        written.append(path)
        images.append((title, base64.b64encode(data).decode("ascii")))
    page = os.path.join(out, "index.html")
    _write(page, _page(document, kind, images, source).encode("utf-8"))
    return [*written, page]


def _kind(document: Mapping[str, Any], source: str) -> str:
    if not isinstance(document, Mapping):
        raise ValueError(f"{source or 'the report'} is not a JSON object")
    if document.get("command") == "sweep" and isinstance(document.get("points"), list):
        return "sweep"
    if document.get("command") == "prune" and isinstance(document.get("layers"), list):
        return "prune"
    raise ValueError(
        f"{source or 'the report'} is neither a prune report (nettrim prune --json) nor a "
        "sweep (nettrim sweep --json)"
    )


def _write(path: str, data: bytes) -> None:
    from .network import write_atomically

    write_atomically(path, lambda fh: fh.write(data))


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _prune_figures(document: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    import matplotlib.pyplot as plt

    rows = document["layers"]
    labels = [f"{r['layer']}\n{'x'.join(map(str, r['shape']))}" for r in rows]
    x = range(len(rows))
    figures = {}
    with plt.rc_context(_STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        left.bar(x, [100 * r["sparsity"] for r in rows], color=_HELD)
        left.set(title="sparsity per layer", ylabel="weights removed (%)", ylim=(0, 100))
        for i, r in enumerate(rows):
            left.annotate(
                f"{r['sparsity']:.1%}",
                (i, 100 * r["sparsity"]),
                ha="center",
                va="bottom",
                fontsize=9,
            )
        width = 0.38
        realized = [_number(r.get("relative_residual")) for r in rows]
        budget = [_number(r.get("eps")) for r in rows]
        right.bar([i - width / 2 for i in x], realized, width, color=_HELD, label="realized")
        if not all(math.isnan(b) for b in budget):
            right.bar(
                [i + width / 2 for i in x], budget, width, color=_NOT_APPLICABLE, label="budget eps"
            )
        right.set(title="layer discrepancy (relative to ||Y||_F)", ylabel="relative discrepancy")
        top = max((v for v in realized + budget if not math.isnan(v)), default=1.0)
        right.set_ylim(0, 1.3 * top if top > 0 else 1.0)  # room for the legend above the bars
        right.legend(loc="upper center", ncols=2)
        for axis in (left, right):
            axis.set_xticks(list(x), labels)
            axis.set_xlabel("layer")
        fig.tight_layout()
        figures["layers"] = ("Per layer: sparsity, and discrepancy against budget", fig)
        bounds = _bound_checks(document)
        if bounds:
            figures["bounds"] = ("Network discrepancy against its bounds", _bounds_figure(bounds))
        gaps = [(r["layer"], r.get("gap"), r.get("dual_bound")) for r in rows]
        gaps = [(l, g, d) for l, g, d in gaps if g is not None and d]
        if gaps:
            figures["gap"] = ("Certified duality gap per layer", _gap_figure(gaps))
    return figures


def _bound_checks(document: Mapping[str, Any]) -> list[dict]:
    """The verification's network-level checks (not the per-layer budgets)."""
    checks = (document.get("verify") or {}).get("checks") or []
    return [
        c
        for c in checks
        if c.get("bound") is not None and ("Theorem" in c["name"] or "any network" in c["name"])
    ]


def _bounds_figure(checks: Sequence[dict]):
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 0.9 + 0.62 * len(checks)))
    y = range(len(checks))
    colors = [
        (_HELD if c["holds"] else _FAILED) if c["assumption_holds"] else _NOT_APPLICABLE
        for c in checks
    ]
    axis.barh(list(y), [c["bound"] for c in checks], color=colors, alpha=0.55, label="bound")
    axis.scatter(
        [c["realized"] for c in checks],
        list(y),
        color="black",
        zorder=3,
        marker="D",
        label="realized D_L",
    )
    axis.set_yticks(list(y), [_short(c["name"]) for c in checks])
    axis.invert_yaxis()
    axis.set(
        xlabel="||f_pruned(X) - f(X)||_F (absolute)",
        title="network discrepancy D_L against each bound (grey: assumption does not hold)",
    )
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _short(name: str, width: int = 64) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _gap_figure(gaps):
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 3.6))
    relative = [max(abs(g) / abs(d), 1e-16) for _, g, d in gaps]
    layers = [l for l, _, _ in gaps]
    axis.vlines(layers, min(relative) / 10, relative, color=_HELD, linewidth=3)
    axis.scatter(layers, relative, color=_HELD, zorder=3)
    for l, r in zip(layers, relative, strict=True):
        axis.annotate(f"{r:.2g}", (l, r), textcoords="offset points", xytext=(8, 0), va="center")
    axis.set_xticks(layers)
    axis.set_yscale("log")
    axis.set(
        xlabel="layer",
        ylabel="gap / dual bound",
        title="the ADMM's certified duality gap at its last iterate (relative)",
    )
    fig.tight_layout()
    return fig


def _sweep_figures(document: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    import matplotlib.pyplot as plt

    points = document["points"]
    sparsity = [100 * p["sparsity"] for p in points]
    accuracy = [p.get("accuracy") for p in points]
    with_accuracy = any(a is not None for a in accuracy)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            1, 2 if with_accuracy else 1, figsize=(11 if with_accuracy else 6.5, 4.2), squeeze=False
        )
        left = axes[0][0]
        left.plot(sparsity, [p["discrepancy"] for p in points], "o-", color=_HELD)
        for p, s in zip(points, sparsity, strict=True):
            left.annotate(
                f"{document['parameter']}={p['value']:g}",
                (s, p["discrepancy"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=9,
            )
        left.set(
            xlabel="sparsity (% of weights removed)",
            ylabel="relative output discrepancy",
            title="discrepancy against sparsity",
        )
        if with_accuracy:
            right = axes[0][1]
            right.plot(sparsity, accuracy, "o-", color=_HELD, label="pruned")
            before = document.get("accuracy_before")
            if before is not None:
                right.axhline(before, color=_NOT_APPLICABLE, linestyle="--", label="before")
            right.set(
                xlabel="sparsity (% of weights removed)",
                ylabel="accuracy",
                title="accuracy against sparsity",
            )
            right.legend()
        fig.tight_layout()
    return {"sweep": (f"Sweep of {document['parameter']} ({document['method']})", fig)}


def _page(document: Mapping[str, Any], kind: str, images, source: str) -> str:
    esc = html.escape
    title = f"nettrim {kind} report" + (f" — {source}" if source else "")
    facts = _facts(document, kind)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1150px;margin:24px auto;"
        "padding:0 16px;color:#222}h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
        "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}th{background:#f2f4f7}img{max-width:100%;"
        "border:1px solid #eee}dl{display:grid;grid-template-columns:max-content auto;"
        "gap:4px 16px;font-size:14px}dt{font-weight:600}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>",
    ]
    for heading, data in images:
        parts.append(f"<h2>{esc(heading)}</h2>")
        parts.append(f'<img alt="{esc(heading)}" src="data:image/png;base64,{data}">')
    parts.append(f"<h2>{'Layers' if kind == 'prune' else 'Points'}</h2>")
    parts.append(_table(document, kind))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _facts(document: Mapping[str, Any], kind: str) -> list[tuple[str, str]]:
    if kind == "sweep":
        before = document.get("accuracy_before")
        return [
            ("network", str(document.get("network", "-"))),
            ("method", str(document.get("method"))),
            (
                "grid",
                f"{document['parameter']}: "
                + ", ".join(f"{p['value']:g}" for p in document["points"]),
            ),
            ("accuracy before pruning", "-" if before is None else f"{before:.4f}"),
        ]
    verify = document.get("verify") or {}
    facts = [
        ("network", str(document.get("network", "-"))),
        ("scheme", str(document.get("scheme", document.get("options", {}).get("scheme", "-")))),
        (
            "weights kept",
            f"{document['nnz_after']} of {document['size']} "
            f"({document['nnz_after'] / document['size']:.1%})",
        ),
        ("relative output discrepancy", f"{_number(document.get('relative_discrepancy')):.4g}"),
        ("seconds", f"{_number(document.get('seconds')):.1f}"),
    ]
    if verify:
        facts.append(("nettrim verify", "OK" if verify.get("success") else "FAILED"))
    return facts


def _table(document: Mapping[str, Any], kind: str) -> str:
    if kind == "sweep":
        columns = ("value", "sparsity", "nnz", "discrepancy", "accuracy", "success", "seconds")
        rows = document["points"]
    else:
        columns = (
            "layer",
            "shape",
            "nnz_before",
            "nnz_after",
            "sparsity",
            "relative_residual",
            "eps",
            "budget",
            "status",
            "seconds",
        )
        rows = document["layers"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c), c))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value, column: str) -> str:
    if value is None:
        return "-"
    if column == "shape":
        return "x".join(map(str, value))
    if column == "sparsity":
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

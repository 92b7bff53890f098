"""Every measured figure the docs quote comes from a file under ``benchmarks/results/``.

A figure is a number with a unit a measurement carries: a ratio (``27.8x``), a share
(``73.9%``), a time (``20.9 s``, ``1.1 ms``), a size (``3.2 GiB``) or accuracy points
(``0.47 points``). Each one in the prose of ``docs/`` and of README.md must be a number of a
results table that ``python -m benchmarks`` regenerates, rounded to the figure's own
precision (tables print ``20.90`` where prose says ``20.9 s``, ``0.739`` or ``73.9%`` where
it says ``73.9%``, ``-0.47`` where it says ``0.47 points``), so a rerun that changes a figure
makes this test fail until the prose says the same (or includes the table through
``<!-- results: NAME.md -->``). The match is by value, so a figure could be matched by an
unrelated number of the same value: the check catches stale and invented figures, not a
figure quoted from the wrong row. Code blocks and inline code are left out (they show
commands, formulas and outputs of examples, not benchmark figures), as is README's generated
results table (checked against the JSON by ``test_readme_results.py``). Counts without a unit
(iterations, samples) are not checked.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FIGURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(x|%| s| ms| GiB| MiB| points?| pts?)(?!\w)")
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.MULTILINE | re.DOTALL)
GENERATED = re.compile(r"<!-- results table: generated.*?<!-- end of results table -->", re.DOTALL)
#: Figures that are settings or definitions, not measurements: page -> {figure: why}.
NOT_MEASURED = {
    "files.md": {
        "60%": "a sparsity the crossover table is evaluated at (an input, not a result)",
        "80%": "a sparsity the crossover table is evaluated at",
        "99%": "a sparsity the crossover table is evaluated at",
    },
}
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?")


@functools.cache
def _results_numbers() -> frozenset[str]:
    """Every number of the results tables, rounded to 0-4 decimals, also as a percentage."""
    values = {
        float(m.group(0))
        for path in sorted(RESULTS.glob("*.md"))
        for m in NUMBER.finditer(path.read_text())
    }
    shown = set()
    for value in values:
        for digits in range(5):
            shown.add(f"{value:.{digits}f}")
            if value <= 1.0:
                shown.add(f"{100 * value:.{digits}f}")
    return frozenset(shown)


def _prose(text: str) -> str:
    return GENERATED.sub("", CODE.sub("", text))


def _unsourced(page: Path, results: frozenset[str]) -> list[str]:
    allowed = NOT_MEASURED.get(page.name, {})
    return [
        m.group(0)
        for m in FIGURE.finditer(_prose(page.read_text()))
        if m.group(0) not in allowed and m.group(1) not in results
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_figure_is_in_the_results(page):
    missing = _unsourced(page, _results_numbers())
    assert not missing, (
        f"{page.relative_to(ROOT)} quotes figures no file under benchmarks/results/ holds: "
        f"{missing}; rerun the benchmark and quote what it wrote, or include its table"
    )


def test_the_check_fails_on_a_figure_from_nowhere(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("The solver is 12345.6x faster, `99.9x` inline.\n\n```\n999.9x in code\n```\n")
    assert _unsourced(page, _results_numbers()) == ["12345.6x"]

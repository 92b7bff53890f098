"""README.md's results table against the benchmark results it is generated from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme  # noqa: E402  (benchmarks/ is not a package: its modules import each other)


def _table_rows() -> dict[str, list[str]]:
    """The README table's rows, keyed by their first cell."""
    block = readme.readme_block((ROOT / "README.md").read_text())
    rows = [line.strip("|").split(" | ") for line in block.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_readme_table_is_what_the_results_give():
    """Fails when a results JSON changed and `python -m benchmarks --readme` was not run."""
    text = (ROOT / "README.md").read_text()
    assert readme.readme_block(text) == readme.results_block(), (
        "README.md's results table is stale: run `python -m benchmarks --readme`"
    )


def test_every_row_names_a_results_file_that_exists():
    rows = _table_rows()
    assert len(rows) >= 6
    for name, (_, source) in rows.items():
        assert (RESULTS / source.strip("`")).is_file(), name


def test_figures_read_back_from_the_json():
    """A few cells checked against the JSON directly, not through the generator."""
    rows = _table_rows()
    parallel = json.loads((RESULTS / "parallel.json").read_text())
    assert (
        f"{parallel['speedup_2_workers']:.2f}x"
        in rows["Parallel scheme: 2 worker processes over 1"][0]
    )
    network = json.loads((RESULTS / "network.json").read_text())
    chosen = network["target1_chosen"]
    cell = rows["MNIST 784-300-100-10, setting chosen on a validation split"][0]
    assert f"{100 * chosen['removed']:.1f}% of weights removed" in cell
    assert f"{chosen['accuracy_drop_points']:.2f} points" in cell
    admm = json.loads((RESULTS / "admm.json").read_text())
    speedups = sorted(r["speedup"] for r in admm["digits"])
    cell = rows["Net-Trim layer solve: ADMM vs Clarabel, digits hidden layers (eps 0.05)"][0]
    assert cell.startswith(f"{speedups[0]:.0f}x to {speedups[-1]:.0f}x faster")


def test_update_rewrites_only_the_block(tmp_path, monkeypatch):
    stale = f"intro\n\n{readme.BEGIN}\n| old | table |\n{readme.END}\n\nafter\n"
    path = tmp_path / "README.md"
    path.write_text(stale)
    assert readme.update_readme(path)
    text = path.read_text()
    assert text.startswith("intro\n\n") and text.endswith("\n\nafter\n")
    assert readme.readme_block(text) == readme.results_block()
    assert not readme.update_readme(path)


def test_missing_markers_are_an_error(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("no table here\n")
    with pytest.raises(ValueError, match="markers"):
        readme.update_readme(path)

"""MkDocs hooks: the benchmark results in the site without copies under ``docs/``.

* Figures: ``benchmarks/results/*.png`` are published as ``results/<name>.png``.
* Tables: a line ``<!-- results: NAME.md -->`` in a page is replaced by
  ``benchmarks/results/NAME.md`` with its headings moved down two levels (its ``#`` title
  becomes a ``###`` under the page's section). A missing file stops the build.

``python -m benchmarks`` writes both; the site shows whatever the last run wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"
RESULTS = BENCHMARKS / "results"
INCLUDE = re.compile(r"^<!-- results: (?P<name>[\w.-]+\.md) -->$", re.MULTILINE)
#: Heading levels added to an included file's headings.
DEMOTE = 2


def on_files(files, config):
    for figure in sorted(RESULTS.glob("*.png")):
        files.append(
            File(
                f"results/{figure.name}",
                src_dir=str(BENCHMARKS),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def _included(match: re.Match) -> str:
    path = RESULTS / match["name"]
    if not path.is_file():
        raise PluginError(f"results include: {path} does not exist (run python -m benchmarks)")
    text = path.read_text()
    return re.sub(r"^(#+) ", lambda h: "#" * (len(h[1]) + DEMOTE) + " ", text, flags=re.MULTILINE)


def on_page_markdown(markdown, page, config, files):
    return INCLUDE.sub(_included, markdown)

"""MkDocs hook: publish the benchmark figures (``benchmarks/results/*.png``) under ``results/``.

The figures live beside the JSON they are drawn from (``python -m benchmarks`` writes both);
``docs/benchmarks.md`` shows them as ``results/<name>.png`` without a copy under ``docs/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"


def on_files(files, config):
    for figure in sorted((BENCHMARKS / "results").glob("*.png")):
        files.append(
            File(
                f"results/{figure.name}",
                src_dir=str(BENCHMARKS),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files

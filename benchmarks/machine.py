"""What every benchmark prints and records about the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    """Cores, BLAS (via threadpoolctl) and library versions."""
    import numba
    import numpy as np
    import scipy
    from threadpoolctl import threadpool_info

    blas = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads, "
        f"{p.get('architecture')})"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "blas": blas,
    }


def format_machine(info: dict) -> str:
    return (
        f"machine: {info['cores']} cores {info['machine']}, Python {info['python']}, "
        f"numpy {info['numpy']}, scipy {info['scipy']}, numba {info['numba']}, "
        f"BLAS: {'; '.join(info['blas']) or 'unknown'}"
    )


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns the two paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path

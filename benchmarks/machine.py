"""What every benchmark prints and records about the machine it ran on, and how it writes."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Libraries whose versions a result depends on (missing ones are left out of the header).
LIBRARIES = (
    "nettrim",
    "numpy",
    "scipy",
    "numba",
    "cvxpy",
    "clarabel",
    "scs",
    "osqp",
    "threadpoolctl",
    "scikit-learn",
    "dask",
    "torch",
    "matplotlib",
)
#: Environment variables that set thread counts (recorded when set).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict:
    """Cores, CPU, BLAS and thread pools (via threadpoolctl) and library versions.

    The keys ``cores``, ``machine``, ``python``, ``numpy``, ``scipy``, ``numba`` and ``blas``
    are those of the first results files; ``cpu``, ``versions``, ``threadpools`` and
    ``thread_env`` were added later (older files lack them, :func:`format_machine` copes).
    """
    from threadpoolctl import threadpool_info

    pools = threadpool_info()
    blas = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads, "
        f"{p.get('architecture')})"
        for p in pools
        if p.get("user_api") == "blas"
    ]
    versions = _versions()
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "numpy": versions.get("numpy"),
        "scipy": versions.get("scipy"),
        "numba": versions.get("numba"),
        "blas": blas,
        "versions": versions,
        "threadpools": [
            f"{p.get('user_api')}: {p.get('internal_api')} {p.get('num_threads')} threads"
            for p in pools
        ],
        "thread_env": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
    }


def format_machine(info: dict) -> str:
    """One line for a report's header (the older files' keys are enough)."""
    versions = info.get("versions") or {k: info[k] for k in ("numpy", "scipy", "numba")}
    line = (
        f"machine: {info['cores']} cores {info['machine']}"
        + (f" ({info['cpu']})" if info.get("cpu") else "")
        + f", Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f", BLAS: {'; '.join(info['blas']) or 'unknown'}"
    )
    if info.get("thread_env"):
        line += ", " + ", ".join(f"{k}={v}" for k, v in info["thread_env"].items())
    return line


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


#: One column of :func:`column_table`: header, then the row's key and a format spec, or a
#: function of the whole row.
Column = tuple[str, str, str] | tuple[str, Callable[[dict], str]]


def cell(value, spec: str = "") -> str:
    """``value`` formatted by ``spec`` when it is a number, else as text (``n/a`` for None)."""
    if value is None:
        return "n/a"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def column_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """A markdown table of ``rows`` (dicts), one column per ``(header, key, spec)`` or
    ``(header, function of the row)``."""

    def render(row: dict, column: Column) -> str:
        if len(column) == 2:
            return column[1](row)
        return cell(row.get(column[1]), column[2])

    return markdown_table([c[0] for c in columns], [[render(r, c) for c in columns] for r in rows])


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` through a temporary file in its folder (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as f:
        f.write(raw)
    os.chmod(f.name, 0o644)  # a temporary file is private (0600); results are for reading
    os.replace(f.name, path)


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns the two paths."""
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    write_atomic(json_path, json.dumps(payload, indent=2, default=float) + "\n")
    write_atomic(md_path, markdown + "\n")
    return json_path, md_path

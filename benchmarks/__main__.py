"""Run every benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...]``.

A suite is a file ``benchmarks/bench_<name>.py`` that runs as a script (``main(argv) -> int``
behind ``if __name__ == "__main__"``), takes ``--quick`` for a CI-sized run, and writes
``results/<name>[_quick].json`` and ``.md`` (``machine.write_results``). Adding a file adds a
suite; nothing here lists them. A suite may also define ``plot(payload, stem) -> list[Path]``,
which draws its PNG figures from its results JSON; they are drawn after the suite runs.

Every suite runs in its own process (its thread settings and imports stay its own); one that
fails is reported and the others still run; the exit status is 1 when any failed. The run's
own record, ``results/summary[_quick].json`` and ``.md``, gives the machine (CPU, library
versions, BLAS and thread counts) and each suite's status, seconds and files.

Other verbs: ``--plots`` redraws the figures of the existing results (solves nothing),
``--readme`` rewrites README.md's results table from the results JSON (``readme.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the suites import their helpers as top-level modules
    sys.path.insert(0, str(HERE))

from machine import RESULTS_DIR, column_table, format_machine, machine_info, write_results  # noqa: E402

#: The last lines of a failed suite's output kept in the summary.
TAIL_LINES = 20


def discover() -> list[str]:
    """The suites' names (``bench_<name>.py``), sorted."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def results_stem(name: str, quick: bool) -> str:
    return f"{name}_quick" if quick else name


def draw(name: str, quick: bool) -> list[str]:
    """The suite's figures from its results JSON (none if it has no ``plot`` or no JSON)."""
    stem = results_stem(name, quick)
    path = RESULTS_DIR / f"{stem}.json"
    if not path.exists():
        return []
    plot = getattr(importlib.import_module(f"bench_{name}"), "plot", None)
    if plot is None:
        return []
    return [p.name for p in plot(json.loads(path.read_text()), stem)]


def run_suite(name: str, quick: bool) -> dict:
    """Run one suite in a child process; its status, seconds, output tail and figures."""
    command = [sys.executable, str(HERE / f"bench_{name}.py"), *(["--quick"] if quick else [])]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    record = {"suite": name, "returncode": done.returncode, "seconds": seconds, "figures": []}
    if done.returncode != 0:
        record["status"] = "failed"
        record["tail"] = output.splitlines()[-TAIL_LINES:]
        print("\n".join(record["tail"]), file=sys.stderr)
    else:
        record["status"] = "ok"
        try:
            record["figures"] = draw(name, quick)
        except Exception as error:  # a broken figure fails the run, not the other suites
            record["status"] = "failed"
            record["tail"] = [f"plot: {type(error).__name__}: {error}"]
    print(f"   {record['status']} in {seconds:.0f} s", flush=True)
    return record


SUMMARY_COLUMNS = [
    ("suite", "suite", ""),
    ("status", "status", ""),
    ("seconds", "seconds", ".0f"),
    ("results", "results", ""),
    ("figures", lambda r: ", ".join(r["figures"]) or "-"),
]


def summarize(records: list[dict], quick: bool, seconds: float) -> None:
    for r in records:
        stem = results_stem(r["suite"], quick)
        r["results"] = f"{stem}.md" if (RESULTS_DIR / f"{stem}.md").exists() else "-"
    info = machine_info()
    failed = [r["suite"] for r in records if r["status"] != "ok"]
    lines = [
        f"# Benchmarks ({'quick' if quick else 'full'} run), {seconds:.0f} s",
        format_machine(info),
        column_table(records, SUMMARY_COLUMNS),
        f"failed: {', '.join(failed)}" if failed else "every suite ran",
    ]
    lines += [
        f"## {r['suite']} (failed)\n\n```\n" + "\n".join(r["tail"]) + "\n```"
        for r in records
        if r["status"] != "ok"
    ]
    payload = {"quick": quick, "machine": info, "seconds": seconds, "suites": records}
    write_results(f"summary{'_quick' if quick else ''}", payload, "\n\n".join(lines))
    print("\n\n".join(lines[:4]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized runs (minutes in all)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these suites only")
    parser.add_argument(
        "--plots", action="store_true", help="redraw the figures of the existing results only"
    )
    parser.add_argument(
        "--readme", action="store_true", help="rewrite README.md's results table only"
    )
    args = parser.parse_args(argv)
    suites = discover()
    if args.only:
        unknown = sorted(set(args.only) - set(suites))
        if unknown:
            parser.error(f"--only: unknown suites {unknown}; the suites are {suites}")
        suites = [s for s in suites if s in args.only]
    if args.readme:
        import readme

        print("README.md", "rewritten" if readme.update_readme() else "already up to date")
        return 0
    if args.plots:
        for name in suites:
            for quick in (False, True):
                print(name, "quick" if quick else "full", draw(name, quick))
        return 0
    started = time.perf_counter()
    records = [run_suite(name, args.quick) for name in suites]
    summarize(records, args.quick, time.perf_counter() - started)
    return 1 if any(r["status"] != "ok" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())

"""What `nettrim prune` shows on a non-terminal stderr while it works, and what it costs.

The bundled 64-128-128-10 digits network is pruned by a real ``nettrim prune`` process
(parallel Net-Trim, ``--solver admm``, two loky workers), stderr a pipe as in CI or
``2> log``: once with progress (the workers' ADMM checks travel back to the driver and are
printed, throttled to one line per job every ``LINE_INTERVAL`` seconds) and once with
``--quiet``, side by side. Recorded: the log, the seconds of both runs (one run each on a
shared machine: noisy), and whether the two pruned files are the same bytes (progress must
not change a weight).

``--quick`` (CI): 300 calibration rows, eps 0.3. Full run: every calibration row, eps 0.1.
Results: ``benchmarks/results/progress[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import column_table, format_machine, machine_info, write_results
from nettrim import load_digits_mlp
from nettrim.progress import LINE_INTERVAL


def prune(folder: Path, eps: float, name: str, *extra: str) -> dict:
    """One ``nettrim prune`` process: its seconds, stderr and output file's bytes."""
    out = folder / f"{name}.npz"
    command = [sys.executable, "-m", "nettrim", "prune", str(folder / "net.npz"), "--inputs"]
    command += [str(folder / "X.npy"), "--out", str(out), "--solver", "admm", "--eps"]
    command += [f"{eps:g}", "--n-jobs", "2", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=os.environ)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return {"seconds": seconds, "stderr": done.stderr, "bytes": out.read_bytes()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 rows, eps 0.3")
    args = parser.parse_args(argv)
    info = machine_info()
    print(format_machine(info), flush=True)
    model = load_digits_mlp()
    X = model.X_calib[:300] if args.quick else model.X_calib
    eps = 0.3 if args.quick else 0.1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.network.save(folder / "net.npz")
        np.save(folder / "X.npy", X)
        shown = prune(folder, eps, "shown")
        quiet = prune(folder, eps, "quiet", "--quiet")
    lines = shown["stderr"].splitlines()
    iterations = [line for line in lines if ": ADMM iteration " in line]
    rows = [
        {"run": "progress on stderr", "seconds": shown["seconds"], "stderr lines": len(lines),
         "ADMM lines": len(iterations)},
        {"run": "--quiet", "seconds": quiet["seconds"],
         "stderr lines": len(quiet["stderr"].splitlines()), "ADMM lines": 0},
    ]  # fmt: skip
    same = shown["bytes"] == quiet["bytes"]
    payload = {
        "benchmark": "progress",
        "quick": args.quick,
        "machine": info,
        "samples": int(X.shape[0]),
        "eps": eps,
        "line_interval": LINE_INTERVAL,
        "rows": rows,
        "same_bytes": same,
        "log": lines,
    }
    markdown = "\n".join(
        [
            f"# Progress of `nettrim prune` (digits 64-128-128-10, {X.shape[0]} samples, "
            f"eps {eps:g}, ADMM, 2 workers)",
            "",
            f"stderr a pipe; one ADMM line per job every {LINE_INTERVAL:g} s at most. The "
            f"pruned files with and without progress are {'the same' if same else 'DIFFERENT'}"
            " bytes. One run each on a shared 2-core machine: the seconds are noisy.",
            "",
            column_table(
                rows,
                [
                    ("run", "run", "s"),
                    ("seconds", "seconds", ".1f"),
                    ("stderr lines", "stderr lines", "d"),
                    ("ADMM lines", "ADMM lines", "d"),
                ],
            ),
            "",
            "```",
            *lines,
            "```",
        ]
    )
    stem = "progress_quick" if args.quick else "progress"
    for path in write_results(stem, payload, markdown):
        print(f"wrote {path}")
    return 0 if same and iterations else 1


if __name__ == "__main__":
    sys.exit(main())

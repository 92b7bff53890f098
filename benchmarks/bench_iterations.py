"""ADMM iterations where a layer is solved again or in pieces (issue: scale, "fewer iterations").

Sections (1 BLAS thread; iteration counts do not depend on the machine's load, seconds do,
so every time ratio is taken side by side in one run):

* ``reweight``: a reweighting round (``reweighted_trim_layer``, 3 rounds, eps = 0.05,
  layer-wide and per-neuron) against the plain solve of the same layer, on the digits
  hidden layers and MNIST's second layer (300 -> 100). Each round three ways: the path
  ``reweighted_trim_layer`` takes (from the previous round's whole state: weights,
  multipliers, penalties, ``AdmmState``; the rounds before the last to the intermediate gap
  ``INTERMEDIATE_GAP_TOL``), every round to ``gap_tol`` from the state, and (layer-wide)
  every round to ``gap_tol`` from the previous round's weights alone (``warm_start=W``,
  the first path). Target: every round at most 1.5x the plain solve.
* ``per_neuron``: per-neuron balls against the layer-wide ball on the same layer (same
  eps = 0.05): the digits hidden layers and a correlated random ReLU layer
  (``bench_admm.synthetic_layer``: ``4096 x 128 -> 128`` in the full run, the issue's
  ``16384 x 256 -> 256`` alone with ``--random-size``), each solved ``PER_NEURON_REPEATS``
  times (once with ``--random-size``), alternating, and the median seconds compared.
  Target: per-neuron at most 2x the layer-wide time.
* ``cascade``: ``net_trim`` cascade against parallel on the digits network and MNIST's
  784-300-100-10 (eps = 0.05): iterations per layer. Target: the cascade's layers with
  ``V != 0`` (ReLU layers after the first) within 1.5x the parallel layer's iterations.
* ``acceleration``: the ADMM with its Anderson acceleration (the default) against
  ``anderson_memory=0``, on the digits hidden layers and a correlated random
  ``4096 x 256 -> 256`` float32 layer (``2048 x 64`` quick): layer-wide, per-neuron, and
  the three reweighting rounds of the digits layers (their iterations summed).
* ``finish``: the ADMM with its active-set finish (the default) against
  ``active_set=False``, on the same cases and MNIST's second layer (full run): its
  attempts, their work (in iterations) and seconds.
* ``exact``: the ADMM with its exact solves of lagging columns (the default) against
  ``exact_columns=0``, per-neuron, on the same cases: the solve and three per-neuron
  reweighting rounds (real layers), the attempts, the columns solved and their seconds.

``--quick`` runs the digits cases on 400 samples (well under a minute); the full run takes
tens of minutes on a 2-core machine (MNIST's network trains once and is cached).
Results: ``benchmarks/results/iterations[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np

from bench_admm import synthetic_layer
from machine import column_table, format_machine, machine_info, write_results
from nettrim import load_digits_mlp, net_trim, reweighted_trim_layer, trim_layer
from nettrim.layer import TrimOptions, prepare_layer
from nettrim.reweighted import DEFAULT_DELTA, INTERMEDIATE_GAP_TOL, round_weights
from nettrim.solvers import AdmmSettings, solve_admm
from nettrim.solvers.kernels import warm_up

EPS = 0.05
ROUNDS = 3
QUICK_SAMPLES = 400
TARGET_ROUND = 1.5
#: Solves of each program per layer in the ``per_neuron`` section (medians compared).
PER_NEURON_REPEATS = 5
TARGET_PER_NEURON = 2.0
TARGET_CASCADE = 1.5
SECTIONS = ("reweight", "per_neuron", "cascade", "acceleration", "finish", "exact")
#: The acceleration off: the same settings otherwise.
PLAIN = {"anderson_memory": 0}
#: The active-set finish off: the same settings otherwise.
NO_FINISH = {"active_set": False}
#: The exact solves of lagging columns off.
NO_EXACT = {"exact_columns": 0}
#: The default gap every round but the intermediate ones of the reweighting is solved to.
GAP_TOL = AdmmSettings().gap_tol


def _digits_layers(n: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    model = load_digits_mlp()
    acts = model.network.record(model.X_calib)
    n = n or len(model.X_calib)
    return [(f"digits {i}", acts[i][:n], acts[i + 1][:n]) for i in (0, 1)]


def _mnist():
    from mnist_mlp import load_mnist_mlp

    network, X_train, *_ = load_mnist_mlp()
    return network, X_train


def _rounds_alone(X, Y, *, per_neuron: bool, from_state: bool) -> list[tuple[float, float]]:
    """Every round to ``gap_tol`` (no intermediate gap), from the previous round's whole
    state (``from_state``) or from its weights alone (the path before either): each
    round's mean column iterations and seconds."""
    options = dict(eps=EPS, solver="admm", per_neuron=per_neuron)
    prepared = prepare_layer(X, Y, TrimOptions.from_keywords("bench", options))
    last = solve_admm(prepared.problem, prepared.settings, keep_state=from_state)
    rounds = []
    for _ in range(ROUNDS):
        weights = round_weights(last.W, DEFAULT_DELTA, keep_l1=True)
        last = solve_admm(
            replace(prepared.problem, entry_weights=weights),
            prepared.settings,
            warm_start=last if from_state else last.W,
            keep_state=from_state,
        )
        if last.W is None:
            raise RuntimeError(f"a reweighting round failed: {last.info.message}")
        rounds.append((last.info.extra["column_iterations"], last.info.seconds))
    return rounds


def reweight_section(quick: bool) -> list[dict]:
    cases = _digits_layers(QUICK_SAMPLES if quick else None)[: 1 if quick else 2]
    if not quick:
        network, X_train = _mnist()
        acts = network.record(X_train)
        cases.append(("MNIST 1", acts[1], acts[2]))
    rows = []
    for name, X, Y in cases:
        # per-neuron rounds from the weights alone ran to thousands of iterations: not timed
        for program, per_neuron in (("layer-wide", False), ("per-neuron", True)):
            rows += _reweight_rows(name, program, X, Y, per_neuron=per_neuron)
    return rows


def _reweight_rows(name: str, program: str, X, Y, *, per_neuron: bool) -> list[dict]:
    res = reweighted_trim_layer(X, Y, eps=EPS, rounds=ROUNDS, solver="admm", per_neuron=per_neuron)
    # mean iterations per column: a per-neuron solve's iterations are its slowest column's
    iterations = res.info.extra["round_column_iterations"]
    seconds = res.info.extra["round_seconds"]
    tight = _rounds_alone(X, Y, per_neuron=per_neuron, from_state=True)
    former = None if per_neuron else _rounds_alone(X, Y, per_neuron=False, from_state=False)
    plain_it, plain_s = iterations[0], seconds[0]
    rows = []
    for k in range(1, len(iterations)):
        rows.append(
            {
                "layer": name,
                "program": program,
                "shape": f"{X.shape[1]}x{Y.shape[1]}",
                "n": X.shape[0],
                "round": k,
                "gap_tol": GAP_TOL if k == ROUNDS else INTERMEDIATE_GAP_TOL,
                "plain_iterations": plain_it,
                "plain_seconds": plain_s,
                "iterations": iterations[k],
                "seconds": seconds[k],
                "iteration_ratio": iterations[k] / plain_it,
                "seconds_ratio": seconds[k] / plain_s,
                "tight_iterations": tight[k - 1][0],
                "tight_iteration_ratio": tight[k - 1][0] / plain_it,
                "former_iterations": None if former is None else former[k - 1][0],
                "former_iteration_ratio": None if former is None else former[k - 1][0] / plain_it,
                "status": res.status.value,
                "recertify_iterations": res.info.extra["recertify_iterations"],
                "nnz": res.info.extra["nnz_history"][
                    min(k, len(res.info.extra["nnz_history"]) - 1)
                ],
                "load": os.getloadavg()[0],
            }
        )
    print(
        f"  reweight {name} {program}: {iterations} (every round to gap_tol "
        f"{[t[0] for t in tight]}, from W {former and [f[0] for f in former]})",
        file=sys.stderr,
    )
    return rows


def per_neuron_section(quick: bool, random_size: tuple[int, int] | None = None) -> list[dict]:
    cases = _digits_layers(QUICK_SAMPLES if quick else None)
    # the 16384 x 256 -> 256 takes minutes per solve (tens of minutes on a loaded
    # 2-core machine): the full run takes a quarter of it (the same correlated family), and
    # --random-size 16384,256 runs the alone
    if random_size is not None:
        cases = []
    n, d = random_size or ((2048, 64) if quick else (4096, 128))
    X, Y = synthetic_layer(n, d, d, np.float64)
    cases.append((f"random {n}x{d}->{d}", X, Y))
    # the layer alone takes minutes a solve: once each
    repeats = 1 if random_size is not None else PER_NEURON_REPEATS
    rows = []
    for name, X, Y in cases:
        row = {"layer": name, "shape": f"{X.shape[1]}x{Y.shape[1]}", "n": X.shape[0]}
        row["repeats"] = repeats
        seconds: dict[str, list[float]] = {"layer_wide": [], "per_neuron": []}
        # alternating repeats, medians: a sub-second solve's seconds on a shared 2-core
        # machine vary by a fifth from one solve to the next (the iterations do not)
        for _ in range(repeats):
            for key, per_neuron in (("layer_wide", False), ("per_neuron", True)):
                res = trim_layer(X, Y, eps=EPS, per_neuron=per_neuron, solver="admm")
                seconds[key].append(res.info.seconds)
                counts = (res.info.iterations, res.info.extra["column_iterations"])
                if row.setdefault(f"{key}_counts", counts) != counts:
                    raise RuntimeError(f"{name} {key}: the repeats differ ({counts})")
                row[f"{key}_status"] = res.status.value
        for key in seconds:
            row[f"{key}_seconds"] = float(np.median(seconds[key]))
            row[f"{key}_seconds_all"] = seconds[key]
            row[f"{key}_iterations"], row[f"{key}_column_iterations"] = row.pop(f"{key}_counts")
        row["seconds_ratio"] = row["per_neuron_seconds"] / row["layer_wide_seconds"]
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        print(f"  per-neuron {name}: {row['seconds_ratio']:.2f}x", file=sys.stderr)
    return rows


def cascade_section(quick: bool) -> list[dict]:
    model = load_digits_mlp()
    X_digits = model.X_calib[:QUICK_SAMPLES] if quick else model.X_calib
    networks = [("digits", model.network, X_digits)]
    if not quick:
        networks.append(("MNIST", *_mnist()))
    rows = []
    for name, network, X in networks:
        layers = {}
        for scheme in ("parallel", "cascade"):
            res = net_trim(network, X, scheme=scheme, eps=EPS, solver="admm")
            layers[scheme] = res.layers
        activations = [layer.activation for layer in network.layers]
        for i, (par, cas) in enumerate(zip(layers["parallel"], layers["cascade"], strict=True)):
            rows.append(
                {
                    "network": name,
                    "layer": i,
                    "activation": activations[i],
                    "upper": i > 0 and activations[i] == "relu",
                    "parallel_iterations": par.info.iterations,
                    "cascade_iterations": cas.info.iterations,
                    "ratio": cas.info.iterations / par.info.iterations,
                    "parallel_seconds": par.info.seconds,
                    "cascade_seconds": cas.info.seconds,
                    "status": f"{par.status.value}/{cas.status.value}",
                }
            )
        print(f"  cascade {name}: done", file=sys.stderr)
    return rows


def _pair(name: str, program: str, solve, off: dict) -> dict:
    """One case solved with the defaults and with ``off``: ``solve(options)`` returns
    ``(iterations, column iterations, seconds, objective, extra)``."""
    on, without = solve({}), solve(off)
    extra = on[4]
    return {
        "layer": name,
        "program": program,
        "iterations": on[0],
        "plain_iterations": without[0],
        "column_iterations": on[1],
        "plain_column_iterations": without[1],
        "ratio": on[1] / without[1],
        "seconds": on[2],
        "plain_seconds": without[2],
        "seconds_ratio": on[2] / without[2],
        "objective_ratio": on[3] / without[3],
        "accepted": extra.get("anderson_accepted", 0),
        "rejected": extra.get("anderson_rejected", 0),
        "attempts": extra.get("active_set_attempts"),
        "finish_work": extra.get("active_set_work"),
        "finish_seconds": extra.get("active_set_seconds"),
        "exact_attempts": extra.get("exact_attempts"),
        "exact_columns": extra.get("exact_columns"),
        "exact_seconds": extra.get("exact_seconds"),
        "load": os.getloadavg()[0],
    }


def _paired_cases(quick: bool, *, with_mnist: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    cases = _digits_layers(QUICK_SAMPLES if quick else None)
    n, d = (2048, 64) if quick else (4096, 256)
    X, Y = synthetic_layer(n, d, d, np.float32, seed=1)
    cases.append((f"random {n}x{d}->{d} float32", X, Y))
    if with_mnist and not quick:
        network, X_train = _mnist()
        acts = network.record(X_train)
        cases.append(("MNIST 1", acts[1], acts[2]))
    return cases


def _paired_section(
    quick: bool, off: dict, *, with_mnist: bool, per_neuron_only: bool = False
) -> list[dict]:
    """Every case of :func:`_paired_cases` layer-wide and per-neuron (``per_neuron_only``:
    per-neuron), and the reweighting rounds of the real layers (their iterations and
    seconds summed; per-neuron with ``per_neuron_only``), with and without ``off``."""
    rows = []
    programs = (
        (("per-neuron", True),)
        if per_neuron_only
        else (
            ("layer-wide", False),
            ("per-neuron", True),
        )
    )
    for name, X, Y in _paired_cases(quick, with_mnist=with_mnist):
        for program, per_neuron in programs:

            def solve(options, X=X, Y=Y, per_neuron=per_neuron):
                res = trim_layer(
                    X, Y, eps=EPS, per_neuron=per_neuron, solver="admm", solver_options=options
                )
                info = res.info
                columns = info.extra["column_iterations"]
                return info.iterations, columns, info.seconds, info.objective, info.extra

            rows.append(_pair(name, program, solve, off))
        if not name.startswith("random"):

            def rounds(options, X=X, Y=Y):
                res = reweighted_trim_layer(
                    X,
                    Y,
                    eps=EPS,
                    rounds=ROUNDS,
                    per_neuron=per_neuron_only,
                    solver="admm",
                    solver_options=options,
                )
                iterations = sum(res.info.extra["round_iterations"][1:])
                seconds = sum(res.info.extra["round_seconds"][1:])
                return iterations, iterations, seconds, res.info.objective, {}

            label = f"{ROUNDS} reweighting rounds" + (", per-neuron" if per_neuron_only else "")
            row = _pair(name, label, rounds, off)
            # per round, not summed
            for key in ("accepted", "rejected", "attempts", "exact_attempts", "exact_columns"):
                row[key] = None
            rows.append(row)
        print(f"  {sorted(off)} {name}: done", file=sys.stderr)
    return rows


def acceleration_section(quick: bool) -> list[dict]:
    return _paired_section(quick, PLAIN, with_mnist=False)


def finish_section(quick: bool) -> list[dict]:
    return _paired_section(quick, NO_FINISH, with_mnist=True)


def exact_section(quick: bool) -> list[dict]:
    # only a program with one ball per column has columns to solve exactly
    return _paired_section(quick, NO_EXACT, with_mnist=True, per_neuron_only=True)


REWEIGHT_COLUMNS = [
    ("layer", "layer", ""),
    ("program", "program", ""),
    ("n", "n", ""),
    ("round", "round", ""),
    ("gap_tol", "gap_tol", "g"),
    ("plain iters", "plain_iterations", ".0f"),
    ("plain s", "plain_seconds", ".2f"),
    ("iters", "iterations", ".0f"),
    ("s", "seconds", ".2f"),
    ("iters / plain", "iteration_ratio", ".2f"),
    ("s / plain", "seconds_ratio", ".2f"),
    ("all gap_tol: iters", "tight_iterations", ".0f"),
    ("all gap_tol: iters / plain", "tight_iteration_ratio", ".2f"),
    ("from W: iters", "former_iterations", ".0f"),
    ("from W: iters / plain", "former_iteration_ratio", ".2f"),
    ("nnz", "nnz", ""),
    ("load", "load", ".2f"),
]
PER_NEURON_COLUMNS = [
    ("layer", "layer", ""),
    ("n", "n", ""),
    ("layer-wide s", "layer_wide_seconds", ".2f"),
    ("layer-wide iters", "layer_wide_iterations", ""),
    ("per-neuron s", "per_neuron_seconds", ".2f"),
    ("per-neuron iters", "per_neuron_iterations", ""),
    ("per-neuron column iters", "per_neuron_column_iterations", ".0f"),
    ("s ratio", "seconds_ratio", ".2f"),
    ("repeats", "repeats", ""),
    ("load", "load", ".2f"),
]
CASCADE_COLUMNS = [
    ("network", "network", ""),
    ("layer", "layer", ""),
    ("activation", "activation", ""),
    ("V != 0", "upper", ""),
    ("parallel iters", "parallel_iterations", ""),
    ("cascade iters", "cascade_iterations", ""),
    ("ratio", "ratio", ".2f"),
    ("parallel s", "parallel_seconds", ".2f"),
    ("cascade s", "cascade_seconds", ".2f"),
    ("status", "status", ""),
]
ACCELERATION_COLUMNS = [
    ("layer", "layer", ""),
    ("program", "program", ""),
    ("iters", "iterations", ""),
    ("off: iters", "plain_iterations", ""),
    ("column iters", "column_iterations", ".0f"),
    ("off: column iters", "plain_column_iterations", ".0f"),
    ("ratio", "ratio", ".2f"),
    ("s", "seconds", ".2f"),
    ("off: s", "plain_seconds", ".2f"),
    ("s ratio", "seconds_ratio", ".2f"),
    ("objective ratio", "objective_ratio", ".5f"),
    ("accepted", "accepted", ""),
    ("rejected", "rejected", ""),
    ("load", "load", ".2f"),
]
FINISH_COLUMNS = [
    *ACCELERATION_COLUMNS[:11],
    ("attempts", "attempts", ""),
    ("work (iters)", "finish_work", ".1f"),
    ("finish s", "finish_seconds", ".2f"),
    ("load", "load", ".2f"),
]
EXACT_COLUMNS = [
    *ACCELERATION_COLUMNS[:11],
    ("attempts", "exact_attempts", ""),
    ("columns solved", "exact_columns", ""),
    ("exact s", "exact_seconds", ".2f"),
    ("load", "load", ".2f"),
]
TITLES = {
    "reweight": (
        "Reweighting rounds against the plain solve (from the previous round's state, the "
        "rounds before the last to the intermediate gap; all gap_tol: every round to it; "
        "from W: every round to gap_tol from the weights alone); iters: mean iterations per "
        "column",
        REWEIGHT_COLUMNS,
    ),
    "per_neuron": (
        "Per-neuron balls against the layer-wide ball; s: the median of the solves of each "
        "(repeats, alternating)",
        PER_NEURON_COLUMNS,
    ),
    "cascade": ("Cascade against parallel: iterations per layer", CASCADE_COLUMNS),
    "acceleration": (
        "Anderson acceleration (default) against none (anderson_memory=0); ratio: column "
        "iterations (iterations of the rounds for reweighting) over those without",
        ACCELERATION_COLUMNS,
    ),
    "finish": (
        "Active-set finish (default) against none (active_set=False); ratio: column "
        "iterations (iterations of the rounds for reweighting) over those without; work: "
        "the attempts' estimate in iterations of the layer, finish s their seconds",
        FINISH_COLUMNS,
    ),
    "exact": (
        "Exact solves of lagging columns (default) against none (exact_columns=0), "
        "per-neuron; ratio: column iterations (iterations of the rounds for reweighting) "
        "over those without; exact s: the exact solves' seconds",
        EXACT_COLUMNS,
    ),
}


def _verdicts(results: dict) -> list[str]:
    lines = []
    by_layer: dict[tuple[str, str], list[dict]] = {}
    for r in results.get("reweight", []):
        by_layer.setdefault((r["layer"], r.get("program", "layer-wide")), []).append(r)
    for (layer, program), rows in by_layer.items():
        worst_it = max(r["iteration_ratio"] for r in rows)
        worst_s = max(r["seconds_ratio"] for r in rows)
        # a kept intermediate round re-solved to gap_tol (rounds ended early) counts too
        total = sum(r["iterations"] for r in rows) + rows[-1].get("recertify_iterations", 0)
        tight = sum(r.get("tight_iterations") or 0 for r in rows)
        ok = worst_it <= TARGET_ROUND and worst_s <= TARGET_ROUND
        lines.append(
            f"- {layer} {program}: every reweighting round <= {TARGET_ROUND}x the plain solve: "
            f"{'met' if ok else 'NOT met'} (worst round {worst_it:.2f}x in iterations, "
            f"{worst_s:.2f}x in seconds; the rounds {total:.0f} iterations, every round to "
            f"gap_tol {tight:.0f})"
        )
    for r in results.get("per_neuron", []):
        ok = r["seconds_ratio"] <= TARGET_PER_NEURON
        lines.append(
            f"- {r['layer']}: per-neuron <= {TARGET_PER_NEURON:.0f}x the layer-wide time: "
            f"{'met' if ok else 'NOT met'} ({r['seconds_ratio']:.2f}x)"
        )
    for r in results.get("cascade", []):
        if not r["upper"]:
            continue
        ok = r["ratio"] <= TARGET_CASCADE
        lines.append(
            f"- {r['network']} layer {r['layer']} (cascade, V != 0) within {TARGET_CASCADE}x "
            f"the parallel layer's iterations: {'met' if ok else 'NOT met'} ({r['ratio']:.2f}x)"
        )
    return lines


def report(results: dict, quick: bool) -> str:
    parts = [
        "# ADMM iterations: reweighting, per-neuron, cascade, acceleration "
        f"({'quick' if quick else 'full'} run)",
        "",
        format_machine(results["machine"]),
    ]
    for key in SECTIONS:
        if key in results:
            title, columns = TITLES[key]
            parts += ["", f"## {title}", "", column_table(results[key], columns)]
    verdicts = _verdicts(results)
    if verdicts:
        parts += ["", "## Targets", "", *verdicts]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, fast versions (CI)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument(
        "--random-size",
        help="N,D: the per-neuron section on a random N x D -> D layer alone (results "
        "iterations_NxD); e.g. 16384,256, the issue's",
    )
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    warm_up(np.float64)
    warm_up(np.float32)
    results: dict = {"machine": machine_info(), "quick": args.quick}
    sections = args.sections.split(",")
    random_size = None
    if args.random_size:
        n, d = (int(v) for v in args.random_size.split(","))
        random_size, sections = (n, d), ["per_neuron"]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    runners = {
        "reweight": reweight_section,
        "per_neuron": lambda quick: per_neuron_section(quick, random_size),
        "cascade": cascade_section,
        "acceleration": acceleration_section,
        "finish": finish_section,
        "exact": exact_section,
    }
    for key in SECTIONS:
        if key in sections:
            started = time.perf_counter()
            results[key] = runners[key](args.quick)
            print(f"  {key}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    text = report(results, args.quick)
    print(text)
    name = "iterations_quick" if args.quick else "iterations"
    if random_size is not None:
        name = f"iterations_{random_size[0]}x{random_size[1]}"
    write_results(name, results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

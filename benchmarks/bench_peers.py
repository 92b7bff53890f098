"""Net-Trim's ADMM against every cvxpy solver: Clarabel and SCS on (P1), OSQP on (P3).

The same layers, the same program written the straightforward way in cvxpy (``docs/theory.md``:
dense ``X~ = [X, 1]``, the masks of Omega, every weight and the bias in the L1 objective), each
solver at its own default tolerances and a wall-clock limit of ``TIME_LIMIT`` seconds, 1 BLAS
thread on every side, one run:

* (P1), ``eps = 0.05`` layer-wide: nettrim's ADMM, Clarabel (interior point) and SCS (a
  first-order conic solver, ADMM on the homogeneous self-dual embedding).
* (P3), ``lam / 2 ||(X~ W~ - Y)_Omega||_F^2`` added to the objective under the same
  inequalities: a quadratic program, so OSQP (operator-splitting QP) joins, beside nettrim's ADMM
  (``penalty=lam``) and Clarabel. ``lam`` is set so that the penalized solution's residual is of
  the order of the constrained one's (``LAM_SCALE / ||Y||_F``).

Columns: seconds; the objective over Clarabel's (the most accurate of the three: interior
point to ``1e-8``); the constraint excess over ``eps`` (P1) and the inequality violation over
``max |Y|`` (both, evaluated on the returned weights here, not taken from the solvers); the
speed-up of nettrim's ADMM over each. Layers: the bundled digits network's first hidden layer
(all calibration samples; ``--quick``: two small synthetic ReLU layers).
Results: ``benchmarks/results/peers[_quick].{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from machine import cell, column_table, format_machine, machine_info, write_results
from nettrim import load_digits_mlp, trim_layer
from nettrim.solvers.kernels import warm_up

EPS = 0.05
#: (P3)'s lam is LAM_SCALE / ||Y||_F: residuals of a few percent of ||Y||_F on these layers.
LAM_SCALE = 20.0
#: cvxpy's names of the peers, per program.
PEERS = {"P1": ("CLARABEL", "SCS"), "P3": ("CLARABEL", "OSQP")}
NAMES = {"CLARABEL": "Clarabel", "SCS": "SCS", "OSQP": "OSQP"}
#: Each peer's wall-clock limit (seconds), under its own option's name: a solve that reaches
#: it reports its status at the limit (OSQP's factorizations grow fast with the layer).
TIME_LIMIT = 900.0
LIMIT_OPTION = {"CLARABEL": "time_limit", "SCS": "time_limit_secs", "OSQP": "time_limit"}
#: A weight counts as non-zero above this share of the largest (cvxpy's solvers return no
#: exact zeros; nettrim's do): the same rule for every solver.
ZERO_RTOL = 1e-6


def straightforward(X, Y, *, program: str, solver: str, eps: float = EPS, lam: float = 1.0):
    """(P1) or (P3) in cvxpy as ``docs/theory.md`` writes them; returns weights and seconds."""
    import cvxpy as cp

    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    mask = (Y > 0).astype(float)
    W = cp.Variable((Xa.shape[1], Y.shape[1]))
    residual = cp.multiply(mask, Xa @ W - Y)
    objective = cp.sum(cp.abs(W))
    constraints = [cp.multiply(1.0 - mask, Xa @ W) <= 0]
    if program == "P1":
        constraints.append(cp.norm(residual, "fro") <= eps * np.linalg.norm(Y))
    else:
        objective = objective + lam / 2 * cp.sum_squares(residual)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    started = time.perf_counter()
    problem.solve(solver=getattr(cp, solver), **{LIMIT_OPTION[solver]: TIME_LIMIT})
    seconds = time.perf_counter() - started
    if W.value is None:
        return None, seconds, problem.status
    return np.asarray(W.value), seconds, problem.status


def _measure(X, Y, Wa, program: str, lam: float) -> dict:
    """Objective, excess over eps (P1), violation over max|Y| of ``Wa`` (bias in its last row)."""
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    Z = Xa @ Wa
    on = Y > 0
    residual = np.linalg.norm(np.where(on, Z - Y, 0.0))
    objective = float(np.abs(Wa).sum())
    if program == "P3":
        objective += lam / 2 * residual**2
    radius = EPS * np.linalg.norm(Y)
    return {
        "objective": objective,
        "excess_over_eps": max(0.0, (residual - radius) / radius) if program == "P1" else None,
        "violation_over_ymax": float(np.max(np.where(on, 0.0, Z), initial=0.0) / Y.max()),
        "nnz": int(np.count_nonzero(np.abs(Wa) > ZERO_RTOL * np.abs(Wa).max())),
    }


def _nettrim(X, Y, program: str, lam: float):
    penalty = lam if program == "P3" else None
    started = time.perf_counter()
    res = trim_layer(X, Y, eps=EPS, penalty=penalty, solver="admm")
    seconds = time.perf_counter() - started
    return np.vstack([res.W, res.b[None, :]]), seconds, res.status.value


def compare(name: str, X, Y, program: str) -> list[dict]:
    """One row per solver on one layer and program; ratios against Clarabel and nettrim."""
    lam = LAM_SCALE / float(np.linalg.norm(Y))
    runs = {"nettrim ADMM": _nettrim(X, Y, program, lam)}
    for solver in PEERS[program]:
        runs[NAMES[solver]] = straightforward(X, Y, program=program, solver=solver, lam=lam)
        print(f"  {name} {program} {solver}: {runs[NAMES[solver]][1]:.2f} s", file=sys.stderr)
    reference = _measure(X, Y, runs["Clarabel"][0], program, lam)["objective"]
    ours = runs["nettrim ADMM"][1]
    rows = []
    for solver, (Wa, seconds, status) in runs.items():
        row = {"layer": name, "shape": f"{X.shape[1]}x{Y.shape[1]}", "n": X.shape[0]}
        row |= {"program": program, "solver": solver, "status": status, "seconds": seconds}
        if Wa is not None:
            row |= _measure(X, Y, Wa, program, lam)
            row["objective_ratio"] = row["objective"] / reference
        row["nettrim_speedup"] = seconds / ours
        row["load"] = os.getloadavg()[0]
        rows.append(row)
    return rows


def _layers(quick: bool):
    if quick:
        rng = np.random.default_rng(5)
        for n, d, m in ((300, 24, 16), (400, 32, 16)):
            X = np.maximum(rng.standard_normal((n, d)), 0.0)
            W = rng.standard_normal((d, m)) * (rng.random((d, m)) < 0.2)
            yield f"synthetic {n}", X, np.maximum(X @ W + 0.1, 0.0)
        return
    model = load_digits_mlp()
    acts = model.network.record(model.X_calib)
    # layer 0 only: on layer 1 Clarabel alone takes minutes per program and OSQP hits the limit
    yield "digits 0", acts[0], acts[1]


COLUMNS = [
    ("layer", "layer", ""),
    ("shape", "shape", ""),
    ("n", "n", ""),
    ("program", "program", ""),
    ("solver", "solver", ""),
    ("status", "status", ""),
    ("s", "seconds", ".3f"),
    ("s / nettrim's", lambda r: cell(r["nettrim_speedup"], ".1f") + "x"),
    ("obj / Clarabel's", lambda r: cell(r.get("objective_ratio"), ".5f")),
    ("excess/eps", lambda r: cell(r.get("excess_over_eps"), ".1e")),
    ("viol/max|Y|", lambda r: cell(r.get("violation_over_ymax"), ".1e")),
    ("nnz", lambda r: cell(r.get("nnz"), "")),
    ("load", "load", ".2f"),
]


def report(results: dict) -> str:
    rows = results["rows"]
    lines = [
        f"# Net-Trim's ADMM against cvxpy's solvers ({'quick' if results['quick'] else 'full'})",
        "",
        format_machine(results["machine"]),
        "",
        f"(P1) eps = {EPS} layer-wide; (P3) lam = {LAM_SCALE:g} / ||Y||_F. Every solver at its "
        "default tolerances; objective, excess and violation evaluated on the returned weights. "
        "`s / nettrim's`: the solver's seconds over nettrim's ADMM's, same layer and program.",
        "",
        column_table(rows, COLUMNS),
        "",
        "## Speed-up of nettrim's ADMM",
        "",
    ]
    for r in rows:
        if r["solver"] != "nettrim ADMM":
            lines.append(
                f"- {r['layer']} {r['program']}: {r['nettrim_speedup']:.1f}x faster than "
                f"{r['solver']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small layers (CI)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    warm_up(np.float64)
    rows = []
    for name, X, Y in _layers(args.quick):
        for program in PEERS:
            rows += compare(name, np.asarray(X, float), np.asarray(Y, float), program)
    results = {"machine": machine_info(), "quick": args.quick, "rows": rows}
    text = report(results)
    print(text)
    write_results("peers_quick" if args.quick else "peers", results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

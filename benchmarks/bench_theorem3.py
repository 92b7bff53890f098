"""Theorem 3's phase transition, and sparsity against discrepancy on the digits network.

**Phase transition** (Theorem 3 of Net-Trim, ``docs/theory.md``): for Gaussian inputs
``x_p ~ N(0, I_N)`` and ``y_p = relu(w*^T x_p)`` with ``w*`` ``s``-sparse and no bias,
``P = (11 s + 7) mu log N`` samples make ``w*`` the unique solution of (P1) with ``eps = 0``
with probability at least ``1 - N^(1 - mu)`` (``nettrim.theorem3_samples``). Here ``N = 64``,
``s = 4``; at each sample count ``P`` (a grid in ``P / (s log N)``) every trial draws ``X``
(``P x N``), a support of ``s`` indices uniformly and Gaussian values on it, and solves
``trim_layer(X, relu(X w*), bias=False, eps=0, relative=True)`` once with the ADMM and once
with Clarabel on the same instance. **Recovery** means ``||w - w*||_inf <= 1e-3 ||w*||_inf``
(``RECOVERY_TOL``). The plot marks the theorem's count at ``mu = 1.5`` (probability at least
``1 - 64^(-0.5) = 0.875``) and its limit ``mu -> 1``; the theorem is a sufficient condition,
so recovery sets in well before it.

**Sparsity against discrepancy**: the bundled 64-128-128-10 digits network pruned by
``net_trim`` with the parallel and the cascade scheme (ADMM, ``gamma = 1.1``) over an eps
grid: weights removed against the network's relative output discrepancy
``||Yhat^(L) - Y^(L)||_F / ||Y^(L)||_F`` on the calibration and the held-out test inputs.

``--quick`` (CI): 5 trials at 4 sample counts; 300 calibration rows and two eps. Full run:
20 trials at 11 counts, every calibration row and five eps (about 15 minutes on 2 cores).
Results: ``benchmarks/results/theorem3[_quick].json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from machine import column_table, format_machine, machine_info, write_results
from nettrim import load_digits_mlp, net_trim, theorem3_samples, trim_layer

N, S = 64, 4
#: Theorem 3's ``mu`` marked on the plot (it needs ``mu > 1``).
MU = 1.5
RECOVERY_TOL = 1e-3
SOLVERS = ("admm", "clarabel")
FULL = {
    "ratios": (0.5, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 12.0, 20.0),
    "trials": 20,
    "calib": None,
    "eps": (0.02, 0.05, 0.1, 0.2, 0.3),
}
QUICK = {"ratios": (1.0, 2.0, 3.0, 6.0), "trials": 5, "calib": 300, "eps": (0.05, 0.2)}
GAMMA = 1.1


def planted_instance(P: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (P x N) Gaussian and an s-sparse ``w*``; the seed is ``(P, trial)``, so a
    count's instances do not depend on the rest of the grid."""
    rng = np.random.default_rng([P, trial])
    X = rng.standard_normal((P, N))
    w = np.zeros(N)
    w[rng.choice(N, S, replace=False)] = rng.standard_normal(S)
    return X, w


def recovery_error(w: np.ndarray, w_star: np.ndarray) -> float:
    return float(np.max(np.abs(w - w_star)) / np.max(np.abs(w_star)))


def phase_transition(ratios, trials: int) -> list[dict]:
    """One row per (sample count, solver): recovery rate, errors, statuses, seconds."""
    rows = []
    for ratio in ratios:
        P = max(1, round(ratio * S * np.log(N)))
        outcome = {solver: [] for solver in SOLVERS}
        for trial in range(trials):
            X, w_star = planted_instance(P, trial)
            Y = np.maximum(X @ w_star, 0.0)[:, None]
            for solver in SOLVERS:
                started = time.perf_counter()
                res = trim_layer(X, Y, bias=False, eps=0.0, relative=True, solver=solver)
                seconds = time.perf_counter() - started
                error = recovery_error(res.W[:, 0], w_star)
                outcome[solver].append((error, res.status.value, seconds))
        recovered = {s: [e <= RECOVERY_TOL for e, _, _ in outcome[s]] for s in SOLVERS}
        for solver in SOLVERS:
            errors, statuses, seconds = zip(*outcome[solver], strict=True)
            rows.append(
                {
                    "P": P,
                    "ratio": P / (S * np.log(N)),
                    "solver": solver,
                    "trials": trials,
                    "recovered": int(sum(recovered[solver])),
                    "rate": float(np.mean(recovered[solver])),
                    "agree": int(sum(a == b for a, b in zip(*recovered.values(), strict=True))),
                    "median_error": float(np.median(errors)),
                    "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
                    "seconds": float(np.sum(seconds)),
                }
            )
            print(
                f"  P={P:4} ({rows[-1]['ratio']:.2f} s log N) {solver:8}: "
                f"{rows[-1]['recovered']}/{trials} recovered, {rows[-1]['seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def sparsity_curve(eps_grid, calib: int | None) -> list[dict]:
    """Weights removed and discrepancy of both schemes on the digits network, per eps."""
    model = load_digits_mlp()
    net, X, X_test = model.network, model.X_calib[:calib], model.X_test
    Y, Y_test = net(X), net(X_test)
    rows = []
    for scheme in ("parallel", "cascade"):
        for eps in eps_grid:
            started = time.perf_counter()
            result = net_trim(net, X, scheme=scheme, eps=eps, gamma=GAMMA, solver="admm", n_jobs=1)
            rows.append(
                {
                    "scheme": scheme,
                    "eps": eps,
                    "removed": result.sparsity,
                    "discrepancy_calib": relative(result.network(X), Y),
                    "discrepancy_test": relative(result.network(X_test), Y_test),
                    "accuracy_after": result.network.accuracy(X_test, model.y_test),
                    "seconds": time.perf_counter() - started,
                    "n_calib": X.shape[0],
                }
            )
            print(f"  {scheme} eps={eps}: {rows[-1]['removed']:.1%} removed", file=sys.stderr)
    return rows


PHASE_COLUMNS = [
    ("P", "P", ""),
    ("P / (s log N)", "ratio", ".2f"),
    ("solver", "solver", ""),
    ("recovered", lambda r: f"{r['recovered']}/{r['trials']}"),
    ("same verdict as the other solver", lambda r: f"{r['agree']}/{r['trials']}"),
    ("median error", "median_error", ".1e"),
    ("statuses", lambda r: ", ".join(f"{k} {v}" for k, v in r["statuses"].items())),
    ("seconds", "seconds", ".1f"),
]
CURVE_COLUMNS = [
    ("scheme", "scheme", ""),
    ("eps", "eps", ""),
    ("removed", "removed", ".1%"),
    ("disc. calib", "discrepancy_calib", ".4f"),
    ("disc. test", "discrepancy_test", ".4f"),
    ("test accuracy", "accuracy_after", ".4f"),
    ("seconds", "seconds", ".1f"),
]


def report(payload: dict) -> str:
    threshold = payload["theorem3_samples"]
    return "\n\n".join(
        [
            f"# Theorem 3's phase transition ({'quick' if payload['quick'] else 'full'} run)",
            format_machine(payload["machine"]),
            f"N = {N}, s = {S}, eps = 0, no bias, Gaussian X; recovery: "
            f"||w - w*||_inf <= {RECOVERY_TOL:g} ||w*||_inf. Theorem 3's sufficient count "
            f"(11 s + 7) mu log N = {threshold:.0f} samples at mu = {MU} "
            f"(P / (s log N) = {threshold / (S * np.log(N)):.2f}; probability >= "
            f"{1 - N ** (1 - MU):.3f}).",
            column_table(payload["phase"], PHASE_COLUMNS),
            "## Sparsity against discrepancy, digits 64-128-128-10 (ADMM, "
            f"gamma = {GAMMA}, {payload['curve'][0]['n_calib']} calibration rows)",
            column_table(payload["curve"], CURVE_COLUMNS),
        ]
    )


def plot(payload: dict, stem: str) -> list:
    """Recovery rate against P / (s log N), both solvers; sparsity against discrepancy."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from plots import log_axis, save, subplots

    fig, (left, right) = subplots(2, width=5.6, height=4.5)
    scale = S * np.log(N)
    styles = {"admm": {"fmt": "o-", "ms": 9}, "clarabel": {"fmt": "s--", "ms": 5}}
    for solver in SOLVERS:
        rows = [r for r in payload["phase"] if r["solver"] == solver]
        fmt = styles[solver]["fmt"]
        left.plot(
            [r["ratio"] for r in rows],
            [r["rate"] for r in rows],
            fmt,
            ms=styles[solver]["ms"],
            mfc="none",
            label=solver,
        )
    for mu, style in ((MU, "--"), (1.0, ":")):
        x = theorem3_samples(S, N, mu=mu) / scale if mu > 1 else (11 * S + 7) / S
        left.axvline(
            x,
            color="tab:red",
            ls=style,
            label=f"Theorem 3, mu = {mu:g}" + ("" if mu > 1 else " (limit)"),
        )
    trials = payload["phase"][0]["trials"]
    log_axis(left)
    left.set(
        xlabel="P / (s log N)",
        ylabel=f"exact recovery rate ({trials} trials)",
        ylim=(-0.03, 1.03),
        title=f"Recovery of a planted w*: N = {N}, s = {S}, eps = 0",
    )
    top = left.secondary_xaxis("top", functions=(lambda r: r * scale, lambda p: p / scale))
    top.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    top.xaxis.set_minor_formatter(NullFormatter())
    top.set_xlabel("samples P")
    left.set_title(left.get_title(), pad=12)
    left.legend(loc="center right")
    for scheme, color in (("parallel", "tab:blue"), ("cascade", "tab:orange")):
        rows = sorted(
            (r for r in payload["curve"] if r["scheme"] == scheme), key=lambda r: r["eps"]
        )
        for key, style, where in (
            ("discrepancy_calib", "o-", "calibration"),
            ("discrepancy_test", "^:", "test"),
        ):
            right.plot(
                [r[key] for r in rows],
                [100 * r["removed"] for r in rows],
                style,
                color=color,
                label=f"{scheme}, {where}",
            )
    log_axis(right)
    right.set(
        xlabel="relative output discrepancy ||Yhat - Y||_F / ||Y||_F",
        ylabel="weights removed (%)",
        title="Digits 64-128-128-10: sparsity against discrepancy",
    )
    right.legend()
    return [save(fig, stem)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and points (CI)")
    parser.add_argument("--trials", type=int, help="trials per sample count")
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    if args.trials:
        config["trials"] = args.trials
    info = machine_info()
    print(format_machine(info), flush=True)
    payload = {
        "benchmark": "theorem3",
        "quick": args.quick,
        "machine": info,
        "N": N,
        "s": S,
        "mu": MU,
        "recovery_tol": RECOVERY_TOL,
        "theorem3_samples": theorem3_samples(S, N, mu=MU),
        "config": config,
        "phase": phase_transition(config["ratios"], config["trials"]),
        "curve": sparsity_curve(config["eps"], config["calib"]),
    }
    text = report(payload)
    print(text)
    name = "theorem3_quick" if args.quick else "theorem3"
    print("wrote", *write_results(name, payload, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A tall conv program by row generation against the same program on all rows.

The case: the first conv layer of a small CNN on scikit-learn's 8x8 digits (1 -> 8
channels, 3x3, padding 1, ReLU; then 2x2 max-pooling and a linear classifier), trained here
with PyTorch (CPU, seed 0, one thread) on the bundled network's 1257 calibration images
(``nettrim.load_digits_mlp``'s split; test accuracy on its 540 held-out images). Its
program, built from nettrim's own patch rows (``Conv2dLayer.program_input``, float32 as the
model computes), has 1257 x 64 = 80448 rows, 9 inputs + the bias, 8 outputs; layer-wide
(P1) with relative eps = 0.05.

Both paths solve it with the same ADMM settings (the defaults) and one BLAS thread:
``solve_admm`` on all rows, and ``solve_row_generation`` (``docs/solvers.md``, "Tall
programs"). Every figure is measured on all rows: objective, certified relative gap, ball
excess over the radius, violation off Omega over ``max |Y|``. Seconds are also given in
units of one ``X @ W`` product of the layer's size (``(n, 10) @ (10, 8)`` float32, the
median of many, timed in the same run). Target (issue 18): at most 1000 such products,
feasible and certified on all rows. Row generation is timed as the median of three solves,
which must return the same weights bit for bit.

A second, wide case: the second conv of a CNN with 16 -> 32 channels (145 inputs with the
bias, 32 outputs, the same 80448 rows), solved on all rows and by row generation in both
layouts of a round's program (``vec(W)``, whose Gram is ``(32 x 145)^2``, and the shared
``(n, m)`` one that ``layout="auto"`` takes there), timed once each; then two reweighted-L1
rounds on it by row generation, each round generating its rows again or starting from the
last one's rows and ADMM state (target, issue 18: a round at most 1.5x a plain solve).

``--quick`` (CI): the first 300 images (19200 rows; the wide case 150 images), fewer
training epochs.
Results: ``benchmarks/results/tall[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from machine import column_table, format_machine, machine_info, write_results
from nettrim import load_digits_mlp
from nettrim.conv import conv_weight_to_dense
from nettrim.layer import build_problem
from nettrim.network import Conv2dLayer
from nettrim.reweighted import Reweighting, reweight_rounds, round_settings
from nettrim.solvers.admm import AdmmSettings, solve_admm
from nettrim.solvers.row_generation import solve_row_generation

EPS = 0.05
TARGET_PRODUCTS = 1000
FULL = {"images": None, "epochs": 30, "wide_images": None, "wide_flat": True, "sweep": True}
#: quick: the wide case without its flat layout (four eigendecompositions of its 4640 x 4640
#: Gram, over a minute whatever the rows)
QUICK = {"images": 300, "epochs": 10, "wide_images": 150, "wide_flat": False, "sweep": False}
#: Patch rows per image: the 8 x 8 outputs of a 3x3 conv with padding 1.
PIXELS = 64
#: The wide layer's first images of the threshold sweep (``prune_model``'s ``TALL_FACTOR``).
SWEEP_IMAGES = (150, 300, 600)
#: The wide case: the second conv of a CNN with these channels (16 -> 32, 3x3).
WIDE_CHANNELS = (16, 32)
LAYOUTS = ("shared", "flat")
REPEATS = 3
SEED = 0
#: Reweighting rounds after the plain solve in the reweighting section.
REWEIGHT_ROUNDS = 2
#: Issue 18's target: a reweighting round at most this many times a plain solve.
TARGET_ROUND_RATIO = 1.5
#: ``row_scale`` values of the sweep (``None``: the generated rows unscaled).
ROW_SCALES = (None, 0.03, 0.1, 0.3, 1.0)


def train_cnn(x: np.ndarray, y: np.ndarray, x_test, y_test, epochs: int, channels=(8,)):
    """A CNN (convs 3x3 pad 1 with ``channels`` outputs, each with a ReLU, max-pool 2,
    linear to 10), Adam, batches of 64, deterministic (seed, one thread); its conv layers
    (nettrim's) and test accuracy."""
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    convs, c_in = [], 1
    for c_out in channels:
        convs += [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.ReLU()]
        c_in = c_out
    net = torch.nn.Sequential(
        *convs,
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * c_in, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        predicted = net(torch.tensor(x_test, dtype=torch.float32)).argmax(1).numpy()
    layers, c_in = [], 1
    for conv in net[: 2 * len(channels) : 2]:
        layers.append(
            Conv2dLayer(
                W=conv_weight_to_dense(conv.weight.detach().numpy()),
                b=conv.bias.detach().numpy(),
                in_shape=(c_in, 8, 8),
                kernel_size=3,
                padding=1,
            )
        )
        c_in = conv.out_channels
    return layers, float(np.mean(predicted == y_test))


def conv_problem(config: dict, channels=(8,)):
    """The last conv layer's (P1) on its patch rows (its input recorded by nettrim's
    layers, float32 as the model computes), and the CNN's test accuracy."""
    model = load_digits_mlp()
    images = model.X_calib.reshape(-1, 1, 8, 8).astype(np.float32)
    layers, accuracy = train_cnn(
        images,
        model.y_calib,
        model.X_test.reshape(-1, 1, 8, 8),
        model.y_test,
        config["epochs"],
        channels,
    )
    x = images[: config["images"]]
    for layer in layers[:-1]:
        x = layer(x)
    layer = layers[-1]
    X = layer.program_input(x).astype(np.float32)
    Y = layer.program_output(layer(x)).astype(np.float32)
    problem = build_problem(
        X, Y, activation="relu", eps=EPS, relative=True, per_neuron=False, bias=True,
        penalize_bias=True, upper=None, penalty=None, active_tol=0.0,
    )  # fmt: skip
    return problem, accuracy


def product_seconds(problem, repeats: int = 200) -> float:
    """The median time of one ``X @ W`` of the layer's size (``W`` of the program's)."""
    W = np.random.default_rng(SEED).standard_normal(problem.shape[1:]).astype(problem.dtype)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        problem.X @ W
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def warm_up(problem) -> None:
    """Load the numba kernels (both paths) on a slice, so that no timing holds a compile."""
    rows = slice(0, 2000)
    part = build_problem(
        problem.X[rows, :-1], problem.Y[rows], activation="relu", eps=EPS, relative=True,
        per_neuron=False, bias=True, penalize_bias=True, upper=None, penalty=None,
        active_tol=0.0,
    )  # fmt: skip
    solve_row_generation(part, AdmmSettings(max_iter=40))
    solve_admm(part, AdmmSettings(max_iter=40))


def row(problem, name: str, result, seconds: float, unit: float) -> dict:
    info = problem_figures(problem, result)
    extra = result.info.extra
    return {
        "path": name,
        "status": str(result.status),
        "seconds": seconds,
        "products": seconds / unit,
        "rounds": extra.get("rounds", 1),
        "rows": extra.get("rows", problem.shape[0]),
        "entries": extra.get("entries"),
        "iterations": result.info.iterations,
        "round_iterations": extra.get("round_iterations"),
        **info,
    }


def problem_figures(problem, result) -> dict:
    """Objective, certified gap, feasibility on ALL rows of the full program."""
    W = result.W.astype(np.float64)
    full = problem.evaluate(W)
    y_max = problem.target_scale[2]
    settings = AdmmSettings()
    feasible = problem.is_feasible(problem.column_residuals(W), full["violation"], 1e-3)
    gap = (full["objective"] - result.info.dual_bound) / abs(full["objective"])
    return {
        "objective": full["objective"],
        "rel_gap": gap,
        "excess_over_radius": full["ball_excess"] / full["radius"],
        "violation_over_ymax": full["violation"] / y_max,
        "feasible": bool(feasible),
        "certified": bool(feasible and gap <= settings.gap_tol),
        "nnz": int(np.count_nonzero(result.W)),
    }


def run(config: dict) -> dict:
    problem, accuracy = conv_problem(config)
    n, d, m = problem.shape
    print(f"conv layer: {n} rows, {d} inputs (bias included), {m} outputs; test acc {accuracy:.3f}")
    with threadpool_limits(1):
        warm_up(problem)
        units = [product_seconds(problem)]
        started = time.perf_counter()
        full = solve_admm(problem)
        full_seconds = time.perf_counter() - started
        units.append(product_seconds(problem))
        times, results = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            results.append(solve_row_generation(problem))
            times.append(time.perf_counter() - started)
        units.append(product_seconds(problem))
        sweep = []
        for scale in ROW_SCALES:
            started = time.perf_counter()
            result = solve_row_generation(problem, row_scale=scale)
            seconds = time.perf_counter() - started
            sweep.append((scale, result, seconds))
        units.append(product_seconds(problem))
    unit = float(np.median(units))
    scales = [
        {"row_scale": "unscaled" if s is None else s, **row(problem, "", r, t, unit)}
        for s, r, t in sweep
    ]
    identical = all(np.array_equal(r.W, results[0].W) for r in results)
    rows = [
        row(problem, "all rows (solve_admm)", full, full_seconds, unit),
        row(problem, "row generation", results[0], float(np.median(times)), unit),
    ]
    return {
        "n": n,
        "d": d,
        "m": m,
        "eps": EPS,
        "test_accuracy": accuracy,
        "product_seconds": unit,
        "product_seconds_all": units,
        "row_generation_seconds": times,
        "deterministic": identical,
        "distinct_rows": results[0].info.extra["distinct_rows"],
        "rows": rows,
        "row_scales": scales,
    }


def run_wide(config: dict) -> dict:
    """The second conv of a wider CNN (16 -> 32 channels: 145 inputs with the bias, 32
    outputs): all rows against row generation in both layouts (``layout="auto"`` takes the
    shared one here, ``32 x 145`` far above ``FLAT_SIZE``)."""
    images = {"images": config["wide_images"], "epochs": config["epochs"]}
    problem, accuracy = conv_problem(images, WIDE_CHANNELS)
    n, d, m = problem.shape
    print(f"wide conv layer: {n} rows, {d} inputs (bias included), {m} outputs", flush=True)
    with threadpool_limits(1):
        warm_up(problem)
        units = [product_seconds(problem, repeats=50)]
        started = time.perf_counter()
        results = [("all rows (solve_admm)", solve_admm(problem))]
        times = [time.perf_counter() - started]
        for layout in LAYOUTS if config["wide_flat"] else LAYOUTS[:1]:
            started = time.perf_counter()
            results.append(
                (f"row generation, {layout}", solve_row_generation(problem, layout=layout))
            )
            times.append(time.perf_counter() - started)
        units.append(product_seconds(problem, repeats=50))
        rounds = reweighting(problem)
        sweep = threshold_sweep(problem) if config["sweep"] else []
    unit = float(np.median(units))
    rows = [row(problem, name, r, t, unit) for (name, r), t in zip(results, times, strict=True)]
    return {
        "reweighting": rounds,
        "sweep": sweep,
        "n": n,
        "d": d,
        "m": m,
        "channels": list(WIDE_CHANNELS),
        "test_accuracy": accuracy,
        "product_seconds": unit,
        "distinct_rows": results[1][1].info.extra["distinct_rows"],
        "rows": rows,
    }


def reweighting(problem) -> dict:
    """Reweighted-L1 rounds by row generation (the rule of ``reweight_rounds``), each
    round either generating its rows again from the last weights alone, or starting from
    the last round's result: its generated rows and ADMM state (what ``rows="generate"``
    with ``reweight_rounds`` does). Seconds over the plain solve's."""
    d_in = problem.shape[1] - 1
    settings = AdmmSettings()
    started = time.perf_counter()
    first = solve_row_generation(problem, settings, keep_state=True)
    plain = time.perf_counter() - started
    out = {
        "rounds": REWEIGHT_ROUNDS,
        "plain_seconds": plain,
        "plain_iterations": first.info.iterations,
        "plain_nnz": int(np.count_nonzero(first.W[:d_in])),
        "modes": [],
    }
    for mode, carry in (("rows generated again", False), ("rows and state carried", True)):

        def solve(weighted, start, final, carry=carry):
            return solve_row_generation(
                weighted,
                round_settings(settings, final),
                warm_start=start if carry else start.W,
                keep_state=True,
            )

        started = time.perf_counter()
        kept, extra = reweight_rounds(
            problem, first, Reweighting(rounds=REWEIGHT_ROUNDS), solve, d_in=d_in,
            keep_l1=True, loose=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        full = problem.evaluate(kept.W.astype(np.float64))
        feasible = problem.is_feasible(
            problem.column_residuals(kept.W.astype(np.float64)), full["violation"], 1e-3
        )
        out["modes"].append(
            {
                "mode": mode,
                "seconds": seconds,
                "done": extra["rounds"],
                "per_round_over_plain": seconds / max(extra["rounds"], 1) / plain,
                "round_iterations": extra["round_iterations"][1:],
                "recertify_iterations": extra["recertify_iterations"],
                "nnz_history": extra["nnz_history"],
                "objective": full["objective"],
                "feasible": bool(feasible),
                "certified": bool(kept.info.extra["certified"]),
            }
        )
        print(f"  reweighting, {mode}: {seconds:.2f}s", flush=True)
    return out


def threshold_sweep(problem) -> list[dict]:
    """All rows against row generation on the wide layer's first images (its program's
    rows of those images), by their rows over the reduced ball's ``d m``."""
    out = []
    for images in SWEEP_IMAGES:
        rows = slice(0, images * PIXELS)
        part = build_problem(
            problem.X[rows, :-1], problem.Y[rows], activation="relu", eps=EPS, relative=True,
            per_neuron=False, bias=True, penalize_bias=True, upper=None, penalty=None,
            active_tol=0.0,
        )  # fmt: skip
        n, d, m = part.shape
        started = time.perf_counter()
        full = solve_admm(part)
        full_seconds = time.perf_counter() - started
        started = time.perf_counter()
        generated = solve_row_generation(part)
        seconds = time.perf_counter() - started
        out.append(
            {
                "images": images,
                "n": n,
                "times_reduced": n / (d * m),
                "all_rows_seconds": full_seconds,
                "row_generation_seconds": seconds,
                "speedup": full_seconds / seconds,
                "all_rows_objective": full.info.objective,
                "row_generation_objective": generated.info.objective,
                "certified": bool(generated.info.extra["certified"]),
            }
        )
        print(f"  sweep: {images} images, {out[-1]['speedup']:.2f}x", flush=True)
    return out


SWEEP_COLUMNS = [
    ("images", "images", "d"),
    ("rows", "n", "d"),
    ("rows / (d m)", "times_reduced", ".1f"),
    ("all rows s", "all_rows_seconds", ".2f"),
    ("row generation s", "row_generation_seconds", ".2f"),
    ("speedup", "speedup", ".2f"),
    ("certified", lambda r: "yes" if r["certified"] else "no"),
]


COLUMNS = [
    ("path", "path", ""),
    ("seconds", "seconds", ".2f"),
    ("X@W products", "products", ".0f"),
    ("rounds", "rounds", "d"),
    ("rows", "rows", "d"),
    ("iterations", "iterations", "d"),
    ("objective", "objective", ".4f"),
    ("rel gap", "rel_gap", ".1e"),
    ("excess/radius", "excess_over_radius", ".1e"),
    ("violation/max abs Y (all rows)", "violation_over_ymax", ".1e"),
    ("feasible", lambda r: "yes" if r["feasible"] else "no"),
    ("certified", lambda r: "yes" if r["certified"] else "no"),
]


SCALE_COLUMNS = [
    ("row_scale", "row_scale", ""),
    ("seconds", "seconds", ".2f"),
    ("X@W products", "products", ".0f"),
    ("rounds", "rounds", "d"),
    ("entries", "entries", "d"),
    ("iterations", "iterations", "d"),
    ("objective", "objective", ".4f"),
    ("feasible", lambda r: "yes" if r["feasible"] else "no"),
    ("certified", lambda r: "yes" if r["certified"] else "no"),
]


def target_line(result: dict) -> str:
    generated = result["rows"][1]
    met = (
        generated["products"] <= TARGET_PRODUCTS
        and generated["feasible"]
        and generated["certified"]
    )
    return (
        f"Target: <= {TARGET_PRODUCTS} X@W products, feasible and certified on all "
        f"{result['n']} rows: {'met' if met else 'NOT met'} "
        f"({generated['products']:.0f} products, "
        f"{'feasible' if generated['feasible'] else 'infeasible'}, "
        f"{'certified' if generated['certified'] else 'not certified'})"
    )


def report(payload: dict) -> str:
    result = payload["result"]
    full, generated = result["rows"]
    lines = [
        f"# Tall conv program: row generation{' (quick)' if payload['quick'] else ''}",
        "",
        format_machine(payload["machine"]),
        "",
        f"Digits CNN conv 1 -> 8 (3x3, padding 1), {result['n']} patch rows, "
        f"{result['d']} inputs (bias included), {result['m']} outputs, eps {result['eps']} "
        f"(relative, layer-wide), float32; CNN test accuracy {result['test_accuracy']:.3f}. "
        f"One X@W product: {result['product_seconds'] * 1e3:.3f} ms (median, 1 BLAS thread). "
        f"Row generation: median of {REPEATS} solves, bit-identical: "
        f"{'yes' if result['deterministic'] else 'NO'}.",
        "",
        column_table(result["rows"], COLUMNS),
        "",
        f"- row generation: {full['seconds'] / generated['seconds']:.0f}x faster than all "
        f"rows; objective {100 * (generated['objective'] / full['objective'] - 1):+.2f}% "
        f"against it; {generated['entries']} generated entries (row, column) on "
        f"{generated['rows']} rows ({result['distinct_rows']} distinct rows of {result['n']}); "
        f"iterations per round {generated['round_iterations']}",
        f"- {target_line(result)}",
        "",
        "## The generated rows' scale (row_scale: their median norm over the ball rows')",
        "",
        column_table(result["row_scales"], SCALE_COLUMNS),
        "",
        *wide_report(payload["wide"]),
    ]
    return "\n".join(lines)


def wide_report(wide: dict) -> list[str]:
    full, shared, *flat = wide["rows"]
    n, d, m = wide["n"], wide["d"], wide["m"]
    versus = ""
    if flat:
        versus = (
            f", {flat[0]['seconds'] / shared['seconds']:.1f}x faster than the flat layout "
            f"(objective {100 * (flat[0]['objective'] / full['objective'] - 1):+.2f}%, "
            f"iterations per round {flat[0]['round_iterations']})"
        )
    return [
        "## A wide conv layer: the two layouts of a round's program",
        "",
        f"The second conv of a digits CNN with {' -> '.join(map(str, wide['channels']))} "
        f"channels (3x3, padding 1; test accuracy {wide['test_accuracy']:.3f}): {n} patch "
        f"rows, {d} inputs (bias included), {m} outputs, {wide['distinct_rows']} distinct "
        f"rows. One X@W product: {wide['product_seconds'] * 1e3:.3f} ms. The flat layout "
        f"(vec(W)) factors a {m * d} x {m * d} Gram ({(m * d) ** 2 * 8 / 1e6:.0f} MB in "
        f"float64) in every round, the shared one a {d} x {d} Gram; `layout='auto'` takes "
        f"the shared one.{'' if flat else ' Quick run: the flat layout is not timed.'}",
        "",
        column_table(wide["rows"], COLUMNS),
        "",
        f"- shared layout: {full['seconds'] / shared['seconds']:.1f}x faster than all rows "
        f"(objective {100 * (shared['objective'] / full['objective'] - 1):+.2f}%, iterations "
        f"per round {shared['round_iterations']}){versus}",
        *reweighting_report(wide.get("reweighting")),
        *sweep_report(wide.get("sweep", [])),
    ]


REWEIGHT_COLUMNS = [
    ("rounds' rows", "mode", ""),
    ("seconds", "seconds", ".2f"),
    ("rounds", "done", "d"),
    ("a round / plain solve", "per_round_over_plain", ".2f"),
    ("iterations per round", lambda r: str(r["round_iterations"])),
    ("recertify iterations", "recertify_iterations", "d"),
    ("non-zeros per round", lambda r: str(r["nnz_history"])),
    ("objective (plain L1)", "objective", ".4f"),
    ("feasible (all rows)", lambda r: "yes" if r["feasible"] else "no"),
    ("certified (weighted)", lambda r: "yes" if r["certified"] else "no"),
]


def reweighting_report(rounds: dict | None) -> list[str]:
    if not rounds:
        return []
    carried = rounds["modes"][-1]
    ratio = carried["per_round_over_plain"]
    met = ratio <= TARGET_ROUND_RATIO and carried["feasible"] and carried["certified"]
    return [
        "",
        "### Reweighting rounds by row generation",
        "",
        f"{rounds['rounds']} reweighted-L1 rounds after the plain solve "
        f"({rounds['plain_seconds']:.2f} s, {rounds['plain_iterations']} iterations, "
        f"{rounds['plain_nnz']} non-zeros), the rounds between the plain solve and the last "
        "to the intermediate gap (`reweighted.INTERMEDIATE_GAP_TOL`); each round from the "
        "last one's weights alone, generating its rows again, or from its result (its rows "
        "and ADMM state: `rows='generate'` with `reweight_rounds`).",
        "",
        column_table(rounds["modes"], REWEIGHT_COLUMNS),
        "",
        f"- Target: a reweighting round at most {TARGET_ROUND_RATIO}x a plain solve "
        f"(rows and state carried): {'met' if met else 'NOT met'} ({ratio:.2f}x; "
        f"{rounds['modes'][0]['per_round_over_plain']:.2f}x with the rows generated again)",
    ]


def sweep_report(sweep: list[dict]) -> list[str]:
    if not sweep:
        return []
    return [
        "",
        "### Row generation against all rows by the program's height",
        "",
        "The wide layer's first images; `prune_model(rows='generate')` applies to programs "
        "of at least `TALL_FACTOR` (4) times `d m` rows.",
        "",
        column_table(sweep, SWEEP_COLUMNS),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 images (CI)")
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    info = machine_info()
    print(format_machine(info), flush=True)
    payload = {
        "benchmark": "tall",
        "quick": args.quick,
        "machine": info,
        "config": config,
        "result": run(config),
        "wide": run_wide(config),
    }
    text = report(payload)
    print(text)
    name = "tall_quick" if args.quick else "tall"
    print("wrote", *write_results(name, payload, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())

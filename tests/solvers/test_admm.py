"""The ADMM against the exact solver, its certificate, and its guarantees."""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest

from nettrim.layer import build_problem
from nettrim.solvers import (
    AdmmSettings,
    AdmmState,
    Status,
    dual_bound,
    solve_admm,
    solve_exact,
)
from nettrim.solvers.admm import working_dtype

# ADMM stops at a certified relative gap of 1e-3 by default; tests ask for 1e-5 so the
# objective can be compared with Clarabel's (itself accurate to ~1e-8) at 1e-4.
TIGHT = AdmmSettings(gap_tol=1e-5, feas_tol=1e-5, max_iter=50000)


def make_layer(seed, n, d_in, d_out, *, density=0.3, relu=True, bias=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    W = rng.standard_normal((d_in, d_out)) * (rng.random((d_in, d_out)) < density)
    b = 0.3 * rng.standard_normal(d_out) if bias else np.zeros(d_out)
    Z = X @ W + b
    return X, (np.maximum(Z, 0) if relu else Z)


def problem(X, Y, **kw):
    options = dict(
        activation="relu",
        eps=0.1,
        relative=True,
        per_neuron=False,
        bias=True,
        penalize_bias=True,
        upper=None,
        penalty=None,
        active_tol=0.0,
    )
    options.update(kw)
    return build_problem(X, Y, **options)


CASES = {
    "relu n>d layer-wide": dict(shape=(80, 10, 4), kw={}),
    "relu n<d layer-wide": dict(shape=(14, 20, 3), kw={}),
    "relu per-neuron": dict(shape=(60, 8, 5), kw=dict(per_neuron=True)),
    "relu no bias": dict(shape=(60, 8, 4), kw=dict(bias=False), bias=False),
    "relu unpenalized bias": dict(shape=(60, 8, 4), kw=dict(penalize_bias=False)),
    "relu upper": dict(shape=(60, 8, 4), kw=dict(upper="random")),
    "linear": dict(shape=(50, 12, 4), kw=dict(activation="linear"), relu=False),
    "linear n<d per-neuron": dict(
        shape=(10, 16, 3), kw=dict(activation="linear", per_neuron=True), relu=False
    ),
    "relu penalized": dict(shape=(60, 8, 4), kw=dict(penalty=5.0)),
    # reweighted L1: per-entry weights, a wide spread as in a late reweighting round
    "relu entry weights": dict(shape=(70, 9, 4), kw={}, entry_weights=True),
    "relu entry weights per-neuron": dict(
        shape=(70, 9, 4), kw=dict(per_neuron=True), entry_weights=True
    ),
    "relu entry weights n<d": dict(shape=(12, 18, 3), kw={}, entry_weights=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_admm_matches_clarabel(name):
    case = CASES[name]
    n, d_in, d_out = case["shape"]
    X, Y = make_layer(
        zlib.crc32(name.encode()) % 1000,
        n,
        d_in,
        d_out,
        relu=case.get("relu", True),
        bias=case.get("bias", True),
    )
    kw = dict(case["kw"])
    if kw.get("upper") == "random":
        kw["upper"] = np.abs(np.random.default_rng(1).standard_normal(Y.shape)) * 0.2
    p = problem(X, Y, **kw)
    if case.get("entry_weights"):
        d = p.X.shape[1]
        p = replace(p, entry_weights=np.exp(np.random.default_rng(2).uniform(-3, 3, (d, d_out))))
    exact = solve_exact(p, solver="clarabel")
    fast = solve_admm(p, TIGHT)
    assert exact.status == "optimal"
    assert fast.status == "optimal", fast.info.message
    # objectives agree (both solvers accurate well below this)
    assert fast.info.objective == pytest.approx(exact.info.objective, rel=2e-4)
    # the certificate is a true lower bound: never above the exact optimum (beyond rounding)
    assert fast.info.dual_bound <= exact.info.objective * (1 + 1e-7) + 1e-9
    # the gap is never negative (it certifies the returned point, feasible or not) ...
    assert fast.info.gap >= -1e-9 * abs(fast.info.objective)
    # ... and it bounds the distance of the objective to the optimum
    assert fast.info.objective - exact.info.objective <= fast.info.gap + 1e-6
    # returned weights are feasible to the tolerance asked
    y_max = np.abs(p.Y).max()
    assert fast.info.violation <= 1e-5 * y_max + 1e-9
    if not p.penalized:
        radius = p.radius if p.per_column else float(p.radius)
        assert (
            np.all(p.column_residuals(fast.W) <= np.asarray(radius) * (1 + 1e-5) + 1e-9)
            if p.per_column
            else fast.info.residual <= radius * (1 + 1e-5)
        )


def test_default_settings_give_a_certified_gap():
    X, Y = make_layer(3, 200, 20, 12)
    p = problem(X, Y)
    result = solve_admm(p)
    assert result.status == "optimal"
    assert result.info.gap >= -1e-9 * result.info.objective
    assert result.info.gap <= 1e-3 * result.info.objective * 1.0001
    assert result.info.ball_excess <= 1e-3 * result.info.radius


@pytest.mark.parametrize("entry_weights", [False, True])
def test_dual_bound_never_exceeds_optimum_from_any_multiplier(entry_weights):
    X, Y = make_layer(5, 50, 8, 4)
    p = problem(X, Y, upper=np.full(Y.shape, 0.1))
    if entry_weights:
        p = replace(p, entry_weights=np.random.default_rng(3).uniform(0.1, 10.0, (9, 4)))
    exact = solve_exact(p, solver="clarabel")
    rng = np.random.default_rng(0)
    for _ in range(20):
        Lam = rng.standard_normal(Y.shape) * rng.uniform(0.01, 10)
        assert dual_bound(p, Lam) <= exact.info.objective * (1 + 1e-8)


def test_exactly_sparse_and_bit_identical():
    X, Y = make_layer(7, 150, 16, 8)
    p = problem(X, Y)
    first = solve_admm(p)
    second = solve_admm(p)
    assert np.array_equal(first.W, second.W)
    assert np.count_nonzero(first.W == 0) > 0


def test_eps_zero_recovers_planted_weights():
    rng = np.random.default_rng(11)
    N, s = 40, 3
    w = np.zeros((N, 1))
    w[rng.choice(N, s, replace=False), 0] = rng.standard_normal(s)
    P = int(np.ceil((11 * s + 7) * 1.5 * np.log(N)))
    X = rng.standard_normal((P, N))
    Y = np.maximum(X @ w, 0)
    p = problem(X, Y, eps=0.0, bias=False)
    result = solve_admm(p, AdmmSettings(gap_tol=1e-6, feas_tol=1e-6, max_iter=50000))
    assert result.status == "optimal"
    np.testing.assert_allclose(result.W, w, atol=1e-3 * np.abs(w).max())


def test_infeasible_program_is_reported():
    X, Y = make_layer(2, 60, 6, 3)
    # pre-activations must be <= -5 where Y == 0, yet near Y on Omega with a tiny budget
    p = problem(X, Y, eps=1e-3, upper=np.full(Y.shape, -5.0))
    assert solve_exact(p, solver="clarabel").status == "infeasible"
    result = solve_admm(p, AdmmSettings(max_iter=20000))
    assert result.status == "infeasible"
    assert result.W is None


def test_linear_infeasible_when_target_outside_range():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 3))
    Y = rng.standard_normal((30, 2))  # far from the 3-dimensional range of X
    p = problem(X, Y, activation="linear", eps=0.0, bias=False)
    result = solve_admm(p, AdmmSettings(max_iter=20000))
    assert result.status == "infeasible"


def _certifies_infeasibility(p, D):
    """Check a Farkas ray by hand: X^T D = 0, D >= 0 off Omega, negative support value."""
    assert np.abs(p.X.T @ D).max() <= 1e-6 * np.sqrt(D.shape[0])
    active = p.active if p.active is not None else np.ones(D.shape, dtype=bool)
    assert (D[~active] >= 0).all()
    D_on = np.where(active, D, 0.0)
    support = np.vdot(D_on, p.Y) + np.sum(np.where(active, 0.0, D * p.upper_bounds()))
    support += float(p.radius) * np.linalg.norm(D_on)
    return support < 0


@pytest.mark.parametrize("case", ["relu upper", "linear outside the range"])
def test_infeasible_result_carries_its_farkas_certificate(case):
    if case == "relu upper":
        X, Y = make_layer(2, 60, 6, 3)
        p = problem(X, Y, eps=1e-3, upper=np.full(Y.shape, -5.0))
    else:
        rng = np.random.default_rng(4)
        X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
        p = problem(X, Y, activation="linear", eps=0.0, bias=False)
    result = solve_admm(p, AdmmSettings(max_iter=20000))
    assert result.status == "infeasible"
    D = result.info.infeasibility_certificate
    assert D is not None and D.shape == p.Y.shape
    assert np.abs(D).max() == pytest.approx(1.0)
    assert _certifies_infeasibility(p, D)  # in the caller's units, not the scaled ones


def test_feasible_result_has_no_certificate():
    X, Y = make_layer(3, 60, 6, 3)
    assert solve_admm(problem(X, Y)).info.infeasibility_certificate is None


def test_former_module_knobs_are_settings_fields():
    from nettrim.solvers import admm

    defaults = AdmmSettings()
    for name in (
        "FREEZE_FRACTION",
        "DEFAULT_RHO",
        "SEPARABLE_RHO",
        "FARKAS_EVERY",
        "MIXED_PRECISION_MIN_TOL",
        "MIXED_ROUNDING",
        "REPAIR_MAX_VIOLATION",
        "REPAIR_GAP_FRACTION",
    ):
        assert getattr(admm, name) == getattr(defaults, name.lower())
    with pytest.raises(ValueError, match="farkas_every"):
        AdmmSettings(farkas_every=0)
    with pytest.raises(ValueError, match="separable_rho"):
        AdmmSettings(separable_rho=-1.0)


def test_initial_penalty_fields_are_used():
    X, Y = make_layer(5, 60, 8, 4)
    p = problem(X, Y, per_neuron=True)
    base = solve_admm(p, AdmmSettings(adaptive_rho=False, max_iter=40))
    other = solve_admm(p, AdmmSettings(adaptive_rho=False, max_iter=40, separable_rho=3.0))
    assert base.info.extra["rho"] == pytest.approx(100.0)
    assert other.info.extra["rho"] == pytest.approx(3.0)


@pytest.mark.parametrize("per_neuron", [False, True])
def test_integer_initial_penalties_adapt(per_neuron):
    """An integer penalty (``default_rho=100``) is a float penalty: the adaptation scales
    it (it raised a casting error once)."""
    X, Y = make_layer(5, 60, 8, 4)
    p = problem(X, Y, per_neuron=per_neuron)
    as_int = solve_admm(p, AdmmSettings(default_rho=100, separable_rho=100))
    as_float = solve_admm(p, AdmmSettings(default_rho=100.0, separable_rho=100.0))
    np.testing.assert_array_equal(as_int.W, as_float.W)


def test_stop_reasons_name_status_and_message():
    from nettrim.solvers.admm import REPAIRED_MESSAGE, Stop

    settings = AdmmSettings(max_iter=7, time_limit=2.5)
    assert Stop.MAX_ITER.message(settings) == "reached max_iter=7"
    assert Stop.TIME_LIMIT.message(settings) == "reached time_limit=2.5s"
    assert Stop.REPAIRED.message(settings) == REPAIRED_MESSAGE
    assert Stop.INFEASIBLE.status == Status.INFEASIBLE
    assert {s.status for s in Stop} == {Status.OPTIMAL, Status.INFEASIBLE, Status.MAX_ITER}
    result = solve_admm(problem(*make_layer(6, 60, 8, 4)), settings)
    assert result.status == "max_iter" and result.info.message == "reached max_iter=7"


def test_float32_path():
    X, Y = make_layer(8, 300, 24, 16)
    p64 = problem(X, Y)
    p32 = problem(X.astype(np.float32), Y.astype(np.float32))
    r64 = solve_admm(p64)
    r32 = solve_admm(p32)
    assert r32.W.dtype == np.float32
    assert r32.status == "optimal"
    assert r32.info.objective == pytest.approx(r64.info.objective, rel=5e-3)


def test_float32_iterations_on_a_float64_problem():
    """precision="auto": float32 iterations, float64 weights measured and certified in float64."""
    X, Y = make_layer(8, 300, 24, 16)
    p = problem(X, Y)
    mixed = solve_admm(p)
    full = solve_admm(p, AdmmSettings(precision="float64"))
    assert mixed.info.extra["precision"] == "float32"
    assert full.info.extra["precision"] == "float64"
    assert mixed.W.dtype == np.float64
    assert mixed.status == "optimal"
    # the figures are those of the returned float64 weights, measured in float64
    figures = p.evaluate(mixed.W)
    assert mixed.info.objective == pytest.approx(figures["objective"], rel=1e-12)
    assert mixed.info.residual == pytest.approx(figures["residual"], rel=1e-9)
    assert mixed.info.ball_excess <= 1e-3 * mixed.info.radius
    assert mixed.info.violation <= 1e-3 * np.abs(Y).max()
    # both certified within the default gap of the same optimum
    assert mixed.info.objective == pytest.approx(full.info.objective, rel=2e-3)
    assert mixed.info.dual_bound <= full.info.objective * (1 + 1e-9)
    assert full.info.dual_bound <= mixed.info.objective * (1 + 1e-9)


@pytest.mark.parametrize(
    ("settings", "eps", "expected"),
    [
        (AdmmSettings(), 0.1, "float32"),
        (AdmmSettings(gap_tol=1e-5), 0.1, "float64"),  # tighter than float32 can certify
        (AdmmSettings(feas_tol=1e-6), 0.1, "float64"),
        (AdmmSettings(), 0.0, "float64"),  # eps = 0 asks for an exact fit
        (AdmmSettings(precision="float32", gap_tol=1e-5), 0.1, "float32"),
    ],
)
def test_auto_precision_rule(settings, eps, expected):
    X, Y = make_layer(11, 60, 8, 3)
    few = problem(X[:5], Y[:5], eps=eps)  # n < d: the Woodbury solve needs float64
    assert working_dtype(few, settings) == np.dtype(settings.precision.replace("auto", "float64"))
    p = problem(X, Y, eps=eps)
    assert working_dtype(p, settings) == np.dtype(expected)
    p32 = problem(X.astype(np.float32), Y.astype(np.float32), eps=eps)
    assert working_dtype(p32, settings) == np.float32 or settings.precision == "float64"


@pytest.mark.parametrize("kw", [dict(per_neuron=True), dict(penalty=5.0)])
def test_freezing_columns_of_separable_programs(kw):
    """Done columns are set aside: less work, the same certified optimum."""
    X, Y = make_layer(12, 300, 20, 24)
    p = problem(X, Y, **kw)
    frozen = solve_admm(p)
    plain = solve_admm(p, AdmmSettings(freeze_columns=False))
    assert frozen.status == plain.status == "optimal"
    assert frozen.info.extra["column_iterations"] < frozen.info.iterations
    assert plain.info.extra["column_iterations"] == plain.info.iterations
    # each certifies itself, and its bound lies below the exact optimum (not always below
    # the other's objective: a point feasible to feas_tol may undercut the optimum a little)
    exact = solve_exact(p, solver="clarabel")
    for result in (frozen, plain):
        assert result.info.gap <= 1e-3 * result.info.objective * (1 + 1e-9)
        assert result.info.dual_bound <= exact.info.objective * (1 + 1e-7)
        assert result.info.objective == pytest.approx(exact.info.objective, rel=2e-3)
    # the figures are those of the assembled weights
    figures = p.evaluate(frozen.W)
    assert frozen.info.objective == pytest.approx(figures["objective"], rel=1e-9)
    assert frozen.info.violation <= 1e-3 * np.abs(Y).max()
    if p.per_column:
        assert np.all(p.column_residuals(frozen.W) <= p.radius * (1 + 1e-3) + 1e-9)


def test_warm_start_from_the_solution_stops_quickly():
    # primal weights and the penalties they were found with (the multiplier restarts at 0)
    # (the active-set finish off: it ends the cold solve early too, which is not the point)
    X, Y = make_layer(9, 200, 20, 10)
    p = problem(X, Y)
    cold = solve_admm(p, AdmmSettings(active_set=False))
    rho, rho2 = cold.info.extra["rho"], cold.info.extra["rho2"]
    settings = AdmmSettings(rho=rho, ratio=rho2 / rho, active_set=False)
    warm = solve_admm(p, settings, warm_start=cold.W)
    assert warm.status == "optimal"
    assert warm.info.iterations < cold.info.iterations / 2
    assert warm.info.objective == pytest.approx(cold.info.objective, rel=2e-3)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(per_neuron=True),
        dict(penalty=5.0),
        dict(activation="linear"),  # (P2) through the range reduction
    ],
)
def test_state_of_a_solve_restarts_it_near_its_end(kw):
    """``keep_state`` records the whole state in the caller's units. A layer-wide solve
    from it stops at its first check with the same certified point; a separable one (its
    columns set aside at different iterations, some finished by a repair) takes fewer
    iterations than from the weights alone."""
    X, Y = make_layer(13, 240, 16, 12, relu="activation" not in kw)
    p = problem(X, Y, **kw)
    cold = solve_admm(p, keep_state=True)
    state = cold.info.extra["state"]
    assert isinstance(state, AdmmState)
    assert state.S.shape == state.W.shape == state.dual_s.shape == (17, 12)
    assert state.rho_z.shape == state.rho_s.shape == (12,)
    assert "state" not in solve_admm(p).info.extra
    from_weights = solve_admm(p, warm_start=cold.W)
    for start in (cold, state):
        warm = solve_admm(p, warm_start=start)
        assert warm.status == "optimal"
        if p.program.separable:
            assert warm.info.iterations < from_weights.info.iterations
        else:
            assert warm.info.iterations == AdmmSettings().check_every
        assert warm.info.objective == pytest.approx(cold.info.objective, rel=2e-3)
        assert warm.info.gap <= 1e-3 * warm.info.objective


def test_state_survives_other_entry_weights_and_eps():
    """A state starts a nearby program (other L1 weights, another eps) in fewer
    iterations than its weights alone; a state with other rows gives its weights only."""
    X, Y = make_layer(14, 300, 20, 10)
    p = problem(X, Y)
    cold = solve_admm(p, keep_state=True)
    magnitude = np.abs(cold.W)
    weights = 1.0 / (magnitude + 1e-3 * magnitude.max())
    weights *= magnitude.sum() / np.sum(weights * magnitude)
    reweighted = replace(p, entry_weights=weights)
    from_weights = solve_admm(reweighted, warm_start=cold.W)
    from_state = solve_admm(reweighted, warm_start=cold)
    assert from_state.status == from_weights.status == "optimal"
    assert from_state.info.iterations < from_weights.info.iterations
    assert from_state.info.objective == pytest.approx(from_weights.info.objective, rel=3e-3)
    fewer_rows = problem(X[:200], Y[:200])
    other = solve_admm(fewer_rows, warm_start=cold)
    assert np.array_equal(other.W, solve_admm(fewer_rows, warm_start=cold.W).W)


def test_warm_start_of_another_shape_is_refused():
    X, Y = make_layer(15, 100, 8, 4)
    state = solve_admm(problem(X, Y), keep_state=True).info.extra["state"]
    X2, Y2 = make_layer(15, 100, 9, 4)
    with pytest.raises(ValueError, match="warm_start"):
        solve_admm(problem(X2, Y2), warm_start=state)
    # every field is checked, not only the weights: a penalty vector of another length
    with pytest.raises(ValueError, match="rho_z has shape"):
        solve_admm(problem(X, Y), warm_start=replace(state, rho_z=state.rho_z[:1]))
    with pytest.raises(ValueError, match="dual_z has shape"):
        solve_admm(problem(X, Y), warm_start=replace(state, dual_z=state.dual_z[:, :2]))


def test_max_iter_status():
    X, Y = make_layer(10, 200, 20, 10)
    result = solve_admm(problem(X, Y), AdmmSettings(max_iter=3, polish=False))
    assert result.status == "max_iter"
    assert result.W is not None


@pytest.mark.parametrize(
    "field, value",
    [("alpha", 2.0), ("rho", 0.0), ("max_iter", 0), ("gap_tol", -1.0), ("precision", "half")],
)
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        AdmmSettings(**{field: value})


def test_unknown_setting_names_the_field():
    with pytest.raises(TypeError, match="rhoo"):
        AdmmSettings().updated(rhoo=1.0)


def test_status_is_str_enum():
    assert Status.OPTIMAL == "optimal"


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_every_solve_primes_the_blas_in_its_working_precision(monkeypatch, precision):
    # the priming (linalg.prime_blas) acts on the library's speed, which no test can see:
    # what can be checked is that every solve asks for it, in the precision it iterates
    # in, and that the weights are the same with or without it
    from nettrim.solvers import admm as admm_module

    X, Y = make_layer(3, 200, 8, 5)
    settings = AdmmSettings(precision=precision)
    asked = []
    real = admm_module.prime_blas
    monkeypatch.setattr(admm_module, "prime_blas", lambda dtype: asked.append(np.dtype(dtype)))
    unprimed = solve_admm(problem(X, Y), settings)
    assert asked == [np.dtype(precision)]
    monkeypatch.setattr(admm_module, "prime_blas", real)
    primed = solve_admm(problem(X, Y), settings)
    assert np.array_equal(primed.W, unprimed.W)


def _free_rows_program(per_neuron: bool):
    """A (P1) whose columns leave many rows free (off Omega, V = +inf), as row
    generation's shared layout writes them."""
    X, Y = make_layer(21, 120, 8, 4)
    rng = np.random.default_rng(22)
    V = np.where(rng.random(Y.shape) < 0.6, np.inf, 0.0)
    return problem(X, Y, upper=V, per_neuron=per_neuron)


@pytest.mark.parametrize("per_neuron", [False, True])
def test_column_grams_solve_the_same_program(per_neuron):
    """Leaving each column's free rows out of its W-update changes the path, not the
    program: Clarabel's optimum, certified; a program with no free row is solved bit for
    bit as without the setting."""
    p = _free_rows_program(per_neuron)
    columns = solve_admm(p, TIGHT.updated(column_grams=True))
    exact = solve_exact(p, solver="clarabel")
    assert columns.status == "optimal" and columns.info.gap <= 1e-5 * columns.info.objective
    assert columns.info.objective == pytest.approx(exact.info.objective, rel=1e-4)
    assert columns.info.iterations != solve_admm(p, TIGHT).info.iterations  # another path
    X, Y = make_layer(23, 80, 6, 3)
    plain = problem(X, Y)
    assert np.array_equal(solve_admm(plain, AdmmSettings(column_grams=True)).W, solve_admm(plain).W)


@pytest.mark.parametrize("per_neuron", [False, True])
def test_free_rows_left_out_of_the_update_do_not_steer_the_iterations(per_neuron):
    """With ``column_grams`` the free rows are not of the splitting: a state whose split
    ``Z`` differs on them alone continues bit for bit the same (their values reach neither
    the W-update, nor the residuals that adapt the penalties and stop, nor the Anderson
    acceleration's vector)."""
    p = _free_rows_program(per_neuron)
    settings = TIGHT.updated(column_grams=True)
    early = solve_admm(p, settings.updated(max_iter=30), keep_state=True).info.extra["state"]
    free = ~(p.active | np.isfinite(p.upper))
    noise = np.random.default_rng(25).standard_normal(free.shape) * 10.0
    other = replace(early, Z=np.where(free, early.Z + noise, early.Z))
    a = solve_admm(p, settings, warm_start=early)
    b = solve_admm(p, settings, warm_start=other)
    assert a.status == "optimal" and a.info.iterations > 50
    assert a.info.extra["anderson_accepted"] > 0
    assert a.info.iterations == b.info.iterations
    assert np.array_equal(a.W, b.W)


def test_a_state_for_other_weights_keeps_its_normalized_subgradient():
    """``AdmmState.for_weights``: ``dual_s / c`` (on the support about the sign of ``S``,
    off it at most 1 in size) is the same for the new weights ``c`` as for the old."""
    X, Y = make_layer(26, 150, 8, 4)
    p = problem(X, Y)
    state = solve_admm(p, TIGHT, keep_state=True).info.extra["state"]
    c_old = np.broadcast_to(p.weight_matrix(), state.S.shape)
    np.testing.assert_array_equal(state.weights, p.weight_matrix())
    c_new = np.random.default_rng(27).uniform(0.01, 100.0, state.S.shape)
    moved = state.for_weights(c_new)
    np.testing.assert_allclose(moved.dual_s / c_new, state.dual_s / c_old, rtol=1e-12)
    support = moved.S != 0
    assert support.any() and (~support).any()
    signs = np.sign(moved.S[support])
    np.testing.assert_allclose(moved.dual_s[support] / c_new[support], signs, atol=0.02)
    assert np.all(np.abs(moved.dual_s[~support]) <= c_new[~support] * (1 + 1e-3))
    np.testing.assert_array_equal(moved.weights, c_new)
    for name in ("W", "S", "Z", "dual_z", "rho_z", "rho_s"):
        assert getattr(moved, name) is getattr(state, name)
    assert replace(state, weights=None).for_weights(c_new).dual_s is state.dual_s


def test_column_gram_solver_solves_each_column_on_its_rows():
    from nettrim.solvers.linalg import ColumnGramSolver

    rng = np.random.default_rng(24)
    X = rng.standard_normal((50, 6))
    rows = rng.random((50, 4)) < 0.6
    solver = ColumnGramSolver(X, rows).scaled(0.5)
    assert solver.lambda_max == pytest.approx(np.linalg.norm(0.5 * X, 2) ** 2)
    B, columns, r = rng.standard_normal((6, 3)), np.array([0, 2, 3]), np.array([0.1, 1.0, 3.0])
    out = solver.solve(B, r, columns=columns, out=np.empty_like(B))
    for b, j in enumerate(columns):
        Xj = 0.5 * X[rows[:, j]]
        expected = np.linalg.solve(Xj.T @ Xj + r[b] * np.eye(6), B[:, b])
        np.testing.assert_allclose(out[:, b], expected, rtol=1e-10, atol=1e-12)
    D = rng.standard_normal((50, 3))
    masked = solver.masked(D, columns, np.empty_like(D))
    np.testing.assert_array_equal(masked, np.where(rows[:, columns], D, 0.0))


@pytest.mark.parametrize("generated", [0, 30])
def test_column_gram_products_on_rows_of_one_column(generated):
    """Row generation's shared layout (each column's own block of rows, then rows kept in
    several): its products equal the dense ones on every entry a column keeps, and
    ``X^T`` of the masked ``D`` exactly so; another pattern takes the dense products."""
    from nettrim.solvers.linalg import ColumnGramSolver

    rng = np.random.default_rng(28)
    sizes, d = [5, 1, 7, 4], 6
    m, n_own = len(sizes), sum(sizes)
    rows = np.zeros((n_own + generated, m), dtype=bool)
    rows[np.arange(n_own), np.repeat(np.arange(m), sizes)] = True
    rows[n_own:] = rng.random((generated, m)) < 0.8
    rows[n_own:, 0] = True  # kept in two columns at least: none of one column alone
    rows[n_own:, 1] = True
    X = rng.standard_normal((len(rows), d))
    solver = ColumnGramSolver(X, rows)
    assert solver.blocks is not None and solver.blocks[0] == n_own
    W, D = rng.standard_normal((d, m)), rng.standard_normal((len(rows), m))
    columns = np.arange(m)
    XW = solver.product(X, W, columns=columns, out=np.full((len(rows), m), np.nan))
    np.testing.assert_allclose(XW[rows], (X @ W)[rows], rtol=1e-12, atol=1e-12)
    out = solver.adjoint(X, D, columns=columns, out=np.empty((d, m)), work=np.empty_like(D))
    np.testing.assert_allclose(out, X.T @ np.where(rows, D, 0.0), rtol=1e-12, atol=1e-12)
    shuffled = ColumnGramSolver(X[::-1], rows[::-1])
    assert shuffled.blocks is None
    dense = shuffled.product(X[::-1], W, columns=columns, out=np.empty((len(rows), m)))
    np.testing.assert_allclose(dense, X[::-1] @ W, rtol=1e-12)

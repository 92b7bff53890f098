"""The active-set finish: the exact optimum on an ADMM iterate's support and bounds."""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest
import threadpoolctl
from test_admm import make_layer, problem

from nettrim import load_digits_mlp
from nettrim.solvers import AdmmSettings, active_set, dual_bound, solve_admm, solve_exact
from nettrim.solvers.active_set import active_set_finish
from nettrim.solvers.admm import ACTIVE_SET_MESSAGE
from nettrim.solvers.programs import ColumnBalls, LayerBall, Penalty

# the ADMM without the finish, stopped at a moderate gap: the iterate the finish starts from
NEAR = AdmmSettings(active_set=False, gap_tol=1e-4, feas_tol=1e-4)
# ... and stopped early, where the guess it gives is still wrong in a few entries and bounds
EARLY = NEAR.updated(gap_tol=1e-2, feas_tol=1e-2)

CASES = {
    "layer-wide ball": dict(shape=(120, 10, 5), kw={}),
    "per-neuron balls": dict(shape=(120, 10, 5), kw=dict(per_neuron=True)),
    "penalty (P3)": dict(shape=(120, 10, 5), kw=dict(penalty=5.0)),
    "linear (P2)": dict(shape=(80, 10, 4), kw=dict(activation="linear"), relu=False),
    "unpenalized bias": dict(shape=(120, 10, 5), kw=dict(penalize_bias=False)),
    "bounds V off Omega": dict(shape=(120, 10, 5), kw=dict(upper="random")),
    "entry weights": dict(shape=(120, 10, 5), kw={}, entry_weights=True),
}


def _case(name):
    case = CASES[name]
    n, d_in, d_out = case["shape"]
    seed = zlib.crc32(name.encode()) % 1000
    X, Y = make_layer(seed, n, d_in, d_out, relu=case.get("relu", True))
    kw = dict(case["kw"])
    if kw.get("upper") == "random":
        kw["upper"] = np.abs(np.random.default_rng(1).standard_normal(Y.shape)) * 0.2
    p = problem(X, Y, **kw)
    if case.get("entry_weights"):
        weights = np.exp(np.random.default_rng(2).uniform(-2, 2, (p.X.shape[1], d_out)))
        p = replace(p, entry_weights=weights)
    return p


def _measure(p, point):
    """Objective, certified relative gap, ball excess (relative) and largest violation."""
    XW = point.XW.astype(np.float64)
    residuals = p.column_residuals(point.W)
    objective = float(np.sum(np.broadcast_to(p.weight_matrix(), point.W.shape) * np.abs(point.W)))
    if p.penalized:
        objective += 0.5 * p.penalty * float(np.sum(residuals**2))
    bound = dual_bound(p, point.Lam, XS=XW, column_residuals=residuals)
    if p.penalized:
        excess = 0.0
    elif p.per_column:
        excess = float(np.max((residuals - p.radius) / p.radius))
    else:
        excess = (float(np.linalg.norm(residuals)) - float(p.radius)) / float(p.radius)
    violation = p.violation(point.W) if p.active is not None else 0.0
    return objective, (objective - bound) / objective, excess, violation


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_finish_from_an_iterate_is_the_exact_optimum(name):
    p = _case(name)
    state = solve_admm(p, NEAR, keep_state=True).info.extra["state"]
    point = active_set_finish(p, state.S, state.dual_z, feas_tol=1e-3)
    assert point.W is not None and point.converged, point.changes
    assert point.solved.all()
    objective, gap, excess, violation = _measure(p, point)
    # the optimality conditions hold exactly: the certificate closes to rounding ...
    assert gap <= 1e-9
    # ... at a point inside the constraints (to rounding), with Clarabel's objective
    assert excess <= 1e-9 and violation <= 1e-9 * np.abs(p.Y).max()
    exact = solve_exact(p, solver="clarabel")
    assert objective == pytest.approx(exact.info.objective, rel=1e-6)
    # the iterate's gap was 1e-4; the finish's is rounding
    assert point.work > 0


@pytest.mark.parametrize("name", ["bounds V off Omega", "entry weights", "penalty (P3)"])
def test_the_finish_corrects_an_early_guess(name):
    """From a gap of 1e-2 the iterate's support and bounds are wrong in a few places:
    the corrections find the optimum's in a few rounds."""
    p = _case(name)
    state = solve_admm(p, EARLY.updated(gap_tol=3e-3), keep_state=True).info.extra["state"]
    point = active_set_finish(p, state.S, state.dual_z, feas_tol=1e-3)
    assert point.converged and point.rounds > 1 and point.changes[0] > 0
    _, gap, excess, violation = _measure(p, point)
    assert gap <= 1e-9 and excess <= 1e-9 and violation <= 1e-9 * np.abs(p.Y).max()


def test_the_finish_is_deterministic():
    p = _case("layer-wide ball")
    state = solve_admm(p, EARLY, keep_state=True).info.extra["state"]  # a guess that fails
    first = active_set_finish(p, state.S, state.dual_z, feas_tol=1e-3)
    again = active_set_finish(p, state.S.copy(), state.dual_z.copy(), feas_tol=1e-3)
    assert first.changes == again.changes and first.work == again.work
    state = solve_admm(p, NEAR, keep_state=True).info.extra["state"]
    first = active_set_finish(p, state.S, state.dual_z, feas_tol=1e-3)
    again = active_set_finish(p, state.S.copy(), state.dual_z.copy(), feas_tol=1e-3)
    assert first.W.tobytes() == again.W.tobytes() and first.Lam.tobytes() == again.Lam.tobytes()


def test_the_column_systems_run_on_one_blas_thread(monkeypatch):
    """The small systems (and the columns' bound programs) run on one BLAS thread
    whatever the caller allows (OpenBLAS's threads made a 4096 x 256 -> 256 layer's finish
    6x slower on 2 threads), and the caller's limit is back afterwards."""

    def blas_threads():
        return {lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"}  # fmt: skip

    seen = []

    def recording(method):
        def recorded(self, *args):
            seen.append((method.__name__, blas_threads()))
            return method(self, *args)

        return recorded

    for name in ("solve", "bound_program"):
        monkeypatch.setattr(active_set._Layer, name, recording(getattr(active_set._Layer, name)))
    p = _case("layer-wide ball")
    state = solve_admm(p, EARLY.updated(gap_tol=3e-3), keep_state=True).info.extra["state"]
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        point = active_set_finish(p, state.S, state.dual_z, feas_tol=1e-3)
        after = blas_threads()
    assert point.converged and 2 in before
    assert {name for name, _ in seen} == {"solve", "bound_program"}
    assert all(threads == {1} for _, threads in seen), seen
    assert after == before


def test_a_column_too_rare_for_its_support_is_not_solved():
    """A neuron that fires on fewer samples than its guessed support has entries: its
    Gram on Omega is singular, so the finish does not offer that column (a separable
    program keeps the others; a layer-wide ball gives no point)."""
    X, Y = make_layer(5, 120, 10, 4)
    Y[:, 0] = 0.0
    Y[:3, 0] = 1.0  # three samples on Omega
    S = np.ones((11, 4))  # every entry in the guess
    U = np.zeros(Y.shape)
    separable = active_set_finish(problem(X, Y, per_neuron=True), S, U, feas_tol=1e-3)
    assert not separable.solved[0] and separable.solved.any()
    assert not separable.W[:, 0].any() and not separable.Lam[:, 0].any()
    layer_wide = active_set_finish(problem(X, Y), S, U, feas_tol=1e-3)
    assert layer_wide.W is None and not layer_wide.solved.any()


def test_a_support_that_cannot_fit_gives_no_point():
    """A guess with one entry per column cannot reach a tight ball: no multiplier puts it
    on the ball, and a layer-wide finish says so."""
    X, Y = make_layer(6, 120, 10, 4, density=0.8)
    p = problem(X, Y, eps=0.01)
    S = np.zeros((11, 4))
    S[0] = 1.0
    point = active_set_finish(p, S, np.zeros(Y.shape), feas_tol=1e-3)
    assert point.W is None


def test_the_ball_multiplier_puts_the_point_on_the_ball():
    a0, a1, a2 = np.array([1.0, 2.0]), np.array([0.5, 0.2]), np.array([3.0, 1.0])
    mu = LayerBall(2.0).active_set_multiplier(a0, a1, a2)
    t = 1.0 / mu[0]
    assert mu[0] == mu[1] > 0
    assert a0.sum() + 2 * a1.sum() * t + a2.sum() * t**2 == pytest.approx(4.0)
    per_column = ColumnBalls(np.array([1.5, 1.2])).active_set_multiplier(a0, a1, a2)
    assert np.isfinite(per_column[0]) and np.isnan(per_column[1])  # a0 = 2 > 1.2^2
    t0 = 1.0 / per_column[0]
    assert a0[0] + 2 * a1[0] * t0 + a2[0] * t0**2 == pytest.approx(1.5**2)
    assert np.isnan(LayerBall(1.0).active_set_multiplier(a0, a1, a2)).all()  # a0 > r^2
    zero = LayerBall(2.0).active_set_multiplier(a0 * 0, a1 * 0, a2 * 0)
    assert (zero == 0).all()  # nothing pulls the point off w_a: the ball is not needed
    assert (Penalty(7.0).active_set_multiplier(a0, a1, a2) == 7.0).all()


def _digits_layer_1():
    model = load_digits_mlp()
    acts = model.network.record(model.X_calib)
    return problem(acts[1], acts[2], eps=0.05)


@pytest.mark.parametrize("case", ["digits layer 1, layer-wide", "random, per-neuron"])
def test_solve_admm_ends_at_the_finish_when_it_pays(case):
    """Tight tolerances, where the ADMM's linear tail is long: it tries the finish, which
    ends the solve (layer-wide: at a gap of rounding, a proof of optimality) or finishes
    columns (per-neuron) in fewer iterations than without it, certified. The digits layer
    asks a gap of 1e-5: at 1e-4 its violation repair can end the solve first, or not, by
    the last bits of the machine's arithmetic (both seen, on two CPUs)."""
    if case.startswith("digits"):
        p = _digits_layer_1()
        gap_tol = 1e-5
    else:
        X, Y = make_layer(1, 400, 20, 10)
        p = problem(X, Y, per_neuron=True)
        gap_tol = 1e-4
    tight = AdmmSettings(gap_tol=gap_tol, feas_tol=1e-4)
    result = solve_admm(p, tight, keep_state=True)
    plain = solve_admm(p, tight.updated(active_set=False))
    # the state to resume from carries the weights returned, not the iterate's
    assert np.array_equal(result.info.extra["state"].S, result.W)
    assert result.status == plain.status == "optimal"
    extra = result.info.extra
    assert extra["active_set_attempts"] >= 1 and extra["active_set_rounds"] >= 1
    if not p.program.separable:
        assert result.info.message == ACTIVE_SET_MESSAGE
        assert result.info.gap <= 1e-9 * result.info.objective  # the exact optimum
    assert extra["column_iterations"] < plain.info.extra["column_iterations"]
    assert result.info.gap <= gap_tol * result.info.objective
    assert result.info.objective == pytest.approx(plain.info.objective, rel=2e-4)
    if p.program.separable:  # small enough for Clarabel (the digits layer takes minutes)
        exact = solve_exact(p, solver="clarabel")
        assert result.info.objective == pytest.approx(exact.info.objective, rel=2e-4)


def test_the_finish_can_be_turned_off_and_its_settings_are_checked():
    X, Y = make_layer(8, 200, 12, 6)
    p = problem(X, Y)
    off = solve_admm(p, AdmmSettings(active_set=False))
    assert off.info.extra["active_set_attempts"] == 0
    assert off.info.message != ACTIVE_SET_MESSAGE
    for name, value in (("active_set_gap", 0.0), ("active_set_payoff", -1.0)):
        with pytest.raises(ValueError, match=name):
            AdmmSettings(**{name: value})
    with pytest.raises(ValueError, match="active_set_budget"):
        AdmmSettings(active_set_budget=-0.1)


def _column_program(seed=12):
    """A column of a random layer whose unconstrained fit on its support passes many
    bounds: the support, signs and multiplier of a bound program to solve."""
    X, Y = make_layer(seed, 150, 8, 3, density=0.8)
    p = problem(X, Y)
    layer = active_set._Layer(p)
    K = np.arange(p.X.shape[1])  # every entry, bias included
    signs = np.sign(np.random.default_rng(seed).standard_normal(K.size))
    return p, layer, 1, K, signs, 5.0


def _bound_program_by_clarabel(layer, j, K, signs, t):
    import cvxpy as cp

    X, on = layer.X.astype(np.float64), layer.active[:, j]
    w = cp.Variable(K.size)
    fit = X[np.ix_(on, K)]
    g = layer.F[K, j] - t * layer.C[K, j] * signs
    bounds = X[np.ix_(~on, K)] @ w <= layer.V[~on, j]
    objective = 0.5 * cp.sum_squares(fit @ w) - g @ w
    cp.Problem(cp.Minimize(objective), [bounds]).solve(solver="CLARABEL")
    duals = bounds.dual_value  # an interior-point method's: ~1e-7 on the slack bounds
    return w.value, np.flatnonzero(~on)[duals > 1e-5 * duals.max()]


@pytest.mark.parametrize("start", ["none", "every bound"])
def test_the_bound_program_is_the_column_optimum(start):
    """A column's program on a fixed support (the finish's bound rule where the
    primal-dual rule changes something): Clarabel's optimum and held bounds, whichever
    bounds the working set starts from."""
    p, layer, j, K, signs, t = _column_program()
    mask = np.zeros(p.Y.shape[0], bool) if start == "none" else ~p.active[:, j]
    w, held = layer.bound_program(j, K, signs, t, mask, 0.0)
    w_ref, held_ref = _bound_program_by_clarabel(layer, j, K, signs, t)
    assert held.size >= 4  # the case holds bounds: the program is not the plain fit
    np.testing.assert_allclose(w, w_ref, atol=1e-6 * np.abs(w_ref).max())
    np.testing.assert_array_equal(held, held_ref)
    XK = p.X[:, K].astype(np.float64)
    assert np.all((XK @ w)[~p.active[:, j]] <= layer.V[~p.active[:, j], j] + 1e-12)


def test_a_bound_program_whose_bounds_exclude_every_point_gives_nothing():
    p, layer, j, K, signs, t = _column_program()
    off = np.flatnonzero(~p.active[:, j])[:2]
    layer.X = layer.X.copy()
    layer.X[off[1]] = -layer.X[off[0]]  # x w <= V and -x w <= V ...
    layer.V = layer.V.copy()
    layer.V[off, j] = -1.0  # ... with V = -1: no w meets both
    assert layer.bound_program(j, K, signs, t, np.ones(p.Y.shape[0], bool), 0.0) is None


def _rare_neuron_layer(seed):
    """A random layer whose first neuron fires on a few percent of the samples: at the
    optimum that column holds nearly as many bounds as its support has entries."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 24))
    W = rng.standard_normal((24, 6)) * (rng.random((24, 6)) < 0.6)
    b = 0.3 * rng.standard_normal(6)
    b[0] = -2.0 * np.linalg.norm(W[:, 0])
    return problem(X, np.maximum(X @ W + b, 0), eps=0.1)


def test_the_finish_converges_where_bounds_swap_in_and_out():
    """The primal-dual rule alone swaps a rare neuron's bounds in and out round after
    round (here it stopped without converging); with the column's bound program deciding
    them the finish reaches the exact optimum."""
    p = _rare_neuron_layer(10)
    state = solve_admm(p, EARLY, keep_state=True).info.extra["state"]
    point = active_set_finish(p, state.S, state.dual_z, feas_tol=1e-3)
    assert point.converged and point.rounds > 3, point.changes
    objective, gap, excess, violation = _measure(p, point)
    assert gap <= 1e-9 and excess <= 1e-9 and violation <= 1e-3 * 0.1 * np.abs(p.Y).max()
    exact = solve_exact(p, solver="clarabel")
    assert objective == pytest.approx(exact.info.objective, rel=1e-6)


def test_a_column_back_at_its_guess_of_two_rounds_before_stays():
    """A column whose correction returns to the guess before the current one keeps the
    current one and counts as unchanged; the others take their correction."""
    d, n, m = 4, 5, 2
    current = active_set._Guess(np.eye(d, m, dtype=bool), np.eye(d, m), np.zeros((n, m), bool))
    older = active_set._Guess(current.support.copy(), current.signs.copy(), current.held.copy())
    older.held[0, 0] = True  # column 0 held a bound two rounds ago ...
    guess = active_set._Guess(current.support.copy(), current.signs.copy(), older.held.copy())
    guess.held[1, 1] = True  # ... its correction holds it again; column 1 moves on
    changes = np.array([1, 1])
    settled = active_set._settled(guess, current, older, changes)
    assert not settled.held[:, 0].any() and settled.held[1, 1]
    np.testing.assert_array_equal(changes, [0, 1])
    assert active_set._settled(guess, current, None, np.array([1, 1])) is guess

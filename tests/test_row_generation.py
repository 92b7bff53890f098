"""Row generation against the program on all rows (an exact solver as the reference)."""

import dataclasses

import numpy as np
import pytest

from nettrim import trim_layer
from nettrim.conv import im2col
from nettrim.layer import build_problem
from nettrim.solvers import row_generation
from nettrim.solvers.admm import AdmmSettings
from nettrim.solvers.exact import solve_exact
from nettrim.solvers.row_generation import (
    Inequalities,
    _column_grams,
    distinct_rows,
    reduce_ball,
    solve_row_generation,
)
from nettrim.stages import trim_layer_rows


def conv_program(seed=0):
    rng = np.random.default_rng(seed)
    P = im2col(rng.standard_normal((30, 3, 10, 10)), 3)  # 1920 patch rows, 27 inputs
    W = rng.standard_normal((27, 5)) * (rng.random((27, 5)) < 0.5)
    return P, P @ W + 0.3 * rng.standard_normal(5)


def test_reduced_ball_equals_the_residual_on_omega_for_any_weights():
    P, Z = conv_program()
    Y = np.maximum(Z, 0)
    problem = build_problem(
        P, Y, activation="relu", eps=0.1, relative=True, per_neuron=False, bias=True,
        penalize_bias=True, upper=None, penalty=None, active_tol=0.0,
    )  # fmt: skip
    A, t, r = reduce_ball(problem)
    rng = np.random.default_rng(1)
    for _ in range(3):
        W = rng.standard_normal((28, 5))
        reduced = sum(np.sum((a @ W[:, j] - t[j]) ** 2) + r[j] for j, a in enumerate(A))
        full = problem.column_residuals(W) ** 2
        assert reduced == pytest.approx(full.sum(), rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_row_generation_is_feasible_on_every_row_and_as_sparse(activation):
    P, Z = conv_program()
    Y = np.maximum(Z, 0) if activation == "relu" else Z
    exact = trim_layer(P, Y, activation=activation, eps=0.05, solver="clarabel")
    rows = trim_layer_rows(P, Y, activation=activation, eps=0.05, relative=True, bias=True)
    assert rows.status == "optimal" and exact.status == "optimal"
    # measured on the full program: inside the ball (ADMM tolerance), V = 0 kept off Omega
    assert rows.info.residual <= rows.info.radius * (1 + 1e-3)
    assert rows.info.violation <= 1e-3 * np.abs(Y).max()
    assert rows.info.objective == pytest.approx(exact.info.objective, rel=5e-3)
    if activation == "relu":
        assert 0 < rows.info.extra["rows"] < len(P)  # generated: a fraction of the rows


def test_a_radius_below_the_least_squares_residual_is_infeasible():
    P, Z = conv_program()
    Y = Z + np.random.default_rng(2).standard_normal(Z.shape)  # noise no weights explain
    problem = build_problem(
        P, Y, activation="linear", eps=1e-3, relative=True, per_neuron=False, bias=True,
        penalize_bias=True, upper=None, penalty=None, active_tol=0.0,
    )  # fmt: skip
    assert solve_row_generation(problem).status == "infeasible"


def digit_like_program(seed=0, n_images=40):
    """Sparse images with a zero background (many identical patches, as in a conv layer on
    digits), padding 1: the rows that row generation merges."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.random((n_images, 1, 8, 8)) * 4) * (rng.random((n_images, 1, 8, 8)) < 0.3)
    P = im2col(x, 3, padding=1)  # 2560 patch rows, 9 inputs
    W = rng.standard_normal((9, 6))
    return P, np.maximum(P @ W + rng.normal(-0.2, 0.3, 6), 0)


def same_extra(a, b) -> bool:
    """Whether two results' ``info.extra`` are equal (its arrays element by element)."""
    x, y = a.info.extra, b.info.extra
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def relu_problem(P, Y, *, per_neuron=False, upper=None, eps=0.05):
    return build_problem(
        P, Y, activation="relu", eps=eps, relative=True, per_neuron=per_neuron, bias=True,
        penalize_bias=True, upper=upper, penalty=None, active_tol=0.0,
    )  # fmt: skip


def test_distinct_rows_map_every_row_to_an_identical_one():
    P, _ = digit_like_program()
    first, order, starts = distinct_rows(P)
    sizes = np.diff(np.r_[starts, len(P)])
    assert np.array_equal(P[order], np.repeat(P[first], sizes, axis=0))
    assert np.array_equal(np.sort(order), np.arange(len(P)))
    assert len(first) < len(P) / 2  # the background patches are one row
    assert len(np.unique(P[first], axis=0)) == len(first)


def test_distinct_rows_survive_a_collision_of_the_projection(monkeypatch):
    # a projection that sees the first column only: distinct rows share keys, and the
    # exact fallback must split them again
    monkeypatch.setattr(row_generation, "_row_keys", lambda X: X[:, 0].astype(np.float64))
    X = np.array([[1.0, 2.0], [1.0, 5.0], [1.0, 2.0], [0.0, 2.0], [1.0, 5.0]])
    first, order, starts = distinct_rows(X)
    assert sorted(first.tolist()) == [0, 1, 3]
    sizes = np.diff(np.r_[starts, len(X)])
    assert np.array_equal(X[order], np.repeat(X[first], sizes, axis=0))


def test_inequalities_keep_the_smallest_bound_of_identical_rows():
    P, Y = digit_like_program()
    V = np.random.default_rng(3).standard_normal(Y.shape)
    problem = relu_problem(P, Y, upper=V)
    ineq = Inequalities.of(problem)
    first, _, _ = distinct_rows(P)
    bounds = np.where(problem.active, np.inf, V)
    for u in range(len(first)):
        same = np.all(P[first[u]] == P, axis=1)
        assert np.array_equal(ineq.bound[u], bounds[same].min(axis=0))
    assert np.array_equal(ineq.X, problem.X[first])


@pytest.mark.parametrize("m", [6, 20])
def test_column_grams_by_pattern_equal_the_grams_on_omega(m):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 5))
    active = rng.random((300, m)) < 0.5
    active[:, 1] = False  # a column without rows on Omega: a zero Gram
    active[:, -8:] &= rng.random((300, 1)) < 0.1  # a group whose rows are mostly off
    for j, G in enumerate(_column_grams(X, active, m)):
        np.testing.assert_allclose(G, X[active[:, j]].T @ X[active[:, j]], rtol=1e-12)


def assert_solves_the_full_program(problem, result, reference, feas_tol=1e-3):
    """Feasible on every row, certified, the objective of the all-rows solve."""
    W = result.W
    assert result.status == "optimal" and result.info.extra["certified"]
    assert problem.is_feasible(problem.column_residuals(W), problem.violation(W), feas_tol)
    assert result.info.gap <= 1e-3 * result.info.objective
    assert result.info.dual_bound <= reference.info.objective * (1 + 1e-3)
    assert result.info.objective == pytest.approx(reference.info.objective, rel=3e-3)


@pytest.mark.parametrize("per_neuron", [False, True])
def test_row_generation_on_merged_rows_matches_all_rows(per_neuron):
    P, Y = digit_like_program()
    problem = relu_problem(P, Y, per_neuron=per_neuron)
    result = solve_row_generation(problem)
    reference = solve_exact(problem, solver="clarabel")
    assert_solves_the_full_program(problem, result, reference)
    extra = result.info.extra
    off_omega = int((~problem.active).sum())
    assert 0 < extra["entries"] < off_omega / 5  # a fraction of the inequalities
    assert extra["distinct_rows"] < len(P) / 2


def test_row_generation_with_bounds_off_omega_is_feasible_on_every_row():
    P, Y = digit_like_program(seed=1)
    rng = np.random.default_rng(5)
    V = np.where(rng.random(Y.shape) < 0.2, np.inf, 0.05 * rng.random(Y.shape))
    problem = relu_problem(P, Y, upper=V)
    result = solve_row_generation(problem)
    assert_solves_the_full_program(problem, result, solve_exact(problem, solver="clarabel"))
    assert result.info.violation <= 1e-3 * np.abs(Y).max()


def test_row_generation_is_deterministic_and_takes_a_warm_start():
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)
    first, second = solve_row_generation(problem), solve_row_generation(problem)
    assert np.array_equal(first.W, second.W) and same_extra(first, second)
    warm = solve_row_generation(problem, warm_start=first.W)
    assert warm.status == "optimal" and warm.info.extra["certified"]


@pytest.mark.parametrize("layout", ["flat", "shared"])
def test_generated_entries_name_violated_inequalities_of_rows_off_omega(layout):
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)
    result = solve_row_generation(problem, layout=layout)
    entries = result.info.extra["generated_entries"]
    assert entries.dtype == np.int64 and entries.shape == (result.info.extra["entries"], 2)
    rows, cols = entries.T
    assert not problem.active[rows, cols].any()  # bounds off Omega only
    assert len(np.unique(rows)) == result.info.extra["rows"]
    # without them the first round's weights break some of these inequalities
    unbounded = solve_row_generation(problem, layout=layout, max_rounds=1)
    Z = P @ unbounded.W[:-1] + unbounded.W[-1]
    assert np.any(Z[rows, cols] > 1e-3 * Y.max())


@pytest.mark.parametrize("layout", ["flat", "shared"])
def test_a_reweighted_round_from_an_earlier_result_holds_its_rows_and_state(layout):
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)
    first = solve_row_generation(problem, layout=layout, keep_state=True)
    assert len(first.info.extra["states"]) == 1
    weights = 1.0 / (np.abs(first.W) + 1e-2)
    weighted = dataclasses.replace(problem, entry_weights=weights)
    fresh = solve_row_generation(weighted, layout=layout, warm_start=first.W)
    carried = solve_row_generation(weighted, layout=layout, warm_start=first)
    for result in (fresh, carried):
        assert result.status == "optimal" and result.info.extra["certified"]
    # the same program, certified on every row: the same optimum within the gaps
    assert carried.info.objective == pytest.approx(fresh.info.objective, rel=3e-3)
    # the first round already holds every row the earlier solve generated ...
    assert carried.info.extra["rounds"] < fresh.info.extra["rounds"]
    assert carried.info.extra["entries"] >= first.info.extra["entries"]
    # ... and starts from its state: fewer iterations than from its weights alone
    assert carried.info.iterations < fresh.info.iterations
    assert "states" not in carried.info.extra  # kept only when asked


def test_a_warm_start_result_of_another_program_is_refused():
    P, Y = digit_like_program(seed=2)
    other = solve_row_generation(relu_problem(P[:, :5], Y[:, :3]))
    with pytest.raises(ValueError, match="warm_start"):
        solve_row_generation(relu_problem(P, Y), warm_start=other)
    plain = solve_exact(relu_problem(P, Y), solver="clarabel")
    with pytest.raises(ValueError, match="warm_start"):
        solve_row_generation(relu_problem(P, Y), warm_start=plain)


def test_few_entries_per_round_still_converge_in_more_rounds():
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)
    few = solve_row_generation(problem, rows_per_round=5)
    many = solve_row_generation(problem)
    assert few.info.extra["rounds"] > many.info.extra["rounds"]
    assert few.info.extra["certified"]
    assert few.info.objective == pytest.approx(many.info.objective, rel=3e-3)


def test_max_rounds_reached_is_reported_not_hidden():
    P, Y = digit_like_program(seed=2)
    result = solve_row_generation(relu_problem(P, Y), rows_per_round=1, max_rounds=1)
    assert result.status == "max_iter"
    assert not result.info.extra["feasible"] and not result.info.extra["certified"]


@pytest.mark.parametrize("name", ["rows_per_round", "max_rounds"])
@pytest.mark.parametrize("value", [0, 2.5])
def test_bad_limits_are_refused_by_name(name, value):
    P, Y = digit_like_program()
    with pytest.raises(ValueError, match=name):
        solve_row_generation(relu_problem(P, Y), **{name: value})


def test_a_bad_row_scale_is_refused_and_none_leaves_rows_unscaled():
    P, Y = digit_like_program()
    problem = relu_problem(P, Y)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="row_scale"):
            solve_row_generation(problem, row_scale=bad)
    unscaled = solve_row_generation(problem, row_scale=None)
    assert unscaled.info.extra["row_scale"] == 1.0
    assert unscaled.info.extra["feasible"]


def test_a_round_stopped_on_loose_residuals_is_still_certified():
    # residual tolerances that stop the ADMM long before its gap: the last round is
    # re-solved on the gap, so the weights are certified all the same
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)
    loose = AdmmSettings(tol_abs=1e-2, tol_rel=1e-1)
    result = solve_row_generation(problem, loose)
    assert result.info.extra["certified"]
    assert result.info.gap <= loose.gap_tol * result.info.objective
    assert result.info.iterations == sum(result.info.extra["round_iterations"])


@pytest.mark.parametrize("layout", ["flat", "shared"])
@pytest.mark.parametrize("bounded", [False, True])
def test_both_layouts_solve_the_full_program(layout, bounded):
    """vec(W) and the (n, m) layout with every column's ball rows: the same program, the
    optimum of the all-rows one, feasible and certified on every row."""
    P, Y = digit_like_program(seed=1)
    V = None
    if bounded:
        rng = np.random.default_rng(5)
        V = np.where(rng.random(Y.shape) < 0.2, np.inf, 0.05 * rng.random(Y.shape))
    problem = relu_problem(P, Y, upper=V)
    result = solve_row_generation(problem, layout=layout)
    assert result.info.extra["layout"] == layout
    assert_solves_the_full_program(problem, result, solve_exact(problem, solver="clarabel"))


def test_the_shared_layout_takes_entry_weights_linear_programs_and_a_warm_start():
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)
    weights = np.random.default_rng(6).uniform(0.5, 2.0, (P.shape[1] + 1, Y.shape[1]))
    weighted = dataclasses.replace(problem, entry_weights=weights)
    result = solve_row_generation(weighted, layout="shared")
    assert_solves_the_full_program(weighted, result, solve_exact(weighted, solver="clarabel"))
    again = solve_row_generation(weighted, layout="shared")
    assert np.array_equal(result.W, again.W) and same_extra(result, again)
    warm = solve_row_generation(weighted, layout="shared", warm_start=result.W)
    assert warm.status == "optimal" and warm.info.extra["certified"]
    Pc, Z = conv_program()
    linear = build_problem(
        Pc, Z, activation="linear", eps=0.05, relative=True, per_neuron=False, bias=True,
        penalize_bias=True, upper=None, penalty=None, active_tol=0.0,
    )  # fmt: skip
    shared = solve_row_generation(linear, layout="shared")
    assert shared.info.extra["layout"] == "shared" and shared.info.extra["reduced_rows"] > 0
    assert_solves_the_full_program(linear, shared, solve_exact(linear, solver="clarabel"))


def test_auto_layout_goes_by_the_ball_s_size_and_per_neuron_balls_are_flat(monkeypatch):
    P, Y = digit_like_program(seed=2)
    problem = relu_problem(P, Y)  # 10 inputs x 6 columns: 60 <= FLAT_SIZE
    assert solve_row_generation(problem).info.extra["layout"] == "flat"
    monkeypatch.setattr(row_generation, "FLAT_SIZE", 59)
    assert solve_row_generation(problem).info.extra["layout"] == "shared"
    per_neuron = relu_problem(P, Y, per_neuron=True)
    assert solve_row_generation(per_neuron, layout="shared").info.extra["layout"] == "flat"
    with pytest.raises(ValueError, match="layout"):
        solve_row_generation(problem, layout="dense")


def test_reweighted_rounds_by_row_generation_are_sparser_within_the_same_budget():
    P, Y = digit_like_program(seed=3)
    common = {"activation": "relu", "eps": 0.05, "relative": True, "bias": True}
    plain = trim_layer_rows(P, Y, **common)
    rounds = trim_layer_rows(P, Y, reweight_rounds=2, **common)
    extra = rounds.info.extra
    assert rounds.status == "optimal" and rounds.info.solver == "admm+rows+reweighted"
    assert extra["rounds"] == 2 and len(extra["nnz_history"]) == 3
    # the rounds share reweighted_trim_layer's figures, and carry the rows they need
    assert len(extra["round_iterations"]) == 3 and extra["generation"]["certified"]
    assert "states" not in extra["generation"]
    assert extra["nnz_history"][0] == np.count_nonzero(plain.W)
    assert np.count_nonzero(rounds.W) < np.count_nonzero(plain.W)
    # measured on the program as given: inside the same ball, feasible off Omega
    assert rounds.info.radius == pytest.approx(plain.info.radius)
    assert rounds.info.residual <= rounds.info.radius * (1 + 1e-3)
    assert rounds.info.violation <= 1e-3 * np.abs(Y).max()
    with pytest.raises(ValueError, match="rounds"):
        trim_layer_rows(P, Y, reweight_rounds=-1, **common)

"""(P2) through its reduction to the range of X: the rotated form and the ADMM on it."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.layer import build_problem
from nettrim.solvers import AdmmSettings, Status, solve_admm, solve_exact
from nettrim.solvers.linalg import RotatedGram, ShiftedGramSolver, rotate_to_range

TIGHT = AdmmSettings(gap_tol=1e-5, feas_tol=1e-5, max_iter=50000)


def linear_layer(seed, n, d, m, *, noise=0.01, duplicate=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if duplicate:  # rank-deficient: a repeated column and a zero column
        X[:, 1] = X[:, 0]
        X[:, 2] = 0.0
    W = rng.standard_normal((d, m)) * (rng.random((d, m)) < 0.3)
    Y = X @ W + 0.3 * rng.standard_normal(m) + noise * rng.standard_normal((n, m))
    return X, Y


def p2(X, Y, *, eps=0.1, per_neuron=False):
    return build_problem(
        X,
        Y,
        activation="linear",
        eps=eps,
        relative=True,
        per_neuron=per_neuron,
        bias=True,
        penalize_bias=True,
        upper=None,
        penalty=None,
        active_tol=0.0,
    )


@pytest.mark.parametrize("duplicate", [False, True])
def test_rotation_keeps_every_residual(duplicate):
    X, Y = linear_layer(0, 90, 8, 5, duplicate=duplicate)
    rot = rotate_to_range(X, Y)
    assert rot.rank == (6 if duplicate else 8)
    np.testing.assert_allclose(rot.V.T @ rot.V, np.eye(rot.rank), atol=1e-12)
    W = np.random.default_rng(1).standard_normal((8, 5))
    direct = np.linalg.norm(X @ W - Y, axis=0) ** 2
    reduced = np.linalg.norm(rot.R @ W - rot.C, axis=0) ** 2 + rot.outside**2
    np.testing.assert_allclose(reduced, direct, rtol=1e-10)


@pytest.mark.parametrize("rank_deficient", [False, True])
def test_rotated_update_is_the_shifted_solve(rank_deficient):
    rng = np.random.default_rng(2)
    X, Y = linear_layer(3, 60, 7, 4, duplicate=rank_deficient)
    rot = rotate_to_range(X, Y)
    R = rot.R
    D = rng.standard_normal((rot.rank, 4))
    S, T = rng.standard_normal((7, 4)), rng.standard_normal((7, 4))
    r = np.array([0.1, 1.0, 3.0, 0.01])
    W, XW, E = np.zeros((7, 4)), np.zeros((rot.rank, 4)), np.zeros((7, 4))
    rot.gram(np.float64).update(D, S, T, r, W=W, XW=XW, E=E)
    # the reference: (R^T R + r I)^{-1} (R^T D + r (S - T)), column by column
    for j in range(4):
        lhs = R.T @ R + r[j] * np.eye(7)
        expected = np.linalg.solve(lhs, R.T @ D[:, j] + r[j] * (S[:, j] - T[:, j]))
        np.testing.assert_allclose(W[:, j], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(XW, R @ W, rtol=1e-10, atol=1e-12)
    if not rank_deficient:  # the same as the general solver on R
        solver = ShiftedGramSolver(R)
        np.testing.assert_allclose(solver.solve(R.T @ D + r * (S - T), r), W, atol=1e-10)
    assert isinstance(rot.gram(np.float32).scaled(0.5), RotatedGram)


@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("duplicate", [False, True])
def test_reduced_admm_matches_exact_and_is_certified_on_the_original(per_neuron, duplicate):
    X, Y = linear_layer(4, 200, 10, 4, duplicate=duplicate)
    prob = p2(X, Y, per_neuron=per_neuron)
    exact = solve_exact(prob)
    res = solve_admm(prob, TIGHT)
    assert res.status is Status.OPTIMAL
    assert res.info.extra["range_rank"] == (9 if duplicate else 11)  # the bias column
    # feasibility and the gap are those of the original program
    figures = prob.evaluate(res.W)
    assert figures["ball_excess"] <= 1e-5 * figures["radius"] + 1e-12
    assert res.info.residual == pytest.approx(figures["residual"], rel=1e-12)
    assert res.info.dual_bound <= exact.info.objective * (1 + 1e-8)
    assert res.info.gap <= 1e-5 * res.info.objective
    assert res.info.objective == pytest.approx(exact.info.objective, rel=1e-4)


def test_reduction_off_gives_the_same_program():
    X, Y = linear_layer(5, 150, 9, 3)
    prob = p2(X, Y)
    on = solve_admm(prob, TIGHT)
    off = solve_admm(prob, TIGHT.updated(reduce_range=False))
    assert "range_rank" in on.info.extra and "range_rank" not in off.info.extra
    assert on.info.objective == pytest.approx(off.info.objective, rel=1e-4)


def test_float32_problem_keeps_its_dtype():
    X, Y = linear_layer(6, 300, 12, 6)
    prob = p2(X.astype(np.float32), Y.astype(np.float32))
    res = solve_admm(prob)
    assert res.status is Status.OPTIMAL and res.W.dtype == np.float32
    assert res.info.extra["feasible"] and prob.evaluate(res.W)["ball_excess"] <= (
        1e-3 * res.info.radius
    )


def test_targets_farther_than_the_radius_are_infeasible():
    # noise outside the range of X larger than the radius: no W fits
    X, Y = linear_layer(7, 200, 6, 3, noise=5.0)
    prob = p2(X, Y, eps=0.01)
    res = solve_admm(prob)
    assert res.status is Status.INFEASIBLE and res.W is None

"""trim_layer end to end: shapes, options, figures, program names, the docstring example."""

import doctest
import math

import numpy as np
import pytest

import nettrim.layer
from nettrim import LayerResult, SolveInfo, Status, trim_layer

# Clarabel meets the ball to ~1e-7 relative after solve_exact's rounding (see
# tests/solvers/test_exact.py); 1e-6 leaves a margin.
BALL_RTOL = 1e-6


def test_shapes_and_proposition_1(planted_layer):
    X, _, _, Y = planted_layer()
    res = trim_layer(X, Y, eps=0.1, solver="clarabel")
    assert res.status == Status.OPTIMAL and res.success
    assert res.W.shape == (6, 3) and res.b.shape == (3,)
    assert res.W.flags.c_contiguous
    # Proposition 1 on the returned layer
    recon = np.maximum(X @ res.W + res.b, 0.0)
    assert np.linalg.norm(Y - recon) <= 0.1 * np.linalg.norm(Y) * (1 + BALL_RTOL)
    assert res.info.ball_excess <= 0.1 * np.linalg.norm(Y) * BALL_RTOL
    assert res.info.objective == pytest.approx(np.abs(res.W).sum() + np.abs(res.b).sum(), rel=1e-12)


def test_without_bias(planted_layer):
    X, _, _, Y = planted_layer(bias=0.0)  # a layer without bias, so the program is feasible
    res = trim_layer(X, Y, eps=0.1, bias=False, solver="clarabel")
    assert res.status == Status.OPTIMAL
    assert res.b is None
    assert res.W.shape == (6, 3)
    recon = np.maximum(X @ res.W, 0.0)
    assert np.linalg.norm(Y - recon) <= 0.1 * np.linalg.norm(Y) * (1 + BALL_RTOL)


def test_penalize_bias_false_leaves_the_bias_out_of_the_objective(planted_layer, layer_program):
    X, _, _, Y = planted_layer(1, bias=3.0)  # a large bias, so penalizing it matters
    kwargs = dict(eps=0.1, solver="clarabel")
    free = trim_layer(X, Y, penalize_bias=False, **kwargs)
    paid = trim_layer(X, Y, penalize_bias=True, **kwargs)
    assert free.status == paid.status == Status.OPTIMAL
    assert free.info.objective == pytest.approx(np.abs(free.W).sum(), rel=1e-12)
    assert paid.info.objective == pytest.approx(
        np.abs(paid.W).sum() + np.abs(paid.b).sum(), rel=1e-12
    )
    # Same constraints, a smaller objective: the free-bias optimum is at most the paid one's
    # weight part, and the bias it uses is larger.
    assert free.info.objective <= np.abs(paid.W).sum() * (1 + 1e-6)
    assert np.abs(free.b).sum() > np.abs(paid.b).sum()
    problem = layer_program(X, Y, penalize_bias=False)
    np.testing.assert_array_equal(problem.l1_weights, [1, 1, 1, 1, 1, 1, 0])


def test_relative_and_absolute_eps(planted_layer):
    X, _, _, Y = planted_layer(2)
    rel = trim_layer(X, Y, eps=0.1, solver="clarabel")
    assert rel.info.radius == pytest.approx(0.1 * np.linalg.norm(Y), rel=1e-12)
    absolute = trim_layer(X, Y, eps=0.1 * np.linalg.norm(Y), relative=False, solver="clarabel")
    assert absolute.info.radius == pytest.approx(rel.info.radius, rel=1e-12)
    assert absolute.info.objective == pytest.approx(rel.info.objective, rel=1e-6)
    small = trim_layer(X, Y, eps=0.5, relative=False, solver="clarabel")
    assert small.info.radius == 0.5
    assert small.info.residual <= 0.5 * (1 + BALL_RTOL)


def test_per_neuron_relative_eps(planted_layer):
    X, _, _, Y = planted_layer(3)
    eps = np.array([0.05, 0.1, 0.2])
    res = trim_layer(X, Y, eps=eps, per_neuron=True, solver="clarabel")
    assert res.status == Status.OPTIMAL
    budgets = eps * np.linalg.norm(Y, axis=0)
    columns = np.linalg.norm(np.where(Y > 0, X @ res.W + res.b - Y, 0.0), axis=0)
    assert np.all(columns <= budgets * (1 + BALL_RTOL))
    assert res.info.radius == pytest.approx(budgets.max(), rel=1e-12)
    # a scalar eps with per_neuron gives every column the same relative budget
    same = trim_layer(X, Y, eps=0.1, per_neuron=True, solver="clarabel")
    columns = np.linalg.norm(np.where(Y > 0, X @ same.W + same.b - Y, 0.0), axis=0)
    assert np.all(columns <= 0.1 * np.linalg.norm(Y, axis=0) * (1 + BALL_RTOL))


def test_active_tol_keeps_small_entries_out_of_omega(planted_layer):
    X, W0, b0, Y = planted_layer(4, n=60, d_in=4, d_out=2)
    noisy = Y.copy()
    zeros = np.argwhere(Y == 0)[::3]
    noisy[tuple(zeros.T)] = 1e-5  # rounding noise where the true output is 0
    # Below the threshold the noise is not fitted: eps = 0 is feasible and recovers the
    # planted layer (enough active rows to determine it).
    res = trim_layer(X, noisy, eps=0.0, active_tol=1e-4, solver="clarabel")
    assert res.status == Status.OPTIMAL
    # interior-point equality solve: ~1e-9, checked at 1e-6
    np.testing.assert_allclose(res.W, W0, atol=1e-6)
    np.testing.assert_allclose(res.b, b0, atol=1e-6)
    assert res.info.residual <= 1e-6
    # With the noise in Omega the exact fit is impossible.
    assert trim_layer(X, noisy, eps=0.0, solver="clarabel").status == Status.INFEASIBLE


def test_program_names(planted_layer):
    X, W0, b0, Y = planted_layer(5, n=40, d_in=4, d_out=2)
    assert trim_layer(X, Y, eps=0.1, solver="clarabel").program == "P1"
    linear = trim_layer(X, X @ W0 + b0, activation="linear", eps=0.1, solver="clarabel")
    assert linear.program == "P2"
    assert linear.info.violation == 0.0
    assert linear.info.residual <= 0.1 * np.linalg.norm(X @ W0 + b0) * (1 + BALL_RTOL)
    penalized = trim_layer(X, Y, penalty=10.0, solver="clarabel")
    assert penalized.program == "P3"
    assert math.isnan(penalized.info.radius)
    osqp = trim_layer(X, Y, penalty=10.0, solver="osqp", tol=1e-9, max_iter=100_000)
    assert osqp.program == "P3"
    # the same program through a QP solver: objectives agree (first-order accuracy, 1e-4)
    assert osqp.info.objective == pytest.approx(penalized.info.objective, rel=1e-4)


def test_float32_end_to_end(planted_layer):
    X, _, _, Y = planted_layer(6, n=50, d_in=4, d_out=2)
    res = trim_layer(X.astype(np.float32), Y.astype(np.float32), eps=0.1, solver="clarabel")
    assert res.status == Status.OPTIMAL
    assert res.W.dtype == np.float32 and res.b.dtype == np.float32


def _info(**changes):
    kwargs = dict(
        solver="test",
        objective=1.0,
        iterations=0,
        seconds=0.0,
        residual=0.0,
        radius=1.0,
        ball_excess=0.0,
        violation=0.0,
    )
    kwargs.update(changes)
    return SolveInfo(**kwargs)


def test_sparsity_and_nnz():
    W = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    res = LayerResult(
        W=W, b=np.array([5.0, 0.0]), status=Status.OPTIMAL, info=_info(), program="P1"
    )
    assert res.nnz == 2  # the bias is not counted
    assert res.sparsity == pytest.approx(4 / 6)
    assert "P1" in repr(res) and "3x2" in repr(res)
    empty = LayerResult(W=None, b=None, status=Status.INFEASIBLE, info=_info(), program="P1")
    assert empty.nnz == 0
    assert math.isnan(empty.sparsity)
    assert not empty.success
    assert "none" in repr(empty)


def test_sparsity_of_a_solve_matches_its_weights(planted_layer):
    X, _, _, Y = planted_layer(7)
    res = trim_layer(X, Y, eps=0.2, solver="clarabel")
    assert res.nnz == np.count_nonzero(res.W)
    assert res.sparsity == pytest.approx(1 - res.nnz / res.W.size)
    assert 0 < res.sparsity < 1


def test_infeasible_layer_returns_no_weights(planted_layer):
    X, _, _, Y = planted_layer(8, n=60, d_in=4, d_out=2)
    res = trim_layer(X, Y, eps=1e-3, upper=np.where(Y > 0, 0.0, -1.0), solver="clarabel")
    assert res.status == "infeasible"
    assert res.W is None and res.b is None


def test_docstring_example_runs():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(nettrim.layer.trim_layer, "trim_layer", globs={})
    assert tests and tests[0].examples  # the example exists
    for test in tests:
        runner.run(test)
    outcome = runner.summarize(verbose=False)
    assert outcome.failed == 0
    assert outcome.attempted >= 6


def test_auto_runs_clarabel_on_tiny_layers_and_the_admm_above():
    from nettrim.layer import AUTO_EXACT_MAX_ENTRIES

    rng = np.random.default_rng(5)
    for n, m, expected in ((50, 4, "clarabel"), (200, 5, "admm")):
        X = rng.standard_normal((n, 6))
        Y = np.maximum(X @ rng.standard_normal((6, m)), 0.0)
        assert (n * m <= AUTO_EXACT_MAX_ENTRIES) == (expected == "clarabel")
        result = trim_layer(X, Y, eps=0.1)
        assert result.info.solver == expected
        assert result.status == "optimal"

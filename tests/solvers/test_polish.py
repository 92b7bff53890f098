"""Work on the support of a point: the violation repair and its use by the ADMM."""

from __future__ import annotations

import numpy as np
import pytest
from test_admm import make_layer, problem  # tests/solvers is on sys.path (rootdir-less)

from nettrim.solvers import AdmmSettings, solve_admm, solve_exact
from nettrim.solvers.admm import REPAIRED_MESSAGE
from nettrim.solvers.polish import REPAIR_THRESHOLD, _least_output_change, repair_violations


def _violations(p, S):
    """Per column, the largest ``(X S - V)_+`` off Omega."""
    excess = np.where(p.active, -np.inf, p.X @ S - p.upper_bounds())
    return np.maximum(excess.max(axis=0), 0.0)


def test_least_output_change_meets_the_rows_and_moves_the_outputs_least():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 8))
    A = X[:3]
    target = rng.standard_normal(3)
    gram = X.T @ X
    delta = _least_output_change(gram, 0.0, A, target)
    np.testing.assert_allclose(A @ delta, target, rtol=1e-10, atol=1e-10)
    # any other solution differs by a null-space vector of A and moves X delta more
    null = np.linalg.svd(A)[2][3:].T
    for _ in range(5):
        other = delta + null @ rng.standard_normal(null.shape[1])
        assert np.linalg.norm(X @ other) > np.linalg.norm(X @ delta)


@pytest.mark.parametrize("per_neuron", [False, True])
def test_repair_removes_violations_on_the_support(per_neuron):
    X, Y = make_layer(5, 200, 12, 6)
    p = problem(X, Y, per_neuron=per_neuron)
    # a late iterate (the regime the ADMM repairs in): violations of a few times feas_tol,
    # the first such one of the solve (which iteration that is moves with rounding)
    tol = 1e-3
    scale = np.abs(Y).max()
    for max_iter in range(100, 2001, 20):
        early = solve_admm(p, AdmmSettings(max_iter=max_iter, polish=False, exact_columns=0)).W
        before = _violations(p, early)
        if tol * scale < before.max() < 10 * tol * scale:
            break
    else:
        pytest.fail("no iterate with violations of a few times feas_tol")
    repaired = repair_violations(p, early, feas_tol=tol)
    assert repaired is not early and early is not None
    # the support never grows, and columns without violations do not move
    assert not np.any((repaired != 0) & (early == 0))
    quiet = before <= REPAIR_THRESHOLD * tol * np.abs(Y).max()
    np.testing.assert_array_equal(repaired[:, quiet], early[:, quiet])
    after = _violations(p, repaired)
    assert after.max() < before.max()
    if per_neuron:  # the extra row keeps every ball it can: none grows past its radius
        residuals = p.column_residuals(repaired)
        grown = residuals > np.maximum(p.column_residuals(early), p.radius) * (1 + 1e-6)
        assert not grown.any()
    else:  # the columns share the layer ball's slack: it does not grow past its radius
        residual = np.linalg.norm(p.column_residuals(repaired))
        assert residual <= max(np.linalg.norm(p.column_residuals(early)), p.radius) * (1 + 1e-6)


def test_repair_shares_a_layer_ball_slack_through_one_multiplier():
    """A point past a layer-wide ball's radius and over its bounds comes back onto the
    radius: the columns' shared multiplier is the smallest that keeps the ball, so the
    residual ends at the radius, not inside it."""
    X, Y = make_layer(7, 300, 16, 12)
    p = problem(X, Y)
    exact = solve_exact(p, solver="clarabel").W  # on the radius, violations at rounding
    # outputs over their bounds off Omega and a residual past the radius, as an iterate
    # that lags its violations
    rng = np.random.default_rng(1)
    S = exact * (1 + 0.01 * rng.standard_normal(exact.shape))
    assert np.linalg.norm(p.column_residuals(S)) > p.radius
    repaired = repair_violations(p, S, feas_tol=1e-3)
    assert _violations(p, repaired).max() < 0.5 * _violations(p, S).max()
    assert not np.any((repaired != 0) & (S == 0))
    residual = np.linalg.norm(p.column_residuals(repaired))
    assert p.radius * (1 - 1e-3) <= residual <= p.radius * (1 + 1e-6)


def test_repair_leaves_programs_without_inequalities_alone():
    X, Y = make_layer(6, 60, 6, 3, relu=False)
    p = problem(X, Y, activation="linear")
    S = solve_admm(p, AdmmSettings(max_iter=20, polish=False)).W
    assert repair_violations(p, S, feas_tol=1e-3) is S


@pytest.mark.parametrize("per_neuron", [False, True])
def test_admm_stops_at_a_repaired_point_that_is_certified(per_neuron):
    """A repaired result is feasible, certified, and as good as the unrepaired solve."""
    # the first of a few layers whose solve ends with a repair (which do moves with rounding)
    for seed in range(4, 12):
        X, Y = make_layer(seed, 400, 30, 20)
        p = problem(X, Y, per_neuron=per_neuron)
        repaired = solve_admm(p)
        if repaired.info.message == REPAIRED_MESSAGE:
            break
    else:
        pytest.fail("no layer of the range ends its solve with a repair")
    assert repaired.info.extra["repaired_columns"] > 0
    plain = solve_admm(p, AdmmSettings(polish=False))  # no repair: iterates to the end
    assert plain.info.extra["repaired_columns"] == 0
    assert repaired.info.iterations < plain.info.iterations
    exact = solve_exact(p, solver="clarabel")
    figures = p.evaluate(repaired.W)
    assert p.is_feasible(p.column_residuals(repaired.W), figures["violation"], 1e-3)
    assert repaired.info.gap <= 1e-3 * repaired.info.objective
    assert repaired.info.dual_bound <= exact.info.objective * (1 + 1e-7)
    assert repaired.info.objective == pytest.approx(exact.info.objective, rel=1e-3)
    assert repaired.info.objective == pytest.approx(figures["objective"], rel=1e-12)

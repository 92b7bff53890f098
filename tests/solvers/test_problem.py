"""NetTrimProblem.evaluate against figures computed by hand on a 3 x 3 example."""

import math

import numpy as np
import pytest

from nettrim.solvers import NetTrimProblem

# X has a column of ones (the bias), whose row of W is left unpenalized (weight 0).
X = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
W = np.array([[1.0, -1.0], [0.0, 2.0], [0.5, 0.0]])
Y = np.array([[1.0, 0.0], [0.5, 3.0], [0.0, 1.0]])
ACTIVE = Y > 0  # [[T, F], [T, T], [F, T]]
WEIGHTS = np.array([1.0, 1.0, 0.0])
# By hand: X W = [[1.5, -1], [0.5, 4], [1.5, 1]].
#   objective = |1| + |-1| + |0| + |2| + 0 * (|0.5| + |0|) = 4
#   residual on Omega: column 0 -> (1.5 - 1, 0.5 - 0.5) = (0.5, 0);
#                      column 1 -> (4 - 3, 1 - 1) = (1, 0)
#   inactive entries: (0, 1) -> -1 and (2, 0) -> 1.5, so the violation against V = 0 is 1.5
OBJECTIVE = 4.0
COLUMNS = np.array([0.5, 1.0])
RESIDUAL = math.sqrt(1.25)

# Every figure is a handful of float64 operations on small exact numbers.
EXACT = dict(rel=1e-14, abs=1e-14)


def _problem(**changes) -> NetTrimProblem:
    kwargs = dict(X=X, Y=Y, active=ACTIVE, upper=None, radius=1.0, l1_weights=WEIGHTS)
    kwargs.update(changes)
    return NetTrimProblem(**kwargs)


def test_layer_wide_ball():
    problem = _problem()
    assert problem.shape == (3, 3, 2)
    assert not problem.per_column and not problem.penalized and problem.has_inequalities
    np.testing.assert_allclose(problem.column_residuals(W), COLUMNS, rtol=1e-14)
    figures = problem.evaluate(W)
    assert figures["objective"] == pytest.approx(OBJECTIVE, **EXACT)
    assert figures["residual"] == pytest.approx(RESIDUAL, **EXACT)
    assert figures["radius"] == 1.0
    assert figures["ball_excess"] == pytest.approx(RESIDUAL - 1.0, **EXACT)
    assert figures["violation"] == pytest.approx(1.5, **EXACT)


def test_inside_the_ball_has_no_excess():
    figures = _problem(radius=2.0).evaluate(W)
    assert figures["ball_excess"] == 0.0


def test_unpenalized_row_does_not_count():
    penalized = _problem(l1_weights=np.ones(3)).evaluate(W)
    assert penalized["objective"] == pytest.approx(OBJECTIVE + 0.5, **EXACT)
    W_big_bias = W.copy()
    W_big_bias[2] = [100.0, -100.0]
    assert _problem().l1(W_big_bias) == pytest.approx(OBJECTIVE, **EXACT)


def test_per_column_balls():
    problem = _problem(radius=np.array([0.2, 2.0]))
    assert problem.per_column
    figures = problem.evaluate(W)
    # column 0 exceeds by 0.5 - 0.2 = 0.3, column 1 is inside (1 < 2); radius is the largest
    assert figures["ball_excess"] == pytest.approx(0.3, **EXACT)
    assert figures["radius"] == 2.0
    assert figures["residual"] == pytest.approx(RESIDUAL, **EXACT)
    assert _problem(radius=np.array([0.5, 1.0])).evaluate(W)["ball_excess"] == 0.0


def test_penalized_objective():
    figures = _problem(penalty=4.0).evaluate(W)
    assert figures["objective"] == pytest.approx(OBJECTIVE + 0.5 * 4.0 * 1.25, **EXACT)
    assert math.isnan(figures["radius"]) and math.isnan(figures["ball_excess"])
    assert figures["violation"] == pytest.approx(1.5, **EXACT)


def test_upper_bounds_relax_the_violation():
    upper = np.zeros_like(Y)
    upper[2, 0] = 2.0  # (X W)[2, 0] = 1.5 <= 2; (X W)[0, 1] = -1 <= 0
    assert _problem(upper=upper).evaluate(W)["violation"] == 0.0
    upper[2, 0] = 1.0
    assert _problem(upper=upper).evaluate(W)["violation"] == pytest.approx(0.5, **EXACT)
    upper[2, 0] = np.inf  # +inf imposes nothing
    assert _problem(upper=upper).evaluate(W)["violation"] == 0.0
    # upper is ignored on Omega: a bound there changes nothing
    upper = np.full_like(Y, -10.0)
    upper[~ACTIVE] = 0.0
    assert _problem(upper=upper).evaluate(W)["violation"] == pytest.approx(1.5, **EXACT)


def test_upper_bounds_default_to_zero():
    np.testing.assert_array_equal(_problem().upper_bounds(), np.zeros_like(Y))


def test_linear_program_fits_every_entry():
    # active=None: (P2), every entry in the ball, no inequalities.
    problem = _problem(active=None)
    assert not problem.has_inequalities
    figures = problem.evaluate(W)
    # column 0: (0.5, 0, 1.5); column 1: (-1, 1, 0)
    np.testing.assert_allclose(
        problem.column_residuals(W), [math.sqrt(2.5), math.sqrt(2.0)], rtol=1e-14
    )
    assert figures["residual"] == pytest.approx(math.sqrt(4.5), **EXACT)
    assert figures["violation"] == 0.0


def test_feasibility_tolerance_is_relative_with_an_absolute_floor():
    # Y_Omega has norm sqrt(1 + 0.25 + 9 + 1) = sqrt(11.25); radius 1 (layer-wide)
    problem = _problem()
    total = problem.target_scale[0]
    assert total == pytest.approx(math.sqrt(11.25), **EXACT)
    tol = 1e-3
    # the relative tolerance decides while it is the larger: 1e-3 of the radius, no more
    assert problem.allowed_residuals(tol) == pytest.approx(1.0 + tol, **EXACT)
    assert problem.is_feasible(np.array([1.0 + 0.999 * tol, 0.0]), 0.0, tol)
    assert not problem.is_feasible(np.array([1.0 + 1.001 * tol, 0.0]), 0.0, tol)
    # eps = 0: the absolute floor tol**2 * ||Y_Omega|| gives exact fits a tolerance
    exact_fit = _problem(radius=0.0)
    assert exact_fit.allowed_residuals(tol) == pytest.approx(tol**2 * total, **EXACT)
    assert exact_fit.is_feasible(np.array([0.9 * tol**2 * total, 0.0]), 0.0, tol)
    # rounding is taken off the tolerance, never more than half of it
    assert problem.allowed_residuals(tol, 1e-5) == pytest.approx(1.0 + tol - 1e-5 * total)
    assert problem.allowed_residuals(tol, 1.0) == pytest.approx(1.0 + tol / 2)
    # violations: feas_tol * max|Y| = 3e-3
    assert problem.is_feasible(np.zeros(2), 2.9e-3, tol)
    assert not problem.is_feasible(np.zeros(2), 3.1e-3, tol)


def test_feasible_columns_per_column():
    problem = _problem(radius=np.array([0.5, 1.0]))
    tol = 1e-3
    ok = problem.feasible_columns(np.array([0.5006, 1.002]), np.array([0.0, 0.0]), tol)
    np.testing.assert_array_equal(ok, [False, False])
    ok = problem.feasible_columns(np.array([0.4, 0.9]), np.array([0.0, 0.004]), tol)
    np.testing.assert_array_equal(ok, [True, False])


def test_columns_carry_the_figures_they_share():
    problem = _problem(radius=np.array([0.5, 1.0]))
    np.testing.assert_allclose(problem.gram, X.T @ X, rtol=1e-14)
    part = problem.columns([1])
    fresh = NetTrimProblem(
        X=X,
        Y=Y[:, [1]],
        active=ACTIVE[:, [1]],
        upper=None,
        radius=np.array([1.0]),
        l1_weights=WEIGHTS,
        violation_scale=float(np.abs(Y).max()),
    )
    assert part.gram is problem.gram  # same X: carried, not recomputed
    total, cols, y_max = part.target_scale
    fresh_total, fresh_cols, fresh_max = fresh.target_scale
    assert total == pytest.approx(fresh_total, **EXACT) and y_max == fresh_max
    np.testing.assert_allclose(cols, fresh_cols, rtol=1e-14)

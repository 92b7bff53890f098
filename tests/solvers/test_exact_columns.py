"""Exact solves of single columns (row and entry generation) and the ADMM's use of them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_admm import make_layer, problem

from nettrim.solvers import AdmmSettings, dual_bound, exact_columns, solve_admm, solve_exact
from nettrim.solvers.exact_columns import solve_columns

# the ADMM stopped early, without the exact solves: the point and multiplier they start from
# (not through the range reduction, whose multiplier lives in the reduced rows)
EARLY = AdmmSettings(
    exact_columns=0, active_set=False, reduce_range=False, gap_tol=1e-2, feas_tol=1e-2
)


@pytest.fixture
def free_exact_solves(monkeypatch):
    """The exact solves' cost model at zero: due as soon as the columns lag (the layers
    here are small, their iterations cheap, and the model lets the ADMM finish them)."""
    monkeypatch.setattr(exact_columns, "SOLVE_OVERHEAD", 0.0)
    monkeypatch.setattr(exact_columns, "SOLVE_WORK", 0.0)


def _rare_neuron_layer(seed, *, upper=False, entry_weights=False, **kw):
    """A random per-neuron layer whose first neuron fires on 2-3% of the samples
    (``upper``: random bounds ``V`` off Omega; ``entry_weights``: random ones)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 24))
    W = rng.standard_normal((24, 6)) * (rng.random((24, 6)) < 0.6)
    b = 0.3 * rng.standard_normal(6)
    b[0] = -2.0 * np.linalg.norm(W[:, 0])
    Y = np.maximum(X @ W + b, 0)
    if upper:
        kw["upper"] = 0.2 * np.abs(rng.standard_normal(Y.shape))
    p = problem(X, Y, **{"eps": 0.1, "per_neuron": True, **kw})
    if entry_weights:
        p = replace(p, entry_weights=np.exp(rng.uniform(-1, 1, (p.X.shape[1], Y.shape[1]))))
    return p


CASES = {
    "rare neuron": lambda: _rare_neuron_layer(10),
    "bounds V off Omega": lambda: _rare_neuron_layer(11, upper=True),
    "unpenalized bias": lambda: _rare_neuron_layer(12, penalize_bias=False),
    "entry weights": lambda: _rare_neuron_layer(13, entry_weights=True),
    "linear (P2)": lambda: problem(
        *make_layer(14, 60, 10, 3, relu=False), activation="linear", per_neuron=True
    ),
}


def _column_figures(p, W, Lam):
    """Per column: objective, certified bound, ball excess over the radius, violation."""
    c = np.broadcast_to(p.weight_matrix(), W.shape)
    objective = np.sum(c * np.abs(W), axis=0)
    bound = np.array([dual_bound(p.columns([j]), Lam[:, [j]]) for j in range(W.shape[1])])
    excess = p.column_residuals(W) - p.radius
    XW = p.X @ W
    off = np.zeros_like(XW, dtype=bool) if p.active is None else ~p.active
    violation = np.max(np.where(off, XW - p.upper_bounds(), 0.0), axis=0)
    return objective, bound, excess, violation


@pytest.mark.parametrize("name", list(CASES))
def test_columns_reach_clarabels_optimum_with_a_certificate(name):
    """Every column from an early ADMM point: Clarabel's objective, feasible, and the
    multiplier lifted back to the whole program certifies it to Clarabel's accuracy (the
    balls reduced by a QR too: most columns have more rows on Omega than entries)."""
    p = CASES[name]()
    state = solve_admm(p, EARLY, keep_state=True).info.extra["state"]
    point = solve_columns(p, state.S, state.dual_z)
    assert point.solved.all()
    objective, bound, excess, violation = _column_figures(p, point.W, point.Lam)
    exact = solve_exact(p, solver="clarabel").W
    expected = np.sum(np.broadcast_to(p.weight_matrix(), exact.shape) * np.abs(exact), axis=0)
    np.testing.assert_allclose(objective, expected, rtol=1e-6)
    assert np.all(objective - bound <= 1e-6 * objective)
    assert np.all(excess <= 1e-7 * p.radius)
    assert np.all(violation <= 1e-8 * np.abs(p.Y).max())


def test_a_column_whose_ball_was_reduced_is_certified_by_the_lifted_multiplier():
    """A column with many rows on Omega: its ball goes through the QR, and the multiplier
    on Omega needs the part of the targets outside the restriction's range
    (:meth:`exact_columns._Ball.multiplier`); the cone's multiplier alone, lifted by ``Q``,
    leaves a gap of ``(r - r') ||z||``."""
    p = _rare_neuron_layer(10)
    j = int(np.argmax(p.active.sum(axis=0)))
    state = solve_admm(p, EARLY, keep_state=True).info.extra["state"]
    point = solve_columns(p.columns([j]), state.S[:, [j]], state.dual_z[:, [j]])
    assert point.solved[0] and p.active[:, j].sum() > np.count_nonzero(point.W)
    objective, bound, *_ = _column_figures(p.columns([j]), point.W, point.Lam)
    assert objective[0] - bound[0] <= 1e-7 * objective[0]


def test_a_guess_with_no_entries_grows_to_the_optimum():
    """From a zero point and multiplier no entry is guessed: the fit misses the radius,
    the entries that reduce the residual join round after round until it is solved."""
    p = _rare_neuron_layer(10)
    n, d, m = p.shape
    point = solve_columns(p, np.zeros((d, m)), np.zeros((n, m)))
    assert point.solved.all() and point.rounds > 2 * m
    exact = solve_exact(p, solver="clarabel").W
    np.testing.assert_allclose(p.l1(point.W), p.l1(exact), rtol=1e-6)


def test_solve_columns_needs_one_ball_per_column():
    for kw in (dict(per_neuron=False), dict(penalty=5.0)):
        p = _rare_neuron_layer(10, **kw)
        n, d, m = p.shape
        with pytest.raises(ValueError, match="one ball per column"):
            solve_columns(p, np.zeros((d, m)), np.zeros((n, m)))


def test_unsolved_columns_are_reported_not_returned(monkeypatch):
    """A column Clarabel does not settle in ``MAX_ROUNDS`` comes back unsolved and zero."""
    monkeypatch.setattr(exact_columns, "MAX_ROUNDS", 1)
    p = _rare_neuron_layer(10)
    n, d, m = p.shape
    point = solve_columns(p, np.zeros((d, m)), np.zeros((n, m)))
    assert not point.solved.any()
    assert not point.W.any() and not point.Lam.any()


@pytest.mark.parametrize("seed", [10, 12, 14])
def test_solve_admm_solves_a_lagging_rare_neuron_exactly(seed, free_exact_solves):
    """The rare neuron lags the others: the ADMM solves it exactly once they are set
    aside, and ends certified in fewer iterations than without (`exact_columns=0`)."""
    p = _rare_neuron_layer(seed)
    result = solve_admm(p)
    without = solve_admm(p, AdmmSettings(exact_columns=0))
    extra = result.info.extra
    assert extra["exact_attempts"] >= 1 and extra["exact_columns"] >= 1
    assert result.status.value == "optimal" and result.info.ball_excess <= 1e-3 * p.radius.max()
    assert result.info.gap <= 1e-3 * result.info.objective
    assert result.info.iterations < without.info.iterations
    assert extra["column_iterations"] < without.info.extra["column_iterations"]
    exact = solve_exact(p, solver="clarabel")
    assert result.info.objective == pytest.approx(exact.info.objective, rel=2e-3)
    again = solve_admm(p)
    np.testing.assert_array_equal(again.W, result.W)  # deterministic, bit for bit


def test_the_state_of_a_column_solved_exactly_is_its_fixed_point(free_exact_solves):
    """A kept state carries the exact column at the iteration's fixed point (``Z = X S``,
    ``dual_s = -X^T dual_z``), not the iterate it left; a solve from it stops at its first
    check."""
    p = _rare_neuron_layer(10)
    result = solve_admm(p, keep_state=True)
    assert result.info.extra["exact_columns"] == 1
    state = result.info.extra["state"]
    np.testing.assert_array_equal(state.S, result.W)
    np.testing.assert_allclose(state.Z[:, 0], p.X @ state.S[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(state.dual_s[:, 0], -p.X.T @ state.dual_z[:, 0], atol=1e-12)
    np.testing.assert_array_equal(state.W[:, 0], state.S[:, 0])
    again = solve_admm(p, warm_start=result)
    assert again.info.iterations == AdmmSettings().check_every


def test_cheap_iterations_finish_their_laggards_without_exact_solves(monkeypatch):
    """On a small layer the ADMM's iterations cost less than the exact solves would
    (:func:`exact_columns.estimated_work` against the iterations run on the columns
    left): none is tried, and the solve is the one with ``exact_columns=0``, bit for bit.
    With the model's cost near zero the same solve tries one."""
    p = _rare_neuron_layer(10)
    result = solve_admm(p)
    assert result.info.extra["exact_attempts"] == 0
    np.testing.assert_array_equal(result.W, solve_admm(p, AdmmSettings(exact_columns=0)).W)
    monkeypatch.setattr(exact_columns, "SOLVE_WORK", 0.0)
    monkeypatch.setattr(exact_columns, "SOLVE_OVERHEAD", 1.0)
    assert solve_admm(p).info.extra["exact_attempts"] == 1


def test_exact_columns_setting_is_checked():
    with pytest.raises(ValueError, match="exact_columns must be >= 0"):
        AdmmSettings(exact_columns=-1)

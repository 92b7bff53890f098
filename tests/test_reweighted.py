"""Reweighted-L1 Net-Trim: per-entry weights in the exact path, sparser at the same eps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nettrim.layer import build_problem, trim_layer
from nettrim.reweighted import reweighted_trim_layer
from nettrim.solvers import solve_exact


def planted(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((150, 16))
    W = rng.standard_normal((16, 4)) * (rng.random((16, 4)) < 0.3)
    return X, np.maximum(X @ W, 0.0)


def test_entry_weights_enter_the_exact_objective():
    X, Y = planted(1)
    problem = build_problem(
        X,
        Y,
        activation="relu",
        eps=0.2,
        relative=True,
        per_neuron=False,
        bias=False,
        penalize_bias=True,
        upper=None,
        penalty=None,
        active_tol=0.0,
    )
    weights = np.ones((16, 4))
    weights[0, :] = 1e4  # a prohibitive price on input 0
    result = solve_exact(replace(problem, entry_weights=weights))
    assert result.status == "optimal"
    assert result.info.objective == pytest.approx(
        float(np.sum(weights * np.abs(result.x))), rel=1e-9
    )
    plain = solve_exact(problem)
    # the price moves weight off input 0 (as far as the constraints allow)
    assert np.abs(result.x[0]).sum() < np.abs(plain.x[0]).sum()
    assert problem.l1(plain.x) == pytest.approx(float(np.abs(plain.x).sum()), rel=1e-12)


def test_reweighting_is_sparser_at_the_same_eps():
    X, Y = planted(2)
    plain = trim_layer(X, Y, eps=0.1, bias=False, solver="clarabel")
    result = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=3)
    assert result.nnz <= plain.nnz
    assert result.info.extra["nnz_history"][0] == plain.nnz
    assert result.info.extra["rounds"] >= 1
    # the same constraints: within the budget (Clarabel's feasibility tolerance, 1e-6)
    assert result.info.residual <= result.info.radius * (1 + 1e-6) + 1e-8
    assert result.info.violation <= 1e-6
    assert result.program == "P1"


def test_rounds_zero_and_bad_arguments():
    X, Y = planted(3)
    plain = trim_layer(X, Y, eps=0.1, solver="clarabel")
    same = reweighted_trim_layer(X, Y, eps=0.1, rounds=0)
    np.testing.assert_array_equal(same.W, plain.W)
    with pytest.raises(ValueError, match="solver must be one of"):
        reweighted_trim_layer(X, Y, solver="admm")
    with pytest.raises(ValueError, match="delta must be > 0"):
        reweighted_trim_layer(X, Y, delta=0.0)

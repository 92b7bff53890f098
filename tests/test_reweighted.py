"""Reweighted-L1 Net-Trim: per-entry weights in the exact path, sparser at the same eps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nettrim.layer import trim_layer
from nettrim.reweighted import reweighted_trim_layer
from nettrim.solvers import solve_exact

#: A bias-free ReLU layer, 150 samples of 16 inputs, 4 outputs, 30% of the weights non-zero.
LAYER = {"n": 150, "d_in": 16, "d_out": 4, "density": 0.3, "bias": 0.0}


def test_entry_weights_enter_the_exact_objective(planted_layer, layer_program):
    X, _, _, Y = planted_layer(1, **LAYER)
    problem = layer_program(X, Y, eps=0.2, bias=False)
    weights = np.ones((16, 4))
    weights[0, :] = 1e4  # a prohibitive price on input 0
    result = solve_exact(replace(problem, entry_weights=weights))
    assert result.status == "optimal"
    assert result.info.objective == pytest.approx(
        float(np.sum(weights * np.abs(result.W))), rel=1e-9
    )
    plain = solve_exact(problem)
    # the price moves weight off input 0 (as far as the constraints allow)
    assert np.abs(result.W[0]).sum() < np.abs(plain.W[0]).sum()
    assert problem.l1(plain.W) == pytest.approx(float(np.abs(plain.W).sum()), rel=1e-12)


def test_reweighting_is_sparser_at_the_same_eps(planted_layer):
    X, _, _, Y = planted_layer(2, **LAYER)
    plain = trim_layer(X, Y, eps=0.1, bias=False, solver="clarabel")
    result = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=3, solver="clarabel")
    assert result.nnz <= plain.nnz
    assert result.info.extra["nnz_history"][0] == plain.nnz
    assert result.info.extra["rounds"] >= 1
    # the same constraints: within the budget (Clarabel's feasibility tolerance, 1e-6)
    assert result.info.residual <= result.info.radius * (1 + 1e-6) + 1e-8
    assert result.info.violation <= 1e-6
    assert result.program == "P1"


def test_round_weights_keep_the_previous_l1_norm(planted_layer):
    """A round's weights are scaled so the previous solution keeps its L1 norm.

    The previous solution is feasible, so the round's optimal weighted objective is at most
    the plain L1 optimum (unscaled weights ``1 / (|W| + delta)`` would give about the count
    of non-zeros instead, whatever the scale of the weights: 0.01 makes the two differ).
    """
    X, _, _, Y = planted_layer(2, **LAYER)
    Y = 0.01 * Y
    plain = trim_layer(X, Y, eps=0.1, bias=False, solver="clarabel")
    one = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=1, solver="clarabel")
    assert one.info.extra["rounds"] == 1
    assert one.info.extra["weighted_objective"] <= plain.info.objective * (1 + 1e-6)
    assert one.nnz <= plain.nnz


def test_admm_rounds_match_the_exact_rounds(planted_layer):
    """The fast path: warm-started ADMM rounds reach the sparsity of the exact rounds."""
    # too few samples for L1 to find the support
    X, _, _, Y = planted_layer(1, **{**LAYER, "n": 40, "density": 0.5})
    exact = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=3, solver="clarabel")
    fast = reweighted_trim_layer(
        X, Y, eps=0.1, bias=False, rounds=3, solver="admm", solver_options={"gap_tol": 1e-5}
    )
    assert fast.status == "optimal"
    assert fast.info.solver == "admm+reweighted"
    assert fast.info.extra["rounds"] == 3
    plain = trim_layer(X, Y, eps=0.1, bias=False, solver="admm")
    # reweighting sparsifies on the fast path too, and as far as on the exact one
    assert fast.nnz < plain.nnz
    assert fast.nnz <= exact.nnz + 1
    assert fast.info.residual <= fast.info.radius * (1 + 1e-3)
    assert fast.info.violation <= 1e-3 * Y.max()
    # deterministic
    again = reweighted_trim_layer(
        X, Y, eps=0.1, bias=False, rounds=3, solver="admm", solver_options={"gap_tol": 1e-5}
    )
    np.testing.assert_array_equal(again.W, fast.W)
    # every round reported, round 0 the plain solve; the ADMM's state stays inside
    extra = fast.info.extra
    assert len(extra["round_iterations"]) == len(extra["round_seconds"]) == 4
    tight = trim_layer(X, Y, eps=0.1, bias=False, solver="admm", solver_options={"gap_tol": 1e-5})
    assert extra["round_iterations"][0] == tight.info.iterations
    assert "state" not in extra and "state" not in tight.info.extra


def test_rounds_zero_and_bad_arguments(planted_layer):
    X, _, _, Y = planted_layer(3, **LAYER)
    plain = trim_layer(X, Y, eps=0.1, solver="clarabel")
    same = reweighted_trim_layer(X, Y, eps=0.1, rounds=0, solver="clarabel")
    np.testing.assert_array_equal(same.W, plain.W)
    with pytest.raises(ValueError, match="solver must be one of"):
        reweighted_trim_layer(X, Y, solver="cplex")
    with pytest.raises(ValueError, match="solver_options"):
        reweighted_trim_layer(X, Y, solver_options={"no_such_setting": 1})
    with pytest.raises(ValueError, match="delta must be > 0"):
        reweighted_trim_layer(X, Y, delta=0.0)


def _recording_solve_admm(monkeypatch, fail_calls=(), short_calls=()):
    """Record ``(gap_tol, entry weights, result)`` of every ADMM solve of the rounds; the
    calls numbered in ``fail_calls`` (0 = the plain solve) return no weights, as a failed
    round, those in ``short_calls`` stop after one iteration (``max_iter=1``)."""
    import nettrim.reweighted as reweighted
    from nettrim.solvers import SolverResult, Status

    calls, real = [], reweighted.solve_admm

    def recording(problem, settings, **kwargs):
        index = len(calls)
        if index in fail_calls:
            result = SolverResult.without_weights(
                Status.MAX_ITER, solver="admm", seconds=0.0, message="a failed round"
            )
        else:
            if index in short_calls:
                settings = replace(settings, max_iter=1)
            result = real(problem, settings, **kwargs)
        calls.append((settings.gap_tol, problem.entry_weights, result))
        return result

    monkeypatch.setattr(reweighted, "solve_admm", recording)
    return calls


def test_rounds_between_first_and_last_are_solved_to_the_intermediate_gap(
    planted_layer, monkeypatch
):
    from nettrim.reweighted import INTERMEDIATE_GAP_TOL

    X, _, _, Y = planted_layer(1, **{**LAYER, "n": 60})
    calls = _recording_solve_admm(monkeypatch)
    result = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=3, solver="admm")
    assert [c[0] for c in calls] == [1e-3, INTERMEDIATE_GAP_TOL, INTERMEDIATE_GAP_TOL, 1e-3]
    extra = result.info.extra
    assert extra["recertify_iterations"] == 0
    assert result.status == "optimal" and extra["rounds"] == 3
    # the last round's weights are returned, certified to 1e-3 of its weighted objective
    last = calls[-1][2]
    np.testing.assert_array_equal(result.W, last.W)
    assert last.info.gap <= 1e-3 * last.info.objective
    assert extra["round_column_iterations"] == [c[2].info.iterations for c in calls]
    # a looser gap asked than the intermediate one: every round at it
    calls.clear()
    reweighted_trim_layer(
        X, Y, eps=0.1, bias=False, rounds=2, solver="admm", solver_options={"gap_tol": 0.05}
    )
    assert [c[0] for c in calls] == [0.05, 0.05, 0.05]


def test_rounds_ending_on_an_intermediate_round_certify_it(planted_layer, monkeypatch):
    X, _, _, Y = planted_layer(1, **{**LAYER, "n": 60})
    calls = _recording_solve_admm(monkeypatch, fail_calls=(2,))
    result = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=3, solver="admm")
    # plain, round 1 (loose, kept), round 2 (fails), round 1's program again to 1e-3
    assert [c[0] for c in calls] == [1e-3, 1e-2, 1e-2, 1e-3]
    assert calls[3][1] is calls[1][1] and calls[2][1] is not calls[1][1]
    again = calls[3][2]
    assert again.info.gap <= 1e-3 * again.info.objective
    extra = result.info.extra
    assert extra["rounds"] == 1 and len(extra["round_iterations"]) == 3
    assert extra["recertify_iterations"] == again.info.iterations > 0
    assert extra["weighted_objective"] == again.info.objective
    assert result.status == "optimal"
    np.testing.assert_array_equal(result.W, again.W)
    assert result.nnz == extra["nnz_history"][-1] == np.count_nonzero(again.W)


@pytest.mark.parametrize("how", ["stops short", "returns no weights"])
def test_a_recertification_that_falls_short_returns_the_plain_solve(
    planted_layer, monkeypatch, how
):
    X, _, _, Y = planted_layer(1, **{**LAYER, "n": 60})
    faults = {"fail_calls": (2,), "short_calls": (3,)}
    if how == "returns no weights":
        faults = {"fail_calls": (2, 3)}
    calls = _recording_solve_admm(monkeypatch, **faults)
    result = reweighted_trim_layer(X, Y, eps=0.1, bias=False, rounds=3, solver="admm")
    assert calls[3][2].status == "max_iter" and len(calls) == 4
    plain = calls[0][2]
    np.testing.assert_array_equal(result.W, plain.W)
    assert result.status == "optimal"
    extra = result.info.extra
    assert extra["rounds"] == 0 and extra["nnz_history"] == [np.count_nonzero(plain.W)]
    assert extra["recertify_iterations"] == (1 if how == "stops short" else 0)

"""The result vocabulary: .W (with the deprecated .x), .success, summary() and str(), and the
L0 info type without Net-Trim's ball figures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nettrim.solvers import (
    L0Info,
    NetTrimProblem,
    SolveInfo,
    SolverResult,
    Status,
    solve_admm,
    solve_iht,
    solve_l0_admm,
    solve_p5_iht,
)
from nettrim.solvers.projections import make_pattern


def _net_trim_result() -> SolverResult:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Y = X @ (rng.standard_normal((5, 3)) * (rng.random((5, 3)) < 0.5))
    problem = NetTrimProblem(
        X=X, Y=Y, active=None, upper=None, radius=0.1 * np.linalg.norm(Y), l1_weights=np.ones(5)
    )
    return solve_admm(problem)


def test_weights_are_W_and_x_is_a_deprecated_alias():
    result = _net_trim_result()
    assert result.success and result.W is not None
    with pytest.warns(DeprecationWarning, match="use SolverResult.W"):
        old = result.x
    assert old is result.W
    assert "W" in {f.name for f in dataclasses.fields(SolverResult)}


def test_summary_is_the_one_rendering():
    result = _net_trim_result()
    text = result.summary()
    assert str(result) == text
    assert text.startswith("optimal: ") and "admm: objective" in text and "radius" in text
    assert str(result.info) == result.info.summary()
    assert f"{result.info.iterations} iterations" in result.info.summary()


def _l0_inputs():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 8))
    W0 = rng.standard_normal((8, 4))
    return X, X.T @ X, W0, make_pattern("unstructured", (8, 4), sparsity=0.5)


@pytest.mark.parametrize("solver", [solve_iht, solve_l0_admm])
def test_l0_results_carry_l0_info(solver):
    _, G, W0, K = _l0_inputs()
    result = solver(G, W0, K)
    info = result.info
    assert isinstance(info, L0Info) and not isinstance(info, SolveInfo)
    field_names = {f.name for f in dataclasses.fields(L0Info)}
    assert not field_names & {"radius", "ball_excess", "dual_bound", "gap"}
    assert info.residual == pytest.approx(np.sqrt(2 * info.objective))
    assert "relative error" in info.summary() and str(result) == result.summary()
    # what an L0 result carried in SolveInfo is still readable, deprecated, as nan
    with pytest.warns(DeprecationWarning, match="no 'radius'"):
        assert np.isnan(info.radius)
    with pytest.raises(AttributeError):
        info.no_such_figure


def test_p5_result_carries_l0_info():
    X, _, W0, K = _l0_inputs()
    Y = np.maximum(X @ W0, 0.0)
    result = solve_p5_iht(X, Y, W0, K)
    assert isinstance(result.info, L0Info) and result.info.violation >= 0
    assert result.status in (Status.OPTIMAL, Status.MAX_ITER)

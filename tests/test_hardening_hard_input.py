"""Hard but valid input: degenerate data each solved correctly.

Net-Trim (the ADMM) is checked against Clarabel on the same program and by Proposition 1;
the L0 pruning against magnitude pruning at the same budget (it starts from it and must not
do worse); an infeasible bound is a status, not an exception.
"""

import numpy as np
import pytest

from nettrim import Status, net_trim, prune_layer, trim_layer
from nettrim.solvers import AdmmSettings

EPS = 0.1
FEAS_TOL = AdmmSettings().feas_tol


def _degenerate(case: str):
    """``(X, Y)`` of a ReLU layer with the named degeneracy."""
    rng = np.random.default_rng(7)
    n, d, m = 60, 10, 4
    X = rng.standard_normal((n, d))
    if case == "zero input column":
        X[:, 3] = 0.0
    elif case == "constant input column":  # collinear with the bias column
        X[:, 0] = 5.0
    elif case == "rank-deficient X":
        X = rng.standard_normal((n, 3)) @ rng.standard_normal((3, d))
    elif case == "fewer samples than inputs":
        X = rng.standard_normal((8, 25))
    elif case == "duplicated samples":
        X = np.vstack([X[:20]] * 3)
    W = rng.standard_normal((X.shape[1], m)) * (rng.random((X.shape[1], m)) < 0.5)
    Y = np.maximum(X @ W + 0.1, 0.0)
    if case == "dead neuron":
        Y[:, 1] = 0.0
    return X, Y


CASES = [
    "zero input column",
    "constant input column",
    "rank-deficient X",
    "fewer samples than inputs",
    "duplicated samples",
    "dead neuron",
]


@pytest.mark.parametrize("case", CASES)
def test_net_trim_layer_on_degenerate_data_agrees_with_the_exact_solver(case):
    X, Y = _degenerate(case)
    admm = trim_layer(X, Y, eps=EPS, solver="admm")
    exact = trim_layer(X, Y, eps=EPS, solver="clarabel")
    assert admm.success and exact.success
    assert admm.info.objective == pytest.approx(exact.info.objective, rel=5e-3, abs=1e-6)
    for result in (admm, exact):  # Proposition 1 on the returned weights
        out = np.maximum(X @ result.W + result.b, 0.0)
        assert np.linalg.norm(out - Y) <= EPS * np.linalg.norm(Y) * (1 + FEAS_TOL)
    if case == "zero input column":
        assert np.all(admm.W[3] == 0)  # a weight on a zero input only costs
    if case == "dead neuron":  # the all-zero weights meet Omega = {} and V = 0
        assert np.all(admm.W[:, 1] == 0) and admm.b[1] <= 0


@pytest.mark.parametrize("case", CASES)
def test_l0_pruning_on_degenerate_data_is_no_worse_than_magnitude(case):
    X, _ = _degenerate(case)
    rng = np.random.default_rng(1)
    W = rng.standard_normal((X.shape[1], 4))
    errors = {}
    for method in ("admm", "magnitude"):
        result = prune_layer(X, W, np.zeros(4), sparsity=0.5, method=method)
        assert np.all(np.isfinite(result.W)) and result.sparsity >= 0.5 - 1e-12
        errors[method] = np.linalg.norm(X @ result.W + result.b - X @ W)
    assert errors["admm"] <= errors["magnitude"] * (1 + 1e-9)


def _infeasible_layer():
    """Every sample twice: once in Omega with target 2, once off it with the bound -1."""
    X = np.random.default_rng(3).standard_normal((10, 4))
    X = np.vstack([X, X])
    Y = np.vstack([np.full((10, 2), 2.0), np.zeros((10, 2))])
    return X, Y, np.full(Y.shape, -1.0)


@pytest.mark.parametrize("solver", ["admm", "clarabel"])
def test_an_infeasible_bound_is_a_status_not_an_exception(solver):
    X, Y, upper = _infeasible_layer()
    result = trim_layer(X, Y, eps=EPS, upper=upper, solver=solver)
    assert result.status is Status.INFEASIBLE
    assert result.W is None and not result.success


def test_dead_layer_in_a_network(random_network):
    """A layer whose every output is 0 on the data: pruned to zero weights, not an error."""
    network, X = random_network([5, 4, 3], seed=4)
    dead = network.layers[0]
    W = np.array(dead.W)
    b = -10.0 - np.abs(X @ W).max(axis=0)  # every pre-activation < 0
    network = type(network).from_arrays([W, network.layers[1].W], [b, network.layers[1].b])
    for solver in ("admm", "clarabel"):
        result = net_trim(network, X, eps=EPS, n_jobs=1, solver=solver)
        assert result.success
        assert np.abs(result.layers[0].W).max() <= 1e-9  # Clarabel stops at ~1e-11, not 0
    assert net_trim(network, X, eps=EPS, n_jobs=1, solver="admm").layers[0].nnz == 0

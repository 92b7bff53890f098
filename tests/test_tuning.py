"""Choosing eps by bisection: targets met, the chosen point the right end of the bracket."""

from dataclasses import replace

import numpy as np
import pytest

import nettrim.tuning as tuning
from nettrim.executors import process_pool
from nettrim.layer import TrimOptions
from nettrim.tuning import tune_layer, tune_network

DIMS = (10, 16, 12, 4)
N_SAMPLES = 80
SOLVER = "clarabel"


@pytest.fixture(scope="module")
def net_and_x(random_network):
    return random_network(DIMS, 0, n=N_SAMPLES)


def test_tune_layer_to_sparsity(net_and_x):
    net, X = net_and_x
    acts = net.record(X)
    tuned = tune_layer(acts[1], acts[2], target_sparsity=0.5, solver=SOLVER)
    assert tuned.success and tuned.criterion == "sparsity"
    assert tuned.result.sparsity == tuned.value >= 0.5
    # the chosen eps is the smallest evaluated one that meets the target
    met = [eps for eps, value in tuned.history if value >= 0.5]
    assert tuned.eps == min(met)
    missed = [eps for eps, value in tuned.history if value < 0.5]
    assert max(missed) < tuned.eps


def test_tune_layer_to_held_out_discrepancy(net_and_x):
    net, X = net_and_x
    X_val = np.random.default_rng(5).standard_normal((60, DIMS[0]))
    acts, val = net.record(X), net.record(X_val)
    tuned = tune_layer(
        acts[1], acts[2], target_discrepancy=0.2, X_val=val[1], Y_val=val[2], solver=SOLVER
    )
    assert tuned.success and tuned.value <= 0.2
    assert tuned.eps == max(eps for eps, value in tuned.history if value <= 0.2)
    with pytest.raises(ValueError, match="both X_val and Y_val"):
        tune_layer(acts[1], acts[2], target_discrepancy=0.2, X_val=val[1])


def test_unreachable_target_is_reported(net_and_x):
    net, X = net_and_x
    acts = net.record(X)
    tuned = tune_layer(
        acts[0], acts[1], target_sparsity=0.999, eps_range=(1e-3, 0.05), solver=SOLVER
    )
    assert not tuned.success and tuned.eps == 0.05 and len(tuned.history) == 1


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_tune_network_to_sparsity(net_and_x, scheme):
    net, X = net_and_x
    tuned = tune_network(net, X, target_sparsity=0.4, scheme=scheme, solver=SOLVER, n_jobs=1)
    assert tuned.success and tuned.result.sparsity >= 0.4
    assert tuned.result.scheme == scheme
    assert tuned.eps == min(eps for eps, value in tuned.history if value >= 0.4)


def test_tune_network_to_discrepancy(net_and_x):
    net, X = net_and_x
    tuned = tune_network(net, X, target_discrepancy=0.1, solver=SOLVER, n_jobs=1)
    out = tuned.result.network(X)
    assert np.linalg.norm(out - net(X)) / np.linalg.norm(net(X)) <= 0.1
    assert tuned.success


def test_tune_network_per_layer_on_a_pool(net_and_x):
    net, X = net_and_x
    with process_pool(2) as pool:
        tuned = tune_network(
            net, X, target_sparsity=0.5, per_layer=True, solver=SOLVER, executor=pool
        )
    assert len(tuned.eps) == len(net) and all(tuned.success)
    for layer in tuned.result.layers:
        assert layer.sparsity >= 0.5
    # each layer's eps equals the one tuned alone, in-process
    acts = net.record(X)
    alone = tune_layer(acts[2], acts[3], target_sparsity=0.5, activation="linear", solver=SOLVER)
    assert tuned.eps[2] == alone.eps


def test_warm_starts_are_passed(net_and_x, monkeypatch):
    net, X = net_and_x
    acts = net.record(X)
    seen = []
    real = tuning.solve_layer

    def spy(X, Y, options, **kwargs):
        seen.append(kwargs.get("warm_start") is not None)
        return real(X, Y, options, **kwargs)

    monkeypatch.setattr(tuning, "solve_layer", spy)
    tune_layer(acts[1], acts[2], target_sparsity=0.5, solver="admm", max_steps=3)
    assert seen[0] is False and all(seen[1:]) and len(seen) >= 3


def test_bad_arguments(net_and_x):
    net, X = net_and_x
    with pytest.raises(ValueError, match="exactly one of target_sparsity"):
        tune_network(net, X)
    with pytest.raises(ValueError, match="target_sparsity must be <= 1"):
        tune_network(net, X, target_sparsity=1.5)
    with pytest.raises(ValueError, match="eps_range must satisfy"):
        tune_network(net, X, target_sparsity=0.5, eps_range=(1.0, 0.1))
    with pytest.raises(ValueError, match="per_layer tuning needs scheme='parallel'"):
        tune_network(net, X, target_sparsity=0.5, per_layer=True, scheme="cascade")
    with pytest.raises(TypeError, match="sets 'eps' itself"):
        tune_network(net, X, target_sparsity=0.5, eps=0.1)


def test_target_tol_and_its_deprecated_name_tol(net_and_x):
    net, X = net_and_x
    acts = net.record(X)
    new = tune_layer(acts[1], acts[2], target_sparsity=0.5, target_tol=0.2, solver=SOLVER)
    with pytest.warns(DeprecationWarning, match="tol= is deprecated, use target_tol="):
        old = tune_layer(acts[1], acts[2], target_sparsity=0.5, tol=0.2, solver=SOLVER)
    assert old.history == new.history
    # a loose stop leaves the bisection earlier than the default one
    default = tune_layer(acts[1], acts[2], target_sparsity=0.5, solver=SOLVER)
    assert len(new.history) <= len(default.history)
    with pytest.raises(TypeError, match="give target_tol= only"):
        tune_layer(acts[1], acts[2], target_sparsity=0.5, tol=0.1, target_tol=0.1)
    with pytest.warns(DeprecationWarning, match="tol= is deprecated"):
        tune_network(net, X, target_sparsity=0.5, tol=0.2, solver=SOLVER, n_jobs=1)


def test_trim_layer_tol_is_forwarded_through_options(net_and_x, monkeypatch):
    net, X = net_and_x
    acts = net.record(X)
    seen = []
    real = tuning.solve_layer

    def spy(X, Y, options, **kwargs):
        seen.append((options.tol, options.max_iter, options.eps))
        return real(X, Y, options, **kwargs)

    monkeypatch.setattr(tuning, "solve_layer", spy)
    options = TrimOptions(solver="admm", tol=1e-3, max_iter=400)
    tuned = tune_layer(acts[1], acts[2], target_sparsity=0.5, max_steps=2, options=options)
    assert {(tol, max_iter) for tol, max_iter, _ in seen} == {(1e-3, 400)}
    assert [eps for *_, eps in seen] == [eps for eps, _ in tuned.history]
    alone = real(acts[1], acts[2], replace(options, eps=tuned.eps))
    assert alone.info.iterations <= 400
    with pytest.raises(TypeError, match="not both"):
        tune_layer(acts[1], acts[2], target_sparsity=0.5, options=options, solver="admm")

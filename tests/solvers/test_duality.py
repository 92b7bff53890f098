"""The dual certificate: always a lower bound, tight at the optimum, same in both routes."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers import DualCertifier, dual_bound, feasible_multiplier, solve_exact


@pytest.fixture(scope="module")
def layer_problem(planted_layer, layer_program):
    """A small planted layer's program (40 samples, 6 inputs, 3 outputs) with options."""

    def make(seed, **kw):
        activation = kw.get("activation", "relu")
        X, _, _, Y = planted_layer(seed, n=40, d_in=6, d_out=3, density=0.5, activation=activation)
        return layer_program(X, Y, **kw)

    return make


VARIANTS = {
    "layer-wide": {},
    "per-neuron": {"per_neuron": True},
    "unpenalized bias": {"penalize_bias": False},
    "penalized": {"penalty": 3.0},
    "linear": {"activation": "linear"},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_bound_below_optimum_for_random_multipliers(name, layer_problem):
    p = layer_problem(0, **VARIANTS[name])
    optimum = solve_exact(p, solver="clarabel").info.objective
    rng = np.random.default_rng(1)
    for _ in range(25):
        Lam = rng.standard_normal(p.Y.shape) * rng.uniform(1e-2, 1e2)
        assert dual_bound(p, Lam) <= optimum * (1 + 1e-8) + 1e-12


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_certifier_equals_reference(name, layer_problem):
    p = layer_problem(2, **VARIANTS[name])
    rng = np.random.default_rng(3)
    U = rng.standard_normal(p.Y.shape)
    assert DualCertifier(p).bound(U, 0.7) == pytest.approx(dual_bound(p, 0.7 * U), rel=1e-10)


def test_feasible_multiplier_satisfies_dual_constraints(layer_problem):
    p = layer_problem(4, penalize_bias=False, upper=np.full((40, 3), 0.5))
    Lam = feasible_multiplier(p, np.random.default_rng(5).standard_normal(p.Y.shape) * 10)
    assert np.all(Lam[~p.active] >= 0)
    G = p.X.T @ Lam
    assert np.abs(G[:-1]).max() <= 1 + 1e-12
    np.testing.assert_allclose(G[-1], 0.0, atol=1e-10)  # the unpenalized bias row

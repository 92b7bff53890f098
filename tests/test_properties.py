"""Property-based checks (hypothesis) of the guarantees every Net-Trim result carries.

On random small layers of every shape hypothesis draws (including fewer samples than inputs,
dead neurons and all-zero input columns):

* weak duality: the ADMM's certified ``dual_bound`` never exceeds the optimum an interior-point
  solver (Clarabel) finds for the same program;
* Proposition 1 on the returned weights: the realized ReLU discrepancy is bounded by the
  ball residual and the positive part off Omega that the result reports;
* a result that reports "optimal" meets its budget to the solver's stated tolerance.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrim import trim_layer

#: The ADMM's default feasibility tolerance (relative to the radius, and to max|Y| off Omega).
FEAS_TOL = 1e-3

layers = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "n": st.integers(4, 40),
        "d_in": st.integers(1, 8),
        "d_out": st.integers(1, 4),
        "dead_inputs": st.integers(0, 2),
        "eps": st.sampled_from([0.02, 0.1, 0.3]),
        "per_neuron": st.booleans(),
    }
)


def _layer(seed, n, d_in, d_out, dead_inputs, **_):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    X[:, : min(dead_inputs, d_in - 1)] = 0.0  # always-zero pixels, dead upstream neurons
    W = rng.standard_normal((d_in, d_out)) * (rng.random((d_in, d_out)) < 0.6)
    Y = np.maximum(X @ W + 0.2 * rng.standard_normal(d_out), 0.0)
    return X, Y


@settings(max_examples=15, deadline=None)
@given(layers)
def test_the_dual_bound_never_exceeds_the_optimum(case):
    X, Y = _layer(**case)
    options = {"eps": case["eps"], "per_neuron": case["per_neuron"]}
    admm = trim_layer(X, Y, solver="admm", **options)
    exact = trim_layer(X, Y, solver="clarabel", **options)
    if not (admm.status.has_weights and exact.status == "optimal"):
        return
    # Clarabel's own objective is accurate to about 1e-7 relative; weak duality is exact
    slack = 1e-6 * max(1.0, exact.info.objective)
    assert admm.info.dual_bound <= exact.info.objective + slack


@settings(max_examples=15, deadline=None)
@given(layers)
def test_proposition_1_holds_for_the_returned_weights(case):
    X, Y = _layer(**case)
    result = trim_layer(X, Y, solver="admm", eps=case["eps"], per_neuron=case["per_neuron"])
    if not result.status.has_weights:
        return
    Z = X @ result.W + result.b
    realized = np.linalg.norm(Y - np.maximum(Z, 0.0))
    omega = Y > 0
    on_omega = np.linalg.norm(np.where(omega, Z - Y, 0.0))
    off_omega = np.linalg.norm(np.where(omega, 0.0, np.maximum(Z, 0.0)))
    # ReLU is 1-Lipschitz and Y = 0 off Omega: the bound is exact arithmetic, up to rounding
    assert realized <= np.hypot(on_omega, off_omega) * (1 + 1e-12) + 1e-12
    assert np.isclose(on_omega, result.info.residual, rtol=1e-9, atol=1e-12)
    if result.status == "optimal":
        radius = case["eps"] * (
            np.linalg.norm(Y, axis=0) if case["per_neuron"] else np.linalg.norm(Y)
        )
        allowed = np.sqrt(np.sum((radius * (1 + FEAS_TOL)) ** 2)) + FEAS_TOL**2 * np.linalg.norm(Y)
        violation_allowed = FEAS_TOL * np.max(Y, initial=0.0)
        assert result.info.violation <= violation_allowed * (1 + 1e-9) + 1e-15
        assert on_omega <= allowed

"""verify(): the realized values against Proposition 1, Theorems 1-2 and the general bounds."""

import numpy as np
import pytest

from nettrim import load_digits_mlp
from nettrim.guarantees import link_normalize, link_norms, theorem3_samples, verify
from nettrim.schemes import net_trim

DIMS = (10, 16, 12, 4)
N_SAMPLES = 80
SOLVER = "clarabel"


def independent_parallel_bound(original, pruned, X) -> float:
    """The any-network parallel bound, recomputed here from its definition."""
    Y = original.record(X)
    bound = 0.0
    for l, layer in enumerate(pruned.layers):
        e_l = np.linalg.norm(layer(Y[l]) - Y[l + 1])  # layer discrepancy <= e_l; use it
        bound = e_l + np.linalg.norm(layer.W, 2) * bound
    return bound


def check_named(report, prefix):
    matches = [c for c in report.checks if c.name.startswith(prefix)]
    assert matches, f"no check named {prefix!r}"
    return matches


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_bounds_hold_on_random_networks(seed, scheme, random_network):
    net, X = random_network(DIMS, seed, n=N_SAMPLES)
    result = net_trim(net, X, scheme=scheme, eps=0.15, solver=SOLVER, n_jobs=1)
    report = verify(net, result, X)
    assert report.ok, str(report)
    D = np.linalg.norm(result.network(X) - net(X))
    assert report.network_discrepancy[-1] == pytest.approx(D)
    assert not report.link_normalized
    # every realized-value check applies and holds
    for check in report.checks:
        if check.assumption == "none" or check.assumption.startswith("none"):
            assert check.holds, check.line()
    if scheme == "parallel":
        (general,) = check_named(report, "parallel bound, any network")
        # the bound chained with the realized e_l is at least the one with the layer's own
        # discrepancies (e_l >= layer discrepancy), which still bounds D_L
        assert general.bound >= independent_parallel_bound(net, result.network, X) * (1 - 1e-9)
        assert independent_parallel_bound(net, result.network, X) * (1 + 1e-9) >= D
        (thm1,) = check_named(report, "Theorem 1: ")
        assert not thm1.applicable and "not applicable" in thm1.line()
    else:
        (thm2,) = check_named(report, "Theorem 2: ")
        assert not thm2.applicable
    # Proposition 1 against the nominal budget: the exact solver is feasible
    for check in check_named(report, "Proposition 1 (nominal"):
        assert check.applicable and check.holds, check.line()


def test_verify_from_plain_network_matches_result(random_network):
    net, X = random_network(DIMS, 3, n=N_SAMPLES)
    for scheme in ("parallel", "cascade"):
        result = net_trim(net, X, scheme=scheme, eps=0.1, solver=SOLVER, n_jobs=1)
        from_result = verify(net, result, X)
        from_network = verify(net, result.network, X, scheme=scheme, eps=0.1)
        for a, b in zip(from_result.checks, from_network.checks, strict=True):
            assert a.name == b.name
            assert a.bound == pytest.approx(b.bound, rel=1e-12)


def test_link_normalization_preserves_predictions():
    model = load_digits_mlp()
    normalized = link_normalize(model.network)
    np.testing.assert_allclose(link_norms(normalized.network), 1.0, rtol=1e-12)
    X = model.X_test
    np.testing.assert_array_equal(normalized.network.predict(X), model.network.predict(X))
    # positive homogeneity: the logits scale by the product of the layer scales
    np.testing.assert_allclose(
        normalized.network(X) / normalized.output_scale, model.network(X), rtol=1e-9, atol=1e-9
    )
    assert normalized.output_scale == pytest.approx(1 / np.prod(normalized.scales))


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_theorems_hold_on_link_normalized_networks(scheme, random_network):
    for seed in (0, 1):
        net, X = random_network(DIMS, seed, n=N_SAMPLES)
        normalized = link_normalize(net).network
        result = net_trim(normalized, X, scheme=scheme, eps=0.1, solver=SOLVER, n_jobs=1)
        report = verify(normalized, result, X)
        assert report.link_normalized
        name = "Theorem 1: " if scheme == "parallel" else "Theorem 2: "
        (theorem,) = check_named(report, name)
        assert theorem.applicable and theorem.holds, theorem.line()
        assert report.ok, str(report)


def test_bounds_hold_on_bundled_network_subsample():
    model = load_digits_mlp()
    X = model.X_calib[:120]
    for scheme in ("parallel", "cascade"):
        result = net_trim(model.network, X, scheme=scheme, eps=0.05, n_jobs=1)
        report = verify(model.network, result, X)
        for check in report.checks:
            if check.assumption.startswith("none"):
                assert check.holds, check.line()
        assert report.ok, str(report)
        text = str(report)
        assert "link-normalized: no" in text and "Theorem 3" in text


def test_theorem3_samples():
    assert theorem3_samples(5, 100, mu=2.0) == pytest.approx(62 * 2 * np.log(100))
    assert theorem3_samples(0, 2) == pytest.approx(7 * 2 * np.log(2))
    with pytest.raises(ValueError, match="mu must be > 1"):
        theorem3_samples(3, 10, mu=1.0)
    with pytest.raises(ValueError, match="N must be >= 2"):
        theorem3_samples(3, 1)


def test_verify_rejects_mismatched_networks(random_network):
    net, X = random_network(DIMS, 0, n=N_SAMPLES)
    other, _ = random_network((10, 16, 4), 0, n=N_SAMPLES)
    with pytest.raises(ValueError, match="must match"):
        verify(net, other, X)
    with pytest.raises(ValueError, match="X has 3 columns"):
        verify(net, net, X[:, :3])
    report = verify(net, net, X)  # unpruned: zero discrepancy, every bound holds
    assert report.ok and report.network_discrepancy[-1] == 0.0


def test_per_neuron_budgets_are_checked_per_column(random_network):
    net, X = random_network(DIMS, 4, n=N_SAMPLES)
    for scheme in ("parallel", "cascade"):
        result = net_trim(
            net, X, scheme=scheme, eps=0.1, per_neuron=True, neuron_block=5, solver=SOLVER, n_jobs=1
        )
        report = verify(net, result, X)
        assert report.ok, str(report)
        for rep, radius in zip(report.layers, result.radii, strict=True):
            assert rep.feasible
            assert rep.radius == pytest.approx(np.linalg.norm(radius))


@pytest.mark.parametrize("bound", ["relaxed", "paper"])
def test_admm_results_are_judged_at_the_admm_tolerance(random_network, bound):
    """The ADMM's weights are feasible to its feas_tol (1e-3): verify holds them to that."""
    net, X = random_network(DIMS, 5, n=N_SAMPLES)
    result = net_trim(net, X, scheme="cascade", eps=0.1, cascade_bound=bound, n_jobs=1)
    report = verify(net, result, X)
    assert report.ok, str(report)
    assert all(rep.feasible for rep in report.layers), str(report)
    # held to the exact solvers' 1e-5 instead, some ADMM layers fall outside
    strict = verify(net, result, X, feas_tol=1e-12)
    assert not all(rep.feasible for rep in strict.layers)
    # a plain network says nothing of its solver: the bound must be named, else the default
    plain = verify(net, result.network, X, scheme="cascade", eps=0.1, cascade_bound=bound)
    assert [rep.violation for rep in plain.layers] == [rep.violation for rep in report.layers]
    with pytest.raises(ValueError, match="cascade_bound must be"):
        verify(net, result.network, X, scheme="cascade", cascade_bound="tight")

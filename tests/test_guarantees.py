"""verify(): the realized values against Proposition 1, Theorems 1-2 and the general bounds."""

import dataclasses

import numpy as np
import pytest

from nettrim import Network, NetworkFileError, load_digits_mlp
from nettrim.guarantees import (
    DEFAULT_FEAS_TOL,
    PRUNING_KEY,
    link_normalize,
    link_norms,
    pruning_record,
    theorem3_samples,
    verify,
    with_pruning_record,
)
from nettrim.schemes import net_trim
from nettrim.solvers.exact import ZERO_RTOL
from nettrim.solvers.feasibility import EXACT_FEAS_TOL, allowed_residual, allowed_violation

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
    assert report.success, str(report)
    D = np.linalg.norm(result.network(X) - net(X))
    assert report.network_discrepancy[-1] == pytest.approx(D)
    assert not report.link_normalized
    # every realized-value check applies and holds
    for check in report.checks:
        if check.assumption == "none" or check.assumption.startswith("none"):
            assert check.holds, check.summary()
    if scheme == "parallel":
        (general,) = check_named(report, "parallel bound, any network")
        # the bound chained with the realized e_l is at least the one with the layer's own
        # discrepancies (e_l >= layer discrepancy), which still bounds D_L
        assert general.bound >= independent_parallel_bound(net, result.network, X) * (1 - 1e-9)
        assert independent_parallel_bound(net, result.network, X) * (1 + 1e-9) >= D
        (thm1,) = check_named(report, "Theorem 1: ")
        assert not thm1.applicable and "not applicable" in thm1.summary()
    else:
        (thm2,) = check_named(report, "Theorem 2: ")
        assert not thm2.applicable
    # Proposition 1 against the nominal budget: the exact solver is feasible
    for check in check_named(report, "Proposition 1 (nominal"):
        assert check.applicable and check.holds, check.summary()


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
        assert theorem.applicable and theorem.holds, theorem.summary()
        assert report.success, str(report)


# 120 rows for 128-wide layers: the warning is expected (tests/test_guarantees.py checks it)
@pytest.mark.filterwarnings("ignore:120 calibration samples:UserWarning")
def test_bounds_hold_on_bundled_network_subsample():
    model = load_digits_mlp()
    X = model.X_calib[:120]
    for scheme in ("parallel", "cascade"):
        result = net_trim(model.network, X, scheme=scheme, eps=0.05, n_jobs=1)
        report = verify(model.network, result, X)
        for check in report.checks:
            if check.assumption.startswith("none"):
                assert check.holds, check.summary()
        assert report.success, str(report)
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
    assert report.success and report.network_discrepancy[-1] == 0.0


def test_per_neuron_budgets_are_checked_per_column(random_network):
    net, X = random_network(DIMS, 4, n=N_SAMPLES)
    for scheme in ("parallel", "cascade"):
        result = net_trim(
            net, X, scheme=scheme, eps=0.1, per_neuron=True, neuron_block=5, solver=SOLVER, n_jobs=1
        )
        report = verify(net, result, X)
        assert report.success, str(report)
        for rep, radius in zip(report.layers, result.radii, strict=True):
            assert rep.feasible
            assert rep.radius == pytest.approx(np.linalg.norm(radius))


@pytest.mark.parametrize("bound", ["relaxed", "paper"])
def test_admm_results_are_judged_at_the_admm_tolerance(random_network, bound):
    """The ADMM's weights are feasible to its feas_tol (1e-3): verify holds them to that."""
    net, X = random_network(DIMS, 5, n=N_SAMPLES)
    result = net_trim(net, X, scheme="cascade", eps=0.1, cascade_bound=bound, n_jobs=1)
    report = verify(net, result, X)
    assert report.success, str(report)
    assert all(rep.feasible for rep in report.layers), str(report)
    # held to the exact solvers' 1e-5 instead, some ADMM layers fall outside
    strict = verify(net, result, X, feas_tol=1e-12)
    assert not all(rep.feasible for rep in strict.layers)
    # a plain network says nothing of its solver: the bound must be named, else the default
    plain = verify(net, result.network, X, scheme="cascade", eps=0.1, cascade_bound=bound)
    assert [rep.violation for rep in plain.layers] == [rep.violation for rep in report.layers]
    with pytest.raises(ValueError, match="cascade_bound must be"):
        verify(net, result.network, X, scheme="cascade", cascade_bound="tight")


# ---------------------------------------------------------------------------------------
# the budget check: a layer outside the budget claimed for it fails the verification


def test_feasibility_rule_scales_with_the_targets():
    """The one rule: relative to the radius, an absolute floor tol^2 ||Y_Omega|| (so eps = 0
    can be met), and no absolute slack for small activations."""
    assert allowed_residual(2.0, 10.0, 1e-3) == pytest.approx(2.002)
    assert allowed_residual(0.0, 10.0, 1e-3) == pytest.approx(1e-5)  # eps = 0
    # scaled targets, scaled allowances: nothing absolute
    assert allowed_residual(2e-6, 1e-5, 1e-3) == pytest.approx(2.002e-6)
    assert allowed_violation(1e-6, 1e-3) == pytest.approx(1e-9)
    cols = allowed_residual(np.array([1.0, 0.0]), np.array([4.0, 4.0]), 1e-2)
    np.testing.assert_allclose(cols, [1.01, 4e-4])


def test_a_tighter_claimed_eps_fails(random_network):
    net, X = random_network(DIMS, 6, n=N_SAMPLES)
    result = net_trim(net, X, eps=0.2, solver=SOLVER, n_jobs=1)
    assert verify(net, result, X).success
    for pruned in (result, result.network):
        report = verify(net, pruned, X, eps=0.05)
        assert not report.success
        failed = [c.name for c in report.failed()]
        assert "budget, layer 0: ||(Zhat - Y)_Omega||_F <= radius" in failed, failed
        assert [rep.budget for rep in report.layers] == ["FAILS"] * len(DIMS[1:])
        assert "FAILED" in str(report).splitlines()[0]


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
@pytest.mark.parametrize("solver", ["admm", "clarabel", "scs"])
def test_own_budgets_pass_standalone_from_the_files(tmp_path, random_network, solver, scheme):
    """The pruned file records its budgets and tolerances: verify passes from the two files
    alone, with the pruning's own eps, whatever solved the layers."""
    net, X = random_network(DIMS, 7, n=N_SAMPLES)
    result = net_trim(net, X, scheme=scheme, eps=0.1, solver=solver, n_jobs=1)
    with_pruning_record(result).save(tmp_path / "pruned.npz")
    net.save(tmp_path / "net.npz")
    original, pruned = Network.load(tmp_path / "net.npz"), Network.load(tmp_path / "pruned.npz")
    record = pruned.metadata[PRUNING_KEY]
    assert record["scheme"] == scheme and record["layers"][0]["solver"] == solver
    report = verify(original, pruned, X)
    assert report.success, str(report)
    assert all(rep.feasible for rep in report.layers), str(report)
    assert "recorded with the pruning" in report.tolerance
    assert verify(original, pruned, X, eps=0.1).success  # the claim made explicit
    assert not verify(original, pruned, X, eps=0.02).success


def _shift_bias(network, layer: int, delta, column=None):
    """``network`` with ``delta`` added to layer ``layer``'s bias (one column, or all)."""
    target = network[layer]
    b = target.b.copy()
    if column is None:
        b += delta
    else:
        b[column] += delta
    return network.with_layer(layer, target.with_weights(target.W, b))


@pytest.mark.parametrize("eps", [0.05, 0.0])
def test_a_layer_outside_its_budget_by_less_than_the_tolerance_passes_and_says_so(
    random_network, eps
):
    """The last (linear) layer's residual is set to the allowance times 0.5 or 1.5 above the
    radius, by shifting its bias: every row and column moves by delta, ||R||_F = delta sqrt(n m).
    With eps = 0 the allowance is the floor tol^2 ||Y||."""
    net, X = random_network(DIMS, 8, n=N_SAMPLES)
    Y = net(X)
    tol = 1e-3
    radius = eps * np.linalg.norm(Y)
    slack = max(tol * radius, tol**2 * np.linalg.norm(Y))
    claims = {"eps": [1.0, 1.0, eps], "feas_tol": tol}
    for factor, passes in ((0.5, True), (1.5, False)):
        delta = (radius + factor * slack) / np.sqrt(Y.size)
        report = verify(net, _shift_bias(net, 2, delta), X, **claims)
        (ball,) = check_named(report, "budget, layer 2")
        assert ball.realized == pytest.approx(radius + factor * slack, rel=1e-9)
        assert ball.holds is passes and report.success is passes, str(report)
        if passes:
            assert ball.within_tolerance and "holds within tolerance" in ball.summary()
            assert report.layers[2].budget == "within tol"
            assert "budget, layer 2" in str(report) and "within tol" in str(report)
        else:
            assert "FAILS beyond tolerance" in ball.summary()
            assert report.layers[2].budget == "FAILS"


def test_cascade_bound_off_omega_judged_to_the_tolerance(random_network):
    """Cascade layer 1 (ReLU) with the paper's bound V: its pruned weights are the
    original's, so Zhat = V; a bias shift delta of one column puts Zhat - V = delta on that
    column's rows off Omega: the violation is delta exactly."""
    net, X = random_network(DIMS, 9, n=N_SAMPLES)
    # a changed first layer (so that the cascade's later budgets are not zero); scaling it
    # keeps its pre-activations <= 0 off Omega
    base = net.with_layer(0, net[0].with_weights(0.97 * net[0].W, 0.97 * net[0].b))
    Y_hat1 = base[:1](X)
    Y2 = net[:2](X)
    off = Y2 == 0.0
    column = int(np.argmax(off.sum(axis=0)))
    assert off[:, column].any()
    tol = 1e-3
    allowed = tol * np.abs(Y2).max()
    V = net[1].preactivation(Y_hat1)
    claims = dict(scheme="cascade", eps=0.5, gamma=4.0, cascade_bound="paper", feas_tol=tol)
    assert verify(net, base, X, **claims).success
    for factor, passes in ((0.5, True), (1.5, False)):
        pruned = _shift_bias(base, 1, factor * allowed, column)
        report = verify(net, pruned, X, **claims)
        Z_hat = pruned[1].preactivation(Y_hat1)
        assert report.layers[1].violation == pytest.approx(
            np.max(np.where(off, Z_hat - V, -np.inf)), rel=1e-9
        )
        (bounds,) = check_named(report, "budget, layer 1: max (Zhat - V) off Omega")
        assert bounds.realized == pytest.approx(factor * allowed, rel=1e-6)
        assert bounds.holds is passes and report.success is passes, str(report)
        assert ("within tolerance" if passes else "FAILS beyond tolerance") in bounds.summary()


def test_the_tolerance_is_stated_tightened_and_loosened_only_when_asked(random_network):
    net, X = random_network(DIMS, 10, n=N_SAMPLES)
    result = net_trim(net, X, eps=0.1, solver="admm", n_jobs=1)
    recorded = verify(net, result, X)
    assert recorded.tolerance.startswith("0.001 (recorded with the pruning")
    assert "budgets judged at feasibility tolerance 0.001" in str(recorded)
    tight = verify(net, result, X, feas_tol=1e-12)
    assert tight.tolerance.startswith("1e-12 (given")
    assert not tight.success  # the ADMM meets its budgets to 1e-3, not to 1e-12
    with pytest.raises(ValueError, match="looser than the tolerance layer 0 was solved to"):
        verify(net, result, X, feas_tol=1e-2)
    loose = verify(net, result, X, feas_tol=1e-2, allow_loose_tol=True)
    assert "LOOSER" in loose.tolerance and "LOOSER" in str(loose)
    plain = verify(net, result.network, X, eps=0.1)  # no record: the default, said so
    assert plain.tolerance == f"{DEFAULT_FEAS_TOL:g} (default: none recorded)"


def test_deprecated_aliases(random_network):
    net, X = random_network(DIMS, 0, n=N_SAMPLES)
    report = verify(net, net, X)
    with pytest.warns(DeprecationWarning, match="use .success"):
        assert report.ok is report.success is True
    check = report.checks[0]
    with pytest.warns(DeprecationWarning, match="use summary"):
        assert check.line() == check.summary() == str(check)
    assert str(report) == report.summary()


def test_unlikely_settings_warn(random_network):
    net, X = random_network(DIMS, 11, n=N_SAMPLES)
    with pytest.warns(UserWarning, match=r"eps >= 1 \(layer 0: 1.5.*all-zero layer"):
        net_trim(net, X, eps=[1.5, 0.1, 0.1], solver=SOLVER, n_jobs=1)
    with pytest.warns(
        UserWarning, match="8 calibration samples but layer 0 has 10, layer 1 has 16"
    ):
        net_trim(net, X[:8], eps=0.1, solver=SOLVER, n_jobs=1)


def test_network_file_metadata_round_trip_and_errors(tmp_path, random_network):
    net, _ = random_network(DIMS, 0, n=N_SAMPLES)
    tagged = dataclasses.replace(net, metadata={"pruning": {"scheme": "parallel", "eps": [0.1]}})
    tagged.save(tmp_path / "tagged.npz")
    assert Network.load(tmp_path / "tagged.npz").metadata == tagged.metadata
    net.save(tmp_path / "plain.npz")
    assert Network.load(tmp_path / "plain.npz").metadata == {}
    arrays = dict(np.load(tmp_path / "plain.npz"))
    for value, message in (
        ("{not json", "metadata is not valid JSON"),
        ("[1, 2]", "metadata must be a JSON object, got list"),
        (np.arange(3), "metadata must be one string"),
    ):
        np.savez(tmp_path / "bad.npz", **arrays, metadata=np.array(value))
        with pytest.raises(NetworkFileError, match=message):
            Network.load(tmp_path / "bad.npz")


def test_the_record_names_each_layer_s_tolerance_and_rounding(random_network):
    net, X = random_network(DIMS, 12, n=N_SAMPLES)
    result = net_trim(net, X, eps=0.1, solver="clarabel", reweight_rounds=1, n_jobs=1)
    record = pruning_record(result)
    assert record["eps"] == [0.1] * 3 and record["scheme"] == "parallel"
    for layer in record["layers"]:
        assert layer["solver"] == "clarabel+reweighted" and layer["status"] == "optimal"
        assert layer["feas_tol"] == EXACT_FEAS_TOL and layer["zero_rtol"] == ZERO_RTOL["clarabel"]
    report = verify(net, with_pruning_record(result), X)
    assert report.success, str(report)
    assert f"below {ZERO_RTOL['clarabel']:g} of their layer's largest" in report.tolerance
    admm = net_trim(net, X, eps=0.1, solver="admm", solver_options={"feas_tol": 1e-4}, n_jobs=1)
    assert [layer["feas_tol"] for layer in pruning_record(admm)["layers"]] == [1e-4] * 3
    assert [layer["zero_rtol"] for layer in pruning_record(admm)["layers"]] == [None] * 3
    assert verify(net, admm, X).tolerance == "0.0001 (recorded with the pruning)"


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_an_eps_0_pruning_the_solver_met_passes(random_network, scheme):
    """eps = 0: radius 0, the allowance is the floor tol^2 ||Y_Omega||, which an exact
    reconstruction meets (a rule relative to the radius alone never would)."""
    net, X = random_network(DIMS, 13, n=N_SAMPLES)
    result = net_trim(net, X, scheme=scheme, eps=0.0, solver=SOLVER, n_jobs=1)
    report = verify(net, result, X)
    assert report.success, str(report)
    assert report.layers[0].radius == 0.0 and report.layers[0].feasible


def test_per_neuron_budgets_from_the_file(tmp_path, random_network):
    """One eps per neuron of the first cascade layer, recorded and checked per column."""
    net, X = random_network(DIMS, 14, n=N_SAMPLES)
    eps = np.linspace(0.05, 0.2, DIMS[1])
    result = net_trim(net, X, scheme="cascade", eps=eps, per_neuron=True, solver=SOLVER, n_jobs=1)
    with_pruning_record(result).save(tmp_path / "pruned.npz")
    pruned = Network.load(tmp_path / "pruned.npz")
    report = verify(net, pruned, X)
    assert report.success, str(report)
    assert "(per neuron)" in check_named(report, "budget, layer 0")[0].name
    # half of every neuron's budget is not what was met
    assert not verify(net, pruned, X, eps=eps / 2).success
    with pytest.raises(ValueError, match="takes one eps"):
        verify(net, pruned, X, eps=[0.1, 0.1], per_neuron=False)


# ---------------------------------------------------------------------------------------
# networks with convolutions and pooling


def small_cnn(seed=0):
    """conv 3x3 (padding 1) + ReLU, 2x2 max-pool, conv 3x3 + ReLU, flatten, linear: two
    convolutions so that a conv's Lipschitz constant enters the chained bound."""
    from nettrim.conv import conv_weight_to_dense
    from nettrim.network import Conv2dLayer, DenseLayer, FlattenLayer, MaxPool2dLayer

    rng = np.random.default_rng(seed)
    conv1 = Conv2dLayer(
        conv_weight_to_dense(rng.standard_normal((3, 1, 3, 3))),
        0.1 * rng.standard_normal(3),
        in_shape=(1, 8, 8),
        kernel_size=3,
        padding=1,
    )
    conv2 = Conv2dLayer(
        conv_weight_to_dense(0.5 * rng.standard_normal((4, 3, 3, 3))),
        0.1 * rng.standard_normal(4),
        in_shape=(3, 4, 4),
        kernel_size=3,
    )
    dense = DenseLayer(rng.standard_normal((16, 3)), np.zeros(3), "linear")
    net = Network((conv1, MaxPool2dLayer(2), conv2, FlattenLayer(), dense))
    return net, rng.standard_normal((12, 1, 8, 8))


def true_operator_norm(layer, rng, iterations=60) -> float:
    """A convolution's operator norm on images, from below: power iteration on A^T A for
    the linear map A (no bias, no ReLU); the patch map's adjoint entry by entry,
    ``(im2col^T R)_j = <im2col(e_j), R>``."""
    import dataclasses as dc

    linear = dc.replace(layer, b=None, activation="linear")
    x = rng.standard_normal((1, *layer.in_shape))
    basis = np.eye(x.size).reshape(x.size, *x.shape[1:])
    patches_of_basis = [linear.program_input(e[None]) for e in basis]
    for _ in range(iterations):
        R = linear.program_output(linear(x)) @ linear.W.T
        y = np.array([np.sum(P * R) for P in patches_of_basis]).reshape(x.shape)
        x = y / np.linalg.norm(y)
    return float(np.linalg.norm(linear(x)))


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_a_cnn_pruned_by_net_trim_verifies_at_its_own_eps(tmp_path, scheme):
    net, x = small_cnn()
    result = net_trim(net, x, scheme=scheme, eps=0.1, solver=SOLVER, n_jobs=1)
    report = verify(net, result, x)
    assert report.success, str(report)
    assert [rep.layer for rep in report.layers] == [0, 2, 4]  # positions, pooling counted
    assert all(rep.budget in ("met", "within tol") for rep in report.layers), str(report)
    D = float(np.linalg.norm(result.network(x) - net(x)))
    assert report.network_discrepancy[-1] == pytest.approx(D)
    # the conv programs' rows: (sample, output pixel)
    assert [rep.samples for rep in report.layers] == [12 * 64, 12 * 4, 12]
    # the pruned file alone (record of the pruning) verifies, and a tighter claim fails
    with_pruning_record(result).save(tmp_path / "pruned.npz")
    pruned = Network.load(tmp_path / "pruned.npz")
    assert verify(net, pruned, x).success
    tighter = verify(net, pruned, x, eps=0.02)
    assert not tighter.success
    assert "budget, layer 0: ||(Zhat - Y)_Omega||_F <= radius" in [c.name for c in tighter.failed()]
    # the theorems are stated for dense chains: reported, never applied
    for check in report.checks:
        if check.name.startswith("Theorem"):
            assert not check.applicable and "dense chains" in check.note, check.summary()
    any_network = check_named(report, f"{scheme} bound, any network")[0]
    assert any_network.applicable and any_network.holds
    assert any_network.bound >= D * (1 - 1e-12)


def test_a_cnn_cascade_records_the_bound_its_layers_were_solved_to(tmp_path):
    net, x = small_cnn()
    result = net_trim(net, x, scheme="cascade", eps=0.1, cascade_bound="paper", solver=SOLVER)
    assert result.options["cascade_bound"] == "paper"
    assert pruning_record(result)["cascade_bound"] == "paper"
    report = verify(net, result, x)
    assert report.success, str(report)


def test_the_cnn_chained_bound_uses_each_convolution_s_operator_norm():
    """Parallel: D_L <= e_L + Lip_L D_(L-1) with Lip of a conv sqrt(m) ||What||_2 (m = 9
    here) — at least its true operator norm, which ||What||_2 alone is not; the chain the
    report states equals the one recomputed here and bounds D_L."""
    from nettrim.conv import patch_multiplicity

    net, x = small_cnn(1)
    result = net_trim(net, x, eps=0.2, solver=SOLVER, n_jobs=1)
    report = verify(net, result, x)
    rng = np.random.default_rng(0)
    conv2 = result.network[2]
    m = patch_multiplicity(conv2.kernel_size, stride=conv2.stride, dilation=conv2.dilation)
    assert m == 9
    lip = report.layers[1].lipschitz
    assert lip == pytest.approx(3.0 * np.linalg.norm(conv2.W, 2))
    true = true_operator_norm(conv2, rng)
    assert np.linalg.norm(conv2.W, 2) < true <= lip * (1 + 1e-9)
    e = [rep.realized_bound for rep in report.layers]
    expected = e[2] + report.layers[2].lipschitz * (e[1] + lip * (1.0 * e[0]))  # pool: 1
    (chained,) = check_named(report, "parallel bound, any network")
    assert chained.bound == pytest.approx(expected, rel=1e-12)
    assert chained.realized == pytest.approx(report.network_discrepancy[-1])
    assert chained.holds and chained.bound >= chained.realized


def test_verify_refuses_cnn_inputs_and_networks_that_do_not_match():
    import dataclasses as dc

    net, x = small_cnn()
    with pytest.raises(ValueError, match=r"takes \(n, 1, 8, 8\) \(NCHW images\)"):
        verify(net, net, x.reshape(12, -1))
    with pytest.raises(ValueError, match=r"X has shape \(12, 8, 8, 1\)"):
        verify(net, net, x.transpose(0, 2, 3, 1))
    strided = Network((dc.replace(net[0], stride=(1, 1), padding=(1, 1)), *net.layers[1:]))
    assert verify(net, strided, x).success  # the same geometry: accepted
    dilated = dc.replace(net[0], dilation=(2, 2), padding=(2, 2))  # the same output shape
    with pytest.raises(ValueError, match="different layers"):
        verify(net, Network((dilated, *net.layers[1:])), x)


def test_a_float32_network_s_realized_bound_is_measured_in_float64(random_network):
    """With a linear last layer the cascade's ``D_L`` is its ``e_L``: both measured in
    float64 from the same float32 outputs they are equal, where a float32 norm of the
    outputs missed the bound by float32 rounding (30 times the rounding slack, seen)."""
    original, X = random_network((20, 30, 10), seed=3, n=4000)
    original = Network.from_arrays(
        [layer.W.astype(np.float32) for layer in original.layers],
        [layer.b.astype(np.float32) for layer in original.layers],
    )
    rng = np.random.default_rng(4)
    pruned = Network.from_arrays(
        [
            (layer.W * (rng.random(layer.W.shape) < 0.7)).astype(np.float32)
            for layer in original.layers
        ],
        [layer.b for layer in original.layers],
    )
    report = verify(original, pruned, X.astype(np.float32), scheme="cascade")
    (check,) = check_named(report, "cascade bound, any network")
    assert check.realized == check.bound
    assert report.success

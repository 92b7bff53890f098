"""net_trim: the parallel and cascade schemes against an independent, layer-by-layer route."""

import itertools

import numpy as np
import pytest

from nettrim import load_digits_mlp, trim_layer
from nettrim.executors import process_pool
from nettrim.layer import LayerResult, TrimOptions
from nettrim.network import Network
from nettrim.schemes import LayerSolveError, NetTrimResult, net_trim
from nettrim.solvers import SolveInfo, Status

DIMS = (10, 16, 12, 4)
N_SAMPLES = 80
EPS = 0.1
# Exact solver: small programs, deterministic results, tight feasibility.
SOLVER = "clarabel"
# Clarabel's feasibility tolerance, relative to the radius (its default tolerances are ~1e-8).
FEAS_RTOL = 1e-6


def random_network(seed: int = 0, dims=DIMS) -> tuple[Network, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in itertools.pairwise(dims)]
    biases = [0.1 * rng.standard_normal(b) for b in dims[1:]]
    return Network.from_arrays(weights, biases), rng.standard_normal((N_SAMPLES, dims[0]))


def assert_same_result(a: NetTrimResult, b: NetTrimResult) -> None:
    """Bit-identical weights and biases, layer by layer."""
    for ra, rb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(ra.W, rb.W)
        np.testing.assert_array_equal(ra.b, rb.b)


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def net_and_x():
    return random_network(0)


def test_parallel_equals_layer_by_layer(net_and_x):
    net, X = net_and_x
    result = net_trim(net, X, scheme="parallel", eps=EPS, solver=SOLVER, n_jobs=1)
    acts = net.record(X)
    for l, layer in enumerate(net.layers):
        expected = trim_layer(
            acts[l], acts[l + 1], activation=layer.activation, eps=EPS, solver=SOLVER
        )
        np.testing.assert_array_equal(result.layers[l].W, expected.W)
        np.testing.assert_array_equal(result.network[l].W, expected.W)
        np.testing.assert_array_equal(result.network[l].b, expected.b)
        assert result.radii[l] == pytest.approx(EPS * np.linalg.norm(acts[l + 1]))
        # Proposition 1: the layer's own output discrepancy is within its budget
        got = result.network[l](acts[l])
        assert np.linalg.norm(got - acts[l + 1]) <= result.radii[l] * (1 + FEAS_RTOL)
    assert result.network.activations == net.activations
    assert 0 < result.sparsity < 1
    assert result.scheme == "parallel" and result.eps == (EPS,) * 3


def test_activations_input_equals_x_input(net_and_x):
    net, X = net_and_x
    from_x = net_trim(net, X, eps=EPS, solver=SOLVER, n_jobs=1)
    from_acts = net_trim(net, activations=net.record(X), eps=EPS, solver=SOLVER, n_jobs=1)
    assert_same_result(from_x, from_acts)


def test_process_pool_is_bit_identical(net_and_x, pool):
    net, X = net_and_x
    for scheme in ("parallel", "cascade"):
        local = net_trim(net, X, scheme=scheme, eps=EPS, solver="admm", n_jobs=1)
        remote = net_trim(net, X, scheme=scheme, eps=EPS, solver="admm", executor=pool)
        assert_same_result(local, remote)
    local = net_trim(net, X, eps=EPS, per_neuron=True, neuron_block=5, solver="admm", n_jobs=1)
    remote = net_trim(
        net, X, eps=EPS, per_neuron=True, neuron_block=5, solver="admm", executor=pool
    )
    assert_same_result(local, remote)


@pytest.mark.parametrize("bound", ["relaxed", "paper"])
def test_cascade_keeps_original_weights_feasible(net_and_x, bound):
    net, X = net_and_x
    gamma, kappa = 1.2, 0.9
    result = net_trim(
        net,
        X,
        scheme="cascade",
        eps=EPS,
        gamma=gamma,
        kappa=kappa,
        cascade_bound=bound,
        solver=SOLVER,
        n_jobs=1,
    )
    assert result.options["cascade_bound"] == bound
    acts = net.record(X)
    X_hat = X
    for l, layer in enumerate(net.layers):
        Y = acts[l + 1]
        V = layer.preactivation(X_hat)  # the original weights on the pruned input
        pruned = result.network[l]
        if l == 0:
            assert result.radii[0] == pytest.approx(EPS * np.linalg.norm(Y))
        else:
            omega = Y > 0 if layer.activation == "relu" else np.ones_like(Y, bool)
            base = np.linalg.norm(np.where(omega, V - Y, 0.0))
            factor = gamma * (kappa**2 if l == len(net) - 1 else 1.0)
            assert result.radii[l] == pytest.approx(np.sqrt(factor) * base, rel=1e-12)
            if factor >= 1:  # gamma * kappa^2 < 1 (last layer here) tightens on purpose
                # the original weights are feasible: inside the ball, at the bound off Omega
                assert base <= result.radii[l]
                # so the pruned weights cost at most the original's L1 (Clarabel: ~1e-7)
                assert np.abs(pruned.augmented_weights).sum() <= np.abs(
                    layer.augmented_weights
                ).sum() * (1 + 1e-6)
            # and the pruned weights meet the cascade's constraints on the pruned input
            Z = pruned.preactivation(X_hat)
            assert np.linalg.norm(np.where(omega, Z - Y, 0.0)) <= result.radii[l] * (1 + FEAS_RTOL)
            if layer.activation == "relu":
                bound_off = np.maximum(V, 0.0) if bound == "relaxed" else V
                assert np.all(np.where(omega, -np.inf, Z - bound_off) <= 1e-7 * np.abs(Y).max())
                # either way the pruned outputs off Omega stay within relu(V) (Theorem 2)
                assert np.all(np.where(omega, 0.0, np.maximum(Z, 0) - np.maximum(V, 0)) <= 1e-7)
        X_hat = pruned(X_hat)
    np.testing.assert_allclose(result.network(X), X_hat)
    assert result.gamma == (gamma, gamma) and result.kappa == kappa


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_reweighting_is_sparser_under_the_same_budgets(net_and_x, scheme):
    net, X = net_and_x
    plain = net_trim(net, X, scheme=scheme, eps=EPS, solver=SOLVER, n_jobs=1)
    sparser = net_trim(net, X, scheme=scheme, eps=EPS, solver=SOLVER, n_jobs=1, reweight_rounds=2)
    assert sparser.nnz < plain.nnz
    assert sparser.options["reweight_rounds"] == 2
    X_hat = X
    for l, layer in enumerate(sparser.network.layers):
        assert sparser.layers[l].info.solver == f"{SOLVER}+reweighted"
        # the first layer's budget is the same; Proposition 1 holds for the sparser weights
        Y = net.record(X)[l + 1]
        inputs = net.record(X)[l] if scheme == "parallel" else X_hat
        omega = Y > 0 if layer.activation == "relu" else np.ones_like(Y, bool)
        R = np.where(omega, layer.preactivation(inputs) - Y, 0.0)
        assert np.linalg.norm(R) <= sparser.radii[l] * (1 + FEAS_RTOL)
        X_hat = layer(X_hat)
    assert sparser.radii[0] == plain.radii[0]
    with pytest.raises(ValueError, match="reweight_rounds must be >= 0"):
        net_trim(net, X, solver=SOLVER, reweight_rounds=-1)


def test_relaxed_cascade_bound_is_sparser_on_the_bundled_network():
    """max(V, 0) off Omega: a superset of the paper's feasible set, same guarantees."""
    model = load_digits_mlp()
    X = model.X_calib[:300]
    runs = {
        bound: net_trim(model.network, X, scheme="cascade", eps=0.1, cascade_bound=bound, n_jobs=1)
        for bound in ("relaxed", "paper")
    }
    relaxed, paper = runs["relaxed"], runs["paper"]
    assert relaxed.nnz < paper.nnz
    # the same first layer (no bound there) and the same budgets after it
    np.testing.assert_array_equal(relaxed.layers[0].W, paper.layers[0].W)
    assert relaxed.radii[0] == paper.radii[0]
    for result in runs.values():
        assert all(layer.status == "optimal" for layer in result.layers)


def test_per_neuron_blocks_match_one_block(net_and_x):
    net, X = net_and_x
    blocks = net_trim(net, X, eps=EPS, per_neuron=True, neuron_block=5, solver=SOLVER, n_jobs=1)
    whole = net_trim(net, X, eps=EPS, per_neuron=True, neuron_block=1000, solver=SOLVER, n_jobs=1)
    acts = net.record(X)
    for l in range(len(net)):
        # the per-neuron program separates by column: same optimum up to solver accuracy
        np.testing.assert_allclose(blocks.layers[l].W, whole.layers[l].W, atol=1e-5)
        assert blocks.radii[l].shape == (net.dims[l + 1],)
        cols = np.linalg.norm(blocks.network[l](acts[l]) - acts[l + 1], axis=0)
        assert np.all(cols <= blocks.radii[l] * (1 + FEAS_RTOL) + 1e-9)
    assert blocks.layers[1].info.extra["blocks"] == [(0, 5), (5, 10), (10, 12)]
    # the table's radius is the norm of the columns' radii, and its footer their worst excess
    lines = blocks.summary().splitlines()
    assert "radii norm" in lines[1] and "radius" not in lines[1]
    assert lines[-1].startswith("per-neuron balls:")
    worst = max(res.info.ball_excess for res in blocks.layers)
    assert lines[-1].endswith(f"{worst:.3g}")
    layer_wide = net_trim(net, X, eps=EPS, solver=SOLVER, n_jobs=1).summary().splitlines()
    assert "radius" in layer_wide[1] and "per-neuron" not in layer_wide[-1]


def test_cascade_per_neuron_runs_blocks_of_each_layer(net_and_x, pool):
    net, X = net_and_x
    result = net_trim(
        net,
        X,
        scheme="cascade",
        eps=EPS,
        per_neuron=True,
        neuron_block=6,
        solver=SOLVER,
        executor=pool,
    )
    assert result.per_neuron and all(np.ndim(r) == 1 for r in result.radii)
    local = net_trim(
        net, X, scheme="cascade", eps=EPS, per_neuron=True, neuron_block=6, solver=SOLVER, n_jobs=1
    )
    assert_same_result(result, local)


def test_digits_slice_parallel_and_cascade():
    model = load_digits_mlp()
    X = model.X_calib[:150]
    before = model.network.accuracy(model.X_test, model.y_test)
    for scheme in ("parallel", "cascade"):
        result = net_trim(model.network, X, scheme=scheme, eps=0.05, n_jobs=1)
        assert result.sparsity > 0.5
        # 150 calibration rows are few: a few points of held-out accuracy may go
        assert result.network.accuracy(model.X_test, model.y_test) >= before - 0.05
        for layer in result.layers:
            assert layer.status in (Status.OPTIMAL, Status.INACCURATE, Status.MAX_ITER)


def test_infeasible_layer_raises_naming_it(net_and_x, monkeypatch):
    net, X = net_and_x
    import nettrim.schemes as schemes

    real = schemes.solve_layer

    def failing(X, Y, options, **kwargs):
        if X.shape[1] == 16:  # layer 1
            info = SolveInfo(
                solver="fake",
                objective=np.nan,
                iterations=0,
                seconds=0.0,
                residual=np.nan,
                radius=0.0,
                ball_excess=np.nan,
                violation=np.nan,
            )
            return LayerResult(W=None, b=None, status=Status.INFEASIBLE, info=info, program="P1")
        return real(X, Y, options, **kwargs)

    monkeypatch.setattr(schemes, "solve_layer", failing)
    with pytest.raises(LayerSolveError, match=r"layer 1 \(16x12\).*'infeasible'") as err:
        net_trim(net, X, scheme="cascade", eps=EPS, solver=SOLVER, n_jobs=1)
    assert err.value.layer == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scheme": "cascade", "eps": [0.1, 0.1, 0.1]}, ValueError, "one eps"),
        ({"eps": [0.1, 0.1]}, ValueError, "eps has 2 values"),
        ({"eps": -0.1}, ValueError, "eps must be >= 0"),
        ({"scheme": "cascade", "gamma": 0.5}, ValueError, "gamma must be >= 1"),
        ({"scheme": "cascade", "kappa": 1.5}, ValueError, "kappa must be <= 1"),
        ({"scheme": "cascade", "cascade_bound": "tight"}, ValueError, "cascade_bound must be"),
        ({"scheme": "serial"}, ValueError, "scheme must be one of"),
        ({"upper": 0.0}, TypeError, "sets 'upper'"),
        ({"frobnicate": 1}, TypeError, "unknown layer option 'frobnicate'"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be >= 1"),
    ],
)
def test_bad_arguments(net_and_x, kwargs, error, match):
    net, X = net_and_x
    with pytest.raises(error, match=match):
        net_trim(net, X, solver=SOLVER, **kwargs)


def test_bad_inputs(net_and_x):
    net, X = net_and_x
    acts = net.record(X)
    with pytest.raises(ValueError, match="exactly one of X"):
        net_trim(net, X, activations=acts)
    with pytest.raises(ValueError, match=r"parallel.* only"):
        net_trim(net, activations=acts, scheme="cascade")
    with pytest.raises(ValueError, match="activations has 3 arrays"):
        net_trim(net, activations=acts[:3])
    with pytest.raises(ValueError, match=r"activations\[2\] has 12 rows"):
        net_trim(net, activations=[acts[0], acts[1], acts[2][:12], acts[3]])
    with pytest.raises(ValueError, match="X has 9 columns"):
        net_trim(net, X[:, :9])
    with pytest.raises(TypeError, match=r"network must be a nettrim\.Network"):
        net_trim([net], X)


def test_too_small_kappa_names_the_last_layer_and_the_fix(net_and_x):
    net, X = net_and_x
    # kappa -> 0 demands an exact fit of the last layer on the pruned input: infeasible
    with pytest.raises(LayerSolveError, match=r"layer 2 \(12x4\).*raise kappa") as err:
        net_trim(net, X, scheme="cascade", eps=0.2, kappa=1e-3, solver=SOLVER, n_jobs=1)
    assert err.value.layer == 2


def test_options_object_gives_the_keyword_result(net_and_x):
    net, X = net_and_x
    by_keywords = net_trim(
        net, X, eps=EPS, solver="admm", per_neuron=True, neuron_block=5, tol=1e-5, n_jobs=1
    )
    options = TrimOptions(solver="admm", per_neuron=True, tol=1e-5)
    by_object = net_trim(net, X, eps=EPS, neuron_block=5, options=options, n_jobs=1)
    assert_same_result(by_keywords, by_object)
    assert (
        by_object.options
        == by_keywords.options
        == {
            "solver": "admm",
            "neuron_block": 5,
            "tol": 1e-5,
        }
    )
    with pytest.raises(TypeError, match="not both"):
        net_trim(net, X, options=options, solver="admm")
    with pytest.raises(TypeError, match="options must be a TrimOptions"):
        net_trim(net, X, options={"tol": 1e-5})


def test_trim_options_are_checked_once_when_built():
    with pytest.raises(ValueError, match="solver must be one of"):
        TrimOptions(solver="cplex")
    with pytest.raises(ValueError, match="one eps per output needs per_neuron=True"):
        TrimOptions(eps=[0.1, 0.2])
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        TrimOptions(max_iter=0)
    assert TrimOptions(max_iter=5.0).max_iter == 5 and TrimOptions().program == "P1"
    assert TrimOptions(activation="linear").program == "P2"

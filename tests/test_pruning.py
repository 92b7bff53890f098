"""prune_layer / prune_network: statistics vs samples, exact budgets, errors, determinism."""

from __future__ import annotations

import itertools
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nettrim import LayerResult, Network
from nettrim.pruning import prune_layer, prune_network
from nettrim.solvers.gram import GramAccumulator

METHODS = ["admm", "iht", "magnitude", "wanda", "sparsegpt"]


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 16)) @ (np.eye(16) + 0.3 * rng.standard_normal((16, 16)))
    W = rng.standard_normal((16, 12))
    b = rng.standard_normal(12)
    return X, W, b


@pytest.mark.parametrize("method", METHODS)
def test_gram_input_equals_sample_input(layer, method):
    X, W, b = layer
    from_x = prune_layer(X, W, b, sparsity=0.5, method=method)
    acc = GramAccumulator(16, bias=True)
    for start in range(0, 400, 64):
        acc.update(X[start : start + 64])
    from_acc = prune_layer(acc, W, b, sparsity=0.5, method=method)
    Xa = np.hstack([X, np.ones((400, 1))])
    from_gram = prune_layer(None, W, b, gram=Xa.T @ Xa, sparsity=0.5, method=method)
    for other in (from_acc, from_gram):
        # the Gram sums differ only in summation order: 1e-8 relative on the weights
        np.testing.assert_allclose(other.W, from_x.W, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(other.b, from_x.b, rtol=1e-8, atol=1e-10)
        assert np.array_equal(other.W != 0, from_x.W != 0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("pattern", "sparsity", "nnz"),
    [
        ("unstructured", 0.7, round(0.3 * 16 * 12)),
        ("2:4", None, 16 * 12 // 2),
    ],
)
def test_sparsity_is_reached_exactly(layer, method, pattern, sparsity, nnz):
    X, W, _ = layer
    result = prune_layer(X, W, sparsity=sparsity, pattern=pattern, method=method)
    if method == "wanda" and pattern == "unstructured":
        nnz = 12 * round(0.3 * 16)  # Wanda compares per output: the same count per column
    assert isinstance(result, LayerResult)
    assert result.nnz == nnz
    assert result.program == "P4"
    assert result.W.shape == W.shape and result.b is None


@pytest.mark.parametrize("pattern", ["per_output", "inputs", "outputs"])
def test_structured_patterns(layer, pattern):
    X, W, b = layer
    result = prune_layer(X, W, b, sparsity=0.5, pattern=pattern, method="admm")
    mask = result.W != 0
    if pattern == "per_output":
        assert np.all(mask.sum(axis=0) == 8)
    elif pattern == "inputs":
        assert mask.any(axis=1).sum() == 8 and np.all(mask[mask.any(axis=1)])
    else:
        assert mask.any(axis=0).sum() == 6
    mag = prune_layer(X, W, b, sparsity=0.5, pattern=pattern, method="magnitude")
    assert result.info.objective <= mag.info.objective


@pytest.mark.parametrize("method", METHODS)
def test_same_inputs_give_bit_identical_weights(layer, method):
    X, W, b = layer
    a = prune_layer(X, W, b, sparsity=0.6, method=method)
    c = prune_layer(X.copy(), W.copy(), b.copy(), sparsity=0.6, method=method)
    assert np.array_equal(a.W, c.W) and np.array_equal(a.b, c.b)


def test_summary_of_an_l0_result_gives_its_relative_error(layer):
    """An L0 program has no radius: its one-line summary gives the relative error."""
    X, W, b = layer
    result = prune_layer(X, W, b, sparsity=0.6)
    line = result.summary()
    assert "nan" not in line and "radius" not in line
    assert f"relative error {result.info.extra['relative_error']:.4g}" in line
    # (P5), the ReLU program, has no relative error: its violation off Omega, no warning
    relu = prune_layer(X, W, b, sparsity=0.6, activation="relu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        line = relu.summary()
    assert f"violation {relu.info.violation:.4g}" in line and "nan" not in line


def test_solvers_beat_the_baselines_on_the_reported_objective(layer):
    X, W, _ = layer
    f = {m: prune_layer(X, W, sparsity=0.7, method=m).info.objective for m in METHODS}
    assert f["admm"] <= min(f["magnitude"], f["wanda"], f["sparsegpt"])
    assert f["iht"] <= f["magnitude"]


def test_relu_program_p5(layer):
    X, W, b = layer
    result = prune_layer(X, W, b, sparsity=0.6, method="admm", activation="relu")
    assert result.program == "P5"
    assert result.nnz <= round(0.4 * W.size)
    Y = np.maximum(X @ W + b, 0.0)
    Z = X @ result.W + result.b
    on = Y > 0
    expected = np.sum((Z - Y)[on] ** 2) + np.sum(np.maximum(Z[~on], 0.0) ** 2)
    assert result.info.objective == pytest.approx(expected, rel=1e-8)
    assert result.info.violation == pytest.approx(max(0.0, Z[~on].max()), rel=1e-8)
    # IHT on (P5) never ends worse than the (P4) start it was given
    assert result.info.objective <= result.info.extra["loss_at_start"] * (1 + 1e-12)


def test_dtype_and_warm_start(layer):
    X, W, _ = layer
    result = prune_layer(X.astype(np.float32), W.astype(np.float32), sparsity=0.5)
    assert result.W.dtype == np.float32
    warm = prune_layer(X, W, sparsity=0.5, method="admm", warm_start="sparsegpt")
    assert warm.nnz == round(0.5 * W.size)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sparsity": 1.0}, ValueError, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": -0.2}, ValueError, r"sparsity must be in \[0, 1\)"),
        ({"pattern": "3:5"}, ValueError, "d_in=16 inputs, which is not a multiple of 5"),
        ({"sparsity": 0.5, "method": "obs"}, ValueError, "method must be one of"),
        ({"sparsity": 0.5, "pattern": "blocks"}, ValueError, "pattern must be one of"),
        ({"k": 1000}, ValueError, "k=1000 is out of range"),
        (
            {"sparsity": 0.5, "pattern": "inputs", "method": "sparsegpt"},
            ValueError,
            "does not support pattern",
        ),
        ({"sparsity": 0.5, "method": "wanda", "activation": "relu"}, ValueError, "solves neither"),
        ({"sparsity": 0.5, "damping": -1.0}, ValueError, "damping must be >= 0"),
        ({"sparsity": 0.5, "activation": "tanh"}, ValueError, "activation must be one of"),
    ],
)
def test_bad_arguments_raise_clear_errors(layer, kwargs, error, message):
    X, W, _ = layer
    with pytest.raises(error, match=message):
        prune_layer(X, W, **kwargs)


def test_bad_data_raise_clear_errors(layer):
    X, W, b = layer
    with pytest.raises(ValueError, match="X has 15 columns but W has 16 rows"):
        prune_layer(X[:, :15], W, sparsity=0.5)
    with pytest.raises(ValueError, match=r"b has shape \(3,\)"):
        prune_layer(X, W, b[:3], sparsity=0.5)
    with pytest.raises(ValueError, match="square"):
        prune_layer(None, W, gram=np.ones((16, 15)), sparsity=0.5)
    G = X.T @ X
    G[0, 1] += 1.0
    with pytest.raises(ValueError, match="not symmetric"):
        prune_layer(None, W, gram=G, sparsity=0.5)
    with pytest.raises(ValueError, match="W has 16 inputs"):
        prune_layer(None, W, gram=np.eye(20), sparsity=0.5)
    with pytest.raises(ValueError, match="not both"):
        prune_layer(X, W, gram=X.T @ X, sparsity=0.5)
    with pytest.raises(ValueError, match="needs the samples"):
        prune_layer(None, W, gram=X.T @ X, sparsity=0.5, activation="relu")
    with pytest.raises(ValueError, match="NaN"):
        prune_layer(np.full_like(X, np.nan), W, sparsity=0.5)
    with pytest.raises(ValueError, match="seen no samples"):
        prune_layer(GramAccumulator(16), W, sparsity=0.5)


def test_singular_statistics_are_damped_not_refused():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 12))  # fewer samples than inputs
    X[:, 0] = 0.0  # a dead input
    W = rng.standard_normal((12, 4))
    for method in METHODS:
        result = prune_layer(X, W, sparsity=0.5, method=method)
        assert np.all(np.isfinite(result.W)) and result.nnz <= 24


def small_network(seed: int = 0) -> tuple[Network, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [12, 16, 8, 4]
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in itertools.pairwise(sizes)]
    biases = [0.1 * rng.standard_normal(b) for b in sizes[1:]]
    return Network.from_arrays(weights, biases), rng.standard_normal((300, 12))


@pytest.mark.parametrize("scheme", ["cascade", "parallel"])
def test_prune_network(scheme):
    net, X = small_network()
    result = prune_network(net, X, sparsity=0.5, method="admm", scheme=scheme)
    pruned, results = result.network, result.layers
    assert len(results) == 3 and all(r.program == "P4" for r in results)
    for layer, dense in zip(pruned.layers, net.layers, strict=True):
        assert np.count_nonzero(layer.W) == dense.W.size // 2
        assert layer.activation == dense.activation
    # the pruned network reconstructs better than magnitude pruning of every layer
    mag = prune_network(net, X, sparsity=0.5, method="magnitude", scheme=scheme).network
    out = net(X)
    assert np.linalg.norm(pruned(X) - out) < np.linalg.norm(mag(X) - out)
    assert result.scheme == scheme
    assert result.success == all(r.status == "optimal" for r in results)
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert str(result) == result.summary() and "L0 pruning" in result.summary()


def test_sequential_layers_see_the_pruned_inputs():
    net, X = small_network(1)
    result = prune_network(net, X, sparsity=0.5, scheme="cascade", layers=[0, 1])
    pruned, results = result.network, result.layers
    assert results[2] is None and np.array_equal(pruned[2].W, net[2].W)
    second = prune_layer(pruned[0](X), net[1].W, net[1].b, sparsity=0.5)
    np.testing.assert_array_equal(second.W, pruned[1].W)
    assert "kept dense" in result.summary()


def test_parallel_executor_matches_in_process():
    net, X = small_network(2)
    inline = prune_network(net, X, sparsity=0.6, scheme="parallel", activation="relu").network
    with ThreadPoolExecutor(max_workers=2) as pool:
        pooled = prune_network(
            net, X, sparsity=0.6, scheme="parallel", activation="relu", executor=pool
        )
    res = pooled.layers
    assert [r.program for r in res] == ["P5", "P5", "P4"]
    for a, c in zip(inline.layers, pooled.network.layers, strict=True):
        assert np.array_equal(a.W, c.W)


def test_deprecated_sequential_tuple_unpacking_and_tol():
    net, X = small_network()
    for sequential, scheme in ((True, "cascade"), (False, "parallel")):
        new = prune_network(net, X, sparsity=0.5, scheme=scheme)
        with pytest.warns(DeprecationWarning, match="sequential= is deprecated, use scheme="):
            old = prune_network(net, X, sparsity=0.5, sequential=sequential)
        assert old.scheme == scheme
        with pytest.warns(DeprecationWarning, match="unpacking"):
            pruned, results = old
        assert len(results) == 3
        for a, c in zip(new.network.layers, pruned.layers, strict=True):
            np.testing.assert_array_equal(a.W, c.W)
    with pytest.raises(TypeError, match="give scheme= only"):
        prune_network(net, X, sparsity=0.5, sequential=True, scheme="cascade")
    with pytest.raises(ValueError, match="scheme must be one of"):
        prune_network(net, X, sparsity=0.5, scheme="serial")
    X1, W1 = X, net[0].W
    new = prune_layer(X1, W1, sparsity=0.5, method="iht", stop_tol=1e-3)
    with pytest.warns(DeprecationWarning, match="tol= is deprecated, use stop_tol="):
        old = prune_layer(X1, W1, sparsity=0.5, method="iht", tol=1e-3)
    np.testing.assert_array_equal(new.W, old.W)
    assert new.info.iterations == old.info.iterations


def test_prune_network_errors():
    net, X = small_network()
    with pytest.raises(ValueError, match="first layer expects 12"):
        prune_network(net, X[:, :5], sparsity=0.5)
    with pytest.raises(ValueError, match="sparsity has 2 values but 3 layers"):
        prune_network(net, X, sparsity=[0.5, 0.5])
    with pytest.raises(ValueError, match="layers must be indices"):
        prune_network(net, X, sparsity=0.5, layers=[5])
    with pytest.raises(TypeError, match=r"nettrim\.Network"):
        prune_network([net], X, sparsity=0.5)


def test_prune_network_gives_the_same_weights_in_process_and_on_a_pool(random_network):
    """Every layer's solve runs with blas_threads BLAS threads (1) inside its job: the same
    float32 iterations in-process, where the process's BLAS has both cores, and on a pool."""
    from threadpoolctl import threadpool_limits

    from nettrim.executors import process_pool

    net, X = random_network((12, 70, 20, 4), seed=4, n=90)
    options = dict(method="admm", sparsity=0.5, scheme="parallel")
    with threadpool_limits(2):
        local = prune_network(net, X, **options)
    with process_pool(2, blas_threads=None) as pool:  # the workers' BLAS unlimited too
        remote = prune_network(net, X, executor=pool, **options)
    for a, b in zip(local.layers, remote.layers, strict=True):
        assert a.W.tobytes() == b.W.tobytes()
    with pytest.raises(ValueError, match="blas_threads"):
        prune_network(net, X, blas_threads=0, **options)

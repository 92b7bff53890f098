"""Structured pruning that shrinks: the shrunk network computes what the masked one does."""

import itertools

import numpy as np
import pytest

from nettrim import Network, prune_network
from nettrim.structured import shrink

RNG = np.random.default_rng(8)


def random_network(dims, dtype=np.float64):
    weights = [
        RNG.standard_normal((a, b)).astype(dtype) / np.sqrt(a) for a, b in itertools.pairwise(dims)
    ]
    biases = [(0.5 * RNG.standard_normal(b)).astype(dtype) for b in dims[1:]]
    return Network.from_arrays(weights, biases)


def test_a_removed_relu_neuron_folds_relu_b_into_the_next_bias():
    W0 = RNG.standard_normal((4, 3))
    W0[:, 1] = 0.0  # neuron 1 always outputs relu(b0[1]) = 2
    W0[:, 2] = 0.0  # neuron 2 outputs relu(-1) = 0
    b0 = np.array([0.3, 2.0, -1.0])
    W1, b1 = RNG.standard_normal((3, 2)), np.array([0.1, -0.2])
    net = Network.from_arrays([W0, W1], [b0, b1])
    result = shrink(net)
    assert result.network.dims == (4, 1, 2) and result.removed == 2
    np.testing.assert_array_equal(result.kept[0], [0])
    np.testing.assert_allclose(result.network[1].b, b1 + 2.0 * W1[1], rtol=1e-15)
    X = RNG.standard_normal((10, 4))
    np.testing.assert_allclose(result.network(X), net(X), rtol=1e-13, atol=1e-14)


def test_a_linear_layer_folds_b_itself_and_an_unread_neuron_just_goes():
    W0, b0 = RNG.standard_normal((3, 3)), np.array([1.0, -2.0, 0.5])
    W0[:, 0] = 0.0  # linear: outputs b0[0] = 1
    W1 = RNG.standard_normal((3, 2))
    W1[2] = 0.0  # nobody reads neuron 2
    net = Network.from_arrays([W0, W1], [b0, None], ["linear", "linear"])
    result = shrink(net)
    assert result.network.dims == (3, 1, 2)
    np.testing.assert_allclose(result.network[1].b, 1.0 * W1[0])  # a bias where there was none
    X = RNG.standard_normal((7, 3))
    np.testing.assert_allclose(result.network(X), net(X), rtol=1e-13, atol=1e-14)


def test_removing_rows_cascades_to_the_layer_before():
    net = random_network((5, 4, 3, 2))
    W1 = np.array(net[1].W)
    W1[:, :] = 0.0
    W1[0, :] = 1.0  # layer 1 reads only neuron 0 of layer 0; its outputs 1, 2 silent
    W1[0, 1:] = 0.0
    pruned = net.with_layer(1, net[1].with_weights(W1, net[1].b))
    result = shrink(pruned)
    assert result.network.dims == (5, 1, 1, 2)
    X = RNG.standard_normal((9, 5))
    np.testing.assert_allclose(result.network(X), pruned(X), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("pattern", ["outputs", "inputs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_structured_prune_shrinks_to_the_same_outputs(pattern, dtype):
    net = random_network((12, 16, 10, 3), dtype)
    X = RNG.standard_normal((200, 12)).astype(dtype)
    layers = [0, 1] if pattern == "outputs" else [1, 2]  # the hidden neurons' two sides
    masked = prune_network(net, X, sparsity=0.5, pattern=pattern, layers=layers).network
    result = shrink(masked)
    assert result.network.dims[1:-1] == (8, 5) and result.removed == 13
    assert result.network.dims[0] == 12 and result.network.dims[-1] == 3
    assert result.network.size < masked.size
    tol = 1e-5 if dtype == np.float32 else 1e-12  # the folded sums round differently
    scale = np.abs(masked(X)).max()
    np.testing.assert_allclose(result.network(X), masked(X), rtol=tol, atol=tol * scale)


def test_nothing_to_remove_leaves_the_network_as_it_is():
    net = random_network((4, 5, 2))
    result = shrink(net)
    assert result.removed == 0 and result.network.dims == net.dims
    for a, b in zip(result.network.layers, net.layers, strict=True):
        assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    with pytest.raises(TypeError, match=r"nettrim\.Network"):
        shrink([np.ones((2, 2))])


def test_verify_refuses_a_shrunk_network_and_says_why():
    from nettrim import verify

    net = random_network((6, 4, 3))
    W = net[0].W.copy()
    W[:, 2:] = 0.0  # two silent neurons
    masked = net.with_layer(0, net[0].with_weights(W, net[0].b))
    small = shrink(masked).network
    X = RNG.standard_normal((20, 6))
    np.testing.assert_allclose(small(X), masked(X), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"narrower hidden layers: a network nettrim.shrink"):
        verify(net, small, X)

"""DenseLayer and Network: the forward pass, recording, prediction and shape checks."""

import numpy as np
import pytest

from nettrim import DenseLayer, Network

W1 = np.array([[1.0, -1.0, 0.0], [2.0, 0.0, -1.0]])  # 2 -> 3
B1 = np.array([0.0, 1.0, -0.5])
W2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])  # 3 -> 2
B2 = np.array([0.5, 0.0])
X = np.array([[1.0, 1.0], [-1.0, 0.5], [0.0, -2.0]])
# By hand, row by row:
#   X W1 + B1 = [[3, 0, -1.5], [0, 2, -1], [-4, 1, 1.5]]
#   relu:       [[3, 0, 0], [0, 2, 0], [0, 1, 1.5]]
#   then W2 + B2 (linear): [[3.5, 0], [0.5, 2], [2, -0.5]]
HIDDEN = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 1.5]])
OUTPUT = np.array([[3.5, 0.0], [0.5, 2.0], [2.0, -0.5]])


def network() -> Network:
    return Network.from_arrays([W1, W2], [B1, B2])


def test_forward_by_hand():
    net = network()
    assert [layer.activation for layer in net.layers] == ["relu", "linear"]
    np.testing.assert_array_equal(net.layers[0](X), HIDDEN)
    np.testing.assert_array_equal(net.forward(X), OUTPUT)
    np.testing.assert_array_equal(net(X), OUTPUT)
    np.testing.assert_array_equal(net[0].preactivation(X)[0], [3.0, 0.0, -1.5])


def test_record():
    outputs = network().record(X)
    assert len(outputs) == 3
    assert outputs[0] is X
    np.testing.assert_array_equal(outputs[1], HIDDEN)
    np.testing.assert_array_equal(outputs[2], OUTPUT)


def test_predict_and_accuracy():
    net = network()
    np.testing.assert_array_equal(net.predict(X), [0, 1, 0])
    assert net.accuracy(X, np.array([0, 1, 0])) == 1.0
    assert net.accuracy(X, np.array([0, 0, 1])) == pytest.approx(1 / 3)


def test_accuracy_rejects_labels_of_the_wrong_shape():
    net = network()
    # (n, 1) labels would broadcast against (n,) predictions to an (n, n) comparison
    with pytest.raises(ValueError, match=r"labels has shape \(3, 1\) but X has 3 rows"):
        net.accuracy(X, np.array([[0], [1], [0]]))
    with pytest.raises(ValueError, match=r"labels has shape \(2,\)"):
        net.accuracy(X, np.array([0, 1]))


def test_counts():
    net = network()
    assert len(net) == 2
    assert net.size == 6 + 6
    assert net.nnz == 4 + 4
    assert net[1].shape == (3, 2) and net[1].nnz == 4


def test_layer_without_bias_and_linear():
    layer = DenseLayer(W1, None, "linear")
    np.testing.assert_array_equal(layer(X), X @ W1)


def test_chain_mismatch():
    with pytest.raises(ValueError, match=r"layer 0 has 3 outputs but layer 1 expects 2 inputs"):
        Network.from_arrays([W1, W1], [B1, None])


def test_bias_shape_mismatch():
    with pytest.raises(ValueError, match=r"b has shape \(2,\) but W has 3 outputs"):
        DenseLayer(W1, np.zeros(2))


def test_weights_must_be_2d():
    with pytest.raises(ValueError, match=r"W must be 2-D"):
        DenseLayer(np.zeros(3))


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"activation must be one of"):
        DenseLayer(W1, B1, "tanh")


def test_from_arrays_rejects_lists_of_different_lengths():
    # zip() would silently drop the second layer
    with pytest.raises(ValueError, match=r"2 weights, 1 biases and 2 activations"):
        Network.from_arrays([W1, W2], [B1])
    with pytest.raises(ValueError, match=r"2 weights, 2 biases and 1 activations"):
        Network.from_arrays([W1, W2], [B1, B2], ["relu"])


def test_from_arrays_custom_activations_and_empty():
    net = Network.from_arrays([W1, W2], [B1, B2], ["relu", "relu"])
    np.testing.assert_array_equal(net(X), np.maximum(OUTPUT, 0.0))
    assert len(Network.from_arrays([], [])) == 0

"""A network with scipy.sparse weights computes its forward pass without densifying."""

import numpy as np
import pytest
from scipy import sparse

from nettrim import DenseLayer, Network
from nettrim.sparse import to_dense, to_sparse

RNG = np.random.default_rng(21)


def pruned_network(dtype=np.float64):
    weights = []
    for a, b, density in [(30, 20, 0.05), (20, 10, 0.6), (10, 4, 0.2)]:
        W = RNG.standard_normal((a, b)).astype(dtype)
        W[RNG.random((a, b)) >= density] = 0.0
        weights.append(W)
    biases = [RNG.standard_normal(w.shape[1]).astype(dtype) for w in weights]
    return Network.from_arrays(weights, biases)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_forward_equals_dense(dtype, monkeypatch):
    net = pruned_network(dtype)
    sp = to_sparse(net)
    assert all(sparse.issparse(layer.W) for layer in sp.layers)
    assert sp.dims == net.dims and sp.nnz == net.nnz and sp.size == net.size
    X = RNG.standard_normal((50, 30)).astype(dtype)

    def refuse(self, *args, **kwargs):
        raise AssertionError("the forward pass densified a sparse weight")

    monkeypatch.setattr(sparse.csr_array, "toarray", refuse)
    out = sp(X)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12  # the sums are taken in another order
    np.testing.assert_allclose(out, net(X), rtol=rtol, atol=rtol)
    for a, b in zip(sp.record(X), net.record(X), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def test_min_sparsity_keeps_denser_layers_dense_and_to_dense_inverts():
    net = pruned_network()
    sp = to_sparse(net, min_sparsity=0.5)
    assert [sparse.issparse(layer.W) for layer in sp.layers] == [True, False, True]
    back = to_dense(sp)
    for a, b in zip(back.layers, net.layers, strict=True):
        assert isinstance(a.W, np.ndarray) and a.W.tobytes() == b.W.tobytes()
    with pytest.raises(ValueError, match=r"min_sparsity must be <= 1\.0"):
        to_sparse(net, min_sparsity=2)


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_a_sparse_network_saves_and_loads(tmp_path, ext):
    net = pruned_network()
    to_sparse(net).save(tmp_path / f"net.{ext}")
    back = Network.load(tmp_path / f"net.{ext}")
    for a, b in zip(back.layers, net.layers, strict=True):
        assert a.W.tobytes() == b.W.tobytes()


def test_a_layer_takes_a_sparse_weight_and_checks_its_shape():
    layer = DenseLayer(sparse.csc_array(np.eye(3)), np.zeros(3), "linear")
    assert layer.shape == (3, 3) and layer.nnz == 3
    np.testing.assert_array_equal(layer(np.ones((2, 3))), np.ones((2, 3)))
    with pytest.raises(ValueError, match="b has shape"):
        DenseLayer(sparse.csr_array(np.eye(3)), np.zeros(2))

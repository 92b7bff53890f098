"""DenseLayer and Network: the forward pass, recording, prediction, shape checks, and the
network file (save/load round trip, invalid files refused, atomic writes)."""

import doctest
import os

import numpy as np
import pytest

import nettrim.network
from nettrim import DenseLayer, Network, NetworkFileError
from nettrim.network import DENSE_FILE_VERSION, FILE_FORMAT, FILE_VERSION, write_atomically

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


# ---------------------------------------------------------------------------------------
# the network file


def mixed_network() -> Network:
    """float64 and float32 layers, a layer without bias, awkward values (-0.0, subnormal)."""
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((5, 4))
    W0[0, 0], W0[1, 1] = -0.0, 5e-324  # bit patterns a lossy round trip would change
    W1 = rng.standard_normal((4, 3)).astype(np.float32)
    W2 = rng.standard_normal((3, 2))
    return Network.from_arrays(
        [W0, W1, W2], [rng.standard_normal(4), None, np.zeros(2)], ["relu", "linear", "linear"]
    )


def assert_bit_identical(a: Network, b: Network) -> None:
    assert a.activations == b.activations and a.dims == b.dims
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.W.dtype == lb.W.dtype and la.W.tobytes() == lb.W.tobytes()
        assert (la.b is None) == (lb.b is None)
        if la.b is not None:
            assert la.b.dtype == lb.b.dtype and la.b.tobytes() == lb.b.tobytes()


@pytest.mark.parametrize("compressed", [True, False])
def test_save_load_round_trip_is_bit_identical(tmp_path, compressed):
    net = mixed_network()
    path = tmp_path / "net.npz"
    net.save(path, compressed=compressed)
    assert_bit_identical(Network.load(path), net)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]  # no temporary left
    with np.load(path, allow_pickle=False) as data:  # the documented layout
        assert sorted(data.files) == [
            "W0", "W1", "W2", "activations", "b0", "b2", "format", "format_version"
        ]  # fmt: skip
        assert (
            str(data["format"]) == FILE_FORMAT and int(data["format_version"]) == DENSE_FILE_VERSION
        )


def test_save_replaces_an_existing_file_with_normal_permissions(tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(b"old content")
    network().save(path)
    assert_bit_identical(Network.load(path), network())
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a temp file


def test_hand_written_file_loads(tmp_path):
    """What a user exports with np.savez: no format entries, bytes activations."""
    path = tmp_path / "export.npz"
    np.savez(path, W0=W1, b0=B1, W1=W2, activations=np.array([b"relu", b"linear"]))
    net = Network.load(path)
    assert net.activations == ("relu", "linear") and net[1].b is None
    np.testing.assert_array_equal(net[0](X), np.maximum(X @ W1 + B1, 0.0))


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "net.npz"
    network().save(path)
    before = path.read_bytes()

    def write_half(fh):
        fh.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, write_half)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]


def test_write_atomically_refuses_a_missing_directory_and_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_atomically(tmp_path / "no" / "net.npz", lambda fh: None)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        write_atomically(tmp_path, lambda fh: None)


def test_save_refuses_what_load_would_refuse(tmp_path):
    path = tmp_path / "net.npz"
    with pytest.raises(ValueError, match="at least one layer"):
        Network(()).save(path)
    with pytest.raises(ValueError, match="W0 has dtype int64"):
        Network.from_arrays([np.ones((2, 2), dtype=np.int64)], [None]).save(path)
    with pytest.raises(ValueError, match="NaN or infinite"):
        Network.from_arrays([np.full((2, 2), np.inf)], [None]).save(path)
    assert not path.exists()


GOOD = {"W0": W1, "b0": B1, "W1": W2, "b1": B2, "activations": np.array(["relu", "linear"])}


def _with(**changes) -> dict:
    arrays = {**GOOD, **changes}
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (_with(W1=np.ones((4, 2))), r"W1 has shape \(4, 2\): 4 inputs, but W0 has 3 outputs"),
        (_with(b1=np.ones(3)), r"b1 has shape \(3,\) but W1 has 2 outputs"),
        (_with(W0=np.ones(3)), r"W0 must be 2-D \(d_in, d_out\), got shape \(3,\)"),
        (_with(W0=np.ones((0, 3))), r"W0 is empty"),
        (_with(activations=np.array(["relu", "tanh"])), r"activations\[1\] is 'tanh'"),
        (_with(activations=np.array(["relu"])), "activations has 1 names but the file has 2"),
        (_with(activations=np.array([1, 2])), "activations must be a 1-D array of strings"),
        (_with(activations=None), "no activations entry"),
        (_with(W0=None, b0=None), r"W0 is missing \(the file has W1\)"),
        (_with(b2=np.ones(2)), "b2 has no W2"),
        (_with(W0=W1.astype(np.int64)), "W0 has dtype int64; weights and biases must be float"),
        (_with(b0=B1.astype(np.complex128)), "b0 has dtype complex128"),
        (_with(W1=np.where(W2 > 0, np.nan, W2)), "W1 holds 3 NaN or infinite"),
        (_with(weights=W1), "unexpected entries 'weights'"),
        (_with(format=np.array("something.else")), "not a network file"),
        (_with(format_version=np.array(FILE_VERSION + 1)), "reads format versions 1 to"),
        (_with(format_version=np.array(1.0)), "format_version must be one integer"),
        ({"activations": np.array([], dtype=str)}, "at least one layer"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value[:30],
)
def test_load_refuses_invalid_networks_naming_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(NetworkFileError, match=message) as exc:
        Network.load(path)
    assert str(path) in str(exc.value)


def test_load_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "pickled.npz"
    evil = np.array([{"__reduce__": "os.system"}], dtype=object)
    np.savez(path, **{**GOOD, "W0": evil})  # np.savez pickles object arrays
    with pytest.raises(NetworkFileError, match="'W0' cannot be read without pickles"):
        Network.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not numpy at all", "not a .npz archive"),
        (b"PK\x03\x04truncated", "not a .npz archive"),
        (b"", "not a .npz archive"),
    ],
    ids=["text", "broken zip", "empty"],
)
def test_load_refuses_files_that_are_no_archive(tmp_path, content, message):
    path = tmp_path / "net.npz"
    path.write_bytes(content)
    with pytest.raises(NetworkFileError, match=message):
        Network.load(path)


def test_load_refuses_a_single_npy_array_and_a_missing_file(tmp_path):
    np.save(tmp_path / "W.npy", W1)
    with pytest.raises(NetworkFileError, match=r"holds a single array \(\.npy\)"):
        Network.load(tmp_path / "W.npy")
    with pytest.raises(FileNotFoundError):
        Network.load(tmp_path / "missing.npz")


def test_load_docstring_example_runs():
    failures, tried = doctest.testmod(nettrim.network, verbose=False)[:2]
    assert tried > 0 and failures == 0

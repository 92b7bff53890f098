"""The command line reads and writes .npz and .safetensors network files; prune writes the
sparse layouts by default and reports the file's bytes and stored parameters."""

import json

import numpy as np
import pytest

from nettrim import Network
from nettrim.cli import EXIT_OK, EXIT_USAGE, main
from nettrim.io import load_safetensors, save_safetensors


@pytest.fixture
def files(tmp_path, random_network):
    net, X = random_network((32, 64, 32, 3), 1, n=120)
    np.save(tmp_path / "X.npy", X)
    return tmp_path, net, X


def _prune(src, out, X, *options):
    return ["prune", str(src), "--inputs", str(X), "--out", str(out), "--n-jobs", "1", *options]


@pytest.mark.parametrize(("src_ext", "out_ext"), [("npz", "safetensors"), ("safetensors", "npz")])
def test_prune_reads_and_writes_both_formats_sparse_by_default(capsys, files, src_ext, out_ext):
    tmp, net, _ = files
    src, out, dense_out = tmp / f"net.{src_ext}", tmp / f"pruned.{out_ext}", tmp / f"d.{out_ext}"
    net.save(src)
    code = main(_prune(src, out, tmp / "X.npy", "--json", str(tmp / "r.json")))
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    pruned = Network.load(out)
    assert pruned.nnz < net.nnz
    written = json.loads((tmp / "r.json").read_text())["file"]
    assert written["bytes_before"] == src.stat().st_size
    assert written["bytes_after"] == out.stat().st_size
    biases = sum(layer.b.size for layer in net.layers)
    assert written["parameters_before"] == net.nnz + biases
    assert written["parameters_after"] == pruned.nnz + biases
    assert any(layout != "dense" for layout in written["layouts"])
    assert f"file: {written['bytes_before']:,} -> {written['bytes_after']:,} bytes" in captured.out
    # --dense: the same weights, stored dense, in a larger file
    assert main(_prune(src, dense_out, tmp / "X.npy", "--dense")) == EXIT_OK
    assert "layouts dense, dense, dense" in capsys.readouterr().out
    dense = Network.load(dense_out)
    for a, b in zip(dense.layers, pruned.layers, strict=True):
        assert a.W.tobytes() == b.W.tobytes()
    if out_ext == "safetensors":  # safetensors stores the zeros of a dense weight as they are
        assert out.stat().st_size < dense_out.stat().st_size


def test_verify_reads_safetensors(capsys, files):
    tmp, net, _ = files
    save_safetensors(net, tmp / "net.safetensors", orientation="torch")
    assert main(_prune(tmp / "net.safetensors", tmp / "p.safetensors", tmp / "X.npy")) == EXIT_OK
    code = main(
        ["verify", str(tmp / "net.safetensors"), str(tmp / "p.safetensors"), "--inputs",
         str(tmp / "X.npy")]
    )  # fmt: skip
    assert code == EXIT_OK, capsys.readouterr().err
    assert load_safetensors(tmp / "p.safetensors").dims == net.dims


def test_a_safetensors_file_without_orientation_is_a_usage_error(capsys, files):
    from safetensors.numpy import save_file

    tmp, net, _ = files
    save_file({"0.weight": net[0].W.T.copy()}, tmp / "raw.safetensors")
    code = main(_prune(tmp / "raw.safetensors", tmp / "p.npz", tmp / "X.npy"))
    assert code == EXIT_USAGE
    assert "does not record its orientation" in capsys.readouterr().err
    assert not (tmp / "p.npz").exists()


def _cnn(rng):
    from nettrim import Conv2dLayer, DenseLayer, FlattenLayer, MaxPool2dLayer

    W = rng.standard_normal((3 * 3 * 4, 6))
    W[np.abs(W) < 1.0] = 0.0  # about 68% removed, as a pruned kernel
    conv = Conv2dLayer(W, rng.standard_normal(6), (4, 8, 8), (3, 3), padding=(1, 1))
    dense = DenseLayer(rng.standard_normal((6 * 4 * 4, 3)), None, "linear")
    return Network((conv, MaxPool2dLayer((2, 2)), FlattenLayer(), dense))


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_the_cli_writes_and_reads_cnn_networks_by_extension(tmp_path, ext):
    """What `prune` writes (`_write_network`, sparse unless --dense) and what `verify` and
    `prune` read (`_read_network`): a CNN in either format, bit for bit."""
    from nettrim.cli import _read_network, _write_network

    rng = np.random.default_rng(3)
    original = _cnn(rng)
    source = tmp_path / f"cnn.{ext}"
    original.save(source, layout="dense")
    pruned = original.with_layer(3, original[3].with_weights(np.where(
        np.abs(original[3].W) > 1.0, original[3].W, 0.0), None))  # fmt: skip
    out = tmp_path / f"pruned.{ext}"
    written = _write_network(pruned, str(out), original, str(source), dense=False)
    assert written["layouts"][0] != "dense" and written["layouts"][3] != "dense"
    assert written["bytes_after"] == out.stat().st_size < written["bytes_before"]
    assert written["parameters_after"] == pruned.nnz + 6 < written["parameters_before"]
    back = _read_network(str(out))
    x = rng.standard_normal((2, 4, 8, 8))
    assert back(x).tobytes() == pruned(x).tobytes()
    dense = _write_network(pruned, str(tmp_path / f"d.{ext}"), original, str(source), dense=True)
    assert dense["layouts"] == ["dense"] * 4


def test_verify_refuses_a_damaged_cnn_safetensors_file(capsys, tmp_path):
    rng = np.random.default_rng(4)
    _cnn(rng).save(tmp_path / "cnn.safetensors")
    data = (tmp_path / "cnn.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    np.save(tmp_path / "X.npy", rng.standard_normal((5, 256)))
    argv = ["verify", str(tmp_path / "cnn.safetensors"), str(tmp_path / "cut.safetensors"),
            "--inputs", str(tmp_path / "X.npy"), "--json", str(tmp_path / "v.json")]  # fmt: skip
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cut.safetensors: not a valid safetensors file" in err
    assert not (tmp_path / "v.json").exists()


def test_verify_on_a_shrunk_network_says_what_the_library_says(capsys, files):
    """One rule, one message: the CLI's refusal is `nettrim.verify`'s, shrink hint included."""
    from nettrim import prune_network, shrink, verify

    tmp, net, X = files
    masked = prune_network(net, X, sparsity=0.5, pattern="outputs", layers=[0]).network
    small = shrink(masked).network
    assert small.dims[1] < net.dims[1]
    net.save(tmp / "net.npz")
    small.save(tmp / "small.npz")
    with pytest.raises(ValueError) as library:
        verify(net, small, X)
    assert "verify the masked network before shrinking" in str(library.value)
    code = main(["verify", str(tmp / "net.npz"), str(tmp / "small.npz"), "--inputs",
                 str(tmp / "X.npy")])  # fmt: skip
    assert code == EXIT_USAGE
    assert str(library.value) in capsys.readouterr().err

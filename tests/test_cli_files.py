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

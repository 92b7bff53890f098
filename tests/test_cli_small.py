"""What a first run trips on: a closed stdout (`| head`), `print(network)`, a network file
in PyTorch's (d_out, d_in) layout."""

import subprocess
import sys

import numpy as np
import pytest

from nettrim import Network
from nettrim.cli import EXIT_BROKEN_PIPE, EXIT_OK, main
from nettrim.network import NetworkFileError
from nettrim.tables import COLUMNS


def test_verify_into_a_closed_pipe_ends_without_traceback(tmp_path, random_network, capsys):
    network, X = random_network((8, 12, 4), seed=2, n=60)
    network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    files = [str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy")]
    args = ["prune", *files, "--out", str(tmp_path / "p.npz"), "--n-jobs", "1", "--quiet"]
    assert main(args) == EXIT_OK
    capsys.readouterr()
    command = [sys.executable, "-m", "nettrim", "verify", str(tmp_path / "net.npz")]
    command += [str(tmp_path / "p.npz"), *files[1:]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before anything is written, as `| head -0`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_print_network_shows_shapes_not_arrays(random_network):
    network, _ = random_network((6, 40, 3), seed=0)
    pruned = Network(
        (network[0].with_weights(np.where(network[0].W > 0, network[0].W, 0), None), network[1])
    )
    text = repr(pruned)
    assert text.startswith("Network(6-40-3, 2 layers,")
    assert f"0: DenseLayer(6x40, relu, no bias, {pruned[0].nnz} of 240 weights non-zero" in text
    assert "1: DenseLayer(40x3, linear, bias, 120 of 120 weights non-zero, float64)" in text
    assert "[" not in text and "array" not in text  # no array printed
    assert str(pruned) == text


def test_pytorch_layout_file_says_transposed(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((256, 784))  # nn.Linear(784, 256).weight: (d_out, d_in)
    path = tmp_path / "torch_layout.npz"
    np.savez(path, W0=weight, b0=rng.standard_normal(256), activations=np.array(["linear"]))
    with pytest.raises(NetworkFileError, match=r"W0 of shape \(256, 784\) looks transposed"):
        Network.load(path)


def test_demo_and_prune_print_one_table_layout(tmp_path, random_network, capsys):
    network, X = random_network((8, 12, 4), seed=2, n=60)
    network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    args = ["prune", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy")]
    assert main([*args, "--out", str(tmp_path / "p.npz"), "--n-jobs", "1", "--quiet"]) == EXIT_OK
    prune_lines = capsys.readouterr().out.splitlines()
    assert main(["demo", "--n-calib", "40"]) == EXIT_OK
    demo_lines = capsys.readouterr().out.splitlines()
    assert demo_lines[2] == prune_lines[2]  # the same columns, in the same widths
    assert demo_lines[2] == " ".join(f"{name:>{width}}" for name, width in COLUMNS)
    row = demo_lines[3].split()
    assert row[1] == "64x128" and float(row[6]) == 0.05 and row[7] in ("met", "within")

"""`nettrim prune` with every method equals the library call bit for bit; progress reaches
stderr (plain lines when it is not a terminal) and the Python callback, never stdout."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nettrim import Network, net_trim, prune_network
from nettrim.cli import EXIT_OK, EXIT_USAGE, main
from nettrim.progress import ProgressEvent, StderrProgress

DIMS = (16, 24, 12, 4)


@pytest.fixture(scope="module")
def files(tmp_path_factory, random_network):
    """A small ReLU network file and its calibration inputs."""
    folder = tmp_path_factory.mktemp("methods")
    network, X = random_network(DIMS, seed=3, n=120)
    network.save(folder / "net.npz")
    np.save(folder / "X.npy", X)
    return folder, network, X


def _assert_same_weights(path, expected: Network) -> None:
    written = Network.load(path)
    for got, want in zip(written.layers, expected.layers, strict=True):
        np.testing.assert_array_equal(got.W, want.W)
        np.testing.assert_array_equal(got.b, want.b)
        assert got.W.dtype == want.W.dtype


@pytest.mark.parametrize(
    ("method", "pattern", "scheme"),
    [
        ("admm", "unstructured", "cascade"),
        ("iht", "per_output", "parallel"),
        ("sparsegpt", "2:4", "cascade"),
        ("wanda", "unstructured", "cascade"),
        ("magnitude", "outputs", "parallel"),
    ],
)
def test_l0_method_equals_library(files, capsys, method, pattern, scheme):
    folder, network, X = files
    out = folder / f"{method}.npz"
    args = ["prune", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--out", str(out)]
    args += ["--method", method, "--pattern", pattern, "--scheme", scheme, "--quiet"]
    sparsity = None if ":" in pattern else 0.5
    if sparsity is not None:
        args += ["--sparsity", str(sparsity)]
    assert main([*args, "--json", str(folder / f"{method}.json")]) == EXIT_OK, capsys.readouterr()
    expected = prune_network(
        network, X, sparsity=sparsity, pattern=pattern, method=method, scheme=scheme
    )
    _assert_same_weights(out, expected.network)
    report = json.loads((folder / f"{method}.json").read_text())
    assert report["nnz_after"] == expected.network.nnz < network.nnz
    assert [row["nnz_after"] for row in report["layers"]] == [r.nnz for r in expected.layers]
    printed = capsys.readouterr().out
    assert f"{scheme} {method} ({pattern})" in printed
    assert "nnz before nnz after sparsity  discrep.       eps     budget" in printed


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_nettrim_equals_library(files, capsys, scheme):
    folder, network, X = files
    out = folder / f"nettrim-{scheme}.npz"
    args = ["prune", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--out", str(out)]
    assert main([*args, "--scheme", scheme, "--eps", "0.1", "--n-jobs", "1"]) == EXIT_OK
    expected = net_trim(network, X, scheme=scheme, eps=0.1, n_jobs=1, blas_threads=None)
    _assert_same_weights(out, expected.network)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "admm", "--sparsity", "0.5", "--eps", "0.1"], "--eps applies to --method"),
        (["--method", "wanda"], "needs --sparsity"),
        (["--sparsity", "0.5"], "apply to the L0 methods"),
        (["--method", "admm", "--sparsity", "1.5"], "--sparsity"),
        (["--method", "sparsegpt", "--sparsity", "0.5", "--pattern", "inputs"], "sparsegpt"),
    ],
)
def test_method_options_refused(files, capsys, extra, message):
    folder, _, _ = files
    out = folder / "refused.npz"
    args = ["prune", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--out", str(out)]
    assert main([*args, "--quiet", *extra]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_progress_on_non_terminal_stderr(files):
    folder, _, _ = files
    out = folder / "progress.npz"
    command = [sys.executable, "-m", "nettrim", "prune", str(folder / "net.npz"), "--inputs"]
    command += [str(folder / "X.npy"), "--out", str(out), "--per-neuron", "--n-jobs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ)
    assert done.returncode == EXIT_OK, done.stderr
    for l in range(3):
        assert f"nettrim prune: layer {l + 1}/3: " in done.stderr
    assert "weights kept, optimal" in done.stderr
    assert done.stdout.startswith("nettrim prune — 16-24-12-4 network")
    assert "layer 1/3" not in done.stdout and "warning" not in done.stdout
    quiet = subprocess.run([*command, "--quiet"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == EXIT_OK
    assert "layer 1/3" not in quiet.stderr
    assert quiet.stdout.splitlines()[0] == done.stdout.splitlines()[0]


def test_progress_callback_counts_jobs_and_layers(files):
    _, network, X = files
    events: list[ProgressEvent] = []
    result = net_trim(
        network, X, eps=0.1, per_neuron=True, neuron_block=5, n_jobs=1, progress=events.append
    )
    jobs = [e for e in events if e.kind == "job"]
    layers = [e for e in events if e.kind == "layer"]
    blocks = [-(-d // 5) for d in DIMS[1:]]  # ceil(d_out / 5) column blocks per layer
    assert len(jobs) == sum(blocks) == jobs[-1].jobs_total == jobs[-1].jobs_done
    assert [e.layer for e in layers] == [0, 1, 2]
    assert all(e.n_blocks == blocks[e.layer] for e in jobs)
    for event, res in zip(layers, result.layers, strict=True):
        np.testing.assert_array_equal(event.result.W, res.W)
    l0_events: list[ProgressEvent] = []
    prune_network(network, X, sparsity=0.5, progress=l0_events.append)
    assert [e.layer for e in l0_events if e.kind == "layer"] == [0, 1, 2]
    with pytest.raises(TypeError, match="progress must be a callable"):
        net_trim(network, X, eps=0.1, n_jobs=1, progress=3)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_draws_a_bar_and_keeps_layer_lines(files, monkeypatch):
    _, network, X = files
    monkeypatch.setenv("TERM", "xterm")
    stream = _Terminal()
    with StderrProgress("prune", stream) as progress:
        assert progress.terminal
        net_trim(network, X, eps=0.1, per_neuron=True, neuron_block=5, n_jobs=1,
                 progress=progress)  # fmt: skip
    text = stream.getvalue()
    assert "nettrim prune:" in text and "job" in text  # tqdm's bar, its unit
    assert "\r" in text  # the bar redrawn in place
    for l in range(3):
        assert f"nettrim prune: layer {l + 1}/3: " in text

"""Faults: a worker that dies, a disk that fills up, Ctrl-C in the command line."""

import errno
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from nettrim import Network, net_trim, save_safetensors
from nettrim.cli import EXIT_INTERRUPTED, main
from nettrim.executors import JobRunner, WorkerDiedError


def test_a_worker_that_dies_is_a_clear_error_and_keeps_the_finished_jobs():
    """A real loky worker calling ``os._exit``: the error names the job, results kept."""

    def job(task):  # travels to the worker by value (cloudpickle)
        if task == 3:
            time.sleep(0.5)  # the jobs before it have come back by then
            os._exit(3)
        return task * 10

    with JobRunner(n_jobs=2) as runner, pytest.raises(WorkerDiedError) as caught:
        runner.map(job, range(6), label=lambda task: f"task {task}")
    error = caught.value
    assert "task 3" in str(error) and "died" in str(error)
    assert error.label == "task 3"
    assert error.finished[:3] == [0, 10, 20] and error.finished[3:] == [None] * 3


class _DiesOnLayer(Executor):
    """Runs jobs in-process, except that a worker 'dies' on every job of one layer."""

    def __init__(self, layer: int) -> None:
        self.layer = layer

    def submit(self, fn, *args, **kwargs):
        future = Future()
        if args[-1].layer == self.layer:
            future.set_exception(BrokenProcessPool("A process in the pool was terminated"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


@pytest.mark.parametrize("scheme", ["cascade", "parallel"])
def test_net_trim_names_the_layer_whose_worker_died(random_network, scheme):
    network, X = random_network([6, 5, 4, 3], seed=2)
    with pytest.raises(WorkerDiedError, match="before layer 1 finished") as caught:
        net_trim(network, X, scheme=scheme, executor=_DiesOnLayer(1), solver="clarabel")
    layers = caught.value.layers
    assert len(layers) == 3 and layers[1] is None
    reference = net_trim(network, X, scheme=scheme, n_jobs=1, solver="clarabel")
    np.testing.assert_array_equal(layers[0].W, reference.layers[0].W)  # finished layer kept
    if scheme == "parallel":  # every layer runs at once: the last one finished too
        np.testing.assert_array_equal(layers[2].W, reference.layers[2].W)
    else:  # the cascade stops at the layer that failed
        assert layers[2] is None


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_full_disk_leaves_the_previous_file_intact(random_network, tmp_path, monkeypatch, suffix):
    old, _ = random_network([4, 3, 2], seed=0)
    new, _ = random_network([4, 3, 2], seed=1)
    path = tmp_path / f"net{suffix}"
    save = Network.save if suffix == ".npz" else save_safetensors
    save(old, path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _disk_full)  # the data written, the flush to disk fails
    with pytest.raises(OSError) as caught:
        save(new, path)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left


def test_cli_prune_on_a_full_disk_keeps_the_previous_output(
    random_network, tmp_path, monkeypatch, capsys
):
    network, X = random_network([5, 4, 3], seed=3)
    network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "pruned.npz"
    out.write_bytes(b"the previous output")
    monkeypatch.setattr(os, "fsync", _disk_full)
    arguments = ["prune", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy")]
    code = main([*arguments, "--out", str(out), "--n-jobs", "1", "--solver", "clarabel"])
    assert code == 1  # a failed run: one line on stderr, no traceback
    last = capsys.readouterr().err.splitlines()[-1]
    assert "cannot write" in last and "No space left on device" in last
    assert out.read_bytes() == b"the previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "net.npz", "pruned.npz"]


_SIGINT_SCRIPT = """
import signal
import sys
# Ctrl-C raises KeyboardInterrupt, as in a terminal, even under a runner that ignores SIGINT
signal.signal(signal.SIGINT, signal.default_int_handler)
import nettrim.cli
print("started", flush=True)
sys.exit(nettrim.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("n_jobs", ["2"])  # the default pool; in-process is simpler
def test_sigint_stops_a_cli_run_with_exit_code_130(tmp_path, n_jobs):
    """A real process and a real Ctrl-C during a long prune (SIGINT to the whole process
    group, as a terminal sends it, workers included): exit 130, one line, nothing written."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 60))
    weights = [rng.standard_normal((60, 60)) / 8, rng.standard_normal((60, 60)) / 8]
    Network.from_arrays(weights, [np.zeros(60)] * 2, activations=["relu", "relu"]).save(
        tmp_path / "net.npz"
    )
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "pruned.npz"
    command = [sys.executable, "-c", _SIGINT_SCRIPT, "prune", str(tmp_path / "net.npz")]
    command += ["--inputs", str(tmp_path / "X.npy"), "--out", str(out), "--n-jobs", n_jobs]
    command += ["--eps", "1e-4", "--solver", "admm", "--max-iter", "1000000"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    assert process.stdout.readline().strip() == "started"
    time.sleep(2.0)  # past reading the files: inside the solves
    assert process.poll() is None, "the run ended before the interrupt"
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == EXIT_INTERRUPTED == 130
    assert err.splitlines()[-1].endswith("interrupted") and "Traceback" not in err
    assert not out.exists()

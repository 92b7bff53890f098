"""`nettrim prune --scheduler` on a real Dask cluster: a `dask scheduler` and two
`dask worker` processes on 127.0.0.1, started here and always torn down; the weights equal
a local run's bit for bit."""

import contextlib
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
from dask.distributed import Client

from nettrim import Network, net_trim
from nettrim.cli import EXIT_OK, EXIT_USAGE, main

START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with two single-threaded worker processes."""
    dask = shutil.which("dask")
    assert dask is not None, "the dask command comes with nettrim[dask]"
    log = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    common = ["--no-dashboard"]
    processes = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [_stop(p) for p in reversed(processes)])

        def start(name, command):
            out = stack.enter_context(open(log / f"{name}.log", "w"))
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))

        host, port = address.removeprefix("tcp://").split(":")
        start("scheduler", [dask, "scheduler", "--host", host, "--port", port, *common])
        for i in range(2):
            start(f"worker{i}", [dask, "worker", address, "--nthreads", "1", "--host", host,
                                 "--memory-limit", "0", *common])  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert all(p.poll() is None for p in processes), "a dask process died (see logs)"
            try:
                with Client(address, timeout=10) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                    pids = client.run(lambda: __import__("os").getpid())
                break
            except OSError:
                assert time.monotonic() < deadline, "the cluster did not start in time"
                time.sleep(0.5)
        assert len(set(pids.values())) == 2
        yield address


@pytest.mark.parametrize(
    "options",
    [
        ["--per-neuron", "--eps", "0.1"],  # column blocks: many jobs sharing the arrays
        ["--scheme", "cascade", "--eps", "0.1"],
        ["--method", "admm", "--sparsity", "0.5", "--scheme", "parallel"],
    ],
)
def test_scheduler_equals_local(scheduler, random_network, tmp_path, capsys, options):
    network, X = random_network((12, 70, 20, 4), seed=4, n=90)
    network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    base = ["prune", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy"), *options]
    local, remote = tmp_path / "local.npz", tmp_path / "remote.npz"
    assert main([*base, "--out", str(local), "--n-jobs", "2"]) == EXIT_OK
    store = tmp_path / "store"
    store.mkdir()
    extra = ["--scheduler", scheduler, "--store-dir", str(store)]
    assert main([*base, "--out", str(remote), *extra]) == EXIT_OK, capsys.readouterr().err
    for a, b in zip(Network.load(local).layers, Network.load(remote).layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    assert list(store.iterdir()) == []  # the arrays written for the workers are removed
    capsys.readouterr()


def test_scheduler_with_n_jobs_refused(scheduler, random_network, tmp_path, capsys):
    network, X = random_network((6, 8, 3), seed=0)
    network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    args = ["prune", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy")]
    args += ["--out", str(tmp_path / "p.npz"), "--scheduler", scheduler, "--n-jobs", "2"]
    assert main(args) == EXIT_USAGE
    assert "--scheduler or --n-jobs" in capsys.readouterr().err


def test_scheduler_run_reports_admm_iterations(scheduler, random_network, tmp_path, capsys):
    """The workers' ADMM checks reach the driver while the jobs run: on stderr (not a
    terminal here) for the CLI, and as "iteration" events for a Python callback; the weights
    are those of a run without progress."""
    network, X = random_network((20, 60, 30, 5), seed=3, n=200)
    network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    args = ["prune", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy"), "--solver"]
    args += ["admm", "--eps", "0.05", "--out", str(tmp_path / "p.npz"), "--scheduler", scheduler]
    assert main(args) == EXIT_OK
    captured = capsys.readouterr()
    for l in range(3):
        assert f"nettrim prune: layer {l + 1}/3: ADMM iteration 20, gap " in captured.err
    assert "ADMM" not in captured.out
    assert main([*args, "--quiet"]) == EXIT_OK
    assert capsys.readouterr().err == ""

    events = []
    with Client(scheduler, timeout=30) as client:
        options = dict(eps=0.05, solver="admm", per_neuron=True, neuron_block=25)
        plain = net_trim(network, X, executor=client.get_executor(), **options)
        watched = net_trim(
            network, X, executor=client.get_executor(), progress=events.append, **options
        )
    for a, b in zip(plain.layers, watched.layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    jobs = {(e.layer, e.block) for e in events if e.kind == "job"}
    assert len(jobs) == 3 + 2 + 1
    assert {(e.layer, e.block) for e in events if e.kind == "iteration"} == jobs
    assert all(e.iterate.iteration % 20 == 0 for e in events if e.kind == "iteration")

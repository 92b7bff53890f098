"""`nettrim prune --run-dir`: a run killed with SIGKILL resumes from its finished layers and
writes the uninterrupted run's file byte for byte; another command is refused."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nettrim import net_trim
from nettrim.cli import EXIT_OK, EXIT_USAGE, main
from nettrim.runs import RunDirectory, RunDirectoryError

#: Six layers, cascade, in one process: long enough (seconds) to be killed between layers.
DIMS = (30, 60, 60, 60, 60, 5)
POLL_SECONDS = 0.02
WAIT_SECONDS = 600


@pytest.fixture(scope="module")
def files(tmp_path_factory, random_network):
    folder = tmp_path_factory.mktemp("runs")
    network, X = random_network(DIMS, seed=5, n=300)
    network.save(folder / "net.npz")
    np.save(folder / "X.npy", X)
    return folder


def _command(folder, out, *extra) -> list[str]:
    return [
        sys.executable, "-m", "nettrim", "prune", str(folder / "net.npz"),
        "--inputs", str(folder / "X.npy"), "--out", str(out), "--scheme", "cascade",
        "--eps", "0.05", "--n-jobs", "1", *extra,
    ]  # fmt: skip


def test_sigkill_then_resume_gives_the_same_bytes(files):
    folder = files
    run_dir = folder / "run"
    killed_out, resumed_out, plain_out = (folder / f"{n}.npz" for n in ("k", "r", "p"))
    process = subprocess.Popen(
        _command(folder, killed_out, "--run-dir", str(run_dir), "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (run_dir / "layer0.json").exists():
            assert process.poll() is None, "the run ended before its first layer was recorded"
            assert time.monotonic() < deadline, "no layer recorded in time"
            time.sleep(POLL_SECONDS)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not killed_out.exists()
    recorded = sorted(n for n in os.listdir(run_dir) if n.endswith(".json") and n != "run.json")
    assert 1 <= len(recorded) < len(DIMS) - 1, recorded  # killed mid-run

    resumed = subprocess.run(
        _command(folder, resumed_out, "--run-dir", str(run_dir)),
        capture_output=True, text=True, timeout=WAIT_SECONDS,
    )  # fmt: skip
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert "resuming" in resumed.stderr and "resumed from the run directory" in resumed.stderr
    plain = subprocess.run(
        _command(folder, plain_out), capture_output=True, text=True, timeout=WAIT_SECONDS
    )
    assert plain.returncode == EXIT_OK, plain.stderr
    assert resumed_out.read_bytes() == plain_out.read_bytes()
    # the table too (seconds aside): the same figures for resumed and solved layers
    # (the seconds are the last, right-aligned field: drop it with the spaces before it)
    strip = [line.split()[:-1] for line in plain.stdout.splitlines()[3:10]]
    assert [line.split()[:-1] for line in resumed.stdout.splitlines()[3:10]] == strip


def test_other_command_on_the_run_dir_is_refused(files, capsys, tmp_path):
    folder = files
    run_dir = tmp_path / "run"
    args = ["prune", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--quiet"]
    args += ["--run-dir", str(run_dir), "--out", str(tmp_path / "a.npz"), "--eps", "0.2"]
    assert main(args) == EXIT_OK
    capsys.readouterr()
    assert main([*args[:-1], "0.3"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "records a different command" in err and "eps: recorded [0.2], now [0.3]" in err
    other = tmp_path / "X2.npy"
    np.save(other, np.load(folder / "X.npy")[:200])
    changed = [other if a == str(folder / "X.npy") else a for a in args]
    assert main([str(a) for a in changed]) == EXIT_USAGE
    assert "inputs: recorded" in capsys.readouterr().err
    assert not (tmp_path / "b.npz").exists()


def test_resume_in_the_api_equals_the_full_run(random_network, tmp_path):
    network, X = random_network((8, 12, 10, 3), seed=1, n=60)
    full = net_trim(network, X, scheme="cascade", eps=0.1, n_jobs=1)
    run = RunDirectory(tmp_path / "run", {"case": 1})
    run.record(0, full.layers[0])
    run.record(1, full.layers[1])
    again = RunDirectory(tmp_path / "run", {"case": 1})
    finished = again.finished()
    assert sorted(finished) == [0, 1]
    resumed = net_trim(network, X, scheme="cascade", eps=0.1, n_jobs=1, resume=finished)
    for a, b in zip(full.layers, resumed.layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
        assert a.status == b.status and a.info.residual == b.info.residual
    with pytest.raises(RunDirectoryError, match="different command"):
        RunDirectory(tmp_path / "run", {"case": 2})
    with pytest.raises(ValueError, match="resume"):
        net_trim(network, X, eps=0.1, n_jobs=1, resume={0: full.layers[1]})

"""The command line: `nettrim demo`, `nettrim prune` and `nettrim verify` end to end, exit
codes, one-line errors, no file written on failure, --help."""

import dataclasses
import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nettrim
import nettrim.guarantees
import nettrim.schemes
from nettrim import Network, net_trim, verify
from nettrim.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from nettrim.guarantees import Check
from nettrim.solvers import EXACT_SOLVERS, AdmmSettings

# The exact backends meet the ball to ~1e-7 relative (tests/solvers/test_exact.py); the
# ADMM documents its own contract: ball excess <= feas_tol * radius.
EXACT_BALL_RTOL = 1e-6


def _ball_rtol(solver: str) -> float:
    if solver in EXACT_SOLVERS:
        return EXACT_BALL_RTOL
    assert solver == "admm", solver
    return AdmmSettings().feas_tol


def _run_json(capsys, *args) -> dict:
    code = main(["demo", *args, "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    return json.loads(captured.out)  # stdout holds the JSON document and nothing else


def _check_report(report: dict, n_calib: int) -> None:
    assert report["n_calib"] == n_calib
    assert report["n_calib_total"] == 1257
    layers = report["layers"]
    assert [layer["shape"] for layer in layers] == [[64, 128], [128, 128], [128, 10]]
    for layer in layers:
        assert layer["status"] == "optimal"
        assert 0 < layer["nnz_after"] < layer["nnz_before"]
        rtol = _ball_rtol(layer["solver"])
        assert layer["residual"] <= layer["radius"] * (1 + rtol), layer
    assert report["accuracy_before"] > 0.95
    assert 0.0 <= report["accuracy_after"] <= 1.0
    assert report["discrepancy_test"] >= 0.0


def test_demo_json(capsys):
    _check_report(_run_json(capsys, "--n-calib", "80"), 80)


def test_demo_json_exact_path(capsys):
    # The exact path at its own tolerance (kept small: Clarabel on 128 x 128 is seconds).
    report = _run_json(capsys, "--n-calib", "40", "--solver", "clarabel")
    assert {layer["solver"] for layer in report["layers"]} == {"clarabel"}
    _check_report(report, 40)


def test_demo_text_report(capsys):
    assert main(["demo", "--n-calib", "40"]) == EXIT_OK
    captured = capsys.readouterr()
    # 40 rows for 64-wide inputs: the warning, as one line on stderr
    assert "nettrim demo: warning: 40 calibration samples but layer 0 has 64" in captured.err
    out = captured.out
    assert "test accuracy" in out and "weights kept" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--eps", "-1"], "--eps must be >= 0"), (["--n-calib", "0"], "--n-calib must be >= 1")],
)
def test_demo_bad_usage_exits_2(capsys, args, message):
    assert main(["demo", *args]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv", [["--help"], ["demo", "--help"], ["prune", "--help"], ["verify", "--help"]]
)
def test_help_exits_0(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: nettrim" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------------------
# nettrim prune / nettrim verify

DIMS = (8, 12, 6, 3)
N_SAMPLES = 60


def _strict_json(path) -> dict:
    """Parse ``path`` as strict JSON (NaN and Infinity are not JSON)."""

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def files(tmp_path, random_network):
    """A small random network and its calibration inputs, as a user would have them."""
    net, X = random_network(DIMS, 0, n=N_SAMPLES)
    net.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", X)
    return {
        "dir": tmp_path,
        "net": str(tmp_path / "net.npz"),
        "X": str(tmp_path / "X.npy"),
        "out": str(tmp_path / "pruned.npz"),
        "network": net,
        "inputs": X,
    }


def _prune(files, *options) -> list[str]:
    return ["prune", files["net"], "--inputs", files["X"], "--out", files["out"], *options]


def _assert_same_weights(a: Network, b: Network) -> None:
    for la, lb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(la.W, lb.W)
        np.testing.assert_array_equal(la.b, lb.b)


def test_prune_writes_the_same_bytes_whatever_n_jobs(tmp_path):
    """Same weights from --n-jobs 1 (in-process) and --n-jobs 2 (a pool): every job runs
    with the library's BLAS threads, never the process's own (with two, OpenBLAS splits the
    bundled network's products and the float32 sums come in another order)."""
    from threadpoolctl import threadpool_limits

    from nettrim import load_digits_mlp

    model = load_digits_mlp()
    model.network.save(tmp_path / "net.npz")
    np.save(tmp_path / "X.npy", model.X_calib[:400])
    outputs = []
    for n_jobs in ("1", "2"):
        out = str(tmp_path / f"pruned{n_jobs}.npz")
        argv = ["prune", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "X.npy")]
        argv += ["--out", out, "--quiet", "--eps", "0.1", "--n-jobs", n_jobs]
        with threadpool_limits(2):  # what the process's own BLAS would use
            assert main(argv) == EXIT_OK
        outputs.append(Network.load(out))
    _assert_same_weights(*outputs)


def test_prune_writes_what_net_trim_returns(capsys, files):
    report_path = files["dir"] / "report.json"
    code = main(_prune(files, "--n-jobs", "1", "--json", str(report_path)))
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    pruned = Network.load(files["out"])
    # an independent route: the library call with the same settings (in-process, so the
    # same BLAS threads, hence bit-identical)
    expected = net_trim(files["network"], files["inputs"], eps=0.05, n_jobs=1, blas_threads=None)
    _assert_same_weights(pruned, expected.network)
    assert pruned.activations == files["network"].activations
    # the summary: one row per layer, the totals, the verdict
    assert "weights kept" in captured.out and "guarantees (nettrim verify): OK" in captured.out
    assert f"wrote {files['out']}" in captured.out
    report = _strict_json(report_path)
    assert report["nnz_after"] == pruned.nnz < report["nnz_before"] == files["network"].nnz
    assert report["verify"]["success"] is True
    assert report["record"] == Network.load(files["out"]).metadata["pruning"]
    assert report["tolerance"].startswith("0.001 (recorded with the pruning")
    assert [row["budget"] for row in report["layers"]] == [
        rep["budget"] for rep in report["verify"]["layers"]
    ]
    feas_tol = AdmmSettings().feas_tol
    for row, layer in zip(report["layers"], pruned.layers, strict=True):
        assert row["nnz_after"] == layer.nnz
        assert row["status"] == "optimal"
        assert row["eps"] == pytest.approx(0.05, rel=1e-12)
        assert row["residual"] <= row["radius"] * (1 + feas_tol)
    assert sorted(p.name for p in files["dir"].iterdir()) == [
        "X.npy", "net.npz", "pruned.npz", "report.json"
    ]  # fmt: skip


def test_prune_passes_every_scheme_option(capsys, files):
    argv = _prune(files, "--scheme", "cascade", "--eps", "0.1", "--gamma", "1.2")
    argv += ["--kappa", "0.9", "--per-neuron", "--reweight-rounds", "1", "--n-jobs", "1"]
    argv += ["--cascade-bound", "paper"]
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    expected = net_trim(
        files["network"],
        files["inputs"],
        scheme="cascade",
        eps=0.1,
        gamma=1.2,
        kappa=0.9,
        cascade_bound="paper",
        per_neuron=True,
        reweight_rounds=1,
        n_jobs=1,
        blas_threads=None,
    )
    _assert_same_weights(Network.load(files["out"]), expected.network)
    assert "cascade Net-Trim, per neuron" in capsys.readouterr().out


def test_prune_per_layer_eps_and_exact_solver(capsys, files):
    argv = _prune(files, "--eps", "0.1,0.05,0.02", "--solver", "clarabel", "--n-jobs", "1")
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    expected = net_trim(
        files["network"], files["inputs"], eps=[0.1, 0.05, 0.02], solver="clarabel", n_jobs=1
    )
    _assert_same_weights(Network.load(files["out"]), expected.network)


def test_verify_verb(capsys, files):
    assert main(_prune(files, "--n-jobs", "1")) == EXIT_OK
    capsys.readouterr()
    report_path = files["dir"] / "verify.json"
    argv = ["verify", files["net"], files["out"], "--inputs", files["X"], "--eps", "0.05"]
    assert main([*argv, "--json", str(report_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("verify (parallel scheme)") and "OK" in out.splitlines()[0]
    report = _strict_json(report_path)
    direct = verify(files["network"], Network.load(files["out"]), files["inputs"], eps=0.05)
    assert report["success"] is direct.success is True
    assert report["report"]["network_discrepancy"] == pytest.approx(direct.network_discrepancy)
    assert any(
        c["name"].startswith("Proposition 1 (nominal eps)") for c in report["report"]["checks"]
    )


def test_verify_exits_1_when_a_check_fails(capsys, files, monkeypatch):
    assert main(_prune(files, "--n-jobs", "1")) == EXIT_OK
    capsys.readouterr()
    real_verify = nettrim.guarantees.verify
    failing = Check("planted failure", "none", True, bound=1.0, realized=2.0, holds=False)

    def verify_with_a_failure(*args, **kwargs):
        report = real_verify(*args, **kwargs)
        return dataclasses.replace(report, checks=(*report.checks, failing))

    monkeypatch.setattr(nettrim.guarantees, "verify", verify_with_a_failure)
    code = main(["verify", files["net"], files["out"], "--inputs", files["X"]])
    assert code == EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAILED" in out.splitlines()[0] and "planted failure" in out


def test_verify_refuses_networks_of_different_shapes(capsys, files, random_network):
    other, _ = random_network((8, 12, 3), 1)
    other.save(files["dir"] / "other.npz")
    argv = ["verify", files["net"], str(files["dir"] / "other.npz"), "--inputs", files["X"]]
    assert main(argv) == EXIT_USAGE
    assert "they must match" in capsys.readouterr().err  # verify's own message


def _bad_files(d):
    """Invalid inputs a user may hand over, written under ``d``."""
    np.savez(d / "tanh.npz", W0=np.ones((8, 3)), activations=np.array(["tanh"]))
    (d / "garbage.npz").write_bytes(b"not an archive")
    np.savez(d / "inputs.npz", X=np.ones((5, 8)))
    np.save(d / "objects.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.save(d / "narrow.npy", np.ones((5, 5)))
    np.save(d / "transposed.npy", np.ones((8, 20)))
    np.save(d / "one.npy", np.ones(8))
    np.save(d / "nan.npy", np.full((5, 8), np.nan))
    np.save(d / "text.npy", np.full((5, 8), "x"))
    np.save(d / "empty.npy", np.ones((0, 8)))


BAD_USAGE = [
    ({"net": "missing.npz"}, [], "cannot read missing.npz: No such file or directory"),
    ({"net": "garbage.npz"}, [], "garbage.npz: not a .npz archive"),
    ({"net": "tanh.npz"}, [], "activations[0] is 'tanh'; known activations"),
    ({"X": "missing.npy"}, [], "cannot read missing.npy"),
    ({"X": "inputs.npz"}, [], "is a .npz archive; --inputs takes one array"),
    ({"X": "objects.npy"}, [], "cannot be read without pickles"),
    ({"X": "narrow.npy"}, [], "has 5 columns but the network's first layer takes 8 inputs"),
    ({"X": "transposed.npy"}, [], "(samples as columns? save X.T)"),
    ({"X": "one.npy"}, [], "use X.reshape(1, 8)"),
    ({"X": "nan.npy"}, [], "holds 40 NaN or infinite value(s)"),
    ({"X": "text.npy"}, [], "the inputs must be real numbers"),
    ({"X": "empty.npy"}, [], "has no rows"),
    ({"out": "no/such/dir/pruned.npz"}, [], "does not exist"),
    ({"out": "net.npz"}, [], "would overwrite"),
    ({"out": "."}, [], "is a directory"),
    ({}, ["--json", "net.npz"], "--json net.npz would overwrite"),
    ({}, ["--eps", "-1"], "--eps must be >= 0.0"),
    ({}, ["--eps", "nan"], "--eps must be finite"),
    ({}, ["--eps", "0.1,0.2"], "--eps has 2 values but the network has 3 layers"),
    ({}, ["--scheme", "cascade", "--eps", "0.1,0.1,0.1"], "takes one --eps"),
    ({}, ["--gamma", "1.2"], "--gamma applies to --scheme cascade only"),
    ({}, ["--kappa", "0.5"], "--kappa applies to --scheme cascade only"),
    ({}, ["--cascade-bound", "paper"], "--cascade-bound applies to --scheme cascade only"),
    ({}, ["--scheme", "cascade", "--gamma", "0.5"], "--gamma must be >= 1.0"),
    ({}, ["--scheme", "cascade", "--gamma", "1.1,1.1,1.1"], "--gamma has 3 values"),
    ({}, ["--scheme", "cascade", "--kappa", "1.5"], "--kappa must be in (0, 1]"),
    ({}, ["--scheme", "cascade", "--kappa", "0"], "--kappa must be > 0.0"),
    ({}, ["--n-jobs", "0"], "--n-jobs must be >= 1"),
    ({}, ["--reweight-rounds", "-1"], "--reweight-rounds must be >= 0"),
    ({}, ["--active-tol", "-1"], "--active-tol must be >= 0.0"),
]


@pytest.mark.parametrize(("paths", "options", "message"), BAD_USAGE, ids=lambda v: str(v)[:40])
def test_prune_bad_usage_is_one_line_exit_2_and_writes_nothing(
    capsys, files, monkeypatch, paths, options, message
):
    _bad_files(files["dir"])
    monkeypatch.chdir(files["dir"])  # relative names, as typed in a shell
    before = sorted(p.name for p in files["dir"].iterdir())
    argv = ["prune", paths.get("net", "net.npz"), "--inputs", paths.get("X", "X.npy")]
    argv += ["--out", paths.get("out", "pruned.npz"), *options]
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("nettrim prune: ")
    assert message in captured.err
    assert sorted(p.name for p in files["dir"].iterdir()) == before  # nothing written
    assert Network.load("net.npz").dims == DIMS  # the input is intact


@pytest.mark.parametrize(
    "options",
    [["--eps", "abc"], ["--solver", "cplex"], ["--scheme", "serial"], ["--n-jobs", "two"]],
)
def test_prune_malformed_arguments_exit_2(capsys, files, options):
    with pytest.raises(SystemExit) as exc:
        main(_prune(files, *options))
    assert exc.value.code == EXIT_USAGE
    assert "usage: nettrim prune" in capsys.readouterr().err
    assert not os.path.exists(files["out"])


def test_infeasible_layer_exits_1_and_keeps_the_old_output(capsys, files):
    old = b"the previous pruned network"
    with open(files["out"], "wb") as fh:
        fh.write(old)
    # kappa = 0.001 asks the last layer for a thousandth of the original weights' error on
    # the pruned input: no weights of a 6 -> 3 linear layer reach that on 60 samples
    argv = _prune(files, "--scheme", "cascade", "--kappa", "0.001", "--n-jobs", "1")
    assert main(argv) == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "layer 2" in captured.err and "raise kappa; nothing written" in captured.err
    with open(files["out"], "rb") as fh:
        assert fh.read() == old
    assert sorted(p.name for p in files["dir"].iterdir()) == ["X.npy", "net.npz", "pruned.npz"]


def test_interrupt_exits_130_and_writes_nothing(capsys, files, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nettrim.schemes, "net_trim", interrupted)
    assert main(_prune(files, "--n-jobs", "1")) == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
    assert not os.path.exists(files["out"])


def test_command_line_in_a_fresh_process(files):
    """The installed entry point (``python -m nettrim``): a run, then bad input without a
    traceback."""
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=300)
    ok = run([sys.executable, "-m", "nettrim", *_prune(files, "--n-jobs", "1")])
    assert ok.returncode == EXIT_OK, ok.stderr
    assert Network.load(files["out"]).dims == DIMS
    bad = run([sys.executable, "-m", "nettrim", "prune", files["X"], "--inputs", files["X"],
               "--out", str(files["dir"] / "x.npz")])  # fmt: skip
    assert bad.returncode == EXIT_USAGE
    assert "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
    assert "holds a single array (.npy)" in bad.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"nettrim {nettrim.__version__}"


# ---------------------------------------------------------------------------------------
# verify judges the budgets; prune refuses inexact runs


def _verify(files, *options) -> list[str]:
    return ["verify", files["net"], files["out"], "--inputs", files["X"], *options]


def test_verify_from_the_two_files_uses_the_recorded_pruning(capsys, files):
    assert main(_prune(files, "--eps", "0.2", "--n-jobs", "1")) == EXIT_OK
    capsys.readouterr()
    record = Network.load(files["out"]).metadata["pruning"]
    assert record["eps"] == [0.2, 0.2, 0.2]
    assert all(layer["feas_tol"] > 0 for layer in record["layers"])
    assert main(_verify(files)) == EXIT_OK  # the pruning's own eps, from the file
    out = capsys.readouterr().out
    assert "OK" in out.splitlines()[0]
    assert "budgets judged at feasibility tolerance 0.001 (recorded with the pruning" in out
    # a budget four times tighter than the pruning's fails, exit 1
    assert main(_verify(files, "--eps", "0.05")) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAILED" in out.splitlines()[0]
    assert "budget, layer 0: ||(Zhat - Y)_Omega||_F <= radius: realized" in out
    assert "FAILS beyond tolerance" in out


def test_verify_feas_tol_tightens_and_loosens_only_when_asked(capsys, files):
    assert main(_prune(files, "--n-jobs", "1", "--solver", "admm")) == EXIT_OK
    capsys.readouterr()
    assert main(_verify(files, "--feas-tol", "1e-12")) == EXIT_FAILED
    assert "tolerance 1e-12 (given" in capsys.readouterr().out
    assert main(_verify(files, "--feas-tol", "0.01")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "looser than the tolerance layer 0 was solved to (0.001" in err
    assert "--allow-loose-tol" in err and err.count("\n") == 1
    assert main(_verify(files, "--feas-tol", "0.01", "--allow-loose-tol")) == EXIT_OK
    assert "0.01 (given, LOOSER than the 0.001 recorded with the pruning, as asked)" in (
        capsys.readouterr().out
    )


def test_prune_warns_on_stderr_where_a_mistake_is_likely(capsys, files):
    assert main(_prune(files, "--eps", "1.5", "--n-jobs", "1")) == EXIT_OK
    err = capsys.readouterr().err
    assert "nettrim prune: warning: eps >= 1 (layer 0: 1.5" in err
    np.save(files["dir"] / "few.npy", files["inputs"][:6])
    argv = ["prune", files["net"], "--inputs", str(files["dir"] / "few.npy"), "--out"]
    assert main([*argv, files["out"], "--n-jobs", "1"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning: 6 calibration samples but layer 0 has 8, layer 1 has 12 inputs" in err


def test_an_inexact_run_exits_1_and_writes_nothing_unless_asked(capsys, files):
    argv = _prune(files, "--eps", "0", "--solver", "admm", "--max-iter", "2", "--n-jobs", "1")
    report_path = files["dir"] / "report.json"
    assert main([*argv, "--json", str(report_path)]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert "ended 'max_iter'" in captured.err and "nothing written" in captured.err
    assert "--allow-inexact" in captured.err
    assert "warning: layer 0: status 'max_iter'" in captured.err
    assert "nothing written" in captured.out
    assert sorted(p.name for p in files["dir"].iterdir()) == ["X.npy", "net.npz"]
    assert main([*argv, "--allow-inexact"]) == EXIT_OK
    assert "written as asked (--allow-inexact)" in capsys.readouterr().err
    record = Network.load(files["out"]).metadata["pruning"]
    assert {layer["status"] for layer in record["layers"]} == {"max_iter"}
    assert main(_verify(files)) == EXIT_FAILED  # its budgets are not met: verify says so


# ---------------------------------------------------------------------------------------
# networks with convolutions: NCHW inputs and activation stores


SOLVER = "clarabel"


@pytest.fixture
def cnn_files(tmp_path):
    """A small CNN file (conv + ReLU, 2x2 max-pool, flatten, linear) and NCHW inputs."""
    from nettrim.conv import conv_weight_to_dense
    from nettrim.network import Conv2dLayer, DenseLayer, FlattenLayer, MaxPool2dLayer

    rng = np.random.default_rng(0)
    conv = Conv2dLayer(
        conv_weight_to_dense(rng.standard_normal((3, 2, 3, 3))),
        0.1 * rng.standard_normal(3),
        in_shape=(2, 6, 6),
        kernel_size=3,
        padding=1,
    )
    dense = DenseLayer(rng.standard_normal((27, 4)), np.zeros(4), "linear")
    Network((conv, MaxPool2dLayer(2), FlattenLayer(), dense)).save(tmp_path / "cnn.npz")
    x = rng.standard_normal((10, 2, 6, 6))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "flat.npy", x.reshape(10, -1))
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    return {k: str(tmp_path / f"{k}.npy") for k in ("x", "flat", "nhwc")} | {
        "net": str(tmp_path / "cnn.npz"),
        "dir": tmp_path,
    }


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_prune_and_verify_a_cnn_file_on_nchw_inputs(capsys, cnn_files, scheme):
    out = str(cnn_files["dir"] / "pruned.npz")
    argv = ["prune", cnn_files["net"], "--inputs", cnn_files["x"], "--out", out]
    argv += ["--scheme", scheme, "--eps", "0.1", "--solver", SOLVER, "--n-jobs", "1", "--quiet"]
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "guarantees (nettrim verify): OK" in printed
    original, pruned = Network.load(cnn_files["net"]), Network.load(out)
    assert pruned.nnz < original.nnz and pruned.prunable == (0, 3)
    verify_argv = ["verify", cnn_files["net"], out, "--inputs", cnn_files["x"]]
    assert main(verify_argv) == EXIT_OK
    report = capsys.readouterr().out
    assert report.splitlines()[0].endswith("OK") and "Lip" in report
    assert main([*verify_argv, "--eps", "0.01"]) == EXIT_FAILED  # a tighter claim
    assert "budget, layer 0" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("flat", "takes shape (n, 2, 6, 6), NCHW images (flattened images? save "
         "X.reshape(-1, 2, 6, 6))"),
        ("nhwc", "has shape (10, 6, 6, 2) but the network's first layer (Conv2dLayer) takes "
         "shape (n, 2, 6, 6), NCHW images (NHWC? save X.transpose(0, 3, 1, 2))"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("verb", ["prune", "verify", "sweep"])
def test_cnn_inputs_of_the_wrong_shape_exit_2_naming_the_shape(
    capsys, cnn_files, inputs, message, verb
):
    net, out = cnn_files["net"], str(cnn_files["dir"] / "pruned.npz")
    argv = {
        "prune": ["prune", net, "--out", out],
        "verify": ["verify", net, net],
        "sweep": ["sweep", net, "--eps", "0.1"],
    }[verb]
    assert main([*argv, "--inputs", cnn_files[inputs]]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not os.path.exists(out)


def test_l0_methods_and_per_layer_options_of_a_cnn_file(capsys, cnn_files):
    out = str(cnn_files["dir"] / "pruned.npz")
    argv = ["prune", cnn_files["net"], "--inputs", cnn_files["x"], "--out", out]
    assert main([*argv, "--method", "admm", "--sparsity", "0.5"]) == EXIT_USAGE
    assert "--method admm prunes dense networks" in capsys.readouterr().err
    # one eps per layer with weights: the pool and the flatten have no budget
    assert main([*argv, "--eps", "0.1,0.1,0.1,0.1"]) == EXIT_USAGE
    assert "the network has 2 layers with weights (dense or conv)" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_sweep_a_cnn_file(capsys, cnn_files):
    argv = ["sweep", cnn_files["net"], "--inputs", cnn_files["x"], "--eps", "0.1,0.3"]
    assert main([*argv, "--n-jobs", "1", "--quiet"]) == EXIT_OK, capsys.readouterr().err
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if "%" in line]
    assert [float(r[0]) for r in rows] == [0.1, 0.3]
    assert float(rows[0][1].rstrip("%")) < float(rows[1][1].rstrip("%"))  # looser: sparser


def _torch_cnn():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(27, 6), nn.ReLU(), nn.Linear(6, 3),
    )  # fmt: skip
    return model, torch.randn(24, 1, 8, 8)


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_an_exported_store_as_inputs_prunes_what_the_model_runs(capsys, tmp_path, scheme):
    """export -> nettrim prune --inputs STORE -> load_pruned: the model's forward is the
    pruned Network's; the weights are the ones pruned from inputs.npy, bit for bit."""
    import torch

    from nettrim.torch import export, load_pruned

    model, x = _torch_cnn()
    path = export(model, [x[:12], x[12:]], tmp_path / "export")
    store = str(tmp_path / "export" / "store")
    common = ["--eps", "0.1", "--scheme", scheme, "--solver", SOLVER, "--n-jobs", "1", "--quiet"]
    for inputs, out in ((store, "from_store.npz"), (str(tmp_path / "export" / "inputs.npy"),
                                                       "from_npy.npz")):  # fmt: skip
        argv = ["prune", path, "--inputs", inputs, "--out", str(tmp_path / out), *common]
        assert main(argv) == EXIT_OK, capsys.readouterr().err
    capsys.readouterr()
    pruned = Network.load(tmp_path / "from_store.npz")
    from_npy = Network.load(tmp_path / "from_npy.npz")
    for l in pruned.prunable:
        np.testing.assert_array_equal(pruned[l].W, from_npy[l].W)
    assert pruned.nnz < Network.load(path).nnz
    load_pruned(model, tmp_path / "from_store.npz")
    held_out = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        expected = model(held_out).numpy()
    # float32 on both sides, the same products in another order: a few ulps of the outputs
    np.testing.assert_allclose(pruned(held_out.numpy()), expected, rtol=1e-5, atol=1e-5)
    verify_argv = ["verify", path, str(tmp_path / "from_store.npz"), "--inputs", store]
    assert main(verify_argv) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[0].endswith("OK")


def test_a_run_dir_identifies_a_store_by_what_prune_reads(capsys, tmp_path):
    """The run's identity is the manifest and the first module's inputs (what
    network_input reads), not every array of the store (gigabytes for a transformer)."""
    import json

    from nettrim.torch import export

    model, x = _torch_cnn()
    path = export(model, [x], tmp_path / "export")
    store = tmp_path / "export" / "store"
    argv = ["prune", path, "--inputs", str(store), "--out", str(tmp_path / "p.npz"), "--quiet"]
    argv += ["--eps", "0.1", "--solver", SOLVER, "--n-jobs", "1", "--run-dir", str(tmp_path / "r")]
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    modules = json.loads((store / "manifest.json").read_text())["modules"]
    last_y = store / modules[-1]["Y"]["file"]
    np.save(last_y, np.zeros_like(np.load(last_y)))  # an array prune never reads
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    first_x = store / modules[0]["X"]["file"]
    np.save(first_x, 2 * np.load(first_x))  # the network's input itself
    assert main(argv) == EXIT_USAGE
    assert "inputs: recorded" in capsys.readouterr().err
    os.remove(store / "manifest.json")
    assert main(argv) == EXIT_USAGE
    assert "the recording is unfinished" in capsys.readouterr().err
    from nettrim.store import StoreError, input_files

    with pytest.raises(StoreError, match="cannot be read as an activation store"):
        input_files(store)


def test_a_store_that_does_not_match_the_network_exits_2(capsys, tmp_path, cnn_files):
    from nettrim.torch import export

    model, x = _torch_cnn()
    export(model, [x], tmp_path / "export")
    store = str(tmp_path / "export" / "store")
    out = str(tmp_path / "pruned.npz")
    assert main(["prune", cnn_files["net"], "--inputs", store, "--out", out]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "records 3 modules but the network has 2 layers with weights" in err
    os.remove(tmp_path / "export" / "store" / "manifest.json")  # an unfinished recording
    path = str(tmp_path / "export" / "network.npz")
    assert main(["prune", path, "--inputs", store, "--out", out]) == EXIT_USAGE
    assert "the recording is unfinished" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_rows_generate_prunes_a_cnn_s_tall_convolution_by_row_generation(capsys, tmp_path):
    """--rows generate: the exported CNN's conv (864 patch rows, 29 times its reduced
    ball's) is solved by row generation, the file verifies; refused where it cannot apply."""
    from nettrim.torch import export

    model, x = _torch_cnn()
    path = export(model, [x], tmp_path / "export")
    inputs = str(tmp_path / "export" / "inputs.npy")
    out, report = str(tmp_path / "rows.npz"), tmp_path / "rows.json"
    argv = ["prune", path, "--inputs", inputs, "--out", out, "--eps", "0.1", "--quiet"]
    assert main([*argv, "--rows", "generate", "--json", str(report)]) == EXIT_OK
    layers = _strict_json(report)["layers"]
    assert layers[0]["solver"] == "admm+rows"
    assert all(layer["solver"] != "admm+rows" for layer in layers[1:])  # too short
    assert main(["verify", path, out, "--inputs", inputs]) == EXIT_OK
    capsys.readouterr()
    assert main([*argv, "--rows", "generate", "--solver", "clarabel"]) == EXIT_USAGE
    assert "--rows generate solves with the ADMM" in capsys.readouterr().err
    net, X = tmp_path / "dense.npz", tmp_path / "X.npy"
    Network.from_arrays([np.ones((4, 3))], [np.zeros(3)]).save(net)
    np.save(X, np.ones((10, 4)))
    dense = ["prune", str(net), "--inputs", str(X), "--out", str(tmp_path / "d.npz")]
    assert main([*dense, "--rows", "generate"]) == EXIT_USAGE
    assert "--rows generate applies to networks with convolutions" in capsys.readouterr().err
    assert main([*dense, "--rows", "generate", "--method", "sparsegpt"]) == EXIT_USAGE
    assert "--rows" in capsys.readouterr().err
    assert not (tmp_path / "d.npz").exists()

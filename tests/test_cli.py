"""The command line: `nettrim demo` output, exit codes, --help."""

import json

import pytest

from nettrim.cli import EXIT_OK, EXIT_USAGE, main
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
    out = capsys.readouterr().out
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


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help_exits_0(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: nettrim" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2

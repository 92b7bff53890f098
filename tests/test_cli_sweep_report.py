"""`nettrim sweep` and `nettrim report` exit 0 and write what they say."""

import base64
import json
import re

import numpy as np
import pytest

from nettrim import net_trim
from nettrim.cli import EXIT_OK, EXIT_USAGE, main
from nettrim.sweep import sweep

DIMS = (10, 16, 12, 4)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, random_network):
    folder = tmp_path_factory.mktemp("sweep")
    network, X = random_network(DIMS, seed=7, n=100)
    network.save(folder / "net.npz")
    np.save(folder / "X.npy", X)
    labels = np.argmax(network(X), axis=1)  # the unpruned network is right on every sample
    np.save(folder / "y.npy", labels)
    return folder, network, X, labels


def test_sweep_eps_table_and_json(files, capsys):
    folder, network, X, _ = files
    args = ["sweep", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--quiet"]
    args += ["--eps", "0.02,0.1,0.3", "--labels", str(folder / "y.npy"), "--n-jobs", "1"]
    assert main([*args, "--json", str(folder / "sweep.json")]) == EXIT_OK
    out = capsys.readouterr().out
    document = json.loads((folder / "sweep.json").read_text())
    points = document["points"]
    assert [p["value"] for p in points] == [0.02, 0.1, 0.3]
    assert document["accuracy_before"] == 1.0
    sparsities = [p["sparsity"] for p in points]
    assert sparsities == sorted(sparsities) and sparsities[0] > 0  # looser eps, sparser
    # each point is the pruning net_trim gives at that eps (the warm start changes no bits
    # beyond the solver's tolerance; the counts agree here)
    alone = net_trim(network, X, eps=0.1, n_jobs=1)
    assert abs(points[1]["nnz"] - alone.network.nnz) <= 0.02 * network.size
    assert all(0.0 <= p["accuracy"] <= 1.0 for p in points)
    assert "sparsity" in out and "accuracy" in out and len(out.splitlines()) == 3 + 3


def test_sweep_l0_and_api(files, capsys):
    folder, network, X, labels = files
    args = ["sweep", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--quiet"]
    assert main([*args, "--method", "magnitude", "--sparsity", "0.25,0.5,0.75"]) == EXIT_OK
    result = sweep(network, X, [0.25, 0.5, 0.75], method="magnitude", labels=labels)
    assert [round(p.sparsity, 2) for p in result.points] == [0.25, 0.5, 0.75]
    discrepancies = [p.discrepancy for p in result.points]
    assert discrepancies == sorted(discrepancies)
    assert f"{discrepancies[1]:.4g}" in capsys.readouterr().out
    assert main([*args, "--method", "magnitude", "--eps", "0.1"]) == EXIT_USAGE
    assert main([*args, "--labels", str(folder / "X.npy"), "--eps", "0.1"]) == EXIT_USAGE
    assert "--labels must be integer classes" in capsys.readouterr().err


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_of_prune_and_sweep(files, capsys, tmp_path):
    folder, _, _, _ = files
    args = ["prune", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--quiet"]
    args += ["--out", str(tmp_path / "p.npz"), "--scheme", "cascade", "--n-jobs", "1"]
    assert main([*args, "--json", str(tmp_path / "prune.json")]) == EXIT_OK
    assert main(["report", str(tmp_path / "prune.json"), "--out", str(tmp_path / "r")]) == EXIT_OK
    printed = capsys.readouterr().out
    for name in ("layers.png", "bounds.png", "gap.png", "index.html"):
        assert f"wrote {tmp_path / 'r' / name}" in printed
    page = (tmp_path / "r" / "index.html").read_text()
    images = _images(page)
    assert images == [
        (tmp_path / "r" / n).read_bytes() for n in ("layers.png", "bounds.png", "gap.png")
    ]
    assert all(image.startswith(PNG) for image in images)
    assert "http://" not in page and "https://" not in page  # nothing fetched: self-contained
    assert "<td>64x128</td>" not in page and "<td>10x16</td>" in page
    sweep_json = tmp_path / "sweep.json"
    sweep_args = ["sweep", str(folder / "net.npz"), "--inputs", str(folder / "X.npy"), "--quiet"]
    sweep_args += ["--eps", "0.05,0.2", "--json", str(sweep_json), "--n-jobs", "1"]
    assert main(sweep_args) == EXIT_OK
    assert main(["report", str(sweep_json), "--out", str(tmp_path / "s")]) == EXIT_OK
    assert (tmp_path / "s" / "sweep.png").read_bytes().startswith(PNG)
    assert len(_images((tmp_path / "s" / "index.html").read_text())) == 1


def test_report_refuses_other_json(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"command": "verify"}))
    assert main(["report", str(path), "--out", str(tmp_path / "r")]) == EXIT_USAGE
    assert "neither a prune report" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()

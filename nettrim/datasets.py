"""The model bundled with nettrim: a ReLU MLP trained on scikit-learn's digits."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from .network import Network

#: The images are stored as 0..16 pixel intensities; the network sees them divided by this.
DIGITS_PIXEL_MAX = 16.0
_DIGITS_FILE = "digits_mlp.npz"


@dataclass(frozen=True)
class BundledModel:
    """A trained network with its calibration (= training) and held-out test splits."""

    network: Network
    X_calib: np.ndarray
    y_calib: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str


def load_digits_mlp() -> BundledModel:
    """The 64-128-128-10 ReLU MLP on 8x8 digits (1257 calibration, 540 test images).

    Trained by ``python -m nettrim.data.train_digits_mlp``; nothing is downloaded or
    trained at run time. Inputs are scaled to ``[0, 1]``.
    """
    path = resources.files("nettrim.data").joinpath(_DIGITS_FILE)
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    n_layers = sum(1 for key in arrays if key.startswith("W"))
    network = Network.from_arrays(
        [arrays[f"W{i}"] for i in range(n_layers)], [arrays[f"b{i}"] for i in range(n_layers)]
    )
    return BundledModel(
        network=network,
        X_calib=arrays["X_calib"].astype(np.float64) / DIGITS_PIXEL_MAX,
        y_calib=arrays["y_calib"],
        X_test=arrays["X_test"].astype(np.float64) / DIGITS_PIXEL_MAX,
        y_test=arrays["y_test"],
        name="digits-mlp-64-128-128-10",
    )

"""The bundled digits MLP: loads without pickle, has the documented shapes, is accurate."""

from importlib import resources

import numpy as np

from nettrim import BundledModel, load_digits_mlp


def test_bundle_is_plain_arrays():
    # np.load with allow_pickle=False raises on any object array: the file is pickle-free.
    path = resources.files("nettrim.data").joinpath("digits_mlp.npz")
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    assert all(a.dtype != object for a in arrays.values())
    assert {"W0", "b0", "W1", "b1", "W2", "b2", "X_calib", "y_calib", "X_test", "y_test"} <= set(
        arrays
    )


def test_shapes_and_splits():
    model = load_digits_mlp()
    assert isinstance(model, BundledModel)
    net = model.network
    assert [layer.shape for layer in net.layers] == [(64, 128), (128, 128), (128, 10)]
    assert [layer.b.shape for layer in net.layers] == [(128,), (128,), (10,)]
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "linear"]
    assert model.X_calib.shape == (1257, 64) and model.y_calib.shape == (1257,)
    assert model.X_test.shape == (540, 64) and model.y_test.shape == (540,)
    assert model.X_calib.dtype == np.float64
    # pixels are scaled from 0..16 to [0, 1]
    assert model.X_calib.min() >= 0.0 and model.X_calib.max() <= 1.0
    assert model.X_calib.max() == 1.0
    assert set(np.unique(model.y_test)) == set(range(10))
    assert model.name == "digits-mlp-64-128-128-10"


def test_test_accuracy():
    model = load_digits_mlp()
    assert model.network.accuracy(model.X_test, model.y_test) > 0.95
    assert model.network.accuracy(model.X_calib, model.y_calib) > 0.95

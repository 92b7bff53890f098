"""Re-create ``digits_mlp.npz``: a 64-128-128-10 ReLU MLP trained on scikit-learn's digits.

Run ``python -m nettrim.data.train_digits_mlp`` (needs scikit-learn, the ``dev`` extra).
The script is deterministic: the split, the initialization and the optimizer are seeded.
Nothing in nettrim imports it; the package only reads the ``.npz`` it writes.

Stored arrays (samples are rows, ``W`` is ``(d_in, d_out)``):

``W0, b0, W1, b1, W2, b2``
    float64 weights and biases of the three dense layers (ReLU, ReLU, linear).
``X_calib, y_calib`` / ``X_test, y_test``
    the 8x8 images as uint8 pixel intensities 0..16 (the model sees ``X / 16``) and labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
HIDDEN = (128, 128)
N_TEST = 540  # leaves 1257 calibration (= training) samples of the 1797
PIXEL_MAX = 16.0


def main(out: Path | None = None) -> Path:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    images = digits.data.astype(np.uint8)
    labels = digits.target.astype(np.int64)
    X_calib, X_test, y_calib, y_test = train_test_split(
        images, labels, test_size=N_TEST, stratify=labels, random_state=SEED
    )
    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        alpha=1e-3,
        max_iter=600,
        random_state=SEED,
    )
    model.fit(X_calib / PIXEL_MAX, y_calib)
    accuracy = model.score(X_test / PIXEL_MAX, y_test)
    arrays = {}
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        arrays[f"W{i}"] = W.astype(np.float64)
        arrays[f"b{i}"] = b.astype(np.float64)
    out = Path(out) if out is not None else Path(__file__).with_name("digits_mlp.npz")
    np.savez_compressed(
        out, X_calib=X_calib, y_calib=y_calib, X_test=X_test, y_test=y_test, **arrays
    )
    print(f"wrote {out}: test accuracy {accuracy:.4f}")
    return out


if __name__ == "__main__":
    main()

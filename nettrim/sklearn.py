"""scikit-learn's multi-layer perceptrons to :class:`~nettrim.Network` and back.

``MLPClassifier`` and ``MLPRegressor`` store ``coefs_[l]`` of shape ``(d_in, d_out)`` and
``intercepts_[l]``: nettrim's own layout, so the weights move over as they are. The hidden
activation must be ``"relu"`` or ``"identity"`` (nettrim's ``"relu"`` / ``"linear"``).

The output activation is not a layer of the network: the :class:`~nettrim.Network` holds
the last layer's pre-activation, and the estimator applies its ``out_activation_`` on top:

* ``"identity"`` (``MLPRegressor``): the network's output is the prediction;
* ``"softmax"`` (``MLPClassifier``, three or more classes): the network's output is the
  logits; ``classes_[network.predict(X)]`` is the estimator's ``predict(X)`` and
  ``softmax(network(X))`` its ``predict_proba(X)``;
* ``"logistic"`` (``MLPClassifier``, two classes, one output; or multilabel): the output is
  the logit of the positive class per column; the estimator predicts ``classes_[1]`` where
  it is positive. ``Network.predict`` (an arg-max over columns) does *not* apply to a
  one-column output;
* ``"exp"`` (``MLPRegressor(loss="poisson")``): the prediction is ``exp`` of the output
  (:func:`to_sklearn` builds identity-output regressors only).

Pruning with nettrim keeps the logits close (Net-Trim's budgets are on the outputs before
the output activation), and :func:`to_sklearn` puts the pruned weights back into a fitted
estimator that predicts with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .network import Network, _dense

_FROM_SKLEARN = {"relu": "relu", "identity": "linear"}
_TO_SKLEARN = {"relu": "relu", "linear": "identity"}


def from_sklearn(model) -> Network:
    """The :class:`~nettrim.Network` of a fitted ``MLPClassifier`` / ``MLPRegressor``:
    hidden layers with the model's activation, a linear last layer (the output activation
    is left out; see the module docstring).

    Raises
    ------
    TypeError
        When ``model`` is no scikit-learn MLP.
    ValueError
        When it is not fitted, or its hidden activation is ``"tanh"`` or ``"logistic"``.
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if not isinstance(model, MLPClassifier | MLPRegressor):
        raise TypeError(
            f"model must be a scikit-learn MLPClassifier or MLPRegressor, got "
            f"{type(model).__name__}"
        )
    if not hasattr(model, "coefs_"):
        raise ValueError("model is not fitted (no coefs_); call model.fit(X, y) first")
    if model.activation not in _FROM_SKLEARN:
        raise ValueError(
            f"model.activation is {model.activation!r}; nettrim's networks have ReLU or "
            f"linear layers, so only {sorted(_FROM_SKLEARN)} convert"
        )
    n_layers = len(model.coefs_)
    activations = [_FROM_SKLEARN[model.activation]] * (n_layers - 1) + ["linear"]
    return Network.from_arrays(
        [np.array(W) for W in model.coefs_], [np.array(b) for b in model.intercepts_], activations
    )


def to_sklearn(network: Network, *, classes: Sequence | None = None):
    """A fitted scikit-learn MLP computing ``network`` (weights copied, dense).

    Parameters
    ----------
    network : Network
        Hidden layers all ReLU or all linear; the last layer linear (the pre-activation).
    classes : sequence, optional
        The class labels: given, an ``MLPClassifier`` (two classes with one output:
        logistic; ``len(classes)`` outputs, three or more: softmax); omitted, an
        ``MLPRegressor``.

    Returns
    -------
    MLPClassifier or MLPRegressor
        Predicts like the model :func:`from_sklearn` took the network from (scikit-learn's
        fitted attributes, private ``_label_binarizer`` included, are set; a model for
        prediction, not for ``partial_fit``).

    Raises
    ------
    ValueError
        For activations scikit-learn cannot express, or classes that do not match the
        output width.
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import LabelBinarizer

    if not isinstance(network, Network) or not len(network):
        raise TypeError("network must be a nettrim.Network with at least one layer")
    hidden = set(network.activations[:-1])
    if network.activations[-1] != "linear" or len(hidden) > 1:
        raise ValueError(
            f"network has activations {list(network.activations)}; scikit-learn needs one "
            "activation for every hidden layer and a linear last layer (the pre-activation)"
        )
    activation = _TO_SKLEARN[hidden.pop()] if hidden else "relu"
    d_out = network.dims[-1]
    sizes = tuple(network.dims[1:-1])
    if classes is None:
        model, out_activation = (
            MLPRegressor(hidden_layer_sizes=sizes, activation=activation),
            ("identity"),
        )
    else:
        classes = np.asarray(classes)
        if len(np.unique(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(f"classes must be at least two distinct labels, got {classes!r}")
        if len(classes) == 2 and d_out == 1:
            out_activation = "logistic"
        elif len(classes) == d_out > 2:
            out_activation = "softmax"
        else:
            raise ValueError(
                f"network has {d_out} outputs for {len(classes)} classes; a classifier has "
                "one output for two classes, one per class for three or more"
            )
        model = MLPClassifier(hidden_layer_sizes=sizes, activation=activation)
        model.classes_ = classes
        model._label_binarizer = LabelBinarizer().fit(classes)
    model.coefs_ = [np.array(_dense(layer.W)) for layer in network.layers]
    model.intercepts_ = [
        np.zeros(layer.shape[1], dtype=np.asarray(_dense(layer.W)).dtype)
        if layer.b is None
        else np.array(layer.b)
        for layer in network.layers
    ]
    model.n_layers_ = len(network) + 1
    model.n_outputs_ = d_out
    model.out_activation_ = out_activation
    model.n_features_in_ = network.dims[0]
    model.n_iter_ = model.t_ = 0
    return model

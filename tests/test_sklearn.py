"""scikit-learn MLPs to networks and back: the predictions do not change."""

import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from nettrim import Network, net_trim
from nettrim.sklearn import from_sklearn, to_sklearn

RNG = np.random.default_rng(5)
X = RNG.standard_normal((90, 6))


def fitted(model, y):
    """A few iterations on 90 samples: milliseconds; the weights need not be good."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def classifier(n_classes, activation="relu"):
    y = np.array(["ant", "bee", "cat", "dog"])[:n_classes][RNG.integers(0, n_classes, 90)]
    return fitted(
        MLPClassifier(
            hidden_layer_sizes=(7, 5), activation=activation, max_iter=30, random_state=0
        ),
        y,
    )


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_multiclass_classifier_logits_give_its_labels_and_probabilities(activation):
    model = classifier(4, activation)
    net = from_sklearn(model)
    assert net.dims == (6, 7, 5, 4)
    assert net.activations == (("relu",) if activation == "relu" else ("linear",)) * 2 + ("linear",)
    np.testing.assert_array_equal(model.classes_[net.predict(X)], model.predict(X))
    np.testing.assert_allclose(softmax(net(X), axis=1), model.predict_proba(X), rtol=1e-12)


def test_binary_classifier_is_one_logit():
    model = classifier(2)
    logit = from_sklearn(model)(X)
    assert logit.shape == (90, 1)
    np.testing.assert_array_equal(model.classes_[(logit[:, 0] > 0).astype(int)], model.predict(X))
    np.testing.assert_allclose(expit(logit[:, 0]), model.predict_proba(X)[:, 1], rtol=1e-12)


@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor_output_is_the_prediction(n_targets):
    y = X[:, :n_targets] @ RNG.standard_normal((n_targets, n_targets)) + 0.1
    model = fitted(MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0), y.squeeze())
    out = from_sklearn(model)(X)
    np.testing.assert_allclose(out.squeeze(), model.predict(X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_round_trip_predicts_identically(n_classes):
    model = classifier(n_classes)
    back = to_sklearn(from_sklearn(model), classes=model.classes_)
    assert isinstance(back, MLPClassifier) and back.out_activation_ == model.out_activation_
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_regressor_round_trip_and_a_bias_free_layer():
    y = X[:, 0] - 2 * X[:, 1]
    model = fitted(MLPRegressor(hidden_layer_sizes=(5,), max_iter=30, random_state=0), y)
    back = to_sklearn(from_sklearn(model))
    assert isinstance(back, MLPRegressor)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    net = Network.from_arrays(
        [RNG.standard_normal((6, 4)), RNG.standard_normal((4, 1))], [None, None]
    )
    np.testing.assert_allclose(to_sklearn(net).predict(X), net(X)[:, 0], rtol=1e-12)


def test_a_pruned_network_goes_back_into_scikit_learn():
    model = classifier(4)
    result = net_trim(from_sklearn(model), X, eps=0.1, n_jobs=1)
    pruned = to_sklearn(result.network, classes=model.classes_)
    assert sum(np.count_nonzero(W) for W in pruned.coefs_) == result.nnz
    np.testing.assert_array_equal(pruned.predict(X), model.classes_[result.network.predict(X)])


def test_what_does_not_convert_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model\.activation is 'tanh'"):
        from_sklearn(classifier(3, "tanh"))
    with pytest.raises(ValueError, match="not fitted"):
        from_sklearn(MLPClassifier())
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor"):
        from_sklearn(object())
    net = from_sklearn(classifier(4))
    with pytest.raises(ValueError, match="4 outputs for 3 classes"):
        to_sklearn(net, classes=["a", "b", "c"])
    relu_last = Network.from_arrays([np.ones((6, 2))], [None], ["relu"])
    with pytest.raises(ValueError, match="linear last layer"):
        to_sklearn(relu_last)

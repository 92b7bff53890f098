"""Every misuse of trim_layer is an exception whose message names the argument."""

import re

import numpy as np
import pytest

from nettrim import trim_layer

RNG = np.random.default_rng(0)
X = RNG.standard_normal((20, 3))
Y = np.maximum(X @ RNG.standard_normal((3, 2)), 0.0)


def test_row_mismatch_names_both_arrays_and_shapes():
    message = re.escape("Y has 19 rows (shape (19, 2)) but X has 20 rows (shape (20, 3))")
    with pytest.raises(ValueError, match=message):
        trim_layer(X, Y[:19])


@pytest.mark.parametrize("bad", [X[:, 0], X[None]], ids=["1-D", "3-D"])
def test_x_must_be_2d(bad):
    with pytest.raises(ValueError, match=r"X must be 2-D .* got shape"):
        trim_layer(bad, Y)


def test_y_must_be_2d():
    with pytest.raises(ValueError, match=r"Y must be 2-D .* got shape \(20,\)"):
        trim_layer(X, Y[:, 0])


def test_empty_input():
    with pytest.raises(ValueError, match=r"X must not be empty"):
        trim_layer(X[:0], Y[:0])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["X", "Y"])
def test_non_finite_values(name, value):
    arrays = {"X": X.copy(), "Y": Y.copy()}
    arrays[name][3, 1] = value
    with pytest.raises(ValueError, match=rf"{name} contains 1 NaN or infinite value"):
        trim_layer(arrays["X"], arrays["Y"])


@pytest.mark.parametrize(
    ("bad", "error", "pattern"),
    [
        ("abc", TypeError, "X must hold numbers"),
        ([[1.0, 2.0], [3.0]], TypeError, "X must be array-like"),
        (np.array([[object()]] * 20), TypeError, "X must hold numbers"),
        (X.astype(complex), TypeError, "X must be real"),
    ],
    ids=["string", "ragged", "object", "complex"],
)
def test_non_numeric_x(bad, error, pattern):
    with pytest.raises(error, match=pattern):
        trim_layer(bad, Y)


def test_non_numeric_y():
    with pytest.raises(TypeError, match="Y must hold numbers"):
        trim_layer(X, Y.astype(str))


@pytest.mark.parametrize(
    ("eps", "error", "pattern"),
    [
        (-0.1, ValueError, r"eps must be >= 0"),
        (np.nan, ValueError, r"eps must be finite"),
        ("0.1", TypeError, r"eps must be a real number"),
    ],
)
def test_bad_scalar_eps(eps, error, pattern):
    with pytest.raises(error, match=pattern):
        trim_layer(X, Y, eps=eps)


def test_eps_array_needs_per_neuron():
    with pytest.raises(ValueError, match=r"eps has shape \(2,\).*per_neuron=True"):
        trim_layer(X, Y, eps=np.array([0.1, 0.2]))


def test_eps_wrong_shape():
    with pytest.raises(ValueError, match=r"eps has shape \(3,\) but Y has 2 columns"):
        trim_layer(X, Y, eps=np.full(3, 0.1), per_neuron=True)


def test_eps_negative_column():
    with pytest.raises(ValueError, match=r"eps must be finite and >= 0"):
        trim_layer(X, Y, eps=np.array([0.1, -0.1]), per_neuron=True)


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'tanh'"):
        trim_layer(X, Y, activation="tanh")


def test_unknown_solver():
    with pytest.raises(ValueError, match=r"solver must be one of .*got 'mosek'"):
        trim_layer(X, Y, solver="mosek")


def test_osqp_needs_the_penalized_program():
    with pytest.raises(ValueError, match=r"osqp.*penalty"):
        trim_layer(X, Y, solver="osqp")


@pytest.mark.parametrize("penalty", [0.0, -1.0])
def test_penalty_must_be_positive(penalty):
    with pytest.raises(ValueError, match=r"penalty must be > 0"):
        trim_layer(X, Y, penalty=penalty)


def test_negative_y_with_relu():
    Z = Y.copy()
    Z[0, 0] = -0.5
    with pytest.raises(ValueError, match=r"Y has 1 negative entries .*activation='relu'"):
        trim_layer(X, Z)


def test_upper_only_for_relu():
    with pytest.raises(ValueError, match=r"upper .*activation='relu'"):
        trim_layer(X, Y, activation="linear", upper=np.zeros_like(Y))


def test_upper_wrong_shape():
    with pytest.raises(ValueError, match=r"upper has shape \(5,\).*\(20, 2\)"):
        trim_layer(X, Y, upper=np.zeros(5))


@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_upper_nan_or_minus_inf(value):
    upper = np.zeros_like(Y)
    upper[2, 1] = value
    with pytest.raises(ValueError, match=r"upper must not contain NaN"):
        trim_layer(X, Y, upper=upper)


def test_active_tol_negative():
    with pytest.raises(ValueError, match=r"active_tol must be >= 0"):
        trim_layer(X, Y, active_tol=-1e-6)


def test_max_iter_zero():
    with pytest.raises(ValueError, match=r"max_iter must be >= 1, got 0"):
        trim_layer(X, Y, max_iter=0)


def test_max_iter_not_integer():
    with pytest.raises(TypeError, match=r"max_iter must be an integer"):
        trim_layer(X, Y, max_iter=2.5)


def test_tol_must_be_positive():
    with pytest.raises(ValueError, match=r"tol must be > 0"):
        trim_layer(X, Y, tol=0.0)


def test_options_after_the_data_are_keyword_only():
    with pytest.raises(TypeError):
        trim_layer(X, Y, "relu")


def test_upper_not_numeric_names_upper():
    X = np.ones((4, 2))
    Y = np.ones((4, 1))
    with pytest.raises(TypeError, match="upper"):
        trim_layer(X, Y, upper="abc")


def test_zero_dim_array_eps_is_a_scalar():
    from nettrim.validation import check_scalar

    assert check_scalar("eps", np.array(0.1), low=0.0) == 0.1

"""Valid layers at extreme scales: the same answer as the well-scaled program.

Scaling ``X`` and ``Y`` by ``c`` maps (P1)/(P2) to the well-scaled program with the bias row's
L1 weight multiplied by ``c`` (``nettrim.layer.Scaling``). The references are Clarabel on that
well-scaled program: for ``c -> 0`` the bias weight vanishes (the unpenalized-bias program, to
a relative ``c`` in the objective); for large ``c`` the L1 penalty on the bias is exact (beyond
a finite weight the optimum has ``b = 0``), so the reference is the program without a bias.
Each result is also checked by Proposition 1 on the data as given.
"""

import warnings

import numpy as np
import pytest

from nettrim import trim_layer
from nettrim.layer import SAFE_EXPONENT, safe_exponent
from nettrim.solvers import AdmmSettings, solve_exact

EPS = 0.1
#: The ADMM's "optimal": the ball met to a relative ``feas_tol``.
FEAS_TOL = AdmmSettings().feas_tol
N, D_IN, D_OUT = 120, 15, 4


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D_IN))
    W = rng.standard_normal((D_IN, D_OUT)) * (rng.random((D_IN, D_OUT)) < 0.4)
    return X, np.maximum(X @ W + 0.3, 0.0), X @ W - 0.2


@pytest.fixture(scope="module")
def reference(layer_program):
    """Clarabel's optimal objective on a well-scaled program."""

    def solve(X, Y, activation="relu", **program):
        problem = layer_program(X, Y, activation=activation, eps=EPS, **program)
        result = solve_exact(problem, solver="clarabel")
        assert result.status.value == "optimal"
        return result.info.objective

    return solve


def _solve(X, Y, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, underflow or invalid-value warning
        return trim_layer(X, Y, eps=EPS, solver="admm", **options)


def _check_proposition_1(result, X, Y, activation="relu"):
    """``||Y - act(X W + b)||_F <= eps ||Y||_F`` measured in float64 on the given data."""
    Z = X.astype(np.float64) @ result.W.astype(np.float64)
    if result.b is not None:
        Z = Z + result.b
    out = np.maximum(Z, 0.0) if activation == "relu" else Z
    Y = Y.astype(np.float64)
    assert np.linalg.norm(out - Y) <= EPS * np.linalg.norm(Y) * (1 + FEAS_TOL)


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (np.float64, 1e-150),
        (np.float64, 1e-60),
        (np.float64, 1e60),
        (np.float64, 1e150),
        (np.float32, 1e-37),  # max |X| near float32's smallest normal number
        (np.float32, 1e37),  # and near its largest
    ],
)
def test_relu_layer_at_extreme_scale_matches_the_well_scaled_program(
    layer, reference, dtype, scale
):
    X0, Y0, _ = layer
    X, Y = (scale * X0).astype(dtype), (scale * Y0).astype(dtype)
    result = _solve(X, Y)
    assert result.success and result.W.dtype == dtype
    assert result.info.extra["scaling"] != (0, 0)
    if scale < 1:
        reference = reference(X0, Y0, penalize_bias=False)
    else:
        reference = reference(X0, Y0, bias=False)
        assert np.all(result.b == 0)
    objective = float(np.abs(result.W.astype(np.float64)).sum() + np.abs(result.b).sum())
    assert objective == pytest.approx(reference, rel=2e-3)
    assert result.info.objective == pytest.approx(objective, rel=1e-5)  # figures mapped back
    assert result.info.residual <= result.info.radius * (1 + FEAS_TOL)
    _check_proposition_1(result, X, Y)


def test_inputs_and_outputs_at_different_extreme_scales(layer, reference):
    """``X * 1e150`` and ``Y`` as given: ``W = W0 / 1e150`` and the bias weight is 1e150."""
    X0, Y0, _ = layer
    result = _solve(X0 * 1e150, Y0)
    assert result.success
    assert np.all(result.b == 0)
    assert np.abs(result.W).sum() * 1e150 == pytest.approx(reference(X0, Y0, bias=False), rel=2e-3)
    _check_proposition_1(result, X0 * 1e150, Y0)


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_scale_invariant_programs_at_extreme_scale(layer, reference, scale):
    """Without a penalized bias the program is scale-invariant: so is the answer."""
    X0, _, Z0 = layer
    linear = _solve(X0 * scale, Z0 * scale, activation="linear", bias=False)
    assert linear.success
    assert np.abs(linear.W).sum() == pytest.approx(
        reference(X0, Z0, activation="linear", bias=False), rel=2e-3
    )
    _check_proposition_1(linear, X0 * scale, Z0 * scale, activation="linear")


def test_absolute_eps_and_warm_start_at_extreme_scale(layer):
    X0, Y0, _ = layer
    scale = 1e120
    X, Y = X0 * scale, Y0 * scale
    relative = _solve(X, Y)
    radius = EPS * float(np.linalg.norm(Y0)) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        given = trim_layer(X, Y, eps=radius, relative=False, solver="admm")
        warm = trim_layer(X, Y, eps=EPS, solver="admm", warm_start=relative)
    assert given.success and warm.success
    for result in (given, warm):
        assert np.abs(result.W).sum() == pytest.approx(np.abs(relative.W).sum(), rel=2e-3)
        _check_proposition_1(result, X, Y)
    # the warm start's own effect, apart from the active-set finish (which may end either
    # solve at a check the other one does not try it at)
    plain = {"active_set": False}
    cold = _solve(X, Y, solver_options=plain)
    warm = trim_layer(X, Y, eps=EPS, solver="admm", warm_start=cold, solver_options=plain)
    assert warm.info.iterations <= cold.info.iterations


def test_powers_of_two_outside_the_window_give_the_same_bits(layer):
    """Without a bias the program is scale-invariant, and ``2^300 X`` and ``2^-300 X`` are
    both solved as the same rescaled program: the same weights, bit for bit."""
    X0, Y0, _ = layer
    up = _solve(np.ldexp(X0, 300), np.ldexp(Y0, 300), bias=False)
    down = _solve(np.ldexp(X0, -300), np.ldexp(Y0, -300), bias=False)
    assert up.success
    np.testing.assert_array_equal(up.W, down.W)


def test_well_scaled_arrays_are_solved_as_given():
    inside = np.array([[np.ldexp(1.0, SAFE_EXPONENT)], [np.ldexp(1.0, -SAFE_EXPONENT)]])
    assert safe_exponent(inside) == 0
    assert safe_exponent(np.zeros((3, 2))) == 0
    assert safe_exponent(np.array([[np.ldexp(0.75, SAFE_EXPONENT + 1)]])) == -(SAFE_EXPONENT + 1)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5))
    result = trim_layer(X, np.maximum(X[:, :2], 0), eps=EPS, solver="admm")
    assert "scaling" not in result.info.extra

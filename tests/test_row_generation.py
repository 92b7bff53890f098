"""Row generation against the program on all rows (an exact solver as the reference)."""

import numpy as np
import pytest

from nettrim import trim_layer
from nettrim.conv import im2col
from nettrim.layer import build_problem
from nettrim.solvers.row_generation import reduce_ball, solve_row_generation
from nettrim.stages import trim_layer_rows


def conv_program(seed=0):
    rng = np.random.default_rng(seed)
    P = im2col(rng.standard_normal((30, 3, 10, 10)), 3)  # 1920 patch rows, 27 inputs
    W = rng.standard_normal((27, 5)) * (rng.random((27, 5)) < 0.5)
    return P, P @ W + 0.3 * rng.standard_normal(5)


def test_reduced_ball_equals_the_residual_on_omega_for_any_weights():
    P, Z = conv_program()
    Y = np.maximum(Z, 0)
    problem = build_problem(
        P, Y, activation="relu", eps=0.1, relative=True, per_neuron=False, bias=True,
        penalize_bias=True, upper=None, penalty=None, active_tol=0.0,
    )  # fmt: skip
    A, t, r = reduce_ball(problem)
    rng = np.random.default_rng(1)
    for _ in range(3):
        W = rng.standard_normal((28, 5))
        reduced = sum(np.sum((a @ W[:, j] - t[j]) ** 2) + r[j] for j, a in enumerate(A))
        full = problem.column_residuals(W) ** 2
        assert reduced == pytest.approx(full.sum(), rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_row_generation_is_feasible_on_every_row_and_as_sparse(activation):
    P, Z = conv_program()
    Y = np.maximum(Z, 0) if activation == "relu" else Z
    exact = trim_layer(P, Y, activation=activation, eps=0.05, solver="clarabel")
    rows = trim_layer_rows(P, Y, activation=activation, eps=0.05, relative=True, bias=True)
    assert rows.status == "optimal" and exact.status == "optimal"
    # measured on the full program: inside the ball (ADMM tolerance), V = 0 kept off Omega
    assert rows.info.residual <= rows.info.radius * (1 + 1e-3)
    assert rows.info.violation <= 1e-3 * np.abs(Y).max()
    assert rows.info.objective == pytest.approx(exact.info.objective, rel=5e-3)
    if activation == "relu":
        assert 0 < rows.info.extra["rows"] < len(P)  # generated: a fraction of the rows


def test_a_radius_below_the_least_squares_residual_is_infeasible():
    P, Z = conv_program()
    Y = Z + np.random.default_rng(2).standard_normal(Z.shape)  # noise no weights explain
    problem = build_problem(
        P, Y, activation="linear", eps=1e-3, relative=True, per_neuron=False, bias=True,
        penalize_bias=True, upper=None, penalty=None, active_tol=0.0,
    )  # fmt: skip
    assert solve_row_generation(problem).status == "infeasible"

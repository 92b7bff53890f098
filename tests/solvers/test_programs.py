"""The program variants: what each asks of the residual, checked against first principles."""

import numpy as np
import pytest

from nettrim.solvers import NetTrimProblem
from nettrim.solvers.programs import ColumnBalls, LayerBall, Penalty, program_of

RNG = np.random.default_rng(0)


def test_problem_selects_its_variant():
    X, Y = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 2))
    w = np.ones(3)
    layer = NetTrimProblem(X=X, Y=Y, active=None, upper=None, radius=0.5, l1_weights=w)
    cols = NetTrimProblem(
        X=X, Y=Y, active=None, upper=None, radius=np.array([0.1, 0.2]), l1_weights=w
    )
    pen = NetTrimProblem(X=X, Y=Y, active=None, upper=None, radius=0.0, l1_weights=w, penalty=3.0)
    assert isinstance(layer.program, LayerBall) and not layer.program.separable
    assert isinstance(cols.program, ColumnBalls) and cols.program.separable
    assert isinstance(pen.program, Penalty) and pen.program.separable
    assert pen.program.kind == "penalized" and layer.program.kind == "constrained"
    # per-neuron balls, and only they, report per column
    assert cols.program.per_column and not layer.program.per_column
    assert not pen.program.per_column
    # the variant follows the fields through the solvers' transformations
    assert isinstance(cols.columns([1]).program, ColumnBalls)
    assert cols.columns([1]).program.radius.tolist() == [0.2]
    with pytest.raises(ValueError, match="separable"):
        layer.columns([0])


@pytest.mark.parametrize("variant", ["layer", "columns"])
def test_projection_lands_on_the_ball(variant):
    """The factor the ADMM applies to the residual on Omega is the Euclidean projection."""
    R = RNG.standard_normal((20, 4)) * np.array([0.1, 1.0, 2.0, 5.0])
    column_sq = np.einsum("ij,ij->j", R, R)
    if variant == "layer":
        program = LayerBall(3.0)
        P = R * program.projection_scale(column_sq, np.ones(4), np.ones(4))
        assert np.linalg.norm(P) == pytest.approx(3.0)
    else:
        radii = np.array([1.0, 1.0, 1.0, 1.0])
        program = ColumnBalls(radii)
        P = R * program.projection_scale(column_sq, np.ones(4), np.ones(4))
        norms = np.linalg.norm(P, axis=0)
        inside = np.sqrt(column_sq) <= radii
        np.testing.assert_allclose(norms[~inside], radii[~inside])
        np.testing.assert_array_equal(P[:, inside], R[:, inside])


def test_penalty_prox_minimizes_its_objective():
    """(P3)'s factor is the prox of lam/2 ||.||^2 against rho/2 ||. - v||^2 (beta = 1)."""
    lam, rho = 4.0, 1.5
    factor = Penalty(lam).projection_scale(np.ones(1), np.array([rho]), np.ones(1))[0]
    grid = np.linspace(-1, 2, 30001)  # minimize lam/2 t^2 + rho/2 (t - 1)^2
    best = grid[np.argmin(0.5 * lam * grid**2 + 0.5 * rho * (grid - 1.0) ** 2)]
    assert factor == pytest.approx(best, abs=1e-4)


def test_dual_terms_are_conjugates():
    """The ball's term is its support function, the penalty's the conjugate of lam/2 ||.||^2."""
    L = RNG.standard_normal((5, 3))
    assert LayerBall(2.0).dual_term(L) == pytest.approx(2.0 * np.linalg.norm(L))
    radii = np.array([0.5, 1.0, 2.0])
    assert ColumnBalls(radii).dual_term(L) == pytest.approx(radii @ np.linalg.norm(L, axis=0))
    # sup_R <L, R> - lam/2 ||R||^2 = ||L||^2 / (2 lam), reached at R = L / lam
    lam = 3.0
    value = np.vdot(L, L / lam) - 0.5 * lam * np.vdot(L / lam, L / lam)
    assert Penalty(lam).dual_term(L) == pytest.approx(value)
    assert Penalty(lam).support_term(L) == 0.0  # no ball: no part of a Farkas ray's value


def test_measures_and_scaling():
    col = np.array([1.0, 2.0])
    residual = float(np.sqrt(5.0))
    assert LayerBall(2.0).measure(3.0, col, residual) == pytest.approx((3.0, 2.0, residual - 2.0))
    assert ColumnBalls(np.array([1.5, 1.5])).measure(3.0, col, residual) == (3.0, 1.5, 0.5)
    objective, radius, excess = Penalty(2.0).measure(3.0, col, residual)
    assert objective == pytest.approx(3.0 + 5.0) and np.isnan(radius) and np.isnan(excess)
    # data divided by sigma: the radius with it, the penalty by sigma^-2
    assert LayerBall(2.0).scaled(4.0) == {"radius": 0.5}
    assert Penalty(2.0).scaled(4.0) == {"penalty": 32.0}


def test_program_of_prefers_the_penalty():
    assert isinstance(program_of(np.array([1.0]), 2.0), Penalty)
    assert isinstance(program_of(np.array([1.0]), None), ColumnBalls)
    assert isinstance(program_of(1.0, None), LayerBall)

"""L0 solvers: refit optimality, IHT/ADMM vs magnitude, singular Gram, (P5), determinism."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers.gram import damping_amount
from nettrim.solvers.l0 import (
    AdmmL0Settings,
    hard_threshold,
    lipschitz,
    objective,
    p5_loss,
    refit,
    solve_iht,
    solve_l0_admm,
    solve_p5_iht,
)
from nettrim.solvers.projections import make_pattern


def correlated(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.4 * rng.standard_normal((d, d)) / np.sqrt(d)
    X = rng.standard_normal((n, d)) @ mix
    X[:, 0] *= 8.0  # one large-magnitude channel
    return X


def lstsq_on_support(A: np.ndarray, target: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Independent route: per-column least squares ``min ||A[:, S] w - target_j||``."""
    out = np.zeros(support.shape)
    for j in range(support.shape[1]):
        rows = np.flatnonzero(support[:, j])
        if len(rows):
            out[rows, j] = np.linalg.lstsq(A[:, rows], target[:, j], rcond=None)[0]
    return out


@pytest.mark.parametrize("damping", [0.0, 0.05])
def test_refit_is_least_squares_on_its_support(damping):
    rng = np.random.default_rng(0)
    X = correlated(200, 12, 0)
    W0 = rng.standard_normal((12, 5))
    support = rng.random((12, 5)) < 0.5
    G = X.T @ X
    W = refit(G, W0, support, damping=damping, method="exact")
    # damped program = least squares on [X; sqrt(lam) I] with targets [X W0; sqrt(lam) W0]
    lam = damping_amount(G, damping)
    A = np.vstack([X, np.sqrt(lam) * np.eye(12)])
    expected = lstsq_on_support(A, A @ W0, support)
    # 1e-8: two well-conditioned least-squares solvers (Cholesky vs QR/SVD)
    np.testing.assert_allclose(W, expected, rtol=1e-8, atol=1e-8)
    assert not np.any(W[~support])


def test_refit_by_columns_at_high_sparsity_equals_the_exact_refit():
    from nettrim.solvers.l0.refits import choose_refit

    X = correlated(600, 64, 9)
    W0 = np.random.default_rng(9).standard_normal((64, 400))
    support = hard_threshold(W0, make_pattern("unstructured", W0.shape, sparsity=0.9))[1]
    # many small distinct supports: one factorization per column beats CG's products
    assert choose_refit(support, 3) == "columns"
    dense = np.ones_like(support)
    dense[0, 0] = False
    assert choose_refit(dense, 3) == "cg"  # large supports: CG's products win
    G = X.T @ X
    got = refit(G, W0, support, method="columns")
    ref = refit(G, W0, support, method="exact")
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9)
    assert np.array_equal(got != 0, support & (ref != 0))
    result = solve_l0_admm(G, W0, make_pattern("unstructured", W0.shape, sparsity=0.9))
    assert result.info.extra["refit"] == "columns"


def test_cg_refit_reaches_the_exact_refit():
    rng = np.random.default_rng(1)
    X = correlated(300, 20, 1)
    W0 = rng.standard_normal((20, 6))
    support = rng.random((20, 6)) < 0.6
    G = X.T @ X
    exact = refit(G, W0, support, method="exact")
    cg = refit(G, W0, support, method="cg", max_iter=200, tol=1e-12)
    # CG on systems of size <= 20 converges in <= 20 steps up to rounding
    np.testing.assert_allclose(cg, exact, rtol=1e-6, atol=1e-8)


def test_refit_with_shared_supports_and_empty_columns():
    X = correlated(100, 6, 2)
    W0 = np.random.default_rng(2).standard_normal((6, 4))
    support = np.zeros((6, 4), dtype=bool)
    support[[0, 2, 3], :3] = True  # three columns share one support; the last is empty
    W = refit(X.T @ X, W0, support, damping=0.0)
    np.testing.assert_allclose(W, lstsq_on_support(X, X @ W0, support), atol=1e-9)
    assert not np.any(W[:, 3])


PATTERNS = [
    ("unstructured", {"sparsity": 0.7}),
    ("per_output", {"sparsity": 0.5}),
    ("2:4", {}),
    ("inputs", {"sparsity": 0.5}),
    ("outputs", {"k": 3}),
]


@pytest.mark.parametrize(("pattern", "budget"), PATTERNS)
@pytest.mark.parametrize("solver", ["admm", "iht"])
def test_solvers_beat_magnitude_and_stay_in_the_set(pattern, budget, solver):
    rng = np.random.default_rng(3)
    X = correlated(400, 16, 3)
    W0 = rng.standard_normal((16, 6))
    G = X.T @ X
    K = make_pattern(pattern, (16, 6), **budget)
    result = solve_l0_admm(G, W0, K) if solver == "admm" else solve_iht(G, W0, K)
    W = result.W
    assert np.count_nonzero(W) <= K.nnz
    assert np.array_equal(hard_threshold(W, K)[0], W)  # W is its own projection: in K
    magnitude = hard_threshold(W0, K)[0]
    assert result.info.objective <= objective(G, W0, magnitude)
    # the reported objective is the undamped f of the returned weights
    assert result.info.objective == pytest.approx(objective(G, W0, W), rel=1e-8, abs=1e-10)
    assert result.info.extra["relative_error"] == pytest.approx(
        result.info.objective / objective(G, W0, np.zeros_like(W0)), rel=1e-8
    )


@pytest.fixture(scope="module")
def correlated_layer():
    """``(G, W0, K)``: the Gram matrix of 500 correlated samples of 24 inputs, a dense
    (24, 10) layer, and an 80% unstructured sparsity budget."""
    X = correlated(500, 24, 4)
    W0 = np.random.default_rng(4).standard_normal((24, 10))
    return X.T @ X, W0, make_pattern("unstructured", (24, 10), sparsity=0.8)


def test_admm_is_at_least_as_good_as_its_start_and_deterministic(correlated_layer):
    G, W0, K = correlated_layer
    a = solve_l0_admm(G, W0, K)
    b = solve_l0_admm(G.copy(), W0.copy(), K)
    assert np.array_equal(a.W, b.W)
    assert a.info.iterations >= 1
    # the safeguard: never worse than the start H_K(S W0) (no damping: the exact objective)
    for settings in (AdmmL0Settings(), AdmmL0Settings(rho=1.0), AdmmL0Settings.thorough()):
        result = solve_l0_admm(G, W0, K, damping=0.0, settings=settings)
        start = hard_threshold(W0 * np.sqrt(np.diag(G))[:, None], K)[1]
        assert result.info.objective <= objective(G, W0, np.where(start, W0, 0.0)) * (1 + 1e-9)


def test_thorough_schedule_reaches_a_lower_error_at_high_sparsity(correlated_layer):
    G, W0, K = correlated_layer
    short = solve_l0_admm(G, W0, K)
    long = solve_l0_admm(G, W0, K, settings=AdmmL0Settings.thorough())
    assert long.info.objective <= short.info.objective * (1 + 1e-9)
    assert long.status == "optimal"  # the support settled before 300 iterations


def test_default_stops_by_its_own_rule_and_short_schedule_is_by_name(correlated_layer):
    G, W0, K = correlated_layer
    default = solve_l0_admm(G, W0, K)
    st = AdmmL0Settings()
    # its own rule met before max_iter: the support settled at the last check
    assert default.status == "optimal"
    assert default.info.iterations < st.max_iter
    last_change = default.info.extra["history"][-1][2]
    assert last_change < max(st.settle_change, st.stop_change)
    short = solve_l0_admm(G, W0, K, settings=AdmmL0Settings.short())
    assert short.info.iterations <= 4
    assert default.info.objective <= short.info.objective * (1 + 1e-9)


def test_flat_objective_stops_once_the_support_has_settled(correlated_layer):
    G, W0, K = correlated_layer
    # a huge tolerance: the first check with a settled support stops the run
    eager = AdmmL0Settings(objective_tol=1e9, stop_change=0.0, settle_change=0.5)
    # the objective must fall by more than all of itself: never flat
    never = AdmmL0Settings(objective_tol=-1.0, stop_change=0.0, settle_change=0.5)
    a = solve_l0_admm(G, W0, K, settings=eager)
    b = solve_l0_admm(G, W0, K, settings=never)
    assert a.status == "optimal" and b.status == "max_iter"
    assert a.info.iterations < b.info.iterations == never.max_iter


@pytest.mark.parametrize("factorization", ["eigh", "cholesky"])
@pytest.mark.parametrize("shape", [(16, 8), (8, 40)])  # triangular solves / explicit inverse
def test_factorizations_agree(factorization, shape):
    X = correlated(300, shape[0], 6)
    W0 = np.random.default_rng(6).standard_normal(shape)
    K = make_pattern("2:4", shape)
    ref = solve_l0_admm(
        X.T @ X, W0, K, settings=AdmmL0Settings(factorization="eigh", dtype="float64")
    )
    got = solve_l0_admm(
        X.T @ X, W0, K, settings=AdmmL0Settings(factorization=factorization, dtype="float64")
    )
    assert np.array_equal(ref.W != 0, got.W != 0)
    np.testing.assert_allclose(got.W, ref.W, rtol=1e-7, atol=1e-9)  # two exact inverses


@pytest.mark.parametrize("rho", [0.1, 1e3])
def test_objective_at_b_matches_the_exact_objective_in_float32(rho):
    from nettrim.solvers.l0.admm import _objective_at_b, _shifted_solver
    from nettrim.solvers.l0.scaling import Scaled

    X = correlated(400, 32, 8)
    W0 = np.random.default_rng(8).standard_normal((32, 12))
    sc = Scaled(X.T @ X, W0, 0.01, np.float32)
    rhs = (sc.C + np.float32(rho) * sc.W0 * np.float32(0.5)).astype(np.float32)
    B = np.empty_like(rhs)
    _shifted_solver(sc.G, 12, AdmmL0Settings())[1](rho)(rhs, B)
    G64, B64 = sc.G.astype(np.float64), B.astype(np.float64)
    exact = sc.base - np.sum(B64 * sc.C) + 0.5 * np.sum(B64 * (G64 @ B64))
    # the shortcut is a difference of terms of size rho ||B||^2: its error grows with rho,
    # but stays far below the 1e-3 relative change the stopping rule compares
    assert abs(_objective_at_b(sc, B, rhs, rho) - exact) <= 1e-4 * abs(exact)


def test_admm_float32_and_long_schedule():
    X = correlated(500, 24, 5)
    W0 = np.random.default_rng(5).standard_normal((24, 10))
    G = X.T @ X
    K = make_pattern("2:4", (24, 10))
    fast = solve_l0_admm(G, W0, K, settings=AdmmL0Settings(dtype="float32"))
    full = solve_l0_admm(G, W0, K, settings=AdmmL0Settings.thorough())
    assert fast.W.dtype == np.float64
    assert full.info.extra["history"]  # the penalty schedule ran
    assert full.info.extra["rho"] > 0.1
    mag = objective(G, W0, hard_threshold(W0, K)[0])
    assert fast.info.objective <= mag and full.info.objective <= mag


def test_singular_gram_is_handled_by_default_damping():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((8, 20))  # fewer samples than inputs
    X[:, 3] = 0.0  # and a dead input
    G = X.T @ X
    W0 = rng.standard_normal((20, 5))
    K = make_pattern("unstructured", (20, 5), sparsity=0.6)
    for result in (solve_l0_admm(G, W0, K), solve_iht(G, W0, K)):
        assert np.all(np.isfinite(result.W))
        assert np.count_nonzero(result.W) <= K.nnz
        assert result.info.objective <= objective(G, W0, hard_threshold(W0, K)[0]) + 1e-9
    # without damping the exact refit still returns the (minimum-norm) optimum
    W = refit(G, W0, np.abs(W0) > 0.5, damping=0.0, method="exact")
    assert np.all(np.isfinite(W))


def test_bias_row_is_free():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300, 8)) + 2.0  # non-centred inputs: the bias matters
    Xa = np.hstack([X, np.ones((300, 1))])
    W0 = np.vstack([rng.standard_normal((8, 4)), rng.standard_normal((1, 4))])
    K = make_pattern("unstructured", (8, 4), sparsity=0.75)
    result = solve_l0_admm(Xa.T @ Xa, W0, K, n_free=1)
    assert np.count_nonzero(result.W[:8]) <= K.nnz
    assert np.all(result.W[8] != 0)


def test_lipschitz_methods_agree():
    X = correlated(200, 15, 8)
    G = X.T @ X
    exact = lipschitz(G)
    assert exact == pytest.approx(np.linalg.eigvalsh(G)[-1], rel=1e-10)
    # power iteration estimates from below, then the safety factor puts it above
    assert exact <= lipschitz(G, method="power") <= 1.05 * exact


def test_p5_decreases_the_relu_loss():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((400, 10))
    W0 = rng.standard_normal((10, 6))
    Y = np.maximum(X @ W0, 0.0)
    active = Y > 0
    K = make_pattern("unstructured", (10, 6), sparsity=0.6)
    start = hard_threshold(W0, K)[0]
    f_start = p5_loss(X, start, Y, active, np.zeros_like(Y))[0]
    result = solve_p5_iht(X, Y, start, K)
    assert np.count_nonzero(result.W) <= K.nnz
    assert result.info.objective < f_start
    f, residual, violation, _ = p5_loss(X, result.W, Y, active, np.zeros_like(Y))
    assert result.info.objective == pytest.approx(f, rel=1e-10)
    assert result.info.residual == pytest.approx(residual, rel=1e-10)
    assert result.info.violation == pytest.approx(violation, rel=1e-10, abs=1e-12)


def test_p5_gradient_matches_finite_differences():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((50, 4))
    Y = np.maximum(X @ rng.standard_normal((4, 3)), 0.0)
    active, V = Y > 0, np.zeros_like(Y)
    W = rng.standard_normal((4, 3))
    _, _, _, R = p5_loss(X, W, Y, active, V)
    grad = 2.0 * X.T @ R
    h = 1e-6
    E = np.zeros_like(W)
    E[1, 2] = h
    numeric = (p5_loss(X, W + E, Y, active, V)[0] - p5_loss(X, W - E, Y, active, V)[0]) / (2 * h)
    assert numeric == pytest.approx(grad[1, 2], rel=1e-5)


def test_accelerated_iht_is_one_loop_for_affine_and_general_gradients():
    """The IHT loop of solve_iht and solve_p5_iht: on (P4) the affine extrapolation of the
    gradient (no product) and a recomputed gradient give the same iterates to rounding."""
    from nettrim.solvers.l0.iht import accelerated_iht

    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 10))
    G, W0 = X.T @ X, rng.standard_normal((10, 4))
    K = make_pattern("unstructured", (10, 4), sparsity=0.6)
    Lip = lipschitz(G)

    def loss(W):
        g = G @ (W - W0)
        return 0.5 * float(np.vdot(W - W0, g)), g

    common = dict(max_iter=50, tol=1e-9, momentum=True)
    affine = accelerated_iht(
        W0, K, 0, Lip, loss, extrapolated_gradient=lambda Y, b, g, gp: g + b * (g - gp), **common
    )
    general = accelerated_iht(W0, K, 0, Lip, loss, **common)
    assert np.array_equal(affine.mask, general.mask)
    np.testing.assert_allclose(affine.W, general.W, rtol=1e-9, atol=1e-12)
    assert affine.loss <= affine.loss_at_start  # a restart keeps every accepted step monotone
    assert np.count_nonzero(affine.W) <= K.nnz


def test_fortran_ordered_weights_give_the_c_ordered_result():
    # the B-step's triangular solves run in place on C-order buffers, whatever W0's order
    X = correlated(300, 24, 10)
    W0 = np.random.default_rng(10).standard_normal((24, 16))
    K = make_pattern("unstructured", W0.shape, sparsity=0.7)
    ref = solve_l0_admm(X.T @ X, W0, K)
    got = solve_l0_admm(X.T @ X, np.asfortranarray(W0), K)
    assert np.array_equal(got.W, ref.W)
    with pytest.raises(ValueError, match="refit_method"):
        solve_l0_admm(X.T @ X, W0, K, refit_method="qr")

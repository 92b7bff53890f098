"""Anderson acceleration (solvers/anderson.py) and its use by the ADMM."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers import AdmmSettings, solve_admm, solve_exact
from nettrim.solvers.anderson import Anderson, ColumnAnderson


def _contraction(seed: int, size: int, rate: float):
    """``x -> A x + b`` with ``A`` symmetric, spectrum in ``[-rate, rate]``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((size, size)))
    A = (Q * np.linspace(-rate, rate, size)) @ Q.T
    b = rng.standard_normal(size)
    return A, b, np.linalg.solve(np.eye(size) - A, b)


def _iterations(fixed_point, A, b, memory, tol=1e-8, limit=5000):
    aa = None if memory is None else Anderson(b.size, memory, np.float64)
    x = np.zeros(b.size)
    for k in range(1, limit + 1):
        f = A @ x + b
        if np.linalg.norm(f - x) <= tol * np.linalg.norm(fixed_point):
            return k
        if aa is None:
            x = f
            continue
        aa.x[...], aa.f[...] = x, f
        aa.step()
        x = aa.x.copy()
    return limit


def test_acceleration_of_a_slow_linear_contraction():
    """Rate 0.99: the plain iteration needs about 1500 steps to 1e-8; with ten
    differences the acceleration needs about a hundred (it is GMRES-like on a linear
    map)."""
    A, b, x_star = _contraction(0, 60, 0.99)
    plain = _iterations(x_star, A, b, None)
    accelerated = _iterations(x_star, A, b, 10)
    assert plain > 1000
    assert accelerated < plain / 10


def _step(aa, x, f):
    aa.x[...], aa.f[...] = x, f
    moved = aa.step()
    return moved, aa.x.copy()


def test_safeguard_rejects_a_worse_point_and_returns_the_kept_image():
    aa = Anderson(3, 2, np.float64)
    x0, f0 = np.zeros(3), np.ones(3)
    moved, point = _step(aa, x0, f0)
    assert not moved  # nothing remembered yet: go on from f0
    np.testing.assert_array_equal(point, f0)
    f1 = np.array([1.5, 1.4, 1.6])
    moved, accelerated = _step(aa, f0, f1)
    assert moved and aa.accelerated and not np.allclose(accelerated, f1)
    # the map's image of the accelerated point has a far larger residual: refused
    moved, point = _step(aa, accelerated, accelerated + 100.0)
    assert moved and aa.rejected == 1 and aa.accepted == 0
    np.testing.assert_array_equal(point, f1)
    assert aa.count == 0  # the memory starts again


def test_ill_posed_combination_is_skipped():
    aa = Anderson(2, 3, np.float64)
    x = np.zeros(2)
    _step(aa, x, x)  # zero residual, zero differences next
    moved, _ = _step(aa, x, x)
    assert not moved and not aa.accelerated


def _column_maps(seed: int, rows: int, rates):
    """One linear contraction per column (``rates``: each column's spectral radius)."""
    return [_contraction(seed + j, rows, rate)[:2] for j, rate in enumerate(rates)]


def _solo(A, b, memory, steps, restart_at=()):
    """The points of :class:`Anderson` on one column's map, after each step."""
    aa, x, points = Anderson(b.size, memory, np.float64), np.zeros(b.size), []
    for k in range(steps):
        if k in restart_at:
            aa.restart()
        _, x = _step(aa, x, A @ x + b)
        points.append(x)
    return points


def _columns_run(maps, memory, steps, *, events=None):
    """The points of :class:`ColumnAnderson` on the columns' maps; ``events[k]`` runs
    before step ``k`` on ``(aa, live)`` and returns the columns still live."""
    rows = maps[0][1].size
    live = list(range(len(maps)))
    aa = ColumnAnderson(rows, len(maps), memory, np.float64)
    x = np.zeros((rows, len(maps)))
    points = []
    for k in range(steps):
        if events and k in events:
            keep = events[k](aa, live)
            if keep is not None:
                mask = np.isin(live, keep)
                aa.restrict(mask)
                x, live = x[:, mask], keep
        f = np.column_stack([maps[j][0] @ x[:, i] + maps[j][1] for i, j in enumerate(live)])
        aa.x[...], aa.f[...] = x, f
        aa.step()
        x = aa.x.copy()
        points.append({j: x[:, i] for i, j in enumerate(live)})
    return points


def test_column_memories_are_the_columns_own():
    """Each column's points are those of :class:`Anderson` on that column alone, at
    different rates (so the columns accelerate and converge differently)."""
    maps = _column_maps(5, 30, (0.99, 0.9, 0.5))
    together = _columns_run(maps, 3, 40)
    for j, (A, b) in enumerate(maps):
        alone = _solo(A, b, 3, 40)
        for k in range(40):
            np.testing.assert_allclose(together[k][j], alone[k], rtol=1e-9, atol=1e-12)


def test_column_memories_survive_other_columns_leaving_and_restarting():
    """Column 0 keeps its memory while column 1 restarts (step 7) and column 2 leaves
    (step 12): its points stay those of its solo run; column 1's are those of a solo run
    restarted at step 7."""

    def restart_one(aa, live):
        aa.restart(np.isin(live, [1]))
        return None

    events = {7: restart_one, 12: lambda aa, live: [0, 1]}
    maps = _column_maps(9, 25, (0.99, 0.95, 0.8))
    together = _columns_run(maps, 3, 30, events=events)
    alone0 = _solo(*maps[0], 3, 30)
    alone1 = _solo(*maps[1], 3, 30, restart_at=(7,))
    for k in range(30):
        np.testing.assert_allclose(together[k][0], alone0[k], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(together[k][1], alone1[k], rtol=1e-9, atol=1e-12)
    assert set(together[-1]) == {0, 1}


def test_column_safeguard_refuses_one_column_alone():
    """A worse image in column 1 only: column 1 goes back to its kept image and
    restarts, column 0 keeps accelerating."""
    aa = ColumnAnderson(3, 2, 2, np.float64)
    x0, f0 = np.zeros((3, 2)), np.ones((3, 2))
    aa.x[...], aa.f[...] = x0, f0
    assert not aa.step()
    f1 = np.array([[1.5, 1.5], [1.4, 1.4], [1.6, 1.6]])
    aa.x[...], aa.f[...] = f0, f1
    assert aa.step() and aa.accelerated.all()
    accelerated = aa.x.copy()
    image = accelerated + np.array([[0.0, 100.0]])  # column 0: a fixed point; 1: far worse
    aa.x[...], aa.f[...] = accelerated, image
    aa.step()
    assert aa.rejected == 1 and aa.accepted == 1
    np.testing.assert_array_equal(aa.x[:, 1], f1[:, 1])
    assert aa.count[1] == 0 and aa.count[0] == 2


def _layer(layer_program, seed, n, d_in, d_out, **kw):
    """A random layer's program; (P2) on an ill-conditioned ``X`` (through the range
    reduction, which converges in a few dozen iterations on well-conditioned data)."""
    rng = np.random.default_rng(seed)
    linear = kw.get("activation") == "linear"
    X = rng.standard_normal((n, d_in)) * (np.logspace(0, -2, d_in) if linear else 1.0)
    W = rng.standard_normal((d_in, d_out)) * (rng.random((d_in, d_out)) < 0.3)
    Z = X @ W + (0.0 if linear else 0.3 * rng.standard_normal(d_out))
    kw = {"eps": 0.05 if linear else 0.1, **kw}
    return layer_program(X, Z if linear else np.maximum(Z, 0), **kw)


# tight tolerances: enough iterations for several accelerated steps on every program; the
# active-set finish off, which would end either solve at a check the other does not reach
ACCELERATED = AdmmSettings(
    anderson_memory=3, anderson_interval=10, gap_tol=1e-5, feas_tol=1e-5, active_set=False
)


@pytest.mark.parametrize(
    "kw", [{}, dict(per_neuron=True), dict(penalty=5.0), dict(activation="linear")]
)
def test_accelerated_admm_certifies_the_same_optimum(layer_program, kw):
    """Accelerated points pass through both projections: the returned weights are exactly
    sparse, feasible and certified as any iterate's, at the exact optimum; and the solve
    is deterministic, bit for bit."""
    p = _layer(layer_program, 3, 300, 20, 12, **kw)
    result = solve_admm(p, ACCELERATED)
    assert result.status == "optimal"
    assert result.info.extra["anderson_accepted"] >= 1
    plain = solve_admm(p, ACCELERATED.updated(anderson_memory=0))
    # fewer iterations (the reduced (P2), a few checks long, at least not more)
    fewer = result.info.extra["column_iterations"] / plain.info.extra["column_iterations"]
    assert fewer <= 1.0 if kw.get("activation") == "linear" else fewer < 0.9
    assert "anderson_accepted" not in plain.info.extra
    exact = solve_exact(p, solver="clarabel")
    assert result.info.objective == pytest.approx(exact.info.objective, rel=1e-4)
    assert result.info.dual_bound <= exact.info.objective * (1 + 1e-7)
    # certified at gap_tol, or stopped on its residuals (Boyd's test) near it
    assert result.info.gap <= 2e-5 * result.info.objective
    assert np.count_nonzero(result.W) < result.W.size
    again = solve_admm(p, ACCELERATED)
    assert np.array_equal(again.W, result.W)


def test_accelerated_state_restarts_a_solve(layer_program):
    """The state an accelerated solve ends in is a consistent ADMM state: a layer-wide
    solve from it stops at its first check."""
    p = _layer(layer_program, 4, 240, 16, 10)
    cold = solve_admm(p, ACCELERATED, keep_state=True)
    warm = solve_admm(p, ACCELERATED, warm_start=cold)
    assert warm.status == "optimal"
    assert warm.info.iterations == ACCELERATED.check_every


@pytest.mark.parametrize(
    "field, value",
    [("anderson_memory", -1), ("anderson_interval", 0), ("anderson_safeguard", 0.0)],
)
def test_bad_acceleration_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        AdmmSettings(**{field: value})


def test_a_solve_cut_by_max_iter_returns_a_checked_point(layer_program):
    """No accelerated point is loaded that the iteration limit would return before the
    safeguard's look: a solve cut anywhere in a block is as good as the plain one (an
    extrapolated point returned unchecked had 5x the plain solve's gap and a ball excess
    of 12% of the radius)."""
    p = _layer(layer_program, 3, 400, 30, 20, eps=0.05)
    for max_iter in (249, 250, 251, 255):
        result = solve_admm(p, AdmmSettings(max_iter=max_iter, polish=False), keep_state=True)
        plain = solve_admm(p, AdmmSettings(max_iter=max_iter, polish=False, anderson_memory=0))
        assert result.status == plain.status == "max_iter"
        assert result.info.gap <= 1.5 * plain.info.gap
        assert result.info.ball_excess <= 5e-3 * result.info.radius
        state = result.info.extra["state"]
        assert np.abs(state.W - state.S).max() < 0.01 * np.abs(state.S).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_kernels_match_their_numpy_form(dtype):
    from nettrim.solvers.anderson_kernels import column_dots, subtract_combination

    rng = np.random.default_rng(7)
    memory, rows, k = 3, 50, 6
    A = rng.standard_normal((memory, rows, k)).astype(dtype)
    b = rng.standard_normal((rows, k)).astype(dtype)
    out = np.full((k, memory), np.nan)
    column_dots(A, b, out)
    reference = np.einsum("aij,ij->ja", A.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(out, reference, rtol=1e-12, atol=1e-12)  # float64 sums
    # the combination, on the masked columns only; a zero coefficient skips its slot, so an
    # unused slot holding a non-finite value reaches nothing
    gamma = rng.standard_normal((memory, k)).astype(dtype)
    gamma[2, :] = 0.0
    A[2, 0, 0] = np.nan
    columns = np.array([True, False, True, True, False, True])
    x = np.full((rows, k), 5.0, dtype)
    subtract_combination(b, A, gamma, columns, x)
    expected = b - np.einsum("aij,aj->ij", A[:2], gamma[:2])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(x[:, columns], expected[:, columns], rtol=tol, atol=tol)
    assert np.all(x[:, ~columns] == 5.0)

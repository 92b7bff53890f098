"""solve_exact: Net-Trim programs through cvxpy, checked against independent routes.

The independent routes are: Proposition 1 (a feasible point of (P1) reconstructs the ReLU
layer within eps), another backend on the same program, a naive cvxpy formulation on the
dense design matrix (no range reduction), the separability of per-neuron balls, and
Theorem 3 (exact recovery of a planted sparse neuron from enough Gaussian samples).
"""

import math

import cvxpy as cp
import numpy as np
import pytest

from nettrim.solvers import NetTrimProblem, Status, solve_exact

# Clarabel's default gap/feasibility tolerances are 1e-8 and solve_exact rounds entries
# below 1e-7 of the largest weight to zero; on these small, well-scaled problems the ball
# is met to ~1e-7 relative. 1e-6 leaves a margin while still catching a wrong radius
# (off by a factor) or a missing constraint.
BALL_RTOL = 1e-6


def relu(Z):
    return np.maximum(Z, 0.0)


def augment(X):
    return np.hstack([X, np.ones((X.shape[0], 1))])


def planted_relu_layer(seed, n=120, d_in=8, d_out=5, density=0.5):
    """Gaussian inputs, sparse planted weights with a bias, ReLU outputs."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    W = rng.standard_normal((d_in, d_out)) * (rng.random((d_in, d_out)) < density)
    b = 0.3 * rng.standard_normal(d_out)
    return X, W, b, relu(X @ W + b)


def relu_problem(X, Y, eps, *, bias=True, upper=None, per_column=False, penalty=None):
    """(P1) or (P3) on [X, 1] with Omega = {Y > 0} and a relative budget."""
    Xa = augment(X) if bias else X
    radius = eps * (np.linalg.norm(Y, axis=0) if per_column else float(np.linalg.norm(Y)))
    return NetTrimProblem(
        X=Xa,
        Y=Y,
        active=Y > 0,
        upper=upper,
        radius=radius,
        l1_weights=np.ones(Xa.shape[1]),
        penalty=penalty,
    )


def linear_problem(X, Y, radius, *, penalty=None):
    """(P2) or (P3) without inequalities, on [X, 1]."""
    Xa = augment(X)
    return NetTrimProblem(
        X=Xa,
        Y=Y,
        active=None,
        upper=None,
        radius=radius,
        l1_weights=np.ones(Xa.shape[1]),
        penalty=penalty,
    )


# ---------------------------------------------------------------- (a) Proposition 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_proposition_1_relu_reconstruction(seed):
    X, _, _, Y = planted_relu_layer(seed)
    eps = 0.1
    problem = relu_problem(X, Y, eps)
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.OPTIMAL
    W = result.W
    eps_abs = eps * np.linalg.norm(Y)
    Z = problem.X @ W
    # Proposition 1: any feasible point with V = 0 reconstructs within eps.
    assert np.linalg.norm(Y - relu(Z)) <= eps_abs * (1 + BALL_RTOL)
    # The inequalities hold to the solver's feasibility tolerance (1e-8 relative to the
    # data's scale, here |Z| ~ 1-10); 1e-6 absolute would still catch any real violation,
    # which would be of the order of the pre-activations themselves.
    assert result.info.violation <= 1e-6
    assert np.max(Z[Y == 0]) <= 1e-6
    # info measures the returned weights
    assert result.info.residual == pytest.approx(np.linalg.norm((Z - Y)[Y > 0]), rel=1e-12)
    assert result.info.radius == pytest.approx(eps_abs, rel=1e-12)
    assert result.info.ball_excess <= eps_abs * BALL_RTOL
    assert result.info.objective == pytest.approx(np.abs(W).sum(), rel=1e-12)
    assert result.info.solver == "clarabel"
    # The budget is used: an L1-minimal point sits on the boundary of the ball.
    assert result.info.residual >= eps_abs * (1 - 1e-4)
    # Pruning happened: the minimal L1 point is sparse with exact zeros.
    assert np.count_nonzero(W == 0) > 0


# --------------------------------------------------- (b) backends agree on the objective

# SCS and OSQP are first-order methods: at tol=1e-9 with a generous iteration limit they
# reach the optimum of these small programs to ~1e-7 relative; 1e-4 is the bound asked of
# them (it separates a correct formulation from any modelling difference).
BACKEND_RTOL = 1e-4
FIRST_ORDER = dict(tol=1e-9, max_iter=200_000)


def test_clarabel_and_scs_agree_on_p1():
    X, _, _, Y = planted_relu_layer(3, n=60, d_in=6, d_out=3)
    problem = relu_problem(X, Y, 0.1)
    ref = solve_exact(problem, solver="clarabel")
    scs = solve_exact(problem, solver="scs", **FIRST_ORDER)
    assert ref.status == Status.OPTIMAL
    assert scs.status in (Status.OPTIMAL, Status.INACCURATE)
    assert scs.info.objective == pytest.approx(ref.info.objective, rel=BACKEND_RTOL)
    assert scs.info.solver == "scs"


def test_clarabel_and_scs_agree_on_p2():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 6))
    Y = X @ rng.standard_normal((6, 3)) + 0.05 * rng.standard_normal((60, 3))
    problem = linear_problem(X, Y, 0.1 * np.linalg.norm(Y))
    ref = solve_exact(problem, solver="clarabel")
    scs = solve_exact(problem, solver="scs", **FIRST_ORDER)
    assert ref.status == Status.OPTIMAL
    assert scs.status in (Status.OPTIMAL, Status.INACCURATE)
    assert scs.info.objective == pytest.approx(ref.info.objective, rel=BACKEND_RTOL)


# OSQP 1.x deprecates its "polish" setting (cvxpy passes "polishing"); solve_exact must
# not pass the old name.
@pytest.mark.filterwarnings('error:"polish" is deprecated:DeprecationWarning')
@pytest.mark.parametrize("kind", ["relu", "linear"])
def test_three_backends_agree_on_p3(kind):
    X, W0, b0, Y = planted_relu_layer(5, n=60, d_in=6, d_out=3)
    if kind == "relu":
        problem = relu_problem(X, Y, 0.0, penalty=10.0)
    else:
        problem = linear_problem(X, X @ W0 + b0, 0.0, penalty=10.0)
    ref = solve_exact(problem, solver="clarabel")
    assert ref.status == Status.OPTIMAL
    # the penalized objective counts the misfit: l1 + lam/2 * residual^2
    expected = problem.l1(ref.W) + 5.0 * ref.info.residual**2
    assert ref.info.objective == pytest.approx(expected, rel=1e-12)
    assert math.isnan(ref.info.radius)
    for solver in ("scs", "osqp"):
        other = solve_exact(problem, solver=solver, **FIRST_ORDER)
        assert other.status in (Status.OPTIMAL, Status.INACCURATE), solver
        assert other.info.objective == pytest.approx(ref.info.objective, rel=BACKEND_RTOL)


# ------------------------------------------- (c) reduced program = naive dense program

# Both sides are solved by Clarabel to its default 1e-8 tolerances; their optimal values
# agree to ~1e-8 relative, so 1e-6 catches any difference between the two programs
# (a wrong reduced radius shifts the optimum by far more).
NAIVE_RTOL = 1e-6


def naive_objective(Xa, Y, radius, active=None, upper_inf=False):
    """min ||W||_1 s.t. ||(Xa W - Y)_Omega||_F <= radius and (Xa W)_{Omega^c} <= 0."""
    W = cp.Variable((Xa.shape[1], Y.shape[1]))
    fit = Xa @ W - Y
    constraints = []
    if active is None:
        constraints.append(cp.norm(fit, "fro") <= radius)
    else:
        mask = active.astype(float)
        constraints.append(cp.norm(cp.multiply(mask, fit), "fro") <= radius)
        if not upper_inf:
            constraints.append(cp.multiply(1.0 - mask, Xa @ W) <= 0)
    problem = cp.Problem(cp.Minimize(cp.sum(cp.abs(W))), constraints)
    problem.solve(solver="CLARABEL")
    assert problem.status == "optimal"
    return problem.value


def _linear_design(kind, rng):
    if kind == "full_rank":
        return rng.standard_normal((50, 6))
    if kind == "zero_columns":
        X = rng.standard_normal((50, 7))
        X[:, [0, 4]] = 0.0
        return X
    if kind == "duplicated_columns":
        X = rng.standard_normal((50, 5))
        return np.hstack([X, X[:, [1]], -X[:, [3]]])
    if kind == "wide":  # n < d_in
        return rng.standard_normal((6, 10))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["full_rank", "zero_columns", "duplicated_columns", "wide"])
def test_reduced_linear_program_equals_naive(kind):
    rng = np.random.default_rng(6)
    X = _linear_design(kind, rng)
    Y = X @ rng.standard_normal((X.shape[1], 3)) + 0.05 * rng.standard_normal((len(X), 3))
    radius = 0.1 * np.linalg.norm(Y)
    result = solve_exact(linear_problem(X, Y, radius), solver="clarabel")
    assert result.status == Status.OPTIMAL
    expected = naive_objective(augment(X), Y, radius)
    assert result.info.objective == pytest.approx(expected, rel=NAIVE_RTOL)
    assert result.info.residual <= radius * (1 + BALL_RTOL)


@pytest.mark.parametrize("kind", ["full_rank", "zero_columns", "duplicated_columns"])
def test_reduced_relu_program_equals_naive(kind):
    rng = np.random.default_rng(7)
    X = _linear_design(kind, rng)
    Y = relu(X @ rng.standard_normal((X.shape[1], 3)) + 0.2)
    problem = relu_problem(X, Y, 0.1)
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.OPTIMAL
    expected = naive_objective(problem.X, Y, problem.radius, active=Y > 0)
    assert result.info.objective == pytest.approx(expected, rel=NAIVE_RTOL)


# ------------------------------------------------------------ (d) per-neuron balls


def test_per_neuron_balls_hold_per_column():
    X, _, _, Y = planted_relu_layer(8, n=80, d_in=6, d_out=4)
    eps = np.array([0.05, 0.1, 0.2, 0.3])
    problem = relu_problem(X, Y, eps, per_column=True)
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.OPTIMAL
    columns = problem.column_residuals(result.W)
    budgets = eps * np.linalg.norm(Y, axis=0)
    assert np.all(columns <= budgets * (1 + BALL_RTOL)), columns / budgets
    assert np.all(columns >= budgets * (1 - 1e-4))  # every ball is used
    assert result.info.radius == pytest.approx(budgets.max(), rel=1e-12)
    # The per-neuron program separates: solving each column alone gives the same optimum.
    alone = 0.0
    for j in range(Y.shape[1]):
        column = NetTrimProblem(
            X=problem.X,
            Y=Y[:, [j]],
            active=problem.active[:, [j]],
            upper=None,
            radius=budgets[[j]],
            l1_weights=problem.l1_weights,
        )
        alone += solve_exact(column, solver="clarabel").info.objective
    assert result.info.objective == pytest.approx(alone, rel=NAIVE_RTOL)


def test_dead_neuron_gets_zero_weights():
    X, _, _, Y = planted_relu_layer(9, n=80, d_in=6, d_out=4)
    Y[:, 2] = 0.0  # a dead neuron: never active
    problem = relu_problem(X, Y, np.full(4, 0.1), per_column=True)
    assert problem.radius[2] == 0.0
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.OPTIMAL
    # With V = 0 the zero column (bias included) is feasible and the only L1-minimal point.
    np.testing.assert_array_equal(result.W[:, 2], 0.0)
    assert np.count_nonzero(result.W[:, [0, 1, 3]]) > 0
    columns = problem.column_residuals(result.W)
    assert np.all(columns <= problem.radius * (1 + BALL_RTOL) + 1e-12)


# ------------------------------------------------------------- (e) Theorem 3


def _theorem3_instance(N, s, seed):
    rng = np.random.default_rng(seed)
    P = math.ceil((11 * s + 7) * 1.5 * math.log(N))  # mu = 1.5
    w = np.zeros(N)
    support = rng.choice(N, s, replace=False)
    w[support] = rng.choice([-1.0, 1.0], s) * (0.5 + rng.random(s))
    X = rng.standard_normal((P, N))
    return X, w, relu(X @ w)[:, None]


@pytest.mark.parametrize(("N", "s", "seed"), [(40, 2, 0), (50, 3, 1), (60, 4, 2), (120, 2, 3)])
def test_theorem_3_exact_recovery(N, s, seed):
    X, w_star, Y = _theorem3_instance(N, s, seed)
    if N == 120:
        # Fewer active samples than unknowns: the equalities on Omega alone do not fix w,
        # so the recovery rests on the L1 objective and the inequalities (the theorem).
        assert np.count_nonzero(Y) < N
    problem = NetTrimProblem(
        X=X,
        Y=Y,
        active=Y > 0,
        upper=None,
        radius=0.0,
        l1_weights=np.ones(N),
    )
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.OPTIMAL
    # Interior-point accuracy (1e-8) on a well-conditioned Gaussian design; 1e-5 relative.
    error = np.linalg.norm(result.W[:, 0] - w_star) / np.linalg.norm(w_star)
    assert error <= 1e-5, error
    np.testing.assert_array_equal(np.flatnonzero(result.W), np.flatnonzero(w_star))


# ------------------------------------------------------------- (f) infeasibility


def test_infeasible_relu_program():
    X, _, _, Y = planted_relu_layer(10, n=60, d_in=4, d_out=2)
    upper = np.where(Y > 0, 0.0, -1.0)  # pre-activations <= -1 on Omega^c
    problem = relu_problem(X, Y, 1e-3, upper=upper)
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.INFEASIBLE
    assert result.status == "infeasible"
    assert result.W is None
    assert not result.success
    assert math.isnan(result.info.objective)


@pytest.mark.parametrize("per_column", [False, True])
def test_target_outside_range_with_eps_zero_is_infeasible(per_column):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((40, 5))
    Y = X @ rng.standard_normal((5, 2)) + 0.1 * rng.standard_normal((40, 2))
    radius = np.zeros(2) if per_column else 0.0
    result = solve_exact(linear_problem(X, Y, radius), solver="clarabel")
    assert result.status == Status.INFEASIBLE
    assert result.W is None
    assert "range" in result.info.message


# ------------------------------------------------ (g) exact fit, (h) upper = +inf


@pytest.mark.parametrize("shape", [(40, 5), (4, 9)])
def test_eps_zero_linear_exact_fit(shape):
    rng = np.random.default_rng(12)
    X = rng.standard_normal(shape)
    Y = X @ rng.standard_normal((shape[1], 3)) + rng.standard_normal(3)
    result = solve_exact(linear_problem(X, Y, 0.0), solver="clarabel")
    assert result.status == Status.OPTIMAL
    # Equality constraints solved by an interior-point method: residual ~1e-9 relative.
    assert result.info.residual <= 1e-7 * np.linalg.norm(Y)
    if shape[0] > shape[1] + 1:  # overdetermined: the planted weights are the only fit
        assert np.count_nonzero(result.W) == result.W.size


def test_upper_infinity_imposes_nothing():
    X, _, _, Y = planted_relu_layer(13, n=60, d_in=5, d_out=3)
    free = relu_problem(X, Y, 0.1, upper=np.full(Y.shape, np.inf))
    result = solve_exact(free, solver="clarabel")
    assert result.status == Status.OPTIMAL
    expected = naive_objective(free.X, Y, free.radius, active=Y > 0, upper_inf=True)
    assert result.info.objective == pytest.approx(expected, rel=NAIVE_RTOL)
    assert result.info.violation == 0.0
    # The inequalities do bind here, so the comparison above can tell them apart.
    bound = solve_exact(relu_problem(X, Y, 0.1), solver="clarabel")
    assert bound.info.objective > result.info.objective * (1 + 1e-3)


# ---------------------------------------------------------------- (i) float32


def test_float32_in_float32_out():
    X, _, _, Y = planted_relu_layer(14, n=60, d_in=5, d_out=3)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    Xa = np.hstack([X32, np.ones((len(X32), 1), np.float32)])
    problem = NetTrimProblem(
        X=Xa,
        Y=Y32,
        active=Y32 > 0,
        upper=None,
        radius=0.1 * float(np.linalg.norm(Y32)),
        l1_weights=np.ones(Xa.shape[1]),
    )
    result = solve_exact(problem, solver="clarabel")
    assert result.status == Status.OPTIMAL
    assert result.W.dtype == np.float32
    ref = solve_exact(relu_problem(X32.astype(float), Y32.astype(float), 0.1))
    # same program up to float32 rounding of the data (~1e-7): objectives to 1e-5
    assert result.info.objective == pytest.approx(ref.info.objective, rel=1e-5)


# ----------------------------------------------------------------- misuse


def test_unknown_solver_and_osqp_on_constrained_program():
    X, _, _, Y = planted_relu_layer(15, n=20, d_in=3, d_out=2)
    problem = relu_problem(X, Y, 0.1)
    with pytest.raises(ValueError, match="solver must be one of"):
        solve_exact(problem, solver="mosek")
    with pytest.raises(ValueError, match="penalty"):
        solve_exact(problem, solver="osqp")

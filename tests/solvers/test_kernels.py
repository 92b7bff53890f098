"""Each numba kernel against a plain NumPy reference of the same step."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers import kernels


def random_state(seed, n=7, d=5, m=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    arrays = {k: rng.standard_normal((n, m)).astype(dtype) for k in ("XW", "Z", "U", "Y")}
    arrays["active"] = rng.random((n, m)) < 0.5
    arrays["upper"] = rng.standard_normal((n, m)).astype(dtype)
    arrays["upper"][0, 0] = np.inf  # +inf imposes nothing
    for k in ("W", "S", "T"):
        arrays[k] = rng.standard_normal((d, m)).astype(dtype)
    return arrays


@pytest.mark.parametrize("all_active", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relax_and_project_match_numpy(all_active, dtype):
    a = random_state(0, dtype=dtype)
    alpha = 1.6
    active = np.ones_like(a["active"]) if all_active else a["active"]
    A = alpha * a["XW"].astype(np.float64) + (1 - alpha) * a["Z"] + a["U"]
    col_ref = np.sum(np.where(active, (A - a["Y"]) ** 2, 0.0), axis=0)
    col = np.zeros(A.shape[1])
    kernels.relax_and_measure(a["XW"], a["Z"], a["U"], a["Y"], a["active"], alpha, all_active, col)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(col, col_ref, rtol=rtol)

    scale = np.linspace(0.3, 1.0, A.shape[1])
    Z_ref = np.where(active, a["Y"] + scale * (A - a["Y"]), np.minimum(A, a["upper"]))
    U_ref = A - Z_ref
    Z, U, D = a["Z"].copy(), a["U"].copy(), np.zeros_like(a["Z"])
    stats = np.zeros((5, A.shape[1]))
    args = (a["XW"], a["Y"], a["active"], a["upper"], True, all_active, alpha, scale)
    kernels.project_and_update(*args, Z, U, D, stats, True, False)
    # without the statistics: the same update, the statistics left at zero
    Z2, U2, D2, stats2 = a["Z"].copy(), a["U"].copy(), np.zeros_like(a["Z"]), np.ones_like(stats)
    kernels.project_and_update(*args, Z2, U2, D2, stats2, False, False)
    np.testing.assert_array_equal(Z2, Z)
    np.testing.assert_array_equal(U2, U)
    np.testing.assert_array_equal(D2, D)
    assert not stats2.any()
    np.testing.assert_allclose(Z, Z_ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(U, U_ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(D, Z_ref - U_ref, rtol=rtol, atol=10 * rtol)
    expected = [
        np.sum((a["XW"] - Z_ref) ** 2, axis=0),
        np.sum((Z_ref - a["Z"]) ** 2, axis=0),
        np.sum(a["XW"].astype(np.float64) ** 2, axis=0),
        np.sum(Z_ref**2, axis=0),
        np.sum(U_ref**2, axis=0),
    ]
    np.testing.assert_allclose(stats, expected, rtol=100 * rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_skip_free_leaves_the_free_entries_out_of_the_statistics_alone(dtype):
    """``skip_free`` (a W-update that leaves each column's free rows out): the same
    update, the statistics over the entries on Omega or with a finite bound only."""
    a = random_state(3, n=40, m=6, dtype=dtype)
    a["upper"][a["upper"] > 0.5] = np.inf  # free where also off Omega
    kept = a["active"] | np.isfinite(a["upper"])
    assert not kept.all() and kept.any()
    scale = np.linspace(0.3, 1.0, 6).astype(dtype)
    args = (a["XW"], a["Y"], a["active"], a["upper"], True, False, dtype(1.6), scale)
    out = {}
    for skip in (False, True):
        Z, U, D = a["Z"].copy(), a["U"].copy(), np.zeros_like(a["Z"])
        stats = np.zeros((5, 6))
        kernels.project_and_update(*args, Z, U, D, stats, True, skip)
        out[skip] = Z, U, D, stats
    for plain, skipped in zip(out[False][:3], out[True][:3], strict=True):
        np.testing.assert_array_equal(plain, skipped)
    Z, U, _, stats = out[True]
    XW = a["XW"].astype(np.float64)
    expected = [
        np.sum(np.where(kept, (XW - Z) ** 2, 0.0), axis=0),
        np.sum(np.where(kept, (Z.astype(np.float64) - a["Z"]) ** 2, 0.0), axis=0),
        np.sum(np.where(kept, XW**2, 0.0), axis=0),
        np.sum(np.where(kept, Z.astype(np.float64) ** 2, 0.0), axis=0),
        np.sum(U.astype(np.float64) ** 2, axis=0),  # zero on the free entries anyway
    ]
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(stats, expected, rtol=rtol)
    assert np.all(stats[2] < out[False][3][2])  # the free entries did count without


def test_float32_kernels_compute_in_float32():
    """Given float32 operands (as the solver passes them), the projection is the float32
    NumPy computation bit for bit: no float64 constant promotes the arithmetic (which
    halves the SIMD width, and rounds once at the end instead)."""
    a = random_state(2, n=64, m=16, dtype=np.float32)
    f32 = np.float32
    alpha, scale = f32(1.6), np.linspace(0.3, 1.0, 16).astype(f32)
    A = alpha * a["XW"] + (f32(1.0) - alpha) * a["Z"] + a["U"]
    Z_ref = np.where(a["active"], a["Y"] + scale * (A - a["Y"]), np.minimum(A, f32(0.0)))
    U_ref = A - Z_ref
    Z, U, D = a["Z"].copy(), a["U"].copy(), np.zeros_like(a["Z"])
    upper = np.zeros((1, 1), f32)
    stats = np.zeros((5, 16))
    args = (a["XW"], a["Y"], a["active"], upper, False, False, alpha, scale)
    kernels.project_and_update(*args, Z, U, D, stats, False, False)
    np.testing.assert_array_equal(Z, Z_ref)
    np.testing.assert_array_equal(U, U_ref)
    np.testing.assert_array_equal(D, Z_ref - U_ref)


def test_project_without_upper_uses_zero():
    a = random_state(1)
    Z, U, D = a["Z"].copy(), a["U"].copy(), np.zeros_like(a["Z"])
    scale = np.ones(a["Z"].shape[1])
    kernels.project_and_update(
        a["XW"],
        a["Y"],
        a["active"],
        np.zeros((1, 1)),
        False,
        False,
        1.0,
        scale,
        Z,
        U,
        D,
        np.zeros((5, scale.size)),
        True,
        False,
    )
    A = a["XW"] + a["U"]
    np.testing.assert_allclose(Z[~a["active"]], np.minimum(A, 0.0)[~a["active"]])


@pytest.mark.parametrize("per_entry", [False, True])
def test_shrink_matches_numpy(per_entry):
    a = random_state(2)
    alpha = 1.4
    weights = np.array([0.0, 0.5, 1.0, 0.2, 3.0])[:, None]
    if per_entry:  # reweighted L1: one weight per entry, the bias row still 0
        weights = weights * np.random.default_rng(7).uniform(0.1, 4.0, (5, 4))
    inv_rho = np.array([1.0, 0.5, 2.0, 0.1])
    thresholds = weights * inv_rho[None, :]
    B = alpha * a["W"] + (1 - alpha) * a["S"] + a["T"]
    S_ref = np.sign(B) * np.maximum(np.abs(B) - thresholds, 0.0)
    S, T = a["S"].copy(), a["T"].copy()
    stats = np.zeros((5, inv_rho.size))
    kernels.shrink_and_update(a["W"], S, T, weights, inv_rho, alpha, stats)
    np.testing.assert_allclose(S, S_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(T, B - S_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(stats[0], np.sum((a["W"] - S_ref) ** 2, axis=0))
    np.testing.assert_allclose(stats[1], np.sum((S_ref - a["S"]) ** 2, axis=0))
    assert np.all(S[0] == B[0])  # zero threshold leaves the row (an unpenalized bias) alone


def test_measure_point_and_dual_terms_match_numpy():
    a = random_state(3)
    col = np.zeros(a["Y"].shape[1])
    col_worst = np.zeros_like(col)
    worst = kernels.measure_point(
        a["XW"], a["Y"], a["active"], a["upper"], True, False, col, col_worst
    )
    R = np.where(a["active"], a["XW"] - a["Y"], 0.0)
    np.testing.assert_allclose(col, np.sum(R**2, axis=0))
    off = np.where(a["active"], -np.inf, a["XW"] - a["upper"])
    np.testing.assert_allclose(col_worst, np.maximum(0.0, off.max(axis=0)))
    assert worst == pytest.approx(max(0.0, off.max()))

    L = np.zeros_like(a["U"])
    rho = np.array([2.0, 1.0, 0.5, 3.0])
    kernels.clip_multiplier(a["U"], rho, a["active"], a["upper"], True, False, L)
    L_ref = np.where(a["active"], rho * a["U"], np.maximum(rho * a["U"], 0.0))
    L_ref[~a["active"] & np.isposinf(a["upper"])] = 0.0
    np.testing.assert_allclose(L, L_ref)
    args = (L, a["Y"], a["active"], a["upper"], True, False)
    terms = np.zeros((3, L.shape[1]))
    kernels.dual_terms(*args, a["XW"], False, terms)
    np.testing.assert_allclose(terms[0], np.sum(np.where(a["active"], L * a["Y"], 0.0), axis=0))
    finite = ~a["active"] & (L != 0)
    V = np.where(finite, a["upper"], 0.0)
    np.testing.assert_allclose(terms[1], np.sum(np.where(finite, L * V, 0.0), axis=0))
    np.testing.assert_allclose(terms[2], np.sum(np.where(a["active"], L, 0.0) ** 2, axis=0))
    kernels.dual_terms(*args, a["XW"], True, terms)
    V_relaxed = np.where(finite, np.maximum(a["upper"], a["XW"]), 0.0)
    np.testing.assert_allclose(terms[1], np.sum(np.where(finite, L * V_relaxed, 0.0), axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_matches_fancy_indexing(dtype):
    A = np.random.default_rng(4).standard_normal((9, 6)).astype(dtype)
    rows, cols = np.array([0, 3, 3, 8]), np.array([5, 1])
    out = np.zeros((rows.size, cols.size))
    kernels.gather(A, rows, cols, out)
    assert np.array_equal(out, A[np.ix_(rows, cols)].astype(np.float64))
    empty = np.zeros((0, cols.size))
    kernels.gather(A, rows[:0], cols, empty)  # an empty block is a valid request

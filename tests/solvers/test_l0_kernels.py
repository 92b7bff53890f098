"""The fused L0 kernels against their NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers import l0_kernels as k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_admm_kernels_match_numpy(dtype):
    rng = np.random.default_rng(0)
    C, Mu, D, B = (rng.standard_normal((7, 5)).astype(dtype) for _ in range(4))
    rho = dtype(0.7)
    out = np.empty_like(C)
    k.admm_rhs(C, Mu, D, rho, out)
    np.testing.assert_allclose(out, C - Mu + rho * D, rtol=1e-6)
    V, S = np.empty_like(B), np.empty_like(B)
    k.admm_point(B, Mu, dtype(1 / rho), V, S)
    np.testing.assert_allclose(V, B + Mu / rho, rtol=1e-6)
    np.testing.assert_allclose(S, V * V, rtol=1e-6)
    mask = np.median(S) < S
    last = rng.random(mask.shape) < 0.5
    Mu_ref = Mu + rho * (B - np.where(mask, V, 0.0))
    D_out, Mu_out = np.empty_like(B), Mu.copy()
    changed = k.admm_dual(B, V, mask, last, rho, D_out, Mu_out)
    assert changed == np.count_nonzero(mask != last)
    np.testing.assert_allclose(D_out, np.where(mask, V, 0.0), rtol=1e-6)
    np.testing.assert_allclose(Mu_out, Mu_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cg_kernels_match_numpy(dtype):
    rng = np.random.default_rng(1)
    X, R, P, AP = (rng.standard_normal((6, 4)).astype(dtype) for _ in range(4))
    mask = rng.random((6, 4)) < 0.6
    AP_ref = AP * mask
    pap = np.empty(4)
    AP_out = AP.copy()
    k.cg_curvature(P, AP_out, mask, pap)
    np.testing.assert_allclose(AP_out, AP_ref, rtol=1e-6)
    np.testing.assert_allclose(pap, np.sum(P * AP_ref, axis=0), rtol=1e-5)
    alpha = rng.random(4)
    rr = np.empty(4)
    X_out, R_out = X.copy(), R.copy()
    k.cg_step(X_out, R_out, P, AP_out, alpha, rr)
    np.testing.assert_allclose(X_out, X + alpha * P, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(R_out, R - alpha * AP_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rr, np.sum(R_out.astype(np.float64) ** 2, axis=0), rtol=1e-6)
    beta = rng.random(4)
    P_out = P.copy()
    k.cg_direction(R_out, P_out, beta)
    np.testing.assert_allclose(P_out, R_out + beta * P, rtol=1e-5, atol=1e-6)
    assert k.dot64(X, R) == pytest.approx(float(np.sum(X.astype(float) * R)), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cg_start_matches_numpy(dtype):
    rng = np.random.default_rng(2)
    C, GB = (rng.standard_normal((5, 3)).astype(dtype) for _ in range(2))
    mask = rng.random((5, 3)) < 0.5
    R, P = np.empty_like(C), np.empty_like(C)
    rr, c2 = np.empty(3), np.empty(3)
    k.cg_start(C, GB, mask, R, P, rr, c2)
    expected = np.where(mask, C - GB, 0.0)
    np.testing.assert_allclose(R, expected, rtol=1e-6)
    np.testing.assert_array_equal(P, R)
    np.testing.assert_allclose(rr, np.sum(expected.astype(float) ** 2, axis=0), rtol=1e-5)
    np.testing.assert_allclose(c2, np.sum(np.where(mask, C, 0.0) ** 2, axis=0), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep", [1, 13, 29, 40])
def test_threshold_kernels_match_top_mask_with_ties(dtype, keep):
    from nettrim.solvers.projections import top_mask

    rng = np.random.default_rng(keep)
    # scores on a coarse grid: many ties at the threshold
    S = rng.integers(0, 6, size=(8, 5)).astype(dtype)
    flat = S.reshape(-1)
    ref_kth = np.sort(flat)[::-1][keep - 1]
    kth, above = k.kth_largest_banded(flat, keep, 0.5 * ref_kth, 1.5 * ref_kth, np.empty_like(flat))
    if np.isnan(kth):  # the band missed: the caller partially sorts everything
        assert above == -1
    else:
        assert kth == ref_kth and above == np.count_nonzero(flat > 1.5 * ref_kth)
    miss = k.kth_largest_banded(flat, keep, 1e9, 2e9, np.empty_like(flat))
    assert np.isnan(miss[0]) and miss[1] == -1
    # two free rows below the thresholded ones
    B, V, Mu = (rng.standard_normal((10, 5)).astype(dtype) for _ in range(3))
    last = rng.random((10, 5)) < 0.5
    D, mask, Mu_out = np.empty_like(B), np.empty((10, 5), dtype=bool), Mu.copy()
    rho = dtype(0.3)
    changed = k.admm_dual_threshold(B, V, S, float(ref_kth), keep, last, rho, D, Mu_out, mask)
    expected = np.vstack([top_mask(flat, keep, axis=0).reshape(S.shape), np.ones((2, 5), bool)])
    np.testing.assert_array_equal(mask, expected)
    assert changed == np.count_nonzero(expected != last)
    np.testing.assert_array_equal(D, np.where(expected, V, 0))
    np.testing.assert_allclose(Mu_out, Mu + rho * (B - D), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_refit_columns_solves_every_support_exactly(dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 14))
    G, C = (X.T @ X).astype(dtype), rng.standard_normal((14, 6)).astype(dtype)
    mask = rng.random((14, 6)) < 0.4
    mask[:, 2] = False  # an empty support
    cols, rows = np.nonzero(mask.T)
    starts = np.searchsorted(cols, np.arange(7))
    out = np.zeros((14, 6))
    assert k.refit_columns(G, C, rows, starts, out)
    for j in range(6):
        S = np.flatnonzero(mask[:, j])
        ref = np.zeros(14)
        if len(S):
            ref[S] = np.linalg.solve(G[np.ix_(S, S)].astype(float), C[S, j].astype(float))
        np.testing.assert_allclose(out[:, j], ref, rtol=1e-9, atol=1e-12)
    singular = np.zeros_like(G)  # not positive definite: refused, the caller falls back
    assert not k.refit_columns(singular, C, rows, starts, np.zeros((14, 6)))

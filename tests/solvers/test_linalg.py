"""reduce_to_range: the identity ||XW - Y||^2 = ||RW - C||^2 + outside^2, column by column."""

import numpy as np
import pytest

from nettrim.solvers import reduce_to_range


def _design(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "full_rank":
        return rng.standard_normal((40, 7))
    if kind == "zero_columns":
        X = rng.standard_normal((40, 8))
        X[:, [1, 5]] = 0.0  # always-zero pixels, dead ReLUs
        return X
    if kind == "duplicated_columns":
        X = rng.standard_normal((40, 6))
        return np.hstack([X, X[:, [0, 3]], 2.0 * X[:, [2]]])  # rank 6 of 9
    if kind == "wide":
        return rng.standard_normal((5, 12))  # n < d: rank 5, every Y is in the range
    raise AssertionError(kind)


EXPECTED_RANK = {"full_rank": 7, "zero_columns": 6, "duplicated_columns": 6, "wide": 5}


@pytest.mark.parametrize("kind", sorted(EXPECTED_RANK))
def test_identity_per_column(kind):
    rng = np.random.default_rng(11)
    X = _design(kind, rng)
    Y = rng.standard_normal((X.shape[0], 4))
    red = reduce_to_range(X, Y)
    assert red.rank == EXPECTED_RANK[kind]
    assert red.R.shape == (red.rank, X.shape[1])
    assert red.C.shape == (red.rank, Y.shape[1])
    assert red.outside.shape == (Y.shape[1],)
    for trial in range(5):
        W = rng.standard_normal((X.shape[1], Y.shape[1])) * (trial + 0.1)
        lhs = np.sum((X @ W - Y) ** 2, axis=0)
        rhs = np.sum((red.R @ W - red.C) ** 2, axis=0) + red.outside**2
        # Both sides are sums of O(1e2) squares computed in float64; a pivoted QR is
        # backward stable, so they agree to a few hundred ulps of the larger term.
        np.testing.assert_allclose(rhs, lhs, rtol=1e-10, atol=1e-10 * lhs.max())


def test_outside_is_the_least_squares_residual():
    # outside_j is min_w ||X w - y_j||: compare with an independent least-squares solve.
    rng = np.random.default_rng(12)
    X = _design("duplicated_columns", rng)
    Y = rng.standard_normal((X.shape[0], 3))
    red = reduce_to_range(X, Y)
    W_ls = np.linalg.lstsq(X, Y, rcond=None)[0]
    expected = np.linalg.norm(X @ W_ls - Y, axis=0)
    np.testing.assert_allclose(red.outside, expected, rtol=1e-10)


def test_wide_design_has_nothing_outside():
    # n < d with full row rank: every target lies in the range of X.
    rng = np.random.default_rng(13)
    X = _design("wide", rng)
    Y = rng.standard_normal((X.shape[0], 3)) * 100.0
    red = reduce_to_range(X, Y)
    assert np.all(red.outside <= 1e-12 * np.linalg.norm(Y, axis=0))


@pytest.mark.parametrize("kind", ["full_rank", "zero_columns", "duplicated_columns"])
def test_outside_is_accurate_when_y_in_range(kind):
    # Y = X W0 exactly: the distance to the range is rounding only. Computed directly it is
    # ~1e-16 relative; computed as ||Y||^2 - ||Q^T Y||^2 it would be ~1e-8 (sqrt of the
    # cancellation). The bound 1e-12 separates the two.
    rng = np.random.default_rng(14)
    X = _design(kind, rng)
    Y = X @ rng.standard_normal((X.shape[1], 4)) * 1e3
    red = reduce_to_range(X, Y)
    relative = red.outside / np.linalg.norm(Y, axis=0)
    assert np.all(relative <= 1e-12), relative


def test_all_zero_design_has_rank_zero():
    X = np.zeros((6, 3))
    Y = np.arange(12.0).reshape(6, 2)
    red = reduce_to_range(X, Y)
    assert red.rank == 0
    np.testing.assert_allclose(red.outside, np.linalg.norm(Y, axis=0))


def test_float32_keeps_dtype_and_identity():
    rng = np.random.default_rng(15)
    X = rng.standard_normal((30, 5)).astype(np.float32)
    Y = rng.standard_normal((30, 2)).astype(np.float32)
    red = reduce_to_range(X, Y)
    assert red.R.dtype == np.float32 and red.C.dtype == np.float32
    W = rng.standard_normal((5, 2))
    lhs = np.sum((X.astype(float) @ W - Y) ** 2, axis=0)
    rhs = np.sum((red.R.astype(float) @ W - red.C) ** 2, axis=0) + red.outside.astype(float) ** 2
    # float32 factorization: agreement to ~1e3 ulps of float32.
    np.testing.assert_allclose(rhs, lhs, rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_products_match_the_whole_products_in_float64(dtype):
    """Block by block (two whole blocks and one of 452 rows) the same as one float64
    product of the masked difference, and no float64 copy of a float32 input is needed."""
    from nettrim.solvers.linalg import PRODUCT_BLOCK_ROWS, masked_products

    rng = np.random.default_rng(3)
    n = 2 * PRODUCT_BLOCK_ROWS + 452
    X, A, B = (rng.standard_normal((n, k)).astype(dtype) for k in (7, 5, 5))
    mask = rng.random((n, 5)) < 0.6
    R = np.where(mask, A - B, 0.0).astype(np.float64)
    products, squares = masked_products(X, A, B, mask=mask)
    assert products.dtype == squares.dtype == np.float64
    np.testing.assert_allclose(products, X.astype(np.float64).T @ R, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(squares, (R * R).sum(axis=0), rtol=1e-12)
    plain, plain_sq = masked_products(X, A)  # no B, no mask: X^T A
    np.testing.assert_allclose(
        plain, X.astype(np.float64).T @ A.astype(np.float64), rtol=1e-12, atol=1e-9
    )
    np.testing.assert_allclose(plain_sq, (A.astype(np.float64) ** 2).sum(axis=0), rtol=1e-12)


def test_take_block_is_the_float64_block():
    from nettrim.solvers.linalg import take_block

    X = np.random.default_rng(5).standard_normal((30, 8)).astype(np.float32)
    rows, cols = np.flatnonzero(X[:, 0] > 0), np.array([1, 4, 7])
    block = take_block(X, rows, cols)
    assert block.dtype == np.float64 and block.flags.c_contiguous
    assert np.array_equal(block, X[np.ix_(rows, cols)].astype(np.float64))


def test_one_blas_thread_limits_and_restores():
    import threadpoolctl

    from nettrim.solvers.linalg import one_blas_thread

    def blas_threads():
        info = threadpoolctl.threadpool_info()
        return [p["num_threads"] for p in info if p["user_api"] == "blas"]

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with one_blas_thread():
            assert blas_threads() and set(blas_threads()) == {1}
        assert blas_threads() == before

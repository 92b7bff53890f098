"""Gram accumulation: batched equals full, bias augmentation, damping."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers.gram import DEFAULT_DAMPING, GramAccumulator, damped, damping_amount


def test_batched_equals_full():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 7))
    acc = GramAccumulator(7)
    for start in range(0, 1000, 128):
        acc.update(X[start : start + 128])
    assert acc.n_samples == 1000
    # 1e-12: the same sums in a different order
    np.testing.assert_allclose(acc.gram(), X.T @ X, rtol=1e-12, atol=1e-10)


def test_float32_batches_accumulate_in_float64():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5000, 4)).astype(np.float32)
    acc = GramAccumulator(4)
    for start in range(0, 5000, 500):
        acc.update(X[start : start + 500])
    exact = X.astype(np.float64).T @ X.astype(np.float64)
    assert acc.gram().dtype == np.float64
    np.testing.assert_allclose(acc.gram(), exact, rtol=1e-12, atol=1e-9)


def test_bias_augmentation_matches_ones_column():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 5))
    acc = GramAccumulator(5, bias=True)
    acc.update(X[:100])
    acc.update(X[100:])
    Xa = np.hstack([X, np.ones((300, 1))])
    np.testing.assert_allclose(acc.gram(), Xa.T @ Xa, rtol=1e-12, atol=1e-10)
    assert acc.dim == 6


def test_merge_equals_single_pass():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 3))
    a = GramAccumulator.from_data(X[:50], bias=True)
    b = GramAccumulator.from_data(X[50:], bias=True)
    full = GramAccumulator.from_data(X, bias=True)
    np.testing.assert_allclose(a.merge(b).gram(), full.gram(), rtol=1e-12, atol=1e-10)
    assert a.n_samples == 200


def test_damping_is_relative_to_the_mean_diagonal():
    G = np.diag([1.0, 3.0, 0.0])  # singular: a dead input
    assert damping_amount(G, DEFAULT_DAMPING) == pytest.approx(0.01 * 4.0 / 3.0)
    D = damped(G, 0.01)
    assert np.all(np.linalg.eigvalsh(D) > 0)
    assert damping_amount(np.zeros((3, 3)), 0.01) == 0.01  # no signal: absolute damping
    acc = GramAccumulator.from_data(np.array([[1.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(acc.gram(damping=0.1), [[2.1, 0.0], [0.0, 0.1]])


def test_column_norms_and_from_gram():
    X = np.array([[3.0, 0.0], [4.0, 1.0]])
    acc = GramAccumulator.from_gram(X.T @ X, 2, column_sums=X.sum(axis=0))
    np.testing.assert_allclose(acc.column_norms(), [5.0, 1.0])
    np.testing.assert_allclose(acc.gram()[2], [7.0, 1.0, 2.0])


def test_bad_batches_raise():
    acc = GramAccumulator(3)
    with pytest.raises(ValueError, match=r"expected \(rows, 3\)"):
        acc.update(np.ones((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="positive integer"):
        GramAccumulator(0)

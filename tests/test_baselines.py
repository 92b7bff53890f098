"""Baselines against their published definitions on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from nettrim.solvers.baselines import magnitude, sparsegpt, wanda, wanda_scores
from nettrim.solvers.projections import SparsityPattern, make_pattern, top_mask


def test_magnitude_keeps_the_largest_entries_of_the_layer():
    W = np.array([[0.1, -3.0], [2.0, 0.2], [-0.5, 1.0]])
    K = make_pattern("unstructured", W.shape, k=3)
    assert np.array_equal(magnitude(W, K), [[0.0, -3.0], [2.0, 0.0], [0.0, 1.0]])
    per_col = make_pattern("per_output", W.shape, k=1)
    assert np.array_equal(magnitude(W, per_col), [[0.0, -3.0], [2.0, 0.0], [0.0, 0.0]])


def test_wanda_scores_and_per_output_comparison():
    # the paper's example in our layout: input norms reweight the magnitudes
    W = np.array([[4.0, 1.0], [1.0, -3.0], [-2.0, 0.5], [1.0, 1.0]])
    norms = np.array([1.0, 10.0, 1.0, 3.0])
    S = wanda_scores(W, norms)
    assert np.array_equal(S, [[4.0, 1.0], [10.0, 30.0], [2.0, 0.5], [3.0, 3.0]])
    # unstructured 50%: Wanda keeps 2 of 4 inputs in *every* column (per-output groups)
    K = make_pattern("unstructured", W.shape, sparsity=0.5)
    pruned = wanda(W, norms, K)
    assert np.array_equal(pruned != 0, [[1, 0], [1, 1], [0, 0], [0, 1]])
    # magnitude alone would keep different entries
    assert not np.array_equal(magnitude(W, K) != 0, pruned != 0)
    # 2:4 groups of consecutive inputs, per output
    nm = wanda(W, norms, make_pattern("2:4", W.shape))
    assert np.array_equal(nm != 0, [[1, 0], [1, 1], [0, 0], [0, 1]])


def sparsegpt_reference(H: np.ndarray, W: np.ndarray, pattern, block: int) -> np.ndarray:
    """Slow, independent OBS sweep: explicit inverses of the remaining Hessian at every step.

    Row ``i`` (an input) is pruned where the mask says; the rows not yet processed
    ``F = {i, ..., d-1}`` absorb the error through ``H_F^{-1}``:
    ``W[F] -= (w_i - q_i) / [H_F^{-1}]_00 * [H_F^{-1}]_{:, 0}``.
    Masks: per block of ``block`` rows the smallest ``w^2 / [H_F^{-1}]_00`` scores
    (``F`` starting at the row itself) are pruned — SparseGPT's adaptive mask selection.
    """
    d, m = W.shape
    W = W.copy()
    pruned = np.zeros((d, m), dtype=bool)

    def inv_tail(i):
        return np.linalg.inv(H[i:, i:])

    diag = np.array([inv_tail(i)[0, 0] for i in range(d)])  # [H_F^{-1}]_00 for F = i..
    for i1 in range(0, d, block):
        i2 = min(i1 + block, d)
        if pattern.kind == "unstructured":
            score = W[i1:i2] ** 2 / diag[i1:i2, None]
            n_prune = round((d * m - pattern.keep) / (d * m) * (i2 - i1) * m)
            keep = score.size - n_prune
            pruned[i1:i2] = ~top_mask(score.reshape(-1), keep, axis=0).reshape(score.shape)
        for i in range(i1, i2):
            if pattern.kind == "nm" and (i - i1) % pattern.group == 0:
                g = slice(i, i + pattern.group)
                score = W[g] ** 2 / diag[g, None]
                pruned[g] = ~top_mask(score, pattern.keep, axis=0)
            Hinv = inv_tail(i)
            q = np.where(pruned[i], 0.0, W[i])
            W[i:] -= np.outer(Hinv[:, 0], (W[i] - q) / Hinv[0, 0])
            W[i] = q
    return W


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_sparsegpt_equals_the_obs_sweep(pattern):
    rng = np.random.default_rng(0)
    d, m = 16, 5
    X = rng.standard_normal((60, d)) @ (np.eye(d) + 0.3 * rng.standard_normal((d, d)))
    W = rng.standard_normal((d, m))
    G = X.T @ X
    K = make_pattern(pattern, (d, m), sparsity=0.5 if pattern == "unstructured" else None)
    H = G + 0.01 * np.mean(np.diag(G)) * np.eye(d)
    expected = sparsegpt_reference(H, W, K, block=8)
    got = sparsegpt(G, W, K, block=8, sub_block=4)
    assert np.array_equal(got != 0, expected != 0)
    # 1e-9: the same arithmetic through a Cholesky factor vs explicit inverses
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.count_nonzero(got) == K.nnz


def test_sparsegpt_sub_blocks_do_not_change_the_result():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 64))
    W = rng.standard_normal((64, 7))
    K = make_pattern("unstructured", (64, 7), sparsity=0.6)
    a = sparsegpt(X.T @ X, W, K, block=32, sub_block=1)
    b = sparsegpt(X.T @ X, W, K, block=32, sub_block=16)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_sparsegpt_first_row_update_is_the_obs_formula():
    # one pruned weight, two inputs: OBS moves the error onto the other input exactly
    H = np.array([[2.0, 1.0], [1.0, 2.0]])
    W = np.array([[1.0], [5.0]])
    K = SparsityPattern("unstructured", (2, 1), 1)
    out = sparsegpt(H, W, K, damping=0.0, block=2, sub_block=1)
    # prune w_0 (score 1 / [H^-1]_00 = 1.5 vs 25 / [H_{1}^-1] = 50): w_1 += H_10/H_11 * w_0
    np.testing.assert_allclose(out[:, 0], [0.0, 5.0 + 0.5])


def test_sparsegpt_dead_inputs_are_zeroed_and_other_patterns_refused():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 8))
    X[:, 2] = 0.0
    W = rng.standard_normal((8, 3))
    out = sparsegpt(X.T @ X, W, make_pattern("2:4", (8, 3)))
    assert not np.any(out[2])
    with pytest.raises(ValueError, match="unstructured and N:M"):
        sparsegpt(X.T @ X, W, make_pattern("inputs", (8, 3), k=2))


def test_nettrim_baselines_re_exports_the_solvers_module():
    import nettrim.baselines as old
    import nettrim.solvers.baselines as new

    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name)

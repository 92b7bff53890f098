"""Hard-threshold projections: exact (brute force over every support), stable ties, in K."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nettrim.solvers.projections import (
    HINT_BAND,
    MIN_BAND,
    SparsityPattern,
    kth_largest,
    make_pattern,
    nm_mask_reference,
    parse_pattern,
    project,
    support_mask,
    top_mask,
)


def in_set(mask: np.ndarray, pattern: SparsityPattern) -> bool:
    """Whether a support belongs to the family of ``pattern`` (independent of the code)."""
    d, m = mask.shape
    if pattern.kind == "unstructured":
        return mask.sum() <= pattern.keep
    if pattern.kind == "per_output":
        return bool(np.all(mask.sum(axis=0) <= pattern.keep))
    if pattern.kind == "nm":
        groups = mask.reshape(d // pattern.group, pattern.group, m).sum(axis=1)
        return bool(np.all(groups <= pattern.keep))
    if pattern.kind == "inputs":
        rows = mask.any(axis=1)
        return rows.sum() <= pattern.keep and bool(np.all(mask[rows]))
    cols = mask.any(axis=0)
    return cols.sum() <= pattern.keep and bool(np.all(mask[:, cols]))


def brute_force(A: np.ndarray, pattern: SparsityPattern) -> float:
    """Smallest ``||A - B||^2`` over every B in K, by enumerating all supports of the set."""
    d, m = A.shape
    best = np.inf
    for bits in itertools.product((False, True), repeat=d * m):
        mask = np.array(bits).reshape(d, m)
        if in_set(mask, pattern):
            best = min(best, float(np.sum(np.where(mask, 0.0, A) ** 2)))
    return best


TINY_CASES = [
    ("unstructured", (3, 3), {"k": 4}),
    ("per_output", (4, 3), {"k": 2}),
    ("2:4", (4, 3), {}),
    ("1:2", (4, 2), {}),
    ("inputs", (4, 3), {"k": 2}),
    ("outputs", (3, 4), {"k": 2}),
]


@pytest.mark.parametrize(("pattern", "shape", "budget"), TINY_CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_is_exact_against_brute_force(pattern, shape, budget, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal(shape)
    K = make_pattern(pattern, shape, **budget)
    P = project(A, K)
    assert in_set(P != 0, K)
    assert np.count_nonzero(P) == K.nnz
    # 1e-12: the same sum of squares computed in two orders
    assert np.sum((A - P) ** 2) == pytest.approx(brute_force(A, K), rel=1e-12, abs=1e-12)


def test_ties_prefer_lower_indices():
    A = np.ones((4, 2))
    unstructured = make_pattern("unstructured", (4, 2), k=3)
    assert np.array_equal(project(A, unstructured) != 0, [[1, 1], [1, 0], [0, 0], [0, 0]])
    per_output = make_pattern("per_output", (4, 2), k=1)
    assert np.array_equal(project(A, per_output) != 0, [[1, 1], [0, 0], [0, 0], [0, 0]])
    nm = make_pattern("2:4", (4, 2))
    assert np.array_equal(project(A, nm) != 0, [[1, 1], [1, 1], [0, 0], [0, 0]])
    rows = make_pattern("inputs", (4, 2), k=2)
    assert np.array_equal(project(A, rows) != 0, [[1, 1], [1, 1], [0, 0], [0, 0]])
    cols = make_pattern("outputs", (4, 2), k=1)
    assert np.array_equal(project(A, cols) != 0, [[1, 0]] * 4)


def test_partial_ties_keep_the_larger_values_first():
    A = np.array([[3.0], [1.0], [2.0], [2.0], [2.0]])
    K = make_pattern("per_output", (5, 1), k=3)
    assert np.array_equal(project(A, K)[:, 0], [3.0, 0.0, 2.0, 2.0, 0.0])


def test_weighted_projection_uses_weighted_scores():
    A = np.array([[1.0, 2.0], [2.0, 1.0]])
    K = make_pattern("unstructured", (2, 2), k=1)
    weights = np.array([[10.0], [1.0]])  # row 0 counts 10 times more
    assert np.array_equal(project(A, K, weights=weights), [[0.0, 2.0], [0.0, 0.0]])


def test_counts_from_sparsity():
    assert make_pattern("unstructured", (10, 10), sparsity=0.7).nnz == 30
    assert make_pattern("per_output", (10, 4), sparsity=0.25).keep == 8
    assert make_pattern("2:4", (8, 3)).sparsity == 0.5
    assert make_pattern("inputs", (10, 3), sparsity=0.5).nnz == 15
    assert make_pattern("outputs", (10, 4), k=1).nnz == 10
    assert make_pattern("4:8", (16, 2), sparsity=0.5).label == "4:8"
    assert make_pattern("unstructured", (5, 5), sparsity=0.0).nnz == 25


@pytest.mark.parametrize(
    ("pattern", "shape", "kwargs", "message"),
    [
        ("unstructured", (4, 4), {"sparsity": 1.0}, r"\[0, 1\)"),
        ("unstructured", (4, 4), {"sparsity": -0.1}, r"\[0, 1\)"),
        ("2:4", (6, 3), {}, "not a multiple of 4"),
        ("2:4", (8, 3), {"sparsity": 0.7}, "implies sparsity 0.5"),
        ("5:4", (8, 3), {}, "1 <= N <= M"),
        ("per_output", (4, 4), {"k": 5}, "out of range"),
        ("unstructured", (4, 4), {}, "exactly one of"),
        ("unstructured", (4, 4), {"k": 2, "sparsity": 0.5}, "exactly one of"),
        ("blocks", (4, 4), {"k": 2}, "pattern must be one of"),
    ],
)
def test_bad_patterns_raise_clear_errors(pattern, shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_pattern(pattern, shape, **kwargs)


def test_parse_pattern():
    assert parse_pattern("2:4") == ("nm", 2, 4)
    assert parse_pattern(" 4 : 8 ") == ("nm", 4, 8)
    assert parse_pattern("inputs") == ("inputs", 0, 0)
    with pytest.raises(TypeError):
        parse_pattern(3)


# --- property tests --------------------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


@st.composite
def matrix_and_pattern(draw):
    kind = draw(st.sampled_from(["unstructured", "per_output", "nm", "inputs", "outputs"]))
    m = draw(st.integers(1, 5))
    if kind == "nm":
        group = draw(st.sampled_from([2, 4]))
        d = group * draw(st.integers(1, 3))
        n = draw(st.integers(1, group))
        K = make_pattern(f"{n}:{group}", (d, m))
    else:
        d = draw(st.integers(1, 6))
        units = {"unstructured": d * m, "per_output": d, "inputs": d, "outputs": m}[kind]
        K = make_pattern(kind, (d, m), k=draw(st.integers(0, units)))
    A = draw(arrays(np.float64, (d, m), elements=finite))
    return A, K


@settings(max_examples=150, deadline=None)
@given(matrix_and_pattern())
def test_projection_properties(case):
    A, K = case
    P = project(A, K)
    mask = support_mask(A * A, K)
    assert mask.sum() == K.nnz  # the budget is always used in full
    assert in_set(mask, K)
    assert np.array_equal(P, np.where(mask, A, 0.0))
    assert np.array_equal(project(P, K), P)  # idempotent
    # no other support of the family keeps more: compare with a random feasible one
    rng = np.random.default_rng(int(abs(A).sum() * 1000) % 2**32)
    other = support_mask(rng.random(A.shape), K)
    assert np.sum((A * A)[mask]) >= np.sum((A * A)[other]) - 1e-9 * max(1.0, np.sum(A * A))


@settings(max_examples=60, deadline=None)
@given(matrix_and_pattern())
def test_projection_is_deterministic_and_permutation_consistent(case):
    A, K = case
    assert np.array_equal(project(A, K), project(A.copy(), K))
    if K.kind == "per_output":  # columns are independent: permuting them commutes
        perm = np.arange(A.shape[1])[::-1]
        assert np.array_equal(project(A[:, perm], K), project(A, K)[:, perm])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "group"), [(2, 4), (1, 2), (4, 8), (3, 4)])
def test_nm_kernel_matches_numpy_reference(dtype, n, group):
    rng = np.random.default_rng(group + n)
    scores = rng.integers(0, 4, size=(6 * group, 9)).astype(dtype)  # many ties
    grouped = scores.reshape(6, group, 9)
    K = make_pattern(f"{n}:{group}", scores.shape)
    expected = nm_mask_reference(grouped, n).reshape(scores.shape)
    assert np.array_equal(support_mask(scores, K), expected)
    # and the generic partial-sort route agrees
    assert np.array_equal(top_mask(grouped, n, axis=1).reshape(scores.shape), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kth_largest_is_exact_whatever_the_hint(dtype):
    rng = np.random.default_rng(5)
    state: dict = {}
    widths = []
    for step in range(12):
        scores = (rng.random(997) ** 2).astype(dtype)
        if step == 4:
            scores[::3] = scores[0]  # many ties at the threshold
        keep = int(rng.integers(1, scores.size))
        expected = np.sort(scores)[::-1][keep - 1]
        assert kth_largest(scores, keep, state) == expected
        assert state["kth"] == expected
        widths.append(state.get("width", HINT_BAND))
        if step % 4 == 3:
            state["kth"] *= 1e3  # a hint far off: the band misses, the full sort answers
    assert all(MIN_BAND <= w <= HINT_BAND for w in widths)
    assert state["band"].dtype == np.dtype(dtype)
    assert kth_largest(np.ones(5), 5) == -np.inf and kth_largest(np.ones(5), 0) == np.inf


def test_threshold_hint_never_changes_the_result():
    rng = np.random.default_rng(11)
    K = make_pattern("unstructured", (40, 30), sparsity=0.8)
    state: dict = {}
    for step in range(6):
        scores = rng.random((40, 30)) ** 2
        if step == 3:
            scores[:] = 0.5  # all tied
        hinted = support_mask(scores, K, state=state)
        assert np.array_equal(hinted, support_mask(scores, K))
        state["kth"] = state["kth"] * (1.0 + 0.01 * step)  # a slightly wrong hint

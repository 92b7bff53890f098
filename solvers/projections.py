"""Exact projections onto sparsity sets: the hard-threshold operators ``H_K``.

A sparsity set ``K`` constrains the support of a weight matrix ``A`` of shape ``(d, m)``
(rows are inputs, columns are outputs)::

    unstructured   at most k non-zeros in A
    per_output     at most k non-zeros in every column of A
    N:M            at most N non-zeros in every group of M consecutive rows of each column
                   (rows 0..M-1, M..2M-1, ...; d must be a multiple of M)
    inputs         at most k non-zero rows (whole input neurons kept)
    outputs        at most k non-zero columns (whole output neurons kept)

Each set is a union of coordinate subspaces ``{A : supp(A) ⊆ S}``. The Euclidean projection
``H_K(A)`` keeps ``A`` on the support ``S`` in the family that maximizes ``sum_{S} A_ij^2``
and zeroes the rest. For a weighted metric ``sum w_ij (A_ij - B_ij)^2`` the same holds with
scores ``w_ij A_ij^2``, so every function here takes the *scores* (non-negative, the same
shape as ``A``) and returns the support; :func:`project` applies it.

Ties are broken deterministically and stably: among equal scores the lower index wins
(row-major order for the unstructured set, the lower row within a column or group, the
lower row or column for the structured sets). The selection uses one partial sort
(``np.partition``) for the threshold and exact tie handling, so it is exact, O(size) on
average, and bit-reproducible. N:M groups are ranked by a small compiled kernel (numba,
``M^2`` comparisons per group, one pass over memory), faster than a partial sort per group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numba import njit

from .l0_kernels import kth_largest_banded

#: Widest and narrowest relative half-width of the band searched around a threshold hint
#: (:func:`kth_largest`).
HINT_BAND = 0.25
MIN_BAND = 0.005
#: N:M groups up to this size use the compiled rank kernel (M^2 comparisons per group);
#: larger ones a partial sort per group.
NM_KERNEL_MAX_GROUP = 16
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Pattern names accepted by :func:`make_pattern` (an ``"N:M"`` string selects ``"nm"``).
PATTERN_KINDS = ("unstructured", "per_output", "nm", "inputs", "outputs")
_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class SparsityPattern:
    """A sparsity set ``K`` for matrices of shape ``shape = (d, m)``.

    Attributes
    ----------
    kind : str
        One of :data:`PATTERN_KINDS`.
    shape : tuple of int
        ``(d, m)``: rows (inputs) and columns (outputs) of the constrained matrix.
    keep : int
        Units kept: entries (``unstructured``), entries per column (``per_output``), entries
        per group (``nm``: this is N), rows (``inputs``) or columns (``outputs``).
    group : int
        M for ``nm`` (rows per group); 0 otherwise.
    """

    kind: str
    shape: tuple[int, int]
    keep: int
    group: int = 0

    @property
    def nnz(self) -> int:
        """Number of entries a projected matrix keeps (at most; exactly when no score is 0)."""
        d, m = self.shape
        if self.kind == "unstructured":
            return self.keep
        if self.kind == "per_output":
            return self.keep * m
        if self.kind == "nm":
            return self.keep * (d // self.group) * m
        if self.kind == "inputs":
            return self.keep * m
        return self.keep * d

    @property
    def sparsity(self) -> float:
        """Fraction of entries a projected matrix zeroes."""
        d, m = self.shape
        return 1.0 - self.nnz / (d * m) if d * m else 0.0

    @property
    def label(self) -> str:
        """Short human-readable name (``"2:4"``, ``"unstructured"``, ...)."""
        return f"{self.keep}:{self.group}" if self.kind == "nm" else self.kind


def parse_pattern(pattern: str) -> tuple[str, int, int]:
    """``(kind, N, M)`` from a pattern string; ``N = M = 0`` unless it is ``"N:M"``.

    Raises ``ValueError`` for an unknown name or an N:M with ``N < 1`` or ``N > M``.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string, got {type(pattern).__name__}")
    match = _NM_RE.match(pattern)
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if m < 1 or n < 1 or n > m:
            raise ValueError(f"pattern {pattern!r}: N:M needs 1 <= N <= M, got N={n}, M={m}")
        return "nm", n, m
    if pattern in PATTERN_KINDS and pattern != "nm":
        return pattern, 0, 0
    names = ", ".join(repr(p) for p in PATTERN_KINDS if p != "nm")
    raise ValueError(f"pattern must be one of {names} or 'N:M' such as '2:4'; got {pattern!r}")


def make_pattern(
    pattern: str,
    shape: tuple[int, int],
    *,
    sparsity: float | None = None,
    k: int | None = None,
) -> SparsityPattern:
    """The sparsity set for ``pattern`` on ``(d, m)`` matrices, from a sparsity or a count.

    Parameters
    ----------
    pattern : str
        ``"unstructured"``, ``"per_output"``, ``"inputs"``, ``"outputs"`` or ``"N:M"``.
    shape : (int, int)
        ``(d, m)``.
    sparsity : float in [0, 1), optional
        Fraction of units removed; units are entries (``unstructured``), entries of each
        column (``per_output``), rows (``inputs``) or columns (``outputs``). The number
        removed is ``round(sparsity * units)``. For ``N:M`` it is implied (``1 - N/M``) and
        may be omitted; if given it must agree.
    k : int, optional
        Units kept instead of ``sparsity`` (per column for ``per_output``). Exactly one of
        ``sparsity`` and ``k`` is needed, except for ``N:M`` which needs neither.

    Returns
    -------
    SparsityPattern
    """
    kind, n_keep, group = parse_pattern(pattern)
    d, m = (int(s) for s in shape)
    if kind == "nm":
        if d % group:
            raise ValueError(
                f"pattern {pattern!r} groups {group} consecutive inputs, but the layer has "
                f"d_in={d} inputs, which is not a multiple of {group}"
            )
        if k is not None:
            raise ValueError(f"pattern {pattern!r} fixes the count; do not pass k")
        if sparsity is not None and not np.isclose(sparsity, 1.0 - n_keep / group):
            raise ValueError(
                f"pattern {pattern!r} implies sparsity {1 - n_keep / group:g}, "
                f"but sparsity={sparsity!r} was given; omit sparsity for N:M"
            )
        return SparsityPattern("nm", (d, m), n_keep, group)
    units = {"unstructured": d * m, "per_output": d, "inputs": d, "outputs": m}[kind]
    if (sparsity is None) == (k is None):
        raise ValueError(f"pass exactly one of sparsity and k for pattern {pattern!r}")
    if sparsity is not None:
        if isinstance(sparsity, bool | str | bytes) or not np.isscalar(sparsity):
            raise TypeError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
        s = float(sparsity)
        if not (0.0 <= s < 1.0):
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
        keep = units - round(s * units)
    else:
        if isinstance(k, bool) or int(k) != k:
            raise TypeError(f"k must be an integer, got {k!r}")
        keep = int(k)
        what = {
            "unstructured": "entries in the layer",
            "per_output": "inputs per output",
            "inputs": "inputs",
            "outputs": "outputs",
        }[kind]
        if not (0 <= keep <= units):
            raise ValueError(f"k={keep} is out of range: the layer has {units} {what}")
    return SparsityPattern(kind, (d, m), keep)


def kth_largest(scores: np.ndarray, keep: int, state: dict | None = None) -> float:
    """The ``keep``-th largest entry of a 1-D array, exact; ``-inf`` / ``inf`` when
    everything / nothing is kept.

    ``state`` (a dict kept by the caller from one call to the next, e.g. an iteration's)
    carries the last threshold ``state["kth"]``: the search then first partially sorts
    only the entries in a band around it (one compiled pass locates the answer in
    ``(lo, hi]`` from ``count(s > hi) < keep <= count(s > lo)``) and falls back to a full
    partial sort when the band misses. The partial sort of the band costs most of the
    search, so as the threshold settles the next band is a few times its last move
    (``state["width"]``; a miss costs one full partial sort).

    Parameters
    ----------
    scores : ndarray of shape (size,)
        Contiguous, float32 or float64.
    keep : int
        How many entries are kept.
    state : dict, optional
        The caller's, from one call to the next: ``"kth"`` (the last threshold),
        ``"width"`` and ``"band"`` (a scratch buffer) are read and written.

    Returns
    -------
    float
        The threshold, exact whatever the hint (the value of an entry of ``scores``).
    """
    size = scores.size
    if keep >= size:
        return -np.inf
    if keep <= 0:
        return np.inf
    state = {} if state is None else state
    hint, kth = state.get("kth"), float("nan")
    hinted = hint is not None and hint > 0 and np.isfinite(hint)
    if hinted:
        band = state.get("band")
        if band is None or band.shape != scores.shape or band.dtype != scores.dtype:
            band = state["band"] = np.empty_like(scores)  # once per solve
        width = state.get("width", HINT_BAND)
        lo, hi = hint * (1 - width), hint * (1 + width)
        kth = float(kth_largest_banded(scores, keep, lo, hi, band)[0])
    if not np.isfinite(kth):
        kth = float(np.partition(scores, size - keep)[size - keep])
    if hinted:
        state["width"] = min(max(3.0 * abs(kth / hint - 1.0), MIN_BAND), HINT_BAND)
    state["kth"] = kth
    return kth


def top_mask(scores: np.ndarray, keep: int, axis: int, *, state: dict | None = None) -> np.ndarray:
    """Boolean mask of the ``keep`` largest scores along ``axis`` (lower index wins ties).

    ``scores`` is at least 1-D; ``keep`` is a scalar (same for every slice). For a 1-D
    array, ``state`` (a dict) carries the threshold from one call to the next
    (``state["kth"]``) so that iterations whose scores change little select faster.
    """
    size = scores.shape[axis]
    keep = int(keep)
    if keep >= size:
        return np.ones(scores.shape, dtype=bool)
    if keep <= 0:
        return np.zeros(scores.shape, dtype=bool)
    if scores.ndim == 1:
        kth = scores.dtype.type(kth_largest(scores, keep, state))
    else:  # the keep-th largest value of each slice: one partial sort
        kth = np.take(np.partition(scores, size - keep, axis=axis), [size - keep], axis=axis)
    mask = scores > kth
    missing = keep - np.count_nonzero(mask, axis=axis, keepdims=True)
    tied = scores == kth
    n_tied = np.count_nonzero(tied, axis=axis, keepdims=True)
    if np.array_equal(n_tied, missing):  # the usual case: the k-th value is unique
        mask |= tied
    else:  # more ties than places: the lower indices win
        rank = np.cumsum(tied, axis=axis, dtype=np.int64)
        mask |= tied & (rank <= missing)
    return mask


@njit(cache=True)
def _nm_mask_kernel(scores, keep, out):  # pragma: no cover (compiled)
    """``out[g, i, j]``: whether ``scores[g, i, j]`` is among the ``keep`` largest of
    ``scores[g, :, j]`` (rank = how many beat it; an equal score at a lower row beats it)."""
    n_groups, group, m = scores.shape
    rank = np.empty(m, dtype=np.int64)
    for g in range(n_groups):
        for i in range(group):
            rank[:] = 0
            for k in range(group):
                if k == i:
                    continue
                for j in range(m):
                    a = scores[g, k, j]
                    b = scores[g, i, j]
                    if a > b or (a == b and k < i):
                        rank[j] += 1
            for j in range(m):
                out[g, i, j] = rank[j] < keep


def nm_mask_reference(grouped: np.ndarray, keep: int) -> np.ndarray:
    """NumPy version of the N:M kernel (same ranks, same ties), for tests and checks."""
    group = grouped.shape[1]
    rank = np.zeros(grouped.shape, dtype=np.int64)
    for k in range(group):
        other = grouped[:, k : k + 1, :]
        beats = (other > grouped) | ((other == grouped) & (k < np.arange(group)[None, :, None]))
        beats[:, k, :] = False
        rank += beats
    return rank < keep


def support_mask(
    scores: np.ndarray, pattern: SparsityPattern, *, state: dict | None = None
) -> np.ndarray:
    """The support ``S`` in the family of ``pattern`` that maximizes ``sum_S scores``.

    Parameters
    ----------
    scores : ndarray of shape (d, m)
        Non-negative scores (``A**2`` for the Euclidean projection).
    pattern : SparsityPattern
    state : dict, optional
        Scratch carried between calls by an iterative solver (the unstructured threshold);
        it changes speed only, never the result.

    Returns
    -------
    ndarray of bool, shape (d, m)
        Exactly ``pattern.nnz`` entries are True (ties broken towards lower indices).
    """
    d, m = pattern.shape
    if scores.shape != (d, m):
        raise ValueError(f"scores have shape {scores.shape}; the pattern is for {(d, m)}")
    kind = pattern.kind
    if kind == "unstructured":
        flat = np.ascontiguousarray(scores).reshape(-1)
        return top_mask(flat, pattern.keep, axis=0, state=state).reshape(d, m)
    if kind == "per_output":
        return top_mask(scores, pattern.keep, axis=0)
    if kind == "nm":
        grouped = np.ascontiguousarray(scores).reshape(d // pattern.group, pattern.group, m)
        if pattern.group > NM_KERNEL_MAX_GROUP or grouped.dtype not in _KERNEL_DTYPES:
            return top_mask(grouped, pattern.keep, axis=1).reshape(d, m)
        out = np.empty(grouped.shape, dtype=np.bool_)
        _nm_mask_kernel(grouped, pattern.keep, out)
        return out.reshape(d, m)
    if kind == "inputs":
        rows = top_mask(scores.sum(axis=1), pattern.keep, axis=0)
        return np.repeat(rows[:, None], m, axis=1)
    if kind == "outputs":
        cols = top_mask(scores.sum(axis=0), pattern.keep, axis=0)
        return np.repeat(cols[None, :], d, axis=0)
    raise ValueError(f"unknown pattern kind {kind!r}")


def project(
    A: np.ndarray, pattern: SparsityPattern, *, weights: np.ndarray | None = None
) -> np.ndarray:
    """``H_K(A)``: the closest point of ``K`` to ``A``, in the (weighted) Euclidean norm.

    Minimizes ``sum_ij w_ij (B_ij - A_ij)^2`` over ``B`` in ``K``: keeps ``A`` on the support
    maximizing ``sum_S w_ij A_ij^2`` (see :func:`support_mask`) and zeroes the rest.

    Parameters
    ----------
    A : ndarray of shape (d, m)
    pattern : SparsityPattern
    weights : ndarray broadcastable to (d, m), optional
        Non-negative metric weights ``w`` (e.g. ``diag(G)[:, None]`` for the diagonal of a
        Gram metric). Euclidean when ``None``.

    Returns
    -------
    ndarray of shape (d, m)
        A new array, exactly sparse.
    """
    scores = A * A
    if weights is not None:
        scores = scores * weights
    mask = support_mask(scores, pattern)
    return np.where(mask, A, np.zeros((), A.dtype))

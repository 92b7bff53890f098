"""The pruning baselines users compare with: magnitude, Wanda and SparseGPT.

All three take the layer in the solvers' layout — ``W`` of shape ``(d_in, d_out)``, samples as
rows, so input ``i`` is *row* ``i`` of ``W`` — and a sparsity set
(:class:`~nettrim.solvers.projections.SparsityPattern`). They prune ``W`` only; a bias is
left as it is (as the reference implementations do).

* **Magnitude**: keep the largest ``|W_ij|`` over the set (layer-wide for the unstructured
  set, per column for ``per_output``, per group for N:M).
* **Wanda** (Sun, Liu, Bair, Kolter 2023, "A simple and effective pruning approach for large
  language models"): scores ``S_ij = |W_ij| * ||X_i||_2`` (``X_i`` the ``i``-th input
  feature over the calibration samples), compared *per output* — in the paper's
  ``(d_out, d_in)`` layout each row; here each column. For the unstructured set Wanda
  therefore keeps ``round((1 - s) d_in)`` entries in every column (the paper's choice;
  :func:`wanda_pattern`).
* **SparseGPT** (Frantar and Alistarh 2023, "SparseGPT: massive language models can be
  accurately pruned in one-shot"): optimal brain surgeon updates along the inputs with the
  Hessian ``H = X^T X``. The paper's weight matrix is ``(d_out, d_in)`` and it sweeps its
  columns (inputs) left to right; here that is a sweep over the rows of ``W``, each update
  vectorized over every output at once. See :func:`sparsegpt` for the algorithm.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
from scipy.linalg import get_blas_funcs

from .gram import DEFAULT_DAMPING
from .projections import SparsityPattern, support_mask, top_mask

#: SparseGPT's block size: rows of ``W`` (inputs) per lazy batch and per mask selection.
SPARSEGPT_BLOCK = 128
#: Rows per inner sub-block inside a SparseGPT block. The paper's lazy batch update applied
#: once more inside each block: rank-1 updates touch only the sub-block, one matrix product
#: carries them to the rest of the block. Same arithmetic, a fraction of the memory traffic.
SPARSEGPT_SUB_BLOCK = 16


def magnitude(W: np.ndarray, pattern: SparsityPattern) -> np.ndarray:
    """Magnitude pruning: ``W`` on the support maximizing ``sum |W_ij|^2`` over ``pattern``.

    Parameters
    ----------
    W : ndarray of shape (d_in, d_out)
    pattern : SparsityPattern

    Returns
    -------
    ndarray of shape (d_in, d_out)
        A pruned copy.
    """
    mask = support_mask(W * W, pattern)
    return np.where(mask, W, np.zeros((), W.dtype))


def wanda_pattern(pattern: SparsityPattern) -> SparsityPattern:
    """The set Wanda compares in: the unstructured set becomes a per-output one.

    ``keep`` per column is ``round(keep_total / d_out)``: the same sparsity in every column.
    Other sets are returned unchanged.
    """
    if pattern.kind != "unstructured":
        return pattern
    d, m = pattern.shape
    per_col = round(pattern.keep / m)
    return SparsityPattern("per_output", (d, m), min(per_col, d))


def wanda_scores(W: np.ndarray, input_norms: np.ndarray) -> np.ndarray:
    """``S_ij = |W_ij| * ||X_i||_2`` (shape ``(d_in, d_out)``)."""
    return np.abs(W) * input_norms[:, None]


def wanda(W: np.ndarray, input_norms: np.ndarray, pattern: SparsityPattern) -> np.ndarray:
    """Wanda: keep the largest ``|W_ij| ||X_i||_2`` per output (per N:M group for N:M).

    Parameters
    ----------
    W : ndarray of shape (d_in, d_out)
    input_norms : ndarray of shape (d_in,)
        ``||X_i||_2`` over the calibration samples (``sqrt(diag(X^T X))``).
    pattern : SparsityPattern
        The unstructured set is compared per output (:func:`wanda_pattern`).

    Returns
    -------
    ndarray of shape (d_in, d_out)
    """
    scores = wanda_scores(W, input_norms)
    mask = support_mask(scores * scores, wanda_pattern(pattern))
    return np.where(mask, W, np.zeros((), W.dtype))


def _inverse_hessian_factor(H: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor ``U`` of ``H^{-1}`` (``H^{-1} = U^T U``), as SparseGPT uses,
    from one Cholesky factorization and one triangular inverse (``2/3 d^3`` flops).

    With ``J`` the reversal permutation, ``J H J = L L^T`` gives ``H = (J L J)(J L J)^T``
    with ``J L J`` upper triangular, so ``H^{-1} = U^T U`` with ``U = (J L J)^{-1} =
    J L^{-1} J``: the reference's ``cholesky(cholesky_inverse(cholesky(H)))`` (three
    factorizations and an inverse) in a third of the work, the same factor (it is unique).
    """
    potrf, trtri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "trtri"), (H,))
    L, info = potrf(H[::-1, ::-1], lower=True, clean=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"the damped Hessian is not positive definite ({info})")
    Linv, info = trtri(L, lower=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"triangular inverse failed ({info})")
    return np.ascontiguousarray(Linv[::-1, ::-1])


def block_prune_counts(pattern: SparsityPattern, d: int, block: int) -> list[int]:
    """Entries to prune in each block for the unstructured set: cumulative rounding, so the
    blocks add up to exactly ``size - keep`` (the reference prunes ``numel * s`` per block)."""
    m = pattern.shape[1]
    total_pruned = d * m - pattern.keep
    fraction = total_pruned / (d * m)
    counts, before = [], 0
    for start in range(0, d, block):
        stop = min(start + block, d)
        upto = round(fraction * stop * m) if stop < d else total_pruned
        counts.append(upto - before)
        before = upto
    return counts


def sparsegpt(
    G: np.ndarray,
    W: np.ndarray,
    pattern: SparsityPattern,
    *,
    damping: float = DEFAULT_DAMPING,
    block: int = SPARSEGPT_BLOCK,
    sub_block: int = SPARSEGPT_SUB_BLOCK,
) -> np.ndarray:
    """SparseGPT: one-shot OBS pruning with lazy batch updates and adaptive masks.

    In nettrim's layout (``W`` ``(d, m)``, input ``i`` is row ``i``), with ``H = G + lam I``,
    ``lam = damping * mean(diag(G))`` (inputs with ``G_ii = 0`` get ``H_ii = 1`` and their
    weights are zeroed, as in the reference), and ``U`` the upper Cholesky factor of
    ``H^{-1}``::

        for each block of B = 128 rows [i1, i2):
            unstructured: mask = the round(s * B * m) smallest w_ij^2 / U_ii^2 in the block
            for i in i1 .. i2-1:
                N:M, at the start of each group of M rows: per column, prune the M - N
                     smallest w^2 / U_ii^2 of the group's rows
                q_i   = w_i with the masked entries set to 0          (row i, all outputs)
                err_i = (w_i - q_i) / U_ii
                w_k  -= U_ik * err_i   for the rows k > i in the block
                w_i   = q_i
            rows k >= i2:  W[k] -= sum_i U_ik err_i                    (one matrix product)

    The update ``w_k -= U_ik err_i`` is the optimal brain surgeon compensation
    ``delta = -(w_i - q_i) / [H_F^{-1}]_ii * [H_F^{-1}]_{i,:}`` with ``F`` the rows not yet
    processed: rows of the Cholesky factor ``U`` are those rows of the successive inverses
    divided by ``sqrt([H_F^{-1}]_ii)`` (the paper's Lemma / "Hessian synchronization").
    Rank-1 updates are applied inside sub-blocks of ``sub_block`` rows and carried to the
    rest of the block by a matrix product — the same arithmetic as row-by-row updates.

    Parameters
    ----------
    G : ndarray of shape (d, d)
        ``X^T X`` (any positive scaling: SparseGPT's ``2/n X^T X`` gives the same result).
    W : ndarray of shape (d, m)
        Dense weights.
    pattern : SparsityPattern
        ``unstructured`` or N:M (the two sets SparseGPT defines).
    damping : float
        Relative dampening (0.01 in the paper).
    block, sub_block : int
        Lazy-batch block size (128 in the paper) and the inner sub-block size.

    Returns
    -------
    ndarray of shape (d, m)
        The pruned weights, exactly in ``pattern``, in ``W``'s dtype: like the reference
        (float32 weights, float32 sweep) a float32 ``W`` is swept in float32; the
        factorization of ``H`` is always float64.
    """
    if pattern.kind not in ("unstructured", "nm"):
        raise ValueError(
            f"SparseGPT is defined for unstructured and N:M sparsity, not {pattern.kind!r}"
        )
    d, m = W.shape
    dtype = W.dtype if W.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    H = np.array(G, dtype=np.float64, copy=True)
    W = np.array(W, dtype=dtype, copy=True)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[dead, :] = 0.0
    lam = damping * float(np.mean(np.diag(H)))
    H[np.diag_indices_from(H)] += lam
    U = _inverse_hessian_factor(H).astype(dtype)  # factored in float64, used in W's dtype
    diagU = np.diag(U).copy()
    ger = get_blas_funcs("ger", (W,))
    nm = pattern.kind == "nm"
    group = pattern.group if nm else 0
    if nm and block % group:
        raise ValueError(f"block={block} must be a multiple of M={group}")
    if sub_block < 1 or block % sub_block or (nm and sub_block % group):
        raise ValueError("sub_block must divide block (and be a multiple of M for N:M)")
    counts = None if nm else block_prune_counts(pattern, d, block)
    pruned = np.zeros((d, m), dtype=bool)
    for bi, i1 in enumerate(range(0, d, block)):
        i2 = min(i1 + block, d)
        W1 = W[i1:i2]  # a view: updated in place
        U1 = U[i1:i2, i1:i2]
        Err1 = np.empty((i2 - i1, m))
        if not nm:
            score = W1**2 / diagU[i1:i2, None] ** 2
            keep = score.size - counts[bi]
            pruned[i1:i2] = ~top_mask(score.reshape(-1), keep, axis=0).reshape(score.shape)
        for s1 in range(i1, i2, sub_block):
            s2 = min(s1 + sub_block, i2)
            for i in range(s1, s2):
                if nm and (i - i1) % group == 0:
                    g = W[i : i + group]
                    score = g**2 / diagU[i : i + group, None] ** 2
                    pruned[i : i + group] = ~top_mask(score, pattern.keep, axis=0)
                w = W[i]
                q = np.where(pruned[i], np.zeros((), dtype), w)
                err = (w - q) / diagU[i]
                Err1[i - i1] = err
                W[i] = q
                if i + 1 < s2:
                    # rows i+1 .. s2-1 of the sub-block: w_k -= U_ik err (rank 1, in place)
                    ger(-1.0, err, U[i, i + 1 : s2], a=W[i + 1 : s2].T, overwrite_a=1)
            if s2 < i2:
                W[s2:i2] -= U[s1:s2, s2:i2].T @ Err1[s1 - i1 : s2 - i1]
        del W1, U1
        if i2 < d:
            W[i2:] -= U[i1:i2, i2:].T @ Err1
    W[pruned] = 0.0
    return W


__all__ = [
    "SPARSEGPT_BLOCK",
    "SPARSEGPT_SUB_BLOCK",
    "block_prune_counts",
    "magnitude",
    "sparsegpt",
    "wanda",
    "wanda_pattern",
    "wanda_scores",
]

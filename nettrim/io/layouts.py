"""Sparse storage layouts of one weight matrix: dense, CSR, bitmask and packed N:M.

Every layout stores a weight ``W`` of shape ``(d_in, d_out)`` (nettrim's layout, samples are
rows) through its transpose ``T = W.T`` of shape ``(d_out, d_in)`` — one row per output
neuron, PyTorch's ``nn.Linear.weight`` — read in row-major order. The parts of each layout
(the arrays a file holds, named by suffix):

``"dense"``
    ``W`` itself (no parts: the weight's own entry).
``"csr"``
    ``indptr`` (int32, ``d_out + 1``), ``indices`` (int32, the input index of every kept
    value, increasing within a row) and ``values`` (the weight's dtype): compressed sparse
    rows of ``T``; ``nnz * (value bytes + 4) + 4 * (d_out + 1)`` bytes.
``"bitmask"``
    ``mask`` (uint8, ``ceil(d_in * d_out / 8)`` bytes: one bit per entry of ``T`` in
    row-major order, most significant bit first, ``np.packbits``) and ``values`` (the kept
    values in the same order).
``"N:M"`` (e.g. ``"2:4"``)
    Every row of ``T`` is cut into groups of ``M`` consecutive inputs (``d_in`` a multiple of
    ``M``), each with at most ``N`` non-zeros: ``values`` holds exactly ``N`` values per group
    (``d_out * d_in / M * N``; a group with fewer non-zeros is padded with zeros of its own)
    and ``positions`` (uint8) the position in ``[0, M)`` of each, in ``ceil(log2 M)`` bits
    (2 bits for 2:4), packed like the mask, increasing within a group. For a convolution's
    dense kernel (rows in (kernel row, kernel column, input channel) order,
    :mod:`nettrim.conv`) the groups are ``M`` consecutive input channels of one kernel
    position and output: :func:`encode` and :func:`smallest` take ``channels=c_in`` and
    then need ``c_in`` a multiple of ``M``, so that no group straddles two kernel positions.

A kept value is one whose bits are not all zero, so ``-0.0`` is kept and every layout reads
back bit for bit. :func:`encode` builds a layout, :func:`decode` checks and inverts it,
:func:`smallest` picks the layout of fewest bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

#: The version of these layouts that this code writes (and the newest it reads); files
#: record it beside the layouts.
LAYOUT_VERSION = 1
#: Layout names besides ``"N:M"``; ``"auto"`` asks :func:`smallest`.
LAYOUTS = ("dense", "csr", "bitmask")
#: The group sizes ``M`` :func:`smallest` tries for N:M.
NM_GROUPS = (2, 4, 8, 16)
_NM = re.compile(r"([1-9][0-9]*):([1-9][0-9]*)")
_PARTS = {"dense": (), "csr": ("indptr", "indices", "values"), "bitmask": ("mask", "values")}
_NM_PARTS = ("values", "positions")


@dataclass(frozen=True)
class Encoded:
    """One weight in one layout: the layout's name, the weight's ``(d_in, d_out)`` shape and
    dtype, and its parts (suffix -> array; for ``"dense"``, ``{"": W}``)."""

    layout: str
    shape: tuple[int, int]
    dtype: np.dtype
    parts: dict[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        """Bytes of the stored arrays (what a file holds, before any deflate)."""
        return sum(part.nbytes for part in self.parts.values())


def parse_nm(layout: str) -> tuple[int, int] | None:
    """``(N, M)`` for a layout like ``"2:4"`` (``N < M <= 256``), ``None`` for other names."""
    match = _NM.fullmatch(layout)
    if not match:
        return None
    n, m = int(match[1]), int(match[2])
    if not n < m <= 256:
        raise ValueError(f"layout {layout!r}: N:M needs 1 <= N < M <= 256")
    return n, m


def check_layout(layout: str) -> str:
    """``layout`` when it names a layout (or ``"auto"``), else a ValueError."""
    if not isinstance(layout, str) or (
        layout not in (*LAYOUTS, "auto") and parse_nm(layout) is None
    ):
        raise ValueError(
            f"layout must be 'auto', {', '.join(map(repr, LAYOUTS))} or 'N:M' such as '2:4', "
            f"got {layout!r}"
        )
    return layout


def kept(T: np.ndarray) -> np.ndarray:
    """The entries a sparse layout stores: every value whose bits are not all zero."""
    return (T != 0) | np.signbit(T)


def encode(W: np.ndarray, layout: str, *, channels: int | None = None) -> Encoded:
    """``W`` of shape ``(d_in, d_out)`` in ``layout`` (module docstring).

    ``channels`` is a convolution's number of input channels ``c_in`` (``W`` a dense kernel
    of :mod:`nettrim.conv`): N:M groups then hold input channels of one kernel position.

    Raises
    ------
    ValueError
        For an unknown layout, or an N:M layout ``W`` does not satisfy (``d_in``, or
        ``channels`` for a convolution, not a multiple of ``M``, or a group with more than
        ``N`` non-zeros).
    """
    W = np.asarray(W)
    shape = (int(W.shape[0]), int(W.shape[1]))
    check_layout(layout)
    if layout == "dense":
        return Encoded("dense", shape, W.dtype, {"": W})
    T = np.ascontiguousarray(W.T)
    mask = kept(T)
    if layout == "csr":
        counts = mask.sum(axis=1)
        indptr = np.zeros(shape[1] + 1, dtype=np.int32)
        np.cumsum(counts, out=indptr[1:])
        parts = {"indptr": indptr, "indices": np.nonzero(mask)[1].astype(np.int32)}
    elif layout == "bitmask":
        parts = {"mask": np.packbits(mask.ravel())}
    else:
        n, m = parse_nm(layout)
        if channels is not None and channels % m:
            raise ValueError(
                f"layout '{n}:{m}' groups {m} consecutive input channels of a convolution; "
                f"it needs c_in a multiple of {m}, got c_in={channels}"
            )
        return _encode_nm(T, mask, shape, n, m)
    return Encoded(layout, shape, W.dtype, {**parts, "values": T[mask]})


def _encode_nm(T: np.ndarray, mask: np.ndarray, shape, n: int, m: int) -> Encoded:
    d_out, d_in = T.shape
    if d_in % m:
        raise ValueError(f"layout '{n}:{m}' needs d_in a multiple of {m}, got d_in={d_in}")
    groups, group_mask = T.reshape(d_out, d_in // m, m), mask.reshape(d_out, d_in // m, m)
    most = int(group_mask.sum(axis=2).max())
    if most > n:
        raise ValueError(
            f"layout '{n}:{m}': a group of {m} consecutive inputs holds {most} non-zeros "
            f"(at most {n} allowed); the weights are not {n}:{m} sparse"
        )
    # kept entries first, then the group's zeros to pad to N, each by position; then sorted
    order = np.argsort(np.where(group_mask, 0, m) + np.arange(m), axis=2, kind="stable")
    positions = np.sort(order[:, :, :n], axis=2)
    values = np.take_along_axis(groups, positions, axis=2).ravel()
    return Encoded(f"{n}:{m}", shape, T.dtype, {"values": values, "positions": _pack(positions, m)})


def _bits(m: int) -> int:
    return max(1, math.ceil(math.log2(m)))


def _pack(positions: np.ndarray, m: int) -> np.ndarray:
    """Each position in ``ceil(log2 M)`` bits, most significant first, packed into bytes."""
    bits = np.unpackbits(positions.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - _bits(m) :]
    return np.packbits(bits.ravel())


def _unpack(packed: np.ndarray, count: int, m: int) -> np.ndarray:
    width = _bits(m)
    if 8 % width == 0:  # 1, 2, 4 or 8 bits: whole positions per byte, read by shifts
        shifts = np.arange(8 - width, -1, -width, dtype=np.uint8)
        fields = (packed[:, None] >> shifts) & np.uint8((1 << width) - 1)
        return fields.ravel()[:count]
    bits = np.unpackbits(packed, count=count * width).reshape(count, width)
    return bits.astype(np.int64) @ (1 << np.arange(width - 1, -1, -1))


def smallest(W: np.ndarray, *, entry_bytes: int = 0, channels: int | None = None) -> Encoded:
    """The layout of ``W`` with the fewest bytes: dense, N:M (``M`` in :data:`NM_GROUPS`,
    ``N`` the most non-zeros in a group), bitmask or CSR; on a tie the earlier one.

    ``entry_bytes`` is what a file spends on each stored array besides its data (its name
    and header; a sparse layout spends it once more to be described): a small weight whose
    parts would cost more than its zeros stays dense. ``channels``: as for :func:`encode`
    (N:M only for ``M`` dividing a convolution's ``c_in``).
    """
    W = np.asarray(W)
    T = W.T
    mask = kept(T)
    candidates = [encode(W, "dense")]
    d_out, d_in = T.shape
    for m in NM_GROUPS:
        if d_in % m == 0 and (channels is None or channels % m == 0):
            n = int(mask.reshape(d_out, d_in // m, m).sum(axis=2).max())
            if 0 < n < m:
                candidates.append(encode(W, f"{n}:{m}"))
    candidates += [encode(W, "bitmask"), encode(W, "csr")]
    # min keeps the first of equals
    return min(
        candidates, key=lambda e: e.nbytes + entry_bytes * (len(e.parts) + (e.layout != "dense"))
    )


def decode(
    layout: str,
    shape: tuple[int, int],
    parts: Mapping[str, np.ndarray],
    fail: Callable[[str], Exception],
) -> np.ndarray:
    """The ``(d_in, d_out)`` weight that ``parts`` store in ``layout``.

    Every part is checked (present, dtype, size, indices in range and increasing) before it
    is used; ``fail(message)`` builds the exception raised otherwise (the caller names the
    file and the entry).
    """
    nm = parse_nm(layout) if isinstance(layout, str) else None
    if layout not in ("csr", "bitmask") and nm is None:
        raise fail(f"unknown layout {layout!r}; this nettrim reads csr, bitmask and N:M")
    expected = _NM_PARTS if nm else _PARTS[layout]
    if set(parts) != set(expected):
        raise fail(
            f"layout {layout!r} has parts {sorted(parts)}; it needs exactly {list(expected)}"
        )
    d_in, d_out = shape
    values = parts["values"]
    if values.ndim != 1 or values.dtype.type not in (np.float32, np.float64):
        raise fail(
            f"values must be a 1-D float32 or float64 array, got dtype {values.dtype} "
            f"and shape {values.shape}"
        )
    T = np.zeros((d_out, d_in), dtype=values.dtype)
    if layout == "csr":
        _decode_csr(T, parts["indptr"], parts["indices"], values, fail)
    elif layout == "bitmask":
        mask = _uint8(parts["mask"], "mask", math.ceil(d_in * d_out / 8), fail)
        flags = np.unpackbits(mask, count=d_in * d_out).reshape(d_out, d_in).astype(bool)
        if int(flags.sum()) != len(values):
            raise fail(f"mask marks {int(flags.sum())} entries but values holds {len(values)}")
        T[flags] = values
    else:
        _decode_nm(T, parts["positions"], values, *nm, fail)
    # C order, as a dense entry loads: BLAS may sum a product in another order for a
    # Fortran-ordered operand, and a network must compute the same bits however stored
    return np.ascontiguousarray(T.T)


def _decode_csr(T, indptr, indices, values, fail) -> None:
    d_out, d_in = T.shape
    for name, part in (("indptr", indptr), ("indices", indices)):
        if part.dtype != np.int32 or part.ndim != 1:
            raise fail(f"{name} must be a 1-D int32 array, got {part.dtype} shape {part.shape}")
    if len(indptr) != d_out + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise fail(f"indptr must rise from 0 in {d_out + 1} entries (one per output, plus one)")
    if indptr[-1] != len(indices) or len(indices) != len(values):
        raise fail(
            f"indptr ends at {int(indptr[-1])} but indices has {len(indices)} and values "
            f"{len(values)} entries; all three must agree"
        )
    rows = np.repeat(np.arange(d_out), np.diff(indptr))
    if len(indices) and (indices.min() < 0 or indices.max() >= d_in):
        raise fail(f"indices must lie in [0, {d_in}) (the inputs)")
    rising = np.diff(indices.astype(np.int64)) > 0
    if np.any(~rising & (rows[1:] == rows[:-1])):
        raise fail("indices must increase within each row (no repeats)")
    T[rows, indices] = values


def _decode_nm(T, positions, values, n: int, m: int, fail) -> None:
    d_out, d_in = T.shape
    if d_in % m:
        raise fail(f"layout '{n}:{m}' needs d_in a multiple of {m}, but d_in is {d_in}")
    count = d_out * (d_in // m) * n
    if len(values) != count:
        raise fail(f"values has {len(values)} entries; {n}:{m} of this shape holds {count}")
    packed = _uint8(positions, "positions", math.ceil(count * _bits(m) / 8), fail)
    slots = _unpack(packed, count, m).reshape(-1, n)
    if np.any(slots >= m) or np.any(np.diff(slots.astype(np.int16), axis=1) <= 0):
        raise fail(f"positions must lie in [0, {m}) and increase within each group")
    T.reshape(-1)[_group_mask(slots, m)] = values  # increasing positions: row-major order


def _group_mask(slots: np.ndarray, m: int) -> np.ndarray:
    """The flat boolean mask of the entries ``slots`` (one row per group of ``m``) mark."""
    if m <= 8:  # one byte per group: OR the bits, then unpack (far faster than a scatter)
        flags = np.zeros(len(slots), dtype=np.uint8)
        for column in slots.T.astype(np.uint8):
            flags |= np.left_shift(np.uint8(1), column)
        return np.unpackbits(flags[:, None], axis=1, bitorder="little")[:, :m].ravel().view(bool)
    mask = np.zeros(len(slots) * m, dtype=bool)
    mask[(slots + (np.arange(len(slots), dtype=np.int64) * m)[:, None]).ravel()] = True
    return mask


def _uint8(part: np.ndarray, name: str, size: int, fail) -> np.ndarray:
    if part.dtype != np.uint8 or part.shape != (size,):
        raise fail(
            f"{name} must be a uint8 array of {size} bytes, got dtype {part.dtype} "
            f"and shape {part.shape}"
        )
    return part

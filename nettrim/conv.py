"""Convolutions as dense layers on patch matrices (im2col), NCHW layout.

A 2-D convolution with a PyTorch-style weight ``(c_out, c_in, k_h, k_w)`` is the dense layer
``Z = P @ W + b`` where ``P = im2col(x, ...)`` has one row per (sample, output pixel) and one
column per (kernel row, kernel column, input channel), and
``W = conv_weight_to_dense(weight)`` has shape ``(k_h * k_w * c_in, c_out)``. The core never
needs to know a layer came from a convolution: record patches with :func:`im2col`, prune the
dense layer, and turn the pruned weights back with :func:`dense_to_conv_weight`.

Examples
--------
>>> import numpy as np
>>> from nettrim.conv import im2col, conv_weight_to_dense, patches_to_nchw
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((2, 3, 8, 8))            # (n, c_in, h, w)
>>> weight = rng.standard_normal((4, 3, 3, 3))       # (c_out, c_in, k_h, k_w)
>>> P = im2col(x, (3, 3), stride=1, padding=1)
>>> P.shape
(128, 27)
>>> out = patches_to_nchw(P @ conv_weight_to_dense(weight), n=2, out_hw=(8, 8))
>>> out.shape
(2, 4, 8, 8)
"""

from __future__ import annotations

import numpy as np

#: Axes of an NCHW batch.
NCHW_NDIM = 4


def _pair(name: str, value, *, low: int) -> tuple[int, int]:
    """An int or a pair of ints, each ``>= low``, as a pair."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    out = []
    for item in pair:
        if isinstance(item, bool) or int(item) != item:
            raise TypeError(f"{name} must hold integers, got {value!r}")
        if int(item) < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
        out.append(int(item))
    return out[0], out[1]


def conv_output_shape(
    in_hw: tuple[int, int], kernel_size, *, stride=1, padding=0, dilation=1
) -> tuple[int, int]:
    """``h_out = (h + 2 p_h - d_h (k_h - 1) - 1) // s_h + 1`` and the same for the width
    (PyTorch's ``Conv2d`` rule)."""
    h, w = _pair("in_hw", in_hw, low=1)
    k_h, k_w = _pair("kernel_size", kernel_size, low=1)
    s_h, s_w = _pair("stride", stride, low=1)
    p_h, p_w = _pair("padding", padding, low=0)
    d_h, d_w = _pair("dilation", dilation, low=1)
    span_h, span_w = d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1
    h_out = (h + 2 * p_h - span_h) // s_h + 1
    w_out = (w + 2 * p_w - span_w) // s_w + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"kernel_size {(k_h, k_w)} (dilation {(d_h, d_w)}) is larger than the padded "
            f"input {(h + 2 * p_h, w + 2 * p_w)}"
        )
    return h_out, w_out


def patch_multiplicity(kernel_size, *, stride=1, dilation=1) -> int:
    """The most patches one input pixel falls in: ``m_h * m_w`` with ``m_h`` the largest
    number of kernel rows ``a`` sharing one residue ``a d_h mod s_h`` (``ceil(k_h / s_h)``
    without dilation).

    The patch map ``x -> im2col(x)`` copies every pixel into at most this many rows, so its
    operator norm is at most ``sqrt(patch_multiplicity)``: a convolution's Lipschitz
    constant on images is at most ``sqrt(patch_multiplicity) * ||W||_2`` for its dense
    weights ``W`` (padding only removes copies).
    """
    k_h, k_w = _pair("kernel_size", kernel_size, low=1)
    s_h, s_w = _pair("stride", stride, low=1)
    d_h, d_w = _pair("dilation", dilation, low=1)

    def most(k: int, s: int, d: int) -> int:
        return int(np.bincount([(a * d) % s for a in range(k)]).max())

    return most(k_h, s_h, d_h) * most(k_w, s_w, d_w)


def im2col(x, kernel_size, *, stride=1, padding=0, dilation=1) -> np.ndarray:
    """Patch matrix of an NCHW batch: one row per (sample, output pixel).

    Parameters
    ----------
    x : array-like of shape (n, c_in, h, w)
        Input batch (NCHW).
    kernel_size : int or (int, int)
        ``(k_h, k_w)``.
    stride : int or (int, int)
        Step between patches.
    padding : int or (int, int)
        Zero padding added on both sides of each spatial axis.
    dilation : int or (int, int)
        Spacing between kernel taps.

    Returns
    -------
    ndarray of shape (n * h_out * w_out, k_h * k_w * c_in)
        Rows ordered by sample, then output row, then output column; columns ordered by
        kernel row, kernel column, then input channel — the order of
        :func:`conv_weight_to_dense`.
    """
    x = np.asarray(x)
    if x.ndim != NCHW_NDIM:
        raise ValueError(f"x must be 4-D (n, c_in, h, w), got shape {x.shape}")
    k_h, k_w = _pair("kernel_size", kernel_size, low=1)
    s_h, s_w = _pair("stride", stride, low=1)
    p_h, p_w = _pair("padding", padding, low=0)
    d_h, d_w = _pair("dilation", dilation, low=1)
    n, c_in, h, w = x.shape
    h_out, w_out = conv_output_shape(
        (h, w), (k_h, k_w), stride=(s_h, s_w), padding=(p_h, p_w), dilation=(d_h, d_w)
    )
    if p_h or p_w:
        x = np.pad(x, ((0, 0), (0, 0), (p_h, p_h), (p_w, p_w)))
    span = (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    windows = windows[:, :, : (h_out - 1) * s_h + 1 : s_h, : (w_out - 1) * s_w + 1 : s_w]
    windows = windows[..., ::d_h, ::d_w]
    # (n, c, h_out, w_out, k_h, k_w) -> (n, h_out, w_out, k_h, k_w, c)
    patches = windows.transpose(0, 2, 3, 4, 5, 1)
    return np.ascontiguousarray(patches).reshape(n * h_out * w_out, k_h * k_w * c_in)


def conv_weight_to_dense(weight) -> np.ndarray:
    """``(c_out, c_in, k_h, k_w)`` kernel -> ``(k_h * k_w * c_in, c_out)`` dense weights."""
    weight = np.asarray(weight)
    if weight.ndim != NCHW_NDIM:
        raise ValueError(f"weight must be 4-D (c_out, c_in, k_h, k_w), got shape {weight.shape}")
    c_out, c_in, k_h, k_w = weight.shape
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(k_h * k_w * c_in, c_out))


def dense_to_conv_weight(W, *, c_in: int, kernel_size) -> np.ndarray:
    """Inverse of :func:`conv_weight_to_dense`: back to ``(c_out, c_in, k_h, k_w)``."""
    W = np.asarray(W)
    k_h, k_w = _pair("kernel_size", kernel_size, low=1)
    if W.ndim != 2 or W.shape[0] != k_h * k_w * c_in:
        raise ValueError(
            f"W has shape {W.shape}; expected ({k_h * k_w * c_in}, c_out) for c_in={c_in} "
            f"and kernel_size={(k_h, k_w)}"
        )
    c_out = W.shape[1]
    return np.ascontiguousarray(W.reshape(k_h, k_w, c_in, c_out).transpose(3, 2, 0, 1))


def patches_to_nchw(Y, *, n: int, out_hw: tuple[int, int]) -> np.ndarray:
    """Dense-layer output ``(n * h_out * w_out, c_out)`` -> NCHW ``(n, c_out, h_out, w_out)``."""
    Y = np.asarray(Y)
    h_out, w_out = _pair("out_hw", out_hw, low=1)
    if Y.ndim != 2 or Y.shape[0] != n * h_out * w_out:
        raise ValueError(
            f"Y has shape {Y.shape}; expected ({n * h_out * w_out}, c_out) for n={n} and "
            f"out_hw={(h_out, w_out)}"
        )
    return np.ascontiguousarray(Y.reshape(n, h_out, w_out, Y.shape[1]).transpose(0, 3, 1, 2))


def nchw_to_rows(y) -> np.ndarray:
    """NCHW ``(n, c, h, w)`` -> ``(n * h * w, c)``: a conv's output in the rows of its
    dense program (inverse of :func:`patches_to_nchw`)."""
    y = np.asarray(y)
    if y.ndim != NCHW_NDIM:
        raise ValueError(f"y must be 4-D (n, c, h, w), got shape {y.shape}")
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(-1, y.shape[1])


def conv2d_as_dense(weight, bias=None, *, activation: str = "relu"):
    """The :class:`~nettrim.network.DenseLayer` that a conv2d computes on :func:`im2col` rows."""
    from .network import DenseLayer  # network.py builds on this module

    return DenseLayer(
        conv_weight_to_dense(weight), None if bias is None else np.asarray(bias), activation
    )

"""im2col against a direct loop convolution (an independent route)."""

import numpy as np
import pytest

from nettrim.conv import (
    conv2d_as_dense,
    conv_output_shape,
    conv_weight_to_dense,
    dense_to_conv_weight,
    im2col,
    patches_to_nchw,
)


def loop_conv2d(x, weight, bias, stride, padding):
    """Textbook cross-correlation (PyTorch's conv2d), one output entry at a time."""
    n, c_in, h, w = x.shape
    c_out, _, k_h, k_w = weight.shape
    s_h, s_w = stride
    p_h, p_w = padding
    xp = np.zeros((n, c_in, h + 2 * p_h, w + 2 * p_w))
    xp[:, :, p_h : p_h + h, p_w : p_w + w] = x
    h_out = (h + 2 * p_h - k_h) // s_h + 1
    w_out = (w + 2 * p_w - k_w) // s_w + 1
    out = np.zeros((n, c_out, h_out, w_out))
    for i in range(n):
        for o in range(c_out):
            for r in range(h_out):
                for c in range(w_out):
                    total = bias[o]
                    for ch in range(c_in):
                        for a in range(k_h):
                            for b in range(k_w):
                                total += xp[i, ch, r * s_h + a, c * s_w + b] * weight[o, ch, a, b]
                    out[i, o, r, c] = total
    return out


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding"),
    [
        ((2, 3, 7, 6), (3, 3), (1, 1), (0, 0)),
        ((2, 2, 8, 9), (3, 2), (2, 1), (1, 2)),
        ((1, 4, 5, 5), (1, 1), (2, 2), (0, 0)),
        ((3, 1, 6, 7), (5, 4), (3, 2), (2, 1)),
    ],
)
def test_im2col_matches_loop_convolution(shape, kernel, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    c_out = 5
    weight = rng.standard_normal((c_out, shape[1], *kernel))
    bias = rng.standard_normal(c_out)
    expected = loop_conv2d(x, weight, bias, stride, padding)

    P = im2col(x, kernel, stride=stride, padding=padding)
    out_hw = conv_output_shape(shape[2:], kernel, stride=stride, padding=padding)
    assert P.shape == (shape[0] * out_hw[0] * out_hw[1], kernel[0] * kernel[1] * shape[1])
    layer = conv2d_as_dense(weight, bias, activation="linear")
    got = patches_to_nchw(layer(P), n=shape[0], out_hw=out_hw)
    # same sums in a different order: agreement to rounding
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_kernel_round_trip():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((6, 3, 2, 4))
    W = conv_weight_to_dense(weight)
    assert W.shape == (2 * 4 * 3, 6)
    np.testing.assert_array_equal(dense_to_conv_weight(W, c_in=3, kernel_size=(2, 4)), weight)


def test_bad_arguments_name_themselves():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="x must be 4-D"):
        im2col(x[0], 3)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        im2col(x, 3, stride=0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        im2col(x, 5)
    with pytest.raises(ValueError, match="weight must be 4-D"):
        conv_weight_to_dense(np.zeros((2, 2)))

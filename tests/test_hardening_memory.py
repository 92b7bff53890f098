"""Peak memory of each solver stays under the formula of ``docs/hardening.md``, "Memory".

Measured with tracemalloc (NumPy registers its buffers with it), the inputs allocated before
the measurement starts, on a mid-size layer that is not one of the sizes the formulas were
read from.
"""

import tracemalloc
import warnings

import numpy as np
import pytest

from nettrim import prune_layer, trim_layer
from nettrim.pruning import METHODS

N, D_IN, D_OUT = 600, 60, 10


def net_trim_admm_bytes(n: int, d_in: int, d_out: int, itemsize: int) -> int:
    """Net-Trim's ADMM (``docs/hardening.md``): ``d = d_in + 1`` rows with the bias."""
    d = d_in + 1
    return (
        (3 * itemsize + 16) * n * d + (12 * itemsize + 40) * n * d_out + 16 * d * d + 32 * d * d_out
    )


def l0_bytes(n: int, d_in: int, d_out: int, itemsize: int) -> int:
    """Every L0 method (from the Gram matrix, in float64): ``d = d_in + 1``."""
    d = d_in + 1
    return 8 * n * d + 8 * (12 * d * d + 4 * d * d_out)


def _peak(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _layer(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D_IN)).astype(dtype)
    W = rng.standard_normal((D_IN, D_OUT)) * (rng.random((D_IN, D_OUT)) < 0.3)
    return X, W.astype(dtype), np.maximum(X @ W, 0.0).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_net_trim_admm_peak_memory_is_under_its_formula(dtype):
    X, _, Y = _layer(dtype)
    trim_layer(X[:50, :5], Y[:50, :3], eps=0.05, solver="admm")  # compiled outside the count
    peak = _peak(lambda: trim_layer(X, Y, eps=0.05, solver="admm"))
    bound = net_trim_admm_bytes(N, D_IN, D_OUT, np.dtype(dtype).itemsize)
    assert peak <= bound, f"{peak / 1e6:.2f} MB > {bound / 1e6:.2f} MB"
    assert peak >= 0.3 * bound  # the formula is an envelope, not a wild overestimate


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_l0_peak_memory_is_under_its_formula(method, dtype):
    X, W, _ = _layer(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune_layer(X[:50, :5], W[:5, :3], sparsity=0.5, method=method)  # compiled first
        peak = _peak(lambda: prune_layer(X, W, sparsity=0.5, method=method))
    bound = l0_bytes(N, D_IN, D_OUT, np.dtype(dtype).itemsize)
    assert peak <= bound, f"{peak / 1e6:.2f} MB > {bound / 1e6:.2f} MB"

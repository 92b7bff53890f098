"""Argument checks for the public entry points: one place, clear messages, then trust."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

from .network import Network

FLOAT_DTYPES = (np.float32, np.float64)


def as_float_dtype(*arrays: np.ndarray, dtype=None) -> np.dtype:
    """The working dtype: ``dtype`` if given, float32 if every array is float32, else float64."""
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.type not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    if arrays and all(_dtype_of(a) == np.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _dtype_of(value) -> np.dtype | None:
    """The dtype ``value`` would have as an array; ``None`` for what is no array at all
    (a ragged list): :func:`check_matrix` then rejects it with the argument's name."""
    try:
        return np.asarray(value).dtype
    except (TypeError, ValueError):
        return None


def check_matrix(name: str, value, dtype: np.dtype, *, allow_empty: bool = False) -> np.ndarray:
    """A 2-D finite float array, or a ``ValueError``/``TypeError`` naming ``name``."""
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from exc
    if array.dtype == bool:  # a mask passed by mistake far more often than 0/1 data
        raise TypeError(
            f"{name} must hold numbers, got dtype bool; pass 0/1 data as numbers "
            f"({name}.astype(float))"
        )
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D with one row per sample, got shape {array.shape}")
    if not allow_empty and 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=dtype)
    if not array.flags.aligned:
        # A Dask worker gets a task's small arrays as views into the received message, at
        # whatever byte offset they land (not even 8-aligned). NumPy computes X.T @ X of an
        # aligned X by BLAS syrk, of an unaligned one by gemm on aligned copies: other bits.
        # A copy (aligned) gives the same weights on any executor; aligned arrays, memory-
        # maps included, are not copied.
        array = array.copy()
    check_finite(name, array)
    return array


def check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); all must be finite")


def check_columns(name: str, array: np.ndarray, columns: int, what: str) -> None:
    """``array`` has ``columns`` columns (``what`` says whose count that is), or a
    ``ValueError`` naming both."""
    if array.shape[1] != columns:
        raise ValueError(f"{name} has {array.shape[1]} columns but {what} has {columns}")


def check_same_rows(names: Iterable[str], arrays: Iterable[np.ndarray]) -> None:
    names, arrays = list(names), list(arrays)
    rows = [a.shape[0] for a in arrays]
    if len(set(rows)) > 1:
        described = " but ".join(
            f"{n} has {r} rows (shape {a.shape})"
            for n, r, a in zip(names, rows, arrays, strict=True)
        )
        raise ValueError(f"{described}; all must have one row per sample")


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_scalar(
    name: str,
    value,
    *,
    low: float | None = None,
    low_inclusive: bool = True,
    high: float | None = None,
    integer: bool = False,
) -> float:
    """A real (or integer) scalar within bounds, or an error naming ``name``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # a 0-d array is a scalar
    if isinstance(value, bool) or not np.isscalar(value) or not np.isreal(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if integer and int(value) != value:
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value) if integer else float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (not low_inclusive and value == low)):
        relation = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {relation} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


def renamed_argument(caller: str, old: str, old_value, new: str, new_value, why: str = ""):
    """The value of argument ``new``, accepting its deprecated name ``old`` with a
    ``DeprecationWarning`` (a ``TypeError`` when both are given)."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"{caller}: give {new}= only ({old}= is its deprecated name)")
    warnings.warn(
        f"{caller}: {old}= is deprecated, use {new}=" + (f" ({why})" if why else ""),
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def check_network(network) -> Network:
    """A :class:`~nettrim.Network` with at least one layer, or an error saying what it is."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a nettrim.Network, got {type(network).__name__}")
    if len(network) == 0:
        raise ValueError("network has no layers")
    return network


def check_network_inputs(network: Network, X, dtype: np.dtype, *, name: str = "X") -> np.ndarray:
    """``X`` checked as the network's input: finite, 2-D with one column per input for a
    dense first layer, ``(n, *sample_shape)`` (NCHW images for a convolution) otherwise."""
    if not network.is_dense:
        return _check_samples(network, X, dtype, name)
    X = check_matrix(name, X, dtype)
    if X.shape[1] != network.dims[0]:
        raise ValueError(
            f"{name} has {X.shape[1]} columns but the network's first layer expects "
            f"{network.dims[0]} inputs"
        )
    return X


def _check_samples(network: Network, X, dtype: np.dtype, name: str) -> np.ndarray:
    """The inputs of a network with convolutions or pooling: samples of its input shape."""
    sample = tuple(network.shapes[0] or ())
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {X.dtype}; the inputs must be real numbers")
    if X.ndim != 1 + len(sample) or tuple(X.shape[1:]) != sample or not len(X):
        layout = " (NCHW images)" if len(sample) == 3 else ""
        raise ValueError(
            f"{name} has shape {X.shape}; the network's first layer "
            f"({type(network[0]).__name__}) takes (n, {', '.join(map(str, sample))}){layout} "
            "with n >= 1"
        )
    X = X.astype(dtype, copy=False)
    if not np.isfinite(X).all():
        bad = int(np.count_nonzero(~np.isfinite(X)))
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s); all must be finite")
    return X

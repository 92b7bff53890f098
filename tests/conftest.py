"""Factories the test modules share: planted random layers, their programs, random networks.

Each fixture returns the factory itself (pytest's factory-as-fixture pattern): a test asks
for ``planted_layer`` and calls it with its own seed and sizes. The fixtures are
session-scoped (they hold no state), so module-scoped fixtures can use them too.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from nettrim.layer import build_problem
from nettrim.network import Network

#: ``build_problem``'s arguments for the layer-wide ReLU program (P1) with bias, ``eps = 0.1``
#: relative; a test overrides what it varies.
PROGRAM_DEFAULTS = {
    "activation": "relu",
    "eps": 0.1,
    "relative": True,
    "per_neuron": False,
    "bias": True,
    "penalize_bias": True,
    "upper": None,
    "penalty": None,
    "active_tol": 0.0,
}


def make_planted_layer(
    seed: int = 0,
    *,
    n: int = 80,
    d_in: int = 6,
    d_out: int = 3,
    density: float = 0.6,
    bias: float = 0.3,
    activation: str = "relu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X, W, b, Y)``: Gaussian inputs ``(n, d_in)``, a Gaussian ``W`` with a fraction
    ``density`` of its entries kept, a Gaussian bias scaled by ``bias`` (``0``: none), and
    ``Y = act(X W + b)``. Draws in the order X, W, mask, b, so that ``X`` and ``W`` do not
    depend on ``bias``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    W = rng.standard_normal((d_in, d_out)) * (rng.random((d_in, d_out)) < density)
    b = bias * rng.standard_normal(d_out)
    Z = X @ W + b
    return X, W, b, (np.maximum(Z, 0.0) if activation == "relu" else Z)


def make_layer_program(X: np.ndarray, Y: np.ndarray, **overrides):
    """``build_problem(X, Y, ...)`` with :data:`PROGRAM_DEFAULTS` updated by ``overrides``."""
    return build_problem(X, Y, **{**PROGRAM_DEFAULTS, **overrides})


def make_random_network(
    dims: Sequence[int], seed: int = 0, *, n: int = 80
) -> tuple[Network, np.ndarray]:
    """A ReLU network with a linear last layer, Gaussian weights scaled by
    ``1/sqrt(d_in)`` and small biases, and ``n`` Gaussian inputs for it."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in itertools.pairwise(dims)]
    biases = [0.1 * rng.standard_normal(b) for b in dims[1:]]
    return Network.from_arrays(weights, biases), rng.standard_normal((n, dims[0]))


@contextlib.contextmanager
def dask_client(*, processes: bool) -> Iterator:
    """A two-worker Dask ``LocalCluster`` (worker processes, or threads of this process)
    and its client, one thread per worker, no dashboard."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def planted_layer():
    return make_planted_layer


@pytest.fixture(scope="session")
def layer_program():
    return make_layer_program


@pytest.fixture(scope="session")
def random_network():
    return make_random_network

"""A Dask cluster of two worker processes gives the same bits as the in-process run."""

import itertools
import os

import numpy as np
import pytest
from conftest import dask_client

from nettrim.network import Network
from nettrim.schemes import net_trim

DIMS = (10, 16, 12, 4)
N_SAMPLES = 80
EPS = 0.1


def random_network(seed: int = 0) -> tuple[Network, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in itertools.pairwise(DIMS)]
    biases = [0.1 * rng.standard_normal(b) for b in DIMS[1:]]
    return Network.from_arrays(weights, biases), rng.standard_normal((N_SAMPLES, DIMS[0]))


@pytest.fixture(scope="module")
def client():
    with dask_client(processes=True) as client:
        yield client


@pytest.mark.parametrize(
    ("scheme", "per_neuron", "solver"),
    [
        ("parallel", False, "admm"),
        ("cascade", False, "admm"),
        ("parallel", True, "clarabel"),
        ("cascade", True, "admm"),
    ],
)
def test_dask_equals_in_process(client, scheme, per_neuron, solver):
    net, X = random_network()
    options = dict(scheme=scheme, eps=EPS, per_neuron=per_neuron, neuron_block=5, solver=solver)
    local = net_trim(net, X, n_jobs=1, **options)
    remote = net_trim(net, X, executor=client.get_executor(), **options)
    for a, b in zip(local.layers, remote.layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    assert len(client.scheduler_info()["workers"]) == 2


def test_dask_workers_are_other_processes(client):
    executor = client.get_executor()
    pids = {executor.submit(os.getpid).result() for _ in range(4)}
    assert os.getpid() not in pids

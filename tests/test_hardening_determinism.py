"""Same inputs, same weights, bit for bit: across runs, ``n_jobs`` and executors, for every
method (Net-Trim's two schemes, with and without reweighting; every L0 method).

The executors: in-process, joblib's loky pool (``n_jobs=2`` / :func:`process_pool`), and a
Dask ``LocalCluster`` running its two workers as threads of this process (the process-based
cluster is ``tests/test_dask.py``'s). Layers are split into column blocks (``neuron_block``)
so a layer is several jobs.
"""

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import dask_client

from nettrim import net_trim, prune_network
from nettrim.executors import JobRunner, process_pool
from nettrim.pruning import METHODS
from nettrim.validation import check_matrix


def _digest(result) -> str:
    """SHA-256 of every pruned weight and bias, in order, with dtypes and shapes."""
    digest = hashlib.sha256()
    for layer in result.network.layers:
        for array in (layer.W, layer.b):
            array = np.ascontiguousarray(np.asarray(array))
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def data(random_network):
    return random_network([8, 10, 6, 3], seed=5, n=60)


#: A job that imports what every pruning job needs: the slow part of a worker's start.
_WARM_UP = "import nettrim.layer, nettrim.pruning"


@pytest.fixture(scope="module")
def executors():
    """The executors besides in-process: a loky pool and an in-process Dask cluster.

    Both process pools (this one and joblib's, which ``n_jobs=2`` reuses) start their
    workers at once, while the cluster starts in this thread, rather than one after another
    inside the first test.
    """
    pool = process_pool(2)
    with ThreadPoolExecutor(1) as starter:
        warming = [pool.submit(exec, _WARM_UP) for _ in range(2)]
        warming.append(starter.submit(JobRunner(n_jobs=2).map, exec, [_WARM_UP] * 2))
        try:
            with dask_client(processes=False) as client:
                for future in warming:
                    future.result()
                yield {"loky": pool, "dask": client.get_executor()}
        finally:
            pool.shutdown()


NET_TRIM = [
    pytest.param(dict(scheme="parallel"), id="parallel"),
    pytest.param(dict(scheme="cascade"), id="cascade"),
    pytest.param(dict(scheme="parallel", reweight_rounds=1), id="parallel-reweighted"),
    pytest.param(dict(scheme="cascade", per_neuron=True), id="cascade-per-neuron"),
]


@pytest.mark.parametrize("settings", NET_TRIM)
def test_net_trim_is_bit_identical_across_runs_n_jobs_and_executors(data, executors, settings):
    network, X = data
    common = dict(eps=0.1, solver="admm", neuron_block=4, **settings)
    runs = {
        "in-process": net_trim(network, X, n_jobs=1, **common),
        "in-process again": net_trim(network, X, n_jobs=1, **common),
        "n_jobs=2": net_trim(network, X, n_jobs=2, **common),
    }
    for name, executor in executors.items():
        runs[name] = net_trim(network, X, executor=executor, **common)
    assert all(run.success for run in runs.values())
    digests = {name: _digest(run) for name, run in runs.items()}
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("method", METHODS)
def test_l0_pruning_is_bit_identical_across_runs_and_executors(data, executors, method):
    network, X = data
    common = dict(sparsity=0.5, method=method)
    parallel = [prune_network(network, X, scheme="parallel", **common) for _ in range(2)]
    parallel += [
        prune_network(network, X, scheme="parallel", executor=executor, **common)
        for executor in executors.values()
    ]
    assert len({_digest(run) for run in parallel}) == 1
    cascade = [prune_network(network, X, scheme="cascade", **common) for _ in range(2)]
    assert _digest(cascade[0]) == _digest(cascade[1])


def _unaligned(array: np.ndarray, offset: int = 4) -> np.ndarray:
    """A copy of ``array`` whose data starts ``offset`` bytes past an aligned address."""
    buffer = np.empty(array.nbytes + 2 * array.itemsize, dtype=np.uint8)
    start = -buffer.ctypes.data % array.itemsize + offset
    out = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


@pytest.mark.parametrize("method", ["admm", "iht", "sparsegpt"])
def test_l0_pruning_ignores_the_alignment_of_its_input(random_network, method):
    """A Dask worker receives a task's small arrays at any byte offset of its message
    (``tests/test_cli_dask.py``): unaligned inputs give the aligned inputs' weights, bit for
    bit (NumPy's ``X.T @ X`` of an unaligned ``X`` runs BLAS gemm, not syrk: other bits)."""
    network, X = random_network((12, 70, 20, 4), seed=4, n=90)
    moved = _unaligned(X)
    assert not moved.flags.aligned and np.array_equal(moved, X)
    assert check_matrix("X", moved, np.dtype(np.float64)).flags.aligned
    common = dict(sparsity=0.5, method=method, scheme="parallel")
    assert _digest(prune_network(network, moved, **common)) == _digest(
        prune_network(network, X, **common)
    )

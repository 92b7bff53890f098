"""Executor machinery: stored arrays, BLAS limits inside jobs, joblib's loky pool."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from joblib._parallel_backends import LokyBackend
from threadpoolctl import threadpool_info

from nettrim import net_trim
from nettrim.executors import (
    ArrayStore,
    JobRunner,
    StoredArray,
    process_pool,
    resolve,
    split_columns,
    stop_pool_workers,
)


def blas_threads_in_job(_=None) -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def column_sums(stored) -> np.ndarray:
    array = resolve(stored)
    assert isinstance(array, np.memmap) or not isinstance(stored, StoredArray)
    return np.asarray(array.sum(axis=0))


def process_id(_=None) -> int:
    return os.getpid()


def worker_setup(_=None) -> tuple[bool, str | None]:
    """Whether the worker ignores Ctrl-C, and the BLAS thread limit it was started with."""
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN, os.environ.get("OMP_NUM_THREADS")


def is_memmap(array) -> bool:
    return isinstance(array, np.memmap)


def fail(_):
    raise ArithmeticError("job failed on purpose")


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as executor:
        yield executor


def test_store_writes_each_array_once_and_maps_it_read_only(tmp_path):
    array = np.arange(12.0).reshape(3, 4)
    with ArrayStore(tmp_path) as store:
        first, again = store.put(array), store.put(array)
        assert first == again and len(os.listdir(store.path)) == 1
        loaded = first.load()
        assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
        np.testing.assert_array_equal(loaded, array)
        assert first.shape == (3, 4) and first.dtype == "float64"
        path = store.path
    assert not os.path.exists(path)


def test_pools_are_loky_fresh_interpreters(pool):
    # loky: fork immediately followed by exec, never a plain fork (numba's threading layer)
    assert pool._context.get_start_method() == "loky"
    with JobRunner(n_jobs=2) as runner:
        assert isinstance(runner._parallel._backend, LokyBackend)


def test_n_jobs_runs_on_loky_workers_with_mapped_arrays_and_one_blas_thread():
    large = np.random.default_rng(1).standard_normal((400, 500))  # 1.6 MB > joblib's 1M
    with JobRunner(n_jobs=2, max_parallel=2) as runner:
        assert not runner.local and runner.share(large) is large
        pids = set(runner.map(process_id, range(4)))
        threads = runner.map(blas_threads_in_job, range(2))
        (mapped,) = runner.map(is_memmap, [large])
        (sums,) = runner.map(column_sums, [large])
    assert os.getpid() not in pids
    assert all(t == [1] * len(t) for t in threads)
    assert mapped
    np.testing.assert_array_equal(sums, large.sum(axis=0))


def test_n_jobs_workers_ignore_ctrl_c_and_start_with_the_blas_limit():
    # a terminal's Ctrl-C reaches every worker too: the driver alone handles it; and the
    # limit the workers start with is blas_threads, not joblib's cores // workers
    with JobRunner(n_jobs=2, blas_threads=3) as runner:
        setups = runner.map(worker_setup, range(4))
    assert setups == [(True, "3")] * 4
    with process_pool(2) as executor:
        assert [ignores for ignores, _ in executor.map(worker_setup, range(2))] == [True] * 2


def test_stop_pool_workers_ends_the_reusable_workers():
    with JobRunner(n_jobs=2) as runner:
        pids = set(runner.map(process_id, range(4)))
    for pid in pids:
        os.kill(pid, 0)  # joblib keeps them for the next call
    stop_pool_workers()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    stop_pool_workers()  # with none running: nothing to do
    with JobRunner(n_jobs=2) as runner:  # a later call starts fresh ones
        assert set(runner.map(process_id, range(2))).isdisjoint(pids)


def test_pool_jobs_get_memory_mapped_arrays_and_one_blas_thread(pool):
    array = np.random.default_rng(0).standard_normal((50, 3))
    with JobRunner(pool) as runner:
        shared = runner.share(array)
        assert isinstance(shared, StoredArray)
        (sums,) = runner.map(column_sums, [shared])
        threads = runner.map(blas_threads_in_job, range(2))
        pids = set(runner.map(process_id, range(4)))
    np.testing.assert_allclose(sums, array.sum(axis=0))
    assert all(t == [1] * len(t) for t in threads)
    assert os.getpid() not in pids


def test_in_process_runner_limits_blas_inside_the_job():
    with JobRunner(n_jobs=1) as runner:
        assert runner.local and runner.store is None
        array = np.ones((2, 2))
        assert runner.share(array) is array
        (threads,) = runner.map(blas_threads_in_job, [None])
        assert threads == [1] * len(threads)
    with JobRunner(n_jobs=1, blas_threads=None) as runner:
        (threads,) = runner.map(blas_threads_in_job, [None])
        assert threads == blas_threads_in_job()


def test_job_errors_reach_the_caller(pool):
    for runner in (JobRunner(n_jobs=1), JobRunner(pool), JobRunner(n_jobs=2, max_parallel=2)):
        with runner, pytest.raises(ArithmeticError, match="on purpose"):
            runner.map(fail, [0])


def test_owned_pool_is_capped_by_max_parallel():
    with JobRunner(n_jobs=4, max_parallel=1) as runner:
        assert runner.local


def test_arguments_are_checked(pool):
    with pytest.raises(ValueError, match="either executor or n_jobs"):
        JobRunner(pool, n_jobs=2)
    with pytest.raises(TypeError, match=r"concurrent\.futures\.Executor"):
        JobRunner("pool")
    with pytest.raises(ValueError, match="blas_threads must be >= 1"):
        JobRunner(n_jobs=1, blas_threads=0)
    with pytest.raises(ValueError, match="n_jobs must be >= 1"):
        JobRunner(n_jobs=-3)


def test_split_columns_does_not_depend_on_workers():
    assert split_columns(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert split_columns(3, 64) == [slice(0, 3)]


SCRIPT_WITHOUT_MAIN_GUARD = """
import itertools
import sys

import numpy as np

from nettrim import Network, net_trim

rng = np.random.default_rng(0)
dims = (10, 16, 12, 4)
weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in itertools.pairwise(dims)]
biases = [0.1 * rng.standard_normal(b) for b in dims[1:]]
net = Network.from_arrays(weights, biases)
X = rng.standard_normal((80, dims[0]))
result = net_trim(net, X, eps=0.1, solver="admm", n_jobs=2)
arrays = {}
for l, layer in enumerate(result.layers):
    arrays[f"W{l}"], arrays[f"b{l}"] = layer.W, layer.b
np.savez(sys.argv[1], **arrays)
"""


def test_a_script_without_main_guard_runs_net_trim_on_two_workers(tmp_path):
    """joblib's loky workers do not re-run the caller's __main__ (a forkserver/spawn pool
    re-imports it, and the unguarded call inside crashed it with BrokenProcessPool)."""
    script, out = tmp_path / "prune.py", tmp_path / "weights.npz"
    script.write_text(textwrap.dedent(SCRIPT_WITHOUT_MAIN_GUARD))
    assert "__main__" not in script.read_text()
    done = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    namespace: dict = {}
    # the same network, in-process, by the same lines of the script
    exec(SCRIPT_WITHOUT_MAIN_GUARD.split("result =")[0], namespace)
    local = net_trim(namespace["net"], namespace["X"], eps=0.1, solver="admm", n_jobs=1)
    with np.load(out, allow_pickle=False) as saved:
        for l, layer in enumerate(local.layers):
            np.testing.assert_array_equal(saved[f"W{l}"], layer.W)
            np.testing.assert_array_equal(saved[f"b{l}"], layer.b)

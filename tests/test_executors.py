"""Executor machinery: stored arrays, BLAS limits inside jobs, safe start methods."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from nettrim.executors import (
    ArrayStore,
    JobRunner,
    StoredArray,
    process_pool,
    resolve,
    split_columns,
    start_method,
)


def blas_threads_in_job(_=None) -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def column_sums(stored) -> np.ndarray:
    array = resolve(stored)
    assert isinstance(array, np.memmap) or not isinstance(stored, StoredArray)
    return np.asarray(array.sum(axis=0))


def process_id(_=None) -> int:
    return os.getpid()


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


def test_start_method_is_never_fork(pool):
    assert start_method() in ("forkserver", "spawn")
    assert pool._mp_context.get_start_method() in ("forkserver", "spawn")


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
    for runner in (JobRunner(n_jobs=1), JobRunner(pool)):
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

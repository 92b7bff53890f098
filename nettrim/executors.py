"""Running layer jobs on a ``concurrent.futures.Executor``: process pools, Dask, in-process.

Three rules make a distributed run equal to an in-process one, bit for bit:

* every job runs with its BLAS limited to ``blas_threads`` threads (one by default), set
  *inside the job* with threadpoolctl, so it holds on any executor (a process pool, Dask's
  ``client.get_executor()``, or none);
* the default pool starts its workers with ``forkserver`` (or ``spawn``), never ``fork``:
  numba's threading layer aborts a forked child;
* large arrays travel as :class:`StoredArray` — the path of a ``.npy`` file written once to a
  temporary directory and memory-mapped by the worker (``allow_pickle=False``) — never as
  pickled copies inside every task.

Examples
--------
>>> import numpy as np
>>> from nettrim.executors import JobRunner
>>> with JobRunner(n_jobs=1) as runner:           # in-process, no pool
...     shared = runner.share(np.arange(6.0).reshape(3, 2))
...     runner.map(np.sum, [shared])
[np.float64(15.0)]
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .validation import check_scalar

#: BLAS threads per job unless told otherwise: one, so ``n_jobs`` jobs use ``n_jobs`` cores
#: and results do not depend on ``n_jobs``.
DEFAULT_BLAS_THREADS = 1
#: Start methods that are safe with numba's threading layer, in order of preference.
SAFE_START_METHODS = ("forkserver", "spawn")
_STORE_PREFIX = "nettrim-arrays-"


@dataclass(frozen=True)
class StoredArray:
    """A ``.npy`` file that a worker memory-maps instead of receiving a pickled copy."""

    path: str
    shape: tuple[int, ...]
    dtype: str

    def load(self) -> np.ndarray:
        """The array, memory-mapped read-only (``allow_pickle=False``)."""
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


def resolve(value: np.ndarray | StoredArray | None) -> np.ndarray | None:
    """The array behind ``value``: a :class:`StoredArray` is loaded, anything else returned."""
    if isinstance(value, StoredArray):
        return value.load()
    return value


class ArrayStore:
    """A temporary directory of ``.npy`` files, each array written once.

    Parameters
    ----------
    directory : str, optional
        Where to create the store; it must be visible to every worker (a shared file system
        for a multi-machine Dask cluster). The system temporary directory by default.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.path = tempfile.mkdtemp(prefix=_STORE_PREFIX, dir=directory)
        self._count = 0
        self._stored: dict[int, tuple[np.ndarray, StoredArray]] = {}

    def put(self, array: np.ndarray) -> StoredArray:
        """Write ``array`` (once: the same object is written only the first time)."""
        key = id(array)
        if key in self._stored and self._stored[key][0] is array:
            return self._stored[key][1]
        array = np.asarray(array)
        path = os.path.join(self.path, f"a{self._count:05d}.npy")
        self._count += 1
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
        stored = StoredArray(path=path, shape=tuple(array.shape), dtype=str(array.dtype))
        self._stored[key] = (array, stored)  # keep the array alive so its id stays unique
        return stored

    def close(self) -> None:
        """Delete the files."""
        self._stored.clear()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> ArrayStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_method() -> str:
    """``"forkserver"`` where the platform has it, else ``"spawn"`` (never ``"fork"``)."""
    available = multiprocessing.get_all_start_methods()
    return next(method for method in SAFE_START_METHODS if method in available)


def _init_worker(blas_threads: int | None) -> None:
    """Pool initializer: limit BLAS for the whole life of the worker process."""
    if blas_threads is not None:
        threadpool_limits(blas_threads)


def process_pool(n_jobs: int, *, blas_threads: int | None = DEFAULT_BLAS_THREADS) -> Executor:
    """A ``ProcessPoolExecutor`` with ``n_jobs`` workers, started by :func:`start_method`.

    Reuse one pool for many calls (e.g. an eps sweep): starting workers costs about a second.
    """
    n_jobs = int(check_scalar("n_jobs", n_jobs, low=1, integer=True))
    return ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=multiprocessing.get_context(start_method()),
        initializer=_init_worker,
        initargs=(blas_threads,),
    )


def call_limited(fn: Callable[..., Any], blas_threads: int | None, *args: Any) -> Any:
    """``fn(*args)`` with BLAS limited to ``blas_threads`` threads (``None``: no limit)."""
    if blas_threads is None:
        return fn(*args)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return fn(*args)


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None`` -> every core, ``-1`` -> every core, ``k >= 1`` -> ``k``."""
    cores = os.cpu_count() or 1
    if n_jobs is None or n_jobs == -1:
        return cores
    return int(check_scalar("n_jobs", n_jobs, low=1, integer=True))


class JobRunner:
    """Where a scheme's jobs run: a given executor, a pool it owns, or in-process.

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Any executor (a ``ProcessPoolExecutor``, Dask's ``client.get_executor()``, ...).
        Not shut down by the runner. Exclusive with ``n_jobs``.
    n_jobs : int, optional
        Workers of the process pool the runner creates when no executor is given: ``None``
        or ``-1`` for every core, ``1`` to run in-process (no pool). Never more workers than
        ``max_parallel`` (the jobs that can run at once).
    blas_threads : int or None
        BLAS threads for each job (``None`` leaves BLAS alone).
    max_parallel : int, optional
        Upper bound on the jobs that can run at once; with 1 no pool is started.
    store_dir : str, optional
        Directory for the memory-mapped arrays (see :class:`ArrayStore`).
    """

    def __init__(
        self,
        executor: Executor | None = None,
        n_jobs: int | None = None,
        *,
        blas_threads: int | None = DEFAULT_BLAS_THREADS,
        max_parallel: int | None = None,
        store_dir: str | os.PathLike | None = None,
    ) -> None:
        if executor is not None and n_jobs is not None:
            raise ValueError(
                "pass either executor or n_jobs, not both (the executor decides "
                "how many workers run)"
            )
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(
                f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}"
            )
        if blas_threads is not None:
            blas_threads = int(check_scalar("blas_threads", blas_threads, low=1, integer=True))
        self.blas_threads = blas_threads
        self._owned = False
        self.executor = executor
        if executor is None:
            workers = resolve_n_jobs(n_jobs)
            if max_parallel is not None:
                workers = min(workers, max(1, int(max_parallel)))
            if workers > 1:
                self.executor = process_pool(workers, blas_threads=blas_threads)
                self._owned = True
        self.store = ArrayStore(store_dir) if self.executor is not None else None

    @property
    def local(self) -> bool:
        """Whether jobs run in this process, one after another."""
        return self.executor is None

    def share(self, array: np.ndarray | None) -> np.ndarray | StoredArray | None:
        """What a job should receive for ``array``: itself in-process, else a stored path."""
        if array is None or self.store is None:
            return array
        return self.store.put(array)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Schedule ``fn(*args)`` under the BLAS limit; in-process it runs now."""
        if self.executor is None:
            future: Future = Future()
            try:
                future.set_result(call_limited(fn, self.blas_threads, *args))
            except BaseException as exc:  # delivered through the future, as an executor would
                future.set_exception(exc)
            return future
        return self.executor.submit(call_limited, fn, self.blas_threads, *args)

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> list[Any]:
        """``[fn(task) for task in tasks]``, run on the executor, results in order."""
        futures = [self.submit(fn, task) for task in tasks]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Shut down an owned pool and delete the stored arrays."""
        if self._owned and self.executor is not None:
            self.executor.shutdown(wait=True)
        self.executor = None if self._owned else self.executor
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def split_columns(d_out: int, block: int) -> Sequence[slice]:
    """Contiguous column blocks of at most ``block`` columns (independent of ``n_jobs``)."""
    block = int(check_scalar("neuron_block", block, low=1, integer=True))
    return [slice(start, min(start + block, d_out)) for start in range(0, d_out, block)]

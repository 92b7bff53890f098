"""Where layer jobs run: in-process, on joblib's loky pool, or on a given ``Executor``.

The default pool is joblib's loky backend (scikit-learn's ``n_jobs`` convention; why this
pool and not a hand-made one: ``docs/architecture.md``, "The process pool"):

* loky starts each worker as a fresh interpreter (fork immediately followed by exec) that
  does **not** re-run the caller's ``__main__``: a script without an
  ``if __name__ == "__main__":`` guard works, and no worker is ever a fork of a process whose
  numba threading layer has started (numba aborts such a child);
* arrays above joblib's ``max_nbytes`` (1 MB) reach the workers memory-mapped from a
  temporary folder, written once per array;
* the workers are kept between calls, so an eps sweep or a tuner pays their start once;
* the workers ignore Ctrl-C (SIGINT, which a terminal sends to every process of the
  command): the driver gets it, stops its jobs and ends the pool, so one interrupt prints
  one line, not a traceback per worker.

Three rules make a distributed run equal to an in-process one, bit for bit:

* every job runs with its BLAS limited to ``blas_threads`` threads (one by default), set
  *inside the job* with threadpoolctl, so it holds on any executor (loky, Dask's
  ``client.get_executor()``, or none); the loky workers are started with the same limit;
* the jobs, and how a layer splits into column blocks, never depend on ``n_jobs``;
* on a given executor, large arrays travel as :class:`StoredArray` — the path of a ``.npy``
  file written once to ``store_dir`` and memory-mapped by the worker
  (``allow_pickle=False``) — never as pickled copies inside every task.

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

import contextlib
import os
import queue
import shutil
import signal
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky import ProcessPoolExecutor as LokyExecutor
from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.backend import get_context as loky_context
from threadpoolctl import threadpool_limits

from .validation import check_scalar

#: BLAS threads per job unless told otherwise: one, so ``n_jobs`` jobs use ``n_jobs`` cores
#: and results do not depend on ``n_jobs``.
DEFAULT_BLAS_THREADS = 1
#: joblib's backend for ``n_jobs > 1``: fresh worker processes, no ``__main__`` re-import.
BACKEND = "loky"
_STORE_PREFIX = "nettrim-arrays-"


class WorkerDiedError(RuntimeError):
    """A worker process ended (killed, out of memory, ``os._exit``) before its jobs did.

    Attributes
    ----------
    label : str
        What the first job without a result was doing (e.g. ``"layer 2, columns 0:64"``).
    finished : list
        Every job's result in job order, ``None`` for those that did not finish: work done
        before the worker died is kept.
    """

    def __init__(self, label: str, finished: list, cause: BaseException) -> None:
        self.label = label
        self.finished = finished
        done = sum(r is not None for r in finished)
        detail = str(cause).splitlines()[0] if str(cause) else "no detail"
        super().__init__(
            f"a worker process died before {label} finished ({type(cause).__name__}: "
            f"{detail}); the results of the {done} of {len(finished)} jobs before it are "
            "kept in .finished (a network run's finished layers in .layers). A worker "
            "dies when the system kills it, most often for memory: try fewer n_jobs or a "
            "smaller neuron_block"
        )


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


def _ignore_interrupts() -> None:
    """Pool initializer: Ctrl-C is the driver's to handle (it ends the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_worker(blas_threads: int | None) -> None:
    """Pool initializer: no Ctrl-C, and BLAS limited for the whole life of the worker."""
    _ignore_interrupts()
    if blas_threads is not None:
        threadpool_limits(blas_threads)


def process_pool(n_jobs: int, *, blas_threads: int | None = DEFAULT_BLAS_THREADS) -> Executor:
    """A loky process pool of ``n_jobs`` workers, as a ``concurrent.futures.Executor``.

    For passing one pool explicitly as ``executor=``; ``n_jobs=`` alone already reuses
    joblib's workers between calls. The workers are fresh interpreters (no ``__main__``
    re-import, never a fork of a process running numba threads).
    """
    n_jobs = int(check_scalar("n_jobs", n_jobs, low=1, integer=True))
    return LokyExecutor(max_workers=n_jobs, initializer=_init_worker, initargs=(blas_threads,))


def stop_pool_workers() -> None:
    """Stop the workers of joblib's reusable loky pool now, waiting for them.

    ``n_jobs=`` keeps them between calls, and loky otherwise stops them in an exit hook of
    the interpreter, where a Ctrl-C arriving in that last moment ends in a traceback
    instead of the caller's handling (the command line calls this before it exits). A
    later ``n_jobs=`` call starts fresh workers.
    """
    # reuse=True hands back the running pool as it is (no resize, no new workers); with
    # none running it makes an empty one, which costs nothing to stop
    get_reusable_executor(reuse=True).shutdown(wait=True)


def check_blas_threads(blas_threads: int | None) -> int | None:
    """``blas_threads`` as an int ``>= 1``, or ``None`` (the process's own BLAS threads)."""
    if blas_threads is None:
        return None
    return int(check_scalar("blas_threads", blas_threads, low=1, integer=True))


def call_limited(fn: Callable[..., Any], blas_threads: int | None, *args: Any) -> Any:
    """``fn(*args)`` with BLAS limited to ``blas_threads`` threads (``None``: no limit)."""
    if blas_threads is None:
        return fn(*args)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return fn(*args)


def resolve_n_jobs(n_jobs: int | None, blas_threads: int | None = None) -> int:
    """``None`` or ``-1`` -> every core (divided by ``blas_threads``), ``k >= 1`` -> ``k``.

    The default keeps ``workers x blas_threads <= cores``; an explicit ``k`` is honoured.
    """
    cores = os.cpu_count() or 1
    if n_jobs is None or n_jobs == -1:
        return max(1, cores // (blas_threads or 1))
    return int(check_scalar("n_jobs", n_jobs, low=1, integer=True))


class Reporter:
    """A job's ``report``: sends a payload (plain numbers, strings, lists and dicts) to the
    driver while the job runs (:meth:`JobRunner.map`'s ``on_report``).

    A channel to another process never fails a job: once it is gone (the driver ended, a
    manager process killed), later reports are dropped. In-process, the driver's
    ``on_report`` is called directly and what it raises ends the job, as it would end the
    ``map`` call from the driver's relay.
    """

    def __init__(self, sender, index: int) -> None:
        self.sender, self.index = sender, index

    def __call__(self, payload) -> None:
        if self.sender is None:
            return
        try:
            self.sender.send(self.index, payload)
        except Exception as exc:
            if isinstance(self.sender, _DirectSender):
                raise
            self.sender = None  # the job goes on unreported
            if not isinstance(exc, (OSError, EOFError)):  # not just the driver's end gone
                warnings.warn(f"progress reports stopped: {exc!r}", RuntimeWarning, stacklevel=2)


@dataclass(frozen=True)
class _QueueSender:
    """Reports through a multiprocessing manager's queue (loky workers, other executors)."""

    queue: Any
    call: int

    def send(self, index: int, payload) -> None:
        self.queue.put((self.call, index, payload))


@dataclass(frozen=True)
class _DaskSender:
    """Reports as Dask events of ``topic`` (worker -> scheduler -> client, the streams
    that carry the job's result after them)."""

    topic: str
    call: int

    def send(self, index: int, payload) -> None:
        from distributed import get_worker

        get_worker().log_event(self.topic, [self.call, index, payload])


class _DirectSender:
    """Reports of in-process jobs: straight to ``on_report``."""

    def __init__(self, on_report: Callable[[int, Any], None]) -> None:
        self.on_report = on_report

    def send(self, index: int, payload) -> None:
        self.on_report(index, payload)


def _call_reporting(fn: Callable[[Any, Reporter], Any], sender, index: int, task: Any) -> Any:
    return fn(task, Reporter(sender, index))


def _dask_client(executor: Executor | None):
    """The Dask client behind ``client.get_executor()`` (``None`` for any other executor)."""
    if executor is None or not type(executor).__module__.startswith("distributed"):
        return None
    return getattr(executor, "_client", None)


class _ReportChannel:
    """The driver's end of the jobs' reports: a queue that workers reach (a manager's queue,
    or Dask events put into a local one) and a thread per :meth:`JobRunner.map` call that
    hands each report to ``on_report`` under the runner's lock.

    One channel serves a runner's every ``map`` call; each call numbers its reports, so a
    report that arrives after its call ended is dropped.
    """

    def __init__(self, executor: Executor | None) -> None:
        self.client = _dask_client(executor)
        self.manager = None
        self.calls = 0
        if self.client is not None:
            self.topic = f"nettrim-progress-{uuid.uuid4().hex}"
            self.inbox: Any = queue.Queue()
            self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(event[1]))
        else:
            # the manager process is started as loky starts its workers (a fresh interpreter
            # that does not re-run the caller's __main__): no fork of this process, whose
            # BLAS, numba or Dask threads a fork would copy mid-flight
            self.manager = loky_context("loky").Manager()
            self.inbox = self.manager.Queue()

    def sender(self):
        self.calls += 1
        if self.client is not None:
            return _DaskSender(self.topic, self.calls)
        return _QueueSender(self.inbox, self.calls)

    def relay(self, on_report: Callable[[int, Any], None], lock: threading.Lock) -> _Relay:
        return _Relay(self, on_report, lock)

    def close(self) -> None:
        if self.client is not None:
            self.client.unsubscribe_topic(self.topic)
        if self.manager is not None:
            self.manager.shutdown()


class _Relay:
    """The thread that hands one ``map`` call's reports to ``on_report``; the first
    exception ``on_report`` raises is kept for the caller (:meth:`close` raises it)."""

    #: How long :meth:`close` waits for the reports sent before it to be handled.
    JOIN_SECONDS = 30.0

    def __init__(self, channel: _ReportChannel, on_report, lock: threading.Lock) -> None:
        self.channel, self.on_report, self.lock = channel, on_report, lock
        self.call = channel.calls
        self.error: BaseException | None = None
        self.abandoned = False  # close() stopped waiting: later reports are dropped
        self.thread = threading.Thread(target=self._run, name="nettrim-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                call, index, payload = self.channel.inbox.get()
            except Exception:  # the manager is gone: nothing more will come
                return
            if call == self.call and index is None:
                return
            if call != self.call or self.error is not None or self.abandoned:
                continue
            with self.lock:
                try:
                    self.on_report(index, payload)
                except BaseException as exc:  # raised again in the caller's thread
                    self.error = exc

    def close(self, *, raising: bool = True) -> None:
        """Deliver what was sent before (queues keep their order), stop, and raise what
        ``on_report`` raised (``raising``)."""
        with contextlib.suppress(Exception):  # a manager gone: the thread has ended or will
            self.channel.inbox.put((self.call, None, None))
        self.thread.join(timeout=self.JOIN_SECONDS)
        if self.thread.is_alive():  # on_report still busy: the call returns without it
            self.abandoned = True
            warnings.warn(
                f"progress reports were still being handled {self.JOIN_SECONDS:g} s after "
                "the jobs ended; the ones not yet handled are dropped",
                RuntimeWarning,
                stacklevel=3,
            )
        if raising and self.error is not None:
            raise self.error


class JobRunner:
    """Where a scheme's jobs run: a given executor, joblib's loky pool, or in-process.

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Any executor (Dask's ``client.get_executor()``, :func:`process_pool`, ...); arrays
        reach it as :class:`StoredArray`. Not shut down by the runner. Exclusive with
        ``n_jobs``.
    n_jobs : int, optional
        Workers of joblib's loky pool when no executor is given: ``None`` or ``-1`` for
        every core, ``1`` to run in-process (no pool). Never more workers than
        ``max_parallel`` (the jobs that can run at once).
    blas_threads : int or None
        BLAS threads for each job (``None`` leaves BLAS alone in-process; loky then gives
        each worker ``cores // workers`` threads).
    max_parallel : int, optional
        Upper bound on the jobs that can run at once; with 1 no pool is started.
    store_dir : str, optional
        Directory for the memory-mapped arrays (see :class:`ArrayStore`; joblib's temporary
        folder for the loky pool).
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
        self.blas_threads = blas_threads = check_blas_threads(blas_threads)
        self.executor = executor
        self._parallel: Parallel | None = None
        if executor is None:
            workers = resolve_n_jobs(n_jobs, blas_threads)
            if max_parallel is not None:
                workers = min(workers, max(1, int(max_parallel)))
            if workers > 1:
                # the worker options go through parallel_config: Parallel(inner_max_num_threads=)
                # is not one of Parallel's own and joblib drops it without a word
                with parallel_config(
                    backend=BACKEND,
                    inner_max_num_threads=blas_threads,
                    initializer=_ignore_interrupts,
                ):
                    self._parallel = Parallel(
                        n_jobs=workers,
                        return_as="generator",  # in order as they arrive: on_done, a death's prefix
                        temp_folder=None if store_dir is None else os.fspath(store_dir),
                    )
        self.store = ArrayStore(store_dir) if executor is not None else None
        self._channel: _ReportChannel | None = None
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        """Whether jobs run in this process, one after another."""
        return self.executor is None and self._parallel is None

    def share(self, array: np.ndarray | None) -> np.ndarray | StoredArray | None:
        """What a job should receive for ``array``: a stored path on a given executor, else
        the array itself (joblib memory-maps the large ones for its workers)."""
        if array is None or self.store is None:
            return array
        return self.store.put(array)

    def map(
        self,
        fn: Callable[..., Any],
        tasks: Iterable[Any],
        *,
        on_done: Callable[[int, Any], None] | None = None,
        on_report: Callable[[int, Any], None] | None = None,
        label: Callable[[Any], str] = lambda task: "a job",
    ) -> list[Any]:
        """``[fn(task) for task in tasks]`` under the BLAS limit, results in order.

        ``on_done(index, result)`` is called in this process as each job's result arrives
        (in job order: a finished job waits for the ones before it), so a worker's progress
        reaches the driver per finished job. A job's exception reaches the caller, raised
        again here; a worker process that dies raises :class:`WorkerDiedError`, naming
        ``label(task)`` of the first unfinished task and keeping the results that came back.

        With ``on_report``, ``fn`` is called as ``fn(task, report)``: ``report(payload)``
        (a :class:`Reporter`; the payload of plain numbers, strings, lists and dicts) sends
        to this process while the job runs, where ``on_report(index, payload)`` is called
        as the reports arrive: directly for in-process jobs; else from a thread of this
        process (through a manager's queue for a pool, Dask events for a Dask executor),
        never at the same time as ``on_done``. What ``on_report`` raises is raised here.
        """
        tasks = list(tasks)
        relay = None
        if on_report is None:
            calls = [(fn, task) for task in tasks]
        else:
            if self.local:
                sender = _DirectSender(on_report)
            else:
                self._channel = self._channel or _ReportChannel(self.executor)
                sender = self._channel.sender()
                relay = self._channel.relay(on_report, self._lock)
            calls = [(_call_reporting, fn, sender, i, task) for i, task in enumerate(tasks)]
        try:
            results = self._gather(calls, tasks, on_done, label)
        except BaseException:
            if relay is not None:
                relay.close(raising=False)  # the jobs' error is the one to see
            raise
        if relay is not None:
            relay.close()
        return results

    def _gather(self, calls: list[tuple], tasks: list, on_done, label) -> list[Any]:
        """Run ``call[0](*call[1:])`` for every call where the jobs run (:meth:`map`)."""
        results: list[Any] = []
        futures = []
        blas = self.blas_threads
        try:
            if self.executor is not None:
                futures = [self.executor.submit(call_limited, c[0], blas, *c[1:]) for c in calls]
                arriving = (future.result() for future in futures)
            elif self._parallel is not None:
                jobs = (delayed(call_limited)(c[0], blas, *c[1:]) for c in calls)
                arriving = self._parallel(jobs)  # in order: the prefix before a death
            else:
                arriving = (call_limited(c[0], blas, *c[1:]) for c in calls)
            for index, result in enumerate(arriving):
                results.append(result)
                if on_done is not None:
                    with self._lock:
                        on_done(index, result)
        except BrokenExecutor as exc:
            finished = results + [None] * (len(tasks) - len(results))
            for i, future in enumerate(futures):  # an executor's later jobs may be done too
                if future.done() and not future.cancelled() and future.exception() is None:
                    finished[i] = future.result()
            raise WorkerDiedError(label(tasks[len(results)]), finished, exc) from exc
        return results

    def close(self) -> None:
        """Delete the stored arrays, end the reports' channel (joblib keeps its workers
        for the next call)."""
        self._parallel = None
        channel, self._channel = self._channel, None
        try:
            if channel is not None:
                channel.close()
        finally:  # the arrays' folder goes whatever the channel's end does
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

"""Progress of a network run: the events :func:`~nettrim.net_trim` and
:func:`~nettrim.prune_network` report, and the command line's renderer of them.

A run calls ``progress(event)`` in the calling process (the driver) with a
:class:`ProgressEvent`:

* ``"job"`` — one job finished: a layer, or one column block of a layer in per-neuron mode.
  Jobs that run in pool or Dask workers are reported as their results reach the driver
  (in job order).
* ``"layer"`` — a layer is finished; ``result`` holds its :class:`~nettrim.LayerResult`
  (``resumed`` when it came from an earlier, interrupted run rather than a solve).
* ``"iteration"`` — a job's ADMM is under way; ``iterate`` holds the figures of one of its
  certificate checks (:class:`nettrim.solvers.AdmmIterate`: iteration, certified gap,
  feasibility, residuals). Sampled in the job: its first check, then at most one every
  ``ITERATION_INTERVAL`` seconds. They travel back from pool and Dask workers while the
  job runs (a manager's queue, Dask events) and are reported from a thread of the driver,
  never at the same time as another event. The exact solvers (Clarabel, ...) report none.

Any callable taking one event works, so a notebook can drive its own bar::

    from tqdm.auto import tqdm
    bar = tqdm(total=len(network))
    net_trim(network, X, progress=lambda e: e.kind == "layer" and bar.update())

:class:`StderrProgress` is what ``nettrim prune`` uses: a tqdm bar on a terminal, one plain
line per event otherwise (a log file, a pipe, CI), nothing with ``quiet``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from .solvers.admm import AdmmIterate

#: The kinds of :class:`ProgressEvent`.
EVENT_KINDS = ("job", "layer", "iteration")
#: Seconds between the ``"iteration"`` events of one job (its first check is always sent).
ITERATION_INTERVAL = 0.25
#: Seconds between the plain iteration lines of one job when stderr is not a terminal.
LINE_INTERVAL = 5.0
#: The terminal's bar: short, so that the latest ADMM check fits beside it on 80 columns
#: (the bar itself takes what width is left).
BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} jobs |{bar}| {elapsed}{postfix}"


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a network run.

    Attributes
    ----------
    kind : {"job", "layer", "iteration"}
    layer : int
        The layer the job or layer belongs to.
    n_layers : int
        Layers in the network.
    block : int
        The job's column block within its layer (0 unless per-neuron).
    n_blocks : int
        Column blocks (jobs) of that layer.
    jobs_done : int
        Jobs of the whole run finished so far (resumed layers not counted).
    jobs_total : int
        Jobs of the whole run in all (resumed layers not counted).
    result : LayerResult or None
        The finished layer (``"layer"`` events) or block (``"job"`` events).
    resumed : bool
        The layer was read back from a run directory, not solved now.
    iterate : AdmmIterate or None
        The ADMM's figures at a certificate check of the job (``"iteration"`` events).
    """

    kind: str
    layer: int
    n_layers: int
    block: int = 0
    n_blocks: int = 1
    jobs_done: int = 0
    jobs_total: int = 0
    result: Any = None
    resumed: bool = False
    iterate: AdmmIterate | None = None


ProgressCallback = Callable[[ProgressEvent], None]


def check_progress(progress) -> ProgressCallback | None:
    """``progress`` if callable (or ``None``); a TypeError naming the argument otherwise."""
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be a callable taking a ProgressEvent, got {type(progress).__name__}"
        )
    return progress


class JobCounter:
    """Counts a run's finished jobs and reports them: the one place events are built."""

    def __init__(self, progress: ProgressCallback | None, n_layers: int, total: int) -> None:
        self.progress, self.n_layers, self.total, self.done = progress, n_layers, total, 0

    def job(self, layer: int, block: int, n_blocks: int, result) -> None:
        self.done += 1
        self._send("job", layer, result, block=block, n_blocks=n_blocks)

    def layer(self, layer: int, result, *, resumed: bool = False) -> None:
        self._send("layer", layer, result, resumed=resumed)

    def iteration(self, layer: int, block: int, n_blocks: int, figures: dict) -> None:
        """A job's report (:class:`IterationSampler`'s payload) as an ``"iteration"`` event."""
        iterate = AdmmIterate(**figures)
        self._send("iteration", layer, None, block=block, n_blocks=n_blocks, iterate=iterate)

    @property
    def wants_iterations(self) -> bool:
        """Whether the jobs should send their iterations: a callback may say it does not
        show them (``wants_iterations = False``), which spares the channel to the workers."""
        return self.progress is not None and getattr(self.progress, "wants_iterations", True)

    def _send(self, kind: str, layer: int, result, **fields) -> None:
        if self.progress is not None:
            self.progress(
                ProgressEvent(
                    kind=kind,
                    layer=layer,
                    n_layers=self.n_layers,
                    jobs_done=self.done,
                    jobs_total=self.total,
                    result=result,
                    **fields,
                )
            )


class IterationSampler:
    """The ADMM callback of a job that reports its checks: the first, then one every
    ``interval`` seconds, each as a dict of plain values (what crosses to the driver).

    Parameters
    ----------
    report : callable
        Sends one payload to the driver (:class:`nettrim.executors.Reporter`).
    interval : float
        Seconds between two reports.
    """

    def __init__(self, report: Callable[[dict], None], interval: float = ITERATION_INTERVAL):
        self.report, self.interval = report, interval
        self._last: float | None = None

    def __call__(self, iterate: AdmmIterate) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        self.report(asdict(iterate))


def describe_iterate(event: ProgressEvent) -> str:
    """``"layer 2/3 block 1/4: ADMM iteration 400, gap 2.1e-03, feasible (excess 0.0e+00,
    violation 3.1e-04), 1.2 s"``."""
    it = event.iterate
    where = f"layer {event.layer + 1}/{event.n_layers}"
    if event.n_blocks > 1:
        where += f" block {event.block + 1}/{event.n_blocks}"
    feasible = "feasible" if it.feasible else "not yet feasible"
    return (
        f"{where}: ADMM iteration {it.iteration}, gap {it.gap:.1e}, {feasible} (excess "
        f"{it.ball_excess:.1e}, violation {it.violation:.1e}), {it.seconds:.1f} s"
    )


def describe_iterate_briefly(event: ProgressEvent) -> str:
    """``"L2/3 b1/4 it 400 gap 2.1e-03 infeas 3.1e-04"`` (beside a terminal's bar; the
    infeasibility is the larger of the ball's excess and the violation)."""
    it = event.iterate
    where = f"L{event.layer + 1}/{event.n_layers}"
    if event.n_blocks > 1:
        where += f" b{event.block + 1}/{event.n_blocks}"
    infeasibility = max(it.ball_excess, it.violation)
    return f"{where} it {it.iteration} gap {it.gap:.1e} infeas {infeasibility:.1e}"


def describe_layer(event: ProgressEvent) -> str:
    """``"layer 1/3: 5281 of 16384 weights kept, optimal, 5.72 s"``."""
    res = event.result
    text = f"layer {event.layer + 1}/{event.n_layers}"
    if res is None:
        return text
    how = "resumed from the run directory" if event.resumed else f"{res.info.seconds:.2f} s"
    if not event.resumed and res.info.solver == "admm" and res.info.iterations:
        how = f"{res.info.iterations} ADMM iterations, {how}"
    return f"{text}: {res.nnz} of {res.W.size} weights kept, {res.status.value}, {how}"


class StderrProgress:
    """The command line's progress: a tqdm bar over the jobs on a terminal, with the latest
    ADMM check of a running job beside it; plain lines (``nettrim VERB: layer 1/3: ...``)
    when ``stream`` is not a terminal: each finished layer (and column block), and per job
    its first ADMM check, then one every ``LINE_INTERVAL`` seconds, so a log of a long run
    shows it moving without being flooded.

    Parameters
    ----------
    verb : str
        The command, as the lines' prefix.
    stream : file, optional
        ``sys.stderr`` by default.
    line_interval : float
        Seconds between two plain iteration lines of one job.
    """

    def __init__(
        self, verb: str, stream: TextIO | None = None, *, line_interval: float = LINE_INTERVAL
    ) -> None:
        self.verb = verb
        self.stream = sys.stderr if stream is None else stream
        self.line_interval = line_interval
        self._bar = None
        self._lock = threading.Lock()  # iteration events come from another thread
        self._last_line: dict[tuple[int, int], float] = {}
        self._finished: set[tuple[int, int]] = set()
        self._last_postfix = 0.0
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind == "iteration":
                self._iteration(event)
            elif self.terminal:
                self._draw(event)
            else:
                self._plain(event)

    def _line(self, text: str) -> None:
        print(f"nettrim {self.verb}: {text}", file=self.stream, flush=True)

    def _plain(self, event: ProgressEvent) -> None:
        if event.kind == "job":
            self._finished.add((event.layer, event.block))
        if event.kind == "layer":
            self._line(describe_layer(event))
        elif event.n_blocks > 1:
            self._line(
                f"layer {event.layer + 1}/{event.n_layers} block {event.block + 1}/"
                f"{event.n_blocks} done ({event.jobs_done}/{event.jobs_total} jobs)"
            )

    def _iteration(self, event: ProgressEvent) -> None:
        job = (event.layer, event.block)
        if job in self._finished:
            return  # a report overtaken by its job's result
        now = time.monotonic()
        if self.terminal:
            self._draw(event)
            if now - self._last_postfix >= 0.1:
                self._last_postfix = now
                self._bar.set_postfix_str(describe_iterate_briefly(event), refresh=True)
            return
        last = self._last_line.get(job)
        if last is None or now - last >= self.line_interval:
            self._last_line[job] = now
            self._line(describe_iterate(event))

    def _draw(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=max(event.jobs_total, 1), desc=f"nettrim {self.verb}", unit="job",
                file=self.stream, leave=False, dynamic_ncols=True, bar_format=BAR_FORMAT,
            )  # fmt: skip
        if event.kind == "job":
            self._finished.add((event.layer, event.block))
            self._bar.update(1)
        elif event.kind == "layer":
            self._bar.write(f"nettrim {self.verb}: {describe_layer(event)}", file=self.stream)

    def close(self) -> None:
        """Remove the bar (the finished layers' lines stay)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StderrProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kernels_cold(module: str = "kernels") -> bool:
    """Whether numba has no cached compilation of ``nettrim.solvers.<module>`` yet (the
    first run then spends seconds compiling). Cheap: looks for numba's index files where
    numba keeps them (``NUMBA_CACHE_DIR``, else the package's ``__pycache__``)."""
    import glob

    from . import solvers

    source = os.path.dirname(os.path.abspath(solvers.__file__))
    places = [os.path.join(source, "__pycache__")]
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:  # numba names the folder after the source folder and a hash of its path
        places.insert(0, os.path.join(cache_dir, f"{os.path.basename(source)}_*"))
        places.insert(0, os.path.join(cache_dir, os.path.splitdrive(source)[1].lstrip(os.sep)))
    return not any(glob.glob(os.path.join(place, f"{module}.*.nbi")) for place in places)

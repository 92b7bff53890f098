"""Progress of long work: the ADMM's callback, its checks carried from the jobs (in-process,
loky pool) to the driver as "iteration" events, and StderrProgress's lines.

The Dask path is tested against a real scheduler in tests/test_cli_dask.py."""

import io
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from nettrim import net_trim
from nettrim.cli import EXIT_OK, main
from nettrim.executors import JobRunner, Reporter, WorkerDiedError
from nettrim.layer import TrimOptions, prepare_layer
from nettrim.progress import IterationSampler, ProgressEvent, StderrProgress
from nettrim.solvers import AdmmIterate, solve_admm
from nettrim.solvers.admm import ACTIVE_SET_MESSAGE, REPAIRED_MESSAGE

#: A network whose every layer takes the ADMM some hundred iterations (eps 0.05).
DIMS = (20, 60, 30, 5)


def _problem(*, activation="relu", per_neuron=False, n=300, d=30, m=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Z = X @ rng.standard_normal((d, m))
    Y = np.maximum(Z, 0) if activation == "relu" else Z
    options = TrimOptions(activation=activation, eps=0.05, per_neuron=per_neuron, solver="admm")
    prepared = prepare_layer(X, Y, options)
    return prepared.problem, prepared.settings


@pytest.mark.parametrize(
    "program",
    [
        {},  # (P1): a layer-wide ball and inequalities off Omega
        {"per_neuron": True},  # per-column balls: columns set aside as they finish
        {"activation": "linear", "n": 400, "d": 20},  # (P2) through the range reduction
    ],
)
def test_admm_callback_sees_every_check_and_changes_nothing(program):
    problem, settings = _problem(**program)
    plain = solve_admm(problem, settings)
    seen: list[AdmmIterate] = []
    observed = solve_admm(problem, settings, callback=seen.append)
    np.testing.assert_array_equal(observed.W, plain.W)
    assert observed.info.iterations == plain.info.iterations
    history = observed.info.extra["history"]
    assert len(seen) == len(history) > 0
    assert [it.iteration for it in seen] == [h[0] for h in history]
    assert all(it.iteration % settings.check_every == 0 for it in seen)
    for it, (_, objective, lower) in zip(seen, history, strict=True):
        assert it.objective == objective and it.lower_bound == lower
        assert it.gap == pytest.approx((objective - lower) / abs(objective))
    # it stopped at its last check: certified there, after repairing that point's
    # violations (which asks a certified gap first), or at the optimum on that point's
    # active set (the returned weights, not the iterate, are then certified)
    finished = observed.info.message == ACTIVE_SET_MESSAGE
    assert seen[-1].gap <= settings.gap_tol or finished
    assert seen[-1].feasible or observed.info.message in (REPAIRED_MESSAGE, ACTIVE_SET_MESSAGE)
    assert observed.status == "optimal"
    assert observed.info.gap <= settings.gap_tol * abs(observed.info.objective)
    assert not seen[0].feasible  # the first check is not yet there
    assert all(np.isfinite(it.primal_residual) and it.dual_residual >= 0 for it in seen)
    assert [it.seconds for it in seen] == sorted(it.seconds for it in seen)


def test_an_exception_in_the_callback_ends_the_solve():
    problem, settings = _problem()

    def stop(iterate):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve_admm(problem, settings, callback=stop)


def test_sampler_sends_the_first_check_then_one_per_interval():
    problem, settings = _problem()
    sent_all, sent_first = [], []
    solve_admm(problem, settings, callback=IterationSampler(sent_all.append, interval=0.0))
    solve_admm(problem, settings, callback=IterationSampler(sent_first.append, interval=1e9))
    assert len(sent_all) > 2 and len(sent_first) == 1
    assert sent_first[0] == sent_all[0] | {"seconds": sent_first[0]["seconds"]}
    last = AdmmIterate(**sent_all[-1])  # plain values that rebuild the iterate
    # the solve stopped at that check: certified there (then feasible, or repaired), or
    # finished on its active set
    result = solve_admm(problem, settings)
    finished = result.info.message == ACTIVE_SET_MESSAGE
    assert last.gap <= settings.gap_tol or finished
    assert last.iteration == result.info.iterations


def _run(random_network, **options):
    network, X = random_network(DIMS, seed=3, n=300)
    events: list[tuple[ProgressEvent, str]] = []

    def progress(event):
        events.append((event, threading.current_thread().name))

    plain = net_trim(network, X, eps=0.05, solver="admm", **options)
    watched = net_trim(network, X, eps=0.05, solver="admm", progress=progress, **options)
    for a, b in zip(plain.layers, watched.layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    return events


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_iteration_events_reach_the_callback_weights_unchanged(random_network, scheme, n_jobs):
    events = _run(random_network, scheme=scheme, n_jobs=n_jobs, per_neuron=True, neuron_block=25)
    iterations = [(e, thread) for e, thread in events if e.kind == "iteration"]
    jobs = {(e.layer, e.block) for e, _ in events if e.kind == "job"}
    assert {(e.layer, e.block) for e, _ in iterations} == jobs  # every job reported live
    assert len(jobs) == 3 + 2 + 1  # ceil(60 / 25), ceil(30 / 25), 1 blocks
    assert all(isinstance(e.iterate, AdmmIterate) and e.result is None for e, _ in iterations)
    assert all(e.n_blocks == {0: 3, 1: 2, 2: 1}[e.layer] for e, _ in iterations)
    # in-process jobs call back directly; a pool's checks come through the driver's relay
    threads = {thread for _, thread in iterations}
    assert threads == ({"MainThread"} if n_jobs == 1 else {"nettrim-progress"})
    assert all(thread == "MainThread" for e, thread in events if e.kind != "iteration")


@pytest.mark.parametrize("n_jobs", [1, 2])  # called in the job, or from the driver's relay
def test_a_failing_callback_is_raised_to_the_caller(random_network, n_jobs):
    network, X = random_network(DIMS, seed=3, n=300)

    def progress(event):
        if event.kind == "iteration":
            raise RuntimeError("the notebook's bar broke")

    with pytest.raises(RuntimeError, match="bar broke"):
        net_trim(network, X, eps=0.05, solver="admm", n_jobs=n_jobs, progress=progress)


def test_reports_of_a_worker_that_dies_are_kept_and_the_death_is_the_error():
    """A real loky worker that reports, then calls ``os._exit``: what it sent arrived."""

    def job(task, report):  # travels to the worker by value (cloudpickle)
        report({"task": task})
        if task == 3:
            time.sleep(0.5)  # the jobs before it have come back by then
            os._exit(3)
        return task * 10

    got = []
    with JobRunner(n_jobs=2) as runner, pytest.raises(WorkerDiedError, match="task 3"):
        runner.map(job, range(6), on_report=lambda i, p: got.append((i, p["task"])),
                   label=lambda task: f"task {task}")  # fmt: skip
    assert {(i, i) for i in range(4)} <= set(got)  # 0-2 finished, 3 reported before dying


def test_a_relay_still_busy_at_close_warns_and_drops_the_rest(monkeypatch):
    """``on_report`` still running when the jobs end: the call returns after the wait
    with a warning, and a report handled later never reaches ``on_report``."""
    import queue

    from nettrim import executors

    class Channel:
        calls = 1
        inbox = queue.Queue()

    seen, started = [], threading.Event()

    def on_report(index, payload):
        started.set()
        seen.append(index)
        time.sleep(0.5)

    monkeypatch.setattr(executors._Relay, "JOIN_SECONDS", 0.05)
    relay = executors._Relay(Channel, on_report, threading.Lock())
    Channel.inbox.put((1, 0, {}))
    Channel.inbox.put((1, 1, {}))  # waits behind the slow first one
    started.wait(5)
    with pytest.warns(RuntimeWarning, match="still being handled"):
        relay.close()
    assert relay.abandoned
    relay.thread.join(5)
    assert seen == [0] and not relay.thread.is_alive()


def test_a_report_whose_channel_is_gone_never_fails_the_job():
    class Gone:
        calls = 0

        def send(self, index, payload):
            Gone.calls += 1
            raise EOFError("the manager process was killed")

    report = Reporter(Gone(), 0)
    report({"iteration": 20})
    report({"iteration": 40})  # dropped without trying again
    assert Gone.calls == 1


def _iteration(layer, block, iteration, n_blocks=2):
    iterate = AdmmIterate(iteration, 10.0, 9.0, 0.1, 0.5, 0.01, False, 1.0, 2.0, 4, 0.5)
    return ProgressEvent("iteration", layer, 3, block, n_blocks, 0, 4, iterate=iterate)


def test_plain_lines_throttled_per_job_and_none_after_it_finished():
    stream = io.StringIO()
    progress = StderrProgress("prune", stream, line_interval=1e9)
    for i in (20, 40, 60):
        progress(_iteration(0, 0, i))
        progress(_iteration(0, 1, i))
    progress(ProgressEvent("job", 0, 3, 0, 2, 1, 4))
    progress(_iteration(0, 0, 80))  # overtaken by its job's result
    lines = stream.getvalue().splitlines()
    assert lines == [
        "nettrim prune: layer 1/3 block 1/2: ADMM iteration 20, gap 1.0e-01, not yet "
        "feasible (excess 5.0e-01, violation 1.0e-02), 0.5 s",
        "nettrim prune: layer 1/3 block 2/2: ADMM iteration 20, gap 1.0e-01, not yet "
        "feasible (excess 5.0e-01, violation 1.0e-02), 0.5 s",
        "nettrim prune: layer 1/3 block 1/2 done (1/4 jobs)",
    ]
    every = StderrProgress("prune", io.StringIO(), line_interval=0.0)
    for i in (20, 40, 60):
        every(_iteration(1, 0, i, n_blocks=1))
    assert [line.split(": ", 1)[1] for line in every.stream.getvalue().splitlines()] == [
        f"layer 2/3: ADMM iteration {i}, gap 1.0e-01, not yet feasible (excess 5.0e-01, "
        "violation 1.0e-02), 0.5 s"
        for i in (20, 40, 60)
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_shows_the_latest_check_beside_the_bar(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    stream = _Terminal()
    with StderrProgress("prune", stream) as progress:
        progress(_iteration(0, 1, 40))
    text = stream.getvalue()
    assert "L1/3 b2/2 it 40 gap 1.0e-01 infeas 5.0e-01" in text and "0/4 jobs" in text
    assert "\n" not in text.rstrip("\n").replace("\r", "")  # drawn in place, no log line


@pytest.fixture(scope="module")
def files(tmp_path_factory, random_network):
    folder = tmp_path_factory.mktemp("progress")
    network, X = random_network(DIMS, seed=3, n=300)
    network.save(folder / "net.npz")
    np.save(folder / "X.npy", X)
    return folder


def _prune_command(files, *options):
    return ["prune", str(files / "net.npz"), "--inputs", str(files / "X.npy"), "--solver",
            "admm", "--eps", "0.05", *options]  # fmt: skip


def _assert_progress(stderr: str, stdout: str) -> None:
    for l in range(3):
        assert f"nettrim prune: layer {l + 1}/3: ADMM iteration 20, gap " in stderr
        assert f"nettrim prune: layer {l + 1}/3: " in stderr
    assert "ADMM iterations, " in stderr  # the finished layers' lines
    assert stdout.startswith("nettrim prune — 20-60-30-5 network")
    assert "ADMM" not in stdout and "nettrim prune:" not in stdout


def test_cli_pool_run_prints_iterations_on_stderr_only(files):
    """A real `nettrim prune` process whose jobs run in two loky workers, stderr a pipe."""
    command = [sys.executable, "-m", "nettrim"]
    command += _prune_command(files, "--out", str(files / "pool.npz"), "--n-jobs", "2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ)
    assert done.returncode == EXIT_OK, done.stderr
    _assert_progress(done.stderr, done.stdout)


def test_cli_in_process_run_and_quiet(files, capsys):
    out = str(files / "local.npz")
    assert main(_prune_command(files, "--out", out, "--n-jobs", "1")) == EXIT_OK
    loud = capsys.readouterr()
    _assert_progress(loud.err, loud.out)
    assert main(_prune_command(files, "--out", out, "--n-jobs", "1", "--quiet")) == EXIT_OK
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert quiet.out.splitlines()[0] == loud.out.splitlines()[0]


def test_a_callback_that_shows_no_iterations_gets_none(random_network):
    """wants_iterations = False: layers and jobs only (no channel to the workers)."""
    from nettrim import net_trim

    class LayersOnly(list):
        wants_iterations = False

        def __call__(self, event):
            self.append(event.kind)

    net, X = random_network((6, 8, 3), seed=1, n=40)
    seen = LayersOnly()
    net_trim(net, X, eps=0.1, solver="admm", n_jobs=1, progress=seen)
    assert "iteration" not in seen and seen.count("layer") == 2

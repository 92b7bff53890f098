"""The ``nettrim`` command line. Results on stdout; progress, warnings and errors on stderr.

Verbs: ``demo`` (prune the bundled network), ``prune`` (prune a network file on recorded
inputs), ``verify`` (check a pruned network file against its original).

Exit codes: 0 success, 1 a failed run or check (a layer's program infeasible; a layer that
ends short of ``optimal`` or outside its budget, unless ``prune --allow-inexact``; a layer
outside the budget claimed for it or a guarantee that does not hold, for ``verify``), 2 bad
usage (arguments, unreadable or invalid files), 130 interrupted. No verb writes a partial
file: outputs are written to a temporary file and renamed, and a run that fails writes
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .tables import format_layer_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: stdout closed before the results were written (a pipe into ``head``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141
#: ``--method``'s word for Net-Trim (the other words are the L0 methods of ``prune_network``).
NETTRIM = "nettrim"
#: Options of Net-Trim only, refused with an L0 ``--method``: (attribute, option, default).
_NETTRIM_ONLY = (
    ("eps", "--eps", None),
    ("gamma", "--gamma", None),
    ("kappa", "--kappa", None),
    ("cascade_bound", "--cascade-bound", None),
    ("per_neuron", "--per-neuron", False),
    ("reweight_rounds", "--reweight-rounds", 0),
    ("rows", "--rows", "all"),
    ("solver", "--solver", "auto"),
    ("active_tol", "--active-tol", 0.0),
)
#: What does not change a run's weights, left out of its identity in ``--run-dir``.
_NOT_IDENTITY = (
    *("run_dir", "quiet", "n_jobs", "scheduler", "store_dir", "out", "json", "dense"),
    "allow_inexact",
)

#: Calibration rows the demo uses with the exact (interior-point) path, which needs minutes
#: on the full 1257 rows; the fast path uses them all.
DEMO_EXACT_SUBSAMPLE = 300
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


class UsageError(Exception):
    """Bad arguments or input files: reported as one line on stderr, exit code 2."""


class WriteError(Exception):
    """An output that could not be written (full disk, no permission): one line on stderr,
    exit code 1; the previous file, if any, is left as it was (writes are atomic)."""


def _numbers(text: str) -> tuple[float, ...]:
    """``"0.05"`` or ``"0.05,0.1,0.02"`` (argparse type: one value or one per layer)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or comma-separated numbers, got {text!r}"
        ) from None
    return values


def _solver_choices() -> tuple[str, ...]:
    from .solvers import EXACT_SOLVERS

    return ("auto", "admm", *(s for s, kinds in EXACT_SOLVERS.items() if "constrained" in kinds))


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nettrim",
        description="Post-training pruning of neural networks by Net-Trim and L0 programs.",
    )
    parser.add_argument("--version", action="version", version=f"nettrim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    _add_demo(sub)
    _add_prune(sub)
    _add_verify(sub)
    _add_sweep(sub)
    _add_report(sub)
    return parser


def _add_demo(sub) -> None:
    from .schemes import SCHEMES

    demo = sub.add_parser(
        "demo",
        help="prune the bundled digits network and print a per-layer report",
        description="Prune the bundled 64-128-128-10 digits MLP layer by layer with Net-Trim "
        "(parallel scheme) and print non-zeros, discrepancy vs eps, test accuracy, seconds.",
        epilog="example: nettrim demo --eps 0.05",
    )
    demo.add_argument("--eps", type=float, default=0.05, help="relative budget (default 0.05)")
    demo.add_argument(
        "--solver",
        default="auto",
        choices=("auto", "admm", "clarabel", "scs"),
        help="layer solver (default auto)",
    )
    demo.add_argument(
        "--n-calib",
        type=int,
        default=None,
        help="calibration rows to use (default: all for the fast path, "
        f"{DEMO_EXACT_SUBSAMPLE} for the exact path)",
    )
    demo.add_argument(
        "--scheme",
        default="parallel",
        choices=SCHEMES,
        help="Net-Trim scheme (default parallel)",
    )
    demo.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_scheme_options(
    parser: argparse.ArgumentParser, *, eps_default: Any, json_help: str, recorded: bool = False
) -> None:
    """The options ``prune`` and ``verify`` share: the scheme and its budgets, the JSON
    report. ``recorded``: the defaults are what the pruned file records (verify)."""
    from .schemes import CASCADE_BOUNDS, SCHEMES

    default = " (default: as recorded by prune, else {})" if recorded else " (default {})"

    parser.add_argument(
        "--scheme",
        default=None,
        choices=SCHEMES,
        help="the scheme"
        + (default.format("parallel") if recorded else " (default: parallel for Net-Trim, "
           "cascade for --method admm|iht|sparsegpt|wanda|magnitude)"),
    )  # fmt: skip
    parser.add_argument(
        "--eps",
        type=_numbers,
        default=eps_default,
        metavar="E[,E...]",
        help="Net-Trim's relative budget: one value, or one per layer (parallel); the first "
        "layer's (cascade)" + (default.format("none") if recorded else " (default 0.05)"),
    )
    parser.add_argument(
        "--gamma",
        type=_numbers,
        default=None,
        metavar="G[,G...]",
        help="cascade: gamma_l >= 1 for the layers after the first, one value or one per "
        "layer (default 1.1)",
    )
    parser.add_argument(
        "--kappa",
        type=float,
        default=None,
        metavar="K",
        help="cascade: kappa in (0, 1] multiplies the last layer's budget (default 1)",
    )
    parser.add_argument(
        "--cascade-bound",
        choices=CASCADE_BOUNDS,
        default=None,
        help="cascade: the bound off Omega, max(V, 0) ('relaxed', default) or the paper's V",
    )
    parser.add_argument(
        "--active-tol",
        type=float,
        default=None if recorded else 0.0,
        metavar="T",
        help="Omega = {Y > active-tol}: raise it (e.g. 1e-6) for activations recorded in "
        "float32" + default.format("0"),
    )
    parser.add_argument(
        "--json", metavar="REPORT.json", default=None, help=f"also write {json_help}"
    )


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    """``--inputs``: the calibration inputs (docs/cli.md, ``nettrim prune``)."""
    parser.add_argument(
        "--inputs",
        required=True,
        metavar="X.npy|STORE",
        help="calibration inputs: one .npy array (np.save), one sample per row, or NCHW "
        "images (n, c, h, w) for a network that starts with a convolution; or an activation "
        "store directory (nettrim.torch.record / export)",
    )


def _add_target(parser: argparse.ArgumentParser, *, method_help: str) -> None:
    """What ``prune`` and ``sweep`` prune: the network file, its inputs, the method."""
    from .pruning import METHODS

    parser.add_argument("network", metavar="NETWORK.npz", help="the network to prune")
    _add_inputs(parser)
    parser.add_argument("--method", default=NETTRIM, choices=(NETTRIM, *METHODS), help=method_help)


def _add_prune(sub) -> None:
    prune = sub.add_parser(
        "prune",
        help="prune a network file (.npz or .safetensors) on recorded inputs",
        description="Prune every layer of a network file on calibration inputs, with Net-Trim "
        "(--eps: a discrepancy budget) or an L0 method (--method, --sparsity: a sparsity "
        "budget), write the pruned network (same file format) and print a per-layer summary: "
        "non-zeros, sparsity, the realized discrepancy against its budget, the status. "
        "The network file is a .npz with W0, b0, W1, b1, ... (W of shape (d_in, d_out)) "
        "and activations (see docs/cli.md), or a .safetensors file (docs/files.md); the "
        "output's extension chooses its format.",
        epilog="example: nettrim prune net.npz --inputs X.npy --out pruned.npz "
        "--scheme cascade --eps 0.05 --json report.json",
    )
    _add_target(
        prune,
        method_help="nettrim (default: the convex program, budget --eps) or an L0 method "
        "with a sparsity budget: admm, iht (fitted), sparsegpt, wanda, magnitude (baselines)",
    )
    prune.add_argument("--out", required=True, metavar="PRUNED.npz", help="where to write it")
    prune.add_argument(
        "--sparsity",
        type=_numbers,
        default=None,
        metavar="S[,S...]",
        help="L0 methods: the fraction of weights to remove, one value or one per layer "
        "(implied by an N:M --pattern)",
    )
    prune.add_argument(
        "--pattern",
        default="unstructured",
        metavar="PATTERN",
        help="L0 methods: unstructured (default), per_output, N:M (e.g. 2:4), inputs "
        "(whole rows) or outputs (whole columns)",
    )
    _add_scheme_options(
        prune,
        eps_default=None,
        json_help="a JSON report: every layer's figures and the verify checks",
    )
    prune.add_argument("--per-neuron", action="store_true", help="one budget per output neuron")
    prune.add_argument(
        "--dense",
        action="store_true",
        help="write the pruned weights dense (default: each in its smallest sparse layout, "
        "CSR, bitmask or N:M; see docs/files.md)",
    )
    prune.add_argument(
        "--reweight-rounds",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="reweighted-L1 rounds per layer after the plain solve: sparser, the same "
        "guarantees (default 0)",
    )
    prune.add_argument(
        "--rows",
        default="all",
        choices=("all", "generate"),
        help="a network with convolutions: solve every program on all its patch rows, or "
        "the tall ones (at least 4 times (d_in + 1) d_out rows) by row generation, certified "
        "on every row (ADMM; docs/torch.md) (default all)",
    )
    prune.add_argument(
        "--solver", default="auto", choices=_solver_choices(), help="layer solver (default auto)"
    )
    prune.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes, one BLAS thread each (default: every core); 1 runs "
        "in this process with BLAS on every core",
    )
    prune.add_argument(
        "--max-iter",
        type=int,
        default=None,
        metavar="N",
        help="iteration limit per layer solve (default: the solver's)",
    )
    _add_run_options(prune)
    prune.add_argument(
        "--allow-inexact",
        action="store_true",
        help="write the pruned network even when a layer's solve did not end 'optimal' "
        "(max_iter, inaccurate) or a layer misses its budget (default: exit 1, write nothing)",
    )


def _add_run_options(prune: argparse.ArgumentParser) -> None:
    """Where and how a prune runs: the cluster, the run directory, the progress."""
    prune.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the layer jobs on a Dask cluster (e.g. tcp://10.0.0.5:8786; needs "
        "nettrim[dask]); the arrays reach the workers as memory-mapped files in --store-dir",
    )
    prune.add_argument(
        "--store-dir",
        default=None,
        metavar="DIR",
        help="with --scheduler: where the arrays are written for the workers (visible to "
        "every worker; default: the system temporary directory)",
    )
    prune.add_argument(
        "--run-dir",
        default=None,
        metavar="DIR",
        help="record each finished layer in DIR; the same command run again (after a crash "
        "or kill) resumes from the finished layers with the same output, bit for bit",
    )
    prune.add_argument(
        "--quiet",
        action="store_true",
        help="nothing on stderr but warnings and errors (no progress, no ADMM iterations)",
    )


def _add_verify(sub) -> None:
    verify = sub.add_parser(
        "verify",
        help="check a pruned network against its original (Net-Trim guarantees)",
        description="Measure a pruned network file against the original on the calibration "
        "inputs it was pruned with: check that every layer meets the budget claimed for it "
        "(to a stated feasibility tolerance), then Proposition 1, Theorems 1-2 and the bounds "
        "for any network. A file written by nettrim prune records its scheme, budgets and the "
        "tolerance each layer was solved to; --scheme, --eps, --gamma, --kappa claim others. "
        "Exit code 1 when a layer misses its budget or a check whose assumptions hold fails.",
        epilog="example: nettrim verify net.npz pruned.npz --inputs X.npy --eps 0.05",
    )
    verify.add_argument("original", metavar="ORIGINAL.npz", help="the network before pruning")
    verify.add_argument("pruned", metavar="PRUNED.npz", help="the pruned network")
    _add_inputs(verify)
    _add_scheme_options(verify, eps_default=None, json_help="the report as JSON", recorded=True)
    verify.add_argument(
        "--feas-tol",
        type=float,
        default=None,
        metavar="T",
        help="feasibility tolerance of the budget checks (default: the one each layer was "
        "solved to, as recorded by prune, else 1e-3); tighter is always allowed",
    )
    verify.add_argument(
        "--allow-loose-tol",
        action="store_true",
        help="accept a --feas-tol looser than the recorded one (the verdict says so)",
    )


def _add_sweep(sub) -> None:
    from .schemes import SCHEMES

    sweep = sub.add_parser(
        "sweep",
        help="prune at every point of an eps or sparsity grid; sparsity vs discrepancy "
        "(and accuracy)",
        description="Prune a network file once per grid value — Net-Trim's --eps values "
        "(each point warm-started from the previous one) or an L0 method's --sparsity values "
        "— and print sparsity against the network's relative output discrepancy, and against "
        "accuracy when --labels are given. --json writes the points for nettrim report.",
        epilog="example: nettrim sweep net.npz --inputs X.npy --eps 0.02,0.05,0.1,0.2 "
        "--eval-inputs X_test.npy --labels y_test.npy --json sweep.json",
    )
    _add_target(sweep, method_help="as for prune (nettrim)")
    sweep.add_argument("--eps", type=_numbers, default=None, metavar="E,E,...",
                       help="Net-Trim: the eps grid")  # fmt: skip
    sweep.add_argument("--sparsity", type=_numbers, default=None, metavar="S,S,...",
                       help="L0 methods: the sparsity grid")  # fmt: skip
    sweep.add_argument("--pattern", default="unstructured", help="L0 methods: as for prune")
    sweep.add_argument("--scheme", default=None, choices=SCHEMES,
                       help="as for prune (parallel for Net-Trim, cascade for L0)")  # fmt: skip
    sweep.add_argument("--eval-inputs", default=None, metavar="X_TEST.npy",
                       help="where discrepancy and accuracy are measured (default: "
                       "--inputs; held-out samples say more)")  # fmt: skip
    sweep.add_argument("--labels", default=None, metavar="Y.npy",
                       help="integer classes of the evaluation inputs: adds accuracy")  # fmt: skip
    sweep.add_argument("--n-jobs", type=int, default=None, metavar="N", help="as for prune")
    sweep.add_argument("--json", default=None, metavar="SWEEP.json", help="also write the points")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _add_report(sub) -> None:
    report = sub.add_parser(
        "report",
        help="an HTML page and PNG plots from a prune or sweep JSON report",
        description="Draw a prune report (--json of nettrim prune: per-layer sparsity, "
        "discrepancy against budget, the network's discrepancy against its Theorem 1/2 "
        "bound) or a sweep (sparsity against discrepancy and accuracy) as PNG plots and one "
        "self-contained HTML page (plots embedded, no network access). Needs matplotlib.",
        epilog="example: nettrim report report.json --out report/",
    )
    report.add_argument("report", metavar="REPORT.json", help="from prune --json or sweep --json")
    report.add_argument("--out", required=True, metavar="DIR", help="directory to write into")


# ---------------------------------------------------------------------------------------
# demo


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.eps < 0:
        raise UsageError(f"--eps must be >= 0, got {args.eps}")
    n_calib = args.n_calib
    if n_calib is None and args.solver in ("clarabel", "scs"):
        n_calib = DEMO_EXACT_SUBSAMPLE
        print(
            f"nettrim demo: using {n_calib} calibration rows (exact path; --n-calib to change)",
            file=sys.stderr,
        )
    if n_calib is not None and n_calib < 1:
        raise UsageError(f"--n-calib must be >= 1, got {n_calib}")
    with _warnings_to_stderr("demo"):
        report = run_demo(eps=args.eps, scheme=args.scheme, n_calib=n_calib, solver=args.solver)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# prune and verify


def _prune(args: argparse.Namespace) -> int:
    network = _read_network(args.network)
    X = _read_inputs(args.inputs, network)
    _check_destination("--out", args.out, (args.network, args.inputs))
    if args.json is not None:
        _check_destination("--json", args.json, (args.network, args.inputs, args.out))
    l0 = args.method != NETTRIM
    if args.scheme is None:  # each family's own default
        args.scheme = "cascade" if l0 else "parallel"
    _check_method_options(args, l0)
    if args.n_jobs is not None and args.n_jobs != -1:
        _check_number("--n-jobs", args.n_jobs, low=1)
    if args.max_iter is not None:
        _check_number("--max-iter", args.max_iter, low=1)
    _check_l0_network(args, network)
    # checked before any work
    options = None if l0 else _scheme_options(args, network)
    with _PruneSession(args) as session:
        if l0:
            return _prune_l0(args, network, X, session)
        return _prune_nettrim(args, network, X, options, session)


def _check_l0_network(args: argparse.Namespace, network) -> None:
    """The L0 methods of the command line prune chains of dense layers."""
    if args.method != NETTRIM and not network.is_dense:
        raise UsageError(
            f"--method {args.method} prunes dense networks; this one has convolutions or "
            "pooling: prune it with --method nettrim, or with the L0 methods through "
            "nettrim.torch.prune_model"
        )


def _check_method_options(args: argparse.Namespace, l0: bool) -> None:
    """Refuse the options of the other family rather than ignore them."""
    from .layer import DEFAULT_EPS

    if not l0:
        if args.sparsity is not None or args.pattern != "unstructured":
            raise UsageError(
                "--sparsity and --pattern apply to the L0 methods (--method admm, ...)"
            )
        if args.eps is None:
            args.eps = (DEFAULT_EPS,)
        return
    for attribute, option, default in _NETTRIM_ONLY:
        if getattr(args, attribute) != default:
            raise UsageError(f"{option} applies to --method nettrim only, not {args.method}")
    if args.sparsity is None and ":" not in args.pattern:
        raise UsageError(f"--method {args.method} needs --sparsity (or an N:M --pattern)")
    if args.sparsity is not None:
        for value in args.sparsity:
            if not 0.0 <= _check_number("--sparsity", value, low=0.0) < 1.0:
                raise UsageError(f"--sparsity must be in [0, 1), got {value:g}")


class _PruneSession:
    """What a prune run is attached to: the progress on stderr, the run directory, the
    Dask client. A context manager: the bar and the client are closed however it ends."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .progress import StderrProgress

        self.args = args
        self.stderr = None if args.quiet else StderrProgress(args.command)
        self.run_dir = None
        self.resume: dict = {}
        if args.run_dir is not None:
            self.run_dir = _open_run_dir(args)
            self.resume = self.run_dir.finished()
            if self.resume:
                self.say(
                    f"resuming {args.run_dir}: layers "
                    f"{', '.join(map(str, sorted(self.resume)))} already done"
                )
        self.client = None
        if args.scheduler is not None:
            if args.n_jobs is not None:
                raise UsageError("give --scheduler or --n-jobs, not both (the cluster decides)")
            self.client = _connect(args.scheduler)

    @property
    def executor(self):
        return None if self.client is None else self.client.get_executor()

    def say(self, text: str) -> None:
        """One line of what the run is doing on stderr (none with ``--quiet``)."""
        if not self.args.quiet:
            print(f"nettrim {self.args.command}: {text}", file=sys.stderr, flush=True)

    def starting(self) -> None:
        """Say once, before the first solve, that numba compiles (a cold cache)."""
        from .progress import kernels_cold

        module = "l0_kernels" if self.args.method != NETTRIM else "kernels"
        if kernels_cold(module):
            self.say("compiling kernels, first run only")

    def __call__(self, event) -> None:
        """The run's progress callback: the run directory keeps the finished layers, stderr
        shows the rest."""
        if self.run_dir is not None:
            self.run_dir(event)
        if self.stderr is not None:
            self.stderr(event)

    @property
    def wants_iterations(self) -> bool:
        # only stderr shows iterations: with --quiet no job sends them
        return self.stderr is not None

    def __enter__(self) -> _PruneSession:
        return self

    def __exit__(self, *exc) -> None:
        if self.stderr is not None:
            self.stderr.close()
        if self.client is not None:
            self.client.close()


def _open_run_dir(args: argparse.Namespace):
    """The run directory of this command: its identity is every option that changes the
    weights and the SHA-256 of the network and input files."""
    from . import __version__
    from .runs import RunDirectory, RunDirectoryError, file_digest, files_digest
    from .store import StoreError, input_files

    identity = {k: v for k, v in vars(args).items() if k not in _NOT_IDENTITY}
    identity["network"] = file_digest(args.network)
    try:
        inputs = input_files(args.inputs) if os.path.isdir(args.inputs) else [args.inputs]
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    identity["inputs"] = files_digest(inputs) if len(inputs) > 1 else file_digest(inputs[0])
    identity["nettrim"] = __version__
    try:
        return RunDirectory(args.run_dir, identity)
    except RunDirectoryError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--run-dir {args.run_dir}: {exc.strerror or exc}") from None


def _connect(address: str):
    """A Dask client of the scheduler at ``address`` (a clear error when unreachable)."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install nettrim[dask]") from None
    try:
        return Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"--scheduler {address}: cannot connect ({exc})") from None


def _prune_nettrim(args: argparse.Namespace, network, X: np.ndarray, options, session) -> int:
    from .guarantees import verify, with_pruning_record

    settings = {
        "per_neuron": args.per_neuron,
        "reweight_rounds": _check_number("--reweight-rounds", args.reweight_rounds, low=0),
        "solver": args.solver,
        "n_jobs": args.n_jobs,
    }
    if args.max_iter is not None:
        settings["max_iter"] = args.max_iter
    if args.rows != "all":
        if network.is_dense:
            raise UsageError(
                f"--rows {args.rows} applies to networks with convolutions (their patch "
                "rows); a dense network's programs are solved on all rows"
            )
        if args.solver not in ("auto", "admm"):
            raise UsageError(f"--rows {args.rows} solves with the ADMM; got --solver {args.solver}")
        settings["rows"] = args.rows
    session.say(
        f"{_describe(network)}, {X.shape[0]} samples; {args.scheme} Net-Trim, "
        f"eps {_format_eps(options['eps'])}, solver {args.solver}"
    )
    session.starting()
    result = _run_net_trim(network, X, {**options, **settings}, session)
    if result is None:
        return EXIT_FAILED
    report = verify(network, result, X)
    rows = _layer_rows(network, result, report, X)
    refusal = _inexact(result, report)
    if refusal and not args.allow_inexact:
        print(_format_prune(network, result, report, rows, None))
        print(
            f"nettrim prune: {refusal}; nothing written (--allow-inexact writes it anyway)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if refusal:
        print(f"nettrim prune: warning: {refusal}; written as asked (--allow-inexact)",
              file=sys.stderr)  # fmt: skip
    written = _write_network(
        with_pruning_record(result), args.out, network, args.network, dense=args.dense
    )
    if args.json is not None:
        document = _prune_document(args, network, X, result, report, rows)
        _write_json(args.json, {**document, "options": {**options, **settings}, "file": written})
    print(_format_prune(network, result, report, rows, args.out))
    print(_format_written(written))
    return EXIT_OK


def _run_net_trim(network, X: np.ndarray, options: dict[str, Any], session):
    """``net_trim`` with the CLI's options; its warnings on stderr; ``None`` (reported)
    when a layer's program is infeasible or its solver failed."""
    from .schemes import LayerSolveError, net_trim

    try:
        with _warnings_to_stderr("prune"):
            # the library's BLAS threads per job whatever --n-jobs says: the same weights
            # from --n-jobs 1, --n-jobs 2 and --scheduler
            return net_trim(
                network,
                X,
                executor=session.executor,
                store_dir=session.args.store_dir,
                progress=session,
                resume=session.resume,
                **options,
            )
    except LayerSolveError as exc:
        print(f"nettrim prune: {exc}; nothing written", file=sys.stderr)
        return None
    except (ValueError, TypeError) as exc:  # what the checks above did not catch
        raise UsageError(str(exc)) from None


def _prune_l0(args: argparse.Namespace, network, X: np.ndarray, session) -> int:
    """``prune_network`` with the CLI's options: the pruned network, the table, the JSON."""
    from .pruning import prune_network

    sparsity = args.sparsity
    if sparsity is not None:
        sparsity = sparsity[0] if len(sparsity) == 1 else list(sparsity)
    options = {"sparsity": sparsity, "pattern": args.pattern, "method": args.method}
    options["scheme"] = args.scheme
    if args.max_iter is not None:
        options["max_iter"] = args.max_iter
    session.say(
        f"{_describe(network)}, {X.shape[0]} samples; {args.scheme} "
        f"{args.method}, pattern {args.pattern}, sparsity {_format_eps(sparsity or 0.5)}"
    )
    session.starting()
    try:
        with _warnings_to_stderr("prune"):
            result = prune_network(
                network,
                X,
                executor=session.executor,
                progress=session,
                resume=session.resume,
                **options,
            )
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    rows = _l0_rows(network, result)
    discrepancy = _relative_discrepancy(network, result.network, X)
    written = _write_network(result.network, args.out, network, args.network, dense=args.dense)
    if args.json is not None:
        _write_json(
            args.json,
            {
                "command": "prune",
                "network": args.network,
                "inputs": args.inputs,
                "out": args.out,
                "samples": X.shape[0],
                "options": options,
                "layers": rows,
                "nnz_before": network.nnz,
                "nnz_after": result.network.nnz,
                "size": network.size,
                "sparsity": result.sparsity,
                "relative_discrepancy": discrepancy,
                "seconds": result.seconds,
                "file": written,
            },
        )
    title = f"nettrim prune — {_describe(network)}, {args.scheme} {args.method} ({args.pattern})"
    footer = [
        "discrep. = ||X~ W~0 - X~ W~||_F / ||X~ W~0||_F, the layer's relative reconstruction "
        "error on its input (P4; P5 for ReLU layers)",
        f"weights kept: {result.network.nnz} of {network.size} "
        f"({result.network.nnz / network.size:.1%}); relative output discrepancy on the "
        f"inputs: {discrepancy:.4g}",
        f"total seconds: {result.seconds:.1f}; wrote {args.out}",
    ]
    print(format_layer_table(title, rows, footer))
    print(_format_written(written))
    return EXIT_OK


def _l0_rows(network, result) -> list[dict[str, Any]]:
    """Per layer: the counts and the relative reconstruction error (no budget to judge)."""
    rows = []
    for l, (layer, res) in enumerate(zip(network.layers, result.layers, strict=True)):
        kept = res is not None
        rows.append(
            {
                "layer": l,
                "shape": list(layer.shape),
                "activation": layer.activation,
                "nnz_before": layer.nnz,
                "nnz_after": res.nnz if kept else layer.nnz,
                "sparsity": res.sparsity if kept else 1.0 - layer.nnz / layer.W.size,
                "relative_residual": (
                    math.sqrt(max(res.info.extra.get("relative_error", math.nan), 0.0))
                    if kept
                    else 0.0
                ),
                "eps": math.nan,
                "budget": "-",
                "program": res.program if kept else None,
                "objective": res.info.objective if kept else None,
                "status": res.status.value if kept else "kept",
                "solver": res.info.solver if kept else None,
                "iterations": res.info.iterations if kept else 0,
                "seconds": res.info.seconds if kept else 0.0,
            }
        )
    return rows


def _relative_discrepancy(network, pruned, X: np.ndarray) -> float:
    """``||f_pruned(X) - f(X)||_F / ||f(X)||_F`` on the calibration inputs."""
    Y = network(X)
    norm = float(np.linalg.norm(Y))
    return float(np.linalg.norm(pruned(X) - Y)) / norm if norm > 0 else math.nan


def _inexact(result, report) -> str | None:
    """Why the pruned network should not be written silently (``None``: nothing)."""
    by_status: dict[Any, list[int]] = {}
    for l, res in zip(result.network.prunable, result.layers, strict=True):
        if not res.success:
            by_status.setdefault(res.status, []).append(l)
    reasons = [
        f"{_layer_list(layers)} ended {status.value!r} ({status.message})"
        for status, layers in by_status.items()
    ]
    failures = _failures(report)
    return "; ".join(reasons + ([failures] if failures else [])) or None


def _failures(report) -> str:
    """The verification's failures in one phrase ('' when it succeeded)."""
    missed = [rep.layer for rep in report.layers if rep.feasible is False]
    others = [c.name for c in report.failed() if not c.name.startswith("budget")]
    parts = [f"{_layer_list(missed)} outside the budget claimed"] if missed else []
    if others:
        parts.append(f"{len(others)} {'more ' if missed else ''}check(s) fail")
    return ", ".join(parts)


def _layer_list(layers: Sequence[int]) -> str:
    return ("layer " if len(layers) == 1 else "layers ") + ", ".join(map(str, layers))


def _prune_document(args, network, X, result, report, rows) -> dict[str, Any]:
    from .guarantees import pruning_record

    return {
        "command": "prune",
        "network": args.network,
        "inputs": args.inputs,
        "out": args.out,
        "samples": X.shape[0],
        "scheme": result.scheme,
        "layers": rows,
        "nnz_before": network.nnz,
        "nnz_after": result.nnz,
        "size": network.size,
        "sparsity": result.sparsity,
        "relative_discrepancy": report.relative_discrepancy,
        "seconds": result.seconds,
        "record": pruning_record(result),
        "tolerance": report.tolerance,
        "verify": report.to_dict(),
    }


def _verify(args: argparse.Namespace) -> int:
    from .guarantees import verify

    original = _read_network(args.original)
    pruned = _read_network(args.pruned)  # that the two match is verify's rule (its message)
    X = _read_inputs(args.inputs, original)
    if args.json is not None:
        _check_destination("--json", args.json, (args.original, args.pruned, args.inputs))
    options = _scheme_options(args, original)
    if args.feas_tol is not None:
        options["feas_tol"] = _check_number("--feas-tol", args.feas_tol, low=0.0)
    options["allow_loose_tol"] = args.allow_loose_tol
    try:
        report = verify(original, pruned, X, **options)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.json is not None:
        _write_json(
            args.json,
            {
                "command": "verify",
                "original": args.original,
                "pruned": args.pruned,
                "inputs": args.inputs,
                "samples": X.shape[0],
                "options": options,
                "success": report.success,
                "tolerance": report.tolerance,
                "report": report.to_dict(),
            },
        )
    print(report.summary())
    return EXIT_OK if report.success else EXIT_FAILED


def _read_network(path: str):
    from .network import Network, NetworkFileError

    try:
        return Network.load(path)
    except (NetworkFileError, ValueError) as exc:  # ValueError: a .safetensors orientation
        raise UsageError(str(exc)) from None
    except ImportError as exc:
        raise UsageError(f"cannot read {path}: {exc} (pip install nettrim[safetensors])") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_network(network, path: str, original, source: str, *, dense: bool) -> dict[str, Any]:
    """Write ``network`` (``.npz`` or ``.safetensors`` by extension; sparse layouts unless
    ``dense``) and return the file's bytes and stored parameters (non-zero weights plus
    biases) before (``original``, read from ``source``) and after."""
    from .io.entries import stored_layouts

    try:
        network.save(path, layout="dense" if dense else "auto")
    except ImportError as exc:
        raise UsageError(f"cannot write {path}: {exc} (pip install nettrim[safetensors])") from None
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return {
        "bytes_before": os.path.getsize(source),
        "bytes_after": os.path.getsize(path),
        "parameters_before": _parameters(original),
        "parameters_after": _parameters(network),
        "layouts": stored_layouts(path),
    }


def _parameters(network) -> int:
    return network.nnz + sum(
        0 if network[l].b is None else network[l].b.size for l in network.prunable
    )


def _format_written(written: dict[str, Any]) -> str:
    return (
        f"file: {written['bytes_before']:,} -> {written['bytes_after']:,} bytes "
        f"({written['bytes_after'] / written['bytes_before']:.1%}); stored parameters "
        f"{written['parameters_before']:,} -> {written['parameters_after']:,}; layouts "
        f"{', '.join(written['layouts'])}"
    )


def _read_inputs(path: str, network) -> np.ndarray:
    """The calibration inputs of ``network``: a finite numeric ``.npy`` array of its input
    samples (2-D rows for a dense first layer, NCHW images for a convolution), or an
    activation store directory (the first module's recorded input, :mod:`nettrim.store`)."""
    if os.path.isdir(path):
        return _read_store_inputs(path, network)
    X = _read_npy(path)
    if not network.is_dense:
        return _check_images(path, X, network)
    width = network.dims[0]
    if X.ndim != 2:
        hint = f" (one sample? use X.reshape(1, {width}))" if X.shape == (width,) else ""
        raise UsageError(
            f"{path} has shape {X.shape}; the inputs must be 2-D, one sample per row, "
            f"{width} columns{hint}"
        )
    if X.shape[0] == 0:
        raise UsageError(f"{path} has no rows; give at least one sample")
    if X.shape[1] != width:
        hint = " (samples as columns? save X.T)" if X.shape[0] == width else ""
        raise UsageError(
            f"{path} has {X.shape[1]} columns but the network's first layer takes {width} "
            f"inputs; one sample per row{hint}"
        )
    return _finite(path, X)


def _read_npy(path: str) -> np.ndarray:
    """One numeric array saved with ``np.save``, read without pickles."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC):
        raise UsageError(
            f"{path} is a .npz archive; --inputs takes one array saved with np.save (.npy) "
            "or an activation store directory"
        )
    if head != _NPY_MAGIC:
        raise UsageError(f"{path} is not a .npy file; save the inputs with np.save")
    try:
        X = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{path}: cannot be read without pickles ({exc})") from None
    if X.dtype.kind not in "biuf":
        raise UsageError(f"{path} has dtype {X.dtype}; the inputs must be real numbers")
    return X


def _finite(path: str, X: np.ndarray) -> np.ndarray:
    """``X`` as float32 (when it is) or float64, after checking every value is finite."""
    X = X.astype(np.float32 if X.dtype == np.float32 else np.float64, copy=False)
    if not np.isfinite(X).all():
        bad = int(np.count_nonzero(~np.isfinite(X)))
        raise UsageError(f"{path} holds {bad} NaN or infinite value(s); all must be finite")
    return X


def _check_images(path: str, X: np.ndarray, network) -> np.ndarray:
    """Inputs of a network with convolutions: ``(n, c, h, w)``, the first layer's shape."""
    sample = tuple(network.shapes[0])
    dims = ", ".join(map(str, sample))
    if X.ndim != 1 + len(sample) or tuple(X.shape[1:]) != sample:
        hint = ""
        if X.ndim == 2 and X.shape[1] == math.prod(sample):
            hint = f" (flattened images? save X.reshape(-1, {dims}))"
        elif X.ndim == 4 and tuple(X.shape[1:]) == (*sample[1:], sample[0]):
            hint = " (NHWC? save X.transpose(0, 3, 1, 2))"
        raise UsageError(
            f"{path} has shape {X.shape} but the network's first layer "
            f"({type(network[0]).__name__}) takes shape (n, {dims})"
            + (", NCHW images" if len(sample) == 3 else "")
            + hint
        )
    if X.shape[0] == 0:
        raise UsageError(f"{path} has no samples; give at least one")
    return _finite(path, X)


def _read_store_inputs(path: str, network) -> np.ndarray:
    """An activation store as ``--inputs``: the network's input rebuilt from the store's
    first module (:func:`nettrim.store.network_input`)."""
    from .store import StoreError, network_input, open_store

    try:
        X = network_input(open_store(path), network)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, KeyError, TypeError) as exc:  # a manifest written by hand, damaged
        raise UsageError(f"{path}: cannot be read as an activation store ({exc})") from None
    if X.shape[0] == 0:
        raise UsageError(f"{path} records no samples")
    return _finite(path, X)


def _check_destination(option: str, path: str, sources: Sequence[str]) -> None:
    """Fail before the work, not after it, when ``path`` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path} is a directory; give a file name")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option} {path}: directory {directory} is not writable")
    for source in sources:
        if os.path.realpath(path) == os.path.realpath(source):
            raise UsageError(f"{option} {path} would overwrite {source}; write elsewhere")


def _check_number(option: str, value, **bounds) -> Any:
    from .validation import check_scalar

    try:
        return check_scalar(option, value, integer=isinstance(value, int), **bounds)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _scheme_options(args: argparse.Namespace, network) -> dict[str, Any]:
    """``eps``, ``gamma``, ``kappa``, ``active_tol`` for net_trim / verify, checked (one
    budget per layer with weights: pooling and flattening have none); for verify, what is
    not given is left out (the record of the pruning decides)."""
    n_layers = len(network.prunable)
    layers = "layers" if network.is_dense else "layers with weights (dense or conv)"
    options: dict[str, Any] = {"scheme": args.scheme}
    if args.active_tol is not None:  # None: verify takes the recorded one
        options["active_tol"] = _check_number("--active-tol", args.active_tol, low=0.0)
    eps = None
    if args.eps is not None:
        eps = [_check_number("--eps", e, low=0.0) for e in args.eps]
        if len(eps) > 1 and args.scheme == "cascade":
            raise UsageError(
                "--scheme cascade takes one --eps (the first layer's); --gamma sets the "
                "later layers' budgets"
            )
        if len(eps) not in (1, n_layers):
            raise UsageError(
                f"--eps has {len(eps)} values but the network has {n_layers} {layers}; give "
                "one, or one per layer"
            )
        eps = eps[0] if len(eps) == 1 else eps
    if eps is not None or args.command == "prune":
        options["eps"] = eps
    if args.scheme == "parallel":
        for option, value in (
            ("--gamma", args.gamma),
            ("--kappa", args.kappa),
            ("--cascade-bound", args.cascade_bound),
        ):
            if value is not None:
                raise UsageError(f"{option} applies to --scheme cascade only")
        return options
    if args.gamma is not None:
        gamma = [_check_number("--gamma", g, low=1.0) for g in args.gamma]
        if len(gamma) not in (1, n_layers - 1):
            raise UsageError(
                f"--gamma has {len(gamma)} values; give one, or one per layer after the first "
                f"({n_layers - 1})"
            )
        options["gamma"] = gamma[0] if len(gamma) == 1 else gamma
    if args.kappa is not None:
        options["kappa"] = _check_number("--kappa", args.kappa, low=0.0, low_inclusive=False)
        if options["kappa"] > 1.0:
            raise UsageError(f"--kappa must be in (0, 1], got {args.kappa}")
    if args.cascade_bound is not None:
        options["cascade_bound"] = args.cascade_bound
    return options


@contextlib.contextmanager
def _warnings_to_stderr(verb: str):
    """Every warning raised inside, as one line on stderr (``nettrim VERB: warning: ...``),
    printed when the block ends, however it ends."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                print(f"nettrim {verb}: warning: {warning.message}", file=sys.stderr)


def _layer_rows(network, result, report, X: np.ndarray) -> list[dict[str, Any]]:
    """Per layer: the counts, and the realized discrepancy against the budget (absolute,
    and relative to ``||Y^(l)||_F``)."""
    outputs = network.record(X)
    rows = []
    for i, (res, rep) in enumerate(zip(result.layers, report.layers, strict=True)):
        l = network.prunable[i]  # the layer's position: pooling and flattening count
        layer, Y = network[l], outputs[l + 1]
        norm = float(np.linalg.norm(Y))
        radius = float(np.linalg.norm(np.atleast_1d(result.radii[i])))
        rows.append(
            {
                "layer": l,
                "shape": list(layer.shape),
                "activation": layer.activation,
                "nnz_before": layer.nnz,
                "nnz_after": res.nnz,
                "sparsity": res.sparsity,
                "residual": res.info.residual,
                "radius": radius,
                "relative_residual": res.info.residual / norm if norm > 0 else math.nan,
                "eps": radius / norm if norm > 0 else math.nan,
                "output_discrepancy": rep.discrepancy,
                "violation": rep.violation,
                "budget": rep.budget,
                "feas_tol": rep.feas_tol,
                "status": res.status.value,
                "solver": res.info.solver,
                "iterations": res.info.iterations,
                "seconds": res.info.seconds,
                "dual_bound": res.info.dual_bound,
                "gap": res.info.gap,
            }
        )
    return rows


def _format_prune(network, result, report, rows: list[dict[str, Any]], out: str | None) -> str:
    """The summary; ``out`` ``None`` when nothing was written."""
    verdict = (
        f"OK ({sum(c.assumption_holds for c in report.checks)} applicable checks hold)"
        if report.success
        else f"FAILED: {_failures(report)}"
    )
    title = f"nettrim prune — {_describe(network)}, {result.scheme} Net-Trim" + (
        ", per neuron" if result.per_neuron else ""
    )
    footer = [
        "discrep. = ||(X W + b - Y)_Omega||_F / ||Y||_F, the pruned layer's realized "
        "discrepancy on its input; eps = its budget, relative to ||Y||_F; budget = 'met', "
        "'within tol' (above eps by less than the solver's tolerance allows) or 'FAILS'",
        f"budgets judged at feasibility tolerance {report.tolerance}",
        f"weights kept: {result.nnz} of {network.size} ({result.nnz / network.size:.1%}); "
        f"relative output discrepancy on the inputs: {report.relative_discrepancy:.4g}",
        f"guarantees (nettrim verify): {verdict}",
        f"total seconds: {result.seconds:.1f}; "
        + (f"wrote {out}" if out is not None else "nothing written"),
    ]
    return format_layer_table(title, rows, footer)


def _describe(network) -> str:
    return f"{_dims(network)} network ({len(network)} layers, {network.nnz} non-zero weights)"


def _dims(network) -> str:
    return "-".join(map(str, network.dims))


def _format_eps(eps) -> str:
    return ",".join(f"{e:g}" for e in eps) if isinstance(eps, list) else f"{eps:g}"


def _write_json(path: str, document: dict[str, Any]) -> None:
    from .network import write_atomically

    text = json.dumps(_jsonable(document), indent=2, allow_nan=False) + "\n"
    try:
        write_atomically(path, lambda fh: fh.write(text.encode()))
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None


def _jsonable(value):
    """Plain JSON: NumPy scalars and arrays as numbers and lists, NaN and infinities as
    ``null`` (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _sweep(args: argparse.Namespace) -> int:
    from .sweep import sweep

    network = _read_network(args.network)
    X = _read_inputs(args.inputs, network)
    _check_l0_network(args, network)
    l0 = args.method != NETTRIM
    grid, other = (args.sparsity, "--eps") if l0 else (args.eps, "--sparsity")
    if grid is None:
        raise UsageError(f"--method {args.method} sweeps {'--sparsity' if l0 else '--eps'} "
                         "values; give them, comma-separated")  # fmt: skip
    if (args.eps if l0 else args.sparsity) is not None:
        raise UsageError(f"{other} does not apply to --method {args.method}")
    evaluation = X if args.eval_inputs is None else _read_inputs(args.eval_inputs, network)
    labels = None if args.labels is None else _read_labels(args.labels, evaluation.shape[0])
    if args.json is not None:
        _check_destination("--json", args.json, (args.network, args.inputs))
    options: dict[str, Any] = {"scheme": args.scheme or ("cascade" if l0 else "parallel")}
    if l0:
        options["pattern"] = args.pattern
    else:
        options["n_jobs"] = args.n_jobs

    def progress(i, point):
        if not args.quiet:
            print(f"nettrim sweep: point {i + 1}/{len(grid)}: {point.value:g} -> sparsity "
                  f"{point.sparsity:.1%}, discrepancy {point.discrepancy:.4g}",
                  file=sys.stderr, flush=True)  # fmt: skip

    try:
        with _warnings_to_stderr("sweep"):
            result = sweep(network, X, grid, method=args.method, eval_inputs=evaluation,
                           labels=labels, progress=progress, **options)  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.json is not None:
        document = {**result.to_dict(), "network": args.network, "inputs": args.inputs,
                    "eval_inputs": args.eval_inputs, "labels": args.labels}  # fmt: skip
        _write_json(args.json, document)
    print(result.summary())
    return EXIT_OK


def _read_labels(path: str, n: int) -> np.ndarray:
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"cannot read {path} as a .npy array without pickles ({exc})") from None
    if labels.ndim != 1 or labels.shape[0] != n or labels.dtype.kind not in "iu":
        raise UsageError(
            f"{path} has dtype {labels.dtype} and shape {labels.shape}; --labels must be "
            f"integer classes of shape ({n},), one per evaluation sample"
        )
    return labels


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    try:
        with open(args.report, encoding="utf-8") as fh:
            document = json.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read {args.report}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{args.report} is not JSON ({exc})") from None
    try:
        written = write_report(document, args.out, source=args.report)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except ImportError:
        raise UsageError("nettrim report needs matplotlib: pip install matplotlib") from None
    print("\n".join(f"wrote {path}" for path in written))
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _demo,
    "prune": _prune,
    "verify": _verify,
    "sweep": _sweep,
    "report": _report,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nettrim <command> ...``; returns the exit code (argparse exits by itself with
    code 2 on malformed arguments and 0 on ``--help``)."""
    from .executors import stop_pool_workers

    args = _parser().parse_args(argv)
    code = _run(args)
    # here, not in loky's exit hook, which a Ctrl-C would interrupt with a traceback; one
    # arriving now finds the command ended and its files written: its code stands
    with contextlib.suppress(KeyboardInterrupt):
        stop_pool_workers()
    return code


def _run(args: argparse.Namespace) -> int:
    """The command's exit code, with its errors, Ctrl-C and a closed stdout as exit codes."""
    try:
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"nettrim {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WriteError as exc:
        print(f"nettrim {args.command}: {exc}; any previous file is unchanged", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"nettrim {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (`nettrim verify ... | head`): end quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush finds no closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a descriptor (captured in tests)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

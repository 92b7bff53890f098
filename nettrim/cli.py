"""The ``nettrim`` command line. Results on stdout, progress and errors on stderr.

Exit codes: 0 success, 1 a failed check, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Calibration rows the demo uses with the exact (interior-point) path, which needs minutes
#: on the full 1257 rows; the fast path uses them all.
DEMO_EXACT_SUBSAMPLE = 300


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nettrim",
        description="Post-training pruning of neural networks by Net-Trim and L0 programs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
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
        choices=("parallel", "cascade"),
        help="Net-Trim scheme (default parallel)",
    )
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.eps < 0:
        print(f"nettrim demo: --eps must be >= 0, got {args.eps}", file=sys.stderr)
        return EXIT_USAGE
    n_calib = args.n_calib
    if n_calib is None and args.solver in ("clarabel", "scs"):
        n_calib = DEMO_EXACT_SUBSAMPLE
        print(
            f"nettrim demo: using {n_calib} calibration rows (exact path; --n-calib to change)",
            file=sys.stderr,
        )
    if n_calib is not None and n_calib < 1:
        print(f"nettrim demo: --n-calib must be >= 1, got {n_calib}", file=sys.stderr)
        return EXIT_USAGE
    report = run_demo(eps=args.eps, scheme=args.scheme, n_calib=n_calib, solver=args.solver)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return EXIT_USAGE  # unreachable: argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())

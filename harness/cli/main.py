"""The `pams` command line. Subcommands are registered in `SUBCOMMANDS`; this module ships
`check` (judge recorded traces offline) and `bench`; `run`, `replay` and `scenarios` live in
`harness.cli.run`, `grade` in `harness.reports.grade`."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from checkers import TraceError, check_path
from checkers.rulebook import RULEBOOK
from harness.exits import EXIT_ERROR, EXIT_INTERRUPTED

CHECK_EPILOG = (
    f"rules (all {len(RULEBOOK)} are reported; the first four are the assignment's):\n"
    + "\n".join(f"  {r.name}: {r.summary}.\n      e.g. {r.example}" for r in RULEBOOK)
    + "\n\nparameters: command line > trace header (tolerance, latency_bound) > 1.0 s each.\n"
    "--json prints one JSON object per trace, one per line (JSON Lines); an unreadable\n"
    'trace gives {"trace": PATH, "verdict": "error", "error": "PATH:LINE: reason"}.\n'
    "exit status: 0 every trace passes, 1 a rule is violated, 2 a trace is unreadable."
)


def seconds(text: str) -> float:
    """argparse type: a finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds: {text!r}")
    return value


def add_check(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="check recorded traces offline",
        description="Judge recorded traces (format v1) against the rules of docs/rules.md.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace file(s) (.jsonl)")
    parser.add_argument("--json", action="store_true", help="one JSON verdict per trace per line")
    parser.add_argument(
        "--tolerance", type=seconds, metavar="S", help="tol widening every td comparison"
    )
    parser.add_argument(
        "--latency-bound", type=seconds, metavar="S", help="L, the delivery latency bound"
    )
    parser.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Check each trace; exit 2 if any is unreadable, else 1 if any fails, else 0."""
    status = 0
    for path in args.traces:
        try:
            verdict = check_path(path, tolerance=args.tolerance, latency_bound=args.latency_bound)
        except TraceError as e:
            print(f"pams check: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"trace": path, "verdict": "error", "error": str(e)}))
            status = 2
            continue
        if args.json:
            print(json.dumps(verdict.as_json()))
        else:
            print(verdict.summary())
        if not verdict.passed and status == 0:
            status = 1
        sys.stdout.flush()
    return status


def add_show(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "show",
        help="a run's page (HTML) or its timeline (--text), violations marked",
        description="Write one self-contained HTML page of a run (no network needed to view "
        "it): a lane per participant and the coordinator on a shared time axis, ops, "
        "messages and their deliveries, membership periods, td windows, faults, and every "
        "violation highlighted with its explanation; click for the raw events. --text prints "
        "the timeline in the terminal instead.",
        epilog="exit status: 0 the trace passes, 1 a rule failed, 2 the trace is unreadable "
        "or the page cannot be written.",
    )
    parser.add_argument("trace", metavar="TRACE", help="a recorded trace (.jsonl)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE.html",
        type=Path,
        help="where to write the page (default: beside the trace, TRACE with suffix .html)",
    )
    parser.add_argument("--text", action="store_true", help="the timeline in the terminal")
    parser.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    if args.text:
        from harness.reports.timeline import render

        try:
            text, verdict = render(Path(args.trace))
        except TraceError as e:
            print(f"pams show: {e}", file=sys.stderr)
            return EXIT_ERROR
        print(text)
        return 0 if verdict.passed else 1
    from harness.reports.pagefile import default_path, write_page

    try:
        page, verdict = write_page(Path(args.trace), args.output)
    except TraceError as e:
        print(f"pams show: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        where = args.output or default_path(Path(args.trace))
        print(f"pams show: {where}: cannot write the page: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.trace}: {verdict.verdict.upper()}; page: {page}")
    return 0 if verdict.passed else 1


def add_bench(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="benchmarks (pams bench checkers --help)",
        add_help=False,
        description="Benchmarks: checkers, proxy, grade, impl (implementations side by side).",
    )
    parser.set_defaults(func=None)  # listed for --help; `main` hands its arguments to run_bench


def run_bench(argv: list[str]) -> int:
    """`pams bench ...`: delegate every argument to `benchmarks.main` (imported lazily)."""
    from benchmarks import main as bench

    return bench.main(argv, prog="pams bench")


def add_harness(sub: argparse._SubParsersAction) -> None:
    """run, replay, grade, class, autograder and scenarios (imported lazily)."""
    from harness.cli import autograder, classroom, doctor, grade
    from harness.cli import run as cli_run

    cli_run.add_run(sub)
    cli_run.add_replay(sub)
    grade.add_grade(sub)
    classroom.add_class(sub)
    autograder.add_autograder(sub)
    cli_run.add_scenarios(sub)
    doctor.add_doctor(sub)


def add_init(sub: argparse._SubParsersAction) -> None:
    """`pams init` (harness.cli.init, imported lazily)."""
    from harness.cli.init import add_init as add

    add(sub)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_check,
    add_show,
    add_harness,
    add_init,
    add_bench,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pams",
        description="Conformance harness for the persistent asynchronous multicast system.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _terminate_as_interrupt() -> Any:
    """SIGTERM ends a command like Ctrl-C does (runs tear down; nothing is left running);
    returns the handler it replaced (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, signal.default_int_handler)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the `pams` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return run_bench(argv[1:])
    args = build_parser().parse_args(argv)
    previous = _terminate_as_interrupt()
    try:
        return int(args.func(args))
    except BrokenPipeError:  # stdout closed: what was to be said could not be said
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pams: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

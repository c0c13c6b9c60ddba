"""`pams grade`: the command line of the battery (harness.reports.grade does the work)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from harness.adapters import adapter as adapters
from harness.adapters.adapter import AdapterError, load_adapter
from harness.cli.options import add_impl, add_jobs
from harness.exits import EXIT_ERROR, EXIT_INTERRUPTED
from harness.reports.grade import exit_status, report, run_battery, write_reports
from harness.reports.rubric import Rubric, RubricError, load_rubric
from harness.running.runner import fresh_dir
from harness.scenarios.registry import PROFILES, REGISTRY, profile


def add_grade(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "grade",
        help="run a profile's battery against an implementation and score it",
        description="Run every scenario of a profile against the implementation an adapter "
        "describes (in parallel), then print a scenario x rule table, a per-rule summary, "
        "a score, and one line per failure with its trace. Exit 0 all pass, 1 a rule "
        "failed, 2 the implementation could not be run (build failed, never started).",
    )
    add_impl(parser)
    parser.add_argument(
        "--profile", default="basic", choices=list(PROFILES), help="which scenarios (default basic)"
    )
    add_jobs(parser, "scenarios run in parallel")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="where traces go (default pams-grade/TIME); must be empty or absent",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    parser.add_argument(
        "--gradescope", type=Path, metavar="FILE", help="write a Gradescope results.json here"
    )
    parser.add_argument("--seed", type=int, help="seed for the random scenarios (default 1)")
    parser.add_argument(
        "--scenario", action="append", metavar="NAME", help="only these scenarios (repeatable)"
    )
    add_rubric_repeat(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=cmd_grade)


def add_rubric_repeat(parser: argparse.ArgumentParser) -> None:
    """`--rubric R` and `--repeat K`, shared by `pams grade` and `pams class`."""
    parser.add_argument(
        "--rubric",
        type=Path,
        metavar="R",
        help="rubric TOML (docs/rubric.md; default: the shipped one)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="run each scenario K times (random ones with seeds N..N+K-1); pass rates reported",
    )


def check_repeat(repeat: int) -> None:
    if repeat < 1:
        raise ValueError("--repeat must be at least 1")


def battery_plan(args: argparse.Namespace) -> tuple[list[str], Rubric]:
    """The scenarios (--scenario, else --profile) and the rubric of a grade or class run,
    with -j and --repeat checked; ValueError or RubricError (one line) before any run."""
    names = args.scenario or list(profile(args.profile))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}")
    if args.jobs < 1:
        raise ValueError("-j must be at least 1")
    check_repeat(args.repeat)
    return names, load_rubric(args.rubric)


def cmd_grade(args: argparse.Namespace) -> int:
    try:
        adapter = load_adapter(args.impl)
        names, rubric = battery_plan(args)
        for option, path in (("--junit", args.junit), ("--gradescope", args.gradescope)):
            writable_file(option, path)
        out = output_dir(args.output)
    except (AdapterError, RubricError, ValueError) as e:
        print(f"pams grade: {e}", file=sys.stderr)
        return EXIT_ERROR
    try:
        if adapter.build and not args.quiet:
            print(f"building {adapter.name}: {' '.join(adapter.build)} ...", file=sys.stderr)
        adapters.build(adapter)
    except adapters.BuildError as e:
        print(f"pams grade: cannot run the implementation: {e}", file=sys.stderr)
        print(getattr(e, "output", "") or "", file=sys.stderr)
        return EXIT_ERROR
    try:
        outcomes = run_battery(adapter, names, out, args.jobs, args.seed, args.quiet, args.repeat)
    except KeyboardInterrupt:
        print(
            f"pams grade: interrupted; every process was stopped; partial traces in {out}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    selection = "selected scenarios" if args.scenario else f"profile {args.profile}"
    print(report(outcomes, adapter.name, selection, out, rubric))
    write_reports(outcomes, args.junit, args.gradescope, adapter.name, rubric, args.impl)
    return exit_status(outcomes)


def writable_file(option: str, path: Optional[Path]) -> None:
    """ValueError naming `option` when a report could not be written to `path` (checked
    before any run, so a typo does not cost a whole battery)."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory (give a file name)")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is not a directory")


def output_dir(output: Optional[Path]) -> Path:
    return fresh_dir(output, "pams-grade")

"""`pams autograder gradescope|github|run`: make a Gradescope bundle or a GitHub Actions
workflow that grades with pams, and (inside the bundle) grade one submission (harness.autograder
does the work)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.adapters.adapter import AdapterError
from harness.autograder.github import WORKFLOW, write_github
from harness.autograder.gradescope import check_root, grade_submission, write_bundle
from harness.autograder.setup import Setup, make_setup
from harness.autograder.wheel import WheelError, build_wheel
from harness.cli.grade import add_rubric_repeat
from harness.exits import EXIT_ERROR, EXIT_PASS
from harness.reports.rubric import RubricError
from harness.scenarios.registry import PROFILES


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", default="basic", choices=list(PROFILES), help="which scenarios (default basic)"
    )
    p.add_argument("--scenario", action="append", metavar="NAME", help="only these (repeatable)")
    add_rubric_repeat(p)
    p.add_argument("--seed", type=int, help="seed for the random scenarios (default 1)")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="scenarios at once (default: cores)")
    p.add_argument(
        "--adapter",
        type=Path,
        metavar="TEMPLATE",
        help="the course's adapter for every submission (default: the submission's pams.toml)",
    )
    p.add_argument(
        "--wheel", type=Path, metavar="FILE", help="ship this pams wheel (default: build one)"
    )


def add_autograder(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "autograder",
        help="a Gradescope autograder bundle or a GitHub Actions workflow that grades with pams",
        description="Make an autograder for an existing engine: `gradescope` writes the zip "
        "Gradescope builds its image from, `github` a workflow grading a repository on every "
        "push; `run` is what the Gradescope bundle runs for each submission.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    gs = kinds.add_parser("gradescope", help="write the Gradescope autograder zip")
    gs.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.zip")
    _common(gs)
    gs.set_defaults(func=cmd_gradescope)
    gh = kinds.add_parser("github", help="write a GitHub Actions workflow (and what it installs)")
    gh.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help=f"the repository's top (default .): writes DIR/{WORKFLOW} and DIR/.github/pams/",
    )
    _common(gh)
    gh.add_argument(
        "--install",
        metavar="SPEC",
        help="pip requirement that installs pams (default: a wheel written beside the workflow)",
    )
    gh.set_defaults(func=cmd_github)
    run = kinds.add_parser("run", help="grade one submission inside the Gradescope bundle")
    run.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="the autograder directory (default $PAMS_AUTOGRADER_ROOT or /autograder)",
    )
    run.set_defaults(func=cmd_run)


def _setup(args: argparse.Namespace) -> Setup:
    return make_setup(
        args.profile, args.scenario, args.repeat, args.seed, args.jobs, args.rubric, args.adapter
    )


def _fail(kind: str, error: Exception) -> int:
    print(f"pams autograder {kind}: {error}", file=sys.stderr)
    return EXIT_ERROR


def cmd_gradescope(args: argparse.Namespace) -> int:
    try:
        setup = _setup(args)
        if args.output.is_dir():
            raise ValueError(f"-o {args.output}: is a directory (give the zip's file name)")
        with tempfile.TemporaryDirectory(prefix="pams-autograder-") as tmp:
            wheel = build_wheel(Path(tmp), args.wheel)
            write_bundle(args.output, setup, wheel)
    except (AdapterError, RubricError, ValueError, WheelError, OSError) as e:
        return _fail("gradescope", e)
    print(
        f"wrote {args.output} ({setup.selection}, {len(setup.scenarios)} scenarios, {wheel.name})"
    )
    return EXIT_PASS


def cmd_github(args: argparse.Namespace) -> int:
    try:
        setup = _setup(args)
        if args.install and args.wheel:
            raise ValueError("give --install or --wheel, not both")
        wheel = None
        if not args.install:
            wheel = build_wheel(args.output / ".github" / "pams", args.wheel)
        written = write_github(args.output, setup, wheel, args.install)
    except (AdapterError, RubricError, ValueError, WheelError, OSError) as e:
        return _fail("github", e)
    print("wrote " + ", ".join(str(p) for p in written) + "; commit them to the repository")
    return EXIT_PASS


def cmd_run(args: argparse.Namespace) -> int:
    try:
        root = check_root(args.root)
    except ValueError as e:
        return _fail("run", e)
    return grade_submission(root)

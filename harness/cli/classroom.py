"""`pams class`: the command line of class grading (harness.reports.classroom schedules,
harness.reports.classsummary writes the summaries)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from harness.cli.grade import add_rubric_repeat, battery_plan
from harness.cli.options import add_jobs
from harness.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PASS
from harness.reports.classroom import (
    ClassError,
    ClassRun,
    Plan,
    Result,
    load_result,
    open_class_dir,
    submissions,
)
from harness.reports.classsummary import Row, write_summary
from harness.reports.grade import plural, pts
from harness.reports.rubric import Rubric, RubricError
from harness.scenarios.registry import PROFILES

DEFAULT_OUTPUT = Path("pams-class")


def add_class(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "class",
        help="grade many submissions in one command (resumable); summary.csv, index.html",
        description="Grade every SUBMISSION (an adapter file, or a directory holding pams.toml) "
        "on the same scenarios, the runs of all of them sharing the -j slots. Each finished "
        "submission is kept in DIR/NAME/result.json: run the same command again after an "
        "interruption and only the unfinished ones are graded. Writes DIR/summary.csv, "
        "DIR/summary.json and DIR/index.html. Exit 0 once every submission is graded "
        "(whatever its score), 2 bad input, 130 interrupted.",
    )
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help="class directory (default ./pams-class); the same DIR resumes",
    )
    parser.add_argument(
        "--profile", default="basic", choices=list(PROFILES), help="which scenarios (default basic)"
    )
    parser.add_argument(
        "--scenario", action="append", metavar="NAME", help="only these scenarios (repeatable)"
    )
    add_jobs(parser, "runs at once over all submissions")
    parser.add_argument(
        "--regrade",
        action="append",
        default=[],
        metavar="NAME",
        help="grade this submission again even if it was finished (repeatable)",
    )
    parser.add_argument("--seed", type=int, help="seed for the random scenarios (default 1)")
    add_rubric_repeat(parser)
    parser.add_argument(
        "--init",
        action="store_true",
        help="first run `pams init` on every SUBMISSION directory that has no pams.toml",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=cmd_class)


def cmd_class(args: argparse.Namespace) -> int:
    try:
        listed, rubric = battery_plan(args)
        names = tuple(listed)
        subs = submissions(args.submissions)
        strangers = [n for n in args.regrade if n not in {s.name for s in subs}]
        if strangers:
            known = ", ".join(s.name for s in subs)
            raise ClassError(f"--regrade {strangers[0]}: no such submission (one of {known})")
        plan = Plan(names, args.repeat, args.seed)
        open_class_dir(args.output, plan)
    except (ClassError, RubricError, ValueError) as e:
        print(f"pams class: {e}", file=sys.stderr)
        return EXIT_ERROR
    out: Path = args.output
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if args.init:
        init_missing(subs, say)
    results: dict[str, Result] = {}
    for s in subs:
        kept = None if s.name in args.regrade else load_result(s, out, plan)
        if kept is not None:
            results[s.name] = kept
    todo = [s for s in subs if s.name not in results]
    if results:
        say(f"kept {len(results)} finished from an earlier run in {out}: {', '.join(results)}")
    say(
        f"grading {len(todo)} of {len(subs)} submissions: {plural(len(names), 'scenario')}"
        + (f" x {args.repeat}" if args.repeat > 1 else "")
        + f", {args.jobs} runs at a time, into {out}"
    )

    def finished(r: Result) -> None:
        results[r.name] = r
        write_summary(_in_order(subs, results), rubric, plan, out)

    run = ClassRun(todo, out, plan, args.jobs, finished, None if args.quiet else sys.stderr)
    try:
        run.run()
    except KeyboardInterrupt:
        write_summary(_in_order(subs, results), rubric, plan, out)
        left = len(subs) - len(results)
        print(
            f"pams class: interrupted; every process was stopped; {len(results)} finished "
            f"submissions kept, {left} unfinished: run the same command again to grade them",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    rows = write_summary(_in_order(subs, results), rubric, plan, out)
    print(table(rows, rubric, out))
    return EXIT_PASS


def init_missing(subs: list, say: Callable[[str], None]) -> None:
    """`pams init` on each submission directory without an adapter; one that cannot be
    inferred is said in one line and then counts as could-not-run, like any other."""
    from harness.adapters.init import InitError, init_submission

    for sub in subs:
        path = Path(sub.ref)
        if not path.is_dir() or any((path / n).exists() for n in ("pams.toml", "adapter.toml")):
            continue
        say(f"{sub.name}: no pams.toml: running pams init")
        try:
            init_submission(path, say=say)
        except InitError as e:
            say(f"{sub.name}: pams init could not write an adapter: {e}")


def _in_order(subs: list, results: dict[str, Result]) -> list[Result]:
    return [results[s.name] for s in subs if s.name in results]


def table(rows: list[Row], rubric: Rubric, out: Path) -> str:
    """The class at a glance (stdout): one line per submission, best first."""
    width = max([len(w.name) for w in rows] + [10])
    lines = [f"{'#':>3}  {'submission':<{width}}  {'score':>13}  {'%':>4}  failed"]
    for i, w in enumerate(rows, start=1):
        score = f"{pts(w.points)}/{pts(w.most)}"
        percent = "-" if w.percent is None else f"{w.percent:.0f}"
        what = f"could not run: {w.reason}" if w.reason else (" ".join(w.failed) or "-")
        lines.append(f"{i:>3}  {w.name:<{width}}  {score:>13}  {percent:>4}  {what}")
    lines += [
        "",
        rubric.describe(),
        f"summary: {out / 'summary.csv'}, {out / 'summary.json'}, {out / 'index.html'}",
    ]
    return "\n".join(lines)

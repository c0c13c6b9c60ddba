"""`pams bench class`: how many submissions an hour `pams class` grades on this machine, for
the reference and for a Java fixture (its coordinator is Java), and the ratio to the
schedule-bound limit: each submission's scenarios cannot take less than their schedules
(steps, then the drain), so with N slots at most 3600 × N / (sum of schedule lengths)
submissions an hour. Prints figures, asserts nothing."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from harness.adapters.adapter import AdapterError, load_adapter
from harness.exits import EXIT_ERROR, EXIT_PASS
from harness.reports.battery import PASS
from harness.reports.classroom import ClassRun, Plan, Result, Submission
from harness.scenarios.registry import PROFILES, REGISTRY, get_scenario, profile

ROOT = Path(__file__).resolve().parents[1]
JAVA = ROOT / "tests" / "fixtures" / "java" / "java-nanotime.toml"


def schedule_seconds(names: list[str]) -> float:
    """The sum of the scenarios' schedule lengths (last step, then the drain)."""
    return sum(get_scenario(n).duration + get_scenario(n).drain for n in names)


def measure(ref: str, names: list[str], copies: int, jobs: int) -> dict[str, Any]:
    """Grade `copies` copies of one submission through pams class; the figures."""
    subs = [Submission(f"{Path(ref).stem}-{i}", ref) for i in range(1, copies + 1)]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pams-bench-class-") as tmp:
        start = time.perf_counter()
        ClassRun(subs, Path(tmp), Plan(tuple(names)), jobs, results.append, stream=None).run()
        wall = time.perf_counter() - start
    runs = [o for r in results for o in r.outcomes]
    bound = schedule_seconds(names) / jobs  # the least wall time a submission can take
    per_hour = 3600.0 * copies / wall
    limit = 3600.0 / bound
    return {
        "impl": ref,
        "submissions": copies,
        "scenarios": len(names),
        "jobs": jobs,
        "wall_seconds": round(wall, 2),
        "submissions_per_hour": round(per_hour, 1),
        "schedule_seconds": round(schedule_seconds(names), 2),
        "limit_per_hour": round(limit, 1),
        "ratio_to_limit": round(per_hour / limit, 3),
        "runs_passed": sum(o.status == PASS for o in runs),
        "runs": len(runs),
        "could_not_run": [r.reason for r in results if r.reason],
    }


def render(fig: dict[str, Any]) -> str:
    failed = f"; could not run: {fig['could_not_run'][0]}" if fig["could_not_run"] else ""
    return (
        f"{fig['impl']}: {fig['submissions']} submission(s) x {fig['scenarios']} scenarios, "
        f"-j {fig['jobs']}: {fig['wall_seconds']:.1f} s wall, "
        f"{fig['submissions_per_hour']:.1f} submissions/hour; schedule-bound limit "
        f"{fig['limit_per_hour']:.1f}/hour ({fig['schedule_seconds']:.1f} s of schedules / "
        f"{fig['jobs']} slots): ratio {fig['ratio_to_limit']:.2f}; runs passed "
        f"{fig['runs_passed']}/{fig['runs']}{failed}"
    )


def main(argv: list[str], prog: str = "pams bench") -> int:
    p = argparse.ArgumentParser(prog=f"{prog} class", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--impl",
        action="append",
        metavar="A",
        help=f"adapter (repeatable; default: reference and {JAVA.relative_to(ROOT)})",
    )
    p.add_argument("--profile", default="basic", choices=list(PROFILES), help="default basic")
    p.add_argument("--scenario", action="append", metavar="NAME", help="only these (repeatable)")
    p.add_argument("--submissions", type=int, default=2, metavar="N", help="copies (default 2)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N")
    p.add_argument("--json", action="store_true", help="one JSON object per implementation")
    args = p.parse_args(argv)
    refs: list[str] = args.impl or ["reference", str(JAVA)]
    names = list(args.scenario or profile(args.profile))
    problem: Optional[str] = None
    if [n for n in names if n not in REGISTRY]:
        problem = f"unknown scenario(s): {', '.join(n for n in names if n not in REGISTRY)}"
    elif args.submissions < 1 or args.jobs < 1:
        problem = "--submissions and -j must be at least 1"
    try:
        for ref in refs:
            load_adapter(ref)
    except AdapterError as e:
        problem = str(e)
    if problem:
        print(f"{prog} class: {problem}", file=sys.stderr)
        return EXIT_ERROR
    for ref in refs:
        fig = measure(ref, names, args.submissions, args.jobs)
        print(json.dumps(fig) if args.json else render(fig), flush=True)
    return EXIT_PASS

"""The battery of a profile against one implementation, in parallel, and what `pams grade`
reports of it: a scenario × rule table, a per-rule summary, a score, one line per failure
(trace path and the first violations), JUnit XML and a Gradescope results.json
(docs/cli.md)."""

from __future__ import annotations

import json
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

from checkers import RULES
from checkers.rulebook import RULEBOOK
from harness.adapters.adapter import Adapter
from harness.exits import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from harness.reports.battery import ERROR, FAIL, NA, PASS, SKIPPED, UNEXERCISED, Outcome, run_one
from harness.running.runner import abort_all

SHORT = {
    PASS: "pass",
    FAIL: "FAIL",
    UNEXERCISED: "NOEX",
    NA: "-",
    SKIPPED: "skip",
    ERROR: "ERR",
}
COLUMN = {r.name: r.column for r in RULEBOOK}


def run_battery(
    adapter: Adapter,
    names: list[str],
    out: Path,
    jobs: int,
    seed: Optional[int] = None,
    quiet: bool = False,
) -> list[Outcome]:
    """Run `names` with `jobs` in parallel; progress on stderr; outcomes in `names` order."""
    started = time.monotonic()
    lock = threading.Lock()
    done: dict[str, Outcome] = {}
    if not quiet:
        print(
            f"grading {adapter.name}: {plural(len(names), 'scenario')}, {jobs} at a time, "
            f"traces in {out}",
            file=sys.stderr,
            flush=True,
        )
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {pool.submit(run_one, adapter, n, out / n, seed): n for n in names}
    try:
        for future in as_completed(futures):
            outcome = future.result()
            with lock:
                done[outcome.scenario] = outcome
                if not quiet:
                    print(
                        f"[{len(done):>2}/{len(names)} {time.monotonic() - started:6.1f}s] "
                        f"{SHORT[outcome.status]:<4} {outcome.scenario} "
                        f"({outcome.seconds:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    except BaseException:  # Ctrl-C / SIGTERM: stop every run; each kills its processes
        for f in futures:
            f.cancel()
        abort_all()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return [done[n] for n in names]


def report(outcomes: list[Outcome], impl: str, selection: str, out: Path) -> str:
    """The table, per-rule summary, score and failure lines (plain text)."""
    width = max(len(o.scenario) for o in outcomes) + (
        11 if any(o.boundary for o in outcomes) else 0
    )
    heads = [COLUMN.get(r, r) for r in RULES]
    cols = [max(len(h), 4) for h in heads]
    lines = [f"pams grade: {impl}, {selection}", ""]
    header = " ".join(f"{h:>{c}}" for h, c in zip(heads, cols))
    lines.append(f"{'scenario':<{width}}  {header}  result")
    for o in outcomes:
        name = o.scenario + (" [boundary]" if o.boundary else "")
        cells = " ".join(
            f"{SHORT[o.rules.get(r, o.status if o.status in (ERROR, SKIPPED) else NA)]:>{c}}"
            for r, c in zip(RULES, cols)
        )
        lines.append(f"{name:<{width}}  {cells}  {SHORT[o.status]}")
    lines += ["", "per rule:"]
    for r in RULES:
        statuses = [o.rules.get(r) for o in outcomes]
        failed = [o.scenario for o in outcomes if o.rules.get(r) == FAIL]
        unexercised = [o.scenario for o in outcomes if o.rules.get(r) == UNEXERCISED]
        checked = sum(s in (PASS, FAIL) for s in statuses)
        word = "FAIL" if failed or unexercised else "pass"
        where = f"  failed in: {', '.join(failed)}" if failed else ""
        where += f"  not exercised in: {', '.join(unexercised)}" if unexercised else ""
        lines.append(f"  {r:<20} {word:<4}  ({checked} scenarios checked it){where}")
    passed, total = score(outcomes)
    lines += ["", f"score: {passed}/{total} scenarios pass ({percent(passed, total)})"]
    skipped = [o for o in outcomes if o.status == SKIPPED]
    errors = [o for o in outcomes if o.status == ERROR]
    failures = [o for o in outcomes if o.status == FAIL]
    if skipped:
        lines.append(f"skipped (not counted): {len(skipped)}")
        lines += [f"  {o.scenario}: {o.detail}" for o in skipped]
    if errors:
        lines.append("could not run:")
        lines += [f"  {o.scenario}: {o.detail.splitlines()[0]}" for o in errors]
    if failures:
        lines.append("failures (first violation of each; `pams check TRACE` explains all):")
        lines += [f"  {o.scenario}: {o.trace}\n    {o.first_violation}" for o in failures]
    if any(UNEXERCISED in o.rules.values() for o in outcomes):
        lines.append(
            "NOEX: not exercised: the run never showed what the scenario needs for that rule "
            "(commands refused or unanswered, processes gone): a failure"
        )
    lines.append(f"traces: {out}")
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """E.g. "1 scenario", "2 scenarios"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def score(outcomes: list[Outcome]) -> tuple[int, int]:
    """(passed, counted): skipped scenarios are not counted; errors count as failed."""
    counted = [o for o in outcomes if o.status != SKIPPED]
    return sum(o.status == PASS for o in counted), len(counted)


def percent(passed: int, total: int) -> str:
    return f"{100.0 * passed / total:.0f}%" if total else "n/a"


def exit_status(outcomes: list[Outcome]) -> int:
    """2 if some scenario could not run, else 1 if some failed, else 0 (docs/cli.md)."""
    if any(o.status == ERROR for o in outcomes):
        return EXIT_ERROR
    return EXIT_FAIL if any(o.status == FAIL for o in outcomes) else EXIT_PASS


def write_reports(
    outcomes: list[Outcome], junit: Optional[Path], gradescope: Optional[Path], impl: str
) -> None:
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(junit_xml(outcomes, impl))
    if gradescope is not None:
        gradescope.parent.mkdir(parents=True, exist_ok=True)
        gradescope.write_text(json.dumps(gradescope_json(outcomes), indent=2) + "\n")


def junit_xml(outcomes: list[Outcome], impl: str) -> bytes:
    """One testsuite, one testcase per scenario; failures and errors carry the explanation."""
    suite = ET.Element(
        "testsuite",
        name=f"pams {impl}",
        tests=str(len(outcomes)),
        failures=str(sum(o.status == FAIL for o in outcomes)),
        errors=str(sum(o.status == ERROR for o in outcomes)),
        skipped=str(sum(o.status == SKIPPED for o in outcomes)),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"pams.{o.profile}",
            name=o.scenario,
            time=f"{o.seconds:.3f}",
        )
        if o.status == FAIL:
            failed = ", ".join(o.failed_rules)
            node = ET.SubElement(case, "failure", message=f"{failed}: {o.first_violation}")
            node.text = f"trace: {o.trace}\n{o.detail}"
        elif o.status == ERROR:
            node = ET.SubElement(case, "error", message=o.detail.splitlines()[0])
            node.text = o.detail
        elif o.status == SKIPPED:
            ET.SubElement(case, "skipped", message=o.detail)
        if o.trace is not None:
            ET.SubElement(case, "system-out").text = f"trace: {o.trace}"
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def gradescope_json(outcomes: list[Outcome]) -> dict:
    """Gradescope autograder results: one test per scenario worth 1 point (skipped ones are
    listed with max_score 0), total score, visible output with the explanation."""
    tests = []
    for o in outcomes:
        counted = o.status != SKIPPED
        name = o.scenario + (" [boundary]" if o.boundary else "")
        output = o.detail if o.status != PASS else f"pass ({o.profile})"
        if o.trace is not None:
            output += f"\ntrace: {o.trace}"
        tests.append(
            {
                "name": name,
                "score": 1.0 if o.status == PASS else 0.0,
                "max_score": 1.0 if counted else 0.0,
                "output": output,
                "visibility": "visible",
                "tags": [o.profile, *o.failed_rules],
            }
        )
    passed, total = score(outcomes)
    return {
        "score": float(passed),
        "max_score": float(total),
        "visibility": "visible",
        "stdout_visibility": "visible",
        "tests": tests,
    }

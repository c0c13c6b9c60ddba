"""The battery of a profile against one implementation, in parallel (each scenario `repeat`
times), and what `pams grade` reports of it: a scenario × rule table, a per-rule summary, a
score and the rubric's points, one line per failure (trace path and the first violations),
JUnit XML and a Gradescope results.json (docs/cli.md, docs/rubric.md)."""

from __future__ import annotations

import json
import shlex
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

from checkers import RULES
from checkers.rulebook import RULEBOOK
from harness.adapters.adapter import Adapter
from harness.exits import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from harness.reports.battery import ERROR, FAIL, NA, PASS, SKIPPED, UNEXERCISED, Outcome, run_one
from harness.reports.rubric import Rubric, Score, default_rubric, score_repeats, total
from harness.running import sandbox as sb
from harness.running.runner import abort_all
from harness.scenarios.registry import DEFAULT_SEED, REGISTRY

SHORT = {
    PASS: "pass",
    FAIL: "FAIL",
    UNEXERCISED: "NOEX",
    NA: "-",
    SKIPPED: "skip",
    ERROR: "ERR",
}
COLUMN = {r.name: r.column for r in RULEBOOK}


def run_dir(out: Path, name: str, k: int, repeat: int) -> Path:
    """Where repeat `k` (1-based) of scenario `name` is recorded: OUT/NAME, or OUT/NAME/K."""
    return out / name if repeat == 1 else out / name / str(k)


def repeat_seed(seed: Optional[int], k: int) -> int:
    """The seed of repeat `k`: random scenarios get a different schedule each repeat."""
    return (DEFAULT_SEED if seed is None else seed) + k - 1


def run_battery(
    adapter: Adapter,
    names: list[str],
    out: Path,
    jobs: int,
    seed: Optional[int] = None,
    quiet: bool = False,
    repeat: int = 1,
) -> list[Outcome]:
    """Run `names` (each `repeat` times) with `jobs` in parallel; progress on stderr; outcomes
    in `names` order, the repeats of a scenario together."""
    started = time.monotonic()
    lock = threading.Lock()
    tasks = [(n, k) for n in names for k in range(1, repeat + 1)]
    done: dict[tuple[str, int], Outcome] = {}
    if not quiet:
        times = f" x {repeat}" if repeat > 1 else ""
        print(
            f"grading {adapter.name}: {plural(len(names), 'scenario')}{times}, {jobs} at a time, "
            f"traces in {out}",
            file=sys.stderr,
            flush=True,
        )
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {
        pool.submit(run_one, adapter, n, run_dir(out, n, k, repeat), repeat_seed(seed, k)): (n, k)
        for n, k in tasks
    }
    try:
        for future in as_completed(futures):
            outcome = future.result()
            with lock:
                done[futures[future]] = outcome
                if not quiet:
                    print(
                        f"[{len(done):>2}/{len(tasks)} {time.monotonic() - started:6.1f}s] "
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
    return [done[t] for t in tasks]


def grouped(outcomes: Sequence[Outcome]) -> dict[str, list[Outcome]]:
    """The runs of each scenario (its repeats), in first-seen order."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.scenario, []).append(o)
    return groups


def overall(runs: Sequence[Outcome]) -> str:
    """One scenario's status over its repeats: error, fail if any failed, skipped if all were."""
    statuses = {o.status for o in runs}
    for status in (ERROR, FAIL, PASS):
        if status in statuses:
            return status
    return SKIPPED


def scenario_scores(outcomes: Sequence[Outcome], rubric: Rubric) -> dict[str, Score]:
    return {name: score_repeats(rubric, runs) for name, runs in grouped(outcomes).items()}


def _cell(runs: Sequence[Outcome], rule: str) -> str:
    statuses = [o.rules.get(rule, o.status if o.status in (ERROR, SKIPPED) else NA) for o in runs]
    if len(set(statuses)) == 1:
        return SHORT[statuses[0]]
    return f"{statuses.count(PASS)}/{len(statuses)}"


def _result(runs: Sequence[Outcome]) -> str:
    statuses = [o.status for o in runs]
    if len(set(statuses)) == 1:
        return SHORT[statuses[0]]
    return f"{statuses.count(PASS)}/{len(statuses)}"


def report(
    outcomes: list[Outcome],
    impl: str,
    selection: str,
    out: Path,
    rubric: Optional[Rubric] = None,
) -> str:
    """The table, per-rule summary, score, points, rubric and failure lines (plain text)."""
    rubric = rubric or default_rubric()
    groups = grouped(outcomes)
    repeat = max(len(runs) for runs in groups.values())
    scores = scenario_scores(outcomes, rubric)
    width = max(len(o.scenario) for o in outcomes) + (
        11 if any(o.boundary for o in outcomes) else 0
    )
    heads = [COLUMN.get(r, r) for r in RULES]
    cols = [max(len(h), 4) for h in heads]
    times = f", each scenario {repeat} times" if repeat > 1 else ""
    lines = [f"pams grade: {impl}, {selection}{times}", sb.detect().describe(), ""]
    header = " ".join(f"{h:>{c}}" for h, c in zip(heads, cols))
    lines.append(f"{'scenario':<{width}}  {header}  result  points")
    for name, runs in groups.items():
        label = name + (" [boundary]" if runs[0].boundary else "")
        cells = " ".join(f"{_cell(runs, r):>{c}}" for r, c in zip(RULES, cols))
        s = scores[name]
        points = f"{pts(s.points)}/{pts(s.most)}" if s.most else "-"
        lines.append(f"{label:<{width}}  {cells}  {_result(runs):<6}  {points}")
    lines += ["", "per rule:"]
    battery = total(list(scores.values()))
    for r in RULES:
        statuses = [o.rules.get(r) for o in outcomes]
        failed = list(dict.fromkeys(o.scenario for o in outcomes if o.rules.get(r) == FAIL))
        unexercised = list(
            dict.fromkeys(o.scenario for o in outcomes if o.rules.get(r) == UNEXERCISED)
        )
        checked = len({o.scenario for o in outcomes if o.rules.get(r) in (PASS, FAIL)})
        word = "FAIL" if failed or unexercised else "pass"
        where = f"  failed in: {', '.join(failed)}" if failed else ""
        where += f"  not exercised in: {', '.join(unexercised)}" if unexercised else ""
        runs_checked = sum(s in (PASS, FAIL, UNEXERCISED) for s in statuses)
        rate = f", passed {statuses.count(PASS)}/{runs_checked} runs" if repeat > 1 else ""
        earned, most = battery.rules.get(r, (0.0, 0.0))
        points = f", {pts(earned)}/{pts(most)} points" if most else ""
        lines.append(f"  {r:<20} {word:<4}  ({checked} scenarios checked it{rate}{points}){where}")
    passed, counted = scenario_score(outcomes)
    lines += ["", f"score: {passed}/{counted} scenarios pass ({percent(passed, counted)})"]
    lines.append(
        f"points: {pts(battery.points)}/{pts(battery.most)} "
        f"({percent_points(battery.points, battery.most)})"
    )
    if repeat > 1:
        flaky = [n for n, runs in groups.items() if len({o.status for o in runs} - {SKIPPED}) > 1]
        runs_passed = sum(o.status == PASS for o in outcomes)
        runs_counted = sum(o.status != SKIPPED for o in outcomes)
        lines.append(
            f"runs: {runs_passed}/{runs_counted} pass; flaky (passed some repeats, not all): "
            + (", ".join(f"{n} {_result(groups[n])}" for n in flaky) or "none")
        )
    lines.append(rubric.describe())
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
        lines += [
            f"  {o.scenario}: {o.trace}{f'  page: {o.page}' if o.page else ''}\n"
            f"    {o.first_violation}"
            for o in failures
        ]
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
    """(passed, counted) runs: skipped runs are not counted; errors count as failed."""
    counted = [o for o in outcomes if o.status != SKIPPED]
    return sum(o.status == PASS for o in counted), len(counted)


def scenario_score(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """(passed, counted) scenarios: a scenario passes when every repeat passed; one skipped
    in every repeat is not counted."""
    results = [overall(runs) for runs in grouped(outcomes).values()]
    counted = [r for r in results if r != SKIPPED]
    return counted.count(PASS), len(counted)


def pts(x: float) -> str:
    """Points as shown: at most two decimals ("8.33", "10")."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def percent(passed: int, total: int) -> str:
    return f"{100.0 * passed / total:.0f}%" if total else "n/a"


def percent_points(earned: float, most: float) -> str:
    return f"{100.0 * earned / most:.0f}%" if most else "n/a"


def exit_status(outcomes: list[Outcome]) -> int:
    """2 if some scenario could not run, else 1 if some failed, else 0 (docs/cli.md)."""
    if any(o.status == ERROR for o in outcomes):
        return EXIT_ERROR
    return EXIT_FAIL if any(o.status == FAIL for o in outcomes) else EXIT_PASS


def write_reports(
    outcomes: list[Outcome],
    junit: Optional[Path],
    gradescope: Optional[Path],
    impl: str,
    rubric: Optional[Rubric] = None,
    impl_arg: Optional[str] = None,
) -> None:
    rubric = rubric or default_rubric()
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(junit_xml(outcomes, impl, rubric))
    if gradescope is not None:
        gradescope.parent.mkdir(parents=True, exist_ok=True)
        results = gradescope_json(outcomes, rubric, impl_arg or impl)
        gradescope.write_text(json.dumps(results, indent=2) + "\n")


def _properties(parent: ET.Element, values: dict[str, str]) -> None:
    props = ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=value)


def junit_xml(outcomes: list[Outcome], impl: str, rubric: Optional[Rubric] = None) -> bytes:
    """One testsuite, one testcase per scenario (its repeats together) with its rubric points
    as properties; failures and errors carry the explanation."""
    rubric = rubric or default_rubric()
    groups = grouped(outcomes)
    scores = scenario_scores(outcomes, rubric)
    results = {name: overall(runs) for name, runs in groups.items()}
    battery = total(list(scores.values()))
    suite = ET.Element(
        "testsuite",
        name=f"pams {impl}",
        tests=str(len(groups)),
        failures=str(sum(r == FAIL for r in results.values())),
        errors=str(sum(r == ERROR for r in results.values())),
        skipped=str(sum(r == SKIPPED for r in results.values())),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    _properties(
        suite,
        {"points": f"{battery.points:g}", "max_points": f"{battery.most:g}",
         "rubric": rubric.describe()},
    )  # fmt: skip
    for name, runs in groups.items():
        first = runs[0]
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"pams.{first.profile}",
            name=name,
            time=f"{sum(o.seconds for o in runs):.3f}",
        )
        s = scores[name]
        passes = sum(o.status == PASS for o in runs)
        _properties(
            case,
            {"points": f"{s.points:g}", "max_points": f"{s.most:g}",
             "passed_runs": f"{passes}/{len(runs)}"},
        )  # fmt: skip
        failed = [o for o in runs if o.status == FAIL]
        errored = [o for o in runs if o.status == ERROR]
        if errored:
            o = errored[0]
            node = ET.SubElement(case, "error", message=o.detail.splitlines()[0])
            node.text = o.detail
        elif failed:
            o = failed[0]
            rate = f" ({passes}/{len(runs)} runs passed)" if len(runs) > 1 else ""
            message = f"{', '.join(o.failed_rules)}: {o.first_violation}{rate}"
            node = ET.SubElement(case, "failure", message=message)
            node.text = f"trace: {o.trace}\n{o.detail}"
        elif results[name] == SKIPPED:
            ET.SubElement(case, "skipped", message=first.detail)
        traces = [str(o.trace) for o in runs if o.trace is not None]
        if traces:
            ET.SubElement(case, "system-out").text = "\n".join(f"trace: {t}" for t in traces)
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def reproduce(o: Outcome, impl_arg: str, trace: Optional[str] = None, replay: bool = True) -> str:
    """The commands that run this scenario again: the same schedule from its name and seed,
    or (`replay`) from the run's trace."""
    seed = f" --seed {_seed(o)}" if REGISTRY[o.scenario].random else ""
    impl = shlex.quote(impl_arg)
    text = f"reproduce: pams run --impl {impl} --scenario {o.scenario}{seed}"
    shown = trace or (str(o.trace) if o.trace is not None else None)
    if shown and replay:
        text += f"\n       or: pams replay {shlex.quote(shown)} --impl {impl}"
    return text


def _seed(o: Outcome) -> int:
    """The seed the run was made with (in its trace header), else the default."""
    if o.trace is not None and o.trace.is_file():
        try:
            with o.trace.open(encoding="utf-8") as f:
                header = json.loads(f.readline())
            seed = header.get("scenario", {}).get("seed", header.get("seed"))
            if isinstance(seed, int):
                return seed
        except (OSError, ValueError, AttributeError):
            pass
    return DEFAULT_SEED


def gradescope_json(
    outcomes: list[Outcome],
    rubric: Optional[Rubric] = None,
    impl_arg: str = "pams.toml",
    trace_names: Optional[dict[Path, str]] = None,
    replay: bool = True,
) -> dict:
    """Gradescope autograder results (docs/cli.md): one test per scenario with the rubric's
    points, its first violations and the commands that reproduce it; the total score, the
    rubric and the pass rates in the top-level output (the most points and the rubric in
    `extra_data`). `trace_names` shows traces by another name (where the student finds them)
    than the grading machine's path; `replay` False leaves the trace's replay command out
    (the trace stays on the grading machine)."""
    rubric = rubric or default_rubric()
    scores = scenario_scores(outcomes, rubric)
    tests = []
    for name, runs in grouped(outcomes).items():
        first = runs[0]
        result = overall(runs)
        s = scores[name]
        passes = sum(o.status == PASS for o in runs)
        label = name + (" [boundary]" if first.boundary else "")
        shown = next((o for o in runs if o.status in (FAIL, ERROR)), first)
        rate = f" ({passes}/{len(runs)} runs passed)" if len(runs) > 1 else ""
        if result == PASS:
            output = f"pass ({first.profile}){rate}"
        elif result == SKIPPED:
            output = f"skipped (not counted): {first.detail}"
        else:
            output = f"{SHORT[result]}{rate}: {shown.first_violation or shown.detail}"
        trace = (trace_names or {}).get(shown.trace) if shown.trace is not None else None
        if result != SKIPPED:
            output += "\n" + reproduce(shown, impl_arg, trace, replay)
        if result in (FAIL, ERROR) and shown.first_violation:
            output += "\n\n" + shown.detail
        tests.append(
            {
                "name": label,
                "score": round(s.points, 4),
                "max_score": round(s.most, 4),
                "status": "passed" if result in (PASS, SKIPPED) else "failed",
                "output": output,
                "visibility": "visible",
                "tags": [first.profile, *dict.fromkeys(r for o in runs for r in o.failed_rules)],
            }
        )
    battery = total(list(scores.values()))
    passed, counted = scenario_score(outcomes)
    return {
        "score": round(battery.points, 4),
        "execution_time": round(sum(o.seconds for o in outcomes)),
        "output": f"{passed}/{counted} scenarios pass; points {pts(battery.points)}/"
        f"{pts(battery.most)}\n{rubric.describe()}",
        "visibility": "visible",
        "stdout_visibility": "visible",
        "extra_data": {
            "max_score": round(battery.most, 4),
            "scenarios_passed": passed,
            "scenarios_counted": counted,
            "rubric": rubric.to_json(),
        },
        "tests": tests,
    }

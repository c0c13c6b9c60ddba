"""The battery: run a built-in scenario against an implementation and hand the trace to the
checkers. One function shared by `pams grade` and the pytest plugin."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from checkers import RULES, TraceError, Verdict, check_path
from harness.adapters.adapter import Adapter
from harness.reports.pagefile import write_page
from harness.running.runner import Progress, run_scenario
from harness.scenarios.registry import REGISTRY, get_scenario

PASS, FAIL, SKIPPED, ERROR = "pass", "fail", "skipped", "error"
NA = "n/a"
UNEXERCISED = "not exercised"  # a FAIL: the run never gave the rule what the scenario promised


@dataclass(frozen=True)
class Outcome:
    """One scenario's result: `status` pass/fail/skipped/error, per-rule statuses (pass,
    fail or n/a when the scenario gave the rule nothing to check), and the explanation."""

    scenario: str
    profile: str
    boundary: bool
    status: str
    rules: dict[str, str]
    trace: Optional[Path]
    detail: str
    first_violation: str = ""
    seconds: float = 0.0
    page: Optional[Path] = None  # the run's page (pams show), beside the trace

    @property
    def failed_rules(self) -> list[str]:
        return [r for r, s in self.rules.items() if s in (FAIL, UNEXERCISED)]


def run_one(
    adapter: Adapter,
    name: str,
    out_dir: Path,
    seed: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> Outcome:
    """Run the built-in scenario `name` into `out_dir` and judge it."""
    entry = REGISTRY[name]
    scenario = get_scenario(name, seed=seed)
    result = run_scenario(adapter, scenario, out_dir, progress=progress)
    base = Outcome(  # status, rules and detail are set below
        scenario=name,
        profile=entry.profile,
        boundary=scenario.boundary,
        status=ERROR,
        rules={},
        trace=result.trace_path,
        detail="",
        seconds=result.seconds,
    )
    notes = "".join(f"\nnote: {n}" for n in result.notes)
    if result.error:
        return replace(base, status=ERROR, detail=result.error + notes)
    if result.skipped:
        return replace(base, status=SKIPPED, detail=result.skipped)
    assert result.trace_path is not None
    try:
        verdict = check_path(str(result.trace_path))
    except TraceError as e:
        return replace(base, status=ERROR, detail=f"unreadable trace: {e}")
    page, why = page_beside(result.trace_path)
    return judged(verdict, notes + why, replace(base, page=page))


def page_beside(trace: Path) -> tuple[Optional[Path], str]:
    """Write the page of `trace` beside it (`pams show`): (its path, "") or, when that
    fails, (None, one note line saying why); a page never changes a verdict."""
    try:
        path, _ = write_page(trace)
    except Exception as e:  # whatever went wrong, the verdict stands
        return None, f"\nnote: page not written: {type(e).__name__}: {e}"
    return path, ""


def judged(verdict: Verdict, notes: str, base: Outcome) -> Outcome:
    rules = {r: rule_status(verdict, r) for r in RULES}
    first = "\n    ".join(first_violations(verdict))
    status = PASS if verdict.passed else FAIL
    detail = verdict.summary() + notes
    return replace(base, status=status, rules=rules, detail=detail, first_violation=first)


def first_violations(verdict: Verdict, most: int = 4) -> list[str]:
    """The first violation of each failed rule (crashes first: they explain the rest)."""
    firsts: dict[str, str] = {}
    for v in sorted(verdict.violations, key=lambda v: (v.rule != "no-crash", v.at)):
        firsts.setdefault(v.rule, v.line())
    lines = list(firsts.values())
    extra = [f"... and {len(lines) - most} more rules"] if len(lines) > most else []
    return lines[:most] + extra


def rule_status(verdict: Verdict, rule: str) -> str:
    result = verdict.rules[rule]
    if result.violations:
        return UNEXERCISED if all(v.unexercised for v in result.violations) else FAIL
    return PASS if result.checked else NA

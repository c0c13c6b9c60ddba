"""Student-like fixtures (tests/fixtures/students/, VERDICTS-*.toml): each small program
shows one behaviour seen in real submissions; graded through its adapter on the scenarios
that show it, it must get the verdict a careful human reading its code gives: the rules in
`fails` fail (FAIL or not exercised), those in `must_not_fail` have no violation, and the
exit status of `pams grade` follows (0 all pass, 1 a rule failed)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.adapters.adapter import load_adapter
from harness.reports.battery import FAIL, PASS, UNEXERCISED, Outcome, run_one
from harness.reports.grade import exit_status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = [pytest.mark.process, pytest.mark.timeout(400)]
HERE = Path(__file__).resolve().parents[1] / "fixtures" / "students"
VERDICTS = {
    name: {**entry, "where": path.name}
    for path in sorted(HERE.glob("VERDICTS-*.toml"))
    for name, entry in tomllib.loads(path.read_text()).items()
}
# the scenarios each fixture is graded on here (a few that show its behaviour; the VERDICTS
# files list every scenario where it shows)
RUNS: dict[str, tuple[str, ...]] = {
    "do-nothing": ("online-multicast", "offline-within-td"),
    "ok-liar": ("online-multicast", "offline-within-td"),
    "coordinator-dies": ("offline-within-td",),
    "silent-membership": ("online-multicast", "offline-within-td"),
    "slow-commands": ("boundary-td", "offline-within-td"),
    "slow-whole-second": ("boundary-td",),
    "early-line": ("online-multicast", "deregister-reregister"),
    "header-bytes": ("offline-within-td",),
    "persistent-control": ("online-multicast", "offline-within-td"),
    "refuses-extra": ("concurrent-senders",),
    "second-port": ("online-multicast",),
    "keeps-listening": ("offline-within-td",),
    "blocking-sender": ("async-send",),
    "five-newest": ("offline-many-owed",),
    "late-listener": ("online-multicast", "offline-within-td"),
    "connect-back-retry": ("online-multicast", "offline-within-td"),
}
FAILED = (FAIL, UNEXERCISED)


def test_every_fixture_has_a_verdict_and_runs() -> None:
    assert set(RUNS) == set(VERDICTS)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Outcome]]:
    """Every (fixture, scenario) run, two at a time (the machine has two cores)."""
    root = tmp_path_factory.mktemp("students")
    jobs = [(name, scenario) for name, scenarios in RUNS.items() for scenario in scenarios]

    def grade(job: tuple[str, str]) -> Outcome:
        name, scenario = job
        adapter = load_adapter(str(HERE / VERDICTS[name]["adapter"]))
        return run_one(adapter, scenario, root / name / scenario)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(grade, jobs))
    found: dict[str, list[Outcome]] = {}
    for (name, _), outcome in zip(jobs, results):
        found.setdefault(name, []).append(outcome)
    return found


def explain(runs: list[Outcome]) -> str:
    return "\n".join(f"--- {o.scenario} ({o.status}): {o.trace}\n{o.detail}" for o in runs)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_fixture_gets_the_human_verdict(name: str, outcomes: dict[str, list[Outcome]]) -> None:
    verdict, runs = VERDICTS[name], outcomes[name]
    assert all(o.status in (PASS, FAIL) for o in runs), explain(runs)
    for rule in verdict["fails"]:
        assert any(o.rules[rule] in FAILED for o in runs), f"{rule} should fail\n{explain(runs)}"
    for rule in verdict["must_not_fail"]:  # no violation (a rule never exercised may be)
        bad = [o.scenario for o in runs if o.rules[rule] == FAIL]
        assert not bad, f"{rule} must not fail (failed in {bad})\n{explain(runs)}"
    if verdict["score"] == "100":
        assert all(o.status == PASS for o in runs), explain(runs)
        assert exit_status(runs) == 0
    else:
        assert exit_status(runs) == 1, explain(runs)
    if verdict["score"] == "0":
        assert all(o.status == FAIL for o in runs), explain(runs)

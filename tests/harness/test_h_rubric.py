"""The rubric (docs/rubric.md): the shipped default is the documented one, a bad rubric is one
line naming file and field, and the scoring of runs, repeats and boundary scenarios is the
arithmetic the doc gives. Pure, except one `pams grade` that must refuse before any run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from checkers import RULES
from harness.reports.battery import ERROR, FAIL, NA, PASS, SKIPPED, UNEXERCISED, Outcome
from harness.reports.rubric import (
    DEFAULT_PATH,
    RubricError,
    default_rubric,
    load_rubric,
    score_repeats,
    score_run,
    tomllib,
    total,
)

pytestmark = pytest.mark.timeout(30)
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "rubric.md"


def outcome(status: str = PASS, boundary: bool = False, **rules: str) -> Outcome:
    statuses = {r: PASS for r in RULES}
    statuses.update({k.replace("_", "-"): v for k, v in rules.items()})
    return Outcome("offline-beyond-td", "basic", boundary, status, statuses, None, "")


def test_the_documented_default_is_the_shipped_file() -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None
    assert tomllib.loads(block.group(1)) == tomllib.loads(DEFAULT_PATH.read_text())
    rubric = default_rubric()
    assert rubric.source == "default" and dict(rubric.rules).keys() == set(RULES)
    spans = set(re.findall(r"`([^`\n]+)`", DOC.read_text()))
    fields = ["points", "boundary_weight", "partial", "not_exercised_penalty", "flaky"]
    fields.append("not_exercised_scope")
    assert [f for f in fields if f"scoring.{f}" not in spans] == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rules]\nno-mis = 2\n", "rules.no-mis: unknown rule (did you mean no-miss?)"),
        ("[scenarios]\nboundary = 5\n", "scenarios.boundary: unknown scenario"),
        ("[scoring]\npoints = -1\n", "scoring.points: must be 0 or more, not -1"),
        ("[scoring]\npoints = 'ten'\n", "scoring.points: must be a number, not 'ten'"),
        ("[scoring]\nnot_exercised_penalty = 2\n", "scoring.not_exercised_penalty: must be"),
        ("[scoring]\nflaky = 'often'\n", "scoring.flaky: must be one of mean, worst, best"),
        ("[scoring]\npartial = 1\n", "scoring.partial: must be true or false"),
        ("[scoring]\nnot_exercised_scope = 'all'\n", "not_exercised_scope: must be one of run"),
        ("[scoring]\npoint = 1\n", "scoring.point: unknown field (did you mean points?)"),
        ("[rule]\nno-miss = 1\n", "rule: unknown table (did you mean rules?)"),
        ("rules = 3\n", "rules: must be a table"),
        ("[scoring\n", "invalid TOML"),
    ],
)
def test_a_bad_rubric_is_one_line_naming_the_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RubricError) as e:
        load_rubric(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_rubric_file_is_layered_on_the_default(tmp_path: Path) -> None:
    rubric = load_rubric(write(tmp_path, "[rules]\nno-miss = 10\n[scenarios]\nboundary-td = 4\n"))
    assert rubric.weight("no-miss") == 10 and rubric.weight("no-expired") == 3
    assert rubric.points == 10 and rubric.flaky == "mean"
    assert rubric.scenario_points("boundary-td", True) == 8.0
    assert rubric.scenario_points("online-multicast", False) == 10.0
    assert str(tmp_path) in rubric.describe()


def test_partial_credit_splits_a_scenarios_points_by_rule_weight() -> None:
    rubric = default_rubric()
    s = score_run(rubric, outcome(FAIL, no_expired=FAIL))
    assert s.most == 10 and s.points == pytest.approx(10 * 15 / 18)  # docs/rubric.md's example
    assert s.rules["no-expired"] == (0.0, pytest.approx(10 * 3 / 18))
    assert s.rules["no-miss"] == (pytest.approx(10 * 3 / 18),) * 2
    # rules with nothing to check get no share
    s = score_run(rubric, outcome(PASS, **{r.replace("-", "_"): NA for r in RULES[1:]}))
    assert s.points == s.most == 10 and list(s.rules) == ["no-miss"]


def test_all_or_nothing_not_exercised_and_boundary_weight(tmp_path: Path) -> None:
    strict = load_rubric(write(tmp_path, "[scoring]\npartial = false\n"))
    assert score_run(strict, outcome(FAIL, no_expired=FAIL)).points == 0.0
    assert score_run(strict, outcome(PASS)).points == 10.0
    # by default a rule not exercised voids the whole run: doing nothing passes most rules
    assert score_run(default_rubric(), outcome(FAIL, no_miss=UNEXERCISED)).points == 0.0
    half = load_rubric(write(tmp_path, "[scoring]\nnot_exercised_penalty = 0.5\n"))
    assert score_run(half, outcome(FAIL, no_miss=UNEXERCISED)).points == pytest.approx(5.0)
    assert score_run(half, outcome(FAIL, no_miss=UNEXERCISED, no_crash=FAIL)).points == (
        pytest.approx(5.0 - 0.5 * 10 / 18)
    )
    rule = load_rubric(
        write(tmp_path, "[scoring]\nnot_exercised_penalty = 0.5\nnot_exercised_scope = 'rule'\n")
    )
    s = score_run(rule, outcome(FAIL, no_miss=UNEXERCISED))
    assert s.points == pytest.approx(10 - 0.5 * 10 * 3 / 18)
    assert score_run(default_rubric(), outcome(PASS, boundary=True)).most == 20.0


def test_skipped_runs_count_nothing_and_errors_count_zero() -> None:
    rubric = default_rubric()
    assert score_run(rubric, outcome(SKIPPED)).most == 0.0
    s = score_run(rubric, outcome(ERROR))
    assert (s.points, s.most) == (0.0, 10.0)


def test_repeats_count_as_the_rubric_says(tmp_path: Path) -> None:
    runs = [outcome(PASS), outcome(FAIL, no_expired=FAIL), outcome(PASS), outcome(PASS)]
    mean = score_repeats(default_rubric(), runs)
    assert mean.points == pytest.approx((30 + 10 * 15 / 18) / 4)
    assert mean.rules["no-expired"][0] == pytest.approx(0.75 * 10 * 3 / 18)
    worst = load_rubric(write(tmp_path, "[scoring]\nflaky = 'worst'\n"))
    assert score_repeats(worst, runs).points == pytest.approx(10 * 15 / 18)
    best = load_rubric(write(tmp_path, "[scoring]\nflaky = 'best'\n"))
    assert score_repeats(best, runs).points == 10.0
    assert score_repeats(default_rubric(), [outcome(SKIPPED)]).most == 0.0
    both = total([mean, score_run(default_rubric(), outcome(PASS, boundary=True))])
    assert both.most == 30.0 and both.rules["no-miss"][1] == pytest.approx(30 * 3 / 18)


def test_grade_refuses_a_bad_rubric_before_any_run(tmp_path: Path) -> None:
    bad = write(tmp_path, "[scoring]\nflaky = 'often'\n")
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "grade", "--impl", "reference",
         "--rubric", str(bad), "-o", str(tmp_path / "runs")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=25,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"pams grade: {bad}: scoring.flaky: must be one of mean, worst, best\n"
    assert not (tmp_path / "runs").exists()

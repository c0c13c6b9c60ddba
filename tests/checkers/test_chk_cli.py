"""`pams check` as a subprocess: exit codes, JSON shape, error lines, help, bad options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checkers import RULES
from tests.procutil import REPO

pytestmark = pytest.mark.timeout(60)

HEADER = {
    "type": "header",
    "format": "pams-trace",
    "version": 1,
    "td": 3.0,
    "participants": ["1", "2"],
}
BASE = [
    HEADER,
    {"type": "invoke", "t": 0.1, "op": 1, "participant": "1", "f": "register", "port": 41001},
    {"type": "ok", "t": 0.11, "op": 1},
    {"type": "invoke", "t": 0.2, "op": 2, "participant": "2", "f": "register", "port": 41002},
    {"type": "ok", "t": 0.21, "op": 2},
    {"type": "invoke", "t": 1.0, "op": 3, "participant": "1", "f": "msend", "message": "MA"},
    {"type": "ok", "t": 1.01, "op": 3},
    {"type": "deliver", "t": 1.02, "participant": "1", "message": "MA"},
]


def write(path: Path, events: list) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    late = {"type": "deliver", "t": 1.03, "participant": "2", "message": "MA"}
    return write(tmp_path / "good.jsonl", [*BASE, late, {"type": "end", "t": 5.0}])


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    return write(tmp_path / "bad.jsonl", [*BASE, {"type": "end", "t": 5.0}])  # p2 misses MA


@pytest.fixture
def batched(tmp_path: Path) -> Path:
    late = {"type": "deliver", "t": 2.5, "participant": "2", "message": "MA"}
    return write(tmp_path / "batched.jsonl", [*BASE, late, {"type": "end", "t": 5.0}])


def pams(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_passing_trace_exits_0_with_a_summary(good: Path) -> None:
    r = pams("check", str(good))
    assert r.returncode == 0, r.stderr
    assert f"{good}: PASS" in r.stdout
    for rule in RULES:
        assert rule in r.stdout
    assert r.stderr == ""


def test_violation_exits_1_and_explains_it(bad: Path) -> None:
    r = pams("check", str(bad))
    assert r.returncode == 1
    assert "no-miss              FAIL  checked 2, violations 1" in r.stdout
    assert "no-miss p2 MA: p2 online at MA (sent [1.000, 1.010])" in r.stdout


def test_json_output_has_the_contract_shape(bad: Path) -> None:
    r = pams("check", "--json", str(bad))
    assert r.returncode == 1
    (line,) = r.stdout.splitlines()
    doc = json.loads(line)
    assert doc["verdict"] == "fail" and doc["truncated"] is False
    assert set(doc["rules"]) == set(RULES)
    assert all(set(v) == {"status", "checked", "violations"} for v in doc["rules"].values())
    (viol,) = doc["violations"]
    assert viol["rule"] == "no-miss" and viol["participant"] == "2" and viol["message"] == "MA"
    assert viol["sent"] == [1.0, 1.01] and viol["delivered_at"] == [] and viol["why"]


def test_several_traces_give_json_lines_and_the_worst_exit(good: Path, bad: Path) -> None:
    r = pams("check", "--json", str(good), str(bad))
    assert r.returncode == 1
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["trace"], d["verdict"]) for d in docs] == [(str(good), "pass"), (str(bad), "fail")]


def test_unreadable_trace_exits_2_naming_file_and_line(good: Path, tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.jsonl", [*BASE[:3], "{not json", {"type": "end", "t": 5}])
    r = pams("check", str(good), str(broken))
    assert r.returncode == 2
    (err,) = r.stderr.strip().splitlines()
    assert err.startswith(f"pams check: {broken}:4: bad JSON: Expecting property name")
    assert f"{good}: PASS" in r.stdout  # the readable one is still judged
    r = pams("check", "--json", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2
    assert r.stderr.startswith(f"pams check: {tmp_path / 'missing.jsonl'}: cannot read")
    assert json.loads(r.stdout)["verdict"] == "error"


def test_options_override_the_header(batched: Path) -> None:
    assert pams("check", str(batched)).returncode == 1  # 2.5 - 1.01 > L 1.0
    r = pams("check", "--latency-bound", "2", "--json", str(batched))
    assert r.returncode == 0 and json.loads(r.stdout)["latency_bound"] == 2.0
    r = pams("check", "--tolerance", "0.25", "--json", str(batched))
    assert json.loads(r.stdout)["tolerance"] == 0.25


@pytest.mark.parametrize("value", ["-1", "abc", "nan"])
def test_bad_option_values_are_usage_errors(good: Path, value: str) -> None:
    for option in ("--tolerance", "--latency-bound"):
        r = pams("check", option, value, str(good))
        assert r.returncode == 2
        assert "error: argument" in r.stderr and r.stdout == ""


def test_help_explains_every_rule_with_an_example() -> None:
    r = pams("check", "--help")
    assert r.returncode == 0
    for rule in RULES:
        assert f"  {rule}: " in r.stdout and f"e.g. {rule} " in r.stdout
    assert "exit status" in r.stdout
    top = pams("--help")
    assert top.returncode == 0 and "check" in top.stdout
    assert pams().returncode == 2


@pytest.mark.parametrize(
    ("size", "field"), [("--events", "events"), ("--deliveries", "deliveries")]
)
def test_pams_bench_checkers_prints_its_figures_as_json(size: str, field: str) -> None:
    """`pams bench checkers` reaches benchmarks.main: a small correct trace is judged pass."""
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "bench", "checkers", size, "3000", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["verdict"] == "pass" and figures[field] >= 3000
    assert figures["check_cpu_seconds"] > 0 and figures["target"].startswith("< ")
    assert "checking it in a child process" in done.stderr  # progress goes to stderr


def test_pams_bench_without_a_target_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "pams bench" in done.stderr


def test_readme_explains_every_rule_as_pams_check_help_does() -> None:
    """The README's rule table and `pams check --help` come from the same sentences."""
    from checkers.rulebook import RULEBOOK

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [r.name for r in RULEBOOK] == list(RULES)
    for r in RULEBOOK:
        assert f"| `{r.name}` | {r.summary} | `{r.example}` |" in readme, r.name

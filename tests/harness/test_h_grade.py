"""`pams grade` and the pytest plugin, end to end: the reference scores 100% on every profile,
a mutant fails its rule with the trace named, the report formats validate, and an
implementation that cannot build or start gives exit 2 with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checkers import check_path
from harness.scenarios.registry import PROFILES

REPO = Path(__file__).resolve().parents[2]
MUTANTS = REPO / "tests" / "fixtures" / "mutants"
HOSTILE = REPO / "tests" / "fixtures" / "hostile"
GRADESCOPE_TEST_FIELDS = {"name", "score", "max_score", "output", "visibility"}


def pams(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.timeout(400)
def test_reference_scores_100_percent_on_every_profile(tmp_path: Path) -> None:
    junit, gradescope = tmp_path / "junit.xml", tmp_path / "results.json"
    done = pams(
        "grade", "--impl", "reference", "--profile", "all", "-j", "4", "-o",
        str(tmp_path / "runs"), "--junit", str(junit), "--gradescope", str(gradescope),
        cwd=tmp_path, timeout=380,
    )  # fmt: skip
    names = PROFILES["all"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"score: {len(names)}/{len(names)} scenarios pass (100%)" in done.stdout
    assert "boundary-td [boundary]" in done.stdout  # boundary scenarios are named as such
    assert f"[{len(names)}/{len(names)}" in done.stderr  # progress lines
    for name in names:  # every trace is kept and passes every rule when checked again
        assert check_path(str(tmp_path / "runs" / name / "trace.jsonl")).passed, name

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert sorted(c.get("name") for c in cases) == sorted(names)
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    assert not any(c.find("failure") is not None for c in cases)

    results = json.loads(gradescope.read_text())  # the default rubric's points
    most = sum(t["max_score"] for t in results["tests"])
    assert results["score"] == results["extra_data"]["max_score"] == most
    assert len(results["tests"]) == len(names)
    for test in results["tests"]:
        assert set(test) >= GRADESCOPE_TEST_FIELDS, test
        points = 20.0 if "[boundary]" in test["name"] else 10.0
        assert test["score"] == test["max_score"] == points


@pytest.mark.timeout(120)
def test_a_mutant_fails_its_rule_with_the_trace_and_explanation(tmp_path: Path) -> None:
    junit, gradescope = tmp_path / "junit.xml", tmp_path / "results.json"
    done = pams(
        "grade", "--impl", str(MUTANTS / "ignores-td.toml"), "--scenario", "offline-beyond-td",
        "--scenario", "online-multicast", "-o", str(tmp_path / "runs"), "--junit", str(junit),
        "--gradescope", str(gradescope), "-q", cwd=tmp_path, timeout=110,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "score: 1/2 scenarios pass (50%)" in out
    assert "no-expired           FAIL" in out
    trace = tmp_path / "runs" / "offline-beyond-td" / "trace.jsonl"
    assert f"offline-beyond-td: {trace}  page: {trace.with_suffix('.html')}" in out
    assert trace.with_suffix(".html").is_file()  # the run's page (pams show), beside its trace
    assert "no-expired p3 M00000001" in out and "> td 2.0 + tol 1.0" in out

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["offline-beyond-td"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("no-expired: ")
    assert cases["online-multicast"].find("failure") is None
    results = json.loads(gradescope.read_text())
    by_name = {t["name"]: t for t in results["tests"]}
    failed = by_name["offline-beyond-td"]  # partial credit: every rule but no-expired passed
    assert failed["status"] == "failed" and 0 < failed["score"] < failed["max_score"] == 10.0
    assert "no-expired" in failed["output"]
    assert "pams run --impl" in failed["output"]
    assert "--scenario offline-beyond-td" in failed["output"]
    assert by_name["online-multicast"]["score"] == 10.0
    assert results["score"] == 10.0 + failed["score"]
    assert results["extra_data"]["max_score"] == 20.0


def write_adapter(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


@pytest.mark.timeout(60)
def test_a_build_that_fails_gives_exit_2_with_its_output(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "broken.toml", """\
build = ["{python}", "-c", "print('Coordinator.java:3: error: ; expected'); exit(1)"]
[coordinator]
cmd = ["{python}", "-m", "reference.coordinator", "{config}"]
config = "{port}\\n{td}\\n"
[participant]
cmd = ["{python}", "-m", "reference.participant", "{config}"]
config = "{id}\\n{log}\\n{coordinator_host} {coordinator_port}\\n"
""")  # fmt: skip
    done = pams(
        "grade", "--impl", str(adapter), "-o", str(tmp_path / "runs"), cwd=tmp_path, timeout=50
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot run the implementation: build failed (exit 1)" in done.stderr
    assert "Coordinator.java:3: error: ; expected" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.timeout(60)
def test_a_coordinator_that_never_starts_gives_exit_2_said_plainly(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "crash.toml", f"""\
[coordinator]
cmd = ["{{python}}", "{HOSTILE / 'crash_at_start.py'}", "{{config}}"]
config = "{{port}}\\n{{td}}\\n"
[participant]
cmd = ["{{python}}", "-m", "reference.participant", "{{config}}"]
config = "{{id}}\\n{{log}}\\n{{coordinator_host}} {{coordinator_port}}\\n"
[timing]
startup = 3.0
""")  # fmt: skip
    done = pams(
        "grade",
        "--impl",
        str(adapter),
        "--scenario",
        "online-multicast",
        "-q",
        "-o",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        timeout=50,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "could not run:" in done.stdout
    assert "online-multicast: coordinator exited with code 3" in done.stdout


@pytest.mark.timeout(90)
def test_default_output_directory_is_relative_to_where_pams_runs(tmp_path: Path) -> None:
    """Without -o, traces go under ./pams-grade/TIME; the processes, which run in their own
    directories, still find their configs and logs (paths handed to them are absolute)."""
    done = pams(
        "grade",
        "--impl",
        "reference",
        "--scenario",
        "offline-within-td",
        "-q",
        cwd=tmp_path,
        timeout=80,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (stamp,) = (tmp_path / "pams-grade").iterdir()
    assert check_path(str(stamp / "offline-within-td" / "trace.jsonl")).passed
    assert f"traces: pams-grade/{stamp.name}" in done.stdout


@pytest.mark.timeout(60)
def test_grade_rejects_bad_input_in_one_line(tmp_path: Path) -> None:
    done = pams("grade", "--impl", str(tmp_path / "missing.toml"), cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("pams grade: ") and done.stderr.count("\n") == 1
    assert "missing.toml" in done.stderr
    done = pams("grade", "--impl", "reference", "--scenario", "no-such", cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and "unknown scenario(s): no-such" in done.stderr


def run_pytest(tmp_path: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.timeout(60)
def test_pytest_plugin_collects_one_item_per_scenario_of_the_profile(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        "--pams-impl",
        "reference",
        "--pams-profile",
        "basic",
        "--collect-only",
        "-q",
        timeout=50,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    items = [line for line in done.stdout.splitlines() if "pams::" in line]
    assert [i.split("pams::")[1] for i in items] == list(PROFILES["basic"])


@pytest.mark.timeout(120)
def test_pytest_plugin_passes_the_reference_and_fails_a_mutant_under_xdist(
    tmp_path: Path,
) -> None:
    done = run_pytest(
        tmp_path, "--pams-impl", "reference", "--pams-scenario", "online-multicast",
        "--pams-scenario", "deregister-reregister", "-n", "2", "--pams-output",
        str(tmp_path / "ref"), timeout=100,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert (tmp_path / "ref" / "online-multicast" / "trace.jsonl").is_file()

    done = run_pytest(
        tmp_path, "--pams-impl", str(MUTANTS / "post-deregister.toml"), "--pams-scenario",
        "deregister-reregister", "--pams-output", str(tmp_path / "mut"), timeout=100,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no-post-deregister" in done.stdout
    assert str(tmp_path / "mut" / "deregister-reregister" / "trace.jsonl") in done.stdout


@pytest.mark.timeout(60)
def test_a_report_path_that_cannot_be_written_is_refused_before_any_run(tmp_path: Path) -> None:
    done = pams(
        "grade", "--impl", "reference", "--junit", str(tmp_path), "-o", str(tmp_path / "runs"),
        cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip() == f"pams grade: --junit {tmp_path}: is a directory (give a file name)"
    )
    assert not (tmp_path / "runs").exists()

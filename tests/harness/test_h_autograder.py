"""`pams autograder`: the Gradescope bundle (a real wheel built into it) whose run_autograder,
run in a temporary directory laid out like Gradescope's /autograder, grades a submission and
writes a results.json that holds to Gradescope's documented fields; a submission that cannot
be graded still gets one; the GitHub workflow is YAML with the documented keys, and its grade
step, run here, grades and leaves the report and run pages where the upload step looks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.process
REPO = Path(__file__).resolve().parents[2]
MUTANT = REPO / "tests" / "fixtures" / "mutants" / "ignores_td_coordinator.py"
# Gradescope's autograder specification (gradescope-autograders.readthedocs.io, "Autograder
# Specifications": results.json "Output format", test case status, visibility)
TOP_FIELDS = {
    "score", "execution_time", "output", "output_format", "test_output_format",
    "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard",
}  # fmt: skip
TEST_FIELDS = {
    "score", "max_score", "status", "name", "name_format", "number", "output", "output_format",
    "tags", "visibility", "extra_data",
}  # fmt: skip
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
TEMPLATE = """\
name = "student"
workdir = "."
env = { PYTHONPATH = "{workdir}", PYTHONUNBUFFERED = "1" }
[coordinator]
cmd = ["{python}", "{workdir}/ignores_td_coordinator.py", "{config}"]
config = "{port}\\n{td}\\n"
[participant]
cmd = ["{python}", "-m", "reference.participant", "{config}"]
config = "{id}\\n{log}\\n{coordinator_host} {coordinator_port}\\n"
[commands]
done_pattern = "^(ok|error) "
"""
SCENARIOS = ("online-multicast", "offline-beyond-td")  # the mutant passes one, fails one


def pams(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def student_code(into: Path) -> None:
    """A student's code: the reference's participant, a coordinator that ignores td."""
    shutil.copytree(REPO / "reference", into / "reference", ignore=shutil.ignore_patterns("__py*"))
    shutil.copy(MUTANT, into / MUTANT.name)


def validate(results: dict) -> None:
    """results.json as Gradescope documents it."""
    assert set(results) <= TOP_FIELDS, set(results) - TOP_FIELDS
    assert isinstance(results["score"], (int, float)) and isinstance(results["output"], str)
    assert isinstance(results["execution_time"], int)
    assert results["visibility"] in VISIBILITY and results["stdout_visibility"] in VISIBILITY
    assert isinstance(results["tests"], list) and results["tests"]
    for test in results["tests"]:
        assert set(test) <= TEST_FIELDS, set(test) - TEST_FIELDS
        assert {"name", "score", "max_score", "status", "output"} <= set(test)
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], float)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] in ("passed", "failed") and test["visibility"] in VISIBILITY
        assert all(isinstance(t, str) for t in test.get("tags", []))
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))


def gradescope_layout(tmp_path: Path, bundle: Path) -> Path:
    """/autograder as Gradescope lays it out: source (the zip), submission, results."""
    root = tmp_path / "autograder"
    for d in ("source", "submission", "results"):
        (root / d).mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
    for name in ("setup.sh", "run_autograder"):  # zipfile drops the mode bits it reads
        mode = (z.getinfo(name).external_attr >> 16) & 0o777
        assert mode == 0o755, (name, oct(mode))
        (root / "source" / name).chmod(mode)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    return root


def run_autograder(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAMS_AUTOGRADER_ROOT": str(root), "PYTHONPATH": str(REPO),
           "PAMS_AUTOGRADER_PYTHON": sys.executable}  # fmt: skip
    return subprocess.run(
        [str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
        timeout=100,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_gradescope_bundle_grades_a_submission_into_a_valid_results_json(tmp_path: Path) -> None:
    (tmp_path / "template.toml").write_text(TEMPLATE)
    scenarios = [a for n in SCENARIOS for a in ("--scenario", n)]
    made = pams(
        "autograder", "gradescope", "-o", str(tmp_path / "autograder.zip"), *scenarios,
        "--adapter", str(tmp_path / "template.toml"), "-j", "2", cwd=tmp_path, timeout=150,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bundle = tmp_path / "autograder.zip"
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        (wheel,) = [n for n in names if n.startswith("wheels/pams-") and n.endswith(".whl")]
        z.extract(wheel, tmp_path)
    assert {"setup.sh", "run_autograder", "adapter.toml", "pams-autograder.json"} <= set(names)
    with zipfile.ZipFile(tmp_path / wheel) as w:  # the wheel ships code and data files
        inside = set(w.namelist())
    for needed in ("harness/cli/main.py", "harness/autograder/gradescope.py",
                   "harness/reports/default-rubric.toml", "harness/adapters/reference.toml",
                   "checkers/rules.py", "reference/coordinator.py"):  # fmt: skip
        assert needed in inside, needed

    root = gradescope_layout(tmp_path, bundle)
    setup = root / "source" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(setup)]).returncode == 0
    assert "default-jdk" in setup.read_text() and "source/wheels/pams-" in setup.read_text()
    student_code(root / "submission")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    validate(results)
    tests = {t["name"]: t for t in results["tests"]}
    assert set(tests) == set(SCENARIOS)
    passed, failed = tests["online-multicast"], tests["offline-beyond-td"]
    assert passed["status"] == "passed" and passed["score"] == passed["max_score"] == 10.0
    assert failed["status"] == "failed" and 0 < failed["score"] < 10.0
    assert "no-expired p3" in failed["output"]
    command = "pams run --impl pams.toml --scenario offline-beyond-td"
    assert command in failed["output"] and str(root) not in failed["output"].split("\n\n")[0]
    assert "score: 1/2 scenarios pass" in done.stdout  # the report, for the stdout pane

    # no adapter (no template, none in the submission): still a results.json, scored 0
    plain = tmp_path / "plain.zip"
    made = pams(
        "autograder", "gradescope", "-o", str(plain), "--scenario", "online-multicast",
        "--wheel", str(tmp_path / wheel), cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    shutil.rmtree(root)
    root = gradescope_layout(tmp_path, plain)
    student_code(root / "submission")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    validate(results)
    assert results["score"] == 0 and "no pams.toml in the submission" in results["output"]
    assert results["tests"][0]["max_score"] == 10.0


@pytest.mark.timeout(120)
def test_github_workflow_is_yaml_with_the_documented_keys_and_its_grade_step_runs(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    student_code(repo)
    (tmp_path / "template.toml").write_text(TEMPLATE)
    (tmp_path / "rubric.toml").write_text("[scoring]\npoints = 5\n")
    fake_wheel = tmp_path / "pams-0.1.0-py3-none-any.whl"
    fake_wheel.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: only copied here
    made = pams(
        "autograder", "github", "-o", str(repo), "--scenario", "online-multicast",
        "--adapter", str(tmp_path / "template.toml"), "--rubric", str(tmp_path / "rubric.toml"),
        "--wheel", str(fake_wheel), cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "pams.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert workflow["name"] == "pams" and "push" in on
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps)
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/setup-java",
                    "actions/upload-artifact"]  # fmt: skip
    upload = steps[-1]
    assert upload["if"] == "always()" and upload["with"]["path"] == "pams-report/"
    runs = {s["name"]: s["run"] for s in steps if "run" in s}
    assert ".github/pams/pams-0.1.0-py3-none-any.whl" in runs["Install pams"]
    assert (repo / ".github" / "pams" / fake_wheel.name).is_file()

    # the steps after the install, as the runner would run them (pams already installed)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pams").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness.cli.main "$@"\n')
    (bin_dir / "pams").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for name in ("Use the course's adapter", "Grade"):
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", runs[name]],
            cwd=repo, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, (name, done.stdout, done.stderr)
    report = (repo / "pams-report" / "report.txt").read_text()
    assert "score: 1/1 scenarios pass" in report and "5 points a scenario" in report
    assert (repo / "pams-report" / "runs" / "online-multicast" / "trace.html").is_file()
    assert json.loads((repo / "pams-report" / "results.json").read_text())["score"] == 5.0

    made = pams("autograder", "github", "-o", str(tmp_path / "other"), "--install",
                "pams @ git+https://example.invalid/pams", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "other" / ".github" / "workflows" / "pams.yml").read_text()
    install = yaml.safe_load(text)["jobs"]["grade"]["steps"][3]["run"]
    assert install == 'python -m pip install "pams @ git+https://example.invalid/pams"'


@pytest.mark.timeout(60)
def test_autograder_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "rubric.toml").write_text("[scoring]\nflaky = 'often'\n")
    (tmp_path / "bad.toml").write_text("[coordinator]\n")
    cases = [
        (("gradescope", "-o", "a.zip", "--rubric", "rubric.toml"), "scoring.flaky: must be"),
        (("gradescope", "-o", "a.zip", "--adapter", "bad.toml"), "bad.toml"),
        (("gradescope", "-o", "a.zip", "--scenario", "nope"), "unknown scenario(s): nope"),
        (("gradescope", "-o", "a.zip", "--wheel", "rubric.toml"), "not a wheel file"),
        (("github", "--install", "x", "--wheel", "y.whl"), "give --install or --wheel"),
        (("run", "--root", str(tmp_path)), "pams-autograder.json: not found"),
    ]
    for args, message in cases:
        done = pams("autograder", *args, cwd=tmp_path, timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(f"pams autograder {args[0]}: "), done.stderr
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / ".github").exists()

"""`pams class`, end to end on a folder of submissions (the reference, two mutants, one that
does nothing, one whose build fails): the CSV orders them as a grader would, Ctrl-C (SIGINT to
the real process) mid-run keeps the finished submissions and the same command grades only
the rest; `--regrade` forces one; index.html links every report and failure page. One short
scenario keeps it fast. Bad input is refused in one line before anything runs."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.procutil import nothing_left, wait_until

pytestmark = pytest.mark.process
REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SCENARIO = "online-multicast"  # the shortest; catches both mutants (MUTANTS.toml)
BROKEN = """\
build = ["{python}", "-c", "print('Coordinator.java:3: error: ; expected'); exit(1)"]
[coordinator]
cmd = ["{python}", "-m", "reference.coordinator", "{config}"]
config = "{port}\\n{td}\\n"
[participant]
cmd = ["{python}", "-m", "reference.participant", "{config}"]
config = "{id}\\n{log}\\n{coordinator_host} {coordinator_port}\\n"
"""


def submission(subs: Path, name: str, adapter: Path) -> None:
    """subs/NAME/pams.toml: the fixture's adapter, its workdir made absolute (a grader's
    folder of submissions, each with the adapter written for it)."""
    text = adapter.read_text()
    workdir = re.search(r'^workdir = "(.*)"$', text, re.MULTILINE)
    assert workdir is not None, adapter
    absolute = (adapter.parent / workdir.group(1)).resolve()
    (subs / name).mkdir(parents=True)
    (subs / name / "pams.toml").write_text(
        text.replace(workdir.group(0), f'workdir = "{absolute}"')
    )


@pytest.fixture
def subs(tmp_path: Path) -> list[str]:
    folder = tmp_path / "subs"
    submission(folder, "batches", FIXTURES / "mutants" / "batches.toml")
    (folder / "broken").mkdir(parents=True)
    (folder / "broken" / "pams.toml").write_text(BROKEN)
    submission(folder, "do-nothing", FIXTURES / "students" / "do-nothing" / "pams.toml")
    submission(folder, "phantom", FIXTURES / "mutants" / "phantom.toml")
    submission(folder, "reference", REPO / "harness" / "adapters" / "reference.toml")
    return [str(p) for p in sorted(folder.iterdir())]


def command(subs: list[str], out: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli.main", "class", *subs, "-o", str(out),
            "--scenario", SCENARIO, "-j", "2", *more]  # fmt: skip


def pams(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.rows += tag == "tr"
        self.hrefs += [v for k, v in attrs if tag == "a" and k == "href"]


@pytest.mark.timeout(120)
def test_a_class_is_graded_in_order_and_resumes_after_ctrl_c(
    tmp_path: Path, subs: list[str]
) -> None:
    out = tmp_path / "class"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "first.err", "w") as err:
        first = subprocess.Popen(
            command(subs, out), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            # the first graded submission (batches: built first) is stored; the others are not
            wait_until(lambda: (out / "batches" / "result.json").is_file(), 60, "batches graded")
            first.send_signal(signal.SIGINT)
            assert first.wait(timeout=30) == 130
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    said = (tmp_path / "first.err").read_text()
    assert "interrupted" in said and "run the same command again" in said, said
    assert nothing_left("-", out) == []
    finished = {p.parent.name for p in out.glob("*/result.json")}
    assert {"batches", "broken"} <= finished and len(finished) < 5, said
    kept = {name: stamp(out / name / "result.json") for name in finished}

    again = pams(command(subs, out), tmp_path, timeout=90)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"kept {len(finished)} finished" in again.stderr
    assert f"grading {5 - len(finished)} of 5 submissions" in again.stderr
    for name, before in kept.items():  # finished submissions were not graded again
        assert stamp(out / name / "result.json") == before, name
    assert {p.parent.name for p in out.glob("*/result.json")} == {
        "batches", "broken", "do-nothing", "phantom", "reference"
    }  # fmt: skip

    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["submission"] for r in rows] == [
        "reference", "batches", "phantom", "do-nothing", "broken"
    ]  # fmt: skip
    by = {r["submission"]: r for r in rows}
    assert by["reference"]["percent"] == "100.0" and by["reference"]["scenarios_failed"] == ""
    assert float(by["batches"]["immediacy"]) == 0 and float(by["batches"]["no-miss"]) > 0
    assert float(by["phantom"]["no-phantom"]) == 0
    assert by["batches"]["scenarios_failed"] == by["phantom"]["scenarios_failed"] == SCENARIO
    assert float(by["do-nothing"]["score"]) == 0 and by["do-nothing"]["could_not_run"] == ""
    assert "build failed (exit 1)" in by["broken"]["could_not_run"]
    assert "Coordinator.java:3" in (out / "broken" / "build.log").read_text()
    assert (by["broken"]["score"], by["broken"]["max_score"], by["broken"]["percent"]) == (
        "0", "10", "0.0"
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert [s["submission"] for s in summary["submissions"]] == [r["submission"] for r in rows]
    assert summary["rubric"]["source"] == "default" and summary["plan"]["scenarios"] == [SCENARIO]
    assert "rubric: default" in again.stdout and "summary.csv" in again.stdout

    page = Links()
    page.feed((out / "index.html").read_text())
    assert page.rows == 1 + 5
    for name in by:
        assert f"{name}/report.txt" in page.hrefs
    failure_pages = [h for h in page.hrefs if h.endswith(".html")]
    assert len(failure_pages) == 3  # batches, phantom, do-nothing: each failure's run page
    assert all((out / h).is_file() for h in page.hrefs), page.hrefs
    assert "no-phantom" in (out / "phantom" / "report.txt").read_text()

    broken = stamp(out / "broken" / "result.json")
    forced = pams(command(subs, out, "--regrade", "broken", "-q"), tmp_path, timeout=60)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert stamp(out / "broken" / "result.json") != broken
    assert stamp(out / "batches" / "result.json") == kept["batches"]


@pytest.mark.timeout(60)
def test_bad_input_is_refused_in_one_line_before_anything_runs(
    tmp_path: Path, subs: list[str]
) -> None:
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    copy = tmp_path / "copy" / "reference"
    copy.mkdir(parents=True)
    (copy / "pams.toml").write_text("")
    bad_rubric = tmp_path / "rubric.toml"
    bad_rubric.write_text("[rules]\nno-mis = 1\n")
    cases = [
        (command(subs, stranger), "exists, is not empty and was not made by pams class"),
        (command([*subs, str(copy)], tmp_path / "o"), "two submissions named reference"),
        (command(subs, tmp_path / "o", "--regrade", "nobody"), "--regrade nobody: no such"),
        (command(subs, tmp_path / "o", "--rubric", str(bad_rubric)), "rules.no-mis: unknown"),
        (command([str(tmp_path / "missing")], tmp_path / "o"), "missing: no such file"),
        (command(subs, tmp_path / "o", "--repeat", "0"), "--repeat must be at least 1"),
    ]
    for args, message in cases:
        done = pams(args, tmp_path, timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("pams class: ") and done.stderr.count("\n") == 1
        assert message in done.stderr, done.stderr
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "o").exists()


def test_init_writes_the_missing_adapter_and_the_class_is_graded_with_it(tmp_path: Path) -> None:
    """`pams class --init`: a submission directory without pams.toml gets one from `pams init`
    (the alt fixture, a student's own protocol details) and is graded with it; a directory
    with nothing to run is said in one line and listed as could-not-run, costing only itself."""
    from tests.harness.init_fixtures import materialize

    subs = tmp_path / "subs"
    alt = materialize("alt", subs)
    (subs / "empty").mkdir()
    out = tmp_path / "class"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "class",
            str(alt),
            str(subs / "empty"),
            "--init",
            "--scenario",
            SCENARIO,
            "-o",
            str(out),
            "-j",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (alt / "pams.toml").is_file()
    assert "empty: pams init could not write an adapter" in done.stderr
    with open(out / "summary.csv", newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert float(rows["alt"]["percent"]) == 100.0, rows["alt"]
    assert rows["empty"]["could_not_run"], rows["empty"]

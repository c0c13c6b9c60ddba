"""The GitHub Actions workflow (docs/cli.md, `pams autograder github`): grades the student's
repository with pams on every push and uploads the report, JUnit, Gradescope-style results,
the traces and their run pages as one artifact. pams comes from a wheel written beside the
workflow (or a pip requirement); the rubric and adapter template, when given, too."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Optional

from harness.autograder.setup import RUBRIC, TEMPLATE, Setup

WORKFLOW = Path(".github/workflows/pams.yml")
FILES = Path(".github/pams")
REPORT = "pams-report"


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid ones)."""
    return json.dumps(text)


def grade_command(setup: Setup) -> str:
    argv = ["pams", "grade", "--impl", "pams.toml", "-o", f"{REPORT}/runs"]
    for name in setup.scenarios:
        argv += ["--scenario", name]
    if setup.repeat > 1:
        argv += ["--repeat", str(setup.repeat)]
    if setup.seed is not None:
        argv += ["--seed", str(setup.seed)]
    if setup.jobs:
        argv += ["-j", str(setup.jobs)]
    if setup.rubric:
        argv += ["--rubric", str(FILES / RUBRIC)]
    argv += ["--junit", f"{REPORT}/junit.xml", "--gradescope", f"{REPORT}/results.json"]
    return shlex.join(argv)


def workflow_text(setup: Setup, install: str) -> str:
    """The workflow YAML; `install` is what `pip install` is given."""
    adapter = f"the course's ({FILES / TEMPLATE})" if setup.adapter else "pams.toml at the top"
    place = (
        f"      - name: Use the course's adapter\n        run: cp {FILES / TEMPLATE} pams.toml\n"
        if setup.adapter
        else ""
    )
    return f"""\
# Made by `pams autograder github`: grades this repository with pams on every push
# ({setup.selection}) and uploads the report, the traces and their run pages as the
# artifact {REPORT}. The adapter is {adapter}.
name: pams
on:
  push:
  workflow_dispatch:
permissions:
  contents: read
jobs:
  grade:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - uses: actions/setup-java@v4
        with:
          distribution: temurin
          java-version: "21"
      - name: Install pams
        run: python -m pip install {_q(install)}
{place}      - name: Grade
        run: |
          mkdir -p {REPORT}
          {grade_command(setup)} | tee {REPORT}/report.txt
      - name: Upload the report and run pages
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: {REPORT}
          path: {REPORT}/
          if-no-files-found: warn
"""


def write_github(
    root: Path, setup: Setup, wheel: Optional[Path], install: Optional[str]
) -> list[Path]:
    """Write the workflow under `root` (a repository's top), with the wheel, rubric and
    template it uses; returns the files written."""
    files = root / FILES
    files.mkdir(parents=True, exist_ok=True)
    written = []
    if wheel is not None:
        written.append(wheel)
        install = str(FILES / wheel.name)
    assert install is not None
    if setup.rubric:
        written.append(Path(shutil.copyfile(setup.rubric, files / RUBRIC)))
    if setup.adapter:
        written.append(Path(shutil.copyfile(setup.adapter, files / TEMPLATE)))
    workflow = root / WORKFLOW
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(workflow_text(setup, install), encoding="utf-8")
    return [workflow, *written]

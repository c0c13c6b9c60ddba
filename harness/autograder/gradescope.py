"""The Gradescope autograder (docs/cli.md, `pams autograder gradescope`): the bundle
Gradescope builds its image from (`setup.sh` installing Python, a JDK and pams from the
wheel inside; `run_autograder`), and what `run_autograder` does for each submission: grade
/autograder/submission and write /autograder/results/results.json in Gradescope's format,
whatever happens (a submission that cannot build or start scores 0 with the reason)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Optional, TextIO

from harness.adapters import adapter as adapters
from harness.adapters.adapter import DIRECTORY_FILES, AdapterError, load_adapter
from harness.autograder.setup import CONFIG, RUBRIC, TEMPLATE, Setup, read_config
from harness.reports.grade import gradescope_json, report, run_battery
from harness.reports.rubric import load_rubric
from harness.running.runner import fresh_dir
from harness.scenarios.registry import get_scenario

ROOT_VARIABLE = "PAMS_AUTOGRADER_ROOT"  # moves /autograder (tests)
OUTPUT_CAP = 8000  # characters of build output shown in results.json

SETUP_SH = """\
#!/usr/bin/env bash
# pams autograder: Gradescope runs this once, as root, when it builds the image (Ubuntu).
# It installs Python, a JDK (for Java submissions) and pams from the wheel in this bundle.
set -euo pipefail
ROOT="${PAMS_AUTOGRADER_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \\
    python3 python3-venv python3-pip default-jdk-headless build-essential
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
    echo "pams needs Python 3.9 or later: choose an Ubuntu 22.04 (or later) base image" >&2
    exit 1
}
python3 -m venv "$ROOT/pams-venv"
"$ROOT/pams-venv/bin/python" -m pip install --upgrade pip
"$ROOT/pams-venv/bin/python" -m pip install "$ROOT"/source/wheels/pams-*.whl
"$ROOT/pams-venv/bin/pams" scenarios > /dev/null
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# pams autograder: Gradescope runs this for every submission. pams grades
# $ROOT/submission and writes $ROOT/results/results.json (the report goes to stdout).
# PAMS_AUTOGRADER_ROOT moves /autograder; PAMS_AUTOGRADER_PYTHON picks the interpreter.
set -u
ROOT="${PAMS_AUTOGRADER_ROOT:-/autograder}"
PYTHON="${PAMS_AUTOGRADER_PYTHON:-$ROOT/pams-venv/bin/python}"
cd "$ROOT"
exec "$PYTHON" -m harness.cli.main autograder run --root "$ROOT"
"""

README = """\
pams autograder for Gradescope, made by `pams autograder gradescope`.
Upload this zip as the autograder of a programming assignment (Ubuntu 22.04 or later base
image). setup.sh installs Python, a JDK and pams (wheels/); run_autograder grades each
submission with {selection}{repeat} and writes results/results.json: one test per
scenario with its points (rubric: {rubric}), its first violations and the `pams run`
command that reproduces it. The submission must hold {adapter}.
"""


def write_bundle(out: Path, setup: Setup, wheel: Path) -> None:
    """The zip Gradescope expects: setup.sh and run_autograder at its root, with the wheel,
    the configuration and the rubric and adapter template when given."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    readme = README.format(
        selection=setup.selection + f" ({', '.join(setup.scenarios)})",
        repeat=f", each scenario {setup.repeat} times" if setup.repeat > 1 else "",
        rubric=setup.rubric.name if setup.rubric else "the default",
        adapter="its code (the adapter is this bundle's adapter.toml)"
        if setup.adapter
        else "a pams.toml adapter (docs/adapter.md) beside its code",
    )
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        _add(z, "setup.sh", SETUP_SH, 0o755)
        _add(z, "run_autograder", RUN_AUTOGRADER, 0o755)
        _add(z, "README.txt", readme, 0o644)
        _add(z, CONFIG, json.dumps(setup.to_json(), indent=1) + "\n", 0o644)
        if setup.rubric:
            _add(z, RUBRIC, setup.rubric.read_text(encoding="utf-8"), 0o644)
        if setup.adapter:
            _add(z, TEMPLATE, setup.adapter.read_text(encoding="utf-8"), 0o644)
        z.write(wheel, f"wheels/{wheel.name}")
    os.replace(tmp, out)


def _add(z: zipfile.ZipFile, name: str, text: str, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text)


# --- run_autograder ----------------------------------------------------------------------------
class SubmissionError(Exception):
    """The submission cannot be graded as it is (said to the student)."""


def place_adapter(submission: Path, source: Path, config: dict[str, Any]) -> Path:
    """The adapter to grade the submission with: the bundle's template copied in as
    pams.toml, or the submission's own (at its top, or in its one top-level directory)."""
    if config.get("adapter"):
        target = submission / "pams.toml"
        shutil.copyfile(source / config["adapter"], target)
        return target
    for base in [submission, *sorted(p for p in submission.iterdir() if p.is_dir())]:
        for name in DIRECTORY_FILES:
            if (base / name).is_file():
                return base / name
    raise SubmissionError(
        "no pams.toml in the submission: add an adapter (docs/adapter.md) beside your code"
    )


def grade_submission(root: Path, stream: TextIO = sys.stdout) -> int:
    """Grade ROOT/submission as the bundle's configuration says; write
    ROOT/results/results.json in every case. Returns 0 (what went wrong is in the results)."""
    source, submission = root / "source", root / "submission"
    config = read_config(source)
    rubric = load_rubric(source / config["rubric"] if config.get("rubric") else None)
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    names = list(config["scenarios"])
    started = time.monotonic()
    try:
        adapter = load_adapter(str(place_adapter(submission, source, config)))
        adapters.build(adapter)
    except (AdapterError, adapters.BuildError, SubmissionError, OSError) as e:
        output = getattr(e, "output", "") or ""
        results = unrunnable(names, rubric, str(e), output, time.monotonic() - started)
        print(f"could not run the submission: {e}\n{output}", file=stream)
        _write(results_path, results)
        return 0
    out = fresh_dir(None, str(root / "pams-runs"))
    jobs = config.get("jobs") or os.cpu_count() or 1
    outcomes = run_battery(
        adapter, names, out, jobs, config.get("seed"), False, config.get("repeat", 1)
    )
    print(report(outcomes, adapter.name, config["selection"], out, rubric), file=stream)
    _write(results_path, gradescope_json(outcomes, rubric, "pams.toml", replay=False))
    return 0


def unrunnable(
    names: list[str], rubric: Any, reason: str, output: str, seconds: float
) -> dict[str, Any]:
    """Results for a submission that could not be built or started: every scenario 0."""
    tests = []
    for name in names:
        boundary = get_scenario(name).boundary
        most = rubric.scenario_points(name, boundary)
        tests.append(
            {
                "name": name + (" [boundary]" if boundary else ""),
                "score": 0.0,
                "max_score": most,
                "status": "failed",
                "output": f"could not run: {reason}",
                "visibility": "visible",
            }
        )
    tail = output[-OUTPUT_CAP:]
    return {
        "score": 0.0,
        "execution_time": round(seconds),
        "output": f"could not run the submission: {reason}"
        + (f"\n\nbuild output (last {len(tail)} characters):\n{tail}" if tail else "")
        + f"\n{rubric.describe()}",
        "visibility": "visible",
        "stdout_visibility": "visible",
        "tests": tests,
    }


def _write(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def default_root() -> Path:
    return Path(os.environ.get(ROOT_VARIABLE, "/autograder"))


def check_root(root: Optional[Path]) -> Path:
    """ROOT, which must hold source/ with the bundle's configuration (ValueError)."""
    root = root or default_root()
    if not (root / "source" / CONFIG).is_file():
        raise ValueError(f"{root}/source/{CONFIG}: not found (is this a pams autograder?)")
    if not (root / "submission").is_dir():
        raise ValueError(f"{root}/submission: no such directory")
    return root

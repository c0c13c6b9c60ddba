"""`pams show --text`: a shipped failing trace's timeline marks the violation on the lines it
concerns and explains it; bad input is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.main import main
from tests.procutil import REPO

pytestmark = pytest.mark.timeout(30)
TRACES = REPO / "traces"


def test_a_failing_trace_marks_the_violation_and_explains_it(
    capsys: pytest.CaptureFixture,
) -> None:
    assert main(["show", "--text", str(TRACES / "fail-no-duplicate.jsonl")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("FAIL (fail-no-duplicate)")
    marked = [line for line in out if "<-- no-duplicate" in line]
    assert any("msend M00000041" in line for line in marked)
    assert sum("logged M00000041" in line for line in marked) == 2
    assert "violations:" in out and any(line.startswith("  no-duplicate p2") for line in out)


def test_a_passing_trace_has_no_marks(capsys: pytest.CaptureFixture) -> None:
    assert main(["show", "--text", str(TRACES / "basic-pass.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "<--" not in out and "violations:" not in out and "logged" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert main(["show", "--text", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:1: bad JSON" in err
    assert main(["show", str(TRACES / "basic-pass.jsonl")]) == 2  # the HTML page is not there

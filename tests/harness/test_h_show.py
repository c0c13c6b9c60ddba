"""`pams show`: the terminal timeline (--text) marks a shipped failing trace's violation on the
lines it concerns and explains it; the HTML page is one self-contained file beside the trace
(or at -o) whose embedded model ties each violation to the elements it concerns; bad input
is one line and exit 2; a page that cannot be written never changes a verdict. The page as
drawn by a browser: test_h_show_page.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Optional

import pytest

from checkers import check_path
from harness.cli.main import main
from harness.reports.battery import page_beside
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
    assert main(["show", str(bad)]) == 2  # the page too
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:1: bad JSON" in err
    assert not list(tmp_path.glob("*.html"))
    good = TRACES / "basic-pass.jsonl"
    nowhere = tmp_path / "no" / "such" / "dir.html"
    assert main(["show", str(good), "-o", str(nowhere)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pams show: {nowhere}: cannot write the page" in err


def embedded(page: Path, element_id: str) -> object:
    found = re.search(
        f'<script type="application/json" id="{element_id}">(.*?)</script>',
        page.read_text(encoding="utf-8"),
        re.S,
    )
    assert found is not None
    return json.loads(found.group(1))


def test_the_page_is_one_self_contained_file_beside_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    trace = tmp_path / "trace.jsonl"
    shutil.copy(TRACES / "fail-no-duplicate.jsonl", trace)
    assert main(["show", str(trace)]) == 1
    page = tmp_path / "trace.html"
    assert capsys.readouterr().out.strip() == f"{trace}: FAIL; page: {page}"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert "<script src" not in text and "<link" not in text
    model = embedded(page, "pams-model")
    assert isinstance(model, dict)
    (v,) = model["viol"]
    (want,) = check_path(trace).violations
    assert (v["rule"], v["why"], v["token"]) == (want.rule, want.why, want.message)
    dels, ops = model["dels"], model["ops"]
    assert [dels["t"][d] for d in v["dels"]] == list(want.delivered_at)  # both deliveries
    assert all(model["lanes"][dels["lane"][d]] == "2" for d in v["dels"])
    assert [ops["f"][o] for o in v["ops"]] == ["msend"]  # and the msend
    raw = embedded(page, "pams-trace")
    assert isinstance(raw, list) and raw == trace.read_text().splitlines()


def test_a_raw_line_cannot_end_the_embedded_json(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    lines = (TRACES / "basic-pass.jsonl").read_text().splitlines()
    evil = '{"t": 5.6, "type": "output", "target": "1", "stream": "stdout", "line": "</script><b>"}'
    trace.write_text("\n".join([*lines[:-1], evil, lines[-1]]) + "\n")
    out = tmp_path / "page.html"
    assert main(["show", str(trace), "-o", str(out)]) == 0
    assert "</script><b>" not in out.read_text()
    assert evil in embedded(out, "pams-trace")  # type: ignore[operator]


def test_a_page_that_cannot_be_written_is_a_note_not_an_error(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    shutil.copy(TRACES / "fail-no-miss.jsonl", trace)
    assert page_beside(trace) == (tmp_path / "trace.html", "")
    (tmp_path / "trace.html").unlink()
    (tmp_path / "trace.html").mkdir()  # the page's place is taken
    page, note = page_beside(trace)
    assert page is None and note.count("\n") == 1 and note.startswith("\nnote: page not written")


def test_each_grade_failure_line_names_the_page(tmp_path: Path) -> None:
    from harness.reports.battery import FAIL, PASS, Outcome
    from harness.reports.grade import report

    def outcome(name: str, status: str, page: Optional[Path]) -> Outcome:
        trace = tmp_path / name / "trace.jsonl"
        rules = {"no-miss": status}
        first = "no-miss p3 -: why"
        return Outcome(name, "basic", False, status, rules, trace, "", first, page=page)

    pages = [tmp_path / "a" / "trace.html", None]
    text = report(
        [outcome("a", FAIL, pages[0]), outcome("b", FAIL, None), outcome("c", PASS, None)],
        "impl",
        "profile basic",
        tmp_path,
    )
    lines = text.splitlines()
    assert f"  a: {tmp_path / 'a' / 'trace.jsonl'}  page: {pages[0]}" in lines
    assert f"  b: {tmp_path / 'b' / 'trace.jsonl'}" in lines  # no page written: none named


def test_pams_runs_report_names_the_page_it_wrote_beside_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import argparse

    from harness.cli.run import report
    from harness.running.runner import RunResult

    trace = tmp_path / "trace.jsonl"
    shutil.copy(TRACES / "fail-no-miss.jsonl", trace)
    result = RunResult("fail-no-miss", tmp_path, trace, seconds=1.0)
    assert report(result, argparse.Namespace(json=False)) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"page: {tmp_path / 'trace.html'}"
    assert report(result, argparse.Namespace(json=True)) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown["page"] == str(tmp_path / "trace.html") and shown["verdict"] == "fail"
    assert (tmp_path / "trace.html").is_file()

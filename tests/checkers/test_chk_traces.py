"""Every shipped trace in traces/ gets the verdict (and failed rules) its manifest names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkers import RULES, TraceError, check_path
from tests.procutil import REPO

pytestmark = pytest.mark.timeout(30)

TRACES = REPO / "traces"
MANIFEST = json.loads((TRACES / "manifest.json").read_text())


def test_manifest_lists_every_trace_and_nothing_else() -> None:
    listed = [entry["file"] for entry in MANIFEST]
    assert len(listed) == len(set(listed)), "duplicate manifest entries"
    assert sorted(listed) == sorted(p.name for p in TRACES.glob("*.jsonl"))
    assert all(entry["verdict"] in ("pass", "fail", "error") for entry in MANIFEST)


def test_shipped_traces_cover_a_pass_a_boundary_run_and_every_rule() -> None:
    failed = {rule for entry in MANIFEST for rule in entry["rules_failed"]}
    assert failed == set(RULES)
    assert any(e["verdict"] == "pass" for e in MANIFEST)
    assert any(check_path(TRACES / e["file"]).boundary for e in MANIFEST if e["verdict"] == "pass")


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_shipped_trace_gets_its_verdict(entry: dict) -> None:
    path: Path = TRACES / entry["file"]
    if entry["verdict"] == "error":
        with pytest.raises(TraceError) as info:
            check_path(path)
        assert info.value.line == entry.get("error_line"), str(info.value)
        return
    verdict = check_path(path)
    failed = sorted(name for name, r in verdict.rules.items() if r.status == "fail")
    assert (verdict.verdict, failed) == (entry["verdict"], sorted(entry["rules_failed"])), (
        verdict.summary()
    )
    assert all(v.why for v in verdict.violations)

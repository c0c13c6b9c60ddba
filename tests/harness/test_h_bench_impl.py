"""`pams bench impl` on a short run: the table's shape, the JSON's fields, the ratio row, and
one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procutil import REPO

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]
ALT = REPO / "tests" / "fixtures" / "altimpl" / "adapters" / "alt.toml"
SHORT = ["--messages", "30", "--rate", "60", "--seconds", "0.5"]


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "bench", "impl", *args],
        cwd=cwd, capture_output=True, text=True, timeout=100,
    )  # fmt: skip


def test_two_implementations_side_by_side_with_ratios(tmp_path: Path) -> None:
    done = bench("--impl", "reference", "--impl", str(ALT), *SHORT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    head, ref, alt, ratio = done.stdout.splitlines()
    assert head.split()[:3] == ["impl", "burst", "msg/s"] and "coord" in head
    assert ref.split()[0] == "reference" and alt.split()[0] == "alt"
    assert ratio.startswith("alt / reference") and ratio.count("x") >= 5
    assert "round 1/1: reference" in done.stderr


def test_json_has_every_figure_and_nothing_lost(tmp_path: Path) -> None:
    done = bench("--impl", "reference", "--json", *SHORT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["impl"] == "reference" and result["missing"] == 0 == result["duplicated"]
    assert (
        result["burst_msgs_per_s"] > 0 and 0 < result["latency_p50_ms"] <= result["latency_max_ms"]
    )
    assert result["coordinator_rss_mib"] > 0


def test_a_missing_adapter_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = bench("--impl", "nosuch.toml", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "nosuch.toml: adapter file not found" in done.stderr

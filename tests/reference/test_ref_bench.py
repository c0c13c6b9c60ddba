"""Smoke test of `python -m reference.bench`: a short real run against the reference."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.procutil import REPO

pytestmark = pytest.mark.process

FIGURES = {
    "throughput": r"throughput +(\d+\.\d) acked msends/s, slowest second \d+ +"
    r"\((\d+) in window, (\d+) total, (\d+) errors, (\d+) unanswered\)",
    "latency": r"latency +ack -> log line: p50 (\d+\.\d+) ms, p99 (\d+\.\d+) ms, "
    r"max (\d+\.\d+) ms \((\d+) deliveries\)",
    "delivery": r"delivery +missing (\d+), duplicates (\d+), unknown tokens (\d+)",
    "coordinator": r"coordinator +RSS start (\d+\.\d) MiB, middle (\d+\.\d) MiB, end (\d+\.\d) "
    r"MiB, peak (\d+\.\d) MiB; slope ([+-]\d+\.\d) KiB/min",
    "cpu": r"cpu +over (\d+\.\d) s wall: coordinator (\d+\.\d+) s .*participants (\d+\.\d+) s"
    r" .*bench (\d+\.\d+) s",
}


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the run dir is in every config path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.timeout(60)
def test_short_bench_delivers_every_message_everywhere_and_cleans_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    bench = subprocess.run(
        [sys.executable, "-m", "reference.bench", "--participants", "3", "--duration", "2",
         "--warmup", "0.5", "--rate", "60", "--td", "2", "--keep", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    figures = {name: re.search(rx, bench.stdout) for name, rx in FIGURES.items()}
    assert all(figures.values()), f"figures missing from the report:\n{bench.stdout}"
    rate, in_window, total, errors, unanswered = map(float, figures["throughput"].groups())
    assert 40 <= rate <= 70, bench.stdout
    assert errors == 0 and unanswered == 0 and in_window <= total
    assert figures["latency"].group(4) == str(int(in_window) * 3)
    assert figures["delivery"].groups() == ("0", "0", "0")
    assert float(figures["coordinator"].group(4)) > 0
    assert "result         OK" in bench.stdout

    # Independent of the bench's own bookkeeping: every log holds each token exactly once.
    logs = sorted(run_dir.glob("p*/p*.log"))
    assert len(logs) == 3
    counts = [Counter(re.findall(r"B\d{9}", log.read_text())) for log in logs]
    assert all(c == counts[0] for c in counts)
    assert set(counts[0].values()) == {1} and len(counts[0]) == total

    assert processes_mentioning(str(run_dir)) == []

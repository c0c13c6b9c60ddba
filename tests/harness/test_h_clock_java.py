"""Clock steps reach a JVM faithfully, end to end: `pams run` of the Java coordinator in
tests/fixtures/java (stamps on System.nanoTime) passes both clock-step scenarios, and the same
program with --wall-clock (System.currentTimeMillis) fails them on the rule its bug breaks.
Also why the default mode sets FAKETIME_FORCE_MONOTONIC_FIX=0 (docs/clock.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.running import clock
from harness.running.clock import FakeClock, ProbeProcess
from tests.procutil import REPO

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("javac") is None,
        reason="java/javac not found on PATH (the Java fixture and probe need both)",
    ),
]
FIXTURES = REPO / "tests" / "fixtures" / "java"
# (adapter, scenario) -> None for a pass, else the one rule that must fail.
EXPECTED = {
    ("java-nanotime", "coordinator-step-back"): None,
    ("java-nanotime", "coordinator-step-forward"): None,
    ("java-wall-clock", "coordinator-step-back"): "no-expired",
    ("java-wall-clock", "coordinator-step-forward"): "no-miss",
}


def pams_run(adapter: str, scenario: str, out: Path) -> tuple[int, str, str]:
    """`pams run --json` of one fixture adapter: (exit status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "run", "-q", "--json"]
        + ["--impl", str(FIXTURES / f"{adapter}.toml"), "--scenario", scenario, "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=80,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.timeout(100)
def test_java_fixtures_through_pams_run(tmp_path: Path) -> None:
    # All four at once (each a JVM coordinator and three Python participants): the verdicts
    # must not depend on an idle machine.
    with ThreadPoolExecutor(len(EXPECTED)) as pool:
        runs = {
            key: pool.submit(pams_run, *key, tmp_path / f"{key[0]}-{key[1]}") for key in EXPECTED
        }
        results = {key: future.result() for key, future in runs.items()}
    for (adapter, scenario), failing in EXPECTED.items():
        code, out, err = results[adapter, scenario]
        what = f"{adapter} {scenario}: exit {code}\n{out}\n{err[-2000:]}"
        assert not out.startswith("SKIPPED"), what  # the clock step was applied, not skipped
        verdict = json.loads(out)
        failed = sorted(rule for rule, r in verdict["rules"].items() if r["status"] == "fail")
        if failing is None:
            assert (code, verdict["verdict"], failed) == (0, "pass", []), what
        else:
            assert (code, verdict["verdict"], failed) == (1, "fail", [failing]), what
        events = [json.loads(line) for line in Path(verdict["trace"]).read_text().splitlines()]
        steps = [e["offset"] for e in events if e.get("fault") == "clock_step"]
        assert steps == [-10.0 if "back" in scenario else 10.0], what


@pytest.mark.timeout(30)
def test_without_the_monotonic_fix_0_jvm_timed_waits_return_at_once(tmp_path: Path) -> None:
    # What FAKETIME_FORCE_MONOTONIC_FIX=0 repairs: with the glibc-version default (1 on glibc >=
    # 2.30) libfaketime converts a CLOCK_MONOTONIC condition-variable deadline from a faked
    # monotonic reading although the monotonic clock is not faked; the deadline lands an epoch
    # in the past and Object.wait / parkNanos return at once.
    fake = FakeClock(tmp_path / "o", 3600, False)
    env = {**fake.env(), "FAKETIME_FORCE_MONOTONIC_FIX": "1"}
    probe = ProbeProcess(clock.probe_argv("java", tmp_path), env, tmp_path / "err")
    try:
        assert probe.reply(15).startswith("ready java")
        for command in ("wait", "park"):
            reply, _ = probe.ask(command, 5)
            # the wait's own span on the (real) nanoTime: a 500 ms wait that returns earlier
            # than that returned early, whatever the load
            assert float(reply.split()[1]) < 0.45, reply
    finally:
        probe.close()

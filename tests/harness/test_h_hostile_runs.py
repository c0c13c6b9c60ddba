"""Hostile implementations through the whole runner: a coordinator that crashes or never
listens is an error naming why; a participant that hangs, ignores SIGTERM, forks a setsid()
survivor or floods stdout costs op timeouts at most, the run ends within its bound, output is
capped, and no process of the run is left (found by PAMS_RUN_ID and by cwd under the run dir),
even when Ctrl-C is pressed again and again during the teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import psutil
import pytest

from harness.adapters.adapter import load_adapter
from harness.running.runner import RunResult, run_scenario
from harness.scenarios.model import Scenario, Script
from harness.scenarios.registry import get_scenario
from tests.procutil import REPO, leftovers, nothing_left, wait_until

HOSTILE = REPO / "tests" / "fixtures" / "hostile"
REFERENCE = {
    "coordinator": ["{python}", "-m", "reference.coordinator", "{config}"],
    "participant": ["{python}", "-m", "reference.participant", "{config}"],
}
STARTUP, OP_TIMEOUT, DRAIN = 2.0, 1.0, 0.5
TEARDOWN = 0.5 + 3.0 + 0.5  # Supervisor.close(grace 0.5) bound, plus the other closers
SLACK = 6.0  # a loaded 2-core machine: process start-up, interpreter imports
# the supervisor's own teardown, without a sandbox (test_h_sandbox: the sandboxed runs)
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "PAMS_SANDBOX": "none"}


def hostile(name: str, *args: str) -> list[str]:
    return ["{python}", str(HOSTILE / f"{name}.py"), *args]


def write_adapter(
    tmp_path: Path, coordinator: Optional[list[str]] = None, participant: Optional[list[str]] = None
) -> Path:
    """An adapter: the reference in each role unless a hostile command replaces it."""
    path = tmp_path / "adapter.toml"
    path.write_text(
        f'name = "hostile"\nworkdir = {json.dumps(str(REPO))}\n'
        'env = { PYTHONPATH = "{workdir}", PYTHONUNBUFFERED = "1" }\n'
        f"[coordinator]\ncmd = {json.dumps(coordinator or REFERENCE['coordinator'])}\n"
        'config = "{port}\\n{td}\\n"\n'
        f"[participant]\ncmd = {json.dumps(participant or REFERENCE['participant'])}\n"
        'config = "{id}\\n{log}\\n{coordinator_host} {coordinator_port}\\n"\n'
        f"[timing]\nstartup = {STARTUP}\nop_timeout = {OP_TIMEOUT}\n"
    )
    return path


def small() -> Scenario:
    """Two members register and each sends once: four ops, about a second of schedule."""
    s = Script("hostile-small", 2, drain=DRAIN)
    s.all(0.0, "register", gap=0.05).at(0.4, "1", "msend").at(0.6, "2", "msend")
    return s.build()


def events(trace: Path) -> list[dict[str, Any]]:
    with open(trace, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def run(tmp_path: Path, adapter: Path, scenario: Scenario) -> tuple[RunResult, float, list[dict]]:
    started = time.monotonic()
    result = run_scenario(load_adapter(str(adapter)), scenario, tmp_path / "run", sandboxed=False)
    took = time.monotonic() - started
    assert result.trace_path is not None, result
    evs = events(result.trace_path)
    assert nothing_left(evs[0]["run_id"], result.run_dir) == []
    return result, took, evs


def schedule_bound(scenario: Scenario) -> float:
    """Longest a run may take when every op times out: start-up, the schedule with each of a
    participant's ops taking op_timeout, the drain, the teardown, slack."""
    ops = max(sum(1 for s in scenario.steps if s.target == p) for p in scenario.participants)
    return STARTUP + scenario.duration + ops * OP_TIMEOUT + DRAIN + TEARDOWN + SLACK


# ---------------------------------------------------------------------------- coordinator


@pytest.mark.timeout(30)
def test_coordinator_crash_at_start_is_an_error_naming_code_and_stderr(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path, coordinator=hostile("crash_at_start", "{config}"))
    result, took, evs = run(tmp_path, adapter, small())
    assert result.error is not None
    assert "exited with code 3" in result.error, result.error
    assert "fatal: cannot read config" in result.error, result.error
    assert "\n" not in result.error
    assert took < STARTUP + TEARDOWN + SLACK
    assert not [e for e in evs if e["type"] == "invoke"], "no op is driven without a coordinator"
    assert evs[-1]["type"] != "end"


@pytest.mark.timeout(30)
def test_coordinator_crash_through_the_cli_is_exit_2_with_one_line(tmp_path: Path) -> None:
    """Also: without -o the run goes to ./pams-runs/STAMP-SCENARIO, and --seed reaches the
    header's schedule."""
    adapter = write_adapter(tmp_path, coordinator=hostile("crash_at_start", "{config}"))
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "run", "--impl", str(adapter), "-q"]
        + ["--scenario", "random-basic", "--seed", "5"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=25,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot run the implementation" in lines[0]
    assert "exited with code 3" in lines[0] and "fatal: cannot read config" in lines[0]
    assert proc.stdout == ""
    (run_dir,) = (tmp_path / "pams-runs").iterdir()
    assert run_dir.name.endswith("-random-basic")
    header = events(run_dir / "trace.jsonl")[0]
    assert header["seed"] == 5
    assert header["scenario"] == get_scenario("random-basic", seed=5).to_json()
    assert nothing_left(header["run_id"], run_dir) == []


@pytest.mark.timeout(30)
def test_coordinator_that_never_listens_is_an_error_naming_the_port(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path, coordinator=hostile("never_listen"))
    result, took, evs = run(tmp_path, adapter, small())
    port = (result.run_dir / "coordinator" / "coordinator.conf").read_text().split()[0]
    assert result.error is not None
    assert f"did not listen on port {port} within {STARTUP:.1f} s" in result.error, result.error
    assert "started, not listening" in result.error  # its last output line
    assert STARTUP <= took < STARTUP + TEARDOWN + SLACK


# ---------------------------------------------------------------------------- participants


def assert_ops_timed_out(evs: list[dict[str, Any]], scenario: Scenario) -> None:
    invokes = [e for e in evs if e["type"] == "invoke"]
    assert len(invokes) == len(scenario.steps)
    outcome = {e["op"]: e for e in evs if e["type"] in ("ok", "fail", "info")}
    for inv in invokes:
        done = outcome[inv["op"]]
        # nothing reached the coordinator: the op did not happen (docs/adapter.md)
        assert done["type"] == "fail", (inv, done)
        assert done["error"] == f"nothing reached the coordinator within {OP_TIMEOUT:g} s"
        assert OP_TIMEOUT <= done["t"] - inv["t"] < OP_TIMEOUT + 2.0


@pytest.mark.timeout(40)
def test_participant_that_hangs_costs_only_op_timeouts(tmp_path: Path) -> None:
    sc = small()
    adapter = write_adapter(tmp_path, participant=hostile("hang_on_command"))
    result, took, evs = run(tmp_path, adapter, sc)
    assert result.error is None, result.error
    assert_ops_timed_out(evs, sc)
    assert evs[-1]["type"] == "end"
    assert took < schedule_bound(sc)
    stderr = [e["line"] for e in evs if e["type"] == "output" and e["stream"] == "stderr"]
    assert "got msend M00000001" in stderr, "the commands did reach it"


@pytest.mark.timeout(40)
def test_participant_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    sc = small()
    adapter = write_adapter(tmp_path, participant=hostile("ignore_sigterm"))
    result, took, evs = run(tmp_path, adapter, sc)
    assert result.error is None, result.error
    assert_ops_timed_out(evs, sc)
    assert took < schedule_bound(sc)
    killed = {
        e["target"]: e["returncode"]
        for e in evs
        if e["type"] == "process" and e["event"] == "kill" and e["target"] != "coordinator"
    }
    assert killed == {"1": -signal.SIGKILL, "2": -signal.SIGKILL}  # SIGTERM did not do it


@pytest.mark.timeout(60)
@pytest.mark.parametrize("modes", [(), ("exit",)], ids=["parent-stays", "parent-exits"])
def test_forked_setsid_survivors_are_killed(tmp_path: Path, modes: tuple[str, ...]) -> None:
    """The participant forks a child that setsid()s away from its process group; with `exit`
    the participant itself exits at once, so it is restarted before every command (each
    restart forks one more survivor)."""
    sc = small()
    adapter = write_adapter(tmp_path, participant=hostile("fork_survivor", "survivor.pid", *modes))
    result, took, evs = run(tmp_path, adapter, sc)
    assert result.error is None, result.error
    assert took < schedule_bound(sc) + (len(sc.steps) * STARTUP if modes else 0)
    for p in sc.participants:
        pid = int((result.run_dir / f"p{p}" / "survivor.pid").read_text())
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    restarts = [e for e in evs if e["type"] == "process" and e["event"] == "restart"]
    if "exit" in modes:
        assert len(restarts) >= 2  # the leftovers check above covered every survivor
    else:
        assert restarts == []


@pytest.mark.timeout(60)
def test_participant_flooding_stdout_is_capped_and_killed(tmp_path: Path) -> None:
    sc = small()
    adapter = write_adapter(tmp_path, participant=hostile("flood_stdout"))
    result, took, evs = run(tmp_path, adapter, sc)
    assert result.error is None, result.error
    assert took < schedule_bound(sc)
    assert evs[-1]["type"] == "end"
    for p in sc.participants:
        lines = [
            e["line"]
            for e in evs
            if e["type"] == "output" and e["target"] == p and e["stream"] == "stdout"
        ]
        assert 100 < len(lines) <= 2001, len(lines)
        if len(lines) == 2001:
            assert lines[-1] == "[pams: output truncated after 2000 lines]"
        assert all(len(line.encode()) <= 2000 for line in lines)
    assert result.trace_path is not None
    assert result.trace_path.stat().st_size < 2 * 2001 * 2200  # bounded by the cap


# ---------------------------------------------------------------------------- Ctrl-C


@pytest.mark.timeout(60)
def test_ctrl_c_hammered_during_teardown_still_kills_a_sigterm_ignorer(tmp_path: Path) -> None:
    """Ctrl-C pressed every 50 ms from the middle of the schedule until pams exits: the
    teardown must not be cut short (before the fix, SIGKILL never came and the participants
    that ignore SIGTERM lived on)."""
    adapter = write_adapter(tmp_path, participant=hostile("ignore_sigterm"))
    out = tmp_path / "run"
    trace = out / "trace.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli.main", "run", "--impl", str(adapter)]
        + ["--scenario", "online-multicast", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    try:

        def ready() -> bool:  # every participant ignores SIGTERM by now, and ops are going
            evs = events(trace) if trace.exists() else []
            ignoring = {e["target"] for e in evs if e.get("line") == "ignoring SIGTERM"}
            return ignoring == {"1", "2", "3"} and any(e["type"] == "invoke" for e in evs)

        wait_until(ready, 25, "SIGTERM ignored by every participant and the first invoke")
        run_id = events(trace)[0]["run_id"]
        assert len(leftovers(run_id, out)) == 4  # coordinator and three participants
        started = time.monotonic()
        while proc.poll() is None and time.monotonic() - started < 15:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        took = time.monotonic() - started
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert took < 10, took
    # the message, unless one more Ctrl-C landed while it was being printed
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert "interrupted" in stderr or "KeyboardInterrupt" in stderr, stderr
    assert nothing_left(run_id, out) == []
    evs = events(trace)
    assert evs[-1]["type"] != "end"
    killed = {
        e["target"]: e["returncode"]
        for e in evs
        if e["type"] == "process" and e["event"] == "kill" and e["target"] != "coordinator"
    }
    assert killed == {p: -signal.SIGKILL for p in ("1", "2", "3")}, "teardown got to SIGKILL"

"""The sandbox of each run (issue 11, README "The sandbox"), with hostile participants: an
escaper that setsid()s and re-execs with an empty environment leaves nothing; a program
cannot read a secret outside its directory (and can without the sandbox: the test can fail);
two runs of a hard-coded coordinator port run at once (both coordinators seen alive at one
moment); a log flood is cut at the file-size
cap with pams's memory bounded and the other participant's verdict untouched; a fork bomb
is held to the run's process limit."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from checkers import check_path
from harness.adapters.adapter import load_adapter
from harness.running import limits as lim
from harness.running import sandbox as sb
from harness.running.runner import RunResult, run_scenario
from tests.harness.test_h_hostile_runs import HOSTILE, events, hostile, small, write_adapter
from tests.procutil import REPO, nothing_left, wait_until

pytestmark = pytest.mark.process

SANDBOX = sb.detect("auto")
needs_sandbox = pytest.mark.skipif(SANDBOX.kind == "none", reason=SANDBOX.describe())
needs_bwrap = pytest.mark.skipif(not SANDBOX.isolates_files, reason=SANDBOX.describe())


def cgroup_works() -> bool:
    group = lim.RunCgroup.create("probe-" + os.urandom(4).hex(), lim.Limits())
    if group is None:
        return False
    group.close()
    return True


def matching(text: str) -> list[psutil.Process]:
    """Live processes (zombies excluded) whose command line contains `text`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


class Peak:
    """Samples `measure()` every 50 ms in a thread while the block runs; `.value` the peak."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self.measure, self.value, self._stop = measure, 0, threading.Event()

    def __enter__(self) -> Peak:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(psutil.Error):
                self.value = max(self.value, self.measure())


def run(adapter: Path, out: Path, sandboxed: bool = True) -> tuple[RunResult, list[dict]]:
    result = run_scenario(load_adapter(str(adapter)), small(), out, sandboxed=sandboxed)
    assert result.error is None, result.error
    assert result.trace_path is not None
    evs = events(result.trace_path)
    assert nothing_left(evs[0]["run_id"], result.run_dir) == []
    for controller in ("pids", "memory", "cpu", ""):  # the run's cgroup is removed
        assert not (lim.CGROUP_ROOT / controller / f"pams-{evs[0]['run_id']}").exists()
    return result, evs


def lines_of(evs: list[dict[str, Any]], target: str) -> list[str]:
    return [e["line"] for e in evs if e["type"] == "output" and e["target"] == target]


@needs_sandbox
def test_the_trace_header_names_the_sandbox(tmp_path: Path) -> None:
    _, evs = run(write_adapter(tmp_path), tmp_path / "run")
    assert evs[0]["sandbox"]["kind"] == SANDBOX.kind
    assert evs[0]["limits"]["file_size"] == 256 * 2**20


@needs_sandbox
def test_a_setsid_reexec_escaper_leaves_nothing(tmp_path: Path) -> None:
    """The survivor setsid()s, closes its stdio and re-execs with an empty environment (no
    PAMS_RUN_ID to find it by) while its parent exits: the PID namespace still ends it."""
    marker = f"escaper-{os.urandom(4).hex()}"
    participant = hostile("fork_survivor", f"{marker}.pid", "exit", "scrub")
    adapter = write_adapter(tmp_path, participant=participant)
    sleeper = "while 1: time.sleep(60)"
    before = {p.pid for p in matching(sleeper)}
    result, _ = run(adapter, tmp_path / "run")
    assert (result.run_dir / "p1" / f"{marker}.pid").exists()  # it did fork its survivor
    wait_until(lambda: not [p for p in matching(sleeper) if p.pid not in before], 5, "escapers")


@needs_bwrap
def test_a_secret_outside_the_programs_directory_cannot_be_read(tmp_path: Path) -> None:
    secret = tmp_path / "class" / "bob" / "secret.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("bob's answers")
    alice = tmp_path / "class" / "alice"
    alice.mkdir()
    adapter = write_adapter(alice, participant=hostile("secret_reader", "{config}"))
    text = adapter.read_text().replace(
        f"workdir = {json.dumps(str(REPO))}", f"workdir = {json.dumps(str(alice))}"
    )
    env = f'env = {{ PYTHONPATH = {json.dumps(str(REPO))}, PAMS_TEST_SECRET = "{secret}" }}'
    text = "\n".join(env if line.startswith("env = ") else line for line in text.splitlines())
    adapter.write_text(text + "\n")
    _, evs = run(adapter, tmp_path / "run")
    said = lines_of(evs, "1")
    assert any(line.startswith("secret: not found") for line in said), said
    _, evs = run(adapter, tmp_path / "unsandboxed", sandboxed=False)  # the control
    assert "secret: found bob's answers" in lines_of(evs, "1")


@needs_sandbox
def test_two_runs_of_a_hard_coded_port_run_at_once(tmp_path: Path) -> None:
    """Both coordinators listen on port 47123 at the same moment (each in its run's network
    namespace; without a sandbox the runs take turns) and both runs pass."""
    adapter = write_adapter(tmp_path)
    text = adapter.read_text().replace('config = "{port}', 'port = 47123\nconfig = "{port}')
    adapter.write_text(text)
    results: dict[str, RunResult] = {}

    def one(name: str) -> None:
        results[name], _ = run(adapter, tmp_path / name)

    def coordinators_at_once() -> int:
        configs = [str(tmp_path / n / "coordinator" / "coordinator.conf") for n in ("a", "b")]
        return sum(1 for c in configs if matching(c))

    threads = [threading.Thread(target=one, args=(n,)) for n in ("a", "b")]
    with Peak(coordinators_at_once) as peak:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(results) == ["a", "b"]
    for result in results.values():
        assert result.trace_path is not None
        assert check_path(str(result.trace_path)).passed
    assert peak.value == 2, "the two coordinators never ran at the same time"


def sandboxed_runners() -> int:
    """RSS of this test's sandboxed run processes (the harness side of each run)."""
    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "harness.running.isolated" in " ".join(proc.cmdline()):
                total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


@needs_sandbox
def test_a_log_flood_is_cut_at_the_cap_and_harms_no_one_else(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path, participant=hostile("log_flood", "{config}"))
    text = adapter.read_text().replace("op_timeout = 1.0", "op_timeout = 5.0")  # a loaded machine
    adapter.write_text(text + '[limits]\nfile_size = "64M"\n')
    with Peak(sandboxed_runners) as peak:
        result, evs = run(adapter, tmp_path / "run")
    assert peak.value < 300 * 2**20, (
        f"the run's harness side peaked at {peak.value / 2**20:.0f} MiB"
    )
    assert (result.run_dir / "p1" / "messages.log").stat().st_size <= 64 * 2**20
    limits = [e for e in evs if e["type"] == "limit"]
    assert any(
        e["limit"] == "file_size" and "log of p1 exceeded 64 MiB" in e["detail"] for e in limits
    ), limits
    assert result.trace_path is not None
    verdict = check_path(str(result.trace_path))
    assert {v.participant for v in verdict.violations} <= {"1"}, verdict.summary()


@needs_sandbox
@pytest.mark.skipif(
    not cgroup_works() and os.geteuid() == 0,
    reason="no cgroup can be made here and root is exempt from RLIMIT_NPROC",
)
def test_a_fork_bomb_is_held_to_the_process_limit(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path, participant=hostile("fork_bomb", "{config}"))
    adapter.write_text(adapter.read_text() + "[limits]\nprocesses = 100\n")
    bomb = str(HOSTILE / "fork_bomb.py")
    with Peak(lambda: len(matching(bomb))) as peak:
        result, evs = run(adapter, tmp_path / "run")
    assert peak.value <= 100, f"{peak.value} bomb processes at once"
    limits = [e for e in evs if e["type"] == "limit"]
    assert any(e["limit"] == "processes" for e in limits), limits
    wait_until(lambda: not matching(bomb), 5, "bomb processes gone")
    assert result.trace_path is not None

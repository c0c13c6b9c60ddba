"""`pams run` and `pams replay` end to end against the reference: real processes, real TCP on
127.0.0.1, real files. A run leaves a trace whose header and events tell the whole story, bad
input is one line and exit 2 with nothing touched, a replay drives the same schedule, parallel
runs never collide, and an interrupted run leaves no process behind and a truncated trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from checkers import check_path
from harness.adapters.adapter import load_adapter
from harness.cli.main import main
from harness.running.runner import RunResult, run_scenario
from harness.scenarios.model import COMMANDS, Scenario, Script, Step, load_file
from harness.scenarios.tokens import token
from tests.procutil import REPO, leftovers, nothing_left, wait_until

ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}

SCENARIO_TOML = """\
name = "h-run-file"
description = "membership changes, a pause, probes after disconnect and deregister"
participants = 3
td = 2
drain = 0.5
[[steps]]
at = 0.0
do = "register"
target = "1"
[[steps]]
after = 0.05
do = "register"
target = "2"
[[steps]]
after = 0.05
do = "register"
target = "3"
[[steps]]
at = 0.5
do = "msend"
target = "1"
[[steps]]
at = 0.8
do = "disconnect"
target = "3"
[[steps]]
at = 1.1
do = "msend"
target = "2"
[[steps]]
at = 1.4
do = "reconnect"
target = "3"
[[steps]]
at = 1.7
do = "deregister"
target = "2"
[[steps]]
at = 1.9
do = "msend"
target = "1"
[[steps]]
at = 2.1
do = "pause"
target = "1"
[[steps]]
at = 2.5
do = "resume"
target = "1"
[[steps]]
at = 2.6
do = "register"
target = "2"
[[steps]]
at = 2.9
do = "msend"
target = "3"
[[steps]]
at = 3.2
do = "disconnect"
target = "1"
"""


# ---------------------------------------------------------------------------- helpers


def pams(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=timeout,
    )


def events(trace: Path) -> list[dict[str, Any]]:
    with open(trace, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def of_type(evs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["type"] == kind]


def check_header(header: dict[str, Any], scenario: str, td: float, n: int) -> None:
    assert header["type"] == "header"
    assert header["format"] == "pams-trace" and header["version"] == 1
    assert header["scenario"]["name"] == scenario
    assert header["td"] == td == header["scenario"]["td"]
    assert header["participants"] == [str(i) for i in range(1, n + 1)]
    assert header["implementation"]["name"] == "reference"
    assert isinstance(header["run_id"], str) and header["run_id"]


def check_ops(evs: list[dict[str, Any]], steps: list[Step]) -> None:
    """One invoke per command step (same participant, f, token, in schedule order per
    participant), each followed by exactly one `ok`."""
    invokes = of_type(evs, "invoke")
    for p in {s.target for s in steps}:
        want = [(s.action, s.message) for s in steps if s.target == p and s.action in COMMANDS]
        got = [(e["f"], e.get("message")) for e in invokes if e["participant"] == p]
        assert got == want, p
    outcomes: dict[int, list[dict[str, Any]]] = {}
    for e in evs:
        if e["type"] in ("ok", "fail", "info"):
            outcomes.setdefault(e["op"], []).append(e)
    for inv in invokes:
        done = outcomes.get(inv["op"], [])
        assert [e["type"] for e in done] == ["ok"], inv
        assert done[0]["t"] >= inv["t"]


def owed(evs: list[dict[str, Any]], p: str) -> set[str]:
    """Messages p must get: sent (msend invoked) after p's register completed (a register
    still in flight at the send makes p's membership uncertain, as the checkers say)."""
    ok_at = {e["op"]: e["t"] for e in of_type(evs, "ok")}
    joined = min(
        ok_at[e["op"]]
        for e in of_type(evs, "invoke")
        if e["participant"] == p and e["f"] == "register"
    )
    return {e["message"] for e in of_type(evs, "invoke") if e["f"] == "msend" and e["t"] > joined}


def tiny(name: str, first_token: int = 1) -> Scenario:
    """Two members register, then each sends one message (tokens from `first_token`)."""
    s = Script(name, 2, drain=0.5)
    s.all(0.0, "register", gap=0.05)
    s.at(1.2, "1", "msend", message=token(first_token))
    s.at(1.5, "2", "msend", message=token(first_token + 1))
    return s.build()


# ---------------------------------------------------------------------------- happy path


@pytest.mark.timeout(40)
def test_run_builtin_scenario_passes_and_keeps_everything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = pams("run", "--impl", "reference", "--scenario", "online-multicast", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout and f"trace: {out / 'trace.jsonl'}" in proc.stdout
    assert "online-multicast" in proc.stderr  # progress lines
    evs = events(out / "trace.jsonl")
    header = evs[0]
    check_header(header, "online-multicast", 2.0, 3)
    assert evs[-1]["type"] == "end"
    assert [e["t"] for e in evs[1:]] == sorted(e["t"] for e in evs[1:])
    port, td = (out / "coordinator" / "coordinator.conf").read_text().split()
    assert float(td) == 2.0 and 20000 <= int(port) <= 60999
    sent = [e["message"] for e in of_type(evs, "invoke") if e["f"] == "msend"]
    assert len(sent) == 6
    for p in ("1", "2", "3"):
        conf = (out / f"p{p}" / "participant.conf").read_text().splitlines()
        assert conf[0] == p and Path(conf[1]).is_relative_to(out.resolve())
        assert conf[2].startswith("127.0.0.1 ")
        log = Path(conf[1]).read_text().split()
        delivered = [e["message"] for e in of_type(evs, "deliver") if e["participant"] == p]
        assert sorted(log) == sorted(delivered), p  # the trace shows what the log holds
        assert owed(evs, p) <= set(delivered) <= set(sent), p  # the sender's own included
        assert sent[-1] in owed(evs, p)
    targets = {e["target"] for e in of_type(evs, "output")}
    assert {"coordinator", "1", "2", "3"} <= targets
    for target in ("coordinator", "p1", "p2", "p3"):  # each process's output as plain files
        recorded = [
            e["line"]
            for e in of_type(evs, "output")
            if f"p{e['target']}" == target or e["target"] == target
            if e["stream"] == "stderr"
        ]
        assert (out / target / "stderr.txt").read_text().splitlines() == recorded, target
    assert "ok register" in (out / "p1" / "stdout.txt").read_text()
    assert any("ok register" in e["line"] for e in of_type(evs, "output"))
    assert nothing_left(header["run_id"], out) == []


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """A scenario FILE run once with `--td 3`: (scenario file, run dir, completed process)."""
    base = tmp_path_factory.mktemp("recorded")
    scenario = base / "h-run-file.toml"
    scenario.write_text(SCENARIO_TOML)
    out = base / "run"
    proc = pams(
        "run", "--impl", "reference", "--scenario", str(scenario), "--td", "3", "-o", str(out)
    )
    return scenario, out, proc


@pytest.mark.timeout(60)
def test_scenario_file_runs_with_td_override(recorded: tuple[Path, Path, Any]) -> None:
    scenario, out, proc = recorded
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evs = events(out / "trace.jsonl")
    check_header(evs[0], "h-run-file", 3.0, 3)
    assert (out / "coordinator" / "coordinator.conf").read_text().split()[1] == "3"
    sc = load_file(scenario)
    assert evs[0]["scenario"] == sc.with_td(3.0).to_json()
    check_ops(evs, list(sc.steps))
    assert evs[-1]["type"] == "end"
    faults = [(e["fault"], e["target"]) for e in of_type(evs, "fault")]
    assert faults == [("pause", "1"), ("resume", "1")]
    assert check_path(str(out / "trace.jsonl")).passed


@pytest.mark.timeout(60)
def test_probe_follows_each_disconnect_and_deregister(recorded: tuple[Path, Path, Any]) -> None:
    _, out, _ = recorded
    evs = events(out / "trace.jsonl")
    ok_at = {e["op"]: e["t"] for e in of_type(evs, "ok")}
    last_port: dict[str, int] = {}
    leaving = []
    for e in of_type(evs, "invoke"):
        if e["f"] in ("register", "reconnect"):
            last_port[e["participant"]] = e["port"]
        if e["f"] in ("disconnect", "deregister"):
            leaving.append((e, last_port[e["participant"]]))
    assert len(leaving) == 3
    probes = [e for e in of_type(evs, "probe") if e["probe"] == "port_released"]
    assert len(probes) == len(leaving)
    for (inv, port), probe in zip(leaving, probes):
        assert probe["probe"] == "port_released" and probe["ok"] is True, probe
        assert (probe["participant"], probe["port"]) == (inv["participant"], port)
        assert probe["t"] >= ok_at[inv["op"]]


@pytest.mark.timeout(60)
def test_replay_drives_the_same_schedule(recorded: tuple[Path, Path, Any], tmp_path: Path) -> None:
    _, first, _ = recorded
    out = tmp_path / "replay"
    proc = pams("replay", str(first / "trace.jsonl"), "--impl", "reference", "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
    a, b = events(first / "trace.jsonl"), events(out / "trace.jsonl")
    assert b[0]["scenario"] == a[0]["scenario"] and b[0]["td"] == 3.0
    assert b[0]["run_id"] != a[0]["run_id"]

    def schedule(evs: list[dict[str, Any]]) -> dict[str, list[tuple[str, Any, float]]]:
        t0 = next(e["t"] for e in evs if e["type"] == "schedule")
        per: dict[str, list[tuple[str, Any, float]]] = {}
        for e in of_type(evs, "invoke"):
            per.setdefault(e["participant"], []).append((e["f"], e.get("message"), e["t"] - t0))
        return per

    sa, sb = schedule(a), schedule(b)
    assert {p: [x[:2] for x in v] for p, v in sa.items()} == {
        p: [x[:2] for x in v] for p, v in sb.items()
    }
    for p in sa:
        for (_, _, ta), (_, _, tb) in zip(sa[p], sb[p]):
            assert abs(ta - tb) <= 0.3, (p, ta, tb)
    faults = [[(e["fault"], e["target"]) for e in of_type(x, "fault")] for x in (a, b)]
    assert faults[0] == faults[1] != []


# ---------------------------------------------------------------------------- bad input


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err and "\n" not in err, captured.err
    assert "Traceback" not in err
    return err


def test_unknown_adapter_path_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.toml"
    out = tmp_path / "out"
    err = one_line_error(
        capsys, ["run", "--impl", str(missing), "--scenario", "online-multicast", "-o", str(out)]
    )
    assert str(missing) in err and "not found" in err
    assert not out.exists()


def test_adapter_with_unknown_key_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    adapter = tmp_path / "impl.toml"
    text = (REPO / "harness" / "adapters" / "reference.toml").read_text()
    adapter.write_text(text.replace("[timing]", "[timing]\nop_timout = 2.0"))
    out = tmp_path / "out"
    err = one_line_error(
        capsys, ["run", "--impl", str(adapter), "--scenario", "online-multicast", "-o", str(out)]
    )
    assert str(adapter) in err and "op_timout" in err and "unknown key" in err
    assert not out.exists()


def test_unknown_scenario_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    err = one_line_error(
        capsys, ["run", "--impl", "reference", "--scenario", "no-such-thing", "-o", str(out)]
    )
    assert "no-such-thing" in err and "pams scenarios" in err
    assert not out.exists()


def test_bad_scenario_file_is_exit_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SCENARIO_TOML.replace('do = "pause"', 'do = "nap"'))
    err = one_line_error(
        capsys, ["run", "--impl", "reference", "--scenario", str(bad), "-o", str(tmp_path / "o")]
    )
    assert str(bad) in err and ".do: unknown action 'nap'" in err


def snapshot(root: Path) -> dict[str, tuple[float, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("command", ["run", "replay"])
def test_output_directory_not_empty_is_exit_2_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str
) -> None:
    out = tmp_path / "busy"
    (out / "sub").mkdir(parents=True)
    (out / "trace.jsonl").write_text("precious\n")
    (out / "sub" / "keep.txt").write_text("keep me\n")
    before = snapshot(out)
    trace = tmp_path / "t.jsonl"
    header = {"type": "header", "format": "pams-trace", "version": 1}
    trace.write_text(json.dumps({**header, "scenario": tiny("from-trace").to_json()}) + "\n")
    argv = ["--impl", "reference", "-o", str(out)]
    argv = (
        ["run", "--scenario", "online-multicast", *argv]
        if command == "run"
        else ["replay", str(trace), *argv]
    )
    err = one_line_error(capsys, argv)
    assert str(out) in err and "not empty" in err
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "content, needle",
    [
        ("", "not a JSON header"),
        ('{"type": "invoke"}\n', "not a trace header"),
        ('{"type": "header"}\n', "no scenario"),
    ],
)
def test_replay_of_something_that_is_not_a_trace_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, needle: str
) -> None:
    trace = tmp_path / "x.jsonl"
    trace.write_text(content)
    err = one_line_error(capsys, ["replay", str(trace), "--impl", "reference"])
    assert str(trace) in err and needle in err


# ---------------------------------------------------------------------------- parallel


@pytest.mark.timeout(40)
def test_two_runs_in_parallel_do_not_collide(tmp_path: Path) -> None:
    adapter = load_adapter("reference")
    results: dict[str, RunResult] = {}

    first = {"left": 11, "right": 21}  # distinct tokens: a crossed delivery would show

    def go(name: str) -> None:
        results[name] = run_scenario(adapter, tiny(name, first[name]), tmp_path / name)

    threads = [threading.Thread(target=go, args=(n,)) for n in first]
    for t in threads:
        t.start()
    for t in threads:
        t.join(35)
    assert set(results) == {"left", "right"}
    ports: list[set[int]] = []
    for name, result in results.items():
        assert result.error is None and result.trace_path == tmp_path / name / "trace.jsonl"
        assert check_path(str(result.trace_path)).passed, name
        evs = events(result.trace_path)
        assert evs[0]["scenario"]["name"] == name and evs[-1]["type"] == "end"
        own = {token(first[name]), token(first[name] + 1)}
        for p in ("1", "2"):
            got = [e["message"] for e in of_type(evs, "deliver") if e["participant"] == p]
            assert owed(evs, p) <= set(got) <= own, (name, p)  # nothing of the other run
            assert token(first[name] + 1) in owed(evs, p)
            log = (tmp_path / name / f"p{p}" / "messages.log").read_text().split()
            assert sorted(log) == sorted(got)
        mine = {int((tmp_path / name / "coordinator" / "coordinator.conf").read_text().split()[0])}
        for p in ("1", "2"):
            conf = (tmp_path / name / f"p{p}" / "participant.conf").read_text().splitlines()
            assert Path(conf[1]).parent == tmp_path / name / f"p{p}"
            mine.add(int(conf[2].split()[1]))
        mine |= {e["port"] for e in of_type(evs, "invoke") if "port" in e}
        ports.append(mine)
    assert ports[0].isdisjoint(ports[1])
    run_ids = {events(r.trace_path)[0]["run_id"] for r in results.values()}  # type: ignore[arg-type]
    assert len(run_ids) == 2


# ---------------------------------------------------------------------------- interrupt


@pytest.mark.timeout(40)
@pytest.mark.parametrize(
    "scenario, fault, sig",
    [
        ("participant-pause", ("pause", "3"), signal.SIGINT),
        ("coordinator-pause", ("pause", "coordinator"), signal.SIGINT),
        ("participant-pause", ("pause", "3"), signal.SIGTERM),  # as `timeout` or CI would
    ],
    ids=["sigint-participant-paused", "sigint-coordinator-paused", "sigterm-participant-paused"],
)
def test_interrupt_mid_fault_stops_everything(
    tmp_path: Path, scenario: str, fault: tuple[str, str], sig: int
) -> None:
    out = tmp_path / "run"
    trace = out / "trace.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli.main", "run", "--impl", "reference"]
        + ["--scenario", scenario, "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=REPO,
        start_new_session=True,
    )
    try:

        def paused() -> bool:
            if not trace.exists():
                return False
            evs = events_prefix(trace)
            return any((e.get("fault"), e.get("target")) == fault for e in evs)

        wait_until(paused, 20, f"{fault} in the trace")
        header = events_prefix(trace)[0]
        run_id = header["run_id"]
        assert leftovers(run_id, out), "the run's processes are there before the interrupt"
        time.sleep(0.2)  # well inside the pause (1.5 s / 2 s long)
        interrupted = time.monotonic()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert took <= 10, (took, stderr)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "interrupted" in stderr, stderr
    assert nothing_left(run_id, out) == [], stderr
    evs = events(trace)
    assert evs[-1]["type"] != "end" and not of_type(evs, "end")
    check = pams("check", str(trace))
    assert "TRUNCATED" in check.stdout, check.stdout + check.stderr
    verdict = check_path(str(trace))
    assert verdict.as_json()["truncated"] is True


def events_prefix(trace: Path) -> list[dict[str, Any]]:
    """The complete lines of a trace that is still being written."""
    with open(trace, encoding="utf-8") as f:
        text = f.read()
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


@pytest.mark.timeout(40)
def test_a_reused_run_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A second run into the same directory would read the first run's logs as deliveries
    (false no-phantom / no-duplicate, e.g. `pytest --pams-output DIR` twice): refused."""
    adapter = load_adapter("reference")
    first = run_scenario(adapter, tiny("again"), tmp_path / "run")
    assert first.trace_path is not None and check_path(str(first.trace_path)).passed
    before = snapshot(tmp_path / "run")
    with pytest.raises(ValueError, match="run directory exists and is not empty") as info:
        run_scenario(adapter, tiny("again"), tmp_path / "run")
    assert str(tmp_path / "run") in str(info.value)
    assert snapshot(tmp_path / "run") == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_interrupting_pams_grade_stops_every_run_in_progress(tmp_path: Path, sig: int) -> None:
    """Two scenarios at a time; the signal comes once both are driving their schedules. pams
    grade exits promptly (not after the battery), every started trace is truncated, and no
    process of any of its runs is left."""
    out = tmp_path / "grade"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli.main", "grade", "--impl", "reference"]
        + ["--profile", "basic", "-j", "2", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=REPO,
        start_new_session=True,
    )

    def driving() -> list[Path]:
        traces = list(out.glob("*/trace.jsonl"))
        started = [t for t in traces if of_type(events_prefix(t), "invoke")]
        return started if len(started) >= 2 else []

    try:
        started = wait_until(driving, 30, "two runs driving their schedules")
        run_ids = {events_prefix(t)[0]["run_id"] for t in started}
        interrupted = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert took <= 10, (took, stderr)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "interrupted" in stderr, stderr
    for run_id in run_ids:
        assert nothing_left(run_id, out) == [], stderr
    traces = list(out.glob("*/trace.jsonl"))
    assert len(traces) < 10, "the battery was not run to its end"
    for trace in started:
        assert not of_type(events(trace), "end"), trace

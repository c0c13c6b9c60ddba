"""The reference, driven by random schedules and recorded as a trace (format v1), passes every
checker rule; the same trace with one delivery removed fails `no-miss` (so the check has teeth).

This is a small stand-in for the harness: commands go through each participant's stdin, `ok` is
the participant's reply line, deliveries are new lines in its log.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from checkers import check_lines
from tests.participant_driver import ParticipantDriver
from tests.procutil import ProcessGroup, free_port, start_coordinator

TD = 1.5
AFTER = {"register": "online", "reconnect": "online", "disconnect": "offline", "deregister": "out"}


class Recorder:
    """Thread-safe event list stamped on one monotonic clock (seconds since the run started)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.ops = 0

    def now(self) -> float:
        return time.monotonic() - self.start

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append({**event, "t": round(self.now(), 6)})

    def next_op(self) -> int:
        with self.lock:
            self.ops += 1
            return self.ops

    def lines(self, participants: list[str], seed: int) -> list[str]:
        header = {
            "type": "header",
            "format": "pams-trace",
            "version": 1,
            "td": TD,
            "participants": participants,
            "implementation": {"name": "reference"},
            "seed": seed,
        }
        ordered = sorted(self.events, key=lambda e: e["t"])  # stable: same-time order kept
        return [json.dumps(header)] + [json.dumps(e) for e in ordered]


def tail_logs(drivers: dict[str, ParticipantDriver], rec: Recorder, stop: threading.Event) -> None:
    """Emit a `deliver` for every new complete log line, polling every 5 ms until `stop`."""
    seen = dict.fromkeys(drivers, 0)
    while True:
        stopping = stop.is_set()
        for pid, driver in drivers.items():
            data = driver.log.read_bytes()[seen[pid] :] if driver.log.exists() else b""
            end = data.rfind(b"\n")
            for line in data[: max(end, 0)].split(b"\n") if end >= 0 else []:
                rec.emit({"type": "deliver", "participant": pid, "message": line.decode()})
            seen[pid] += end + 1
        if stopping:
            return
        time.sleep(0.005)


def choose(state: str, rng: random.Random) -> str:
    if state == "out":
        return "register"
    if state == "online":
        return rng.choices(["msend", "disconnect", "deregister"], [80, 14, 6])[0]
    return rng.choices(["reconnect", "deregister"], [90, 10])[0]


def run_op(pid: str, driver: ParticipantDriver, rec: Recorder, f: str, token: str) -> None:
    """Invoke `f` through the participant's stdin and record invoke and ok (it must succeed)."""
    op = rec.next_op()
    event: dict[str, Any] = {"type": "invoke", "op": op, "participant": pid, "f": f}
    if f in ("register", "reconnect"):
        event["port"] = free_port()
        command = f"{f} {event['port']}"
    elif f == "msend":
        event["message"] = token
        command = f"msend {token}"
    else:
        command = f
    rec.emit(event)
    reply = driver.command(command)
    assert reply.startswith(f"ok {f}"), f"p{pid} {command!r} -> {reply!r}"
    rec.emit({"type": "ok", "op": op})


def drive(
    pid: str, driver: ParticipantDriver, rec: Recorder, rng: random.Random, until: float
) -> None:
    """Random valid commands for one participant until `until` (run seconds)."""
    state = "out"
    tokens = iter(range(1, 10**6))
    while rec.now() < until:
        if state == "offline":
            time.sleep(rng.uniform(0.0, TD * 1.8))  # both sides of td
        f = choose(state, rng)
        run_op(pid, driver, rec, f, f"P{pid}M{next(tokens):06d}")
        state = AFTER.get(f, state)
        time.sleep(rng.uniform(0.0, 0.05))
    for f in {"out": ["register"], "offline": ["reconnect"]}.get(state, []) + ["msend"]:
        run_op(pid, driver, rec, f, f"P{pid}FINAL")  # a last message nobody leaves after


def record_run(procs: ProcessGroup, root: Path, seed: int, seconds: float) -> list[str]:
    """Run the reference under a random schedule for `seconds`; return the trace lines."""
    rec = Recorder()
    _, port = start_coordinator(procs, root / "coordinator", TD)
    pids = ["1", "2", "3"]
    drivers = {p: ParticipantDriver.create(procs, root / f"p{p}", p, port) for p in pids}
    stop = threading.Event()
    tailer = threading.Thread(target=tail_logs, args=(drivers, rec, stop), daemon=True)
    tailer.start()
    master = random.Random(seed)
    threads = [
        threading.Thread(target=drive, args=(p, d, rec, random.Random(master.random()), seconds))
        for p, d in drivers.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    time.sleep(1.5)  # quiescence: anything in flight reaches the logs (L = 1 s)
    stop.set()
    tailer.join(timeout=10)
    rec.emit({"type": "end"})
    lines = rec.lines(pids, seed)
    (root / "trace.jsonl").write_text("\n".join(lines) + "\n")
    return lines


def without_first(lines: list[str], keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    """`lines` minus the first event for which `keep` is False."""
    for i, line in enumerate(lines):
        if not keep(json.loads(line)):
            return lines[:i] + lines[i + 1 :]
    raise AssertionError("no such event")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [7, 2026])
def test_reference_passes_every_rule_under_a_random_schedule(
    procs: ProcessGroup, tmp_path: Path, seed: int
) -> None:
    lines = record_run(procs, tmp_path, seed, seconds=8.0)
    verdict = check_lines(lines, name=str(tmp_path / "trace.jsonl"))
    assert verdict.verdict == "pass", verdict.summary()
    kinds = {json.loads(line).get("f") for line in lines[1:]}
    assert kinds >= {"register", "msend", "disconnect", "reconnect"}, kinds
    assert verdict.rules["no-miss"].checked > 50

    # The same run without p1's own copy of its last message (after which nobody left the
    # group) fails no-miss, and only for that message.
    broken = without_first(
        lines,
        lambda e: (
            not (e["type"] == "deliver" and e["participant"] == "1" and e["message"] == "P1FINAL")
        ),
    )
    failed = check_lines(broken, name="broken")
    assert failed.verdict == "fail"
    assert [(v.rule, v.participant, v.message) for v in failed.violations] == [
        ("no-miss", "1", "P1FINAL")
    ]

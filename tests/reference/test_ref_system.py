"""The reference coordinator and three reference participants as real processes over loopback,
driven through stdin; every check reads the participants' log files (bounded waits)."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.participant_driver import ParticipantDriver
from tests.procutil import ProcessGroup, free_port, port_bindable, start_coordinator, wait_until

pytestmark = pytest.mark.process

PROMPT = 2.0  # seconds within which an online member must have a message (generous on 2 cores)


@dataclass
class Cluster:
    """A coordinator and participants "1".."n", all registered (online) at the start."""

    td: float
    members: list[ParticipantDriver]

    def member(self, number: int) -> ParticipantDriver:
        return self.members[number - 1]


def _start(procs: ProcessGroup, tmp_path: Path, td: float, count: int = 3) -> Cluster:
    _, port = start_coordinator(procs, tmp_path / "coordinator", td)
    members = [
        ParticipantDriver.create(procs, tmp_path / f"p{i}", str(i), port)
        for i in range(1, count + 1)
    ]
    for member in members:
        member.ok(f"register {free_port()}")
    return Cluster(td, members)


def _msend(sender: ParticipantDriver, message: str) -> tuple[float, float]:
    """msend and return its window [invoke, reply] on the monotonic clock."""
    start = time.monotonic()
    sender.ok(f"msend {message}")
    return start, time.monotonic()


def _stopped(pid: int) -> bool:
    """True when every thread of process `pid` is stopped (SIGSTOP is delivered asynchronously)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        states.append(stat[stat.rindex(")") + 2])
    return all(state in "tT" for state in states)


def _sleep_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.monotonic()))


@pytest.mark.timeout(30)
def test_every_member_gets_every_message_including_the_sender(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=5)
    p1, p2, p3 = cluster.members
    p1.ok("msend FromOne")
    p2.ok("msend FromTwo")
    p3.ok("msend FromThree")
    for member in cluster.members:
        member.wait_log(["FromOne", "FromTwo", "FromThree"], timeout=PROMPT)


@pytest.mark.timeout(30)
def test_offline_for_less_than_td_gets_everything_on_reconnect(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=2.0)
    p1, p2, p3 = cluster.members
    away = time.monotonic()
    p3.ok("disconnect")
    p1.ok("msend WhileAwayA")
    p2.ok("msend WhileAwayB")
    p2.wait_log(["WhileAwayA", "WhileAwayB"], timeout=PROMPT)
    assert p3.log_lines() == []
    p3.ok(f"reconnect {free_port()}")
    assert time.monotonic() - away < cluster.td - 0.5, "timing precondition: offline < td"
    p1.ok("msend Back")
    p3.wait_log(["WhileAwayA", "WhileAwayB", "Back"], timeout=PROMPT)


@pytest.mark.timeout(30)
def test_offline_for_longer_than_td_gets_only_the_last_td_seconds(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=1.5)
    p1, _, p3 = cluster.members
    p3.ok("disconnect")
    _, old_sent = _msend(p1, "TooOld")
    _sleep_until(old_sent + 1.3)
    new_start, _ = _msend(p1, "Recent")
    _sleep_until(old_sent + cluster.td + 0.6)
    reconnect_start = time.monotonic()
    p3.ok(f"reconnect {free_port()}")
    reconnect_end = time.monotonic()
    assert reconnect_start - old_sent > cluster.td + 0.5, "precondition: TooOld is past td"
    assert reconnect_end - new_start < cluster.td - 0.5, "precondition: Recent is within td"
    p1.ok("msend Marker")
    p3.wait_log(["Recent", "Marker"], timeout=PROMPT)


@pytest.mark.timeout(30)
def test_deregistered_then_registered_is_a_new_entrant(procs: ProcessGroup, tmp_path: Path) -> None:
    cluster = _start(procs, tmp_path, td=5)
    p1, _, p3 = cluster.members
    p1.ok("msend Before")
    p3.wait_log(["Before"], timeout=PROMPT)
    p3.ok("deregister")
    p1.ok("msend WhileOut")
    p1.wait_log(["Before", "WhileOut"], timeout=PROMPT)
    p3.ok(f"register {free_port()}")
    p1.ok("msend After")
    p3.wait_log(["Before", "After"], timeout=PROMPT)


@pytest.mark.timeout(30)
def test_offline_then_deregister_then_register_is_owed_nothing(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=5)
    p1, _, p3 = cluster.members
    p3.ok("disconnect")
    p1.ok("msend WhileOffline")
    p3.ok("deregister")
    p1.ok("msend WhileOut")
    p3.ok(f"register {free_port()}")
    p1.ok("msend Welcome")
    p3.wait_log(["Welcome"], timeout=PROMPT)


@pytest.mark.timeout(30)
def test_reconnect_on_a_new_port_and_the_old_one_is_released(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    _, port = start_coordinator(procs, tmp_path / "coordinator", 5)
    p1 = ParticipantDriver.create(procs, tmp_path / "p1", "1", port)
    old_port, new_port = free_port(), free_port()
    p1.ok(f"register {old_port}")
    p1.ok("msend One")
    p1.wait_log(["One"], timeout=PROMPT)
    p1.ok("disconnect")
    assert port_bindable(old_port), "thread-B kept its port after disconnect returned"
    p1.ok("msend Two")  # an offline member may still send; it gets its message on reconnect
    p1.ok(f"reconnect {new_port}")
    assert port_bindable(old_port)
    assert not port_bindable(new_port)
    p1.wait_log(["One", "Two"], timeout=PROMPT)
    p1.ok("deregister")
    assert port_bindable(new_port), "thread-B kept its port after deregister returned"


@pytest.mark.timeout(60)
def test_no_duplicates_or_losses_across_disconnect_reconnect_cycles(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=10)
    p1, p2, p3 = cluster.members
    sent: list[str] = []
    stop = threading.Event()

    def send_continuously() -> None:
        while not stop.is_set() and len(sent) < 3000:
            message = f"Flow{len(sent):04d}"
            p1.ok(f"msend {message}")
            sent.append(message)

    sender = threading.Thread(target=send_continuously, daemon=True)
    sender.start()
    try:
        for _ in range(6):
            mark = len(sent)  # let a few messages go out (and be in flight) in every cycle
            wait_until(lambda mark=mark: len(sent) >= mark + 3, PROMPT, "more msends")
            p3.ok("disconnect")
            p2.ok("disconnect")
            p2.ok(f"reconnect {free_port()}")
            p3.ok(f"reconnect {free_port()}")
    finally:
        stop.set()
        sender.join(timeout=20)
    assert not sender.is_alive()
    p1.ok("msend Last")
    expected = [*sent, "Last"]
    for member in cluster.members:
        member.wait_log(expected, timeout=5)


@pytest.mark.timeout(30)
def test_a_paused_member_does_not_delay_the_others_and_catches_up(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=10)
    p1, p2, p3 = cluster.members
    os.killpg(p3.popen.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _stopped(p3.popen.pid), 5, "participant 3 stopped")
        expected = []
        for i in range(30):
            message = f"Paused{i:02d}"
            p1.ok(f"msend {message}")
            expected.append(message)
            p2.wait_log(expected, timeout=PROMPT)
        p1.wait_log(expected, timeout=PROMPT)
        assert p3.log_lines() == []
    finally:
        os.killpg(p3.popen.pid, signal.SIGCONT)
    p3.wait_log(expected, timeout=5)


@pytest.mark.timeout(40)
def test_a_killed_member_restarted_and_reconnected_gets_what_it_missed(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    cluster = _start(procs, tmp_path, td=5)
    p1, p2, p3 = cluster.members
    p1.ok("msend Alive")
    p3.wait_log(["Alive"], timeout=PROMPT)
    p3.kill()
    p1.ok("msend WhileDeadA")
    p2.ok("msend WhileDeadB")
    for member in (p1, p2):
        member.wait_log(["Alive", "WhileDeadA", "WhileDeadB"], timeout=PROMPT)
    p3.start()
    p3.ok(f"reconnect {free_port()}")
    p2.ok("msend Restarted")
    p3.wait_log(["Alive", "WhileDeadA", "WhileDeadB", "Restarted"], timeout=PROMPT)

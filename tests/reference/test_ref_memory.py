"""Coordinator memory stays bounded (issue 12): the live reference coordinator's RSS after 60 KB
messages, once td has passed, and with one member that never acknowledges (PROTOCOL.md s. 3-4).

RSS after freeing depends on the allocator (glibc keeps freed heap it cannot trim), so the
tests compare rounds rather than hold RSS to a fixed figure: memory a coordinator freed is
reused by the next round, so a coordinator that frees expired messages ends its third round
near where it ended its first, while one that keeps them grows by each round's 60 MB."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.procutil import ProcessGroup, start_coordinator, wait_until
from tests.reference.rawnet import ThreadB, ok

pytestmark = pytest.mark.process

TEXT = "x" * 60_000
MiB = 2**20
ROUND = 1000 * len(TEXT)  # what one round of 1,000 messages holds if nothing is freed
TD = 1.0


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def settled_rss(pid: int, seconds: float = 3.0) -> int:
    """The lowest RSS seen over `seconds` (the allocator may hand memory back a little later)."""
    low = rss(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        low = min(low, rss(pid))
    return low


def test_expired_messages_do_not_stay_in_memory(procs: ProcessGroup, tmp_path: Path) -> None:
    proc, port = start_coordinator(procs, tmp_path, TD)
    a, b = ThreadB(keep_text=False), ThreadB(keep_text=False)
    try:
        ok(port, f"REGISTER a 127.0.0.1 {a.port}")
        ok(port, f"REGISTER b 127.0.0.1 {b.port}")
        ok(port, "DISCONNECT b")  # offline: every message is kept for it for td
        after = []
        for n in range(1, 4):
            for _ in range(1000):
                ok(port, f"MSEND a {TEXT}")
            wait_until(lambda n=n: len(a.seqs()) == 1000 * n, 30, "a gets every message")
            time.sleep(TD + 0.5)  # past td, and an expiry sweep (every 0.5 s) later
            after.append(settled_rss(proc.popen.pid))
        growth = after[2] - after[0]  # a coordinator keeping them: two rounds, 120 MB
        assert growth < ROUND * 2 / 3, (
            f"coordinator RSS after each round past td: {[f'{x / MiB:.1f}' for x in after]} MiB"
        )
        ok(port, f"RECONNECT b 127.0.0.1 {b.port}")
        time.sleep(0.5)
        assert b.seqs() == []  # all of them had expired
    finally:
        a.close()
        b.close()


def flood(port: int, pid: int, count: int) -> tuple[int, float]:
    """Send `count` 60 KB messages from a; return the peak RSS seen and the send rate (B/s)."""
    peak = 0
    start = time.monotonic()
    for i in range(count):
        ok(port, f"MSEND a {TEXT}")
        if i % 50 == 0:
            peak = max(peak, rss(pid))
    return peak, count * len(TEXT) / (time.monotonic() - start)


def test_member_that_never_acks_is_capped(procs: ProcessGroup, tmp_path: Path) -> None:
    """2,000 messages of 60 KB (120 MB) to a member that reads but never acks: it is taken
    offline once its backlog passes 64 MiB and the other member gets everything. Meanwhile the
    coordinator holds at most the cap plus what is sent within td of the overflow (kept for
    the now offline member, as for any) plus an idle coordinator's 60 MB of slack. Once td has
    passed that memory is free: a second such round, after mute reconnects, peaks no higher
    than the first did (plus slack), where a coordinator keeping the backlog adds 120 MB."""
    proc, port = start_coordinator(procs, tmp_path, TD)
    a, mute = ThreadB(keep_text=False), ThreadB(ack=False, keep_text=False)
    pid = proc.popen.pid
    try:
        ok(port, f"REGISTER a 127.0.0.1 {a.port}")
        ok(port, f"REGISTER mute 127.0.0.1 {mute.port}")
        peak, rate = flood(port, pid, 2000)
        wait_until(lambda: len(a.seqs()) == 2000, 30, "a gets every message")
        assert a.seqs() == list(range(1, 2001))
        limit = 64 * MiB + rate * TD + 60 * MiB
        assert peak < limit, f"peak RSS {peak / MiB:.1f} MiB > {limit / MiB:.1f} MiB"
        log = (tmp_path / "coordinator.out").read_text()
        dropped = [line for line in log.splitlines() if "backlog limit" in line]
        assert len(dropped) == 1 and "channel to mute dropped" in dropped[0], log[-2000:]
        assert mute.eofs == 1  # its channel was closed
        time.sleep(TD + 0.5)  # past td: nothing is owed to mute any more
        ok(port, f"RECONNECT mute 127.0.0.1 {mute.port}")
        second, _ = flood(port, pid, 2000)
        wait_until(lambda: len(a.seqs()) == 4000, 30, "a gets every message")
        assert second < peak + 40 * MiB, (
            f"second round peaked at {second / MiB:.1f} MiB, the first at {peak / MiB:.1f} MiB"
        )
        assert proc.popen.poll() is None
    finally:
        a.close()
        mute.close()

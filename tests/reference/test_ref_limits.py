"""Memory bounds of the pure core (issue 12): expired messages are released at once, and an
online member whose unacknowledged backlog passes the limit is taken offline (PROTOCOL.md s. 4).

Time is injected (`now`), no sockets, no sleeps."""

from __future__ import annotations

import gc

from reference.core import (
    MAX_BACKLOG,
    MAX_BACKLOG_BYTES,
    OFFLINE,
    ONLINE,
    CloseChannel,
    CoordinatorCore,
    OpenChannel,
    Overflow,
    Wake,
)
from reference.store import Message


def held(marker: str) -> int:
    """How many Message objects whose text starts with `marker` are still alive anywhere."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Message) and o.text.startswith(marker))


class Members:
    """Plays delivery channels: `drain(pid)` takes everything; it is acked unless pid is mute."""

    def __init__(self, core: CoordinatorCore, mute: tuple[str, ...] = ()) -> None:
        self.core = core
        self.mute = set(mute)
        self.epochs: dict[str, int] = {}
        self.got: dict[str, list[int]] = {}

    def act(self, actions: tuple[object, ...]) -> None:
        for action in actions:
            if isinstance(action, OpenChannel):
                self.epochs[action.pid] = action.epoch
            elif isinstance(action, CloseChannel):
                self.epochs.pop(action.pid, None)
        for action in actions:
            if isinstance(action, (OpenChannel, Wake)) and action.pid in self.epochs:
                self.drain(action.pid)

    def drain(self, pid: str) -> None:
        epoch = self.epochs[pid]
        while batch := self.core.take(pid, epoch, 256):
            self.got.setdefault(pid, []).extend(m.seq for m in batch)
            if pid not in self.mute:
                self.core.ack(pid, epoch, batch[-1].seq)

    def do(self, verb: str, pid: str, now: float, arg: str = "") -> tuple[object, ...]:
        if verb == "register":
            outcome = self.core.register(pid, "127.0.0.1", 1, now)
        elif verb == "reconnect":
            outcome = self.core.reconnect(pid, "127.0.0.1", 1, now)
        elif verb == "disconnect":
            outcome = self.core.disconnect(pid, now)
        else:
            outcome = self.core.msend(pid, arg, now)
        assert outcome.ok, outcome.reply
        self.act(outcome.actions)
        return outcome.actions


def test_expired_messages_are_released_not_just_hidden() -> None:
    """4,000 messages over 4 s, td 1 s, one member offline since the start: only the messages of
    the last td are kept, and no dropped message is still held in memory (no batching)."""
    td = 1.0
    core = CoordinatorCore(td)
    net = Members(core)
    net.do("register", "a", 0.0)
    net.do("register", "b", 0.0)
    net.do("disconnect", "b", 0.0)
    for i in range(4000):
        net.do("msend", "a", i / 1000, f"expiry{i}x" + "y" * 200)
    now = 4.5
    core.expire(now)
    owed_b = core.owed("b", now)
    assert len(owed_b) == 500  # stamped 3.5 .. 3.999
    del owed_b
    assert len(core.store) == 500
    assert held("expiry") == 500
    # past td for every message: nothing is owed, nothing is held
    core.expire(10.0)
    assert core.owed("b", 10.0) == [] and len(core.store) == 0
    assert held("expiry") == 0
    # and a reconnect then receives nothing old
    net.do("reconnect", "b", 10.0)
    assert net.got.get("b", []) == []


def test_documented_limits() -> None:
    assert MAX_BACKLOG == 10_000
    assert MAX_BACKLOG_BYTES == 64 * 1024 * 1024
    core = CoordinatorCore(5.0)
    assert (core.max_backlog, core.max_backlog_bytes) == (MAX_BACKLOG, MAX_BACKLOG_BYTES)


def test_member_that_never_acks_goes_offline_at_the_count_limit() -> None:
    core = CoordinatorCore(5.0)  # the default limits
    net = Members(core, mute=("mute",))
    for pid in ("a", "mute", "c"):
        net.do("register", pid, 0.0)
    overflows = []
    for i in range(MAX_BACKLOG + 50):
        actions = net.do("msend", "a", i * 1e-4, f"m{i}")
        overflows += [(a, i) for a in actions if isinstance(a, Overflow)]
    assert len(overflows) == 1  # one event (one log line), then it is simply offline
    overflow, at = overflows[0]
    assert at == MAX_BACKLOG  # the message that made the backlog pass 10,000
    assert (overflow.pid, overflow.count) == ("mute", MAX_BACKLOG + 1)
    assert core.state("mute") == OFFLINE
    assert core.state("a") == ONLINE and core.state("c") == ONLINE
    every = list(range(1, MAX_BACKLOG + 51))
    assert net.got["a"] == every and net.got["c"] == every  # the others are unaffected
    assert len(net.got["mute"]) == MAX_BACKLOG  # written, never acked; not the one that overflowed


def test_byte_limit_then_reconnect_within_td_gets_everything_owed() -> None:
    td = 2.0
    core = CoordinatorCore(td, max_backlog=1000, max_backlog_bytes=10_000)
    net = Members(core, mute=("mute",))
    for pid in ("a", "mute"):
        net.do("register", pid, 0.0)
    text = "x" * 1000
    overflow = []
    for i in range(15):
        actions = net.do("msend", "a", 0.1 * i, text)
        overflow += [(i, a) for a in actions if isinstance(a, Overflow)]
        if i == 2:
            net.do("msend", "a", 0.1 * i, "short")  # seq 4; the backlog counts bytes, not lines
    assert [(i, a.pid, a.count, a.nbytes) for i, a in overflow] == [(9, "mute", 11, 10_005)]
    assert overflow[0][1].epoch == 1 and "mute" not in net.epochs  # its channel was closed
    assert core.state("mute") == OFFLINE and core.state("a") == ONLINE
    assert core.backlog("a") == (0, 0)
    # within td of going offline (at 0.9): every unacknowledged message is sent again, in order
    net.mute.clear()
    net.got["mute"] = []
    net.do("reconnect", "mute", 0.9 + td)
    assert net.got["mute"] == list(range(1, 17))
    assert core.backlog("mute") == (0, 0)
    core.expire(0.9 + td)
    assert len(core.store) == 0  # everybody acked: nothing kept


def test_overflowed_member_is_subject_to_td_like_any_offline_member() -> None:
    td = 1.0
    core = CoordinatorCore(td, max_backlog=10)
    net = Members(core, mute=("mute",))
    for pid in ("a", "mute"):
        net.do("register", pid, 0.0)
    for i in range(11):
        net.do("msend", "a", 0.0, f"late{i}")
    assert core.state("mute") == OFFLINE
    assert len(core.store) == 11  # kept for it while offline <= td
    core.expire(0.5)
    assert len(core.store) == 11
    for i in range(3):
        net.do("msend", "a", 1.5, f"late{i + 11}")
    core.expire(1.6)  # offline 1.6 s > td: only what was stamped from 0.6 on is owed
    assert [m.seq for m in core.owed("mute", 1.6)] == [12, 13, 14]
    assert len(core.store) == 3 and held("late") == 3
    net.mute.clear()
    net.got["mute"] = []
    net.do("reconnect", "mute", 1.6)
    assert net.got["mute"] == [12, 13, 14]


def test_slow_member_that_acks_in_time_is_not_dropped() -> None:
    core = CoordinatorCore(1.0, max_backlog=10)
    net = Members(core, mute=("slow",))
    for pid in ("a", "slow"):
        net.do("register", pid, 0.0)
    for i in range(100):
        actions = net.do("msend", "a", 0.0, f"s{i}")
        assert not any(isinstance(a, Overflow) for a in actions)
        if i % 10 == 9:  # acks every tenth message: its backlog never passes 10
            core.ack("slow", net.epochs["slow"], net.got["slow"][-1])
    assert core.state("slow") == ONLINE

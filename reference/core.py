"""The coordinator's pure core: membership, persistence and expiry.

No sockets, no clock: every call takes `now` (seconds on a monotonic clock, non-decreasing) and
returns the reply plus the actions the I/O layer must carry out (h11 style). The wire protocol is
described in `reference/PROTOCOL.md`; its lines are parsed and formatted in `reference.wire`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from reference.store import Message, MessageStore
from reference.wire import (
    Disconnect,
    Msend,
    Ok,
    Reconnect,
    Register,
    Request,
    parse_reply,
    parse_request,
    reply_err,
    reply_ok,
)

OUT = "out"
ONLINE = "online"
OFFLINE = "offline"

# An online member whose unacknowledged backlog passes either limit is taken offline (PROTOCOL.md
# section 4): without them one member that never acknowledges pins every message in memory.
MAX_BACKLOG = 10_000  # messages
MAX_BACKLOG_BYTES = 64 * 1024 * 1024  # bytes of message text


# --- actions and outcomes -------------------------------------------------------------------


@dataclass(frozen=True)
class OpenChannel:
    """Connect a delivery channel to `pid` at host:port for its online period `epoch`."""

    pid: str
    epoch: int
    host: str
    port: int


@dataclass(frozen=True)
class CloseChannel:
    """Close the delivery channel of `pid` for online period `epoch`."""

    pid: str
    epoch: int


@dataclass(frozen=True)
class Wake:
    """The channel of `pid` (period `epoch`) has new messages to `take`."""

    pid: str
    epoch: int


@dataclass(frozen=True)
class Overflow(CloseChannel):
    """Close the channel of `pid`/`epoch` because its member's unacknowledged backlog (`count`
    messages, `nbytes` bytes of text) passed the limits: the member is now offline."""

    count: int
    nbytes: int


Action = Union[OpenChannel, CloseChannel, Wake]


@dataclass(frozen=True)
class Outcome:
    """The reply line for the requester (no terminator) and the actions to perform after it."""

    reply: str
    actions: tuple[Action, ...] = ()

    @property
    def ok(self) -> bool:
        return isinstance(parse_reply(self.reply), Ok)


def _refuse(reason: str) -> Outcome:
    return Outcome(reply_err(reason))


# --- the core -------------------------------------------------------------------------------


class _Member:
    """Mutable per-member record; what the member is owed is derived from `acked` and the store."""

    __slots__ = ("acked", "epoch", "offline_since", "online", "sent")

    def __init__(self, acked: int) -> None:
        self.acked = acked  # every seq <= acked is delivered or not owed
        self.sent = acked  # highest seq handed to the current channel
        self.epoch = 0  # number of the current/last online period
        self.online = False
        self.offline_since = 0.0


class CoordinatorCore:
    """Membership, message store and expiry of one multicast group with persistence bound `td`."""

    def __init__(
        self,
        td: float,
        *,
        max_backlog: int = MAX_BACKLOG,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
    ) -> None:
        self.td = td
        self.max_backlog = max_backlog
        self.max_backlog_bytes = max_backlog_bytes
        self.store = MessageStore()
        self._members: dict[str, _Member] = {}

    # queries

    def state(self, pid: str) -> str:
        """`out`, `online` or `offline`."""
        member = self._members.get(pid)
        if member is None:
            return OUT
        return ONLINE if member.online else OFFLINE

    def members(self) -> dict[str, str]:
        """Every member's state, by ID."""
        return {pid: self.state(pid) for pid in self._members}

    # requests

    def handle(self, line: str, now: float) -> Outcome:
        """Parse and apply one request line received at `now`."""
        request = parse_request(line)
        if isinstance(request, str):
            return _refuse(request)
        return self.apply(request, now)

    def apply(self, request: Request, now: float) -> Outcome:
        """Apply a parsed request received at `now`; invalid ones change nothing."""
        if isinstance(request, Msend):
            return self.msend(request.pid, request.text, now)
        if isinstance(request, Register):
            return self.register(request.pid, request.host, request.port, now)
        if isinstance(request, Reconnect):
            return self.reconnect(request.pid, request.host, request.port, now)
        if isinstance(request, Disconnect):
            return self.disconnect(request.pid, now)
        return self.deregister(request.pid, now)

    def register(self, pid: str, host: str, port: int, now: float) -> Outcome:
        """Join as a new entrant: owed only messages sent from now on."""
        if pid in self._members:
            return _refuse(f"{pid} is already registered")
        member = _Member(acked=self.store.next_seq - 1)
        self._members[pid] = member
        return Outcome(reply_ok(), (self._go_online(pid, member, host, port),))

    def deregister(self, pid: str, now: float) -> Outcome:
        """Leave the group; whatever was pending is no longer owed."""
        member = self._members.pop(pid, None)
        if member is None:
            return _refuse(f"{pid} is not registered")
        self.expire(now)
        return Outcome(reply_ok(), (CloseChannel(pid, member.epoch),) if member.online else ())

    def disconnect(self, pid: str, now: float) -> Outcome:
        """Go offline at `now`; unacknowledged and later messages are kept for a reconnect."""
        member = self._members.get(pid)
        if member is None:
            return _refuse(f"{pid} is not registered")
        if not member.online:
            return _refuse(f"{pid} is not online")
        self._go_offline(member, now)
        return Outcome(reply_ok(), (CloseChannel(pid, member.epoch),))

    def reconnect(self, pid: str, host: str, port: int, now: float) -> Outcome:
        """Come back online: owed every pending message if offline <= td, else the last td s."""
        member = self._members.get(pid)
        if member is None:
            return _refuse(f"{pid} is not registered")
        if member.online:
            return _refuse(f"{pid} is already online")
        member.acked = self._first_owed(member, now) - 1
        return Outcome(reply_ok(), (self._go_online(pid, member, host, port),))

    def msend(self, pid: str, text: str, now: float) -> Outcome:
        """Store `text` stamped `now` and wake every online member's channel (sender included);
        an online member whose backlog now passes the limits goes offline instead (`Overflow`)."""
        if pid not in self._members:
            return _refuse(f"{pid} is not registered")
        msg = self.store.append(now, pid, text)
        actions: list[Action] = [self._overflow(p, m, now) for p, m in self._over_limit()]
        self.expire(now)
        actions += [Wake(p, m.epoch) for p, m in self._members.items() if m.online]
        return Outcome(reply_ok(str(msg.seq)), tuple(actions))

    def backlog(self, pid: str) -> tuple[int, int]:
        """Messages and text bytes stored after the last one `pid` acknowledged."""
        member = self._members.get(pid)
        if member is None:
            return 0, 0
        first = max(member.acked + 1, self.store.first_seq)
        return self.store.next_seq - first, self.store.bytes_since(first)

    # delivery channels

    def take(self, pid: str, epoch: int, limit: int) -> list[Message]:
        """The next (up to `limit`) messages the channel of `pid`/`epoch` must write, in order."""
        member = self._members.get(pid)
        if member is None or not member.online or member.epoch != epoch:
            return []
        batch = self.store.since(member.sent + 1, limit)
        if batch:
            member.sent = batch[-1].seq
        return batch

    def ack(self, pid: str, epoch: int, seq: int) -> None:
        """The channel of `pid`/`epoch` confirmed every message up to `seq` (cumulative)."""
        member = self._members.get(pid)
        if member is not None and member.epoch == epoch:
            member.acked = max(member.acked, min(seq, member.sent))

    def channel_failed(self, pid: str, epoch: int, now: float) -> bool:
        """The channel failed or broke: `pid` is offline from `now`; True if it was online."""
        member = self._members.get(pid)
        if member is None or not member.online or member.epoch != epoch:
            return False
        self._go_offline(member, now)
        return True

    # expiry

    def expire(self, now: float) -> int:
        """Drop every message no member can still be owed; return how many were dropped."""
        keep = min(
            (self._first_owed(m, now) for m in self._members.values()),
            default=self.store.next_seq,
        )
        return self.store.drop_before(keep)

    def owed(self, pid: str, now: float) -> list[Message]:
        """What `pid` would be sent if it (re)connected at `now` (empty for non-members)."""
        member = self._members.get(pid)
        if member is None:
            return []
        first = self._first_owed(member, now)
        return self.store.since(first, self.store.next_seq - first)

    # helpers

    def _over_limit(self) -> list[tuple[str, _Member]]:
        over = []
        for pid, member in self._members.items():
            if member.online:
                count, nbytes = self.backlog(pid)
                if count > self.max_backlog or nbytes > self.max_backlog_bytes:
                    over.append((pid, member))
        return over

    def _overflow(self, pid: str, member: _Member, now: float) -> Overflow:
        count, nbytes = self.backlog(pid)
        self._go_offline(member, now)
        return Overflow(pid, member.epoch, count, nbytes)

    def _first_owed(self, member: _Member, now: float) -> int:
        first = member.acked + 1
        if member.online or now - member.offline_since <= self.td:
            return first
        return max(first, self.store.first_seq_stamped_from(now - self.td))

    def _go_online(self, pid: str, member: _Member, host: str, port: int) -> OpenChannel:
        member.online = True
        member.epoch += 1
        member.sent = member.acked
        return OpenChannel(pid, member.epoch, host, port)

    @staticmethod
    def _go_offline(member: _Member, now: float) -> None:
        member.online = False
        member.offline_since = now

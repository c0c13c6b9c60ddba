"""The op-completion machine: the one place where an operation's completion is decided
(docs/trace-format.md, "Op completion"). Pure: events in (invoke, request bytes seen, reply
bytes, close, refused connect, stdout line, hold/release, kill, tick), actions out (settle an
op, a late acknowledgement, a refusal found after the fact, the first request bytes of an op).
No sockets, no threads, no clock: every event carries its time.

Model (README "The judge's model"): an op's effect happens between its request bytes reaching
the coordinator and its acknowledgement. Without an acknowledgement its window still ends, at
the request bytes plus the latency bound L (or at op_timeout); the op is then `ok` with
`acknowledged: false`. Its outcome is unknown (`info`) only when a fault makes it so: a kill,
a pause of the participant or the coordinator, a partition cutting its connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Optional, Union

REPLY, LINE, EITHER = "reply", "line", "either"
COMPLETE_ON = (REPLY, LINE, EITHER)
REPLY_CAP = 64 * 1024  # bytes of reply text kept per connection for reply/refusal patterns
DEFAULT_REFUSAL = (
    r"(?i)\b(err|error|fail|failed|failure|refused|rejected|denied|invalid|unable|cannot|"
    r"can't|not registered|not a member|already)\b"
)


@dataclass(frozen=True)
class Policy:
    """What completes an op for one adapter: `complete_on` (reply bytes, the done line, or the
    first of them), the patterns, the latency bound L and op_timeout (seconds)."""

    complete_on: str = REPLY
    done_re: Optional[re.Pattern[str]] = None
    reply_re: Optional[re.Pattern[str]] = None
    refusal_re: Optional[re.Pattern[str]] = None
    latency: float = 1.0
    op_timeout: float = 5.0


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoke:
    """Command `op` (operation `f`) was written to the participant's stdin at t."""

    op: int
    f: str
    t: float


@dataclass(frozen=True)
class Request:
    """Participant bytes on control connection `conn` reached the coordinator at t."""

    conn: int
    t: float


@dataclass(frozen=True)
class Reply:
    """Coordinator bytes `data` on control connection `conn` at t (before the participant
    can see them)."""

    conn: int
    data: bytes
    t: float


@dataclass(frozen=True)
class Close:
    """The coordinator closed (EOF or reset) control connection `conn` at t."""

    conn: int
    t: float


@dataclass(frozen=True)
class Hangup:
    """The participant closed its side of control connection `conn` at t: a close by the
    coordinator after that is no acknowledgement."""

    conn: int
    t: float


@dataclass(frozen=True)
class Refused:
    """A control connection of this participant could not be made at t (coordinator refused
    it, or a partition)."""

    t: float


@dataclass(frozen=True)
class Cut:
    """The harness cut control connection `conn` at t (partition): what the coordinator got of
    it is unknown."""

    conn: int
    t: float


@dataclass(frozen=True)
class Line:
    """A stdout line of the participant at t, judged only after the proxy has passed on every
    byte it received before the line was read."""

    text: str
    t: float


@dataclass(frozen=True)
class Hold:
    """A pause of this participant or of the coordinator began at t."""

    t: float


@dataclass(frozen=True)
class Release:
    """A pause of this participant or of the coordinator ended at t."""

    t: float


@dataclass(frozen=True)
class Killed:
    """The harness killed the participant at t."""

    t: float


@dataclass(frozen=True)
class Restarted:
    """A new process of the participant started: stdout lines count from zero again."""

    t: float


@dataclass(frozen=True)
class Tick:
    """Time passed: deadlines up to t are applied."""

    t: float


def control_event(kind: str, conn: int, data: bytes, t: float) -> Event:
    """The machine's event for a proxy control report (`kind` as harness.proxy.hub's
    ControlSink names them: request, reply, close, hangup, cut, refused)."""
    if kind == "request":
        return Request(conn, t)
    if kind == "reply":
        return Reply(conn, data, t)
    if kind == "close":
        return Close(conn, t)
    if kind == "hangup":
        return Hangup(conn, t)
    if kind == "cut":
        return Cut(conn, t)
    return Refused(t)


Event = Union[
    Invoke,
    Request,
    Reply,
    Close,
    Hangup,
    Refused,
    Cut,
    Line,
    Hold,
    Release,
    Killed,
    Restarted,
    Tick,
]

# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settle:
    """Record the op's completion: `outcome` ok/fail/info at t, with optional trace fields
    (`acknowledged`, `request_at`, `reply`, `refusal`, `error`, `reason`)."""

    op: int
    f: str
    outcome: str
    t: float
    fields: tuple[tuple[str, object], ...] = ()

    def event(self) -> dict[str, object]:
        return {"type": self.outcome, "op": self.op, **dict(self.fields)}


@dataclass(frozen=True)
class LateAck:
    """An op settled without acknowledgement got it at t (`how`: reply or line)."""

    op: int
    t: float
    how: str

    def event(self) -> dict[str, object]:
        return {"type": "ack", "op": self.op, "how": self.how}


@dataclass(frozen=True)
class Refusal:
    """An op settled ok was refused after all: its own reply line said so at t."""

    op: int
    t: float
    text: str

    def event(self) -> dict[str, object]:
        return {"type": "refused", "op": self.op, "text": self.text}


@dataclass(frozen=True)
class RequestSeen:
    """The first request bytes of op `op` (operation `f`) reached the coordinator at t."""

    op: int
    f: str
    t: float


Action = Union[Settle, LateAck, Refusal, RequestSeen]

# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Armed:
    """The op waiting for completion."""

    op: int
    f: str
    t0: float
    index: int  # this op's command is the index-th written to the current process
    senders: frozenset[int] = frozenset()
    replies: tuple[tuple[int, str], ...] = ()  # (conn, reply text so far)
    request_at: Optional[float] = None
    replied: bool = False
    line: Optional[str] = None  # its done line, once seen
    held: bool = False
    released_at: Optional[float] = None
    refused_connect: bool = False
    cut: bool = False
    hung_up: frozenset[int] = frozenset()  # connections the participant closed first

    def text(self, conn: int) -> str:
        return dict(self.replies).get(conn, "")


@dataclass(frozen=True)
class _Unacked:
    """An op settled without acknowledgement, still listening for a late one."""

    op: int
    index: int
    senders: frozenset[int]
    until: float


@dataclass
class OpMachine:
    """Op completion for one participant (one op at a time). Feed events with `handle`; each
    returns the actions to carry out, in order. `deadline()` is when to `Tick` next."""

    policy: Policy
    armed: Optional[_Armed] = None
    unacked: tuple[_Unacked, ...] = ()  # settled without acknowledgement, still listening
    written: int = 0  # commands written to the current process
    done_lines: int = 0  # done-pattern lines of the current process since its first command
    answered: dict[int, tuple[int, str]] = field(default_factory=dict)  # index -> (op, outcome)
    holds: int = 0

    def deadline(self) -> Optional[float]:
        """The next instant a Tick can settle the armed op, or None."""
        a = self.armed
        if a is None:
            return None
        timeout = a.t0 + self.policy.op_timeout
        if a.request_at is None or a.held or a.cut:
            return timeout
        start = max(a.request_at, a.released_at or a.request_at)
        return min(timeout, start + self.policy.latency)

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; the actions it causes."""
        handler = _HANDLERS[type(event)]
        return handler(self, event)  # type: ignore[operator]

    # -- handlers ---------------------------------------------------------------------------

    def _invoke(self, e: Invoke) -> list[Action]:
        out = self._expire_all(e.t)
        self.written += 1
        self.armed = _Armed(e.op, e.f, e.t, self.written, held=self.holds > 0)
        return out

    def _request(self, e: Request) -> list[Action]:
        a = self.armed
        if a is None:
            return []
        first = a.request_at is None
        self.armed = replace(a, senders=a.senders | {e.conn}, request_at=a.request_at or e.t)
        return [RequestSeen(a.op, a.f, e.t)] if first else []

    def _reply(self, e: Reply) -> list[Action]:
        late = self._late_reply(e)
        if late:
            return late
        a = self.armed
        if a is None or e.conn not in a.senders:
            return []
        text = (a.text(e.conn) + e.data.decode("utf-8", errors="replace"))[-REPLY_CAP:]
        a = replace(a, replies=(*[r for r in a.replies if r[0] != e.conn], (e.conn, text)))
        self.armed = a
        refusal = self._refusal(text)
        if refusal is not None:
            return self._settle("fail", e.t, refusal=refusal, by="coordinator")
        reply_re = self.policy.reply_re
        if reply_re is not None and not reply_re.search(text):
            return []
        self.armed = replace(a, replied=True)
        return self._maybe_complete(e.t, text)

    def _close(self, e: Close) -> list[Action]:
        a = self.armed
        if a is None or e.conn not in a.senders or a.replied or e.conn in a.hung_up:
            return []
        self.armed = replace(a, replied=True)
        return self._maybe_complete(e.t, a.text(e.conn))

    def _hangup(self, e: Hangup) -> list[Action]:
        a = self.armed
        if a is not None and e.conn in a.senders:
            self.armed = replace(a, hung_up=a.hung_up | {e.conn})
        return []

    def _refused(self, e: Refused) -> list[Action]:
        if self.armed is not None:
            self.armed = replace(self.armed, refused_connect=True)
        return []

    def _cut(self, e: Cut) -> list[Action]:
        a = self.armed
        if a is not None and e.conn in a.senders:
            self.armed = replace(a, cut=True)
        return []

    def _line(self, e: Line) -> list[Action]:
        a = self.armed
        if self.written == 0:
            return []  # a banner: nothing has been asked yet
        done_re = self.policy.done_re
        is_done = done_re is not None and done_re.search(e.text) is not None
        if is_done:
            self.done_lines += 1
        # with a done pattern only its lines speak for a command; without one, any line does
        refusal = self._refusal(e.text) if is_done or done_re is None else None
        if is_done and (a is None or self.done_lines != a.index):
            return self._line_for_settled(e, refusal)
        if a is None or (not is_done and refusal is None):
            return []
        if refusal is not None:
            by = "coordinator" if a.request_at is not None else "participant"
            return self._settle("fail", e.t, refusal=refusal, by=by)
        self.armed = replace(a, line=e.text.strip())
        return self._maybe_complete(e.t, "")

    def _hold(self, e: Hold) -> list[Action]:
        self.holds += 1
        if self.armed is not None:
            self.armed = replace(self.armed, held=True)
        return []

    def _release(self, e: Release) -> list[Action]:
        self.holds = max(0, self.holds - 1)
        if self.armed is not None and self.holds == 0:
            self.armed = replace(self.armed, held=False, released_at=e.t)
        return []

    def _killed(self, e: Killed) -> list[Action]:
        return self._settle("info", e.t, reason="participant killed")

    def _restarted(self, e: Restarted) -> list[Action]:
        self.written = self.done_lines = 0
        self.answered.clear()
        return []

    def _tick(self, e: Tick) -> list[Action]:
        return self._expire_all(e.t)

    # -- decisions --------------------------------------------------------------------------

    def _refusal(self, text: str) -> Optional[str]:
        refusal_re = self.policy.refusal_re
        if refusal_re is None or not refusal_re.search(text):
            return None
        return " ".join(text.split())[:200]

    def _maybe_complete(self, t: float, reply: str) -> list[Action]:
        a = self.armed
        assert a is not None
        how = self.policy.complete_on
        by_reply = a.replied and how in (REPLY, EITHER)
        by_line = a.line is not None and how in (LINE, EITHER)
        if a.line is not None and a.request_at is None:
            error = f"nothing reached the coordinator; participant said: {a.line[:200]}"
            return self._settle("fail", t, error=error)
        if not (by_reply or by_line):
            return []
        fields: dict[str, object] = {"request_at": a.request_at}
        if by_reply and reply.strip():
            fields["reply"] = " ".join(reply.split())[:200]
        if not by_reply and not a.replied and not any(text for _, text in a.replies):
            # the participant's own line, and not a byte from the coordinator: done, but not
            # acknowledged by the coordinator (a reply may still come: a late ack)
            fields["acknowledged"] = False
            fields["reason"] = "completed by the participant's line; no reply from the coordinator"
            self._listen(a)
        return self._settle("ok", t, **fields)

    def _listen(self, a: _Armed) -> None:
        """Keep listening for a late acknowledgement of `a` until its op_timeout."""
        self.unacked = (
            *self.unacked,
            _Unacked(a.op, a.index, a.senders, a.t0 + self.policy.op_timeout),
        )

    def _expire_all(self, t: float) -> list[Action]:
        self.unacked = tuple(u for u in self.unacked if t <= u.until)
        deadline = self.deadline()
        if deadline is None or t < deadline:
            return []
        return self._expire(t)

    def _expire(self, t: float) -> list[Action]:
        a = self.armed
        assert a is not None
        timeout = self.policy.op_timeout
        if a.request_at is None:
            if a.refused_connect:
                return self._settle(
                    "fail", t, error="every connection was refused; nothing reached the coordinator"
                )
            return self._settle(
                "fail", t, error=f"nothing reached the coordinator within {timeout:g} s"
            )
        if a.held:
            return self._settle("info", t, reason=f"no reply within {timeout:g} s during a pause")
        if a.cut:
            return self._settle("info", t, reason="connection cut by a partition before any reply")
        start = max(a.request_at, a.released_at or a.request_at)
        self._listen(a)
        return self._settle(
            "ok",
            t,
            acknowledged=False,
            request_at=a.request_at,
            reason=f"no acknowledgement by request + L ({start:.3f} + {self.policy.latency:g})"
            if t < a.t0 + timeout
            else f"no acknowledgement within op_timeout {timeout:g} s",
        )

    def _late_reply(self, e: Reply) -> list[Action]:
        a = self.armed
        if a is not None and e.conn in a.senders:
            return []  # the connection carries the next command now
        u = next((u for u in self.unacked if e.conn in u.senders and e.t <= u.until), None)
        if u is None:
            return []
        self.unacked = tuple(x for x in self.unacked if x is not u)
        return [LateAck(u.op, e.t, "reply")]

    def _line_for_settled(self, e: Line, refusal: Optional[str]) -> list[Action]:
        """A done line answering a command already settled: a late acknowledgement of an
        unacknowledged op, or its refusal after the fact."""
        answered = self.answered.get(self.done_lines)
        if answered is None:
            return []
        op, outcome = answered
        if outcome != "ok":
            return []
        if refusal is not None:
            return [Refusal(op, e.t, refusal)]
        u = next((u for u in self.unacked if u.op == op and e.t <= u.until), None)
        if u is not None:
            self.unacked = tuple(x for x in self.unacked if x is not u)
            return [LateAck(op, e.t, "line")]
        return []

    def _settle(self, outcome: str, t: float, **fields: object) -> list[Action]:
        a = self.armed
        if a is None:
            return []
        self.armed = None
        self.answered[a.index] = (a.op, outcome)
        if len(self.answered) > 64:
            self.answered.pop(min(self.answered))
        kept = tuple(
            (k, round(v, 6) if isinstance(v, float) else v)
            for k, v in fields.items()
            if v is not None
        )
        return [Settle(a.op, a.f, outcome, t, kept)]


_HANDLERS = {
    Invoke: OpMachine._invoke,
    Request: OpMachine._request,
    Reply: OpMachine._reply,
    Close: OpMachine._close,
    Hangup: OpMachine._hangup,
    Refused: OpMachine._refused,
    Cut: OpMachine._cut,
    Line: OpMachine._line,
    Hold: OpMachine._hold,
    Release: OpMachine._release,
    Killed: OpMachine._killed,
    Restarted: OpMachine._restarted,
    Tick: OpMachine._tick,
}

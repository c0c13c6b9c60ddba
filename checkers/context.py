"""What every rule reads about one trace (docs/rules.md, "The model"), built once and never
changed: participants, their membership timelines, the faults, the messages with their send
windows, and the delivery index. Rules are functions of a `Context`; pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from checkers.faults import FaultModel, Pause, extend_deadline, fault_model, merge_ops
from checkers.model import Message, Params
from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import Op, Trace
from checkers.verdict import Violation, fmt_t

ONLINE_ONLY = frozenset((ONLINE,))
OFFLINE_ONLY = frozenset((OFFLINE,))


@dataclass(frozen=True)
class Phantom:
    """Deliveries of a token to p that no msend explains (`reason`), at `times`."""

    participant: str
    token: str
    reason: str
    times: tuple[float, ...]


@dataclass(frozen=True)
class Pair:
    """A message m that participant p logged at least once: p's possible states during m's
    send window, and p's deliveries of m."""

    m: Message
    p: str
    tl: Timeline
    states: frozenset
    got: tuple[float, ...]


@dataclass(frozen=True)
class Context:
    """The read-only view of a trace that the rules judge."""

    trace: Trace
    p: Params
    names: tuple[str, ...]
    timelines: Mapping[str, Timeline]
    faults: FaultModel
    pauses: Mapping[str, tuple[Pause, ...]]
    sends: Mapping[str, Op]  # token -> its msend
    messages: tuple[Message, ...]  # msends that did not fail
    delivered: Mapping[tuple[str, str], tuple[float, ...]]  # (p, token) -> times, no phantoms
    phantoms: tuple[Phantom, ...]
    pairs: tuple[Pair, ...]  # every delivered (message, participant), states computed once

    def message(self, token: str) -> Optional[Message]:
        op = self.sends.get(token)
        return None if op is None or op.outcome == "fail" else _message(op, self.timelines, self.p)

    def deadline(self, p: str, start: float, base: float) -> tuple[float, tuple[Pause, ...]]:
        """Delivery deadline `base` (s1 + L or r1 + L) moved past the pauses of p or of the
        coordinator that meet [start, deadline]; and those pauses."""
        pauses = self.pauses.get(p)
        if not pauses:
            return base, ()
        return extend_deadline(pauses, start, base, self.p.latency)


def build(trace: Trace, params: Params) -> Context:
    """The context of `trace` under `params`."""
    by_participant: dict[str, list[Op]] = {}
    for op in trace.ops:
        by_participant.setdefault(op.participant, []).append(op)
    receivers = (d.participant for d in trace.deliveries)
    names = tuple(dict.fromkeys([*trace.participants, *by_participant, *receivers]))
    faults = fault_model(trace.faults, params.horizon)
    timelines = {
        p: Timeline(p, merge_ops(by_participant.get(p, []), faults.kills.get(p, ()))) for p in names
    }
    sends = {op.message: op for op in trace.ops if op.f == "msend" and op.message}
    messages = tuple(
        _message(op, timelines, params)
        for op in trace.ops
        if op.f == "msend" and op.outcome != "fail"
    )
    delivered, phantoms = _index(trace, sends)
    by_token = {m.token: m for m in messages}
    pairs = tuple(
        Pair(m, p, timelines[p], timelines[p].states(m.s0, m.s1)[0], got)
        for (p, token), got in delivered.items()
        if (m := by_token.get(token)) is not None
    )
    return Context(
        trace=trace,
        p=params,
        names=names,
        timelines=timelines,
        faults=faults,
        pauses={p: faults.pauses_for(p) for p in names},
        sends=sends,
        messages=messages,
        delivered=delivered,
        phantoms=phantoms,
        pairs=pairs,
    )


def _message(op: Op, timelines: Mapping[str, Timeline], params: Params) -> Message:
    s1 = op.t1 if op.t1 is not None else params.horizon
    states, _ = timelines[op.participant].states(op.t0, s1)
    return Message(op.message or "", op.participant, op.t0, s1, op.ok and states == ONLINE_ONLY)


def _index(
    trace: Trace, sends: Mapping[str, Op]
) -> tuple[dict[tuple[str, str], tuple[float, ...]], tuple[Phantom, ...]]:
    """Deliveries by (participant, token), and those no msend explains."""
    delivered: dict[tuple[str, str], list[float]] = {}
    phantoms: dict[tuple[str, str, str], list[float]] = {}
    for d in trace.deliveries:
        op = sends.get(d.message)
        if op is None:
            reason = "no msend ever sent this token"
        elif op.outcome == "fail":
            reason = f"its msend (op {op.id}, invoked {fmt_t(op.invoked)}) failed"
        elif d.t < op.invoked:
            reason = f"delivered before its msend was invoked at {fmt_t(op.invoked)}"
        else:
            delivered.setdefault((d.participant, d.message), []).append(d.t)
            continue
        phantoms.setdefault((d.participant, d.message, reason), []).append(d.t)
    return (
        {k: tuple(v) for k, v in delivered.items()},
        tuple(Phantom(p, token, reason, tuple(t)) for (p, token, reason), t in phantoms.items()),
    )


# --- wording shared by the rules' explanations ----------------------------------------------


def state_word(states: frozenset) -> str:
    if len(states) == 1:
        return next(iter(states))
    return " or ".join(s for s in (ONLINE, OFFLINE, OUT) if s in states) + " (uncertain)"


def times_text(times: Sequence[float]) -> str:
    return ", ".join(fmt_t(t) for t in times)


def head(m: Message, p: str, states: frozenset) -> str:
    """Start of a why: who, in which state(s), at which message and window."""
    return f"p{p} {state_word(states)} at {m.token} (sent [{fmt_t(m.s0)}, {fmt_t(m.s1)}])"


def killed(tl: Timeline, s0: float) -> str:
    """The suffix " (killed at k)" when a kill left p offline at s0, else ""."""
    k = tl.killed_before(s0)
    return "" if k is None else f" (killed at {fmt_t(k.t0)})"


def by(label: str, deadline: float, used: tuple[Pause, ...]) -> str:
    """The text "label = deadline", or the extended deadline and the pauses that moved it."""
    if not used:
        return f"{label} = {fmt_t(deadline)}"
    pauses = ", ".join(x.describe() for x in used)
    return f"{fmt_t(deadline)} ({label} extended to resume + L: {pauses})"


def violation(
    rule: str,
    p: str,
    m: Optional[Message],
    token: Optional[str],
    times: tuple[float, ...] | list[float],
    why: str,
    at: float,
) -> Violation:
    sent = (m.s0, m.s1) if m is not None else None
    return Violation(rule, p, token, sent, tuple(times), why, at)

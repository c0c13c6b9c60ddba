"""What every rule reads about one trace (docs/rules.md, "The model"), built once and never
changed: participants, their membership timelines, the faults, the messages with their send
windows, and the delivery index. Rules are functions of a `Context`; pure."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from checkers.faults import FaultModel, Pause, extend_deadline, fault_model, merge_ops
from checkers.model import Message, Params
from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import Deliveries, Delivery, Op, Trace
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

    __slots__ = ("m", "p", "tl", "states", "got")
    m: Message
    p: str
    tl: Timeline
    states: frozenset
    got: tuple[float, ...]


@dataclass(frozen=True)
class Context:
    """The read-only view of a trace that the rules judge. Deliveries are indexed once, in one
    pass: `receivers` says who logged each message; `pairs` holds the delivered (m, p) that a
    delivery rule must look at: p certainly not online at m, p got m more than once, or p
    certainly online and m first logged more than L after s1. Every other pair (logged once,
    p maybe online at m, and in time if certainly) breaks no delivery rule: they fire only
    when p was certainly not online (no-post-deregister, no-offline-delivery's pairs,
    no-expired), on a repeat (no-duplicate) or on a late first delivery to a member certainly
    online (immediacy)."""

    trace: Trace
    p: Params
    names: tuple[str, ...]
    timelines: Mapping[str, Timeline]
    faults: FaultModel
    pauses: Mapping[str, tuple[Pause, ...]]
    sends: Mapping[str, Op]  # token -> its msend
    messages: tuple[Message, ...]  # msends that did not fail
    receivers: Mapping[str, int]  # token -> bit set of the `names` indexes that logged it
    phantoms: tuple[Phantom, ...]
    phantom_lines: frozenset[int]  # the trace lines of phantom deliveries
    pairs: tuple[Pair, ...]  # the delivered (m, p) the delivery rules look at, states computed once
    delivered_pairs: int  # (m, p) logged at least once, phantoms aside
    delivered_total: int  # deliveries that are not phantoms
    sequences: Mapping[str, list[str]]  # per participant, messages in order of first delivery

    def not_logged(self, token: str) -> Iterator[str]:
        """The participants (in `names` order) that never logged `token` (phantoms aside)."""
        missing = ~self.receivers.get(token, 0) & ((1 << len(self.names)) - 1)
        while missing:
            low = missing & -missing
            yield self.names[low.bit_length() - 1]
            missing ^= low

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

    def deliveries(self) -> Iterator[tuple[float, str, str]]:
        """(t, p, token) of every delivery that is not a phantom, in trace order."""
        phantom = self.phantom_lines
        for t, p, token, line in _columns(self.trace.deliveries):
            if line not in phantom:
                yield t, p, token


def build(trace: Trace, params: Params) -> Context:
    """The context of `trace` under `params`."""
    by_participant: dict[str, list[Op]] = {}
    for op in trace.ops:
        by_participant.setdefault(op.participant, []).append(op)
    names = tuple(dict.fromkeys([*trace.participants, *by_participant, *_receivers(trace)]))
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
    index = _Index(names, timelines, sends, {m.token: m for m in messages}, params.latency)
    index.scan(trace.deliveries)
    return Context(
        trace=trace,
        p=params,
        names=names,
        timelines=timelines,
        faults=faults,
        pauses={p: faults.pauses_for(p) for p in names},
        sends=sends,
        messages=messages,
        receivers=index.receivers,
        phantoms=index.phantom_list(),
        phantom_lines=frozenset(index.phantom_lines),
        pairs=index.pair_list(trace),
        delivered_pairs=index.pairs,
        delivered_total=index.total,
        sequences=index.ordered(),
    )


def _receivers(trace: Trace) -> Iterable[str]:
    """Every participant that logged something, in order of its first delivery."""
    if isinstance(trace.deliveries, Deliveries):
        return trace.deliveries.names
    return (d.participant for d in trace.deliveries)


def _columns(deliveries: Sequence[Delivery]) -> Iterator[tuple[float, str, str, int]]:
    """(t, p, token, line) of each delivery, from the reader's columns when it has them."""
    if isinstance(deliveries, Deliveries):
        return deliveries.columns()
    return iter(deliveries)


def _message(op: Op, timelines: Mapping[str, Timeline], params: Params) -> Message:
    s1 = op.t1 if op.t1 is not None else params.horizon
    states, _ = timelines[op.participant].states(op.t0, s1)
    return Message(op.message or "", op.participant, op.t0, s1, op.ok and states == ONLINE_ONLY)


class _Index:
    """The one pass over the deliveries (see `Context`): phantoms apart, who logged what, the
    pairs worth a rule's look, and each participant's order of first deliveries."""

    def __init__(
        self,
        names: tuple[str, ...],
        timelines: Mapping[str, Timeline],
        sends: Mapping[str, Op],
        messages: Mapping[str, Message],
        latency: float,
    ) -> None:
        self.bits = {p: 1 << i for i, p in enumerate(names)}
        self.timelines, self.sends, self.messages = timelines, sends, messages
        self.latency = latency
        self.receivers: dict[str, int] = {}
        self.kept: dict[tuple[str, str], tuple[frozenset, list[float]]] = {}
        self.repeated: dict[tuple[str, str], list[float]] = {}  # later deliveries of the rest
        self.phantoms: dict[tuple[str, str, str], list[float]] = {}
        self.phantom_lines: list[int] = []
        self.firsts: dict[str, tuple[list[float], list[str]]] = {p: ([], []) for p in names}
        self.ties: dict[str, list[int]] = {}  # p -> i where p's first deliveries i-1, i tie
        self.pairs = 0
        self.total = 0

    def scan(self, deliveries: Sequence[Delivery]) -> None:
        """Index every delivery (one tight loop: there can be millions)."""
        bits, receivers, kept, repeated = self.bits, self.receivers, self.kept, self.repeated
        firsts, latency = self.firsts, self.latency
        sent = {  # token -> (message, invoke time): the msends that did not fail
            token: (m, self.sends[token].invoked) for token, m in self.messages.items()
        }
        windows = {p: (tl.prefmax, tl.t0s, tl.settled, tl) for p, tl in self.timelines.items()}
        for t, p, token, line in _columns(deliveries):
            found = sent.get(token)
            if found is None or t < found[1]:
                self.phantom(t, p, token, line, self.sends.get(token))
                continue
            bit, seen = bits[p], receivers.get(token, 0)
            if seen & bit:
                key = (p, token)
                first = kept.get(key)
                (first[1] if first is not None else repeated.setdefault(key, [])).append(t)
                continue
            receivers[token] = seen | bit
            times, tokens = firsts[p]
            if times and times[-1] == t:
                self.ties.setdefault(p, []).append(len(times))
            times.append(t)
            tokens.append(token)
            m = found[0]
            prefmax, t0s, settled, tl = windows[p]  # tl.states(m.s0, m.s1), its common case here
            k = bisect_right(t0s, m.s1)
            quiet = bisect_left(prefmax, m.s0) >= k  # no op window meets m's
            states = settled[k][0] if quiet else tl.states(m.s0, m.s1)[0]
            if ONLINE not in states or (t - m.s1 > latency and states == ONLINE_ONLY):
                kept[(p, token)] = (states, [t])
        self.total = len(deliveries) - len(self.phantom_lines)
        self.pairs = sum(len(times) for times, _ in firsts.values())

    def phantom(self, t: float, p: str, token: str, line: int, op: Optional[Op]) -> None:
        if op is None:
            reason = "no msend ever sent this token"
        elif op.outcome == "fail":
            reason = f"its msend (op {op.id}, invoked {fmt_t(op.invoked)}) failed"
        else:
            reason = f"delivered before its msend was invoked at {fmt_t(op.invoked)}"
        self.phantoms.setdefault((p, token, reason), []).append(t)
        self.phantom_lines.append(line)

    def phantom_list(self) -> tuple[Phantom, ...]:
        return tuple(Phantom(p, m, why, tuple(t)) for (p, m, why), t in self.phantoms.items())

    def pair_list(self, trace: Trace) -> tuple[Pair, ...]:
        """The kept pairs, then those delivered more than once (their first delivery found by
        a second pass, made only when there are some)."""
        found = [
            Pair(self.messages[token], p, self.timelines[p], states, tuple(got))
            for (p, token), (states, got) in self.kept.items()
        ]
        if self.repeated:
            firsts: dict[tuple[str, str], float] = {}
            phantom = frozenset(self.phantom_lines)
            for t, p, token, line in _columns(trace.deliveries):
                key = (p, token)
                if key in self.repeated and key not in firsts and line not in phantom:
                    firsts[key] = t
            for (p, token), later in self.repeated.items():
                m, tl = self.messages[token], self.timelines[p]
                got = (firsts[(p, token)], *later)
                found.append(Pair(m, p, tl, tl.states(m.s0, m.s1)[0], got))
        return tuple(found)

    def ordered(self) -> dict[str, list[str]]:
        """Per participant, its messages by time of first delivery (ties by token)."""
        for p, at in self.ties.items():
            tokens = self.firsts[p][1]
            i = 0
            while i < len(at):  # each run of equal times: at[i] - 1 .. at[j]
                j = i
                while j + 1 < len(at) and at[j + 1] == at[j] + 1:
                    j += 1
                lo, hi = at[i] - 1, at[j] + 1
                tokens[lo:hi] = sorted(tokens[lo:hi])
                i = j + 1
        return {p: tokens for p, (_, tokens) in self.firsts.items()}


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

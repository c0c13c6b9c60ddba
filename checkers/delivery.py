"""The delivery rules (docs/rules.md): each a function of a read-only `Context` giving its
violations, how many items it examined, and notes. A rule fires for (m, p) only when every
state p may have been in during m's send window demands it; deliveries of unknown or failed
tokens are phantoms and left out of the other rules, so one fault is not reported twice.
Faults enter through the context: a kill is a disconnect at that instant (messages possibly
in flight at it are exempt from no-miss, and noted), and a pause of p or of the coordinator
moves a delivery deadline to resume + L."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Optional

from checkers.context import (
    OFFLINE_ONLY,
    ONLINE_ONLY,
    Context,
    by,
    head,
    killed,
    times_text,
    violation,
)
from checkers.model import Message, RuleOutput
from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import Op
from checkers.verdict import Violation, fmt_t


def _pairs(ctx: Context) -> Iterator[tuple[Message, str, Timeline, frozenset, tuple[float, ...]]]:
    """(m, p, p's timeline, p's possible states at m, p's deliveries of m) of every message
    p logged at least once."""
    for x in ctx.pairs:
        yield x.m, x.p, x.tl, x.states, x.got


def no_phantom(ctx: Context) -> RuleOutput:
    found = tuple(
        violation(
            "no-phantom",
            x.participant,
            ctx.message(x.token),
            x.token,
            x.times,
            f"p{x.participant} got {x.token} at {times_text(x.times)} but {x.reason}",
            x.times[0],
        )
        for x in ctx.phantoms
    )
    return RuleOutput(found, len(ctx.trace.deliveries))


def no_duplicate(ctx: Context) -> RuleOutput:
    found = []
    for m, p, _, _, got in _pairs(ctx):
        if len(got) > 1:
            why = f"p{p} got {m.token} {len(got)} times, at {times_text(got)}"
            found.append(violation("no-duplicate", p, m, m.token, got, why, got[1]))
    return RuleOutput(tuple(found), ctx.delivered_pairs)


def no_post_deregister(ctx: Context) -> RuleOutput:
    found = []
    for m, p, tl, states, got in _pairs(ctx):
        v = _post_deregister(m, p, tl, states, got)
        if v is not None:
            found.append(v)
    return RuleOutput(tuple(found), ctx.delivered_pairs)


def _post_deregister(
    m: Message, p: str, tl: Timeline, states: frozenset, got: tuple[float, ...]
) -> Optional[Violation]:
    bad = set(got)
    parts = []
    for state in sorted(states):
        if state == ONLINE:
            return None
        if state == OUT:
            parts.append("not a member (never registered, or deregistered) when it was sent")
            continue
        e = tl.period_end(m.s0)
        if e is None or e.f != "deregister" or not e.ok:
            return None
        bad &= {t for t in got if t >= e.t0}
        parts.append(
            f"its offline period ended with deregister invoked {fmt_t(e.t0)} "
            "(a participant that registers again is a new entrant)"
        )
    times = sorted(bad)
    if not times:
        return None
    why = f"{head(m, p, states)}: {'; '.join(parts)}; delivered at {times_text(times)}"
    return violation("no-post-deregister", p, m, m.token, times, why, times[0])


def _early(m: Message, tl: Timeline, got: tuple[float, ...]) -> list[float]:
    """Deliveries of m to p, certainly offline at m, before its offline period ended."""
    e = tl.period_end(m.s0)
    end_t0 = e.t0 if e is not None else float("inf")
    return [t for t in got if t < end_t0]


def no_offline_delivery(ctx: Context) -> RuleOutput:
    """Of a message sent while p was certainly offline, a delivery before the period ended;
    and any other delivery at t while p was known offline over [t - tol, t]."""
    found = []
    flagged: set[tuple[str, str, float]] = set()
    for m, p, tl, states, got in _pairs(ctx):
        if states != OFFLINE_ONLY:
            continue
        early = _early(m, tl, got)
        if early:
            e = tl.period_end(m.s0)
            ended = f"{e.f} invoked {fmt_t(e.t0)}" if e is not None else "no reconnect"
            why = (
                f"{head(m, p, states)}{killed(tl, m.s0)}: delivered at {times_text(early)} "
                f"before the offline period ended ({ended})"
            )
            found.append(violation("no-offline-delivery", p, m, m.token, early, why, early[0]))
            flagged.update((p, m.token, t) for t in early)
    found += _known_offline(ctx, flagged)
    return RuleOutput(tuple(found), ctx.delivered_total)


def _known_offline(ctx: Context, flagged: set[tuple[str, str, float]]) -> list[Violation]:
    tol = ctx.p.tol
    spans = {p: tl.offline_spans(tol) for p, tl in ctx.timelines.items()}
    hits: dict[tuple[str, str], list[float]] = {}
    for t, p, token in ctx.deliveries():
        starts, ends = spans[p]
        i = bisect_left(starts, t) - 1
        if i < 0 or t >= ends[i]:
            continue  # p cannot have been known offline then: no need to ask its timeline
        if ctx.timelines[p].states(t - tol, t)[0] == OFFLINE_ONLY and (p, token, t) not in flagged:
            hits.setdefault((p, token), []).append(t)
    windows = {m.token: m for m in ctx.messages} if hits else {}
    found = []
    for (p, token), seen in hits.items():
        tl = ctx.timelines[p]
        times = tuple(seen)
        d = tl.last_disconnect(times[0] - tol)
        e = tl.next_ender(times[0])
        done = "killed at" if d is not None and d.f == "kill" else "disconnect completed"
        since = (
            f"{done} {fmt_t(d.t1)} + tol {tol} = {fmt_t(d.t1 + tol)} < {fmt_t(times[0])}"
            if d is not None and d.t1 is not None
            else "offline"
        )
        until = f"next {e.f} invoked {fmt_t(e.t0)}" if e is not None else "no reconnect after it"
        why = f"p{p} got {token} at {times_text(times)} while known offline: {since}, {until}"
        found.append(
            violation("no-offline-delivery", p, windows.get(token), token, times, why, times[0])
        )
    return found


def no_expired(ctx: Context) -> RuleOutput:
    td, tol = ctx.p.td, ctx.p.tol
    found = []
    for m, p, tl, states, got in _pairs(ctx):
        if states != OFFLINE_ONLY:
            continue
        e = tl.period_end(m.s0)
        if e is None or e.f != "reconnect":
            continue
        late = [t for t in got if t >= e.t0]
        gap = e.t0 - m.s1
        if late and gap > td + tol:
            why = (
                f"{head(m, p, states)}{killed(tl, m.s0)}: reconnect invoked {fmt_t(e.t0)}: "
                f"{fmt_t(e.t0)} - {fmt_t(m.s1)} = {gap:.3f} > td {td} + tol {tol}, yet "
                f"delivered at {times_text(late)}"
            )
            found.append(violation("no-expired", p, m, m.token, late, why, late[0]))
    return RuleOutput(tuple(found), ctx.delivered_pairs)


def immediacy(ctx: Context) -> RuleOutput:
    lat = ctx.p.latency
    found = []
    for m, p, tl, states, got in _pairs(ctx):
        first = got[0]
        if states != ONLINE_ONLY or not m.owed or first - m.s1 <= lat:
            continue
        deadline, used = ctx.deadline(p, m.s0, m.s1 + lat)
        if used and first <= deadline:
            continue
        x = tl.first_exit(m.s0)
        if x is not None and x.t0 <= deadline:
            continue
        late = f"{fmt_t(first)} - {fmt_t(m.s1)} = {first - m.s1:.3f} > L {lat}"
        if used:
            late += f", and after the deadline {by('s1 + L', deadline, used)}"
        why = (
            f"{head(m, p, states)}: first delivery {late}, "
            f"no disconnect/deregister invoked by {fmt_t(deadline)}"
        )
        found.append(violation("immediacy", p, m, m.token, [first], why, first))
    return RuleOutput(tuple(found), ctx.delivered_pairs)


def no_miss(ctx: Context) -> RuleOutput:
    """m owed to p and never delivered; the notes name each kill and the messages it exempted
    (possibly in flight when p died)."""
    obligations = _Obligations(ctx)
    found = []
    for m in ctx.messages:
        if not m.owed:
            continue
        for p in ctx.not_logged(m.token):
            v = obligations.missing(m, p)
            if v is not None:
                found.append(v)
    return RuleOutput(tuple(found), len(ctx.messages) * len(ctx.names), obligations.kill_notes())


class _Obligations:
    """Whether p's states at m demand a delivery of m; records the kills that exempt one."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.exempt: dict[Op, list[str]] = {}  # kill -> tokens it excused

    def missing(self, m: Message, p: str) -> Optional[Violation]:
        tl = self.ctx.timelines[p]
        states, _ = tl.states(m.s0, m.s1)
        reasons = []
        for state in sorted(states):
            reason = self.owed(m, tl, state)
            if reason is None:
                return None
            reasons.append(reason if len(states) == 1 else f"if {state}: {reason}")
        why = f"{head(m, p, states)}: {'; '.join(reasons)}; never delivered"
        return violation("no-miss", p, m, m.token, [], why, m.s1)

    def owed(self, m: Message, tl: Timeline, state: str) -> Optional[str]:
        """Why state `state` of p at m demands a delivery of m, or None if it does not."""
        ctx = self.ctx
        if state == OUT:
            return None
        if state == OFFLINE:
            e = self.owing_reconnect(m, tl, tl.period_end(m.s0))
            if e is None or e.t1 is None:
                return None
            k = tl.killed_before(m.s0)
            since = "" if k is None else f"offline since killed at {fmt_t(k.t0)}; "
            return (
                f"{since}reconnected [{fmt_t(e.t0)}, {fmt_t(e.t1)}]: {fmt_t(e.t1)} - "
                f"{fmt_t(m.s0)} = {e.t1 - m.s0:.3f} <= td {ctx.p.td} - tol {ctx.p.tol}"
            )
        deadline, used = ctx.deadline(tl.participant, m.s0, m.s1 + ctx.p.latency)
        x = tl.first_exit(m.s0)
        if x is None or x.t0 > deadline:
            if ctx.p.horizon < deadline:
                return None
            return f"no disconnect/deregister invoked by {by('s1 + L', deadline, used)}"
        if x.f == "deregister":
            return None
        if x.f == "kill":
            self.exempt.setdefault(x, []).append(m.token)
            return None
        e = self.owing_reconnect(m, tl, tl.next_ender(x.t0))
        if e is None or e.t1 is None:
            return None
        return (
            f"disconnect invoked {fmt_t(x.t0)} but reconnect completed {fmt_t(e.t1)} <= "
            f"s0 + td - tol = {fmt_t(m.s0 + ctx.p.td - ctx.p.tol)}"
        )

    def owing_reconnect(self, m: Message, tl: Timeline, e: Optional[Op]) -> Optional[Op]:
        """The reconnect at which m is owed to p, starting from period end `e`: an ok
        reconnect with r1 - s0 <= td - tol. If p invoked disconnect within L of it (the
        delivery may have been in flight), the obligation moves to the next such reconnect;
        None when there is none, or the trace ends before r1 + L."""
        ctx = self.ctx
        limit = m.s0 + ctx.p.td - ctx.p.tol
        while e is not None and e.f == "reconnect" and e.ok and e.t1 is not None:
            if e.t1 > limit:
                return None
            x = tl.next_exit(e.t0)
            deadline, _ = ctx.deadline(tl.participant, e.t0, e.t1 + ctx.p.latency)
            if x is None or x.t0 > deadline:
                return e if ctx.p.horizon >= deadline else None
            if x.f == "deregister":
                return None
            if x.f == "kill":
                self.exempt.setdefault(x, []).append(m.token)
                return None
            e = tl.next_ender(x.t0)
        return None

    def kill_notes(self) -> tuple[str, ...]:
        notes = []
        for p, kills in self.ctx.faults.kills.items():
            for kill in kills:
                how = "restarted while alive" if str(kill.id).startswith("restart") else "killed"
                line = f"p{p} {how} at {fmt_t(kill.t0)}: a disconnect at that instant"
                tokens = self.exempt.get(kill, [])
                if tokens:
                    shown = ", ".join(tokens[:5]) + (", ..." if len(tokens) > 5 else "")
                    line += (
                        f"; {len(tokens)} message(s) possibly in flight when it died were "
                        f"never delivered, exempt from no-miss: {shown}"
                    )
                notes.append(line)
        return tuple(notes)


def port_released(ctx: Context) -> RuleOutput:
    probes = [x for x in ctx.trace.probes if x.kind == "port_released"]
    found = tuple(
        violation(
            "port-released",
            x.participant,
            None,
            None,
            [],
            f"port {x.port} of p{x.participant} could not be bound at {fmt_t(x.t)}, right "
            "after its disconnect/deregister completed",
            x.t,
        )
        for x in probes
        if not x.ok
    )
    return RuleOutput(found, len(probes))


def thread_b_ready(ctx: Context) -> RuleOutput:
    probes = [x for x in ctx.trace.probes if x.kind == "listening"]
    found = tuple(
        violation(
            "thread-b-ready",
            x.participant,
            None,
            None,
            [],
            f"port {x.port} was not listening when p{x.participant}'s register/reconnect "
            f"request (op {x.op}) reached the coordinator at {fmt_t(x.t)}",
            x.t,
        )
        for x in probes
        if not x.ok
    )
    return RuleOutput(found, len(probes))

"""The eight rules of SPEC §6 as pure functions from a parsed trace to violations.

Interpretation (documented in the README too):
- A message m is a non-failed msend with window [s0, s1] (s1 = trace end when it never
  completed). A failed msend did not happen: delivering its token is a phantom.
- Each participant's possible states during [s0, s1] come from `timeline.Timeline`; a rule
  fires for (m, p) only when every possible state demands it (for delivery rules: only the
  deliveries that every possible state condemns are reported).
- Obligations to deliver (no-miss, immediacy) exist only when the msend completed ok (one of
  unknown outcome may never have taken effect) and the sender was online at m in every
  possible state (otherwise a correct coordinator may have refused the msend), and only when
  the trace lasted long enough to see the delivery (deadline + L <= trace end).
- An offline period holding at m ends with p's first reconnect/deregister that was not
  certainly over before s0.
- Deliveries before s0 (and of unknown or failed tokens) are phantoms and are left out of
  the other rules, so one fault is not reported twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import Op, Trace
from checkers.verdict import RULES, Violation, fmt_t

PAIR_RULES = ("no-expired", "no-duplicate", "no-post-deregister", "immediacy")
_ONLINE = frozenset((ONLINE,))
_OFFLINE = frozenset((OFFLINE,))


@dataclass(frozen=True)
class Params:
    """Rule parameters: td, tolerance, latency bound, and the trace's end time."""

    td: float
    tol: float
    latency: float
    horizon: float


@dataclass(frozen=True)
class Message:
    """A multicast that happened (or may have): token, sender, send window, and whether it
    certainly happened from a member (msend ok, sender online in every possible state): only
    then is a delivery owed."""

    token: str
    sender: str
    s0: float
    s1: float
    owed: bool


@dataclass(frozen=True)
class Findings:
    """Violations and per-rule examined counts."""

    violations: tuple[Violation, ...]
    checked: dict
    notes: tuple[str, ...]
    participants: int
    messages: int
    sequences: dict
    windows: dict


def _state_word(states: frozenset) -> str:
    if len(states) == 1:
        return next(iter(states))
    return " or ".join(s for s in (ONLINE, OFFLINE, OUT) if s in states) + " (uncertain)"


def _ts(times: list[float]) -> str:
    return ", ".join(fmt_t(t) for t in times)


class _Judge:
    """Evaluates every rule over one trace; `run()` returns the findings."""

    def __init__(self, trace: Trace, params: Params) -> None:
        self.trace = trace
        self.p = params
        by_participant: dict[str, list[Op]] = {}
        for op in trace.ops:
            by_participant.setdefault(op.participant, []).append(op)
        receivers = (d.participant for d in trace.deliveries)
        self.names = list(dict.fromkeys([*trace.participants, *by_participant, *receivers]))
        names = self.names
        self.timelines = {p: Timeline(p, by_participant.get(p, [])) for p in names}
        self.sends = {op.message: op for op in trace.ops if op.f == "msend"}
        self.messages = [
            self._message(op) for op in trace.ops if op.f == "msend" and op.outcome != "fail"
        ]
        self.violations: list[Violation] = []
        self.checked = dict.fromkeys(RULES, 0)  # the rest is counted in run()
        self.checked["no-phantom"] = len(trace.deliveries)
        self.checked["port-released"] = len(trace.probes)
        self.delivered: dict[tuple[str, str], list[float]] = {}
        self.flagged: set[tuple[str, str, float]] = set()

    def _message(self, op: Op) -> Message:
        s1 = op.t1 if op.t1 is not None else self.p.horizon
        states, _ = self.timelines[op.participant].states(op.t0, s1)
        return Message(op.message or "", op.participant, op.t0, s1, op.ok and states == _ONLINE)

    def add(
        self,
        rule: str,
        p: str,
        m: Optional[Message],
        token: Optional[str],
        times: list[float],
        why: str,
        at: float,
    ) -> None:
        sent = (m.s0, m.s1) if m is not None else None
        self.violations.append(Violation(rule, p, token, sent, tuple(times), why, at))

    # -- phantoms and the delivery index -------------------------------------------------

    def index_deliveries(self) -> None:
        phantoms: dict[tuple[str, str, str], list[float]] = {}
        for d in self.trace.deliveries:
            op = self.sends.get(d.message)
            if op is None:
                reason = "no msend ever sent this token"
            elif op.outcome == "fail":
                reason = f"its msend (op {op.id}, invoked {fmt_t(op.t0)}) failed"
            elif d.t < op.t0:
                reason = f"delivered before its msend was invoked at {fmt_t(op.t0)}"
            else:
                self.delivered.setdefault((d.participant, d.message), []).append(d.t)
                continue
            phantoms.setdefault((d.participant, d.message, reason), []).append(d.t)
        for (p, token, reason), times in phantoms.items():
            op = self.sends.get(token)
            sent = None if op is None or op.outcome == "fail" else self._message(op)
            why = f"p{p} got {token} at {_ts(times)} but {reason}"
            self.add("no-phantom", p, sent, token, times, why, times[0])

    # -- per (message, participant) rules -------------------------------------------------

    def judge_pair(self, m: Message, p: str) -> None:
        tl = self.timelines[p]
        states, _ = tl.states(m.s0, m.s1)
        got = self.delivered.get((p, m.token))
        if not got:
            if m.owed:
                self.no_miss(m, p, tl, states)
            return
        if len(got) == 1 and states == _ONLINE and got[0] - m.s1 <= self.p.latency:
            return  # the common case: nothing below can fire
        if len(got) > 1:
            why = f"p{p} got {m.token} {len(got)} times, at {_ts(got)}"
            self.add("no-duplicate", p, m, m.token, got, why, got[1])
        self.post_deregister(m, p, tl, states, got)
        if states == _OFFLINE:
            self.offline_delivery(m, p, tl, got, states)
        if states == _ONLINE:
            self.immediacy(m, p, tl, got, states)

    @staticmethod
    def head(m: Message, p: str, states: frozenset) -> str:
        """Start of a why: who, in which state(s), at which message and window."""
        return f"p{p} {_state_word(states)} at {m.token} (sent [{fmt_t(m.s0)}, {fmt_t(m.s1)}])"

    def no_miss(self, m: Message, p: str, tl: Timeline, states: frozenset) -> None:
        reasons = []
        for state in sorted(states):
            reason = self.owed(m, tl, state)
            if reason is None:
                return
            reasons.append(reason if len(states) == 1 else f"if {state}: {reason}")
        why = f"{self.head(m, p, states)}: {'; '.join(reasons)}; never delivered"
        self.add("no-miss", p, m, m.token, [], why, m.s1)

    def owed(self, m: Message, tl: Timeline, state: str) -> Optional[str]:
        """Why state `state` of p at m demands a delivery of m, or None if it does not."""
        lat = self.p.latency
        if state == OUT:
            return None
        if state == OFFLINE:
            e = self.owing_reconnect(m, tl, tl.period_end(m.s0))
            if e is None or e.t1 is None:
                return None
            return (
                f"reconnected [{fmt_t(e.t0)}, {fmt_t(e.t1)}]: {fmt_t(e.t1)} - {fmt_t(m.s0)} = "
                f"{e.t1 - m.s0:.3f} <= td {self.p.td} - tol {self.p.tol}"
            )
        deadline = m.s1 + lat
        x = tl.first_exit(m.s0)
        if x is None or x.t0 > deadline:
            if self.p.horizon < deadline:
                return None
            return f"no disconnect/deregister invoked by s1 + L = {fmt_t(deadline)}"
        if x.f == "deregister":
            return None
        e = self.owing_reconnect(m, tl, tl.next_ender(x.t0))
        if e is None or e.t1 is None:
            return None
        return (
            f"disconnect invoked {fmt_t(x.t0)} but reconnect completed {fmt_t(e.t1)} <= "
            f"s0 + td - tol = {fmt_t(m.s0 + self.p.td - self.p.tol)}"
        )

    def owing_reconnect(self, m: Message, tl: Timeline, e: Optional[Op]) -> Optional[Op]:
        """The reconnect at which m is owed to p, starting from period end `e`: an ok
        reconnect with r1 - s0 <= td - tol. If p invoked disconnect within L of it (the
        delivery may have been in flight), the obligation moves to the next such reconnect;
        None when there is none, or the trace ends before r1 + L."""
        limit = m.s0 + self.p.td - self.p.tol
        while e is not None and e.f == "reconnect" and e.ok and e.t1 is not None:
            if e.t1 > limit:
                return None
            x = tl.next_exit(e.t0)
            if x is None or x.t0 > e.t1 + self.p.latency:
                return e if self.p.horizon >= e.t1 + self.p.latency else None
            if x.f == "deregister":
                return None
            e = tl.next_ender(x.t0)
        return None

    def post_deregister(
        self, m: Message, p: str, tl: Timeline, states: frozenset, got: list[float]
    ) -> None:
        bad = set(got)
        parts = []
        for state in sorted(states):
            if state == ONLINE:
                return
            if state == OUT:
                parts.append("not a member (never registered, or deregistered) when it was sent")
                continue
            e = tl.period_end(m.s0)
            if e is None or e.f != "deregister" or not e.ok:
                return
            bad &= {t for t in got if t >= e.t0}
            parts.append(
                f"its offline period ended with deregister invoked {fmt_t(e.t0)} "
                "(a participant that registers again is a new entrant)"
            )
        times = sorted(bad)
        if not times:
            return
        why = f"{self.head(m, p, states)}: {'; '.join(parts)}; delivered at {_ts(times)}"
        self.add("no-post-deregister", p, m, m.token, times, why, times[0])

    def offline_delivery(
        self, m: Message, p: str, tl: Timeline, got: list[float], states: frozenset
    ) -> None:
        """p certainly offline at m: split its deliveries around the offline period's end."""
        td, tol = self.p.td, self.p.tol
        e = tl.period_end(m.s0)
        end_t0 = e.t0 if e is not None else float("inf")
        early = [t for t in got if t < end_t0]
        if early:
            ended = f"{e.f} invoked {fmt_t(e.t0)}" if e is not None else "no reconnect"
            head = self.head(m, p, states)
            why = f"{head}: delivered at {_ts(early)} before the offline period ended ({ended})"
            self.add("no-offline-delivery", p, m, m.token, early, why, early[0])
            self.flagged.update((p, m.token, t) for t in early)
        if e is None or e.f != "reconnect":
            return
        late = [t for t in got if t >= e.t0]
        gap = e.t0 - m.s1
        if late and gap > td + tol:
            why = (
                f"{self.head(m, p, states)}: reconnect invoked {fmt_t(e.t0)}: "
                f"{fmt_t(e.t0)} - {fmt_t(m.s1)} = "
                f"{gap:.3f} > td {td} + tol {tol}, yet delivered at {_ts(late)}"
            )
            self.add("no-expired", p, m, m.token, late, why, late[0])

    def immediacy(
        self, m: Message, p: str, tl: Timeline, got: list[float], states: frozenset
    ) -> None:
        lat = self.p.latency
        first = got[0]
        if not m.owed or first - m.s1 <= lat:
            return
        x = tl.first_exit(m.s0)
        if x is not None and x.t0 <= m.s1 + lat:
            return
        why = (
            f"{self.head(m, p, states)}: first delivery {fmt_t(first)} - {fmt_t(m.s1)} = "
            f"{first - m.s1:.3f} > "
            f"L {lat}, no disconnect/deregister invoked by {fmt_t(m.s1 + lat)}"
        )
        self.add("immediacy", p, m, m.token, [first], why, first)

    # -- per delivery: known offline ----------------------------------------------------------

    def known_offline(self) -> None:
        tol = self.p.tol
        windows = {m.token: m for m in self.messages}
        found: dict[tuple[str, str], list[float]] = {}
        for (p, token), times in self.delivered.items():
            tl = self.timelines[p]
            for t in times:
                if (p, token, t) in self.flagged:
                    continue
                states, _ = tl.states(t - tol, t)
                if states == _OFFLINE:
                    found.setdefault((p, token), []).append(t)
        for (p, token), times in found.items():
            tl = self.timelines[p]
            d = tl.last_disconnect(times[0] - tol)
            e = tl.next_ender(times[0])
            since = (
                f"disconnect completed {fmt_t(d.t1)} + tol {tol} = {fmt_t(d.t1 + tol)} "
                f"< {fmt_t(times[0])}"
                if d is not None and d.t1 is not None
                else "offline"
            )
            until = (
                f"next {e.f} invoked {fmt_t(e.t0)}" if e is not None else "no reconnect after it"
            )
            why = f"p{p} got {token} at {_ts(times)} while known offline: {since}, {until}"
            self.add("no-offline-delivery", p, windows.get(token), token, times, why, times[0])

    def ports(self) -> None:
        for probe in self.trace.probes:
            if not probe.ok:
                why = (
                    f"port {probe.port} of p{probe.participant} could not be bound at "
                    f"{fmt_t(probe.t)}, right after its disconnect/deregister completed"
                )
                self.add("port-released", probe.participant, None, None, [], why, probe.t)

    def run(self) -> Findings:
        self.index_deliveries()
        for m in self.messages:
            for p in self.names:
                self.judge_pair(m, p)
        pairs = len(self.delivered)
        self.checked.update(dict.fromkeys(PAIR_RULES, pairs))
        self.checked["no-miss"] = len(self.messages) * len(self.names)
        self.checked["no-offline-delivery"] = sum(len(t) for t in self.delivered.values())
        self.known_offline()
        self.ports()
        return Findings(
            violations=tuple(sorted(self.violations, key=Violation.sort_key)),
            checked=self.checked,
            notes=self.notes(),
            participants=len(self.names),
            messages=len(self.messages),
            sequences=self.sequences(),
            windows={m.token: (m.sender, m.s0, m.s1) for m in self.messages},
        )

    def sequences(self) -> dict[str, list[str]]:
        """Per participant, messages in order of first (non-phantom) delivery."""
        firsts = sorted((times[0], p, token) for (p, token), times in self.delivered.items())
        out: dict[str, list[str]] = {p: [] for p in self.names}
        for _, p, token in firsts:
            out.setdefault(p, []).append(token)
        return out

    def notes(self) -> tuple[str, ...]:
        notes = []
        failed = sum(1 for op in self.trace.ops if op.f == "msend" and op.outcome == "fail")
        if failed:
            notes.append(f"{failed} msend(s) failed: they create no obligation")
        unknown = sum(
            1 for op in self.trace.ops if op.f == "msend" and op.outcome in ("info", "none")
        )
        if unknown:
            notes.append(
                f"{unknown} msend(s) of unknown outcome (info or no completion): "
                "no delivery is owed for them"
            )
        unsure = sum(1 for m in self.messages if not m.owed) - unknown
        if unsure:
            notes.append(
                f"{unsure} message(s) sent while the sender was not certainly online: "
                "no delivery is owed for them"
            )
        if self.trace.log_resets:
            notes.append(
                f"{self.trace.log_resets} log reset(s): later tokens count as new deliveries"
            )
        return tuple(notes)


def judge(trace: Trace, params: Params) -> Findings:
    """All violations of `trace` under `params`, deterministic order (time, rule, p, m)."""
    return _Judge(trace, params).run()

"""The eight rules of docs/rules.md as pure functions from a parsed trace to violations.

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
- Deliveries before the msend's invoke (and of unknown or failed tokens) are phantoms and
  are left out of the other rules, so one fault is not reported twice.

Injected faults (`checkers.faults`):
- A kill of p at k (or a restart of p not preceded by a kill: the live process was killed
  first) is a disconnect that certainly took effect at k (window [k, k]); messages
  sent after it are owed at p's next reconnect with the usual td rules. A message that may
  have been in flight at the kill (p online at m and k <= its delivery deadline s1 + L; or
  owed at a reconnect completed less than L before the kill) is exempt from no-miss, whatever
  happens later; the summary notes each such exemption. no-duplicate still applies; a kill
  also excuses a late first delivery (immediacy) like a disconnect does.
- A pause of p or of the coordinator that meets [s0, s1 + L] moves the deadline to the
  pause's resume + L (repeatedly), for immediacy, no-miss and every in-flight exemption; the
  violation text names the pause. Pauses of other participants change nothing for p.
- Every other fault changes no rule (harness times; partitions show as failed or timed-out
  ops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from checkers.conduct import conduct
from checkers.exercise import Facts, unexercised
from checkers.faults import Pause, extend_deadline, fault_model, merge_ops
from checkers.model import Message, Params
from checkers.rulebook import RULES
from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import Op, Trace
from checkers.verdict import Violation, fmt_t

PAIR_RULES = ("no-expired", "no-duplicate", "no-post-deregister", "immediacy")
_ONLINE = frozenset((ONLINE,))
_OFFLINE = frozenset((OFFLINE,))


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
        self.faults = fault_model(trace.faults, params.horizon)
        kills = self.faults.kills
        self.timelines = {
            p: Timeline(p, merge_ops(by_participant.get(p, []), kills.get(p, ()))) for p in names
        }
        self.pauses = {p: self.faults.pauses_for(p) for p in names}
        self.exempt: dict[Op, list[str]] = {}  # kill -> tokens it excused from no-miss
        self.sends = {op.message: op for op in trace.ops if op.f == "msend"}
        self.messages = [
            self._message(op) for op in trace.ops if op.f == "msend" and op.outcome != "fail"
        ]
        self.violations: list[Violation] = []
        self.checked = dict.fromkeys(RULES, 0)  # the rest is counted in run()
        self.checked["no-phantom"] = len(trace.deliveries)
        self.checked["port-released"] = sum(x.kind == "port_released" for x in trace.probes)
        self.checked["thread-b-ready"] = sum(x.kind == "listening" for x in trace.probes)
        self.checked["acknowledged"] = len(trace.ops)
        self.checked["async-send"] = sum(op.f == "msend" for op in trace.ops)
        self.checked["no-crash"] = len(self.names) + 1
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
            elif d.t < op.invoked:
                reason = f"delivered before its msend was invoked at {fmt_t(op.invoked)}"
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

    @staticmethod
    def killed(tl: Timeline, s0: float) -> str:
        """The suffix " (killed at k)" when a kill left p offline at s0, else ""."""
        k = tl.killed_before(s0)
        return "" if k is None else f" (killed at {fmt_t(k.t0)})"

    def deadline(self, p: str, start: float, base: float) -> tuple[float, tuple[Pause, ...]]:
        """Delivery deadline `base` (s1 + L or r1 + L) moved past the pauses of p or of the
        coordinator that meet [start, deadline]; and those pauses."""
        pauses = self.pauses.get(p)
        if not pauses:
            return base, ()
        return extend_deadline(pauses, start, base, self.p.latency)

    @staticmethod
    def by(label: str, deadline: float, used: tuple[Pause, ...]) -> str:
        """The text "label = deadline", or the extended deadline and the pauses that moved it."""
        if not used:
            return f"{label} = {fmt_t(deadline)}"
        pauses = ", ".join(x.describe() for x in used)
        return f"{fmt_t(deadline)} ({label} extended to resume + L: {pauses})"

    def exempted(self, kill: Op, m: Message) -> None:
        self.exempt.setdefault(kill, []).append(m.token)

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
            k = tl.killed_before(m.s0)
            since = "" if k is None else f"offline since killed at {fmt_t(k.t0)}; "
            return (
                f"{since}reconnected [{fmt_t(e.t0)}, {fmt_t(e.t1)}]: {fmt_t(e.t1)} - "
                f"{fmt_t(m.s0)} = {e.t1 - m.s0:.3f} <= td {self.p.td} - tol {self.p.tol}"
            )
        deadline, used = self.deadline(tl.participant, m.s0, m.s1 + lat)
        x = tl.first_exit(m.s0)
        if x is None or x.t0 > deadline:
            if self.p.horizon < deadline:
                return None
            return f"no disconnect/deregister invoked by {self.by('s1 + L', deadline, used)}"
        if x.f == "deregister":
            return None
        if x.f == "kill":
            self.exempted(x, m)
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
            deadline, _ = self.deadline(tl.participant, e.t0, e.t1 + self.p.latency)
            if x is None or x.t0 > deadline:
                return e if self.p.horizon >= deadline else None
            if x.f == "deregister":
                return None
            if x.f == "kill":
                self.exempted(x, m)
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
            head = self.head(m, p, states) + self.killed(tl, m.s0)
            ended = f"{e.f} invoked {fmt_t(e.t0)}" if e is not None else "no reconnect"
            why = f"{head}: delivered at {_ts(early)} before the offline period ended ({ended})"
            self.add("no-offline-delivery", p, m, m.token, early, why, early[0])
            self.flagged.update((p, m.token, t) for t in early)
        if e is None or e.f != "reconnect":
            return
        late = [t for t in got if t >= e.t0]
        gap = e.t0 - m.s1
        if late and gap > td + tol:
            head = self.head(m, p, states) + self.killed(tl, m.s0)
            why = (
                f"{head}: reconnect invoked {fmt_t(e.t0)}: "
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
        deadline, used = self.deadline(p, m.s0, m.s1 + lat)
        if used and first <= deadline:
            return
        x = tl.first_exit(m.s0)
        if x is not None and x.t0 <= deadline:
            return
        late = f"{fmt_t(first)} - {fmt_t(m.s1)} = {first - m.s1:.3f} > L {lat}"
        if used:
            late += f", and after the deadline {self.by('s1 + L', deadline, used)}"
        why = (
            f"{self.head(m, p, states)}: first delivery {late}, "
            f"no disconnect/deregister invoked by {fmt_t(deadline)}"
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
            done = "killed at" if d is not None and d.f == "kill" else "disconnect completed"
            since = (
                f"{done} {fmt_t(d.t1)} + tol {tol} = {fmt_t(d.t1 + tol)} < {fmt_t(times[0])}"
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
            if probe.kind == "listening" and not probe.ok:
                why = (
                    f"port {probe.port} was not listening when p{probe.participant}'s "
                    f"register/reconnect request (op {probe.op}) reached the coordinator at "
                    f"{fmt_t(probe.t)}"
                )
                self.add("thread-b-ready", probe.participant, None, None, [], why, probe.t)
            elif probe.kind == "port_released" and not probe.ok:
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
        self.violations.extend(conduct(self.trace, self.p, self.timelines, self.faults))
        self.violations.extend(self.unexercised())
        return Findings(
            violations=tuple(sorted(self.violations, key=Violation.sort_key)),
            checked=self.checked,
            notes=self.notes(),
            participants=len(self.names),
            messages=len(self.messages),
            sequences=self.sequences(),
            windows={m.token: (m.sender, m.s0, m.s1) for m in self.messages},
        )

    def unexercised(self) -> list[Violation]:
        """A violation for each rule the scenario declares it exercises, if this run did not."""
        if not self.trace.expect:
            return []
        facts = Facts.gather(self.trace, self.p, self.timelines, self.messages, self.faults)
        return unexercised(self.trace, self.p, facts)

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
        return tuple(notes) + self.fault_notes()

    def fault_notes(self) -> tuple[str, ...]:
        """What the kills and pauses changed (nothing when the trace has none)."""
        notes = []
        for p, kills in self.faults.kills.items():
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
        for t in self.faults.coordinator_kills:
            notes.append(f"coordinator killed at {fmt_t(t)}: not modelled, judged as if not")
        pauses = [x for group in self.faults.pauses.values() for x in group]
        if pauses:
            listed = ", ".join(x.describe() for x in sorted(pauses, key=lambda x: x.t0))
            notes.append(
                f"{listed}: a delivery deadline that meets a pause of its receiver (of "
                "anyone, for the coordinator) runs to the resume + L"
            )
        return tuple(notes)


def judge(trace: Trace, params: Params) -> Findings:
    """All violations of `trace` under `params`, deterministic order (time, rule, p, m)."""
    return _Judge(trace, params).run()

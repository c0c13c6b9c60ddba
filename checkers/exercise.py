"""Did the run exercise what its scenario declares (docs/rules.md, "Not exercised")? Each
expectation in the header's `scenario.expect` names a kind of situation, the rule it feeds and
how many the run must have shown; a run that shows fewer gets a `not exercised` violation of
that rule with the reason, so a program that does nothing never passes. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from checkers.faults import FaultModel
from checkers.model import Message, Params
from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import Trace
from checkers.verdict import Violation

AFTER_RECONNECT = 0.1  # seconds: an msend invoked this soon after its sender's reconnect
_WHAT = {
    "owed-online": "message(s) owed to a member online when it was sent",
    "owed-at-reconnect": "message(s) owed at one reconnect within td - tol",
    "expired-at-reconnect": "message(s) older than td + tol at a reconnect",
    "after-deregister": "message(s) sent while a participant was deregistered",
    "msend-after-reconnect": "msend(s) acknowledged right after the sender's reconnect",
    "send-while-paused": "msend(s) carried out while another member was paused or partitioned",
    "port-probe": "port probe(s) after a disconnect/deregister",
    "ready-probe": "thread-B probe(s) at a register/reconnect",
}


@dataclass
class Facts:
    """What one run showed: per kind, each situation's age (or None) and group (e.g. the
    reconnect a message is owed at: counts are per group where there is one)."""

    items: dict[str, list[tuple[Optional[float], Any]]] = field(default_factory=dict)

    def add(self, kind: str, age: Optional[float] = None, group: Any = None) -> None:
        self.items.setdefault(kind, []).append((age, group))

    def count(self, kind: str, lo: Optional[float], hi: Optional[float]) -> int:
        """How many situations of `kind` aged within [lo, hi] (in the largest group)."""
        per_group = Counter(g for age, g in self.items.get(kind, []) if _within(age, lo, hi))
        return max(per_group.values(), default=0)

    @classmethod
    def gather(
        cls,
        trace: Trace,
        params: Params,
        timelines: Mapping[str, Timeline],
        messages: Sequence[Message],
        faults: FaultModel,
    ) -> Facts:
        facts = cls()
        for m in messages:
            if m.owed:
                for p, tl in timelines.items():
                    _message_facts(facts, m, p, tl, params)
        _send_facts(facts, trace, params, faults)
        for probe in trace.probes:
            facts.add("port-probe" if probe.kind == "port_released" else "ready-probe")
        return facts


def _within(age: Optional[float], lo: Optional[float], hi: Optional[float]) -> bool:
    if lo is None and hi is None:
        return True
    return age is not None and (lo is None or age >= lo) and (hi is None or age <= hi)


def _message_facts(facts: Facts, m: Message, p: str, tl: Timeline, params: Params) -> None:
    states, _ = tl.states(m.s0, m.s1)
    if states == {ONLINE}:
        facts.add("owed-online")
    elif states == {OFFLINE}:
        e = tl.period_end(m.s0)
        if e is None or e.t1 is None:
            return
        if e.f == "reconnect" and e.ok:
            owed_age = e.t1 - m.s0
            if owed_age <= params.td - params.tol:
                facts.add("owed-at-reconnect", owed_age, group=(p, e.id))
            expired_age = e.t0 - m.s1
            if expired_age > params.td + params.tol:
                facts.add("expired-at-reconnect", expired_age)
        elif e.f == "deregister" and e.ok:
            facts.add("after-deregister")
    elif states == {OUT} and any(
        op.f == "deregister" and op.ok and op.t1 is not None and op.t1 < m.s0 for op in tl.ops
    ):
        facts.add("after-deregister")


def _send_facts(facts: Facts, trace: Trace, params: Params, faults: FaultModel) -> None:
    obstacles = faults.obstacles()
    reconnects = [op for op in trace.ops if op.f == "reconnect" and op.ok and op.t1 is not None]
    for op in trace.ops:
        if op.f != "msend" or not op.ok:
            continue
        if any(
            r.participant == op.participant and 0 <= op.invoked - (r.t1 or 0) <= AFTER_RECONNECT
            for r in reconnects
        ):
            facts.add("msend-after-reconnect")
        if any(x.target != op.participant and x.t0 <= op.t0 <= x.t1 for x in obstacles):
            facts.add("send-while-paused")


def unexercised(trace: Trace, params: Params, facts: Facts) -> list[Violation]:
    """A `not exercised` violation for each expectation the run falls short of."""
    found = []
    for e in trace.expect:
        kind, rule = str(e.get("kind")), str(e.get("rule"))
        need = e.get("count", 1) if isinstance(e.get("count"), int) else 1
        lo, hi = _age(e, "min_age"), _age(e, "max_age")
        have = facts.count(kind, lo, hi)
        if have >= need:
            continue
        aged = _aged(lo, hi)
        why = (
            f"not exercised: the scenario needs {need} {_WHAT.get(kind, kind)}{aged}, the run "
            f"showed {have}; {_op_summary(trace)}"
        )
        found.append(Violation(rule, "", None, None, (), why, params.horizon, unexercised=True))
    return found


def _age(e: dict, key: str) -> Optional[float]:
    value = e.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _aged(lo: Optional[float], hi: Optional[float]) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" aged at least {lo:g} s"
    if lo is None:
        return f" aged at most {hi:g} s"
    return f" aged {lo:g} to {hi:g} s"


def _op_summary(trace: Trace) -> str:
    """How the run's commands went, e.g. "of 13 commands 9 acknowledged, 4 failed"."""
    counts: Counter = Counter()
    for op in trace.ops:
        if op.ok:
            counts["acknowledged" if op.acked or op.late_ack is not None else "unacknowledged"] += 1
        elif op.outcome == "fail":
            counts["refused" if op.refusal is not None else "failed"] += 1
        else:
            counts["of unknown outcome"] += 1
    parts = ", ".join(f"{n} {word}" for word, n in counts.most_common())
    crashed = f"; {len(trace.exits)} process exit(s)" if trace.exits else ""
    return f"of {len(trace.ops)} commands {parts or 'none ran'}{crashed}"

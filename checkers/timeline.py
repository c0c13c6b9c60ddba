"""Per-participant membership timelines: the set of states a participant may have been in
during a time window, derived from its ops (docs/rules.md).

Model: register out→online, disconnect online→offline, reconnect offline→online,
deregister any→out; an op that does not fit the state leaves it unchanged. A failed op did
not happen. An ok op whose window ended before the query window certainly took effect; an
ok op overlapping the query window, and any info/pending op invoked before the window's
end, may or may not have taken effect, at any point (they "float"). Two ok ops whose windows
overlap each other may have taken effect in either order. The result over-approximates the
possible states, so that rules built on it never fire on a behaviour some state allows.

Faults: a harness `kill` of the participant at time k enters the walk as a synthetic op
`kill` with window [k, k] that certainly took effect at k: online→offline (the coordinator
can no longer reach it), no change otherwise. It counts as an exit (like disconnect) for the
window queries; a later `reconnect` brings the participant back online as usual.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cache
from typing import Optional

from checkers.trace import Op

OUT = "out"
ONLINE = "online"
OFFLINE = "offline"
States = frozenset
INF = float("inf")

_TRANSITIONS = {
    "register": {OUT: ONLINE},
    "disconnect": {ONLINE: OFFLINE},
    "reconnect": {OFFLINE: ONLINE},
    "deregister": {ONLINE: OUT, OFFLINE: OUT},
    "kill": {ONLINE: OFFLINE},
}
MEMBERSHIP = frozenset(_TRANSITIONS)
ENDERS = frozenset(("reconnect", "deregister"))
EXITS = frozenset(("disconnect", "deregister", "kill"))
START: States = frozenset((OUT,))


@cache
def apply(f: str, states: States) -> States:
    """The states after op `f` certainly took effect from any of `states`."""
    table = _TRANSITIONS[f]
    return frozenset(table.get(s, s) for s in states)


@cache
def closure(states: States, floating: frozenset) -> States:
    """`states` plus every state reachable by applying floating ops any number of times."""
    result = set(states)
    frontier = list(states)
    while frontier:
        s = frontier.pop()
        for f in floating:
            n = _TRANSITIONS[f].get(s, s)
            if n not in result:
                result.add(n)
                frontier.append(n)
    return frozenset(result)


def _end(op: Op) -> float:
    """Window end for ordering purposes: ok ops end at their completion, others never."""
    return op.t1 if op.ok and op.t1 is not None else INF


@dataclass(frozen=True)
class Checkpoint:
    """Walk state after a prefix of ops all known to have ended (if ok) before a window."""

    states: States
    floating: frozenset
    before_last: States
    last: Optional[Op]


def _step(cp: Checkpoint, op: Op) -> Checkpoint:
    """Apply `op` as one that ended before the query window (ok) or floats (info/none)."""
    if op.outcome == "fail":
        return cp
    if not op.ok:
        return Checkpoint(cp.states, cp.floating | {op.f}, cp.before_last, cp.last)
    fl = cp.floating
    new = closure(apply(op.f, closure(cp.states, fl)), fl)
    last = cp.last
    if last is not None and last.t1 is not None and op.t0 <= last.t1:
        swapped = apply(last.f, closure(apply(op.f, closure(cp.before_last, fl)), fl))
        new = new | closure(swapped, fl)
    return Checkpoint(new, fl, cp.states, op)


class Timeline:
    """Membership ops of one participant (invoke order) with indexes for window queries."""

    def __init__(self, participant: str, ops: list[Op]) -> None:
        self.participant = participant
        self.ops = [op for op in ops if op.f in MEMBERSHIP]
        self.t0s = [op.t0 for op in self.ops]
        self.prefmax: list[float] = []
        self.checkpoints = [Checkpoint(START, frozenset(), START, None)]
        high = -INF
        for op in self.ops:
            if op.ok and op.t1 is not None:
                high = max(high, op.t1)
            self.prefmax.append(high)
            self.checkpoints.append(_step(self.checkpoints[-1], op))
        self.indexes: dict[str, list[int]] = {f: [] for f in MEMBERSHIP}
        for i, op in enumerate(self.ops):
            if op.outcome != "fail":
                self.indexes[op.f].append(i)
        self.enders = [op for op in self.ops if op.f in ENDERS and op.outcome != "fail"]
        self.ender_t0s = [op.t0 for op in self.enders]
        self.ender_prefmax = _prefmax(self.enders)
        self.exits = [op for op in self.ops if op.f in EXITS and op.outcome != "fail"]
        self.exit_prefmax = _prefmax(self.exits)
        self.exit_t0s = [op.t0 for op in self.exits]
        self.disconnects = [op for op in self.ops if op.f in ("disconnect", "kill") and op.ok]
        self.disconnect_t0s = [op.t0 for op in self.disconnects]
        self.kills = [op for op in self.ops if op.f == "kill"]
        # what states() answers for a window that no op's window meets, after op k - 1
        self.settled = [
            (closure(cp.states, cp.floating), bool(cp.floating)) for cp in self.checkpoints
        ]

    def states(self, s0: float, s1: float) -> tuple[States, bool]:
        """(possible states at some instant of [s0, s1], whether any op window overlaps it)."""
        j = bisect_left(self.prefmax, s0)
        k = bisect_right(self.t0s, s1)
        if j >= k:
            return self.settled[k]
        cp = self.checkpoints[j]
        states, floating = cp.states, set(cp.floating)
        later = max(j, bisect_right(self.t0s, s0))  # ops from here on were invoked after s0
        for op in self.ops[j:later]:
            if op.outcome == "fail":
                continue
            if op.ok and op.t1 is not None and op.t1 < s0:
                fl = frozenset(floating)
                states = closure(apply(op.f, closure(states, fl)), fl)
            else:
                floating.add(op.f)
        floating.update(self._kinds_between(later, k))  # none of them can have ended by s0
        fl = frozenset(floating)
        return closure(states, fl), bool(fl)

    def offline_spans(self, tol: float) -> tuple[list[float], list[float]]:
        """Open intervals (starts, ends; sorted, merged) holding every t at which
        states(t - tol, t) can be {offline}: after an ok disconnect or kill completed before
        t - tol, and before the next reconnect/deregister (not failed) was invoked. (Only a
        disconnect or a kill leads to offline, and the run in which no floating op took effect
        is always among the possible ones.) Starts are lowered a little against rounding."""
        spans = []
        for d in self.ops:
            if d.f in ("disconnect", "kill") and d.ok and d.t1 is not None:
                e = self.next_ender(d.t0)
                start = d.t1 + tol
                spans.append((start - 1e-9 * max(1.0, abs(start)), e.t0 if e else INF))
        starts: list[float] = []
        ends: list[float] = []
        for a, b in sorted(spans):
            if ends and a <= ends[-1]:
                ends[-1] = max(ends[-1], b)
            elif a < b:
                starts.append(a)
                ends.append(b)
        return starts, ends

    def _kinds_between(self, lo: int, hi: int) -> set[str]:
        """The op kinds (f) of the non-failed ops with index in [lo, hi), in O(log n)."""
        return {f for f, at in self.indexes.items() if bisect_left(at, lo) < bisect_left(at, hi)}

    def period_end(self, s0: float) -> Optional[Op]:
        """First reconnect/deregister (not failed) not certainly over before s0: the op
        that ends an offline period holding at s0."""
        i = bisect_left(self.ender_prefmax, s0)
        return self.enders[i] if i < len(self.enders) else None

    def next_ender(self, t: float) -> Optional[Op]:
        """First reconnect/deregister (not failed) invoked after time t."""
        i = bisect_right(self.ender_t0s, t)
        return self.enders[i] if i < len(self.enders) else None

    def first_exit(self, s0: float) -> Optional[Op]:
        """First disconnect/deregister (not failed) not certainly over before s0."""
        i = bisect_left(self.exit_prefmax, s0)
        return self.exits[i] if i < len(self.exits) else None

    def next_exit(self, t: float) -> Optional[Op]:
        """First disconnect/deregister (not failed) invoked after time t."""
        i = bisect_right(self.exit_t0s, t)
        return self.exits[i] if i < len(self.exits) else None

    def last_disconnect(self, before: float) -> Optional[Op]:
        """Last ok disconnect (or kill) completed before time `before`."""
        i = bisect_left(self.disconnect_t0s, before)
        for op in reversed(self.disconnects[:i]):
            if op.t1 is not None and op.t1 < before:
                return op
        return None

    def killed_before(self, t: float) -> Optional[Op]:
        """The kill that took p from online to offline most recently before time `t`, when
        no op but kills was invoked between it and `t`; else None."""
        kill = None
        for i in range(bisect_left(self.t0s, t) - 1, -1, -1):
            op = self.ops[i]
            if op.outcome == "fail":
                continue
            if op.f != "kill":
                return kill if op.f in ("register", "reconnect") else None
            kill = op
        return None


def _prefmax(ops: list[Op]) -> list[float]:
    out: list[float] = []
    high = -INF
    for op in ops:
        high = max(high, _end(op))
        out.append(high)
    return out

"""`Timeline.states` answers window queries in O(log n) for ops invoked after the window
opens; it must give exactly what walking every overlapping op one by one gives."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.timeline import OFFLINE, Timeline, apply, closure
from checkers.trace import make_op

KINDS = ("register", "disconnect", "reconnect", "deregister")


def walk_every_op(tl: Timeline, s0: float, s1: float) -> tuple[frozenset, bool]:
    """The one-by-one walk over every op overlapping [s0, s1] (the definition)."""
    j = bisect_left(tl.prefmax, s0)
    k = bisect_right(tl.t0s, s1)
    if j >= k:
        cp = tl.checkpoints[k]
        return closure(cp.states, cp.floating), bool(cp.floating)
    cp = tl.checkpoints[j]
    states, floating = cp.states, set(cp.floating)
    for op in tl.ops[j:k]:
        if op.outcome == "fail":
            continue
        if op.ok and op.t1 is not None and op.t1 < s0:
            fl = frozenset(floating)
            states = closure(apply(op.f, closure(states, fl)), fl)
        else:
            floating.add(op.f)
    fl = frozenset(floating)
    return closure(states, fl), bool(fl)


@st.composite
def timelines(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS) -> Timeline:
    ops, t = [], 0.0
    for i in range(draw(st.integers(0, 25))):
        t += draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info", "none"]))
        length = draw(st.sampled_from([0.0, 0.05, 0.3, 2.0]))
        t1 = None if outcome in ("info", "none") else t + length
        f = draw(st.sampled_from(kinds))
        if f == "kill":  # as checkers.faults makes them
            outcome, t1 = "ok", t
        ops.append(make_op(i + 1, "1", f, t, t1, outcome, None, i + 2))
    return Timeline("1", ops)


@settings(max_examples=300, deadline=None)
@given(timelines(), st.floats(0, 15), st.floats(0, 5))
def test_window_query_equals_the_op_by_op_walk(tl: Timeline, s0: float, width: float) -> None:
    assert tl.states(s0, s0 + width) == walk_every_op(tl, s0, s0 + width)


@settings(max_examples=200, deadline=None)
@given(timelines((*KINDS, "kill")), st.sampled_from([0.0, 0.25, 1.0]))
def test_offline_spans_hold_every_instant_known_offline(tl: Timeline, tol: float) -> None:
    """no-offline-delivery asks the timeline only inside these spans: none may be missed
    (probed at every op edge + tol, and just around it)."""
    starts, ends = tl.offline_spans(tol)
    edges = [x for op in tl.ops for x in (op.t0, op.t1) if x is not None]
    for t in [x + tol + d for x in edges for d in (-1e-9, 0.0, 1e-9, 0.01, 0.3)]:
        if tl.states(t - tol, t)[0] == frozenset({OFFLINE}):
            i = bisect_left(starts, t) - 1
            assert i >= 0 and t < ends[i], (t, starts, ends)

"""`Timeline.states` answers window queries in O(log n) for ops invoked after the window
opens; it must give exactly what walking every overlapping op one by one gives."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.timeline import Timeline, apply, closure
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
def timelines(draw: st.DrawFn) -> Timeline:
    ops, t = [], 0.0
    for i in range(draw(st.integers(0, 25))):
        t += draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info", "none"]))
        length = draw(st.sampled_from([0.0, 0.05, 0.3, 2.0]))
        t1 = None if outcome in ("info", "none") else t + length
        ops.append(make_op(i + 1, "1", draw(st.sampled_from(KINDS)), t, t1, outcome, None, i + 2))
    return Timeline("1", ops)


@settings(max_examples=300, deadline=None)
@given(timelines(), st.floats(0, 15), st.floats(0, 5))
def test_window_query_equals_the_op_by_op_walk(tl: Timeline, s0: float, width: float) -> None:
    assert tl.states(s0, s0 + width) == walk_every_op(tl, s0, s0 + width)

"""The trace generator emits well-formed trace-format-v1 traces of a correct system.

Checked against an oracle written here from docs/trace-format.md and docs/rules.md (not from
the generator's model), which the checker property tests reuse to pick fault-injection points.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks import tracegen as tg

EPS = 2e-6  # times are rounded to microseconds
NEXT_STATE = {
    "register": "online",
    "reconnect": "online",
    "disconnect": "offline",
    "deregister": "out",
}
ACCEPTED_IN = {  # states in which a correct coordinator accepts (ok) each op
    "register": {"out"},
    "reconnect": {"offline"},
    "disconnect": {"online"},
    "deregister": {"online", "offline"},
    "msend": {"online"},
}
COMPLETIONS = ("ok", "fail", "info")
TOKEN = re.compile(r"M[0-9]{8}")
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSY = dict(p_info=0.1, p_fail=0.1, p_noise=0.2, p_log_reset=0.05)  # every new event kind


# ----------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Op:
    """One invoked op: its window [t0, t1] (docs/rules.md: an info op's, or one never completed,
    runs to the trace's end), its outcome ("ok", "fail", "info" or "none") and completion
    time (`done`, None when none came)."""

    op: int
    participant: str
    f: str
    t0: float
    t1: float
    message: str = ""
    port: int = 0
    outcome: str = "ok"
    done: Optional[float] = None

    @property
    def certain(self) -> bool:
        """Known to have taken effect (ok); a failed op did not happen, others may have."""
        return self.outcome == "ok"


@dataclass(frozen=True)
class Trace:
    """A parsed trace: header, ops by participant (failed ones too), sent messages (msends that
    did not fail), tokens of failed msends, deliveries."""

    header: dict[str, Any]
    events: list[dict[str, Any]]
    ops: dict[str, list[Op]]
    sent: dict[str, Op]
    deliveries: dict[tuple[str, str], list[float]]
    refused: frozenset[str] = frozenset()

    @property
    def td(self) -> float:
        return float(self.header["td"])

    @property
    def tol(self) -> float:
        return float(self.header["tolerance"])

    @property
    def participants(self) -> list[str]:
        return list(self.header["participants"])


def parse(events: list[dict[str, Any]]) -> Trace:
    """Parse generated events (header first, `end` last) into a `Trace`."""
    horizon = events[-1]["t"]
    invokes = {e["op"]: e for e in events if e["type"] == "invoke"}
    completions = {e["op"]: e for e in events if e["type"] in COMPLETIONS}
    ops: dict[str, list[Op]] = defaultdict(list)
    for n, e in invokes.items():
        c = completions.get(n)
        outcome = c["type"] if c else "none"
        t1 = c["t"] if c and outcome != "info" else horizon
        extra = (e.get("message", ""), e.get("port", 0), outcome, c["t"] if c else None)
        op = Op(n, e["participant"], e["f"], e["t"], t1, *extra)
        ops[op.participant].append(op)
    deliveries: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        if e["type"] == "deliver":
            deliveries[(e["participant"], e["message"])].append(e["t"])
    msends = [o for group in ops.values() for o in group if o.f == "msend"]
    sent = {o.message: o for o in msends if o.outcome != "fail"}
    refused = frozenset(o.message for o in msends if o.outcome == "fail")
    return Trace(events[0], events, dict(ops), sent, dict(deliveries), refused)


def live(trace: Trace, p: str) -> list[Op]:
    """p's ops that did not fail (a failed op did not happen)."""
    return [o for o in trace.ops.get(p, []) if o.outcome != "fail"]


def state_at(trace: Trace, p: str, m: Op) -> Optional[str]:
    """p's state at m ("out"/"online"/"offline"), or None when a window of an op of p that did
    not fail overlaps m's (an info op's window runs to the end: p is uncertain from then on)."""
    state = "out"
    for o in live(trace, p):
        if o.f == "msend":
            continue
        if o.t0 <= m.t1 and m.t0 <= o.t1:
            return None
        if o.t1 < m.t0:
            state = NEXT_STATE.get(o.f, state)
    return state


def in_doubt(trace: Trace, p: str, t: float) -> bool:
    """Whether p invoked, by `t`, an op whose outcome is unknown (info or none)."""
    return any(o.outcome in ("info", "none") and o.t0 <= t for o in trace.ops.get(p, []))


def next_op(trace: Trace, p: str, after: float, f: Optional[str] = None) -> Optional[Op]:
    """p's first op (that did not fail) invoked after `after` (of kind `f`, if given)."""
    later = [o for o in live(trace, p) if o.t0 > after and (f is None or o.f == f)]
    return later[0] if later else None


def last_op(trace: Trace, p: str, before: float) -> Optional[Op]:
    """p's last op (that did not fail) completed before `before`."""
    done = [o for o in live(trace, p) if o.t1 < before]
    return done[-1] if done else None


def generate(schedule: tg.Run) -> list[dict[str, Any]]:
    """The schedule's trace, round-tripped through its JSON lines."""
    return [json.loads(line) for line in tg.lines(tg.events(schedule))]


# ----------------------------------------------------------------------------- well-formed


def assert_well_formed(events: list[dict[str, Any]]) -> None:
    """Format-level invariants of docs/trace-format.md for a complete generated trace."""
    head, rest = events[0], events[1:]
    assert head["type"] == "header" and head["format"] == "pams-trace" and head["version"] == 1
    assert {"td", "participants", "seed", "scenario", "tolerance", "latency_bound"} <= set(head)
    assert all(e["type"] != "header" for e in rest)
    assert rest[-1]["type"] == "end" and sum(e["type"] == "end" for e in rest) == 1
    times = [e["t"] for e in rest]
    assert times == sorted(times), "t must be non-decreasing"
    invokes = [e for e in rest if e["type"] == "invoke"]
    assert len({e["op"] for e in invokes}) == len(invokes), "op ids must be unique"
    seen: set[int] = set()
    for e in rest:
        if e["type"] == "invoke":
            seen.add(e["op"])
        if e["type"] in COMPLETIONS:
            assert e["op"] in seen, f"{e['type']} for op {e['op']} without an open invoke"
            seen.discard(e["op"])
        assert e["type"] != "fail" or isinstance(e["error"], str) and e["error"]
        assert e["type"] != "info" or e["reason"] == "timeout"
    by_participant = {e["op"]: e["participant"] for e in invokes}
    for n in seen:  # no completion: the harness stopped waiting, that participant acts no more
        last = [e["op"] for e in invokes if e["participant"] == by_participant[n]][-1]
        assert last == n, f"op {n} never completed, yet its participant invoked op {last}"
    tokens = [e["message"] for e in invokes if e["f"] == "msend"]
    assert len(set(tokens)) == len(tokens), "msend tokens must be unique"
    assert all(TOKEN.fullmatch(m) for m in tokens)
    assert set(head["participants"]) >= {e["participant"] for e in invokes}
    assert_log_lines(head, rest)


def assert_log_lines(head: dict[str, Any], rest: list[dict[str, Any]]) -> None:
    """Deliveries and noise are numbered 1, 2, … per participant and log generation; noise
    holds no token; a log_reset names its participant and reason."""
    line_no = dict.fromkeys(head["participants"], 0)
    for e in rest:
        if e["type"] == "log_reset":
            assert e["reason"] in ("truncated", "deleted", "recreated")
            line_no[e["participant"]] = 0
        if e["type"] not in ("deliver", "noise"):
            continue
        line_no[e["participant"]] += 1
        assert e["line_no"] == line_no[e["participant"]], e
        if e["type"] == "deliver":
            assert e["line"] == e["message"]
        else:
            assert isinstance(e["line"], str) and not TOKEN.search(e["line"])


def assert_valid_ops(trace: Trace) -> None:
    """Each participant's ops are sequential; an op that did not fail was accepted in some
    state it may have been in (an ok op settles it, one of unknown outcome adds its next
    state); probes follow completed disconnects/deregisters, with the last port used."""
    probes = [e for e in trace.events if e["type"] == "probe" and e["probe"] != "listening"]
    assert all(e["probe"] == "port_released" and e["ok"] is True for e in probes)
    listening = [e for e in trace.events if e["type"] == "probe" and e["probe"] == "listening"]
    invoked = {e["op"]: e for e in trace.events if e["type"] == "invoke"}
    for e in listening:  # thread-B was listening when the request reached the coordinator
        op = invoked[e["op"]]
        assert e["ok"] is True and op["f"] in ("register", "reconnect") and e["t"] >= op["t"]
        assert e["port"] == op["port"] and e["participant"] == op["participant"]
    probed = Counter((e["participant"], e["port"]) for e in probes)
    expected: Counter[tuple[str, int]] = Counter()
    for p, ops in trace.ops.items():
        states, port = {"out"}, 0
        for before, after in zip(ops, ops[1:]):
            assert before.done is not None and before.done < after.t0, f"{p}: {before} {after}"
        for o in ops:
            port = o.port or port
            if o.outcome == "fail":
                continue
            assert states & ACCEPTED_IN[o.f], f"{o} while {states}"
            if o.f != "msend":
                after = {NEXT_STATE[o.f]}
                states = after if o.certain else states | after
            if o.certain and o.f in ("disconnect", "deregister"):
                expected[(p, port)] += 1
    assert probed == expected


def assert_deliveries_follow_spec(trace: Trace, *, unambiguous: bool) -> None:
    """Every (message, participant) outcome is one docs/rules.md requires (or allows, if uncertain).

    A failed msend sent nothing; one of unknown outcome may never have been sent, and a
    reconnect of unknown outcome may never have happened (then nothing is owed at it, but an
    expired message must still not come). `unambiguous`: additionally no state is uncertain.
    """
    lat = tg.LATENCY_MAX + EPS
    for (p, m), times in trace.deliveries.items():
        assert m in trace.sent, f"phantom {m}" + (
            " (its msend failed)" if m in trace.refused else ""
        )
        assert len(times) == 1, f"{m} delivered to {p} {len(times)} times"
        assert times[0] >= trace.sent[m].t0
    for m, send in trace.sent.items():
        for p in trace.participants:
            got = trace.deliveries.get((p, m), [])
            state = state_at(trace, p, send)
            assert not (unambiguous and state is None), f"{p} uncertain at {m}"
            if state == "online":
                owed = send.certain
                assert got or not owed, f"{m} not delivered to online {p}"
                by = send.done if send.done is not None else send.t1
                assert not got or got[0] <= by + lat, f"{m} not immediate to online {p}"
            elif state == "out":
                assert not got, f"{m} delivered to {p}, out at it"
            elif state == "offline":
                assert_offline_outcome(trace, p, send, got)


def assert_offline_outcome(trace: Trace, p: str, send: Op, got: list[float]) -> None:
    """p known offline at `send`: delivered at its reconnect iff fresh (if that reconnect
    surely happened), never if expired or if the period ended in deregister or never ended."""
    td, tol, lat = trace.td, trace.tol, tg.LATENCY_MAX + EPS
    m, end = send.message, next_op(trace, p, send.t1)
    if end is None or end.f == "deregister":
        assert not got, f"{m} delivered to {p} whose offline period never reconnected"
        return
    assert end.f == "reconnect", f"{p} offline, then {end}"
    r1 = end.done if end.done is not None else trace.events[-1]["t"]
    fresh = r1 - send.t0 < td - tol - tg.MARGIN
    expired = end.t0 - send.t1 > td + tol + tg.MARGIN
    assert fresh or expired or end.outcome == "none", f"{m} age ~td at {p}"
    assert not (got and expired), f"{m} expired for {p}, yet delivered at {got}"
    assert got or not (fresh and send.certain and end.certain), f"{m} owed to {p} at {end}"
    if got:
        assert end.t0 <= got[0] <= r1 + lat


def check_generated(schedule: tg.Run, *, unambiguous: bool = True) -> Trace:
    """Generate `schedule`'s trace and assert every invariant above."""
    events = generate(schedule)
    assert_well_formed(events)
    trace = parse(events)
    assert_valid_ops(trace)
    assert_deliveries_follow_spec(trace, unambiguous=unambiguous)
    return trace


@PROPERTY
@given(tg.schedules(concurrent=False))
def test_serialized_schedules_give_correct_unambiguous_traces(schedule: tg.Run) -> None:
    check_generated(schedule)


@PROPERTY
@given(tg.schedules(concurrent=True))
def test_concurrent_schedules_give_correct_traces(schedule: tg.Run) -> None:
    check_generated(schedule, unambiguous=False)


@PROPERTY
@given(tg.schedules(min_ops=10, **MESSY))
def test_schedules_with_failed_and_unknown_outcomes_give_correct_traces(
    schedule: tg.Run,
) -> None:
    """Failed ops, timed-out ops, noise and new log generations: still a correct trace, and
    when no ops overlap, a participant's state is uncertain only once it has an op in doubt."""
    trace = check_generated(schedule, unambiguous=False)
    concurrent = any(a.t < b.t + b.duration for b, a in zip(schedule.actions, schedule.actions[1:]))
    for send in trace.sent.values():
        for p in trace.participants:
            if state_at(trace, p, send) is None and send.certain and not concurrent:
                assert in_doubt(trace, p, send.t1), f"{p} uncertain at {send}"


@pytest.mark.parametrize("messy", [False, True])
@pytest.mark.parametrize("concurrent", [False, True])
def test_large_random_trace_is_correct(concurrent: bool, messy: bool) -> None:
    extra = dict(MESSY, p_info=0.01) if messy else {}
    knobs = tg.Knobs(participants=10, concurrent=concurrent, p_long=0.5, **extra)
    events = [json.loads(line) for line in tg.random_trace(knobs, seed=11, events_wanted=30_000)]
    assert 30_000 <= len(events) - 1 < 30_200
    assert_well_formed(events)
    trace = parse(events)
    assert_valid_ops(trace)
    assert_deliveries_follow_spec(trace, unambiguous=not concurrent and not messy)
    kinds = Counter(o.f for ops in trace.ops.values() for o in ops)
    assert all(kinds[f] > 10 for f in tg.FUNCTIONS), kinds
    outcomes = Counter(o.outcome for ops in trace.ops.values() for o in ops)
    seen = Counter(e["type"] for e in events)
    if messy:
        assert min(outcomes[k] for k in ("fail", "info")) > 10 and outcomes["none"] >= 1
        assert seen["noise"] > 100 and seen["log_reset"] > 10, seen
    else:
        assert set(outcomes) == {"ok"} and seen["noise"] == seen["log_reset"] == 0


# ----------------------------------------------------------------------------- fixed cases


def a(t: float, p: str, f: str, **kw: Any) -> tg.Action:
    return tg.Action(t, p, f, kw.pop("duration", 0.02), **kw)


def test_hand_written_schedule_gets_exactly_the_required_deliveries() -> None:
    """td = 5: a short absence loses nothing, a long one keeps only the last td seconds,
    a deregistered member gets nothing sent while out, and re-registering starts afresh."""
    acts = [
        a(0.1, "1", "register", port=20001),
        a(0.2, "2", "register", port=20002),
        a(0.3, "3", "register", port=20003),
        a(1.0, "1", "msend", message=tg.token(1)),  # all three online
        a(1.5, "2", "disconnect"),
        a(2.0, "1", "msend", message=tg.token(2)),  # 2 offline: age ~2.0 at its reconnect
        a(3.0, "3", "deregister"),
        a(3.5, "1", "msend", message=tg.token(3)),  # 3 out
        a(4.0, "2", "reconnect", port=20012),  # 2 was away 2.5 s <= td
        a(5.0, "2", "disconnect"),
        a(5.5, "1", "msend", message=tg.token(4)),  # age ~7.0 at 2's reconnect: lost
        a(10.0, "1", "msend", message=tg.token(5)),  # age ~2.5: kept
        a(11.0, "3", "register", port=20013),
        a(12.5, "2", "reconnect", port=20022),
        a(13.0, "1", "msend", message=tg.token(6)),
    ]
    schedule = tg.hand_run(td=5.0, participants=("1", "2", "3"), actions=tuple(acts), seed=5)
    trace = check_generated(schedule)
    got = {(p, m) for (p, m) in trace.deliveries}
    want = {(p, tg.token(1)) for p in "123"}
    want |= {("1", tg.token(n)) for n in range(2, 7)}
    want |= {("2", tg.token(2)), ("2", tg.token(3)), ("2", tg.token(5)), ("2", tg.token(6))}
    want |= {("3", tg.token(2)), ("3", tg.token(6))}
    assert got == want
    assert trace.deliveries[("2", tg.token(2))][0] >= 4.0  # held until the reconnect
    ends = [e for e in trace.events if e["type"] == "end"]
    assert ends[0]["t"] >= max(e["t"] for e in trace.events[1:])


def test_effect_instant_decides_uncertain_outcomes() -> None:
    """A disconnect overlapping an msend: acting first means the message waits for the
    reconnect, acting last means it is delivered at once (never later than the disconnect)."""

    def run(effect: float) -> list[float]:
        acts = [
            a(0.1, "1", "register", port=20001),
            a(0.2, "2", "register", port=20002),
            a(1.0, "1", "msend", duration=0.2, effect=0.5, message=tg.token(1)),
            a(1.05, "2", "disconnect", duration=0.1, effect=effect),
            a(2.0, "2", "reconnect", port=20003),
        ]
        schedule = tg.hand_run(3.0, ("1", "2"), tuple(acts), seed=1)
        return parse(generate(schedule)).deliveries[("2", tg.token(1))]

    assert 1.1 <= run(0.9)[0] <= 1.15  # still online when the coordinator sent it
    assert 2.0 <= run(0.1)[0] <= 2.02 + tg.LATENCY_MAX  # offline: held until reconnect


def test_model_expiry_boundary_is_inclusive() -> None:
    model = tg.CoordinatorModel(2.0, ["1", "2"])
    model.act(0.0, "1", "register")
    model.act(0.0, "2", "register")
    model.act(0.5, "2", "disconnect")
    assert model.send(1.0, "A") == ["1"]
    assert model.send(1.5, "B") == ["1"]
    assert model.act(3.0, "2", "reconnect") == ["A", "B"]  # A is exactly td old
    model.act(3.5, "2", "disconnect")
    model.send(4.0, "C")
    model.send(4.5, "D")
    assert model.act(6.25, "2", "reconnect") == ["D"]


def test_model_forgets_store_on_deregister() -> None:
    model = tg.CoordinatorModel(5.0, ["1", "2"])
    model.act(0.0, "1", "register")
    model.act(0.0, "2", "register")
    model.act(0.5, "2", "disconnect")
    model.send(1.0, "A")
    model.act(2.0, "2", "deregister")
    model.act(3.0, "2", "register")
    assert model.send(3.5, "B") == ["1", "2"]
    assert model.stored["2"] == []


@pytest.mark.parametrize(
    "acts, error",
    [
        ([a(1.0, "1", "register"), a(0.5, "1", "msend")], "comes after"),
        ([a(1.0, "9", "register")], "unknown action"),
        ([a(1.0, "1", "reconnect")], "reconnect by 1 while out"),
        ([a(1.0, "1", "msend", message=tg.token(1))], "msend by 1 while out"),
        ([a(1.0, "1", "register", outcome="lost")], "unknown action"),
    ],
)
def test_invalid_schedules_are_rejected(acts: list[tg.Action], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        list(tg.events(tg.hand_run(3.0, ("1",), tuple(acts))))


def two_members(*later: tg.Action, td: float = 3.0, **log: float) -> list[dict[str, Any]]:
    """The trace of 1 and 2 registered at 0.1/0.2, then `later`."""
    acts = (a(0.1, "1", "register", port=20001), a(0.2, "2", "register", port=20002), *later)
    return generate(tg.hand_run(td, ("1", "2"), acts, seed=4, **log))


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


@pytest.mark.parametrize("acted", [True, False])
def test_timed_out_register_delivers_as_the_coordinator_chose(acted: bool) -> None:
    """3's register times out (info): if the coordinator acted, 3 gets what follows at once;
    if not, nothing, and its msend is refused (fail) and sends nothing."""
    events = generate(
        tg.hand_run(
            3.0,
            ("1", "3"),
            (
                a(0.1, "1", "register", port=20001),
                a(0.2, "3", "register", duration=0.5, effect=0.5, outcome="info", acted=acted),
                a(1.0, "1", "msend", message=tg.token(1)),
                a(1.5, "3", "msend", message=tg.token(2), outcome="ok" if acted else "fail"),
            ),
        )
    )
    assert_well_formed(events)
    trace = parse(events)
    assert_valid_ops(trace)
    assert_deliveries_follow_spec(trace, unambiguous=False)
    info = [e for e in events if e["type"] == "info"]
    assert info == [{"type": "info", "t": 0.7, "op": 2, "reason": "timeout"}]
    got = {m for (p, m) in trace.deliveries}
    assert got == ({tg.token(1), tg.token(2)} if acted else {tg.token(1)})
    assert (("3", tg.token(1)) in trace.deliveries) == acted
    fails = [e for e in events if e["type"] == "fail"]
    assert fails == (
        [] if acted else [{"type": "fail", "t": 1.52, "op": 4, "error": "msend: refused while out"}]
    )


def test_failed_ops_have_no_effect_and_no_probe() -> None:
    """A refused msend is never delivered; a failed disconnect leaves 2 online (it gets the
    next message at once) and is not followed by a port probe."""
    events = two_members(
        a(1.0, "1", "msend", message=tg.token(1), outcome="fail"),
        a(1.5, "2", "disconnect", outcome="fail"),
        a(2.0, "1", "msend", message=tg.token(2)),
    )
    trace = parse(events)
    assert_valid_ops(trace)
    assert_deliveries_follow_spec(trace, unambiguous=True)
    assert trace.refused == {tg.token(1)} and set(trace.sent) == {tg.token(2)}
    assert sorted(trace.deliveries) == [("1", tg.token(2)), ("2", tg.token(2))]
    assert trace.deliveries[("2", tg.token(2))][0] <= 2.02 + tg.LATENCY_MAX
    assert "port_released" not in [e.get("probe") for e in events]
    assert [e["error"] for e in events if e["type"] == "fail"] == ["connection refused"] * 2


def test_op_without_completion_still_acts() -> None:
    """No completion at all (the trace ended first): the coordinator acted on the disconnect,
    so the next message is held for 2 and never delivered."""
    events = two_members(
        a(1.0, "2", "disconnect", outcome="none", acted=True),
        a(2.0, "1", "msend", message=tg.token(1)),
    )
    assert_well_formed(events)
    trace = parse(events)
    assert [o.outcome for o in trace.ops["2"]] == ["ok", "none"]
    assert trace.ops["2"][1].t1 == events[-1]["t"] and trace.ops["2"][1].done is None
    assert sorted(trace.deliveries) == [("1", tg.token(1))]


def test_noise_and_log_resets_number_lines_per_generation() -> None:
    """With both certain, every delivery comes after a reset and a noise line: line 2."""
    sends = [a(1.0 + i, "1", "msend", message=tg.token(i + 1)) for i in range(3)]
    events = two_members(*sends, p_noise=1.0, p_log_reset=1.0)
    assert_well_formed(events)
    got = [e for e in events if e["type"] == "deliver"]
    assert len(got) == 6 and all(e["line_no"] == 2 for e in got)
    body = kinds(events)
    for i, e in enumerate(events):
        if e["type"] == "deliver":
            assert body[i - 2 : i] == ["log_reset", "noise"]
            assert events[i - 1]["participant"] == events[i - 2]["participant"] == e["participant"]
    quiet = two_members(*sends)
    assert [e["line_no"] for e in quiet if e["type"] == "deliver"] == [1, 1, 2, 2, 3, 3]

    def unnumbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [e for e in events if e["type"] not in ("noise", "log_reset")]
        return [{k: v for k, v in e.items() if k != "line_no"} for e in kept]

    assert unnumbered(events) == unnumbered(quiet)  # the log noise changes nothing else


# ------------------------------------------------------------------ determinism, streaming


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    knobs = tg.Knobs(participants=4, concurrent=True)
    first = list(tg.random_trace(knobs, seed=3, events_wanted=2000))
    assert first == list(tg.random_trace(knobs, seed=3, events_wanted=2000))
    assert first != list(tg.random_trace(knobs, seed=4, events_wanted=2000))
    schedule = tg.random_run(random.Random(9), knobs, 50, seed=9)
    assert list(tg.lines(tg.events(schedule))) == list(tg.lines(tg.events(schedule)))


def test_body_streams_an_endless_schedule() -> None:
    """Events come out while the actions are still being produced (never all held at once)."""
    endless = tg.random_actions(random.Random(1), tg.Knobs(participants=10, concurrent=True))
    head = list(itertools.islice(tg.body(endless, 3.0, [str(i) for i in range(1, 11)]), 5000))
    assert len(head) == 5000 and all(e["type"] != "end" for e in head)


def test_lines_are_compact_single_line_json() -> None:
    schedule = tg.random_run(random.Random(2), tg.Knobs(), 40)
    for line in tg.lines(tg.events(schedule)):
        assert "\n" not in line and isinstance(json.loads(line), dict)
        assert json.dumps(json.loads(line), separators=(",", ":")) == line


# ----------------------------------------------------------------------------- the bench


@pytest.mark.timeout(60)
def test_bench_checkers_reports_figures_of_a_passing_check(tmp_path: Any, capsys: Any) -> None:
    pytest.importorskip("checkers")
    from benchmarks import main as bench

    keep = tmp_path / "trace.jsonl"
    argv = ["checkers", "--events", "3000", "--participants", "4", "--keep", str(keep), "--json"]
    assert bench.main(argv) == 0
    fig = json.loads(capsys.readouterr().out)
    assert 3000 <= fig["events"] < 3100 and fig["verdict"] == "pass" and fig["target_met"]
    assert fig["file_bytes"] == keep.stat().st_size
    assert sum(1 for _ in keep.open()) == fig["events"] + 1
    assert 0 < fig["check_seconds"] < 30 and 10 * 2**20 < fig["check_peak_rss_bytes"] < 2**30


def test_bench_rejects_bad_arguments_in_one_line(capsys: Any) -> None:
    from benchmarks import main as bench

    with pytest.raises(SystemExit) as stop:
        bench.main(["checkers", "--events", "0"])
    assert stop.value.code == 2
    assert "--events: must be at least 1" in capsys.readouterr().err.strip().splitlines()[-1]


# ------------------------------------------------------------- one generator, the scenario model


def test_random_runs_are_scenarios_of_the_one_generator() -> None:
    """The model simulates what harness/scenarios/randomgen.py plans: the header's scenario
    reads back (as `pams replay` reads it) as the very Scenario the run was made of."""
    from harness.scenarios import randomgen
    from harness.scenarios.model import from_json

    knobs = tg.Knobs(participants=4, concurrent=True, p_kill=0.1, p_pause=0.1, **MESSY)
    run = tg.random_run(random.Random(8), knobs, 150, seed=8)
    planned = randomgen.random_scenario(random.Random(8), knobs, 150, seed=8)
    assert (run.scenario, run.replies) == planned
    head = generate(run)[0]
    assert from_json(head["scenario"], "header") == run.scenario
    assert len(head["implementation"]["model"]["replies"]) == len(run.scenario.steps)


def test_every_registry_scenario_simulates_to_a_passing_trace() -> None:
    """A scenario the harness runs (its random-* ones from the same generator) goes through
    the model as it is: a correct implementation passes every rule and exercises what the
    scenario expects (thread-B probes, `follows` gaps kept from the labelled op's completion)."""
    from checkers import check_lines
    from harness.scenarios.registry import REGISTRY, get_scenario

    for name in REGISTRY:
        scenario = get_scenario(name, seed=3)
        verdict = check_lines(tg.lines(tg.events(tg.Run(scenario, seed=3))), name=name)
        assert verdict.verdict == "pass", verdict.summary()

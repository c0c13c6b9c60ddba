"""Seeded random schedules, the one generator of them: valid command sequences per
participant, concurrent across participants (or serialized), offline periods placed so that no
message's age at a reconnect is near td ± tol, and, on request, kills, pauses, partitions,
coordinator pauses and ops that fail or time out. Same seed → same schedule.

The harness's `random-*` scenarios come from `generate`; the trace model (benchmarks/tracegen.py)
simulates the `Scenario`s of `random_scenario`, with the `Reply` each op was planned around.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Optional

from checkers.traceformat import COORDINATOR
from checkers.traceformat import FUNCTIONS as COMMANDS
from harness.scenarios.model import DEFAULT_EXPECT, Scenario, Step, validate
from harness.scenarios.tokens import token

GAP = 0.01  # least pause between two ops of one participant (and, serialized, of anyone)
MARGIN = 0.5  # message ages at a reconnect keep this far outside td ± tol
FAULTS = ("kill", "pause", "partition")  # faults of an idle member; `duration` to the end
ENDS = {"kill": "restart", "pause": "resume", "partition": "heal"}
NEXT = {"register": "online", "reconnect": "online", "disconnect": "offline", "deregister": "out"}
VALID_FROM = {  # coordinator states in which each op is accepted; elsewhere it fails
    "register": ("out",),
    "reconnect": ("offline",),
    "disconnect": ("online",),
    "deregister": ("online", "offline"),
    "msend": ("online", "offline"),
}
P_NONE = 0.1  # share of unknown outcomes that get no completion at all (the run ends first)


@dataclass(frozen=True)
class Reply:
    """How an op went in the run a schedule was planned around: it took `duration`, the
    coordinator acted at `effect` of it (in [0, 1]) when `outcome` is "ok", never when "fail",
    and, when "info" (timed out) or "none" (no completion at all), only if `acted`."""

    duration: float
    effect: float = 0.5
    outcome: str = "ok"
    acted: bool = True

    @property
    def acts(self) -> bool:
        """Whether the coordinator acts on the op at all."""
        return self.outcome == "ok" or (self.outcome != "fail" and self.acted)


@dataclass(frozen=True)
class Knobs:
    """Shape of a random schedule."""

    participants: int = 3
    td: float = 3.0
    tolerance: float = 1.0
    latency_bound: float = 1.0
    concurrent: bool = False  # False: no two ops of anyone overlap (every state is known)
    op_time: tuple[float, float] = (0.005, 0.08)  # how long an op takes (at most)
    pause: tuple[float, float] = (GAP, 0.3)
    out_time: tuple[float, float] = (0.2, 3.0)
    p_long: float = 0.4  # an offline period outlasts td (by td + tol + MARGIN at least)
    p_leave_offline: float = 0.1  # an offline period ends in deregister instead of reconnect
    w_msend: float = 0.8
    w_disconnect: float = 0.12
    w_deregister: float = 0.08
    p_fail: float = 0.0  # an op fails: refused, or swapped for one invalid in its state
    p_info: float = 0.0  # an op times out (info; a few get no completion, ending their member)
    p_noise: float = 0.0  # a log line without a token before a delivery (the trace model's)
    p_log_reset: float = 0.0  # a new log generation before a delivery (the trace model's)
    p_kill: float = 0.0  # an idle online participant is killed (restart, then reconnect)
    p_pause: float = 0.0  # an idle online participant is paused instead of acting
    p_partition: float = 0.0  # an idle online participant is cut from the coordinator a while
    p_coordinator_pause: float = 0.0  # before an action, the coordinator pauses (all ops idle)
    pause_time: tuple[float, float] = (0.2, 2.5)
    restart_time: tuple[float, float] = (0.01, 0.04)  # a killed participant's restart after


@dataclass(frozen=True)
class _Act:
    """One planned action: an op with its reply, or a fault lasting `reply.duration`."""

    t: float
    participant: str
    f: str
    reply: Reply
    message: Optional[str] = None
    port: str = "fresh"

    @property
    def end(self) -> float:
        return self.t + self.reply.duration


@dataclass
class _Member:
    index: int
    status: str = "out"  # as the participant (and the harness) believes
    coord: str = "out"  # as the coordinator has it (differs after an info op it did not act on)
    planned: Optional[_Act] = None  # the op that ends an offline period, fixed at disconnect


@dataclass
class _Builder:
    """Mutable state of one schedule being planned (busy time, reserved slots, send bans)."""

    rng: random.Random
    k: Knobs
    busy_until: float = 0.0
    reserved: list[tuple[float, float]] = field(default_factory=list)  # planned op windows
    bans: list[tuple[float, float]] = field(default_factory=list)  # no msend window may touch
    frozen: list[tuple[float, float]] = field(default_factory=list)  # coordinator pauses: no op
    last_end: float = 0.0  # when the last op invoked so far completes
    messages: int = 0

    def reply(self, outcome: str = "ok", acted: bool = True) -> Reply:
        return Reply(self.rng.uniform(*self.k.op_time), self.rng.random(), outcome, acted)

    def conflict(self, t: float, end: float, f: str) -> Optional[float]:
        """The earliest retry time when an op [t, end] would clash with the plan, else None."""
        clashes = [b for b in self.bans if b[0] <= end and t <= b[1]] if f == "msend" else []
        clashes += [z for z in self.frozen if z[0] - GAP < end and t < z[1] + GAP]
        if not self.k.concurrent:
            if t < self.busy_until + GAP:
                return self.busy_until + GAP
            clashes += [r for r in self.reserved if r[0] - GAP < end and t < r[1] + GAP]
        return max(c[1] for c in clashes) + GAP if clashes else None

    def plan_end_of_offline(
        self,
        pid: str,
        d1: float,
        long: bool = False,
        after: float = 0.0,
        leave: bool = True,
        since: Optional[float] = None,
    ) -> _Act:
        """Fix when (and how) an offline period from `d1` ends (not before `after`), so no
        message sent since `since` (default `d1`) has an age near td at its end. `long`: the
        period outlasts td + tol + MARGIN from `d1` (after a failed end of it, so whatever was
        stored before has expired unambiguously); `leave`: it may end in deregister."""
        k, rng = self.k, self.rng
        reply = self.reply()
        span = reply.duration
        start = max(d1, after)
        room = k.td - k.tolerance - MARGIN - span - GAP - (start - d1)
        if long or rng.random() < k.p_long or room < 0.1:
            slack = k.op_time[1] + 0.05
            r0 = d1 + k.td + k.tolerance + MARGIN + rng.uniform(slack, slack + 2.0)
        else:
            r0 = start + rng.uniform(0.05, room)
        while not k.concurrent or self.frozen:
            retry = self.conflict(r0, r0 + span, "reconnect")
            if retry is None:
                break
            r0 = retry
        if not k.concurrent:
            self.reserved.append((r0, r0 + span))
        if leave and rng.random() < k.p_leave_offline:
            return _Act(r0, pid, "deregister", reply)
        first = d1 if since is None else since
        ban = (
            max(first, r0 - k.td - k.tolerance - MARGIN),
            r0 + span - k.td + k.tolerance + MARGIN,
        )
        if ban[0] < ban[1]:
            self.bans.append(ban)
        return _Act(r0, pid, "reconnect", reply)

    def fault(self, m: _Member, pid: str, t: float) -> Optional[_Act]:
        """Maybe a kill, a pause or a partition of p, when it is idle and online (surely)."""
        k, rng = self.k, self.rng
        if m.status != "online" or m.coord != "online":
            return None
        if k.p_kill and rng.random() < k.p_kill:
            return _Act(t, pid, "kill", Reply(rng.uniform(*k.restart_time)))
        if k.p_pause and rng.random() < k.p_pause:
            return _Act(t, pid, "pause", Reply(rng.uniform(*k.pause_time)))
        if k.p_partition and rng.random() < k.p_partition:
            return _Act(t, pid, "partition", Reply(rng.uniform(*k.pause_time)))
        return None

    def coordinator_pause(self, t: float, members: list[_Member]) -> Optional[_Act]:
        """Maybe a pause of the coordinator at t: only when no op is running then and no
        planned op falls in it (a paused coordinator completes no op)."""
        k, rng = self.k, self.rng
        if not k.p_coordinator_pause or rng.random() >= k.p_coordinator_pause:
            return None
        a = _Act(t, COORDINATOR, "pause", Reply(rng.uniform(*k.pause_time)))
        planned = [x.planned for x in members if x.planned is not None]
        busy = any(p.t - GAP < a.end and t < p.end + GAP for p in planned)
        if t < self.last_end + GAP or busy or self.conflict(t, a.end, "pause") is not None:
            return None
        self.frozen.append((t, a.end))
        return a

    def commit_fault(self, m: _Member, a: _Act) -> float:
        """Record fault `a` of m and return when m may act next (a killed one: its planned
        reconnect/deregister, after its restart)."""
        if a.f != "kill":
            return a.end + GAP
        m.status = m.coord = "offline"
        m.planned = self.plan_end_of_offline(a.participant, a.t, after=a.end, leave=False)
        return m.planned.t

    def choose(self, m: _Member, pid: str, t: float) -> _Act:
        k = self.k
        if m.status == "out":
            return _Act(t, pid, "register", self.reply())
        f = self.rng.choices(
            ("msend", "disconnect", "deregister"), (k.w_msend, k.w_disconnect, k.w_deregister)
        )[0]
        return self.make(_Act(t, pid, f, self.reply()))

    def make(self, a: _Act) -> _Act:
        """`a` with the message its `f` needs."""
        message = token(self.messages + 1) if a.f == "msend" else None
        return replace(a, message=message)

    def settle(self, m: _Member, a: _Act) -> _Act:
        """Decide `a`'s outcome: it fails when the coordinator would refuse it (or at random,
        maybe swapped for an op invalid in the coordinator's state); else maybe times out."""
        k, rng = self.k, self.rng
        if k.p_fail and rng.random() < k.p_fail:
            invalid = [f for f in COMMANDS if m.coord not in VALID_FROM[f]]
            if rng.random() < 0.5:
                a = self.make(replace(a, f=rng.choice(invalid)))
            return replace(a, reply=replace(a.reply, outcome="fail", acted=False))
        if m.coord not in VALID_FROM[a.f]:
            return replace(a, reply=replace(a.reply, outcome="fail", acted=False))
        if k.p_info and rng.random() < k.p_info:
            outcome = "none" if rng.random() < P_NONE else "info"
            return replace(a, reply=replace(a.reply, outcome=outcome, acted=rng.random() < 0.5))
        return a

    def commit(self, m: _Member, a: _Act) -> float:
        """Record `a` as done and return when this participant may act next (inf: never)."""
        end, outcome = a.end, a.reply.outcome
        self.busy_until = max(self.busy_until, end)
        self.last_end = max(self.last_end, end)
        self.reserved = [r for r in self.reserved if r[1] + GAP >= a.t]
        self.bans = [b for b in self.bans if b[1] >= a.t]
        m.planned = None
        if a.f == "msend":
            self.messages += 1
        if outcome == "none":
            return math.inf
        if outcome == "fail":  # the error reply tells how things stand
            m.status = m.coord
            if m.status == "offline":
                m.planned = self.plan_end_of_offline(a.participant, end, long=True)
                return m.planned.t
            return end + self.rng.uniform(*self.k.pause)
        m.status = NEXT.get(a.f, m.status)
        if a.reply.acts:
            m.coord = NEXT.get(a.f, m.coord)
        if a.f == "disconnect":
            m.planned = self.plan_end_of_offline(a.participant, end, since=a.t)
            return m.planned.t
        if a.f == "deregister":
            return end + self.rng.uniform(*self.k.out_time)
        return end + self.rng.uniform(*self.k.pause)


def _plan(b: _Builder, members: list[_Member]) -> Iterator[_Act]:
    """The endless, time-ordered stream of planned actions by `members` ("1".."n").

    Unless `knobs.concurrent`, no two ops overlap, so every state at every message is known
    (until an op of that participant times out); either way no message sent while a
    participant is known offline has an age at its reconnect within td ± (tol + MARGIN), so
    every persistence outcome is unambiguous. An op with no completion ends its participant's
    stream (while at least half of them go on); the others go on as the harness would, whatever
    the outcome, and what the coordinator refuses fails.
    """
    rng, knobs = b.rng, b.k
    queue = [(rng.uniform(0.1, 1.0 + knobs.participants * 0.2), i) for i in range(len(members))]
    heapq.heapify(queue)
    while queue:
        t, i = heapq.heappop(queue)
        m, pid = members[i], str(i + 1)
        pause = b.coordinator_pause(t, members)
        if pause is not None:
            heapq.heappush(queue, (t, i))
            yield pause
            continue
        a = m.planned or b.fault(m, pid, t) or b.choose(m, pid, t)
        retry = None if m.planned else b.conflict(t, a.end, a.f)
        if retry is not None:
            heapq.heappush(queue, (retry, i))
            continue
        if a.f in FAULTS:
            heapq.heappush(queue, (b.commit_fault(m, a), i))
            yield a
            continue
        a = b.settle(m, a)
        if a.reply.outcome == "none" and len(queue) < max(1, knobs.participants // 2):
            a = replace(a, reply=replace(a.reply, outcome="info"))  # keep half of them going
        after = b.commit(m, a)
        if after < math.inf:
            heapq.heappush(queue, (after, i))
        yield a


def _planner(rng: random.Random, knobs: Knobs) -> tuple[_Builder, list[_Member]]:
    return _Builder(rng, knobs), [_Member(i) for i in range(knobs.participants)]


def _steps(a: _Act) -> list[Step]:
    """The scenario steps of a planned action: an op, or a fault and its end."""
    t = round(a.t, 6)
    if a.f in ENDS:
        return [Step(t, a.f, a.participant), Step(round(a.end, 6), ENDS[a.f], a.participant)]
    return [Step(t, a.f, a.participant, message=a.message, port=a.port)]


def random_steps(rng: random.Random, knobs: Knobs) -> Iterator[tuple[Step, Optional[Reply]]]:
    """The endless stream of `_plan` as scenario steps, each op with its planned reply (a
    fault's end step with None); ops in time order, a fault's end may come later."""
    for a in _plan(*_planner(rng, knobs)):
        first, *rest = _steps(a)
        yield first, a.reply
        for step in rest:
            yield step, None


def random_scenario(
    rng: random.Random, knobs: Knobs, ops: int, seed: int = 0, name: str = "random"
) -> tuple[Scenario, tuple[Optional[Reply], ...]]:
    """The first `ops` actions of `random_steps` as a `Scenario` (steps by time, stable), and
    each step's planned reply in the same order."""
    acts = list(itertools.islice(_plan(*_planner(rng, knobs)), ops))
    planned = sorted(
        ((s, a.reply if j == 0 else None) for a in acts for j, s in enumerate(_steps(a))),
        key=lambda x: x[0].at,
    )
    sc = Scenario(
        name=name,
        participants=tuple(str(i + 1) for i in range(knobs.participants)),
        steps=tuple(s for s, _ in planned),
        td=knobs.td,
        description=f"random schedule (seed {seed}, {knobs.participants} participants)",
        tolerance=knobs.tolerance,
        latency_bound=knobs.latency_bound,
        seed=seed,
    )
    return validate(sc, ""), tuple(r for _, r in planned)


# --------------------------------------------------------------- the harness's random-* scenarios

HARNESS_GAP = 0.3  # seconds between two steps of one participant (its previous op is done)


def harness_knobs(n: int, td: float, tol: float, faults: bool) -> Knobs:
    """Schedules a real implementation can follow: ops spaced by HARNESS_GAP, concurrent
    across participants, with crashes, pauses and partitions when `faults`."""
    return Knobs(
        participants=n,
        td=td,
        tolerance=tol,
        concurrent=True,
        op_time=(HARNESS_GAP, HARNESS_GAP),
        pause=(GAP, 0.2),
        out_time=(0.3, 1.0),
        p_long=0.4,
        w_msend=0.65,
        w_disconnect=0.2,
        w_deregister=0.15,
        p_kill=0.07 if faults else 0.0,
        p_pause=0.07 if faults else 0.0,
        p_partition=0.07 if faults else 0.0,
        pause_time=(0.6, 0.6),
        restart_time=(0.3, 0.3),
    )


def generate(
    name: str,
    seed: int,
    n: int = 4,
    duration: float = 8.0,
    td: float = 2.0,
    tol: float = 1.0,
    faults: bool = False,
    profiles: tuple[str, ...] = (),
) -> Scenario:
    """A random schedule of `duration` seconds for `n` participants, planned by the one
    generator with `harness_knobs`; then everyone comes back and sends a last message, so the
    end is checked too. With `faults`, crash and restart, pauses and partitions are mixed in."""
    steps: list[Step] = []
    b, members = _planner(random.Random(seed), harness_knobs(n, td, tol, faults))
    for a in _plan(b, members):
        steps += _steps(a)  # the first one past `duration` too: what follows it is planned
        if a.t >= duration:
            break
    steps += _finish(b, members, steps)
    sc = Scenario(
        name,
        tuple(str(i) for i in range(1, n + 1)),
        tuple(sorted(steps, key=lambda s: s.at)),
        td,
        description=f"random schedule (seed {seed}, {n} participants)"
        + (", with crashes, pauses and partitions" if faults else ""),
        profiles=profiles,
        seed=seed,
        expect=DEFAULT_EXPECT,
    )
    return validate(sc, "")


def _finish(b: _Builder, members: list[_Member], planned: list[Step]) -> list[Step]:
    """Bring everyone back (each planned reconnect as planned; a member out registers), then
    one last message each."""
    steps: list[Step] = []
    last = {s.target: s.at for s in planned}
    ends = []
    for i, m in enumerate(members):
        pid = str(i + 1)
        start = last.get(pid, 0.0) + HARNESS_GAP
        if m.planned is not None:
            steps += _steps(m.planned)
            start = m.planned.end + HARNESS_GAP
            if m.planned.f == "deregister":
                steps.append(Step(round(start, 6), "register", pid))
                start += HARNESS_GAP
        elif m.status == "out":
            steps.append(Step(round(start, 6), "register", pid))
            start += HARNESS_GAP
        ends.append(start)
    end = max(ends)
    for i, _ in enumerate(members):
        b.messages += 1
        steps.append(Step(round(end + 0.05 * i, 6), "msend", str(i + 1), token(b.messages)))
    return steps

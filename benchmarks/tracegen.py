"""Trace generator: a small model of a correct system that emits trace-format-v1 events.

Pure and deterministic: a schedule of participant actions (or a seeded random stream of them)
goes in, the header and events a correct coordinator would produce (docs/trace-format.md,
docs/rules.md) come out.
No sockets, no clocks, no checker import; events stream out in time order, so a trace of any
length is written without holding it in memory. Besides `ok` ops the model knows ops that
failed (no effect), ops whose outcome the harness never learned (`info`, or no completion),
log lines without a token (`noise`) and logs that start a new generation (`log_reset`).

Faults (actions with f "kill" or "pause", off by default): a participant killed at k loses
what was in flight to it (or it lands at k), the coordinator keeps what is sent later for its
next reconnect as for an offline one, and the harness restarts it (a new log generation) after
`duration`; a pause (of a participant, or of the "coordinator") lasts `duration`, and every
delivery that would land while its receiver or the coordinator is paused lands just after
the resume instead.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from checkers.traceformat import COORDINATOR, FUNCTIONS  # noqa: E402

FAULTS = ("kill", "pause")  # fault actions: `duration` is the restart delay / the pause length
TOKEN_DIGITS = 7
MARGIN = 0.5  # generated message ages at reconnect keep this far outside td ± tol
GAP = 0.01  # least pause between two ops of one participant (and, serialized, of anyone)
PROBE_DELAY = 0.002  # port_released probe after a disconnect/deregister completes
LATENCY_MAX = 0.05  # a delivery lands at most this long after the coordinator acted
_NEXT = {"register": "online", "reconnect": "online", "disconnect": "offline", "deregister": "out"}
VALID_FROM = {  # coordinator states in which each op is accepted; elsewhere it fails
    "register": ("out",),
    "reconnect": ("offline",),
    "disconnect": ("online",),
    "deregister": ("online", "offline"),
    "msend": ("online", "offline"),
}
OUTCOMES = ("ok", "fail", "info", "none")
NOISE = ("Welcome!", "Participant ready", "> ", "[connected to coordinator]")
RESETS = ("truncated", "deleted", "recreated")
P_NONE = 0.1  # share of unknown outcomes that get no completion at all (the trace ends first)


def token(n: int) -> str:
    """The n-th message token: "M" and 7 digits, so none can appear inside a run of others."""
    return f"M{n:0{TOKEN_DIGITS}d}"


@dataclass(frozen=True)
class Action:
    """One op a participant invokes at `t`; its completion (`outcome`) comes at `t + duration`.

    The coordinator acts on it at `t + effect * duration` (effect in [0, 1]) when the outcome
    is `ok`, never when it is `fail`, and, when it is `info` (timed out) or `none` (no
    completion at all), only if `acted`. A fault action (f in FAULTS) is injected at `t` and
    lasts `duration` (kill: until the restart; pause: until the resume).
    """

    t: float
    participant: str
    f: str
    duration: float
    effect: float = 0.5
    message: str = ""
    port: int = 0
    outcome: str = "ok"
    acted: bool = True

    @property
    def acts(self) -> bool:
        """Whether the coordinator acts on this op at all."""
        return self.outcome == "ok" or (self.outcome != "fail" and self.acted)


@dataclass(frozen=True)
class Schedule:
    """A whole run: parameters and the time-ordered actions of every participant."""

    td: float
    participants: tuple[str, ...]
    actions: tuple[Action, ...]
    tolerance: float = 1.0
    latency_bound: float = 1.0
    seed: int = 0
    scenario: str = "tracegen"
    p_noise: float = 0.0  # before each delivery, a log line without a token
    p_log_reset: float = 0.0  # before each delivery, the participant's log starts afresh


@dataclass(frozen=True)
class Knobs:
    """Shape of a random schedule (see `random_actions`)."""

    participants: int = 3
    td: float = 3.0
    tolerance: float = 1.0
    latency_bound: float = 1.0
    concurrent: bool = False  # False: no two ops of anyone overlap (every state is known)
    op_time: tuple[float, float] = (0.005, 0.08)
    pause: tuple[float, float] = (GAP, 0.3)
    out_time: tuple[float, float] = (0.2, 3.0)
    p_long: float = 0.4  # an offline period outlasts td (by td + tol + MARGIN at least)
    p_leave_offline: float = 0.1  # an offline period ends in deregister instead of reconnect
    w_msend: float = 0.8
    w_disconnect: float = 0.12
    w_deregister: float = 0.08
    p_fail: float = 0.0  # an op fails: refused, or swapped for one invalid in its state
    p_info: float = 0.0  # an op times out (info; a few get no completion, ending their participant)
    p_noise: float = 0.0  # a log line without a token before a delivery
    p_log_reset: float = 0.0  # a new log generation before a delivery
    p_kill: float = 0.0  # an idle online participant is killed (restart, then reconnect) instead
    p_pause: float = 0.0  # an idle online participant is paused instead of acting
    p_coordinator_pause: float = 0.0  # before an action, the coordinator pauses (all ops idle)
    pause_time: tuple[float, float] = (0.2, 2.5)


# ----------------------------------------------------------------------------- the model


class CoordinatorModel:
    """A correct coordinator over its own instants: membership, offline store, td expiry.

    `send` returns who gets a message at once; `act` applies an op and returns the stored
    tokens a reconnecting participant gets (in send order, only those sent within td).
    """

    def __init__(self, td: float, participants: Iterable[str]) -> None:
        self.td = td
        self.status = {p: "out" for p in participants}
        self.stored: dict[str, list[tuple[float, str]]] = {p: [] for p in self.status}

    def send(self, at: float, message: str, sender: Optional[str] = None) -> list[str]:
        if sender is not None and self.status[sender] not in VALID_FROM["msend"]:
            raise ValueError(f"msend by {sender} while {self.status[sender]}")
        for p, status in self.status.items():
            if status == "offline":
                self.stored[p].append((at, message))
        return [p for p, status in self.status.items() if status == "online"]

    def kill(self, participant: str) -> None:
        """The participant's process died: from now on sends to it fail, so the coordinator
        keeps messages for it as for an offline one (no change unless it was online)."""
        if self.status[participant] == "online":
            self.status[participant] = "offline"
            self.stored[participant] = []

    def act(self, at: float, participant: str, f: str) -> list[str]:
        status = self.status[participant]
        allowed = {"register": "out", "reconnect": "offline", "disconnect": "online"}
        if f in allowed and status != allowed[f]:
            raise ValueError(f"{f} by {participant} while {status}")
        self.status[participant] = _NEXT[f]
        kept = self.stored[participant]
        self.stored[participant] = []
        if f != "reconnect":
            return []
        return [m for sent, m in kept if at - sent <= self.td]


# ----------------------------------------------------------------------------- events


def header(
    td: float,
    participants: Iterable[str],
    *,
    tolerance: float = 1.0,
    latency_bound: float = 1.0,
    seed: int = 0,
    scenario: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """The trace-format-v1 header line (as a dict)."""
    return {
        "type": "header",
        "format": "pams-trace",
        "version": 1,
        "run_id": f"tracegen-{seed}",
        "td": td,
        "participants": list(participants),
        "implementation": {"name": "model"},
        "scenario": scenario or {"name": "tracegen"},
        "seed": seed,
        "tolerance": tolerance,
        "latency_bound": latency_bound,
    }


@dataclass
class _Sim:
    """Mutable bookkeeping of one `body` run (kept out of the public API)."""

    model: CoordinatorModel
    rng: random.Random
    latency: float
    coord: list[tuple[float, int, str, Any]] = field(default_factory=list)
    out: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    in_flight: dict[str, list[list[Any]]] = field(default_factory=dict)
    seq: Iterator[int] = field(default_factory=itertools.count)
    paused: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def resumed(self, p: str, t: float) -> Optional[float]:
        """When a delivery to p landing at `t` can land: the resume of a pause of p or of the
        coordinator holding at t (the latest such), or None when none holds."""
        ends = [b for who in (p, COORDINATOR) for a, b in self.paused.get(who, ()) if a <= t < b]
        return max(ends) if ends else None

    def emit(self, t: float, event: dict[str, Any]) -> None:
        heapq.heappush(self.out, (t, next(self.seq), event))

    def launch(self, at: float, p: str, message: str) -> None:
        cell = [message, False]
        flying = self.in_flight.setdefault(p, [])
        if len(flying) > 64:  # forget what has landed already
            flying[:] = [c for c in flying if not c[1]]
        flying.append(cell)
        heapq.heappush(self.coord, (at, next(self.seq), "land", (p, cell)))

    def land(self, t: float, p: str, cell: list[Any]) -> None:
        if not cell[1]:
            cell[1] = True
            self.emit(t, {"type": "deliver", "t": t, "participant": p, "message": cell[0]})

    def step(self) -> None:
        at, _, kind, data = heapq.heappop(self.coord)
        if kind == "land":
            later = self.resumed(data[0], at)
            if later is None:
                self.land(at, *data)
            else:
                heapq.heappush(self.coord, (later + 0.001, next(self.seq), "land", data))
            return
        a: Action = data
        if a.f == "kill":
            for cell in self.in_flight.pop(a.participant, []):
                if not cell[1] and self.rng.random() < 0.5:
                    self.land(at, a.participant, cell)  # logged just before it died
                cell[1] = True  # else lost with the process
            self.model.kill(a.participant)
            return
        if a.f == "msend":
            for p in self.model.send(at, a.message, a.participant):
                self.launch(at + self.rng.uniform(0.001, self.latency), p, a.message)
            return
        if a.f in ("disconnect", "deregister"):  # what is in flight lands before the port closes
            for cell in self.in_flight.pop(a.participant, []):
                self.land(at, a.participant, cell)
        due = self.model.act(at, a.participant, a.f)
        lag = self.rng.uniform(0.001, self.latency / 2)
        step = min(0.001, self.latency / 2 / max(len(due), 1))
        for i, message in enumerate(due):
            self.launch(at + lag + i * step, a.participant, message)

    def run_until(self, bound: float) -> None:
        while self.coord and self.coord[0][0] < bound:
            self.step()

    def flush(self, bound: float) -> Iterator[dict[str, Any]]:
        limit = min(bound, self.coord[0][0]) if self.coord else bound
        while self.out and self.out[0][0] < limit:
            yield heapq.heappop(self.out)[2]


@dataclass
class _Log:
    """Each participant's log lines: numbering per generation, noise and resets (own rng)."""

    rng: random.Random
    p_noise: float
    p_reset: float
    line_no: dict[str, int]

    def number(self, event: dict[str, Any]) -> dict[str, Any]:
        p = event["participant"]
        self.line_no[p] += 1
        event["line_no"] = self.line_no[p]
        return event

    def before(self, p: str, since: float, t: float) -> Iterator[dict[str, Any]]:
        """What p's log shows between its last event at `since` and a delivery at `t`."""
        if self.p_reset and self.rng.random() < self.p_reset:
            self.line_no[p] = 0
            at = round(self.rng.uniform(since, t), 6)
            yield {"type": "log_reset", "t": at, "participant": p, "reason": self.pick(RESETS)}
        if self.p_noise and self.rng.random() < self.p_noise:
            noise = {"type": "noise", "t": round(t, 6), "participant": p}
            yield self.number(dict(noise, line=self.pick(NOISE)))

    def pick(self, choices: tuple[str, ...]) -> str:
        return choices[self.rng.randrange(len(choices))]


def body(
    actions: Iterable[Action],
    td: float,
    participants: Iterable[str],
    *,
    seed: int = 0,
    latency_bound: float = 1.0,
    p_noise: float = 0.0,
    p_log_reset: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Every event after the header (the `end` included) for time-ordered `actions`.

    Times are rounded to microseconds; `line_no` counts each participant's log lines
    (deliveries and noise) from 1 in every log generation.
    """
    sim = _Sim(
        CoordinatorModel(td, participants),
        random.Random(seed),
        min(LATENCY_MAX, latency_bound / 4),
    )
    log = _Log(
        random.Random(f"log-{seed}"), p_noise, p_log_reset, dict.fromkeys(sim.model.status, 0)
    )
    ports: dict[str, int] = {}
    previous = last = 0.0
    for op, a in enumerate(itertools.chain(actions, [None]), start=1):
        now = math.inf if a is None else a.t
        if now < previous:
            raise ValueError(f"action at t={now} comes after one at t={previous}")
        previous = now
        sim.run_until(now)
        for event in sim.flush(now):
            if event["type"] == "log_reset":
                log.line_no[event["participant"]] = 0
            if event["type"] == "deliver":
                yield from log.before(event["participant"], last, event["t"])
                log.number(event)["line"] = event["message"]
            last = event["t"]
            event["t"] = round(last, 6)
            yield event
        if a is not None:
            _submit(sim, op, a, ports)
    yield {"type": "end", "t": round(last + 0.5, 6)}


def _inject(sim: _Sim, a: Action) -> None:
    """The fault events of fault action `a` and, for a kill, its effect at the coordinator."""
    end = a.t + a.duration
    back = "restart" if a.f == "kill" else "resume"
    sim.emit(a.t, {"type": "fault", "t": a.t, "fault": a.f, "target": a.participant})
    sim.emit(end, {"type": "fault", "t": end, "fault": back, "target": a.participant})
    if a.f == "pause":
        sim.paused.setdefault(a.participant, []).append((a.t, end))
        return
    sim.emit(
        end, {"type": "log_reset", "t": end, "participant": a.participant, "reason": "recreated"}
    )
    heapq.heappush(sim.coord, (a.t, next(sim.seq), "act", a))


def _submit(sim: _Sim, op: int, a: Action, ports: dict[str, int]) -> None:
    known = a.participant in sim.model.status or (a.f == "pause" and a.participant == COORDINATOR)
    if a.f in FAULTS and known and a.duration > 0:
        _inject(sim, a)
        return
    if a.f not in FUNCTIONS or a.participant not in sim.model.status or a.outcome not in OUTCOMES:
        raise ValueError(f"unknown action {a.f!r} ({a.outcome}) by {a.participant!r}")
    invoke: dict[str, Any] = {"type": "invoke", "t": a.t, "op": op, "participant": a.participant}
    invoke["f"] = a.f
    if a.f == "msend":
        invoke["message"] = a.message
    if a.f in ("register", "reconnect"):
        invoke["port"] = ports[a.participant] = a.port
    done = a.t + a.duration
    status = sim.model.status[a.participant]
    faulted = a.outcome in ("info", "none") or (a.outcome == "fail" and status in VALID_FROM[a.f])
    if faulted:  # what made a valid op fail or time out: a partition (docs/rules.md)
        cut = {"type": "fault", "fault": "partition", "target": a.participant}
        sim.emit(a.t, dict(cut, t=a.t))
    sim.emit(a.t, invoke)
    if a.outcome != "none":
        sim.emit(done, _completion(a, op, done, status))
        if faulted:
            heal = {"type": "fault", "t": done, "fault": "heal", "target": a.participant}
            sim.emit(done, heal)
    if a.f in ("disconnect", "deregister") and a.outcome == "ok":
        probe = {"type": "probe", "t": done + PROBE_DELAY, "participant": a.participant}
        probe.update(probe="port_released", port=ports.get(a.participant, 0), ok=True)
        sim.emit(done + PROBE_DELAY, probe)
    if a.acts:
        heapq.heappush(sim.coord, (a.t + a.effect * a.duration, next(sim.seq), "act", a))


def _completion(a: Action, op: int, done: float, status: str) -> dict[str, Any]:
    """The `ok`/`fail`/`info` event of op `op`; `status` is its participant's at the invoke."""
    event: dict[str, Any] = {"type": a.outcome, "t": done, "op": op}
    if a.outcome == "info":
        event["reason"] = "timeout"
    if a.outcome == "fail":
        valid = status in VALID_FROM[a.f]
        event["error"] = "connection refused" if valid else f"{a.f}: refused while {status}"
    return event


def events(schedule: Schedule) -> Iterator[dict[str, Any]]:
    """The whole trace of `schedule` (header first, `end` last) as event dicts."""
    actions = [asdict(a) for a in schedule.actions]
    scenario = {"name": schedule.scenario, "actions": actions}
    yield header(
        schedule.td,
        schedule.participants,
        tolerance=schedule.tolerance,
        latency_bound=schedule.latency_bound,
        seed=schedule.seed,
        scenario=scenario,
    )
    yield from body(
        schedule.actions,
        schedule.td,
        schedule.participants,
        seed=schedule.seed,
        latency_bound=schedule.latency_bound,
        p_noise=schedule.p_noise,
        p_log_reset=schedule.p_log_reset,
    )


def lines(events_: Iterable[dict[str, Any]]) -> Iterator[str]:
    """JSON Lines (without newline) of `events_`."""
    return (json.dumps(e, separators=(",", ":")) for e in events_)


# ----------------------------------------------------------------------------- random schedules


@dataclass
class _Member:
    index: int
    status: str = "out"  # as the participant (and the harness) believes
    coord: str = "out"  # as the coordinator has it (differs after an info op it did not act on)
    ports: int = 0
    planned: Optional[Action] = None  # the op that ends an offline period, fixed at disconnect


@dataclass
class _Builder:
    """Mutable state of `random_actions` (the plan: busy time, reserved slots, send bans)."""

    rng: random.Random
    k: Knobs
    busy_until: float = 0.0
    reserved: list[tuple[float, float]] = field(default_factory=list)  # planned op windows
    bans: list[tuple[float, float]] = field(default_factory=list)  # no msend window may touch
    frozen: list[tuple[float, float]] = field(default_factory=list)  # coordinator pauses: no op
    last_end: float = 0.0  # when the last op invoked so far completes
    messages: int = 0

    def span(self) -> float:
        return self.rng.uniform(*self.k.op_time)

    def port(self, m: _Member) -> int:
        m.ports += 1
        return 20000 + (m.index * 97 + m.ports) % 40000

    def conflict(self, t: float, end: float, f: str) -> Optional[float]:
        """The earliest retry time when an op [t, end] would clash with the plan, else None."""
        clashes = [b for b in self.bans if b[0] <= end and t <= b[1]] if f == "msend" else []
        clashes += [z for z in self.frozen if z[0] - GAP < end and t < z[1] + GAP]
        if not self.k.concurrent:
            if t < self.busy_until + GAP:
                return self.busy_until + GAP
            clashes += [r for r in self.reserved if r[0] - GAP < end and t < r[1] + GAP]
        return max(c[1] for c in clashes) + GAP if clashes else None

    def plan_end_of_offline(self, m: _Member, pid: str, d1: float, long: bool = False) -> Action:
        """Fix when (and how) an offline period ends, so no stored message's age is near td.

        `long`: the period outlasts td + tol + MARGIN from `d1` (after a failed end of it, so
        whatever was stored before has expired unambiguously).
        """
        k, rng = self.k, self.rng
        span = self.span()
        room = k.td - k.tolerance - MARGIN - span - GAP
        if long or rng.random() < k.p_long or room < 0.1:
            slack = k.op_time[1] + 0.05
            r0 = d1 + k.td + k.tolerance + MARGIN + rng.uniform(slack, slack + 2.0)
        else:
            r0 = d1 + rng.uniform(0.05, room)
        while not k.concurrent or self.frozen:
            retry = self.conflict(r0, r0 + span, "reconnect")
            if retry is None:
                break
            r0 = retry
        if not k.concurrent:
            self.reserved.append((r0, r0 + span))
        if rng.random() < k.p_leave_offline:
            return Action(r0, pid, "deregister", span, rng.random())
        ban = (max(d1, r0 - k.td - k.tolerance - MARGIN), r0 + span - k.td + k.tolerance + MARGIN)
        if ban[0] < ban[1]:
            self.bans.append(ban)
        return Action(r0, pid, "reconnect", span, rng.random(), port=self.port(m))

    def fault(self, m: _Member, pid: str, t: float) -> Optional[Action]:
        """Maybe a kill or a pause of p, when it is idle and online (surely, for everyone)."""
        k, rng = self.k, self.rng
        if m.status != "online" or m.coord != "online" or not (k.p_kill or k.p_pause):
            return None
        if k.p_kill and rng.random() < k.p_kill:
            return Action(t, pid, "kill", rng.uniform(0.01, 0.04))  # restarts before r0
        if k.p_pause and rng.random() < k.p_pause:
            return Action(t, pid, "pause", rng.uniform(*k.pause_time))
        return None

    def coordinator_pause(self, t: float, members: list[_Member]) -> Optional[Action]:
        """Maybe a pause of the coordinator at t: only when no op is running then and no
        planned op falls in it (a paused coordinator completes no op)."""
        k, rng = self.k, self.rng
        if not k.p_coordinator_pause or rng.random() >= k.p_coordinator_pause:
            return None
        a = Action(t, COORDINATOR, "pause", rng.uniform(*k.pause_time))
        end = t + a.duration
        planned = [x.planned for x in members if x.planned is not None]
        busy = any(p.t - GAP < end and t < p.t + p.duration + GAP for p in planned)
        if t < self.last_end + GAP or busy or self.conflict(t, end, "pause") is not None:
            return None
        self.frozen.append((t, end))
        return a

    def commit_fault(self, m: _Member, a: Action) -> float:
        """Record fault `a` of m and return when m may act next (a killed one: its planned
        reconnect/deregister, at least 0.05 s on, after its restart)."""
        if a.f == "pause":
            return a.t + a.duration + GAP
        m.status = m.coord = "offline"
        m.planned = self.plan_end_of_offline(m, a.participant, a.t)
        return m.planned.t

    def choose(self, m: _Member, pid: str, t: float) -> Action:
        span, rng, k = self.span(), self.rng, self.k
        if m.status == "out":
            return Action(t, pid, "register", span, rng.random(), port=self.port(m))
        f = rng.choices(
            ("msend", "disconnect", "deregister"), (k.w_msend, k.w_disconnect, k.w_deregister)
        )[0]
        return self.make(m, Action(t, pid, f, span, rng.random()))

    def make(self, m: _Member, a: Action) -> Action:
        """`a` with the message or port its `f` needs."""
        if a.f == "msend":
            return replace(a, message=token(self.messages + 1), port=0)
        if a.f in ("register", "reconnect"):
            return replace(a, port=self.port(m), message="")
        return replace(a, port=0, message="")

    def settle(self, m: _Member, a: Action) -> Action:
        """Decide `a`'s outcome: it fails when the coordinator would refuse it (or at random,
        maybe swapped for an op invalid in the coordinator's state); else maybe times out."""
        k, rng = self.k, self.rng
        if k.p_fail and rng.random() < k.p_fail:
            invalid = [f for f in FUNCTIONS if m.coord not in VALID_FROM[f]]
            if rng.random() < 0.5:
                a = self.make(m, replace(a, f=rng.choice(invalid)))
            return replace(a, outcome="fail", acted=False)
        if m.coord not in VALID_FROM[a.f]:
            return replace(a, outcome="fail", acted=False)
        if k.p_info and rng.random() < k.p_info:
            outcome = "none" if rng.random() < P_NONE else "info"
            return replace(a, outcome=outcome, acted=rng.random() < 0.5)
        return a

    def commit(self, m: _Member, a: Action) -> float:
        """Record `a` as done and return when this participant may act next (inf: never)."""
        end = a.t + a.duration
        self.busy_until = max(self.busy_until, end)
        self.last_end = max(self.last_end, end)
        self.reserved = [r for r in self.reserved if r[1] + GAP >= a.t]
        self.bans = [b for b in self.bans if b[1] >= a.t]
        m.planned = None
        if a.f == "msend":
            self.messages += 1
        if a.outcome == "none":
            return math.inf
        if a.outcome == "fail":  # the error reply tells how things stand
            m.status = m.coord
            if m.status == "offline":
                m.planned = self.plan_end_of_offline(m, a.participant, end, long=True)
                return m.planned.t
            return end + self.rng.uniform(*self.k.pause)
        m.status = _NEXT.get(a.f, m.status)
        if a.acts:
            m.coord = _NEXT.get(a.f, m.coord)
        if a.f == "disconnect":
            m.planned = self.plan_end_of_offline(m, a.participant, end)
            return m.planned.t
        if a.f == "deregister":
            return end + self.rng.uniform(*self.k.out_time)
        return end + self.rng.uniform(*self.k.pause)


def random_actions(rng: random.Random, knobs: Knobs) -> Iterator[Action]:
    """An endless, time-ordered stream of valid actions by participants "1".."n".

    Unless `knobs.concurrent`, no two ops overlap, so every state at every message is known
    (until an op of that participant times out); either way no message sent while a
    participant is known offline has an age at its reconnect within td ± (tol + MARGIN), so
    every persistence outcome is unambiguous. An op with no completion ends its participant's
    stream (while at least half of them go on); the others go on as the harness would, whatever the
    outcome, and what the coordinator refuses fails.
    """
    b = _Builder(rng, knobs)
    members = [_Member(i) for i in range(knobs.participants)]
    queue = [(rng.uniform(0.1, 1.0 + knobs.participants * 0.2), i) for i in range(len(members))]
    heapq.heapify(queue)
    while True:
        t, i = heapq.heappop(queue)
        m, pid = members[i], str(i + 1)
        pause = b.coordinator_pause(t, members)
        if pause is not None:
            heapq.heappush(queue, (t, i))
            yield pause
            continue
        a = m.planned or b.fault(m, pid, t) or b.choose(m, pid, t)
        retry = None if m.planned else b.conflict(t, t + a.duration, a.f)
        if retry is not None:
            heapq.heappush(queue, (retry, i))
            continue
        if a.f in FAULTS:
            heapq.heappush(queue, (b.commit_fault(m, a), i))
            yield a
            continue
        a = b.settle(m, a)
        if a.outcome == "none" and len(queue) < max(1, knobs.participants // 2):
            a = replace(a, outcome="info")  # keep at least half of them going
        after = b.commit(m, a)
        if after < math.inf:
            heapq.heappush(queue, (after, i))
        yield a


def random_schedule(
    rng: random.Random, knobs: Knobs, ops: int, seed: int = 0, scenario: str = "random"
) -> Schedule:
    """The first `ops` actions of `random_actions` as a `Schedule`."""
    actions = tuple(itertools.islice(random_actions(rng, knobs), ops))
    return Schedule(
        td=knobs.td,
        participants=tuple(str(i + 1) for i in range(knobs.participants)),
        actions=actions,
        tolerance=knobs.tolerance,
        latency_bound=knobs.latency_bound,
        seed=seed,
        scenario=scenario,
        p_noise=knobs.p_noise,
        p_log_reset=knobs.p_log_reset,
    )


def random_trace(
    knobs: Knobs, seed: int, events_wanted: int, deliveries_wanted: Optional[int] = None
) -> Iterator[str]:
    """JSON lines of a correct random trace of about `events_wanted` events (header excluded),
    or, when `deliveries_wanted` is given, of about that many deliveries.

    Streams: memory stays bounded by what is in flight, whatever the length.
    """
    emitted = delivered = 0

    def feed() -> Iterator[Action]:
        for a in random_actions(random.Random(seed), knobs):
            if deliveries_wanted is not None:
                if delivered >= deliveries_wanted:
                    return
            elif emitted >= events_wanted - 1:
                return
            yield a

    participants = [str(i + 1) for i in range(knobs.participants)]
    scenario = {"name": "random", "knobs": asdict(knobs)}
    yield json.dumps(
        header(
            knobs.td,
            participants,
            tolerance=knobs.tolerance,
            latency_bound=knobs.latency_bound,
            seed=seed,
            scenario=scenario,
        ),
        separators=(",", ":"),
    )
    trace = body(
        feed(),
        knobs.td,
        participants,
        seed=seed,
        latency_bound=knobs.latency_bound,
        p_noise=knobs.p_noise,
        p_log_reset=knobs.p_log_reset,
    )
    for event in trace:
        emitted += 1
        delivered += event["type"] == "deliver"
        yield json.dumps(event, separators=(",", ":"))


def schedules(
    min_ops: int = 5, max_ops: int = 60, **fixed: Any
) -> Any:  # a hypothesis SearchStrategy[Schedule]
    """Hypothesis strategy of random schedules (test-only import); `fixed` pins `Knobs` fields
    to a value, or draws them from a strategy."""
    from hypothesis import strategies as st

    def build(rng: random.Random, knobs: Knobs, ops: int, seed: int) -> Schedule:
        return random_schedule(rng, knobs, ops, seed=seed, scenario="hypothesis")

    knob_fields: dict[str, Any] = {
        "participants": st.integers(2, 5),
        "td": st.sampled_from([2.0, 2.5, 3.0, 4.0, 6.0]),
        "tolerance": st.sampled_from([1.0, 0.25]),
        "latency_bound": st.sampled_from([1.0, 0.5]),
        "concurrent": st.booleans(),
        "p_long": st.sampled_from([0.0, 0.4, 0.8]),
        "p_leave_offline": st.sampled_from([0.0, 0.1, 0.5]),
        "w_msend": st.sampled_from([0.5, 0.8]),
    }
    for name, value in fixed.items():
        knob_fields[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
    return st.builds(
        build,
        rng=st.randoms(use_true_random=True),  # draws as designed; shrinks ops and knobs
        knobs=st.builds(Knobs, **knob_fields),
        ops=st.integers(min_ops, max_ops),
        seed=st.integers(0, 2**16),
    )

"""Trace model: simulates a `Scenario` (harness/scenarios/model.py) run by a correct
implementation and emits the trace-format-v1 events the harness would record
(docs/trace-format.md, docs/rules.md).

Pure and deterministic: a scenario — from the random schedule generator
(harness/scenarios/randomgen.py, with the `Reply` each op was planned around), from the
registry, or written by hand — goes in, the header and events of a correct coordinator come
out. No sockets, no clocks, no checker import; events stream out in time order, so a trace of
any length is written without holding it in memory. Besides `ok` ops the model knows ops that
failed (no effect), ops whose outcome the harness never learned (`info`, or no completion),
log lines without a token (`noise`) and logs that start a new generation (`log_reset`).
Traces of faulty implementations are this model's traces changed at chosen points (the
checkers' property tests do that).

Faults (scenario steps): a participant killed at k loses what was in flight to it (or it lands
at k), the coordinator keeps what is sent later for its next reconnect as for an offline one,
and the harness restarts it (a new log generation) at its `restart` step; a pause (of a
participant, or of the "coordinator") lasts until its `resume`, and every delivery that would
land while its receiver or the coordinator is paused lands just after the resume instead; a
partition until its `heal` makes the participant's ops fail. Clock steps change nothing here.
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

from checkers.traceformat import COORDINATOR, FUNCTIONS
from harness.scenarios import randomgen
from harness.scenarios.model import Scenario, Step, validate
from harness.scenarios.randomgen import MARGIN, VALID_FROM, Knobs, Reply
from harness.scenarios.tokens import token

__all__ = ["MARGIN", "Knobs", "Reply", "token"]

FAULTS = ("kill", "pause", "partition")  # fault actions: `duration` runs to their end step
ENDS = randomgen.ENDS  # the step that ends each fault: restart, resume, heal
PROBE_DELAY = 0.002  # port_released probe after a disconnect/deregister completes
LATENCY_MAX = 0.05  # a delivery lands at most this long after the coordinator acted
_NEXT = randomgen.NEXT
OUTCOMES = ("ok", "fail", "info", "none")
NOISE = ("Welcome!", "Participant ready", "> ", "[connected to coordinator]")
RESETS = ("truncated", "deleted", "recreated")


@dataclass(frozen=True)
class Action:
    """One op a participant invokes at `t`, as the simulation takes it: its completion
    (`outcome`) comes at `t + duration`. The coordinator acts on it at `t + effect * duration`
    (effect in [0, 1]) when the outcome is `ok`, never when it is `fail`, and, when it is
    `info` (timed out) or `none` (no completion at all), only if `acted`. A fault action (f in
    FAULTS) is injected at `t` and lasts `duration` (kill: until the restart; pause: until the
    resume; partition: until the heal)."""

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
    def reply(self) -> Reply:
        """How the op went (its `acts`: whether the coordinator acts on it at all)."""
        return Reply(self.duration, self.effect, self.outcome, self.acted)


@dataclass(frozen=True)
class Run:
    """What the model simulates: a scenario, how the implementation answered each step
    (`replies`, aligned with `scenario.steps`; None or missing: the model's own answer, drawn
    from `seed`), and its logs' noise."""

    scenario: Scenario
    replies: tuple[Optional[Reply], ...] = ()
    seed: int = 0
    p_noise: float = 0.0  # before each delivery, a log line without a token
    p_log_reset: float = 0.0  # before each delivery, the participant's log starts afresh
    op_time: tuple[float, float] = (0.005, 0.08)  # the model's own op durations

    @property
    def td(self) -> float:
        return self.scenario.td

    @property
    def participants(self) -> tuple[str, ...]:
        return self.scenario.participants

    @property
    def tolerance(self) -> float:
        tol = self.scenario.tolerance
        return 1.0 if tol is None else tol

    @property
    def latency_bound(self) -> float:
        lat = self.scenario.latency_bound
        return 1.0 if lat is None else lat

    @property
    def actions(self) -> tuple[Action, ...]:
        """The scenario's steps as the simulation's actions (time order)."""
        return tuple(_actions(self))


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
    sim.emit(a.t, {"type": "fault", "t": a.t, "fault": a.f, "target": a.participant})
    sim.emit(end, {"type": "fault", "t": end, "fault": ENDS[a.f], "target": a.participant})
    if a.f == "partition":
        return  # only its participant's ops notice (their replies say how)
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
    if a.reply.acts:
        at = a.t + a.effect * a.duration
        if a.f in ("register", "reconnect"):  # thread-B listens before the request is sent
            probe = {"type": "probe", "t": at, "participant": a.participant, "op": op}
            sim.emit(at, dict(probe, probe="listening", port=a.port, ok=True))
        heapq.heappush(sim.coord, (at, next(sim.seq), "act", a))


def _completion(a: Action, op: int, done: float, status: str) -> dict[str, Any]:
    """The `ok`/`fail`/`info` event of op `op`; `status` is its participant's at the invoke."""
    event: dict[str, Any] = {"type": a.outcome, "t": done, "op": op}
    if a.outcome == "info":
        event["reason"] = "timeout"
    if a.outcome == "fail":
        valid = status in VALID_FROM[a.f]
        event["error"] = "connection refused" if valid else f"{a.f}: refused while {status}"
    return event


def events(run: Run) -> Iterator[dict[str, Any]]:
    """The whole trace of `run` (header first, `end` last) as event dicts. The header holds
    the scenario (as the harness records it, for `pams replay`) and, in `model`, the replies
    the run was simulated with (None where the model answered itself)."""
    head = header(
        run.td,
        run.participants,
        tolerance=run.tolerance,
        latency_bound=run.latency_bound,
        seed=run.seed,
        scenario=run.scenario.to_json(),
    )
    replies = [asdict(r) if r is not None else None for r in run.replies]
    head["implementation"]["model"] = {"replies": replies}
    yield head
    yield from body(
        run.actions,
        run.td,
        run.participants,
        seed=run.seed,
        latency_bound=run.latency_bound,
        p_noise=run.p_noise,
        p_log_reset=run.p_log_reset,
    )


def lines(events_: Iterable[dict[str, Any]]) -> Iterator[str]:
    """JSON Lines (without newline) of `events_`."""
    return (json.dumps(e, separators=(",", ":")) for e in events_)


# ------------------------------------------------------------------ scenarios to actions


class _Ports:
    """Thread-B port numbers the model gives register/reconnect steps ("same": the last)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.count = itertools.count(1)

    def take(self, step: Step) -> int:
        if step.action not in ("register", "reconnect"):
            return 0
        if step.port == "same" and step.target in self.last:
            return self.last[step.target]
        self.last[step.target] = port = 20000 + next(self.count) % 40000
        return port


def _action(step: Step, reply: Reply, port: int) -> Action:
    return Action(
        step.at,
        step.target,
        step.action,
        reply.duration,
        reply.effect,
        step.message or "",
        port,
        reply.outcome,
        reply.acted,
    )


def _actions(run: Run) -> Iterator[Action]:
    """Each op step with its reply (the model's own when none is given: it refuses what a
    correct coordinator refuses, and an op of a partitioned participant fails), each fault
    step lasting until its end step; other steps (clock steps) change nothing here."""
    rng, ports = random.Random(f"replies-{run.seed}"), _Ports()
    steps = run.scenario.steps
    drawn = [Reply(rng.uniform(*run.op_time), rng.random()) for _ in steps]
    replies = [run.replies[i] if i < len(run.replies) else None for i in range(len(steps))]
    times = _timing(run.scenario, [r or d for r, d in zip(replies, drawn)])
    order = sorted(range(len(steps)), key=times.__getitem__)
    steps = tuple(replace(steps[i], at=times[i]) for i in order)
    replies = [replies[i] for i in order]
    drawn = [drawn[i] for i in order]
    state = dict.fromkeys(run.participants, "out")
    cut: set[str] = set()
    for i, step in enumerate(steps):
        given = replies[i] if i < len(replies) else None
        if step.action in FAULTS:
            duration = given.duration if given is not None else _ends(steps, i) - step.at
            if step.action == "partition":
                cut.add(step.target)
            if step.action == "kill" and state.get(step.target) == "online":
                state[step.target] = "offline"
            yield Action(step.at, step.target, step.action, duration)
            continue
        if step.action == "heal":
            cut.discard(step.target)
        if step.action not in FUNCTIONS:
            continue
        reply = given or _reply(drawn[i], step, state.get(step.target), step.target in cut)
        if reply.acts and step.action in _NEXT and step.target in state:
            state[step.target] = _NEXT[step.action]
        yield _action(step, reply, ports.take(step))


def _timing(scenario: Scenario, replies: list[Reply]) -> list[float]:
    """When each step is taken: at its `at`, or, when it `follows` a labelled op, that op's
    completion plus the planned gap between the two (as the harness runs it)."""
    times = [s.at for s in scenario.steps]
    done: dict[str, float] = {}
    for i, s in enumerate(scenario.steps):
        anchor = scenario.label(s.follows) if s.follows is not None else None
        if anchor is not None and anchor.label in done:
            times[i] = done[anchor.label] + s.at - anchor.at
        if s.label is not None:
            done[s.label] = times[i] + replies[i].duration
    return times


def _ends(steps: tuple[Step, ...], i: int) -> float:
    """When fault step i ends: its target's next end step (restart, resume, heal), or never."""
    start = steps[i]
    for s in steps[i + 1 :]:
        if s.target == start.target and s.action == ENDS[start.action]:
            return s.at
    return math.inf


def _reply(drawn: Reply, step: Step, state: Optional[str], cut: bool) -> Reply:
    """The model's answer to an op step (its time drawn): a correct coordinator refuses what
    is invalid in the participant's state; nothing reaches it from a partitioned one."""
    refused = state is not None and state not in VALID_FROM[step.action]
    outcome = "fail" if refused or cut else "ok"
    return replace(drawn, outcome=outcome, acted=outcome == "ok")


def hand_run(
    td: float,
    participants: Iterable[str],
    actions: Iterable[Action],
    *,
    seed: int = 0,
    tolerance: Optional[float] = None,
    latency_bound: Optional[float] = None,
    p_noise: float = 0.0,
    p_log_reset: float = 0.0,
) -> Run:
    """A run written action by action (each op with its reply, each fault with its length),
    as a scenario: a fault action becomes its step and its end step."""
    steps: list[Step] = []
    replies: list[Optional[Reply]] = []
    previous = 0.0
    for a in actions:
        if a.t < previous:
            raise ValueError(f"action at t={a.t} comes after one at t={previous}")
        if a.outcome not in OUTCOMES or (a.f not in FUNCTIONS and a.f not in FAULTS):
            raise ValueError(f"unknown action {a.f!r} ({a.outcome}) by {a.participant!r}")
        previous = a.t
        message = a.message or None
        steps.append(Step(a.t, a.f, a.participant, message=message))
        replies.append(Reply(a.duration, a.effect, a.outcome, a.acted))
        if a.f in FAULTS:
            steps.append(Step(a.t + a.duration, ENDS[a.f], a.participant))
            replies.append(None)
    order = sorted(range(len(steps)), key=lambda i: steps[i].at)
    scenario = Scenario(
        "hand-written",
        tuple(participants),
        tuple(steps[i] for i in order),
        td,
        tolerance=tolerance,
        latency_bound=latency_bound,
        seed=seed,
    )
    try:
        validate(scenario, "")
    except ValueError as e:
        raise ValueError(f"unknown action: {e}") from None
    return Run(scenario, tuple(replies[i] for i in order), seed, p_noise, p_log_reset)


# ----------------------------------------------------------------------------- random runs


def random_run(
    rng: random.Random, knobs: Knobs, ops: int, seed: int = 0, scenario: str = "random"
) -> Run:
    """A run of the first `ops` actions the random schedule generator plans for `knobs`,
    answered as planned."""
    sc, replies = randomgen.random_scenario(rng, knobs, ops, seed=seed, name=scenario)
    return Run(sc, replies, seed, knobs.p_noise, knobs.p_log_reset, knobs.op_time)


def random_actions(rng: random.Random, knobs: Knobs) -> Iterator[Action]:
    """The generator's endless stream of steps for `knobs`, as actions (streaming)."""
    ports = _Ports()
    for step, reply in randomgen.random_steps(rng, knobs):
        if reply is None:
            continue  # a fault's end: the fault's action lasts until it
        if step.action in FAULTS:
            yield Action(step.at, step.target, step.action, reply.duration)
        else:
            yield _action(step, reply, ports.take(step))


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
    scenario = {"name": "random", "seed": seed, "participants": participants, "td": knobs.td}
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
) -> Any:  # a hypothesis SearchStrategy[Run]
    """Hypothesis strategy of random runs (test-only import); `fixed` pins `Knobs` fields
    to a value, or draws them from a strategy."""
    from hypothesis import strategies as st

    def build(rng: random.Random, knobs: Knobs, ops: int, seed: int) -> Run:
        return random_run(rng, knobs, ops, seed=seed, scenario="hypothesis")

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

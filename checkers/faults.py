"""What the harness's injected faults mean to the rules (pure; from `trace.Fault` events).

- `kill` of a participant p at time k: p's process died, so from the coordinator's point of
  view p can no longer receive. It becomes a synthetic membership op `kill` with window
  [k, k] that certainly took effect at k (online→offline; no change when p was not online),
  see `checkers.timeline`. A later `reconnect` (after the harness's `restart`) brings p back.
  A `restart` of p with no kill of p since its previous restart killed a live process (the
  harness kills it first): it counts as a kill at the restart's instant.
- `pause` … `resume` of p or of the coordinator (SIGSTOP/SIGCONT): the pause lasts from the
  pause to the same target's resume, or to its kill/restart (the stopped process is gone),
  or else to the trace's end. A delivery deadline (s1 + L, or r1 + L at a reconnect) whose
  span [start, deadline] meets a pause of the receiver or of the coordinator moves to that
  pause's resume + L, repeatedly (`extend_deadline`). Other participants' pauses never
  move p's deadline.
- `restart` (of a killed participant, or of the coordinator), `clock_offset`, `clock_step`,
  `partition`, `heal`, a `kill` of the coordinator and unknown fault names change no rule:
  times are harness times, a restarted participant comes back through its ops, and a
  partition only makes the participant's ops fail or time out (their windows say what may
  have happened).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from checkers.trace import COORDINATOR, Fault, Op, make_op
from checkers.verdict import fmt_t


@dataclass(frozen=True)
class Pause:
    """One pause of `target` over [t0, t1]; `resumed` is False when no resume (or kill/restart)
    ended it and t1 is the trace's end."""

    target: str
    t0: float
    t1: float
    resumed: bool
    word: str = "paused"  # or "partitioned" (partition ... heal)

    def describe(self) -> str:
        """E.g. "p2 paused [4.000, 6.500]" or "coordinator paused [4.000, -] (no resume)"."""
        who = self.target if self.target == COORDINATOR else f"p{self.target}"
        if self.resumed:
            return f"{who} {self.word} [{fmt_t(self.t0)}, {fmt_t(self.t1)}]"
        end = "no resume" if self.word == "paused" else "no heal"
        return f"{who} {self.word} [{fmt_t(self.t0)}, -] ({end})"


@dataclass(frozen=True)
class FaultModel:
    """The faults of one trace as the rules use them: per-participant kill ops, per-target
    pauses (in start order), and the coordinator's kills (not modelled, only noted)."""

    kills: dict[str, tuple[Op, ...]]
    pauses: dict[str, tuple[Pause, ...]]
    coordinator_kills: tuple[float, ...]
    partitions: dict[str, tuple[Pause, ...]] = field(default_factory=dict)

    def obstacles(self) -> tuple[Pause, ...]:
        """Every pause and partition of a participant (not of the coordinator): what may keep
        a member from reading while others send."""
        groups = (*self.pauses.values(), *self.partitions.values())
        return tuple(x for group in groups for x in group if x.target != COORDINATOR)

    def pauses_for(self, participant: str) -> tuple[Pause, ...]:
        """The pauses that can delay a delivery to `participant`: its own and the
        coordinator's, by start time."""
        mine = self.pauses.get(participant, ()) + self.pauses.get(COORDINATOR, ())
        return tuple(sorted(mine, key=lambda x: (x.t0, x.t1)))


def kill_op(fault: Fault) -> Op:
    """The synthetic op standing for a kill of participant `fault.target` at `fault.t` (by a
    `kill`, or a `restart` of a live process); its id names the fault and its line."""
    op_id = f"{fault.fault}@{fault.line}"
    return make_op(op_id, fault.target, "kill", fault.t, fault.t, "ok", None, fault.line)


def fault_model(faults: Iterable[Fault], horizon: float) -> FaultModel:
    """Kill ops and paused intervals of `faults` (in trace order); `horizon` ends a pause
    that nothing resumed."""
    kills: dict[str, list[Op]] = {}
    coordinator_kills: list[float] = []
    pauses: dict[str, list[Pause]] = {}
    open_since: dict[str, float] = {}
    cut_since: dict[str, float] = {}
    partitions: dict[str, list[Pause]] = {}
    dead: set[str] = set()  # participants killed since their last restart
    for f in faults:
        if f.fault == "partition":
            cut_since.setdefault(f.target, f.t)
            continue
        if f.fault == "heal" and f.target in cut_since:
            start = cut_since.pop(f.target)
            partitions.setdefault(f.target, []).append(
                Pause(f.target, start, f.t, True, "partitioned")
            )
            continue
        if f.fault == "pause":
            open_since.setdefault(f.target, f.t)
            continue
        if f.fault in ("resume", "kill", "restart") and f.target in open_since:
            start = open_since.pop(f.target)
            pauses.setdefault(f.target, []).append(Pause(f.target, start, f.t, True))
        if f.fault == "kill" and f.target == COORDINATOR:
            coordinator_kills.append(f.t)
        elif f.fault in ("kill", "restart") and f.target != COORDINATOR:
            if f.target not in dead:  # a restart of a live process kills it first
                kills.setdefault(f.target, []).append(kill_op(f))
            if f.fault == "kill":
                dead.add(f.target)
            else:
                dead.discard(f.target)
    for target, start in open_since.items():
        pauses.setdefault(target, []).append(Pause(target, start, max(start, horizon), False))
    for target, start in cut_since.items():
        partitions.setdefault(target, []).append(
            Pause(target, start, max(start, horizon), False, "partitioned")
        )
    return FaultModel(
        {p: tuple(ops) for p, ops in kills.items()},
        {p: tuple(x) for p, x in pauses.items()},
        tuple(coordinator_kills),
        {p: tuple(x) for p, x in partitions.items()},
    )


def merge_ops(ops: list[Op], kills: tuple[Op, ...]) -> list[Op]:
    """`ops` (invoke order) with the kill ops placed by time, after ops invoked at the same
    instant on an earlier trace line."""
    if not kills:
        return ops
    return sorted([*ops, *kills], key=lambda op: (op.t0, op.line))


def extend_deadline(
    pauses: tuple[Pause, ...], start: float, deadline: float, latency: float
) -> tuple[float, tuple[Pause, ...]]:
    """`deadline` moved to resume + `latency` of every pause (in start order) meeting
    [start, deadline] as it grows; returns it and the pauses that moved it."""
    used = []
    for pause in pauses:
        if pause.t0 > deadline:
            break
        if pause.t1 >= start and pause.t1 + latency > deadline:
            deadline = pause.t1 + latency
            used.append(pause)
    return deadline, tuple(used)

"""Seeded random schedules: valid command sequences per participant, concurrent across
participants, reconnects placed clear of the td ± tol zone. Same seed → same schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from harness.scenarios.model import Scenario, Script

GAP = 0.3  # seconds between two steps of one participant (its previous op has completed)
ZONE_MARGIN = 0.3


@dataclass
class _Member:
    state: str = "out"
    free_at: float = 0.0
    offline_since: float = 0.0
    sent_while_offline: list[float] = field(default_factory=list)


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
    """A random schedule of `duration` seconds for `n` participants; with `faults`, crash
    and restart, pauses and partitions of participants are mixed in."""
    rng = random.Random(seed)
    script = Script(
        name,
        n,
        td,
        profiles=profiles,
        seed=seed,
        description=f"random schedule (seed {seed}, {n} participants)"
        + (", with crashes, pauses and partitions" if faults else ""),
    )
    members = {p: _Member() for p in script.participants}
    for i, p in enumerate(script.participants):
        script.at(0.05 * i, p, "register")
        members[p].state, members[p].free_at = "online", 0.05 * i + GAP
    t = 0.6
    while t < duration:
        p = rng.choice(script.participants)
        m = members[p]
        if m.free_at <= t:
            _act(script, rng, members, p, t, td, tol, faults)
        t += rng.uniform(0.05, 0.25)
    _finish(script, members, duration, td, tol)
    return script.build()


def _act(
    script: Script,
    rng: random.Random,
    members: dict[str, _Member],
    p: str,
    t: float,
    td: float,
    tol: float,
    faults: bool,
) -> None:
    m = members[p]
    roll = rng.random()
    if m.state == "online" and faults and rng.random() < 0.2:
        _fault(script, rng, m, p, t)
    elif m.state == "online":
        if roll < 0.65:
            _msend(script, members, p, t)
        elif roll < 0.85:
            _go(script, m, p, t, "disconnect", "offline")
        else:
            _go(script, m, p, t, "deregister", "out")
    elif m.state == "offline":
        if _clear(m, t, td, tol):
            _go(script, m, p, t, "reconnect", "online")
        elif roll < 0.1:
            _go(script, m, p, t, "deregister", "out")
    elif roll < 0.5:
        _go(script, m, p, t, "register", "online")


def _msend(script: Script, members: dict[str, _Member], p: str, t: float) -> None:
    script.at(t, p, "msend")
    members[p].free_at = t + GAP
    for other in members.values():
        if other.state == "offline":
            other.sent_while_offline.append(t)


def _go(script: Script, m: _Member, p: str, t: float, action: str, state: str) -> None:
    script.at(t, p, action)
    m.state, m.free_at = state, t + GAP
    if state == "offline":
        m.offline_since, m.sent_while_offline = t, []


def _fault(script: Script, rng: random.Random, m: _Member, p: str, t: float) -> None:
    """Crash and restart (then reconnect), or a short pause, or a short partition."""
    kind = rng.choice(("kill", "pause", "partition"))
    if kind == "kill":
        script.at(t, p, "kill").at(t + 0.3, p, "restart").at(t + 0.5, p, "reconnect")
        m.free_at = t + 0.5 + GAP
    elif kind == "pause":
        script.at(t, p, "pause").at(t + 0.6, p, "resume")
        m.free_at = t + 0.6 + GAP
    else:
        script.at(t, p, "partition").at(t + 0.6, p, "heal")
        m.free_at = t + 0.6 + GAP


def _clear(m: _Member, t: float, td: float, tol: float) -> bool:
    """No message sent while offline would be aged within the td ± tol zone at t."""
    if t - m.offline_since < GAP:
        return False
    lo, hi = td - tol - ZONE_MARGIN, td + tol + ZONE_MARGIN
    return all(not (lo < t - s < hi) for s in m.sent_while_offline)


def _finish(
    script: Script, members: dict[str, _Member], duration: float, td: float, tol: float
) -> None:
    """Bring everyone back, then one last message each, so the end is checked too."""
    t = duration + GAP
    for p, m in members.items():
        start = max(t, m.free_at)
        if m.state == "offline":
            while not _clear(m, start, td, tol):
                start += 0.1
            script.at(start, p, "reconnect")
        elif m.state == "out":
            script.at(start, p, "register")
        m.free_at = start + GAP
    end = max(m.free_at for m in members.values())
    for i, p in enumerate(members):
        script.at(end + 0.05 * i, p, "msend")

"""The built-in scenarios and profiles (docs/cli.md): the one registry that feeds `pams run`,
`pams scenarios`, `pams grade` and the pytest plugin. Times are seconds after the schedule
starts; td is 2 s unless a scenario says otherwise (tol 1.0, L 1.0), and schedules keep clear
of the td ± tol zone except the boundary scenario."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from harness.scenarios import randomgen
from harness.scenarios.model import COORDINATOR, Expectation, Scenario, ScenarioError, Script

DEFAULT_SEED = 1


@dataclass(frozen=True)
class Entry:
    """A registered scenario: `make(seed)` builds it (only random ones use the seed)."""

    name: str
    profile: str
    description: str
    make: Callable[[int], Scenario]
    random: bool = False


def online_multicast(_: int) -> Scenario:
    s = Script(
        "online-multicast",
        3,
        description="every member online; each message reaches "
        "every member, the sender included, at once",
        profiles=("basic",),
    )
    s.all(0.0, "register", gap=0.05)
    for i, p in enumerate(("1", "2", "3", "1", "2", "3")):
        s.at(0.6 + 0.25 * i, p, "msend")
    return s.build()


def offline_within_td(_: int) -> Scenario:
    s = Script(
        "offline-within-td",
        3,
        td=4.0,
        description="a participant offline for less than "
        "td - tol gets every message sent meanwhile on reconnect, twice over (td 4 s)",
        profiles=("basic",),
        expect=(
            Expectation("owed-at-reconnect", "no-miss", count=2),
            Expectation("port-probe", "port-released"),
        ),
    )
    # timing-critical steps follow the disconnect by at least 2 s: a program that takes
    # 1.5 s to pass a command on still gets each message to the coordinator in time
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.0, "3", "disconnect", label="d1")
    s.at(3.0, "1", "msend", follows="d1").at(3.2, "2", "msend", follows="d1")
    s.at(3.6, "3", "reconnect", follows="d1").at(4.1, "1", "msend")
    s.at(4.6, "3", "disconnect", label="d2").at(6.6, "2", "msend", follows="d2")
    s.at(7.1, "3", "reconnect", follows="d2").at(7.6, "3", "msend")
    return s.build()


def offline_beyond_td(_: int) -> Scenario:
    s = Script(
        "offline-beyond-td",
        3,
        description="messages older than td + tol at reconnect are not delivered",
        profiles=("basic",),
        expect=(Expectation("expired-at-reconnect", "no-expired", count=2),),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.8, "3", "disconnect", label="d").at(1.0, "1", "msend", follows="d")
    s.at(1.2, "2", "msend", follows="d", label="m2")
    s.at(5.7, "3", "reconnect", follows="m2").at(6.2, "1", "msend")
    return s.build()


def long_offline(_: int) -> Scenario:
    s = Script(
        "long-offline-fresh-stale",
        3,
        description="long offline: only the messages "
        "of the last td seconds are delivered, in order",
        profiles=("basic",),
        expect=(
            Expectation("expired-at-reconnect", "no-expired", count=2),
            Expectation("owed-at-reconnect", "no-miss", count=2),
        ),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.8, "2", "disconnect", label="d").at(1.0, "1", "msend", follows="d")
    s.at(1.5, "3", "msend", follows="d")
    s.at(5.3, "1", "msend", follows="d").at(5.6, "3", "msend", follows="d")
    s.at(6.0, "2", "reconnect", follows="d").at(6.5, "2", "msend")
    return s.build()


def deregister_reregister(_: int) -> Scenario:
    s = Script(
        "deregister-reregister",
        3,
        description="a deregistered participant gets "
        "nothing sent while out; registering again makes it a new entrant",
        profiles=("basic",),
        expect=(
            Expectation("after-deregister", "no-post-deregister", count=2),
            Expectation("port-probe", "port-released"),
        ),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.0, "3", "deregister", label="out")
    s.at(1.3, "1", "msend", follows="out").at(1.6, "2", "msend", follows="out")
    s.at(3.0, "3", "register", follows="out").at(3.6, "2", "msend")  # within td of both
    return s.build()


def offline_then_deregister(_: int) -> Scenario:
    s = Script(
        "offline-then-deregister",
        3,
        description="offline, then deregister, then register: nothing from before is owed",
        profiles=("basic",),
        expect=(Expectation("after-deregister", "no-post-deregister", count=2),),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.8, "3", "disconnect", label="d").at(1.0, "1", "msend", follows="d")
    s.at(3.3, "3", "deregister", follows="d", label="out")
    s.at(3.5, "2", "msend", follows="out").at(5.8, "3", "register", follows="out")
    s.at(6.3, "1", "msend")
    return s.build()


def concurrent_senders(_: int) -> Scenario:
    s = Script(
        "concurrent-senders",
        4,
        description="four members send at the same instants",
        profiles=("basic",),
    )
    s.all(0.0, "register", gap=0.05)
    for k in range(5):
        s.all(0.6 + 0.3 * k, "msend")
    return s.build()


def concurrent_membership(_: int) -> Scenario:
    s = Script(
        "concurrent-membership",
        5,
        description="membership changes at the same "
        "instants as messages (uncertain windows: any allowed outcome passes)",
        profiles=("basic",),
    )
    s.at(0.0, "1", "register").at(0.05, "2", "register").at(0.1, "3", "register")
    s.at(0.15, "5", "register")
    s.at(1.0, "1", "msend").at(1.0, "2", "disconnect").at(1.0, "4", "register")
    s.at(1.0, "5", "deregister").at(1.5, "2", "reconnect").at(1.5, "3", "msend")
    s.at(2.0, "4", "msend").at(2.0, "3", "disconnect").at(2.0, "5", "register")
    s.at(2.5, "3", "reconnect").at(2.5, "1", "msend").at(3.0, "2", "msend")
    return s.build()


def boundary_td(_: int) -> Scenario:
    s = Script(
        "boundary-td",
        3,
        tolerance=0.25,
        boundary=True,
        description="boundary: at "
        "reconnect one message is aged td + 0.5 s (must not arrive), one td - 0.5 s "
        "(must arrive); tol 0.25 s",
        profiles=("basic",),
        expect=(
            Expectation("owed-at-reconnect", "no-miss", min_age=1.0),
            Expectation("expired-at-reconnect", "no-expired", max_age=3.0),
        ),
    )
    # every timed step follows the disconnect by 2 s or more (see offline_within_td)
    s.all(0.0, "register", gap=0.05)
    s.at(0.5, "3", "disconnect", label="d").at(2.5, "1", "msend", follows="d")
    s.at(3.5, "2", "msend", follows="d").at(5.0, "3", "reconnect", follows="d")
    s.at(5.5, "1", "msend")
    return s.build()


def offline_many_owed(_: int) -> Scenario:
    s = Script(
        "offline-many-owed",
        5,
        td=6.0,
        description="eight messages sent while a participant is offline for less than "
        "td - tol: every one is owed at its reconnect (td 6 s)",
        profiles=("basic",),
        expect=(Expectation("owed-at-reconnect", "no-miss", count=6),),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.5, "5", "disconnect", label="d")
    for k in range(8):
        s.at(0.8 + 0.1 * k, str(1 + k % 4), "msend", follows="d")
    s.at(4.5, "5", "reconnect", follows="d").at(5.0, "5", "msend")
    return s.build()


def msend_after_reconnect(_: int) -> Scenario:
    s = Script(
        "msend-after-reconnect",
        3,
        td=4.0,
        description="messages sent within 100 ms after a reconnect completes, by the "
        "reconnected participant and by others, reach everyone, with those owed from before "
        "(td 4 s)",
        profiles=("basic",),
        expect=(
            Expectation("msend-after-reconnect", "no-miss"),
            Expectation("owed-at-reconnect", "no-miss"),
        ),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.5, "3", "disconnect", label="d").at(0.8, "1", "msend", follows="d", label="m")
    s.at(1.2, "3", "reconnect", follows="m", label="r")
    s.at(1.25, "3", "msend", follows="r").at(1.25, "1", "msend", follows="r")
    s.at(1.3, "2", "msend", follows="r")
    return s.build()


def async_send(_: int) -> Scenario:
    s = Script(
        "async-send",
        3,
        description="one member stopped (SIGSTOP) for 2 s: the others' msends are still "
        "acknowledged at once (the sender never waits for deliveries)",
        profiles=("basic",),
        expect=(Expectation("send-while-paused", "async-send", count=2),),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.0, "3", "pause").at(1.3, "1", "msend")
    s.at(1.6, "2", "msend").at(2.0, "1", "msend").at(3.0, "3", "resume")
    s.at(3.5, "3", "msend")
    return s.build()


def many_participants(_: int) -> Scenario:
    s = Script(
        "many-participants",
        20,
        description="twenty members, everyone sends, some go offline and come back",
        profiles=("stress",),
    )
    s.all(0.0, "register", gap=0.03)
    for i, p in enumerate(s.participants):
        s.at(1.0 + 0.05 * i, p, "msend")
    for p in ("4", "9", "14"):
        s.at(2.2, p, "disconnect").at(2.9, p, "reconnect")
    for i, p in enumerate(s.participants[:10]):
        s.at(2.4 + 0.04 * i, p, "msend")
    return s.build()


def burst_senders(_: int) -> Scenario:
    s = Script(
        "burst-senders",
        5,
        description="five members each send 30 messages back to back",
        profiles=("stress",),
    )
    s.all(0.0, "register", gap=0.05)
    for _k in range(30):
        s.all(0.6, "msend")
    return s.build()


def participant_skew(_: int) -> Scenario:
    s = Script(
        "participant-skew",
        3,
        td=3.0,
        clock_offsets=(("1", 60.0), ("2", -60.0)),
        description="participant wall clocks off by +60 s and -60 s: expiry must not "
        "depend on them",
        profiles=("skew",),
        expect=(
            Expectation("owed-at-reconnect", "no-miss"),
            Expectation("expired-at-reconnect", "no-expired"),
        ),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "3", "disconnect", label="d3").at(0.9, "2", "msend", follows="d3")
    s.at(1.2, "1", "msend", follows="d3", label="m2")
    s.at(1.6, "3", "reconnect", follows="m2").at(2.0, "1", "disconnect", label="d1")
    s.at(2.2, "2", "msend", follows="d1", label="m3")
    s.at(2.6, "1", "reconnect", follows="m3").at(3.0, "2", "disconnect", label="d2")
    s.at(3.3, "1", "msend", follows="d2", label="m4")
    s.at(8.5, "2", "reconnect", follows="m4").at(9.0, "3", "msend")  # 3.3's is 5.2 s old
    return s.build()


def coordinator_skew(_: int) -> Scenario:
    s = Script(
        "coordinator-skew",
        3,
        clock_offsets=((COORDINATOR, 3600.0), ("3", -60.0)),
        description="coordinator wall clock an hour ahead: persistence still spans td",
        profiles=("skew",),
        expect=(
            Expectation("owed-at-reconnect", "no-miss"),
            Expectation("expired-at-reconnect", "no-expired"),
        ),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "3", "disconnect", label="d3").at(0.9, "1", "msend", follows="d3", label="m1")
    s.at(1.4, "3", "reconnect", follows="m1").at(1.8, "2", "disconnect", label="d2")
    s.at(2.0, "1", "msend", follows="d2", label="m2").at(6.0, "2", "reconnect", follows="m2")
    s.at(6.5, "3", "msend")
    return s.build()


def _step_scenario(name: str, step: float, description: str) -> Callable[[int], Scenario]:
    def make(_: int) -> Scenario:
        s = Script(
            name,
            3,
            td=2.0 if step < 0 else 4.0,
            clock_offsets=((COORDINATOR, 0.0),),
            description=description,
            profiles=("faults",),
            expect=(
                Expectation("expired-at-reconnect", "no-expired")
                if step < 0
                else Expectation("owed-at-reconnect", "no-miss"),
            ),
        )
        s.all(0.0, "register", gap=0.05)
        s.at(0.5, "3", "disconnect").at(0.8, "1", "msend")
        if step < 0:  # back: 0.8's message must expire although the wall clock went back
            s.at(1.2, COORDINATOR, "clock_step", offset=step).at(4.8, "2", "msend")
            s.at(5.2, "3", "reconnect")
        else:  # forward (td 4): 0.8's message is owed although the wall clock jumped ahead;
            # the reconnect waits out libfaketime's step latency
            # (harness.running.clock.STEP_LATENCY)
            s.at(1.1, COORDINATOR, "clock_step", offset=step).at(2.6, "3", "reconnect")
        s.at(s.steps[-1].at + 0.5, "2", "msend")
        return s.build()

    return make


def participant_crash(_: int) -> Scenario:
    s = Script(
        "participant-crash-restart",
        3,
        td=4.0,
        description="a participant is killed "
        "while online; messages sent while it is dead arrive after restart + reconnect",
        profiles=("faults",),
        expect=(Expectation("owed-at-reconnect", "no-miss"),),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.2, "3", "kill").at(1.6, "1", "msend").at(1.9, "2", "msend")
    s.at(3.0, "3", "restart").at(3.5, "3", "reconnect").at(4.0, "2", "msend")
    return s.build()


def coordinator_pause(_: int) -> Scenario:
    s = Script(
        "coordinator-pause",
        3,
        description="the coordinator is stopped (SIGSTOP) "
        "for 1.5 s with a message in flight; nothing is lost",
        profiles=("faults",),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.0, COORDINATOR, "pause").at(1.2, "2", "msend")
    s.at(2.5, COORDINATOR, "resume").at(3.0, "3", "msend")
    return s.build()


def participant_pause(_: int) -> Scenario:
    s = Script(
        "participant-pause",
        3,
        description="one participant stopped (SIGSTOP) for "
        "2 s: the others still get every message at once",
        profiles=("faults",),
        expect=(Expectation("send-while-paused", "async-send"),),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.0, "3", "pause").at(1.3, "1", "msend")
    s.at(1.6, "2", "msend").at(3.0, "3", "resume").at(3.5, "3", "msend")
    return s.build()


def partition(_: int) -> Scenario:
    s = Script(
        "partition",
        3,
        description="one participant cut from the coordinator: its "
        "commands fail, deliveries to it and the others go on",
        profiles=("faults",),
    )
    s.all(0.0, "register", gap=0.05)
    s.at(0.6, "1", "msend").at(1.0, "2", "partition").at(1.3, "2", "msend")
    s.at(1.6, "1", "msend").at(2.2, "2", "heal").at(2.6, "2", "msend")
    return s.build()


def _random(name: str, profile: str, **kw: float) -> Callable[[int], Scenario]:
    def make(seed: int) -> Scenario:
        return randomgen.generate(name, seed, profiles=(profile,), **kw)  # type: ignore[arg-type]

    return make


def _entry(make: Callable[[int], Scenario], random: bool = False) -> Entry:
    sc = make(DEFAULT_SEED)
    return Entry(sc.name, sc.profiles[0], sc.description, make, random)


REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        _entry(online_multicast),
        _entry(offline_within_td),
        _entry(offline_beyond_td),
        _entry(long_offline),
        _entry(deregister_reregister),
        _entry(offline_then_deregister),
        _entry(concurrent_senders),
        _entry(concurrent_membership),
        _entry(boundary_td),
        _entry(offline_many_owed),
        _entry(msend_after_reconnect),
        _entry(async_send),
        _entry(_random("random-basic", "basic", n=4, duration=5.0), random=True),
        _entry(many_participants),
        _entry(burst_senders),
        _entry(_random("random-stress", "stress", n=8, duration=8.0), random=True),
        _entry(participant_skew),
        _entry(coordinator_skew),
        _entry(
            _step_scenario(
                "coordinator-step-back",
                -10.0,
                "coordinator wall clock stepped "
                "back 10 s while a participant is offline: expiry uses a "
                "monotonic clock",
            )
        ),
        _entry(
            _step_scenario(
                "coordinator-step-forward",
                10.0,
                "coordinator wall clock "
                "stepped forward 10 s while a participant is offline: the "
                "message is still owed",
            )
        ),
        _entry(participant_crash),
        _entry(coordinator_pause),
        _entry(participant_pause),
        _entry(partition),
        _entry(_random("random-faults", "faults", n=4, duration=5.0, faults=True), random=True),
    )
}
PROFILES: dict[str, tuple[str, ...]] = {
    p: tuple(e.name for e in REGISTRY.values() if e.profile == p)
    for p in ("basic", "skew", "faults", "stress")
}
PROFILES["all"] = tuple(REGISTRY)


def get_scenario(name: str, seed: Optional[int] = None, td: Optional[float] = None) -> Scenario:
    """A built-in scenario by name (random ones from `seed`, default 1)."""
    if name not in REGISTRY:
        raise ScenarioError(f"unknown scenario {name!r}; `pams scenarios` lists them")
    sc = REGISTRY[name].make(DEFAULT_SEED if seed is None else seed)
    return sc if td is None else replace(sc, td=td)


def profile(name: str) -> tuple[str, ...]:
    """The scenario names of a profile (`all` = every scenario)."""
    if name not in PROFILES:
        raise ScenarioError(f"unknown profile {name!r} (one of {', '.join(PROFILES)})")
    return PROFILES[name]

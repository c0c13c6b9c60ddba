"""The mutants of the reference (tests/fixtures/mutants), run directly as processes through their
own adapter files (cmd, config and env as written there) without the harness runner: each one
shows its bug in a few steps, and the same steps against the plain reference do not.

Negative checks use a fence: a message sent after the step under test must arrive after
anything the step could have delivered on the same channel, so "not delivered" is decided by
the fence's arrival, not by waiting and hoping."""

from __future__ import annotations

import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from tests.participant_driver import ParticipantDriver, _pump
from tests.procutil import (
    REPO,
    Proc,
    ProcessGroup,
    free_port,
    port_accepts,
    port_bindable,
    wait_until,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

pytestmark = pytest.mark.process

MUTANTS = REPO / "tests" / "fixtures" / "mutants"
REFERENCE_ADAPTER = REPO / "harness" / "adapters" / "reference.toml"
CATALOGUE: dict[str, dict] = tomllib.loads((MUTANTS / "MUTANTS.toml").read_text())
L = 1.0  # the checkers' default latency bound


def tok(n: int) -> str:
    """A harness-shaped message token (M + 8 digits)."""
    return f"M{n:08d}"


# --- running an implementation through its adapter file ---------------------------------------


@dataclass(frozen=True)
class Impl:
    """What the direct tests need of an adapter file: argv and config templates, and env."""

    name: str
    workdir: Path
    coordinator: tuple[str, ...]
    coordinator_config: str
    participant: tuple[str, ...]
    participant_config: str
    env: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, path: Path) -> Impl:
        data = tomllib.loads(path.read_text())
        return cls(
            data["name"],
            (path.parent / data.get("workdir", ".")).resolve(),
            tuple(data["coordinator"]["cmd"]),
            data["coordinator"]["config"],
            tuple(data["participant"]["cmd"]),
            data["participant"]["config"],
            tuple(data.get("env", {}).items()),
        )

    def render(self, template: str, **values: object) -> str:
        return template.format(python=sys.executable, workdir=self.workdir, **values)

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        own = {k: self.render(v) for k, v in self.env}
        return {**os.environ, "PYTHONUNBUFFERED": "1", **own, **extra}


def mutant(name: str) -> Impl:
    return Impl.load(MUTANTS / CATALOGUE[name]["adapter"])


def spawn(group: ProcessGroup, argv: list[str], cwd: Path, env: dict[str, str], **kw) -> Proc:
    """Start `argv` in its own process group; `group` kills it at the end of the test."""
    popen = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True, **kw)
    proc = Proc(popen, argv[1])
    group.procs.append(proc)
    return proc


class Driver(ParticipantDriver):
    """A participant started from an adapter's argv and env, driven through stdin; `port` is
    its thread-B port."""

    def __init__(self, group: ProcessGroup, workdir: Path, argv: list[str], env: dict[str, str]):
        self.argv = argv
        self.env = env
        self.port = free_port()
        super().__init__(group, workdir, workdir / "participant.conf", workdir / "messages.log")

    def start(self) -> None:
        self._lines = queue.Queue()
        self.proc = spawn(
            self.group,
            self.argv,
            self.workdir,
            self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "participant.err", "ab"),  # noqa: SIM115 - child owns it
        )
        threading.Thread(
            target=_pump, args=(self.proc.popen.stdout, self._lines), daemon=True
        ).start()

    def do(self, verb: str, arg: str = "") -> str:
        """Run one command that must succeed (`register`/`reconnect` use this driver's port)."""
        if verb in ("register", "reconnect"):
            arg = str(self.port)
        return self.ok(f"{verb} {arg}".strip())

    def signal(self, sig: int) -> None:
        os.killpg(self.popen.pid, sig)


class System:
    """A coordinator and participants of one implementation, in `tmp_path`."""

    def __init__(self, group: ProcessGroup, tmp_path: Path, impl: Impl) -> None:
        self.group = group
        self.tmp = tmp_path
        self.impl = impl
        self.port = 0

    def coordinator(self, td: float, env: Optional[dict[str, str]] = None) -> None:
        """Start the coordinator with `td`; return once it accepts connections."""
        workdir = self.tmp / "coordinator"
        workdir.mkdir()
        self.port = free_port()
        config = workdir / "coordinator.conf"
        config.write_text(self.impl.render(self.impl.coordinator_config, port=self.port, td=td))
        argv = [self.impl.render(a, config=config) for a in self.impl.coordinator]
        out = open(workdir / "coordinator.out", "wb")  # noqa: SIM115 - owned by the child
        proc = spawn(
            self.group,
            argv,
            workdir,
            self.impl.environ(env or {}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        wait_until(
            lambda: port_accepts(self.port) or proc.popen.poll() is not None, 10, "coordinator"
        )
        assert proc.popen.poll() is None, (workdir / "coordinator.out").read_text()

    def log(self) -> str:
        """What the coordinator has printed so far."""
        return (self.tmp / "coordinator" / "coordinator.out").read_text(errors="replace")

    def participant(self, pid: str, env: Optional[dict[str, str]] = None) -> Driver:
        """Start participant `pid` (not yet registered)."""
        workdir = self.tmp / f"p{pid}"
        workdir.mkdir()
        config = workdir / "participant.conf"
        config.write_text(
            self.impl.render(
                self.impl.participant_config,
                id=pid,
                log="messages.log",
                coordinator_host="127.0.0.1",
                coordinator_port=self.port,
            )
        )
        argv = [self.impl.render(a, config=config) for a in self.impl.participant]
        return Driver(self.group, workdir, argv, self.impl.environ(env or {}))

    def members(self, n: int, td: float = 30.0) -> list[Driver]:
        """Start the coordinator and `n` registered participants "1".."n" (in that order)."""
        self.coordinator(td)
        drivers = [self.participant(str(i)) for i in range(1, n + 1)]
        for d in drivers:
            d.do("register")
        return drivers


def seen_within(driver: Driver, token: str, seconds: float) -> bool:
    """Whether `token` shows up in the driver's log within `seconds`."""
    try:
        wait_until(lambda: token in driver.log_lines(), seconds, token)
    except AssertionError:
        return False
    return True


def faketime(offset_file: Path, offset: float) -> dict[str, str]:
    """Environment that runs a process with its wall clock off by the offset written in
    `offset_file` (re-read at every call, so rewriting the file steps the clock at once); the
    monotonic clock stays real. FAKETIME_NO_CACHE=1 is unsafe for programs whose threads read
    the clock concurrently (docs/clock.md), but these are Python processes, whose clock calls
    the GIL serialises; it spares the tests the up-to-1 s step latency of the harness setting."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the libfaketime package is not installed")
    lib = Path(spec.submodule_search_locations[0]) / "vendor/libfaketime/src/libfaketime.so.1"
    if not lib.exists():
        pytest.skip(f"{lib} is missing")
    step_clock(offset_file, offset)
    return {
        "LD_PRELOAD": str(lib),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }


def step_clock(offset_file: Path, offset: float) -> None:
    tmp = offset_file.with_suffix(".tmp")
    tmp.write_text(f"{offset:+.0f}\n")
    os.replace(tmp, offset_file)


# --- one check per mutant: `buggy` says whether the bug must show -------------------------------


def ignores_td(s: System, buggy: bool) -> None:
    """A message older than td at reconnect is delivered."""
    s.coordinator(td=0.5)
    p1, p2 = s.participant("1"), s.participant("2")
    p1.do("register")
    p2.do("register")
    p2.do("disconnect")
    p1.do("msend", tok(1))
    p1.wait_log([tok(1)])
    time.sleep(1.5)  # p2 stays offline well beyond td (0.5 s): tok(1) expires
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(1), tok(2)] if buggy else [tok(2)])


def loses_offline(s: System, buggy: bool) -> None:
    """A message sent while a member is briefly offline is not delivered at reconnect."""
    p1, p2 = s.members(2)
    p2.do("disconnect")
    p1.do("msend", tok(1))
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(2)] if buggy else [tok(1), tok(2)])


def dup_on_reconnect(s: System, buggy: bool) -> None:
    """A message delivered before a disconnect is delivered again at reconnect."""
    p1, p2 = s.members(2)
    p1.do("msend", tok(1))
    p2.wait_log([tok(1)])
    p2.do("disconnect")
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(1), tok(1), tok(2)] if buggy else [tok(1), tok(2)])


def post_deregister(s: System, buggy: bool) -> None:
    """A message sent while a participant was deregistered reaches it after it registers."""
    p1, p2 = s.members(2)
    p2.do("deregister")
    p1.do("msend", tok(1))
    p2.do("register")
    p1.do("msend", tok(2))
    p2.wait_log([tok(1), tok(2)] if buggy else [tok(2)])


def batches(s: System, buggy: bool) -> None:
    """An online member gets a message more than L after the msend completed."""
    p1, p2 = s.members(2)
    p1.do("msend", tok(1))  # a channel that opens late gets its backlog at once: settle first
    p2.wait_log([tok(1)], timeout=10)
    p1.do("msend", tok(2))
    sent = time.monotonic()
    p2.wait_log([tok(1), tok(2)], timeout=10)
    late = time.monotonic() - sent
    assert (late > 2.0) if buggy else (late < L), f"delivered {late:.3f} s after the msend"


def keeps_port(s: System, buggy: bool) -> None:
    """Thread-B's port is still taken once disconnect (and deregister) returned."""
    (p1,) = s.members(1)
    p1.do("disconnect")
    assert port_bindable(p1.port) is not buggy
    p1.do("reconnect")  # the mutant gives the port up to listen again
    p1.do("deregister")
    assert port_bindable(p1.port) is not buggy


def offline_delivery(s: System, buggy: bool) -> None:
    """A member that disconnected still logs a message sent while it is offline."""
    p1, p2 = s.members(2)
    p2.do("disconnect")
    p1.do("msend", tok(1))
    p1.wait_log([tok(1)])
    assert seen_within(p2, tok(1), 1.0) is buggy  # the mutant delivers within milliseconds
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(1), tok(2)])  # and only once


def phantom(s: System, buggy: bool) -> None:
    """A recipient other than the sender logs a token that was never sent."""
    p1, p2 = s.members(2)
    p1.do("msend", tok(17))
    p1.wait_log([tok(17)])
    p2.wait_log(["M90000017"] if buggy else [tok(17)])


def participant_clock(s: System, buggy: bool) -> None:
    """Participant clocks -60 s (sender) and +60 s (reconnecting member): a message sent while
    the member was offline for a moment looks 120 s old and is lost."""
    s.coordinator(td=3.0)
    p1 = s.participant("1", faketime(s.tmp / "p1.clock", -60))
    p2 = s.participant("2", faketime(s.tmp / "p2.clock", +60))
    p1.do("register")
    p2.do("register")
    p2.do("disconnect")
    p1.do("msend", tok(1))
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(2)] if buggy else [tok(1), tok(2)])


def wall_clock(s: System, buggy: bool) -> None:
    """The coordinator's wall clock steps 30 s forward while a member is offline for a moment:
    the message sent before the step looks expired and is lost."""
    clock = s.tmp / "coordinator.clock"
    s.coordinator(td=3.0, env=faketime(clock, 0))
    p1, p2 = s.participant("1"), s.participant("2")
    p1.do("register")
    p2.do("register")
    p2.do("disconnect")
    p1.do("msend", tok(1))
    p1.wait_log([tok(1)])
    step_clock(clock, +30)  # read again at the coordinator's next clock call
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(2)] if buggy else [tok(1), tok(2)])


def crash_loses(s: System, buggy: bool) -> None:
    """A message sent while a member is dead (SIGKILL) is lost after its restart + reconnect."""
    p1, p2 = s.members(2)
    # killed while its delivery channel is open (the coordinator connects back after its OK),
    # and the break seen before the send: else the kill or the send races the channel
    wait_until(lambda: "channel to 2 open" in s.log(), 10, "the channel to 2 open")
    p2.kill()
    wait_until(lambda: "channel to 2 broke" in s.log(), 10, "the broken channel noticed")
    p1.do("msend", tok(1))
    p1.wait_log([tok(1)])
    p2.start()  # same config, same log
    p2.do("reconnect")
    p1.do("msend", tok(2))
    p2.wait_log([tok(2)] if buggy else [tok(1), tok(2)])


def serial_delivery(s: System, buggy: bool) -> None:
    """While member 2 is stopped (SIGSTOP), member 1 does not get its own next messages."""
    p1, p2 = s.members(2)
    p1.do("msend", tok(1))
    p2.wait_log([tok(1)])  # both channels are open
    p2.signal(signal.SIGSTOP)
    p1.do("msend", tok(2))  # the mutant writes it to p1, then to p2, which never ACKs
    p1.do("msend", tok(3))  # stalled behind p2's turn
    assert seen_within(p1, tok(3), 1.5) is not buggy
    p2.signal(signal.SIGCONT)
    p1.wait_log([tok(1), tok(2), tok(3)])
    p2.wait_log([tok(1), tok(2), tok(3)])


CHECKS: dict[str, Callable[[System, bool], None]] = {
    "ignores-td": ignores_td,
    "loses-offline": loses_offline,
    "dup-on-reconnect": dup_on_reconnect,
    "post-deregister": post_deregister,
    "batches": batches,
    "keeps-port": keeps_port,
    "offline-delivery": offline_delivery,
    "phantom": phantom,
    "participant-clock": participant_clock,
    "wall-clock": wall_clock,
    "crash-loses": crash_loses,
    "serial-delivery": serial_delivery,
}


@pytest.mark.timeout(40)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_mutant_shows_its_bug(name: str, procs: ProcessGroup, tmp_path: Path) -> None:
    CHECKS[name](System(procs, tmp_path, mutant(name)), True)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_reference_does_not(name: str, procs: ProcessGroup, tmp_path: Path) -> None:
    CHECKS[name](System(procs, tmp_path, Impl.load(REFERENCE_ADAPTER)), False)


# --- the catalogue -----------------------------------------------------------------------------


def test_catalogue_is_complete_and_consistent() -> None:
    """Every mutant has a check, an adapter whose launchers exist, known rules and scenarios;
    every launcher in the directory belongs to some adapter."""
    from checkers.rulebook import RULES

    assert sorted(CATALOGUE) == sorted(CHECKS)
    used: set[str] = set()
    for name, entry in CATALOGUE.items():
        impl = mutant(name)
        assert impl.workdir == MUTANTS
        assert set(entry["rules"]) <= set(RULES), name
        assert set(entry["also_fails"]) <= set(RULES) - set(entry["rules"]), name
        assert entry["scenarios"] and entry["description"], name
        for scenario, rules in entry.get("catches", {}).items():
            assert scenario in entry["scenarios"] and set(rules) <= set(entry["rules"]), name
        scripts = [a for a in impl.coordinator + impl.participant if a.endswith(".py")]
        assert scripts, f"{name}: neither side runs a mutant launcher"
        for arg in scripts:
            assert (MUTANTS / impl.render(arg, config="x")).is_file(), arg
            used.add(Path(impl.render(arg, config="x")).name)
    assert used == {p.name for p in MUTANTS.glob("*.py")}


def test_catalogue_names_registered_scenarios() -> None:
    scenarios = pytest.importorskip("harness.scenarios.registry")
    for name, entry in CATALOGUE.items():
        unknown = set(entry["scenarios"]) - set(scenarios.REGISTRY)
        assert not unknown, f"{name}: {sorted(unknown)}"

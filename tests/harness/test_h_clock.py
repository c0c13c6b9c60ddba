"""Clock injection is real: probe processes under libfaketime report a wall clock off by the
offset, follow a run-time step, keep correct sleeps; the self-test's verdict per runtime."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from harness.running import clock
from harness.running.clock import ClockUnavailable, FakeClock, ProbeProcess, ProbeTimeout
from tests.procutil import wait_until

pytestmark = pytest.mark.process
needs_java = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("javac") is None,
    reason="java/javac not found on PATH (the JVM probe needs both)",
)
Start = Callable[[str, float, bool], "tuple[FakeClock, ProbeProcess]"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory per module, so the Java probe is compiled once."""
    return tmp_path_factory.mktemp("clock")


@pytest.fixture
def start(workdir: Path, tmp_path: Path) -> Iterator[Start]:
    """Start a probe (runtime, offset, fake_monotonic) under its own FakeClock; all are killed
    at the end of the test."""
    probes: list[ProbeProcess] = []

    def run(runtime: str, offset: float, fake_monotonic: bool) -> tuple[FakeClock, ProbeProcess]:
        fake = FakeClock(tmp_path / f"{runtime}-{len(probes)}.offset", offset, fake_monotonic)
        probe = ProbeProcess(clock.probe_argv(runtime, workdir), fake.env(), tmp_path / "err")
        probes.append(probe)
        assert probe.reply(15).startswith(f"ready {runtime}")
        return fake, probe

    yield run
    for probe in probes:
        probe.close()


def offset_of(probe: ProbeProcess, command: str = "wall") -> float:
    """The probe's wall clock minus ours, read from a real `wall` (or `command`) reply."""
    sent = time.time()
    reply, elapsed = probe.ask(command, 5)
    word, _, value = reply.partition(" ")
    assert word == command and elapsed < 1, (reply, elapsed)
    return float(value) - (sent + elapsed / 2)


def assert_steps(fake: FakeClock, probe: ProbeProcess, to: float, tolerance: float = 2) -> None:
    """set_offset moves the running process's wall clock to `to` (± tolerance) in time."""
    pid = probe.popen.pid
    fake.set_offset(to)
    wait_until(
        lambda: abs(offset_of(probe) - to) <= tolerance, clock.STEP_LATENCY + 1.5, f"step to {to}"
    )
    assert probe.popen.poll() is None and probe.popen.pid == pid


def assert_real_wait(probe: ProbeProcess, command: str) -> None:
    """A 0.5 s wait in the probe takes 0.4-1.5 s of our (real) time."""
    _, real = probe.ask(command, 5)
    assert 0.4 <= real <= 1.5, f"{command} took {real:.3f} s"


def assert_real_waits_at_once(probe: ProbeProcess, commands: list[str]) -> None:
    """0.5 s waits run concurrently in the probe each take 0.4-1.5 s of our (real) time."""
    replies = probe.ask_all(commands, 5)
    for command in commands:
        real = replies[command][1]
        assert 0.4 <= real <= 1.5, f"{command} took {real:.3f} s"


@pytest.mark.timeout(30)
def test_python_process_wall_clock_is_offset_and_steps_while_running(start: Start) -> None:
    fake, probe = start("python", 3600, False)
    assert abs(offset_of(probe) - 3600) <= 2
    for command in ("sleep", "event", "asyncio"):
        assert_real_wait(probe, command)
    mono_before, real_before = float(probe.ask("mono", 5)[0].split()[1]), time.monotonic()
    assert_steps(fake, probe, -60)
    mono_after, real_after = float(probe.ask("mono", 5)[0].split()[1]), time.monotonic()
    assert abs((mono_after - mono_before) - (real_after - real_before)) < 0.5
    for command in ("sleep", "event", "asyncio"):
        assert_real_wait(probe, command)
    assert fake.offset == -60


@pytest.mark.timeout(30)
def test_fractional_and_negative_offsets_are_exact(start: Start) -> None:
    _, probe = start("python", -1.5, False)
    assert abs(offset_of(probe) + 1.5) <= 0.25
    fake, probe = start("python", 0.75, False)
    assert abs(offset_of(probe) - 0.75) <= 0.25
    assert_steps(fake, probe, 2.25, tolerance=0.25)


@needs_java
@pytest.mark.timeout(60)
def test_jvm_process_wall_clock_is_offset_and_steps_while_running(start: Start) -> None:
    # The default mode (monotonic not faked, FAKETIME_FORCE_MONOTONIC_FIX=0): currentTimeMillis,
    # Instant.now and Date step; nanoTime does not; every timed wait takes its real time.
    fake, probe = start("java", 3600, False)
    for command in ("wall", "instant", "date"):
        assert abs(offset_of(probe, command) - 3600) <= 2, command
    assert_real_waits_at_once(probe, list(clock.WAITS["java"]))
    mono_before, real_before = float(probe.ask("mono", 5)[0].split()[1]), time.monotonic()
    assert_steps(fake, probe, -60)
    mono_after, real_after = float(probe.ask("mono", 5)[0].split()[1]), time.monotonic()
    assert abs((mono_after - mono_before) - (real_after - real_before)) < 0.5
    for command in ("instant", "date"):
        assert abs(offset_of(probe, command) + 60) <= 2, command
    assert_real_waits_at_once(probe, list(clock.WAITS["java"]))


@pytest.mark.timeout(30)
def test_children_of_the_process_inherit_the_fake_clock(start: Start) -> None:
    # The native probe is sh; every `wall` runs `date` as a new child process.
    fake, probe = start("native", 3600, False)
    assert abs(offset_of(probe) - 3600) <= 2
    assert_real_wait(probe, "sleep")
    assert_steps(fake, probe, -60)


@pytest.mark.timeout(30)
def test_selftest_python_ok_and_cached(workdir: Path) -> None:
    support = clock.selftest("python", False, workdir)
    assert support.ok and support.offset_ok, support.reason
    assert support.runtime == "python"
    assert abs(support.figures["wall_offset"] - 3600) <= 2
    assert 0.4 <= support.figures["sleep_after"] <= 1.5
    assert support.skip_reason("clock_offset") is None
    assert support.skip_reason("clock_step") is None
    began = time.monotonic()
    assert clock.selftest("python", False, workdir) is support
    assert time.monotonic() - began < 0.1


@pytest.mark.timeout(30)
def test_selftest_python_with_monotonic_faked_is_refused(workdir: Path) -> None:
    # Measured: sleeps/waits never return when libfaketime also fakes Python's monotonic clock.
    support = clock.measure("python", True, workdir, 20)
    assert not support.ok and not support.offset_ok
    assert support.reason.startswith("python with monotonic faked: ")
    assert "did not return within" in support.reason
    assert support.skip_reason("clock_offset") == support.reason


@needs_java
@pytest.mark.timeout(60)
def test_selftest_java_verdicts(workdir: Path) -> None:
    # The default mode: wall clock faked and stepped, nanoTime and every timed wait real.
    default = clock.measure("java", False, workdir, 20)
    assert default.ok and default.offset_ok, default.reason
    assert default.reason == "java with monotonic not faked: ok"
    assert default.skip_reason("clock_offset") is None
    assert default.skip_reason("clock_step") is None
    figures = default.figures
    assert set(clock.WALLS["java"]) == {"wall", "instant", "date"}
    for command in clock.WALLS["java"]:
        assert abs(figures[f"{command}_offset"] - 3600) <= 2
        assert abs(figures[f"{command}_offset_after"] + 60) <= 2
    assert abs(figures["monotonic_jump"]) <= clock.MONOTONIC_TOLERANCE
    for command in clock.WAITS["java"]:
        for when in ("before", "after"):
            assert clock.WAIT_BOUNDS[0] <= figures[f"{command}_{when}"] <= clock.WAIT_BOUNDS[1]
    # A faked monotonic clock moves with every step (libfaketime derives it from the fake wall
    # clock): offsets apply, steps are refused, and the reason says what to set instead.
    faked = clock.measure("java", True, workdir, 20)
    assert faked.offset_ok and not faked.ok
    assert faked.skip_reason("clock_offset") is None
    assert faked.skip_reason("clock_step") == faked.reason
    assert faked.reason.startswith("java with monotonic faked: the -60 s step moved the monotonic")
    assert faked.reason.endswith("clock_step needs [clock] fake_monotonic = false)")


@pytest.mark.timeout(30)
def test_selftest_native_ok(workdir: Path) -> None:
    support = clock.measure("native", False, workdir, 20)
    assert support.ok, support.reason


def test_java_missing_is_a_clear_verdict(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(workdir / "no-such-bin"))
    support = clock.measure("java", False, workdir, 20)
    assert (support.ok, support.offset_ok, support.reason) == (False, False, "java not found")


def test_missing_library_is_clock_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ClockUnavailable, match=r"^libfaketime: library not found at .*no-pkg"):
        clock.library_path(tmp_path / "no-pkg")
    assert clock.library_path().is_file()


def test_faketime_in_the_environment_is_refused(tmp_path: Path) -> None:
    fake = FakeClock(tmp_path / "o", 10, False)
    with pytest.raises(ClockUnavailable, match="FAKETIME is set"):
        fake.env({"FAKETIME": "+5"})
    env = fake.env({"LD_PRELOAD": "/opt/other.so"})
    assert env["LD_PRELOAD"] == f"{clock.library_path()}:/opt/other.so"
    assert env["DONT_FAKE_MONOTONIC"] == env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
    # Not faked: a CLOCK_MONOTONIC deadline is passed through (0); faked: converted (1).
    assert env["FAKETIME_FORCE_MONOTONIC_FIX"] == "0"
    faked = FakeClock(tmp_path / "m", 10, True).env({})
    assert faked["DONT_FAKE_MONOTONIC"] == "0"
    assert faked["FAKETIME_FORCE_MONOTONIC_FIX"] == "1"


def test_offset_file_is_replaced_atomically(tmp_path: Path) -> None:
    fake = FakeClock(tmp_path / "o", 0, False)
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(fake.path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(300):
        fake.set_offset(-60 if i % 2 else 3600.5)
    done.set()
    reader.join(5)
    assert seen <= {"+0.000000\n", "-60.000000\n", "+3600.500000\n"}
    assert len(seen) >= 2


@pytest.mark.timeout(30)
def test_the_harness_itself_never_loads_libfaketime(start: Start) -> None:
    _, probe = start("python", 3600, False)
    child_maps = Path(f"/proc/{probe.popen.pid}/maps").read_text()
    assert "libfaketime" in child_maps  # the check below can see the library when present
    assert "libfaketime" not in Path("/proc/self/maps").read_text()
    assert "libfaketime" not in os.environ.get("LD_PRELOAD", "")
    assert "FAKETIME_TIMESTAMP_FILE" not in os.environ


@pytest.mark.parametrize(
    ("argv0", "runtime"),
    [
        ("{python}", "python"),
        ("/usr/bin/python3.11", "python"),
        ("python", "python"),
        ("pypy3", "python"),
        ("java", "java"),
        ("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "java"),
        ("./coordinator", "native"),
        ("javac", "native"),
        ("/bin/sh", "native"),
    ],
)
def test_runtime_of(argv0: str, runtime: str) -> None:
    assert clock.runtime_of(argv0) == runtime


def test_unusable_probe_is_a_clear_verdict(tmp_path: Path) -> None:
    support = clock.measure("cobol", False, tmp_path, 5)
    assert (support.ok, support.reason) == (
        False,
        "unknown runtime 'cobol' (python, java or native)",
    )
    fake = FakeClock(tmp_path / "o", 0, False)
    with pytest.raises(ClockUnavailable, match=r"^cannot start the clock probe /no/such/program"):
        ProbeProcess(["/no/such/program"], fake.env(), tmp_path / "err")


def test_ask_all_times_concurrent_replies_and_names_the_unanswered(tmp_path: Path) -> None:
    script = tmp_path / "half.sh"
    script.write_text('while read -r c; do [ "$c" = b ] || echo "$c 1"; done\n')
    probe = ProbeProcess(["/bin/sh", str(script)], {}, tmp_path / "err")
    try:
        replies = probe.ask_all(["a"], 5)
        assert list(replies) == ["a"] and replies["a"][0] == "a 1"
        with pytest.raises(ProbeTimeout) as caught:
            probe.ask_all(["c", "b"], 0.3)
        assert caught.value.unanswered == ["b"]
    finally:
        probe.close()

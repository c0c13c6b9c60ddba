"""Clock injection (`clock_offset`, `clock_step`; docs/clock.md) with the PyPI libfaketime
library.

A `FakeClock` is one process's fake wall clock: a timestamp file holding a relative offset
that libfaketime re-reads once per real second, so `set_offset` steps the clock of a running
process (within STEP_LATENCY). `env()` is the environment for the child only: libfaketime is
never loaded into the harness. `selftest` checks, with a tiny probe per runtime, that
injection is faithful. The default mode (monotonic clock not faked) serves Python, the JVM
and native programs alike, offsets and steps: FAKETIME_FORCE_MONOTONIC_FIX=0 keeps the JVM's
timed waits real. See docs/clock.md for the measurements behind the settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional

LIBRARY_IN_PACKAGE = Path("vendor", "libfaketime", "src", "libfaketime.so.1")
PROBES = Path(__file__).resolve().parent / "probes"
SELFTEST_OFFSET = 3600.0
SELFTEST_STEP = -60.0
WALL_TOLERANCE = 2.0
# A step is visible at the process's first clock call after the next whole real second.
STEP_LATENCY = 1.0
STEP_WITHIN = 1.5
MONOTONIC_TOLERANCE = 0.5
WAIT_BOUNDS = (0.4, 1.5)
COMMAND_LIMIT = 3.0
# What each probe command waits with, per runtime (the names used in reasons).
WAITS: dict[str, dict[str, str]] = {
    "python": {
        "sleep": "time.sleep(0.5)",
        "event": "threading.Event.wait(0.5)",
        "asyncio": "asyncio.sleep(0.5)",
    },
    "java": {
        "sleep": "Thread.sleep(500)",
        "wait": "Object.wait(500)",
        "park": "LockSupport.parkNanos(500 ms)",
        "accept": "ServerSocket.accept() with soTimeout 500",
        "sched": "ScheduledExecutorService.schedule(500 ms)",
    },
    "native": {"sleep": "sleep 0.5"},
}
# The wall-clock readers each probe answers ("wall" first; all must show the offset).
WALLS: dict[str, tuple[str, ...]] = {
    "python": ("wall",),
    "java": ("wall", "instant", "date"),
    "native": ("wall",),
}
# Runtimes whose probe runs its waits concurrently (each on its own thread): all are sent at
# once and each reply is timed on the harness clock from the send.
CONCURRENT_WAITS = frozenset({"java"})


class ClockUnavailable(Exception):
    """Clock injection cannot be set up here; the message is one line saying why."""


def library_path(package_dir: Optional[Path] = None) -> Path:
    """The libfaketime.so.1 shipped in the `libfaketime` package (found without importing it,
    or under `package_dir`); raises ClockUnavailable when it is not there."""
    if package_dir is None:
        spec = importlib.util.find_spec("libfaketime")
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise ClockUnavailable(
                "libfaketime: the Python package 'libfaketime' is not installed "
                "(pip install libfaketime)"
            )
        package_dir = Path(locations[0])
    library = Path(package_dir) / LIBRARY_IN_PACKAGE
    if not library.is_file():
        raise ClockUnavailable(f"libfaketime: library not found at {library}")
    return library.resolve()


def format_offset(offset: float) -> str:
    """The timestamp-file line for a relative offset in seconds, e.g. `+3600.000000`."""
    return f"{offset:+.6f}\n"


def parse_offset(text: str) -> float:
    """The offset in seconds written by `format_offset`."""
    return float(text.strip())


class FakeClock:
    """One process's fake wall clock: a timestamp file at `path` holding the offset."""

    def __init__(
        self, path: Path, offset: float, fake_monotonic: bool, library: Optional[Path] = None
    ) -> None:
        self.path = Path(path).resolve()
        self.fake_monotonic = fake_monotonic
        self.library = library if library is not None else library_path()
        self.set_offset(offset)

    @property
    def offset(self) -> float:
        """The offset currently in the timestamp file."""
        return parse_offset(self.path.read_text())

    def set_offset(self, offset: float) -> None:
        """Write the offset atomically (temp file + rename); a running process sees it within
        STEP_LATENCY (a `clock_step`)."""
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(format_offset(offset))
        os.replace(temp, self.path)

    def env(self, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        """Variables to add to the child's environment (`base`, default os.environ, supplies an
        existing LD_PRELOAD to prepend to); the child's own children inherit them. Raises
        ClockUnavailable when `base` sets FAKETIME, which would override the timestamp file."""
        base = os.environ if base is None else base
        if "FAKETIME" in base:
            raise ClockUnavailable(
                "libfaketime: FAKETIME is set in the harness environment; it overrides the "
                "timestamp file (unset it)"
            )
        preload = ":".join(p for p in (str(self.library), base.get("LD_PRELOAD", "")) if p)
        dont_fake = "0" if self.fake_monotonic else "1"
        # libfaketime's pthread_cond_timedwait converts the deadline of a CLOCK_MONOTONIC
        # condition variable from a *faked* monotonic reading even when the monotonic clock is
        # not faked, so every such timed wait (the JVM's Object.wait, Thread.sleep, parkNanos)
        # returns at once; `0` passes the caller's real deadline through unchanged (glibc >=
        # 2.30 hands it straight to the kernel). With the monotonic clock faked the deadline
        # is on the faked clock and must be converted: `1` (`0` would wait for ever).
        monotonic_fix = "1" if self.fake_monotonic else "0"
        return {
            "LD_PRELOAD": preload,
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            # Re-read the file at the first clock call of each new real second: a step shows
            # within STEP_LATENCY. FAKETIME_NO_CACHE=1 (re-read at every call) is 60x slower
            # per call and crashes multi-threaded processes (see docs/clock.md).
            "FAKETIME_CACHE_DURATION": "0",
            "FAKETIME_NO_CACHE": "0",
            "DONT_FAKE_MONOTONIC": dont_fake,
            "FAKETIME_DONT_FAKE_MONOTONIC": dont_fake,
            "FAKETIME_FORCE_MONOTONIC_FIX": monotonic_fix,
        }


@dataclass(frozen=True)
class ClockSupport:
    """Whether clock faults apply faithfully to `runtime`: `ok` for both a constant offset and a
    run-time step, `offset_ok` for a constant offset only; `reason` is one line."""

    ok: bool
    reason: str
    runtime: str
    figures: dict = field(default_factory=dict)
    offset_ok: bool = False

    def skip_reason(self, fault: str) -> Optional[str]:
        """None when `fault` ("clock_offset" or "clock_step") can be applied, else why not."""
        applies = self.offset_ok if fault == "clock_offset" else self.ok
        return None if applies else self.reason


def runtime_of(argv0: str) -> str:
    """The probe runtime for a command's program: "python", "java" or "native"."""
    name = os.path.basename(argv0)
    if argv0 == "{python}" or re.fullmatch(r"(python|pypy)[0-9.]*(\.exe)?", name):
        return "python"
    if re.fullmatch(r"java(\.exe)?", name):
        return "java"
    return "native"


def mode_of(fake_monotonic: bool) -> str:
    """How the mode is named in reasons."""
    return "monotonic faked" if fake_monotonic else "monotonic not faked"


def java_probe(cache_root: Path) -> list[str]:
    """argv running the Java probe, compiled once per source version under `cache_root`."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None:
        raise ClockUnavailable("java not found")
    if javac is None:
        raise ClockUnavailable("javac not found (needed to compile the clock probe)")
    source = PROBES / "ClockProbe.java"
    classes = cache_root / f"java-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}"
    if not (classes / "ClockProbe.class").is_file():
        temp = cache_root / f".java-{os.getpid()}-{threading.get_ident()}"
        try:
            done = subprocess.run(
                [javac, "-d", str(temp), str(source)], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClockUnavailable(f"javac failed on the clock probe: {exc}") from None
        if done.returncode != 0:
            raise ClockUnavailable(f"javac failed on the clock probe: {last_line(done.stderr)}")
        with contextlib.suppress(OSError):  # a concurrent compile may have won the rename
            os.replace(temp, classes)
        shutil.rmtree(temp, ignore_errors=True)
    return [java, "-cp", str(classes), "ClockProbe"]


def probe_argv(runtime: str, workdir: Path) -> list[str]:
    """argv of the probe for `runtime` (raises ClockUnavailable when it cannot run here)."""
    if runtime == "python":
        return [sys.executable, str(PROBES / "clock_probe.py")]
    if runtime == "java":
        return java_probe(workdir / "probe-cache")
    if runtime == "native":
        return ["/bin/sh", str(PROBES / "clock_probe.sh")]
    raise ClockUnavailable(f"unknown runtime {runtime!r} (python, java or native)")


def last_line(text: str) -> str:
    """The last non-empty line of `text` (or "no output")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class ProbeTimeout(Exception):
    """The probe gave no reply in time (or exited); `unanswered`: the commands of an
    `ask_all` still without a reply."""

    unanswered: list[str] = []


def start_probe(argv: list[str], env: Mapping[str, str], stderr: IO[bytes]) -> subprocess.Popen:
    """Popen the probe in its own session with piped text stdin/stdout and `env` added."""
    try:
        return subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise ClockUnavailable(f"cannot start the clock probe {argv[0]}: {exc}") from None


class ProbeProcess:
    """A probe child with a line reader; `ask` sends one command and times the reply."""

    def __init__(self, argv: list[str], env: Mapping[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr:
            self.popen = start_probe(argv, env, stderr)
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def reply(self, limit: float) -> str:
        """The next stdout line; ProbeTimeout after `limit` s or when the probe exits."""
        try:
            line = self.lines.get(timeout=max(limit, 0.0))
        except queue.Empty:
            raise ProbeTimeout(f"no reply within {limit:.1f} s") from None
        if line is None:
            self.lines.put(None)
            raise ProbeTimeout(f"the probe exited ({last_line(self.stderr_text())})")
        return line

    def ask(self, command: str, limit: float) -> tuple[str, float]:
        """Send `command`; return (reply, real seconds until the reply) on the harness clock."""
        assert self.popen.stdin is not None
        start = time.monotonic()
        try:
            self.popen.stdin.write(command + "\n")
            self.popen.stdin.flush()
        except OSError:
            raise ProbeTimeout(f"the probe exited ({last_line(self.stderr_text())})") from None
        return self.reply(limit), time.monotonic() - start

    def ask_all(self, commands: list[str], limit: float) -> dict[str, tuple[str, float]]:
        """Send every command at once (a probe that answers them concurrently); return, per
        command (the first word of its reply), (reply, real seconds from the send to it).
        ProbeTimeout (with `unanswered`) when some are not answered within `limit` s."""
        assert self.popen.stdin is not None
        start = time.monotonic()
        try:
            self.popen.stdin.write("".join(f"{command}\n" for command in commands))
            self.popen.stdin.flush()
        except OSError:
            raise ProbeTimeout(f"the probe exited ({last_line(self.stderr_text())})") from None
        replies: dict[str, tuple[str, float]] = {}
        while len(replies) < len(commands):
            try:
                line = self.reply(start + limit - time.monotonic())
            except ProbeTimeout as exc:
                exc.unanswered = [c for c in commands if c not in replies]
                raise
            replies[line.partition(" ")[0]] = (line, time.monotonic() - start)
        return replies

    def stderr_text(self) -> str:
        """What the probe wrote on stderr so far."""
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(errors="replace")
        return ""

    def close(self) -> None:
        """Kill the probe's process group and reap it (bounded, idempotent)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        for stream in (self.popen.stdin, self.popen.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        self.reader.join(timeout=1)


class SelfTestFailed(Exception):
    """One check of the self-test failed; the message is the reason (one line)."""


def reading(reply: str, command: str) -> Optional[float]:
    """The number in a `<command> <number>` reply (None for `-`); SelfTestFailed otherwise."""
    word, _, rest = reply.partition(" ")
    value = rest.split(" ")[0]
    if word == command and value == "-":
        return None
    try:
        if word == command:
            return float(value)
    except ValueError:
        pass
    raise SelfTestFailed(f"unexpected probe reply {reply!r} to {command!r}")


def wall_offset(probe: ProbeProcess, limit: float, command: str = "wall") -> float:
    """The probe's wall clock (read with `command`) minus the harness's (at the middle of the
    round trip), in s."""
    sent = time.time()
    reply, elapsed = probe.ask(command, limit)
    value = reading(reply, command)
    if value is None:
        raise SelfTestFailed("the probe cannot read the wall clock")
    if elapsed > WALL_TOLERANCE:
        raise SelfTestFailed(f"the probe took {elapsed:.1f} s to report its wall clock")
    return value - (sent + elapsed / 2)


def check_wall(
    probe: ProbeProcess, runtime: str, expected: float, phase: str, figures: dict, deadline: float
) -> None:
    """Every wall-clock reader of the runtime (WALLS) is off by `expected` ± WALL_TOLERANCE;
    `phase` is "" before the step, else how the reasons name it."""
    for command in WALLS[runtime]:
        offset = wall_offset(probe, min(COMMAND_LIMIT, deadline - time.monotonic()), command)
        figures[f"{command}_offset{'_after' if phase else ''}"] = round(offset, 3)
        if abs(offset - expected) > WALL_TOLERANCE:
            clock = "wall clock" if command == "wall" else f"wall clock ({command})"
            raise SelfTestFailed(
                f"{clock} off by {offset:+.1f} s, expected {expected:+.0f} s"
                + (f" {phase}" if phase else "")
            )


def monotonic_now(probe: ProbeProcess, limit: float) -> Optional[tuple[float, float]]:
    """(the probe's monotonic clock, the harness's) or None when the probe cannot read it."""
    reply, _ = probe.ask("mono", limit)
    now = time.monotonic()
    value = reading(reply, "mono")
    return None if value is None else (value, now)


def check_step(probe: ProbeProcess, clock: FakeClock, figures: dict, deadline: float) -> None:
    """After set_offset(SELFTEST_STEP) the wall clock follows within STEP_WITHIN s and the
    monotonic clock does not move with it."""
    before = monotonic_now(probe, min(COMMAND_LIMIT, deadline - time.monotonic()))
    clock.set_offset(SELFTEST_STEP)
    start = time.monotonic()
    offset = SELFTEST_OFFSET
    while abs(offset - SELFTEST_STEP) > WALL_TOLERANCE:
        if time.monotonic() - start > STEP_WITHIN:
            raise SelfTestFailed(
                f"a {SELFTEST_STEP:+.0f} s step did not apply within {STEP_WITHIN:.1f} s "
                f"(wall clock still off by {offset:+.1f} s)"
            )
        offset = wall_offset(probe, min(COMMAND_LIMIT, deadline - time.monotonic()))
    figures["step_applied_after"] = round(time.monotonic() - start, 3)
    after = monotonic_now(probe, min(COMMAND_LIMIT, deadline - time.monotonic()))
    check_monotonic(before, after, clock.fake_monotonic, figures)


def check_monotonic(
    before: Optional[tuple[float, float]],
    after: Optional[tuple[float, float]],
    fake_monotonic: bool,
    figures: dict,
) -> None:
    """The probe's monotonic clock advanced like the harness's across the step."""
    if before is None or after is None:
        if fake_monotonic:
            raise SelfTestFailed(
                "cannot read the monotonic clock to check it does not move with a step "
                "(libfaketime moves a faked monotonic clock with the wall clock)"
            )
        return
    jump = (after[0] - before[0]) - (after[1] - before[1])
    figures["monotonic_jump"] = round(jump, 3)
    if abs(jump) > MONOTONIC_TOLERANCE:
        why = (
            " (libfaketime derives a faked monotonic clock from the fake wall clock, so every "
            "step moves it; clock_step needs [clock] fake_monotonic = false)"
            if fake_monotonic
            else ""
        )
        raise SelfTestFailed(
            f"the {SELFTEST_STEP:+.0f} s step moved the monotonic clock by {jump:+.1f} s{why}"
        )


def timed_waits(
    probe: ProbeProcess, runtime: str, phase: str, deadline: float
) -> dict[str, tuple[str, float]]:
    """Run every timed wait of the runtime: command -> (reply, real seconds until it), all at
    once for a CONCURRENT_WAITS runtime, else one after the other."""
    commands = list(WAITS[runtime])
    if runtime in CONCURRENT_WAITS:
        limit = max(0.0, min(COMMAND_LIMIT, deadline - time.monotonic()))
        try:
            return probe.ask_all(commands, limit)
        except ProbeTimeout as exc:
            names = ", ".join(WAITS[runtime].get(c, c) for c in exc.unanswered)
            raise SelfTestFailed(f"{names} did not return within {limit:.1f} s {phase}") from None
    replies = {}
    for command in commands:
        limit = max(0.0, min(COMMAND_LIMIT, deadline - time.monotonic()))
        try:
            replies[command] = probe.ask(command, limit)
        except ProbeTimeout:
            name = WAITS[runtime][command]
            raise SelfTestFailed(f"{name} did not return within {limit:.1f} s {phase}") from None
    return replies


def check_waits(
    probe: ProbeProcess, runtime: str, phase: str, figures: dict, deadline: float
) -> None:
    """Every timed wait of the runtime takes WAIT_BOUNDS real seconds; the probe's CPU time
    during the waits, where it reports it, goes into `figures` (cpu_before, cpu_after)."""
    replies = timed_waits(probe, runtime, phase, deadline)
    when = phase.split()[0]
    cpu: Optional[float] = None
    for command, name in WAITS[runtime].items():
        reply, real = replies[command]
        figures[f"{command}_{when}"] = round(real, 3)
        if not WAIT_BOUNDS[0] <= real <= WAIT_BOUNDS[1]:
            raise SelfTestFailed(f"{name} took {real:.1f} s {phase}")
        fields = reply.split(" ")
        with contextlib.suppress(IndexError, ValueError):
            cpu = max(cpu or 0.0, float(fields[2]))
    if cpu is not None:  # a figure only: JIT and GC threads make it noisy (0.0-0.3 s)
        figures[f"cpu_{when}"] = round(cpu, 3)


class StepUnfaithful(SelfTestFailed):
    """A constant offset applies faithfully but a run-time step does not."""


def run_selftest(
    runtime: str, fake_monotonic: bool, workdir: Path, timeout: float, figures: dict
) -> None:
    """Run the probe through offset, waits, step, waits, filling `figures`; raises
    ClockUnavailable, SelfTestFailed, or StepUnfaithful (the offset phase passed)."""
    deadline = time.monotonic() + timeout
    argv = probe_argv(runtime, workdir)
    stem = f"clock-selftest-{runtime}-{'mono' if fake_monotonic else 'wall'}-{os.getpid()}"
    clock = FakeClock(workdir / f"{stem}.offset", SELFTEST_OFFSET, fake_monotonic)
    probe = ProbeProcess(argv, clock.env(), workdir / f"{stem}.stderr")
    try:
        try:
            figures["version"] = probe.reply(deadline - time.monotonic()).partition(" ")[2]
            figures["started_after"] = round(timeout - (deadline - time.monotonic()), 3)
            check_wall(probe, runtime, SELFTEST_OFFSET, "", figures, deadline)
            check_waits(probe, runtime, "before the step", figures, deadline)
        except ProbeTimeout as exc:
            raise SelfTestFailed(f"the probe stopped answering: {exc}") from None
        try:
            check_step(probe, clock, figures, deadline)
            after = f"after a {SELFTEST_STEP:+.0f} s step"
            check_wall(probe, runtime, SELFTEST_STEP, after, figures, deadline)
            check_waits(probe, runtime, after, figures, deadline)
        except (SelfTestFailed, ProbeTimeout) as exc:
            raise StepUnfaithful(str(exc)) from None
    finally:
        probe.close()


_RESULTS: dict[tuple[str, bool], ClockSupport] = {}
_LOCK = threading.Lock()


def selftest(
    runtime: str, fake_monotonic: bool, workdir: Path, timeout: float = 20
) -> ClockSupport:
    """Whether clock_offset/clock_step apply faithfully to `runtime` with these settings
    (`measure`, cached in-process per (runtime, fake_monotonic))."""
    key = (runtime, fake_monotonic)
    with _LOCK:
        if key not in _RESULTS:
            _RESULTS[key] = measure(runtime, fake_monotonic, Path(workdir), timeout)
        return _RESULTS[key]


def measure(runtime: str, fake_monotonic: bool, workdir: Path, timeout: float) -> ClockSupport:
    """Run the clock probe for `runtime` (offset +3600 s, then a run-time step to -60 s) in
    `workdir` and judge it; never raises for a clock that cannot be injected."""
    figures: dict = {}
    workdir.mkdir(parents=True, exist_ok=True)
    mode = f"{runtime} with {mode_of(fake_monotonic)}"
    try:
        run_selftest(runtime, fake_monotonic, workdir, timeout, figures)
    except ClockUnavailable as exc:
        return ClockSupport(False, str(exc), runtime, figures)
    except SelfTestFailed as exc:
        offset_ok = isinstance(exc, StepUnfaithful)
        return ClockSupport(False, f"{mode}: {exc}", runtime, figures, offset_ok)
    return ClockSupport(True, f"{mode}: ok", runtime, figures, True)

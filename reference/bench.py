"""Benchmark of the reference implementation: `python -m reference.bench [options]`.

Runs the real coordinator and N real participants on 127.0.0.1, drives `msend` commands
through the participants' stdin, tails their logs, and prints throughput, delivery latency,
missing/duplicate counts, coordinator memory and per-process CPU. Exit 1 when any acked
message is missing from a log or logged twice, 2 when the run cannot be set up or a process
fails, 130 when interrupted; every process started is killed (process group) in every case.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import math
import os
import pstats
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from reference.wire import parse_number, quote

REPO = Path(__file__).resolve().parent.parent
TOKEN_PREFIX = "B"
TOKEN_DIGITS = 9
TOKEN_RE = re.compile(rb"B([0-9]{9})")
TAIL_INTERVAL = 0.003  # seconds between two polls of the log files
SAMPLE_INTERVAL = 1.0  # seconds between two coordinator RSS samples
PROGRESS_INTERVAL = 5.0  # seconds between two progress lines on stderr
REPLY_TIMEOUT = 5.0  # a command without a reply after this long is a failure
STARTUP_TIMEOUT = 10.0
PORT_TRIES = 3  # a free port can be taken by someone else before our process binds it
DUPLICATE_GRACE = 0.3  # seconds to keep tailing after the last delivery, to catch duplicates
NAN = float("nan")


class BenchError(Exception):
    """The run could not be set up or a process failed; str() is one line."""


# ---------------------------------------------------------------------------
# Pure parts: tokens, log scanning, the ledger of observations, pacing, statistics.


def token(seq: int) -> str:
    """The fixed-width alphanumeric message token of sequence number `seq` (e.g. B000000042)."""
    return f"{TOKEN_PREFIX}{seq:0{TOKEN_DIGITS}d}"


@dataclass
class LogScanner:
    """Turns the bytes appended to one log into the token sequence numbers of complete lines."""

    pending: bytes = b""
    noise_lines: int = 0

    def feed(self, data: bytes) -> list[int]:
        """Consume newly read bytes; return the tokens of every line completed by them."""
        data = self.pending + data
        cut = data.rfind(b"\n") + 1
        self.pending = data[cut:]
        found = [int(m.group(1)) for m in TOKEN_RE.finditer(data, 0, cut)]
        if len(found) < data.count(b"\n", 0, cut):
            self.noise_lines += sum(
                1 for line in data[:cut].splitlines() if not TOKEN_RE.search(line)
            )
        return found


class Ledger:
    """What the bench observed: tokens issued, acks and errors with their times, and the first
    time each token was seen in each log. All figures are derived from these observations."""

    def __init__(self, logs: int) -> None:
        self.issued = 0
        self.acked_at = array.array("d")
        self.errors: list[tuple[int, str]] = []
        self.seen_at = [array.array("d") for _ in range(logs)]
        self.duplicates = [0] * logs
        self.phantoms = [0] * logs

    def issue(self) -> int:
        """Allocate the next token's sequence number."""
        seq = self.issued
        self.issued += 1
        self.acked_at.append(NAN)
        for seen in self.seen_at:
            seen.append(NAN)
        return seq

    def ack(self, seq: int, now: float) -> None:
        """Token `seq`'s msend got an `ok` reply, read at `now`."""
        self.acked_at[seq] = now

    def error(self, seq: int, reply: str) -> None:
        """Token `seq`'s msend got an `error` reply (it is owed to nobody)."""
        self.errors.append((seq, reply))

    def seen(self, log: int, seq: int, now: float) -> None:
        """Record an occurrence of token `seq` in log `log`."""
        if seq >= self.issued:
            self.phantoms[log] += 1
        elif math.isnan(self.seen_at[log][seq]):
            self.seen_at[log][seq] = now
        else:
            self.duplicates[log] += 1

    def acked(self) -> Iterator[int]:
        """Sequence numbers of the acked tokens, in issue order."""
        return (s for s in range(self.issued) if not math.isnan(self.acked_at[s]))

    def missing(self) -> int:
        """(acked token, log) pairs not (yet) seen."""
        return sum(1 for s in self.acked() for seen in self.seen_at if math.isnan(seen[s]))

    def latencies(self, window: tuple[float, float]) -> list[float]:
        """Ack-to-log delays of tokens acked inside `window`, one per log that has the token;
        a line that showed up before the ack was read counts as 0."""
        lo, hi = window
        return [
            max(0.0, seen[s] - self.acked_at[s])
            for s in self.acked()
            if lo <= self.acked_at[s] <= hi
            for seen in self.seen_at
            if not math.isnan(seen[s])
        ]

    def acked_in(self, window: tuple[float, float]) -> int:
        """How many acks were read inside `window`."""
        lo, hi = window
        return sum(1 for s in self.acked() if lo <= self.acked_at[s] <= hi)

    def slowest_second(self, window: tuple[float, float]) -> int:
        """The fewest acks read in any whole second of `window` (0 if it is under a second)."""
        lo, hi = window
        buckets = [0] * int(hi - lo)
        for s in self.acked():
            i = int(self.acked_at[s] - lo)
            if 0 <= i < len(buckets):
                buckets[i] += 1
        return min(buckets, default=0)


def next_due(start: float, index: int, participants: int, rate: float, sent: int) -> float:
    """When participant `index` should send its command number `sent` so that all participants
    together send `rate` per second, evenly staggered; rate 0 means at once."""
    if rate <= 0:
        return start
    interval = participants / rate
    return start + (sent + index / participants) * interval


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence; NaN when empty."""
    if not sorted_values:
        return NAN
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope dy/dx of the points; NaN with fewer than two distinct x."""
    if len(points) < 2:
        return NAN
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return NAN
    return sum((x - mx) * (y - my) for x, y in points) / sxx


# ---------------------------------------------------------------------------
# /proc readers.

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds used so far by process `pid` (all its threads); NaN if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return NAN
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def status_kib(pid: int, key: str) -> float:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM) in KiB; NaN if unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return NAN


# ---------------------------------------------------------------------------
# Processes.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listens(pid: int, port: int) -> bool:
    """True when process `pid` itself has a TCP socket listening on `port` (any address), as
    /proc shows it; someone else listening on that port does not count."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    inodes = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return any(_listening_inode(table, port) & inodes for table in ("tcp", "tcp6"))


def _listening_inode(table: str, port: int) -> set[str]:
    """Inodes of the sockets in /proc/net/TABLE that listen on `port`."""
    try:
        with open(f"/proc/net/{table}", encoding="ascii") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return set()
    listen, hex_port = "0A", f"{port:04X}"
    return {r[9] for r in rows if r[3] == listen and r[1].rsplit(":", 1)[1] == hex_port}


@dataclass
class Child:
    """A child process in its own process group; `kill()` ends the whole group."""

    name: str
    popen: subprocess.Popen
    output: Path

    def terminate(self, grace: float) -> None:
        """SIGTERM the process and give it `grace` seconds to exit by itself."""
        if self.popen.poll() is None:
            self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                stream.close()

    def failure(self) -> Optional[str]:
        """None while running; otherwise a one-line account of its exit."""
        code = self.popen.poll()
        if code is None:
            return None
        last = _last_line(self.output)
        return f"{self.name} exited with code {code}" + (f": {last}" if last else "")


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def spawn(name: str, module: str, config: Path, piped: bool, profile: Optional[Path]) -> Child:
    """Start `python -m MODULE CONFIG` in its own process group, in the config's directory;
    with `profile`, under cProfile writing that file when the process exits."""
    output = config.parent / f"{name}.err"
    wrapper = ["-m", "cProfile", "-o", str(profile)] if profile else []
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with open(output, "wb") as err:
        popen = subprocess.Popen(
            [sys.executable, *wrapper, "-m", module, str(config)],
            cwd=config.parent,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else err,
            stderr=err,
        )
    return Child(name, popen, output)


@dataclass
class Member:
    """One participant process as the driver sees it: its pipes, log and command in flight."""

    index: int
    child: Child
    log_path: Path
    scanner: LogScanner = field(default_factory=LogScanner)
    log_fd: Optional[int] = None
    stdout_buf: bytes = b""
    inflight: Optional[int] = None  # token seq of the msend awaiting its reply
    inflight_since: float = 0.0
    sent: int = 0
    stuck: bool = False

    def write(self, line: str) -> None:
        """Write one command line to the participant's stdin."""
        assert self.child.popen.stdin is not None
        try:
            os.write(self.child.popen.stdin.fileno(), line.encode("ascii") + b"\n")
        except OSError as exc:
            raise BenchError(
                self.child.failure() or f"{self.child.name}: cannot write to stdin: {exc}"
            ) from None

    def read_replies(self) -> list[str]:
        """Read what stdout has now; return the complete lines (blocks only if nothing is there)."""
        assert self.child.popen.stdout is not None
        data = os.read(self.child.popen.stdout.fileno(), 65536)
        if not data:
            raise BenchError(self.child.failure() or f"{self.child.name} closed its stdout")
        data = self.stdout_buf + data
        cut = data.rfind(b"\n") + 1
        self.stdout_buf = data[cut:]
        return [line.strip() for line in data[:cut].decode("utf-8", "replace").splitlines()]

    def tail(self) -> bytes:
        """New bytes of the log file since the last call (empty if none or not yet created)."""
        if self.log_fd is None:
            try:
                self.log_fd = os.open(self.log_path, os.O_RDONLY)
            except FileNotFoundError:
                return b""
        chunks: list[bytes] = []
        while True:
            chunk = os.read(self.log_fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def is_reply(line: str) -> bool:
    """A participant's reply to a command (other stdout lines are ignored)."""
    return line.startswith("ok") or line.startswith("error")


# ---------------------------------------------------------------------------
# The run.


@dataclass(frozen=True)
class Options:
    participants: int
    duration: float
    rate: float
    td: float
    warmup: float
    drain: float
    json: bool
    keep: Optional[Path]
    profile: bool = False


@dataclass(frozen=True)
class Figures:
    """Everything the bench measured; `--json` prints this as an object."""

    participants: int
    duration: float
    warmup: float
    target_rate: float
    td: float
    acked_per_s: float
    acked_slowest_second: int
    acked_total: int
    acked_in_window: int
    errors: int
    first_error: str
    unanswered: int
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_max: float
    latency_samples: int
    missing: int
    duplicates: int
    phantoms: int
    noise_lines: int
    drain_s: float
    coordinator_rss_kib: list[tuple[float, float]]
    coordinator_rss_start_kib: float
    coordinator_rss_middle_kib: float
    coordinator_rss_end_kib: float
    coordinator_rss_slope_kib_per_min: float
    coordinator_rss_slope_window: tuple[float, float]
    coordinator_peak_rss_kib: float
    cpu_wall_s: float
    cpu_coordinator_s: float
    cpu_participants_s: float
    cpu_participant_max_s: float
    cpu_bench_s: float
    run_dir: str

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and self.phantoms == 0


class Bench:
    """Starts the processes, drives the load, tails the logs and samples the coordinator."""

    def __init__(self, opts: Options, run_dir: Path) -> None:
        self.opts = opts
        self.run_dir = run_dir
        self.children: list[Child] = []
        self.members: list[Member] = []
        self.ledger = Ledger(opts.participants)
        self.selector = selectors.DefaultSelector()
        self.rss: list[tuple[float, float]] = []
        self.coordinator: Optional[Child] = None
        self.unanswered = 0

    # -- setup -------------------------------------------------------------

    def start(self) -> None:
        """Start the coordinator and the participants and register every participant; a port
        that was taken between choosing and binding it is replaced (up to 3 tries)."""
        port = self._start_coordinator()
        for i in range(self.opts.participants):
            self.members.append(self._start_member(i, port))
        for m in self.members:
            m.write(f"register {free_port()}")
        for m in self.members:
            self._register(m)

    def _start_coordinator(self) -> int:
        cdir = self.run_dir / "coordinator"
        cdir.mkdir()
        profile = self.profile_path if self.opts.profile else None
        for _ in range(PORT_TRIES):
            port = free_port()
            (cdir / "coordinator.conf").write_text(f"{port}\n{self.opts.td}\n")
            self.coordinator = self._spawn(
                "coordinator", "reference.coordinator", cdir, False, profile
            )
            deadline = time.monotonic() + STARTUP_TIMEOUT
            pid = self.coordinator.popen.pid
            while self.coordinator.popen.poll() is None and not listens(pid, port):
                if time.monotonic() > deadline:
                    raise BenchError(f"coordinator did not listen on port {port} within 10 s")
                time.sleep(0.02)
            failure = self.coordinator.failure()
            if failure is None:
                return port
            if "cannot listen" not in failure:
                break
            self.children.remove(self.coordinator)
        raise BenchError(failure)

    def _register(self, m: Member) -> None:
        for attempt in range(PORT_TRIES):
            if attempt:
                m.write(f"register {free_port()}")
            reply = self._await_reply(m, time.monotonic() + STARTUP_TIMEOUT)
            if reply.startswith("ok"):
                return
            if "in use" not in reply:
                break
        raise BenchError(f"{m.child.name}: register failed: {reply}")

    @property
    def profile_path(self) -> Path:
        return self.run_dir / "coordinator" / "coordinator.prof"

    def _spawn(
        self, name: str, module: str, workdir: Path, piped: bool, profile: Optional[Path] = None
    ) -> Child:
        child = spawn(name, module, workdir / f"{name}.conf", piped, profile)
        self.children.append(child)
        return child

    def _start_member(self, i: int, port: int) -> Member:
        name = f"p{i + 1}"
        pdir = self.run_dir / name
        pdir.mkdir()
        log = pdir / f"{name}.log"
        (pdir / f"{name}.conf").write_text(f"{i + 1}\n{log}\n127.0.0.1 {port}\n")
        member = Member(i, self._spawn(name, "reference.participant", pdir, True), log)
        assert member.child.popen.stdout is not None
        self.selector.register(member.child.popen.stdout, selectors.EVENT_READ, member)
        return member

    def _await_reply(self, m: Member, deadline: float) -> str:
        assert m.child.popen.stdout is not None
        fd = m.child.popen.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{m.child.name}: no reply within {STARTUP_TIMEOUT:g} s")
            ready = selectors.DefaultSelector()
            ready.register(fd, selectors.EVENT_READ)
            got = ready.select(remaining)
            ready.close()
            if got:
                replies = [r for r in m.read_replies() if is_reply(r)]
                if replies:
                    return replies[0]

    def _check_alive(self) -> None:
        for child in self.children:
            failure = child.failure()
            if failure:
                raise BenchError(failure)

    # -- load --------------------------------------------------------------

    def drive(self) -> tuple[float, float, dict[str, float]]:
        """Send msends until warm-up + duration has passed and every command got its reply or
        timed out; return the drive's start and end and the CPU seconds used meanwhile."""
        cpu0 = self._cpu()
        start = time.monotonic()
        stop = start + self.opts.warmup + self.opts.duration
        next_tail = next_sample = start
        next_progress = start + PROGRESS_INTERVAL
        dues = [self._due(start, m) for m in self.members]
        while True:
            now = time.monotonic()
            sending = now < stop
            if not sending and not any(self._waiting(m) for m in self.members):
                break
            idle = [m for m in self.members if not self._waiting(m) and not m.stuck]
            for m in idle if sending else []:
                if now >= dues[m.index]:
                    self._send(m, now)
                    dues[m.index] = self._due(start, m)
            wake = min([next_tail, next_sample] + [dues[m.index] for m in idle if sending])
            for key, _ in self.selector.select(max(0.0, min(wake - now, TAIL_INTERVAL))):
                self._on_output(key.data)
            now = time.monotonic()
            if now >= next_tail:
                self._tail(now)
                next_tail = now + TAIL_INTERVAL
            if now >= next_sample:
                self._sample(now, start)
                self._check_timeouts(now)
                next_sample += SAMPLE_INTERVAL
            if now >= next_progress:
                self._progress(now, start)
                next_progress += PROGRESS_INTERVAL
        end = time.monotonic()
        cpu1 = self._cpu()
        return start, end, {k: cpu1[k] - cpu0[k] for k in cpu0}

    def _due(self, start: float, m: Member) -> float:
        return next_due(start, m.index, len(self.members), self.opts.rate, m.sent)

    @staticmethod
    def _waiting(m: Member) -> bool:
        """A command is in flight and the participant is not given up on."""
        return m.inflight is not None and not m.stuck

    def _send(self, m: Member, now: float) -> None:
        seq = self.ledger.issue()
        m.inflight, m.inflight_since = seq, now
        m.sent += 1
        m.write(f"msend {token(seq)}")

    def _on_output(self, m: Member) -> None:
        replies = [r for r in m.read_replies() if is_reply(r)]
        now = time.monotonic()
        for reply in replies:
            if m.inflight is None:
                continue
            if reply.startswith("ok"):
                self.ledger.ack(m.inflight, now)
            else:
                self.ledger.error(m.inflight, reply)
            m.inflight = None

    def _check_timeouts(self, now: float) -> None:
        self._check_alive()
        for m in self.members:
            if m.inflight is not None and not m.stuck and now - m.inflight_since > REPLY_TIMEOUT:
                m.stuck = True
                self.unanswered += 1
                print(
                    f"bench: {m.child.name}: no reply to msend {token(m.inflight)} "
                    f"within {REPLY_TIMEOUT:g} s; no more commands to it",
                    file=sys.stderr,
                )

    def _tail(self, now: float) -> int:
        found = 0
        for m in self.members:
            data = m.tail()
            if data:
                for seq in m.scanner.feed(data):
                    self.ledger.seen(m.index, seq, now)
                    found += 1
        return found

    def _sample(self, now: float, start: float) -> None:
        assert self.coordinator is not None
        rss = status_kib(self.coordinator.popen.pid, "VmRSS")
        if not math.isnan(rss):
            self.rss.append((round(now - start, 3), rss))

    def _cpu(self) -> dict[str, float]:
        assert self.coordinator is not None
        parts = [cpu_seconds(m.child.popen.pid) for m in self.members]
        return {
            "coordinator": cpu_seconds(self.coordinator.popen.pid),
            "participants": sum(parts),
            "participant_max": max(parts, default=0.0),
            "bench": time.process_time(),
        }

    def _progress(self, now: float, start: float) -> None:
        rss = self.rss[-1][1] / 1024 if self.rss else NAN
        lo = start + self.opts.warmup
        rate = self.ledger.acked_in((lo, now)) / (now - lo) if now > lo else NAN
        print(
            f"bench: t={now - start:.0f}s issued={self.ledger.issued} rate={rate:.0f}/s "
            f"errors={len(self.ledger.errors)} coordinator rss={rss:.1f} MiB",
            file=sys.stderr,
        )

    # -- drain and figures --------------------------------------------------

    def drain(self) -> float:
        """Tail the logs until every acked token is in every log (or `--drain` s passed), then a
        short grace for duplicates; return how long it took."""
        start = time.monotonic()
        deadline = start + self.opts.drain
        wanted = [s for s in self.ledger.acked()]
        while True:
            now = time.monotonic()
            self._tail(now)
            wanted = [s for s in wanted if any(math.isnan(v[s]) for v in self.ledger.seen_at)]
            if not wanted or now > deadline:
                break
            time.sleep(TAIL_INTERVAL)
        took = time.monotonic() - start
        grace = time.monotonic() + DUPLICATE_GRACE
        while time.monotonic() < grace:
            self._tail(time.monotonic())
            time.sleep(0.02)
        return took

    def figures(self, start: float, end: float, cpu: dict[str, float], drain_s: float) -> Figures:
        opts = self.opts
        assert self.coordinator is not None
        window = (start + opts.warmup, start + opts.warmup + opts.duration)
        lat = sorted(self.ledger.latencies(window))
        rss = self.rss
        steady_from = opts.warmup + opts.td
        steady = [p for p in rss if p[0] >= steady_from]
        if len(steady) < 3:
            steady = [p for p in rss if p[0] >= opts.warmup] or rss
        errors = self.ledger.errors
        return Figures(
            participants=opts.participants,
            duration=opts.duration,
            warmup=opts.warmup,
            target_rate=opts.rate,
            td=opts.td,
            acked_per_s=self.ledger.acked_in(window) / opts.duration,
            acked_slowest_second=self.ledger.slowest_second(window),
            acked_total=sum(1 for _ in self.ledger.acked()),
            acked_in_window=self.ledger.acked_in(window),
            errors=len(errors),
            first_error=f"{token(errors[0][0])}: {errors[0][1]}" if errors else "",
            unanswered=self.unanswered,
            latency_ms_p50=percentile(lat, 50) * 1000,
            latency_ms_p99=percentile(lat, 99) * 1000,
            latency_ms_max=(lat[-1] if lat else NAN) * 1000,
            latency_samples=len(lat),
            missing=self.ledger.missing(),
            duplicates=sum(self.ledger.duplicates),
            phantoms=sum(self.ledger.phantoms),
            noise_lines=sum(m.scanner.noise_lines for m in self.members),
            drain_s=drain_s,
            coordinator_rss_kib=rss,
            coordinator_rss_start_kib=rss[0][1] if rss else NAN,
            coordinator_rss_middle_kib=rss[len(rss) // 2][1] if rss else NAN,
            coordinator_rss_end_kib=rss[-1][1] if rss else NAN,
            coordinator_rss_slope_kib_per_min=slope(steady) * 60,
            coordinator_rss_slope_window=(steady[0][0], steady[-1][0]) if steady else (NAN, NAN),
            coordinator_peak_rss_kib=status_kib(self.coordinator.popen.pid, "VmHWM"),
            cpu_wall_s=end - start,
            cpu_coordinator_s=cpu["coordinator"],
            cpu_participants_s=cpu["participants"],
            cpu_participant_max_s=cpu["participant_max"],
            cpu_bench_s=cpu["bench"],
            run_dir=str(self.run_dir),
        )

    def close(self) -> None:
        self.selector.close()
        for m in self.members:
            if m.log_fd is not None:
                os.close(m.log_fd)
        if self.opts.profile and self.coordinator is not None:
            self.coordinator.terminate(grace=10.0)
            print_profile(self.profile_path)
        for child in self.children:
            child.kill()


# ---------------------------------------------------------------------------
# Output and command line.


def print_profile(path: Path, top: int = 25) -> None:
    """Print the `top` functions of a cProfile file by own time to stderr."""
    if not path.exists():
        print(f"bench: no coordinator profile written at {path}", file=sys.stderr)
        return
    print(f"bench: coordinator profile ({path}), top {top} by own time:", file=sys.stderr)
    pstats.Stats(str(path), stream=sys.stderr).sort_stats("tottime").print_stats(top)


def _slope_text(f: Figures) -> str:
    if math.isnan(f.coordinator_rss_slope_kib_per_min):
        return "slope n/a (fewer than 2 samples)"
    lo, hi = f.coordinator_rss_slope_window
    return f"slope {f.coordinator_rss_slope_kib_per_min:+.1f} KiB/min over t={lo:g}..{hi:g} s"


def render(f: Figures) -> str:
    """The human-readable report."""
    mib = 1024.0
    wall = f.cpu_wall_s
    lines = [
        f"pams reference bench: {f.participants} participants, {f.duration:g} s measured after "
        f"{f.warmup:g} s warm-up, target rate "
        + (f"{f.target_rate:g}/s" if f.target_rate > 0 else "as fast as acks come")
        + f", td {f.td:g} s",
        f"throughput     {f.acked_per_s:.1f} acked msends/s, slowest second "
        f"{f.acked_slowest_second}  ({f.acked_in_window} in window, "
        f"{f.acked_total} total, {f.errors} errors, {f.unanswered} unanswered)",
        f"latency        ack -> log line: p50 {f.latency_ms_p50:.2f} ms, "
        f"p99 {f.latency_ms_p99:.2f} ms, max {f.latency_ms_max:.2f} ms "
        f"({f.latency_samples} deliveries)",
        f"delivery       missing {f.missing}, duplicates {f.duplicates}, "
        f"unknown tokens {f.phantoms}  (drain {f.drain_s:.2f} s)",
        f"coordinator    RSS start {f.coordinator_rss_start_kib / mib:.1f} MiB, "
        f"middle {f.coordinator_rss_middle_kib / mib:.1f} MiB, "
        f"end {f.coordinator_rss_end_kib / mib:.1f} MiB, "
        f"peak {f.coordinator_peak_rss_kib / mib:.1f} MiB; " + _slope_text(f),
        f"cpu            over {wall:.1f} s wall: coordinator {f.cpu_coordinator_s:.2f} s "
        f"({100 * f.cpu_coordinator_s / wall:.0f}%), participants {f.cpu_participants_s:.2f} s "
        f"({100 * f.cpu_participants_s / wall:.0f}%, busiest "
        f"{100 * f.cpu_participant_max_s / wall:.0f}%), bench {f.cpu_bench_s:.2f} s "
        f"({100 * f.cpu_bench_s / wall:.0f}%)",
    ]
    if f.first_error:
        lines.append(f"first error    {f.first_error}")
    if f.noise_lines:
        lines.append(f"note           {f.noise_lines} log lines without a token")
    lines.append(f"run dir        {f.run_dir}" if f.run_dir else "")
    lines.append("result         " + ("OK" if f.ok else "FAIL: messages missing or duplicated"))
    return "\n".join(line for line in lines if line)


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = parse_number(text, range(1, 2**63))
    if value is None:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {quote(text)}")
    return value


def parse_args(argv: Optional[Sequence[str]]) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m reference.bench",
        description="Benchmark the reference coordinator and participants on 127.0.0.1.",
    )
    p.add_argument("--participants", type=_count, default=10, metavar="N")
    p.add_argument(
        "--duration",
        type=_positive,
        default=20.0,
        metavar="S",
        help="measured seconds, after the warm-up (default 20)",
    )
    p.add_argument(
        "--rate",
        type=_non_negative,
        default=0.0,
        metavar="R",
        help="target total msends/s; 0 (default) = as fast as replies come",
    )
    p.add_argument("--td", type=_non_negative, default=5.0, metavar="S")
    p.add_argument("--warmup", type=_non_negative, default=2.0, metavar="S")
    p.add_argument(
        "--drain",
        type=_positive,
        default=10.0,
        metavar="S",
        help="longest wait for acked messages to reach every log (default 10)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="run in DIR (new or empty) and keep configs and logs there",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the coordinator under cProfile; print its top functions to stderr at the end",
    )
    a = p.parse_args(argv)
    return Options(
        a.participants, a.duration, a.rate, a.td, a.warmup, a.drain, a.json, a.keep, a.profile
    )


def make_run_dir(keep: Optional[Path]) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="pams-bench-"))
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise BenchError(f"{keep}: --keep needs a new or empty directory")
    keep.mkdir(parents=True, exist_ok=True)
    return keep.resolve()


def _json_safe(value: object) -> object:
    """NaN (a figure that could not be measured) becomes null, so the output is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(opts: Options) -> Figures:
    """One complete bench run; every started process is killed before this returns."""
    run_dir = make_run_dir(opts.keep)
    bench = Bench(opts, run_dir)
    try:
        bench.start()
        start, end, cpu = bench.drive()
        drain_s = bench.drain()
        figures = bench.figures(start, end, cpu, drain_s)
    finally:
        bench.close()
        if opts.keep is None:
            shutil.rmtree(run_dir, ignore_errors=True)
    return figures if opts.keep else replace(figures, run_dir="")


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        figures = run(opts)
    except (BenchError, OSError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; all processes killed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if opts.json:
        print(json.dumps(_json_safe({**asdict(figures), "ok": figures.ok})))
    else:
        print(render(figures))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())

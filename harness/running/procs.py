"""Process supervision for one run: start programs in their own process groups, record their
output, see a port listening without connecting to it, inject kill/pause faults, and tear down
every process the run started, however it behaves (hangs, ignores SIGTERM, forks, floods).

Threads per child: one reader per output stream, one stdin writer, one exit watcher; plus one
monitor per supervisor that remembers every descendant ever seen. No lock is held across a
blocking wait, so `close()` is safe after a KeyboardInterrupt anywhere in the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import queue
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import psutil

from checkers import traceformat as tf
from checkers.traceformat import Emit  # noqa: E402

LineCallback = Callable[[str, str], None]
ExitCallback = Callable[[str, int], None]

RUN_ID_VAR = "PAMS_RUN_ID"  # marks every process of a run (inherited by its descendants)
MARKER_VAR = "PAMS_SUPERVISOR"  # unique per Supervisor: what teardown matches on
FILE_CAP = 16 * 1024 * 1024  # bytes of each stream kept as a plain file per process
MAX_LINE = 2000  # bytes per recorded line; longer runs without a newline are cut into pieces
READ_CHUNK = 65536
POLL = 0.01  # seconds between checks of a waited-for condition
IO_TICK = 0.1  # seconds an I/O thread waits in poll() before re-checking its stop flag
MONITOR_INTERVAL = 0.2  # seconds between descendant scans
PAUSE_TIMEOUT = 2.0  # seconds pause() waits for every thread to be stopped
KILL_WAIT = 5.0  # seconds kill() waits for the leader to be reaped
EXIT_DRAIN = 0.5  # seconds an exit waits for the program's last output lines
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
NETLINK_SOCK_DIAG = 4  # netlink protocol, message type and flags of a sock_diag dump
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST_DUMP = 0x301
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
STOPPED_STATES = frozenset("TtZX")  # stopped, traced, or already dead
GONE_STATUSES = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD})


class StartError(Exception):
    """A program could not be started or did not come up; the message is one line."""


class LineSplitter:
    """Splits a byte stream at b"\\n"; a run longer than `max_len` bytes without a newline is cut
    into `max_len`-byte pieces, so the buffer never holds more than `max_len` bytes between feeds.
    """

    def __init__(self, max_len: int = MAX_LINE, prompt: Optional[re.Pattern[str]] = None) -> None:
        self._max = max_len
        self._buf = b""
        self._prompt = prompt

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return the complete lines (without b"\\n") it finished, in order."""
        buf, start, lines = self._buf + data, 0, []
        while True:
            end = buf.find(b"\n", start, start + self._max + 1)
            if end >= 0:
                lines.append(buf[start:end])
                start = end + 1
            elif len(buf) - start > self._max:
                lines.append(buf[start : start + self._max])
                start += self._max
            else:
                break
        self._buf = buf[start:]
        if self._buf and self._prompt is not None:
            text = ANSI_RE.sub("", self._buf.decode("utf-8", errors="replace"))
            if self._prompt.search(text):  # a prompt without newline ends the line
                lines.append(self._buf)
                self._buf = b""
        return lines

    def flush(self) -> list[bytes]:
        """At end of stream: the unterminated rest, if any, as a last line."""
        rest, self._buf = self._buf, b""
        return [rest] if rest else []


def decode_line(raw: bytes) -> tuple[str, str]:
    """(recorded, clean): the decoded line without its CR line ending, and the same with every
    ANSI escape sequence and CR removed (what patterns are matched against)."""
    text = raw.decode("utf-8", errors="replace")
    recorded = text[:-1] if text.endswith("\r") else text
    return recorded, ANSI_RE.sub("", text).replace("\r", "")


def parse_listeners(table: str) -> list[tuple[int, int]]:
    """(port, socket inode) of every LISTEN row (state 0A) of a /proc/net/tcp{,6} table."""
    found = []
    for row in table.splitlines()[1:]:
        fields = row.split()
        if len(fields) > 9 and fields[3] == "0A":
            found.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[9])))
    return found


def proc_listeners() -> list[tuple[int, int]]:
    """(port, inode) of every TCP listener, read from /proc/net/tcp and /proc/net/tcp6 (the
    kernel formats every socket of the machine: ~10 ms with a thousand connections)."""
    found: list[tuple[int, int]] = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as table:
            found += parse_listeners(table.read())
    return found


def netlink_listeners() -> list[tuple[int, int]]:
    """(port, inode) of every TCP listener, IPv4 and IPv6, asked of the kernel's sock_diag
    netlink interface (what `ss -ltn` uses: only listeners are dumped, ~0.1 ms). OSError if
    netlink is unavailable."""
    found: list[tuple[int, int]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        found += _sock_diag_dump(family)
    return found


def _sock_diag_dump(family: int) -> list[tuple[int, int]]:
    # inet_diag_req_v2 {u8 family, protocol, ext, pad; u32 states; inet_diag_sockid (48 bytes)}
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    request += bytes(48)
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 1, 0)
    found: list[tuple[int, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(1.0)
        sock.sendall(header + request)
        while True:
            data, offset = sock.recv(65536), 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR or length < 16:
                    raise OSError("sock_diag netlink dump failed")
                # inet_diag_msg: 4 bytes, then sockid (sport big-endian first), ..., inode at 68
                (port,) = struct.unpack_from(">H", data, offset + 16 + 4)
                (inode,) = struct.unpack_from("=I", data, offset + 16 + 68)
                found.append((port, inode))
                offset += (length + 3) & ~3
            if not data:
                raise OSError("sock_diag netlink dump ended early")


def listening_inodes(port: int) -> set[int]:
    """Inodes of the sockets listening on TCP `port` (IPv4 or IPv6, any address) right now:
    from netlink sock_diag, or from /proc/net/tcp{,6} where netlink is not available."""
    try:
        listeners = netlink_listeners()
    except OSError:
        listeners = proc_listeners()
    return {inode for p, inode in listeners if p == port}


def listening_ports() -> set[int]:
    """Every TCP port something listens on right now (IPv4 or IPv6, any address)."""
    try:
        listeners = netlink_listeners()
    except OSError:
        listeners = proc_listeners()
    return {p for p, _ in listeners}


def socket_inodes(pids: Iterable[int]) -> set[int]:
    """Inodes of the sockets held open by `pids` (those we may read; others are skipped)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(int(link[8:-1]))
    return inodes


def thread_states(pid: int) -> list[str]:
    """The state letter of every thread of `pid` (empty if it is gone)."""
    states = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat") as stat:
                states.append(stat.read().rsplit(")", 1)[1].split()[0])
    return states


@dataclass(frozen=True)
class ProcStat:
    """What the supervisor reads of /proc/PID/stat; (pid, start) identifies a process even
    after its pid is recycled."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start: int  # clock ticks after boot


def parse_stat(pid: int, text: bytes) -> ProcStat:
    """A ProcStat from the content of /proc/PID/stat (the name may hold spaces and parens)."""
    fields = text.rsplit(b")", 1)[1].split()
    return ProcStat(pid, fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))


def read_stat(pid: int) -> Optional[ProcStat]:
    """The ProcStat of `pid`, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return parse_stat(pid, stat.read())
    except (OSError, IndexError, ValueError):
        return None


def all_stats() -> dict[int, ProcStat]:
    """The ProcStat of every process, in one pass over /proc (a third of psutil's cost)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def same_process(pid: int, start: int) -> bool:
    """True while `pid` is still the process that started at `start` and has not exited."""
    stat = read_stat(pid)
    return stat is not None and stat.start == start and stat.state not in "ZX"


def group_members(pgid: int) -> list[int]:
    """Pids of the processes whose process group is `pgid`."""
    return [stat.pid for stat in all_stats().values() if stat.pgid == pgid]


def exit_phrase(returncode: int) -> str:
    """'exited with code 3' or 'was killed by SIGKILL', for messages."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def is_gone(proc: psutil.Process) -> bool:
    """True when `proc` has exited (a zombie counts as gone) or is another process now."""
    try:
        return not proc.is_running() or proc.status() in GONE_STATUSES
    except psutil.Error:
        return True


def kill_quietly(proc: psutil.Process) -> None:
    """SIGKILL `proc` if it is still the process we saw (psutil checks the create time)."""
    with contextlib.suppress(psutil.Error):
        proc.kill()


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid`; a group that no longer exists is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def deadline_left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class OutputFile:
    """A process's stdout or stderr as a plain file beside its config (appended to across
    restarts), at most FILE_CAP bytes; a line says where it was cut."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._file: Optional[Any] = None
        with contextlib.suppress(OSError):
            self._file = open(path, "ab")  # noqa: SIM115 - closed by close()

    def write(self, line: bytes) -> None:
        if self._file is None:
            return
        try:
            if self.size + len(line) + 1 > FILE_CAP:
                self._file.write(b"[pams: output cut here, at %d bytes]\n" % self.size)
                self.close()
                return
            self._file.write(line + b"\n")
            self._file.flush()
            self.size += len(line) + 1
        except OSError:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


class Child:
    """One started program, leader of its own process group (pgid == pid), with its I/O threads.

    Output lines are recorded as `output` events (the first `output_cap` per stream, then one
    truncation note; reading goes on so the program never blocks on a full pipe). A prompt
    written without a newline (e.g. "> ") becomes a prefix of the next line. Lines for stdin go
    through a queue to a writer thread, so `write_line` never blocks; if the program closed its
    stdin, one `output` note on stream "harness" says so and later lines are dropped.
    """

    def __init__(
        self,
        target: str,
        popen: subprocess.Popen,
        fds: tuple[Optional[int], int, int],
        emit: Emit,
        output_cap: int,
        on_line: Optional[LineCallback],
        on_exit: Optional[ExitCallback],
        prompt: Optional[re.Pattern[str]] = None,
        output_dir: Optional[Path] = None,
        wrapped: bool = False,
    ) -> None:
        self.target = target
        self._wrapped = wrapped
        self._prompt = prompt
        self._output_dir = output_dir
        self.pid = popen.pid
        self._popen = popen
        self._emit = emit
        self._cap = output_cap
        self._on_line = on_line
        self._on_exit = on_exit
        self._lock = threading.Lock()  # guards the killed/returncode decision only
        self._killed = False
        self._returncode: Optional[int] = None
        self._exited = threading.Event()
        self._io_stop = threading.Event()
        self._stdin_stop = threading.Event()
        self._stdin: queue.Queue[Optional[bytes]] = queue.Queue()
        self._last: dict[str, str] = {}
        self.seen: dict[int, int] = {}  # descendant pid -> start ticks (filled by the monitor)
        stdin_fd, stdout_fd, stderr_fd = fds
        self._failed_callbacks: set[str] = set()
        self._readers = [
            self._thread("stdout", self._read, "stdout", stdout_fd),
            self._thread("stderr", self._read, "stderr", stderr_fd),
        ]
        self._threads = [*self._readers, self._thread("exit", self._watch)]
        self._writer = None if stdin_fd is None else self._thread("stdin", self._write, stdin_fd)

    def _thread(self, name: str, func: Callable[..., None], *args: object) -> threading.Thread:
        return threading.Thread(
            target=func, args=args, name=f"pams-{self.target}-{name}", daemon=True
        )

    def start_io(self) -> None:
        """Start the reader, writer and exit-watcher threads (once, right after `start`)."""
        for thread in [*self._threads, *([self._writer] if self._writer else [])]:
            thread.start()

    @property
    def returncode(self) -> Optional[int]:
        """The exit status once the program was reaped (negative: killed by that signal)."""
        return self._returncode

    def alive(self) -> bool:
        """True until the leader process has exited and been reaped."""
        return not self._exited.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the leader to exit; True if it has."""
        return self._exited.wait(timeout)

    def last_output(self) -> str:
        """The last non-blank output line (stderr preferred), without ANSI codes, or ''."""
        return self._last.get("stderr") or self._last.get("stdout") or ""

    def write_line(self, text: str) -> None:
        """Queue `text` + newline for the program's stdin; returns at once."""
        if self._writer is None:
            raise RuntimeError(f"{self.target}: started without stdin")
        self._stdin.put((text + "\n").encode("utf-8"))

    def close_stdin(self) -> None:
        """Close the program's stdin (EOF) once the lines queued so far are written."""
        if self._writer is not None:
            self._stdin.put(None)

    def kill(self) -> None:
        """SIGKILL the process group and this child's known descendants; wait (bounded) for
        the leader; record `process` "kill" unless it had already exited or been killed."""
        with self._lock:
            report = not self._killed and not self._exited.is_set()
            self._killed = True
        self._stdin_stop.set()
        self._kill_tree()
        self._exited.wait(KILL_WAIT)
        if report:
            self._record_process("kill", returncode=self._returncode)

    def signal_group(self, sig: int) -> bool:
        """Send `sig` to the process group while it is still ours: once the leader is reaped,
        only while a known descendant is still in it (never a recycled group id). True if sent."""
        owned = self.alive() or self._group_has_known_member()
        if owned:
            signal_group(self.pid, sig)
        return owned

    def pause(self) -> bool:
        """SIGSTOP the process group, then wait (at most 2 s) until every thread of every
        process in it is stopped; records `process` "pause"; True if all were seen stopped."""
        owned = self.signal_group(signal.SIGSTOP)
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while not (stopped := not owned or self._group_stopped()) and time.monotonic() < deadline:
            time.sleep(POLL)
        self._record_process("pause", stopped=stopped)
        return stopped

    def resume(self) -> None:
        """SIGCONT the process group; records `process` "resume"."""
        self.signal_group(signal.SIGCONT)
        self._record_process("resume")

    def descendants(self) -> list[psutil.Process]:
        """Every live descendant: current children (recursively) and any escaped one seen."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.pid).children(recursive=True):
                found[proc.pid] = proc
        for pid, start in list(self.seen.items()):
            if pid not in found and same_process(pid, start):
                with contextlib.suppress(psutil.Error):
                    found[pid] = psutil.Process(pid)
        return [proc for proc in found.values() if not is_gone(proc)]

    def _group_has_known_member(self) -> bool:
        for pid, start in list(self.seen.items()):
            stat = read_stat(pid)
            if stat is not None and stat.start == start and stat.pgid == self.pid:
                return True
        return False

    def _group_stopped(self) -> bool:
        return all(
            state in STOPPED_STATES
            for pid in group_members(self.pid)
            for state in thread_states(pid)
        )

    def _kill_tree(self) -> None:
        self.signal_group(signal.SIGKILL)
        for pid, start in list(self.seen.items()):
            kill_if_same(pid, start)

    def _record_process(self, event: str, **extra: object) -> None:
        self._emit(tf.process(self.target, event, pid=self.pid, **extra))

    def _note(self, text: str) -> None:
        with contextlib.suppress(Exception):
            self._emit({"type": "output", "target": self.target, "stream": "harness", "line": text})

    def _read(self, stream: str, fd: int) -> None:
        prompt = self._prompt if stream == "stdout" else None
        splitter, count, poller = LineSplitter(prompt=prompt), 0, select.poll()
        poller.register(fd, select.POLLIN)
        copy = OutputFile(self._output_dir / f"{stream}.txt") if self._output_dir else None
        try:
            while not self._io_stop.is_set():
                data = _read_some(poller, fd)
                if data is None:
                    continue
                lines = splitter.feed(data) if data else splitter.flush()
                for raw in lines:
                    count += 1
                    self._deliver(stream, raw, count)
                    if copy is not None:
                        copy.write(raw)
                if not data:
                    return
        finally:
            os.close(fd)
            if copy is not None:
                copy.close()

    def _deliver(self, stream: str, raw: bytes, count: int) -> None:
        recorded, clean = decode_line(raw)
        if clean.strip():
            self._last[stream] = clean.strip()
        try:
            if count <= self._cap:
                self._emit(
                    {"type": "output", "target": self.target, "stream": stream, "line": recorded}
                )
            elif count == self._cap + 1:
                note = f"[pams: output truncated after {self._cap} lines]"
                self._emit(
                    {"type": "output", "target": self.target, "stream": stream, "line": note}
                )
            if self._on_line is not None:
                self._on_line(stream, clean)
        except Exception as exc:  # a broken callback must not stop the draining
            if stream not in self._failed_callbacks:
                self._failed_callbacks.add(stream)
                self._note(f"[pams: error handling {stream} lines (noted once): {exc!r}]")

    def _write(self, fd: int) -> None:
        broken = False
        try:
            while not self._stdin_stop.is_set():
                try:
                    data = self._stdin.get(timeout=IO_TICK)
                except queue.Empty:
                    continue
                if data is None:
                    return
                if not broken and not self._write_all(fd, data):
                    broken = True
                    self._note("[pams: the program closed its stdin; later input is dropped]")
        finally:
            os.close(fd)

    def _write_all(self, fd: int, data: bytes) -> bool:
        """Write `data` to the non-blocking `fd` unless stopped; False if the pipe is closed."""
        view, poller = memoryview(data), select.poll()
        poller.register(fd, select.POLLOUT)
        while view and not self._stdin_stop.is_set():
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                poller.poll(IO_TICK * 1000)
            except OSError:
                return False
        return True

    def _watch(self) -> None:
        returncode = unwrap_status(self._popen.wait()) if self._wrapped else self._popen.wait()
        self.drain(EXIT_DRAIN)  # its last lines come before its exit (unless a descendant holds on)
        with self._lock:
            self._returncode = returncode
            report = not self._killed
            self._exited.set()
        if report:
            with contextlib.suppress(Exception):
                self._record_process("exit", returncode=returncode)
            if self._on_exit is not None:
                self._on_exit(self.target, returncode)

    # Teardown steps, driven by Supervisor.close().

    def begin_teardown(self) -> bool:
        """Mark the child as killed by the harness; True if it was running and not yet killed."""
        with self._lock:
            report = not self._killed and not self._exited.is_set()
            self._killed = True
        self._stdin_stop.set()
        return report

    def drain(self, timeout: float) -> None:
        """Wait up to `timeout` s for both output streams to reach their end."""
        deadline = time.monotonic() + timeout
        for thread in self._readers:
            thread.join(deadline_left(deadline))

    def finish_io(self, deadline: float) -> None:
        """Let the readers reach end of stream until `deadline`, then stop and join all threads."""
        self.drain(deadline_left(deadline))
        self._io_stop.set()
        for thread in [*self._threads, *([self._writer] if self._writer else [])]:
            thread.join(IO_TICK * 3)

    def record_teardown(self) -> None:
        with contextlib.suppress(Exception):
            self._record_process("kill", returncode=self._returncode, reason="teardown")


def _read_some(poller: select.poll, fd: int) -> Optional[bytes]:
    """Up to READ_CHUNK bytes from non-blocking `fd` (registered with `poller`; poll has no
    FD_SETSIZE limit, unlike select); b"" at end of stream; None if nothing came yet."""
    if not poller.poll(IO_TICK * 1000):
        return None
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


def unwrap_status(returncode: int) -> int:
    """The program's status from its wrapper's (bwrap, sh): death by signal N comes out as exit
    code 128 + N there, and as -N here, as if the program had been started directly."""
    signo = returncode - 128
    if 0 < signo < signal.NSIG and signo in signal.valid_signals():
        return -signo
    return returncode


def kill_if_same(pid: int, start: int) -> bool:
    """SIGKILL `pid` if it is still the process that started at `start`; True if signalled."""
    if not same_process(pid, start):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    return True


def _pipe(nonblocking_end: int) -> tuple[int, int]:
    """A pipe (read, write); our end (index `nonblocking_end`) is made non-blocking."""
    ends = os.pipe()
    os.set_blocking(ends[nonblocking_end], False)
    return ends


class Supervisor:
    """Owns every process of one run: starts them, records `process`/`output` events through
    `emit`, and on `close()` kills all of them and everything they started (escaped, re-parented
    or setsid()ed descendants included), within `grace` + 3 s.

    Escaped descendants are found by the environment marker every child inherits (PAMS_RUN_ID =
    run_id, and PAMS_SUPERVISOR = a per-supervisor nonce that teardown matches on, so two runs
    with the same id never kill each other's processes) and by a monitor thread that remembers
    every descendant ever seen as (pid, create time) every 200 ms.
    """

    def __init__(
        self,
        run_id: str,
        emit: Emit,
        output_cap: int = 2000,
        on_exit: Optional[ExitCallback] = None,
    ) -> None:
        self.run_id = run_id
        self.marker = uuid.uuid4().hex
        self._emit = emit
        self._cap = output_cap
        self._on_exit = on_exit
        self._children: list[Child] = []
        self._closing = False
        self._closed = False
        self._stop = threading.Event()
        self._monitor: Optional[threading.Thread] = None
        _OPEN.add(self)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def children(self) -> list[Child]:
        """Every child started so far, in start order (restarts included)."""
        return list(self._children)

    def start(
        self,
        target: str,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str],
        stdin: bool = True,
        on_line: Optional[LineCallback] = None,
        prompt: Optional[re.Pattern[str]] = None,
        wrapped: bool = False,
    ) -> Child:
        """Start `argv` in `cwd` as its own process group, stdout/stderr recorded line by line;
        `on_line(stream, line)` sees every line (ANSI-free); stdout text ending with a match of
        `prompt` counts as a line without its newline; `wrapped`: argv runs the program under
        a wrapper (sandbox, limits) whose exit 128 + N means death by signal N. Raises
        StartError (one line)."""
        if self._closing:
            raise StartError(f"{target}: cannot start: the run is being torn down")
        if not argv:
            raise StartError(f"{target}: cannot start: empty command")
        full_env = {**os.environ, **env, RUN_ID_VAR: self.run_id, MARKER_VAR: self.marker}
        popen, fds = _spawn(target, argv, cwd, full_env, stdin)
        child = Child(
            target, popen, fds, self._emit, self._cap, on_line, self._on_exit, prompt, cwd, wrapped
        )
        self._children.append(child)  # from here on, close() kills it whatever happens next
        try:
            self._emit(tf.process(target, "start", pid=popen.pid))
        finally:
            child.start_io()
        if self._monitor is None:
            self._monitor = threading.Thread(
                target=self._watch_tree, name="pams-monitor", daemon=True
            )
            self._monitor.start()
        return child

    def wait_listening(
        self, port: int, child: Child, timeout: float, require_owner: bool = False
    ) -> None:
        """Return once a socket is in LISTEN state on TCP `port` (read from /proc/net/tcp{,6},
        never by connecting); StartError if `child` exits first or `timeout` s pass.

        By default any listener counts (ports are freshly picked for each run); with
        `require_owner` the socket must be held by `child` or one of its descendants."""
        deadline = time.monotonic() + timeout
        while True:
            inodes = listening_inodes(port)
            if inodes and (not require_owner or inodes & self._tree_sockets(child)):
                return
            if not child.alive():
                child.drain(EXIT_DRAIN)
                raise StartError(
                    f"{child.target} {exit_phrase(child.returncode or 0)} before listening on"
                    f" port {port}{_last_output(child)}"
                )
            if time.monotonic() > deadline:
                raise StartError(
                    f"{child.target} did not listen on port {port} within {timeout:.1f} s"
                    f"{_last_output(child)}"
                )
            time.sleep(POLL)

    def close(self, grace: float = 0.5) -> None:
        """Kill everything this run started: close stdins, SIGTERM (+SIGCONT) every group, wait
        up to `grace` s, SIGKILL every group, every descendant ever seen and every process
        carrying our marker; reap; join threads. Bounded, idempotent, re-entrant."""
        if self._closed:
            return
        self._closing = True
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(1.0)
        children = list(self._children)
        reported = [child for child in children if child.begin_teardown()]
        self._scan_tree(children)
        for child in children:
            child.signal_group(signal.SIGTERM)
            child.signal_group(signal.SIGCONT)
        grace_end = time.monotonic() + grace
        for child in children:
            child.wait(deadline_left(grace_end))
        self._scan_tree(children)
        for child in children:
            child.signal_group(signal.SIGKILL)
        self._kill_escaped(children, time.monotonic() + 1.5)
        reap_end = time.monotonic() + 0.5
        for child in children:
            child.wait(deadline_left(reap_end))
        io_end = time.monotonic() + 0.5
        for child in children:
            child.finish_io(io_end)
        for child in reported:
            child.record_teardown()
        self._closed = True
        _OPEN.discard(self)

    def leftovers(self) -> list[psutil.Process]:
        """Live processes (zombies excluded) that carry this supervisor's marker."""
        return [proc for proc in self._marked() if not is_gone(proc)]

    def _watch_tree(self) -> None:
        while not self._stop.wait(MONITOR_INTERVAL):
            with contextlib.suppress(Exception):
                self._scan_tree(list(self._children))

    def _scan_tree(self, children: list[Child]) -> None:
        """Remember (pid, create time) of every current descendant of each child, including
        descendants of descendants seen earlier that have since been re-parented; forget the
        dead (their orphans, if any, were seen before they died or are found by the marker)."""
        stats = all_stats()
        kids: dict[int, list[ProcStat]] = {}
        for stat in stats.values():
            kids.setdefault(stat.ppid, []).append(stat)
        for child in children:
            for pid, start in list(child.seen.items()):
                if pid not in stats or stats[pid].start != start:
                    child.seen.pop(pid, None)
            todo = [child.pid, *child.seen]
            while todo:
                for stat in kids.get(todo.pop(), []):
                    if stat.pid not in child.seen:
                        child.seen[stat.pid] = stat.start
                        todo.append(stat.pid)

    def _marked(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(MARKER_VAR) == self.marker:
                    found.append(proc)
        return found

    def _kill_escaped(self, children: list[Child], deadline: float) -> None:
        """SIGKILL known descendants and marked processes until none is left or `deadline`."""
        while True:
            marked = [proc for proc in self._marked() if not is_gone(proc)]
            known = [
                (pid, start)
                for child in children
                for pid, start in list(child.seen.items())
                if same_process(pid, start)
            ]
            if not (marked or known) or time.monotonic() > deadline:
                return
            for proc in marked:
                kill_quietly(proc)
            for pid, start in known:
                kill_if_same(pid, start)
            end = min(deadline, time.monotonic() + 0.2)
            while time.monotonic() < end and not (
                all(is_gone(proc) for proc in marked)
                and not any(same_process(pid, start) for pid, start in known)
            ):
                time.sleep(POLL)

    @staticmethod
    def _tree_sockets(child: Child) -> set[int]:
        return socket_inodes([child.pid, *(proc.pid for proc in child.descendants())])


_OPEN: set[Supervisor] = set()  # not yet closed (kept alive until closed, even if dropped)


@atexit.register
def _close_all() -> None:
    """Safety net: a harness that exits (even on an uncaught exception) without closing its
    supervisors still kills what they started (not on SIGKILL or os._exit)."""
    for supervisor in list(_OPEN):
        with contextlib.suppress(Exception):
            supervisor.close()


def _last_output(child: Child) -> str:
    last = child.last_output()
    return f"; last output: {last}" if last else "; no output"


def _spawn(
    target: str, argv: list[str], cwd: Path, env: Mapping[str, str], stdin: bool
) -> tuple[subprocess.Popen, tuple[Optional[int], int, int]]:
    """Popen `argv` in a new session with our own pipes; returns it and our pipe ends."""
    ours: list[int] = []  # our ends, closed here only if the start fails
    theirs: list[int] = []  # the child's ends, always closed here once Popen has dup'ed them
    try:
        stdin_w: Optional[int] = None
        stdin_r = subprocess.DEVNULL
        if stdin:
            stdin_r, stdin_w = _pipe(1)
            ours.append(stdin_w)
            theirs.append(stdin_r)
        out_r, out_w = _pipe(0)
        ours.append(out_r)
        theirs.append(out_w)
        err_r, err_w = _pipe(0)
        ours.append(err_r)
        theirs.append(err_w)
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=stdin_r,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
        )
    except OSError as exc:
        for fd in ours:
            os.close(fd)
        raise StartError(_start_failure(target, argv, cwd, exc)) from None
    finally:
        for fd in theirs:
            os.close(fd)
    return popen, (stdin_w, out_r, err_r)


def _start_failure(target: str, argv: list[str], cwd: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) == str(cwd) and str(cwd) != argv[0]:
        return f"{target}: cannot start '{argv[0]}': working directory {cwd}: {reason}"
    hint = ""
    if isinstance(exc, FileNotFoundError) and not Path(argv[0]).is_absolute() and "/" in argv[0]:
        hint = (
            f" (each process runs in its own directory, {cwd}: write the program's path as "
            f"{{workdir}}/{argv[0].removeprefix('./')}"
            " in the adapter)"
        )
    return f"{target}: cannot start '{argv[0]}': {reason}{hint}"

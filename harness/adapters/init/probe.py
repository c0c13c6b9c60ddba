"""Probing a built submission under the harness's own machinery (Supervisor, ProxyHub,
PortPicker): start the coordinator with each config variant until it listens, then a
participant with each variant until a `register` reaches the coordinator, then the rest of a
smoke schedule (msend, disconnect, reconnect, deregister) on that process, trying the
command words of each op in turn. Bounded by a deadline; everything is killed on return."""

from __future__ import annotations

import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from harness.adapters.adapter import render
from harness.adapters.init import variants as vs
from harness.proxy.hub import ProxyHub
from harness.running.ports import PortPicker
from harness.running.procs import (
    Child,
    Supervisor,
    exit_phrase,
    listening_ports,
    netlink_listeners,
    proc_listeners,
    socket_inodes,
)

HOST = "127.0.0.1"
PROMPT_CUT = re.compile(r"[:>?$#]\s*$")  # unterminated output ending like a prompt is a line
TD = 2
ASKS = "asks for a file name on stdin"


@dataclass
class Seen:
    """What one participant process did, as its proxy and stdout show it (thread-safe)."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    replies: int = 0
    command: int = 0  # commands written so far
    wire: list[vs.Wire] = field(default_factory=list)  # requests and replies, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def control(self, kind: str, conn: int, data: bytes) -> None:
        with self.lock:
            if kind == "request":
                self.requests += 1
            elif kind in ("reply", "close"):
                self.replies += 1
            if kind in ("request", "reply"):
                self.wire.append((kind, conn, self.command, data))

    def line(self, stream: str, text: str) -> None:
        with self.lock:
            (self.lines if stream == "stdout" else self.errors).append(text)

    def mark(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.lines), self.requests, self.replies


@dataclass(frozen=True)
class Reaction:
    """What followed one command: request bytes reached the coordinator, it answered (or
    closed), the stdout lines printed meanwhile, whether the process exited."""

    requested: bool
    replied: bool
    lines: tuple[str, ...]
    exited: bool


@dataclass
class Proc:
    child: Child
    seen: Seen
    cwd: Path
    log: Path


def _emit(_event: dict) -> float:
    """The probe keeps no trace: events are dropped (their time is what emit returns)."""
    return time.monotonic()


def _tree_ports(child: Child) -> set[int]:
    """TCP ports `child` or one of its descendants listens on."""
    try:
        listeners = netlink_listeners()
    except OSError:
        listeners = proc_listeners()
    mine = socket_inodes([child.pid, *(p.pid for p in child.descendants())])
    return {port for port, inode in listeners if inode in mine}


class Session:
    """The processes, proxies and ports of one probe; `close()` ends them all."""

    def __init__(self, scratch: Path, env: dict[str, str], values: dict[str, Any], deadline: float):
        self.scratch, self.env, self.base, self.deadline = scratch, env, values, deadline
        self.sup = Supervisor("init-" + uuid.uuid4().hex[:8], _emit)
        self.hub = ProxyHub(_emit, listening=listening_ports)
        self.hub.start()
        self.picker = PortPicker(1024, 60999)
        self.n = 0
        self.coordinator_port2 = 0

    def close(self) -> None:
        try:
            self.sup.close()
        finally:
            self.hub.close()
            self.picker.close()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def port(self, width: int = 5) -> int:
        return self.picker.pick(width)

    def _dir(self, kind: str) -> Path:
        self.n += 1
        path = self.scratch / f"{kind}{self.n}"
        path.mkdir(parents=True)
        return path

    def start_coordinator(
        self, argv: list[str], v: vs.Variant, startup: float
    ) -> tuple[Optional[Child], int, str]:
        """Start the coordinator; (child, listening port, how) once it listens, or
        (None, 0, why not)."""
        cwd = self._dir("coordinator")
        port, port2 = self.port(), self.port()
        config = cwd / "coordinator.conf"
        values = {**self.base, "port": port, "port2": port2, "coordinator_port": port}
        values.update(coordinator_port2=port2, config=str(config), config_name=config.name)
        config.write_text(render(v.config, values))
        full = argv + [render(a, values) for a in v.tail]
        child = self.sup.start(f"coordinator{self.n}", full, cwd, self.env, prompt=PROMPT_CUT)
        for line in v.preamble:
            child.write_line(render(line, values))
        deadline = min(time.monotonic() + startup, self.deadline)
        self.coordinator_port2 = port2
        while True:
            ports = _tree_ports(child)
            if port in ports:
                return child, port, "listens on the port its config names"
            if v.tail and vs.asks_for_file(child.last_output()):
                child.kill()
                return None, 0, ASKS

            if ports - {port2}:
                time.sleep(0.3)
                ports = _tree_ports(child)
                if port in ports:
                    return child, port, "listens on the port its config names"
                fixed = min(ports - {port2})
                return child, fixed, f"listens on {fixed} whatever its config says"
            if not child.alive():
                child.wait(0.5)
                last = child.last_output()
                return (
                    None,
                    0,
                    f"{exit_phrase(child.returncode or 0)}" + (f" ({last})" if last else ""),
                )
            if time.monotonic() > deadline:
                child.kill()
                return None, 0, f"did not listen within {startup:.0f} s"
            time.sleep(0.02)

    def start_participant(self, argv: list[str], v: vs.Variant, coordinator_port: int) -> Proc:
        cwd = self._dir("participant")
        seen = Seen()
        proxy_port, proxy_port2 = self.port(), self.port()
        self.hub.add_participant(
            f"p{self.n}",
            [(proxy_port, coordinator_port), (proxy_port2, self.coordinator_port2)],
            on_control=seen.control,
            port_source=self.picker.pick,
            rewrite_ports=False,
        )
        config, log = cwd / "participant.conf", cwd / "messages.log"
        values = {**self.base, "id": str(self.n), "log": str(log), "log_name": log.name}
        values.update(config=str(config), config_name=config.name, coordinator_port=proxy_port)
        values.update(coordinator_port2=proxy_port2, port2=self.port())
        config.write_text(render(v.config, values))
        full = argv + [render(a, values) for a in v.tail]
        child = self.sup.start(
            f"participant{self.n}", full, cwd, self.env, on_line=seen.line, prompt=PROMPT_CUT
        )
        for line in v.preamble:
            child.write_line(render(line, values))
        return Proc(child, seen, cwd, log)

    def settle(self, proc: Proc, quiet: float) -> None:
        """Wait until the process printed nothing for `quiet` s (or exited)."""
        end = min(time.monotonic() + 4 * quiet, self.deadline)
        count, last = -1, time.monotonic()
        while time.monotonic() < end and proc.child.alive():
            now_count = proc.seen.mark()[0]
            if now_count != count:
                count, last = now_count, time.monotonic()
            elif time.monotonic() - last >= quiet:
                return
            time.sleep(0.02)

    def send(self, proc: Proc, text: str, wait: float) -> Reaction:
        """Write one command and watch what follows for up to `wait` s."""
        n_lines, n_req, n_rep = proc.seen.mark()
        with proc.seen.lock:
            proc.seen.command += 1
        proc.child.write_line(text)
        end = time.monotonic() + wait
        line_at: Optional[float] = None
        while time.monotonic() < end and proc.child.alive():
            lines, req, rep = proc.seen.mark()
            if req > n_req and rep > n_rep:
                break
            if lines > n_lines and req == n_req:
                line_at = line_at or time.monotonic()
                if time.monotonic() - line_at > 0.3:  # answered without asking anyone
                    break
            time.sleep(0.02)
        time.sleep(0.3)  # the answer line printed after the reply
        if not proc.child.alive():
            proc.child.wait(0.5)
        with proc.seen.lock:
            new = tuple(proc.seen.lines[n_lines:])
            req, rep = proc.seen.requests, proc.seen.replies
        return Reaction(req > n_req, rep > n_rep, new, not proc.child.alive())


def listening(port: int, want: bool, within: float) -> bool:
    """Whether `port` is (want=True) or is no longer (want=False) listening within `within` s."""
    end = time.monotonic() + within
    while True:
        now = port in listening_ports()
        if now == want:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


def find_token(proc: Proc, token: str, within: float) -> Optional[Path]:
    """The file in the participant's directory that holds `token` (its log), if any."""
    end = time.monotonic() + within
    while True:
        for path in [proc.log, *sorted(proc.cwd.iterdir())]:
            try:
                if path.is_file() and token in path.read_text(errors="replace"):
                    return path
            except OSError:
                pass
        if time.monotonic() > end:
            return None
        time.sleep(0.05)


def python_values(workdir: Path) -> dict[str, Any]:
    return {"python": sys.executable, "workdir": str(workdir), "td": TD, "coordinator_host": HOST}


Say = Callable[[str], None]

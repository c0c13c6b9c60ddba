"""Shared helpers for process-level tests: free ports, bounded waits, and processes that
are always killed (whole process group) when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import psutil

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll `predicate` until it returns a truthy value (returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True when a plain bind (no SO_REUSEADDR) to host:port succeeds, as a new program's would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class Proc:
    """A child process in its own process group; `kill()` ends the whole group."""

    popen: subprocess.Popen
    name: str

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


class ProcessGroup:
    """Starts processes and guarantees every one is killed at `close()` (use as a fixture)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, args: list[str], cwd: Path, name: str, **kwargs) -> Proc:
        popen = subprocess.Popen(
            args,
            cwd=cwd,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            **kwargs,
        )
        proc = Proc(popen, name)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


def start_coordinator(group: ProcessGroup, workdir: Path, td: float) -> tuple[Proc, int]:
    """Start the reference coordinator with a fresh config; return it once it accepts."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "coordinator.conf"
    config.write_text(f"{port}\n{td}\n")
    proc = group.start(
        [sys.executable, "-m", "reference.coordinator", str(config)],
        cwd=workdir,
        name="coordinator",
        stdin=subprocess.DEVNULL,
        stdout=open(workdir / "coordinator.out", "wb"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: port_accepts(port) or proc.popen.poll() is not None, 10, "coordinator")
    assert proc.popen.poll() is None, (workdir / "coordinator.out").read_text()
    return proc, port


def leftovers(run_id: str, run_dir: Path) -> list[str]:
    """Live processes of a run: PAMS_RUN_ID in their environment, or cwd under the run dir."""
    found = []
    under = str(run_dir.resolve()) + os.sep
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            mine = proc.environ().get("PAMS_RUN_ID") == run_id
            cwd = proc.cwd() + os.sep
            if mine or cwd.startswith(under):
                found.append(f"{proc.pid} {proc.status()} {proc.cmdline()}")
        except psutil.Error:
            continue
    return found


def nothing_left(run_id: str, run_dir: Path, settle: float = 2.0) -> list[str]:
    """The run's live processes once those being killed had `settle` s to vanish (a SIGKILLed
    process is not gone until the kernel has torn it down); [] is the expected answer."""
    deadline = time.monotonic() + settle
    while (found := leftovers(run_id, run_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found

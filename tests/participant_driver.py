"""Drive a reference participant subprocess through its stdin: one command at a time, each with
a bounded wait for its reply line, and bounded waits on its log file."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Optional

from tests.procutil import Proc, ProcessGroup, wait_until

REPLY_TIMEOUT = 12.0  # above the participant's 5 s connect + 5 s reply timeouts


def write_config(workdir: Path, participant_id: str, coordinator_port: int, log: str) -> Path:
    """Write a participant config (coordinator as `HOST PORT`) into `workdir`; return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "participant.conf"
    config.write_text(f"{participant_id}\n{log}\n127.0.0.1 {coordinator_port}\n")
    return config


def _pump(stream: IO[bytes], lines: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    lines.put(None)


def _mismatch(log: Path, lines: list[str], expected: list[str]) -> str:
    at = next((i for i, pair in enumerate(zip(lines, expected)) if pair[0] != pair[1]), None)
    at = min(len(lines), len(expected)) if at is None else at
    return (
        f"{log}: {len(lines)} lines, expected {len(expected)}; first difference at line {at + 1}:"
        f" got {lines[at : at + 3]}, expected {expected[at : at + 3]}"
    )


class ParticipantDriver:
    """One participant process (`python -m reference.participant CONFIG`, cwd = `workdir`)."""

    def __init__(self, group: ProcessGroup, workdir: Path, config: Path, log: Path) -> None:
        self.group = group
        self.workdir = workdir
        self.config = config
        self.log = log
        self.proc: Optional[Proc] = None
        self._lines: queue.Queue = queue.Queue()
        self.start()

    @classmethod
    def create(
        cls, group: ProcessGroup, workdir: Path, participant_id: str, coordinator_port: int
    ) -> ParticipantDriver:
        """Write a config with a relative log name and start the participant in `workdir`."""
        config = write_config(workdir, participant_id, coordinator_port, "messages.log")
        return cls(group, workdir, config, workdir / "messages.log")

    def start(self) -> None:
        """Start (or, after `kill()`, restart) the process with the same config."""
        self._lines = queue.Queue()
        self.proc = self.group.start(
            [sys.executable, "-m", "reference.participant", str(self.config)],
            cwd=self.workdir,
            name=f"participant {self.workdir.name}",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "participant.err", "ab"),  # noqa: SIM115 - child owns it
        )
        threading.Thread(
            target=_pump, args=(self.proc.popen.stdout, self._lines), daemon=True
        ).start()

    @property
    def popen(self) -> subprocess.Popen:
        assert self.proc is not None
        return self.proc.popen

    def send(self, text: str) -> None:
        """Write raw text to the participant's stdin."""
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.write(text.encode())
        stdin.flush()

    def reply(self, timeout: float = REPLY_TIMEOUT) -> Optional[str]:
        """The next stdout line (None at EOF); fails after `timeout` s without one."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no reply line within {timeout}s; stderr: {self.stderr()}"
            ) from None

    def command(self, line: str, timeout: float = REPLY_TIMEOUT) -> str:
        """Send one command line and return its reply line."""
        self.send(line + "\n")
        reply = self.reply(timeout)
        assert reply is not None, f"participant exited on {line!r}; stderr: {self.stderr()}"
        return reply

    def ok(self, line: str) -> str:
        """Send a command that must succeed; return its reply line."""
        reply = self.command(line)
        verb = line.split()[0]
        assert reply.startswith(f"ok {verb}"), f"{line!r} -> {reply!r}"
        return reply

    def close_stdin(self) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.close()

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the participant's process group."""
        assert self.proc is not None
        self.proc.kill()

    def stderr(self) -> str:
        path = self.workdir / "participant.err"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_lines(self) -> list[str]:
        """The log's complete lines so far."""
        if not self.log.exists():
            return []
        return self.log.read_text().splitlines()

    def wait_log(self, expected: list[str], timeout: float = 5.0) -> list[str]:
        """Wait until the log holds exactly `expected` (in order); return it."""
        wait_until(
            lambda: len(self.log_lines()) >= len(expected), timeout, f"{expected} in {self.log}"
        )
        lines = self.log_lines()
        assert lines == expected, _mismatch(self.log, lines, expected)
        return lines

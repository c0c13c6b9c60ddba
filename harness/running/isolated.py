"""A run inside its sandbox: the parent builds the implementation, starts this module under
`sandbox.outer_argv` with the run's job (adapter and scenario, pickled: parent and child are
the same pams), forwards the child's progress lines and reads back its RunResult. The child
brings loopback up, runs the scenario as usual, and starts every program of the submission
through `sandbox.inner_argv`. Ctrl-C or `abort_all` in the parent stops the child's run
gracefully (SIGTERM: its schedule stops, its processes are killed, the trace is truncated)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from harness.running import sandbox as sb

PROGRESS = "progress "  # a child's stdout line carrying a progress message
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
STOP_WAIT = 30.0  # seconds the child gets to tear down after SIGTERM before SIGKILL

_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()


def stop_all() -> None:
    """Ask every sandboxed run of this process to stop (each tears down and truncates)."""
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for child in children:
        with contextlib.suppress(OSError):
            child.send_signal(signal.SIGTERM)


def run(job: dict[str, Any], sandbox: sb.Sandbox, progress: Callable[[str], None]) -> Any:
    """Run `job` (the keyword arguments of runner.run_scenario) in a child inside `sandbox`;
    return its RunResult. A child that dies without one gives a RunResult with the error."""
    from harness.running.runner import RunResult

    with tempfile.TemporaryDirectory(prefix="pams-job-") as tmp:
        job_file, result_file = Path(tmp) / "job.pickle", Path(tmp) / "result.pickle"
        job_file.write_bytes(pickle.dumps(job))
        env = {**os.environ, sb.ENV_INSIDE: sandbox.kind, sb.ENV_INSIDE + "_REASON": sandbox.reason}
        argv = [
            *sb.outer_argv(sandbox),
            sys.executable,
            "-m",
            __name__,
            str(job_file),
            str(result_file),
        ]
        child = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        with _CHILDREN_LOCK:
            _CHILDREN.add(child)
        try:
            errors = _pump(child, progress)
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(child)
        if result_file.exists():
            return pickle.loads(result_file.read_bytes())
        out = Path(job["out_dir"])
        trace = out / "trace.jsonl"
        last = (errors.strip().splitlines() or [f"exit code {child.returncode}"])[-1]
        return RunResult(
            job["scenario"].name,
            out,
            trace if trace.exists() else None,
            error=f"the sandboxed run failed ({sandbox.kind}): {last}",
        )


def _pump(child: subprocess.Popen, progress: Callable[[str], None]) -> str:
    """Forward progress lines until the child ends; return its stderr. On an interrupt, stop
    the child and wait for its teardown (bounded), then re-raise."""
    stdout, stderr = child.stdout, child.stderr
    assert stdout is not None and stderr is not None
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    reader.start()
    try:
        for line in stdout:
            if line.startswith(PROGRESS):
                progress(line[len(PROGRESS) :].rstrip("\n"))
        child.wait()
    except BaseException:
        _stop(child)
        raise
    reader.join(5.0)
    return "".join(errors)


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM the child and wait for its teardown (SIGKILL after STOP_WAIT s); further
    Ctrl-Cs meanwhile do not cut the wait short (the run's processes must be gone first)."""
    with contextlib.suppress(OSError):
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while child.poll() is None:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
        except KeyboardInterrupt:
            continue


def loopback_up() -> None:
    """Bring `lo` up in this (fresh) network namespace; bwrap does it, unshare does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def child_main(job_file: str, result_file: str) -> int:
    """The child: run the job, write the pickled RunResult; progress lines on stdout."""
    from harness.running import runner

    loopback_up()
    signal.signal(signal.SIGTERM, lambda _s, _f: runner.abort_all())
    signal.signal(signal.SIGINT, lambda _s, _f: runner.abort_all())
    job = pickle.loads(Path(job_file).read_bytes())

    def progress(message: str) -> None:
        print(PROGRESS + message.replace("\n", " "), flush=True)

    result = runner.run_prepared(**job, progress=progress)
    tmp = Path(result_file + ".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.rename(result_file)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m harness.running.isolated JOB RESULT", file=sys.stderr)
        return 2
    return child_main(*args)


if __name__ == "__main__":
    sys.exit(main())

"""Proxy overhead benchmark: `python -m benchmarks.proxy [--ops N] [--json]`.

A tiny coordinator (a child process: reads one line, replies `OK`, closes, like the reference
protocol) is timed per op (connect, send a 40-byte line, read the reply, see the close) directly
and through a `ParticipantProxy`, once with an emit that drops events (the proxy still
base64-encodes every chunk) and once with an emit that appends JSON lines to a file like the
real recorder. The three modes take turns op by op. Figures are milliseconds; overhead is
proxied minus direct, per statistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from harness.proxy.hub import Emit, ProxyHub
from harness.running import opmachine as om
from harness.running.opmachine import OpMachine, Policy

LINE = b"MSEND 1 " + b"M" * 31 + b"\n"  # 40 bytes
WARMUP = 100
_ROOT = Path(__file__).resolve().parents[1]


class _Reply(asyncio.Protocol):
    """Reads one line, replies `OK`, closes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer and self.transport is not None:
            self.transport.write(b"OK\n")
            self.transport.close()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Reply, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


def _one_op(port: int) -> float:
    """Seconds for one request/reply/close round trip to 127.0.0.1:port."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(LINE)
        reply = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    elapsed = time.perf_counter() - start
    if reply != b"OK\n":
        raise RuntimeError(f"unexpected reply {reply!r}")
    return elapsed


@dataclass(frozen=True)
class Mode:
    """One way of reaching the coordinator: a port, and what the runner does before each op."""

    name: str
    port: int
    before: Callable[[int], None] = lambda op: None


def _interleaved(modes: list[Mode], ops: int) -> dict[str, list[float]]:
    """`ops` timed round trips per mode, the modes taking turns op by op so that background
    load hits them alike; a warm-up round first."""
    times: dict[str, list[float]] = {mode.name: [] for mode in modes}
    for op in range(-WARMUP, ops):
        for mode in modes:
            mode.before(op)
            elapsed = _one_op(mode.port)
            if op >= 0:
                times[mode.name].append(elapsed)
    return times


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"median_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3}


def _file_emit(path: Path) -> Emit:
    """An emit like the recorder's: stamp `t`, one JSON line, flushed, under a lock."""
    stream = path.open("a", encoding="utf-8")
    lock = threading.Lock()
    start = time.monotonic()

    def emit(event: dict) -> float:
        with lock:
            t = time.monotonic() - start
            stream.write(json.dumps({**event, "t": round(t, 6)}) + "\n")
            stream.flush()
            return t

    return emit


def _proxied(hub: ProxyHub, name: str, coordinator: int) -> Mode:
    """A mode through a new proxy on `hub`, armed before every op and with the op-completion
    machine fed from the proxy's control events, as the runner does."""
    listen = _free_port()
    machine = OpMachine(Policy())
    lock = threading.Lock()

    def sink(kind: str, conn: int, data: bytes) -> None:
        with lock:  # as the runner does
            machine.handle(om.control_event(kind, conn, data, time.monotonic()))

    proxy = hub.add_participant("1", [(listen, coordinator)], sink, lambda width: 0, False)

    def arm(op: int) -> None:
        with lock:
            machine.handle(om.Invoke(op, "msend", time.monotonic()))
        proxy.arm(op, "msend", None)

    return Mode(name, listen, arm)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TARGET_OVERHEAD_MS = 1.0  # grading overhead per op at the median (issue 16)


def measure(ops: int) -> dict[str, dict[str, float]]:
    """Figures for `ops` round trips per mode: direct, proxy (base64 only), proxy (JSON file)."""
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.proxy", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            hubs = [ProxyHub(lambda event: 0.0), ProxyHub(_file_emit(Path(tmp) / "trace.jsonl"))]
            try:
                for hub in hubs:
                    hub.start()
                modes = [
                    Mode("direct", port),
                    _proxied(hubs[0], "proxy", port),
                    _proxied(hubs[1], "proxy_json_file", port),
                ]
                times = _interleaved(modes, ops)
            finally:
                for hub in hubs:
                    hub.close()
    finally:
        child.kill()
        child.wait(10)
    result = {name: _stats(series) for name, series in times.items()}
    direct = result["direct"]
    for name in ("proxy", "proxy_json_file"):
        result[f"overhead_{name}"] = {k: result[name][k] - direct[k] for k in direct}
    return result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proxy", description=__doc__)
    parser.add_argument("--ops", type=int, default=2000, help="round trips per mode")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve())
        return 0
    if args.ops < 1:
        parser.error("--ops must be at least 1")
    result = measure(args.ops)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.ops} ops per mode (ms)       median      p99")
    for name, figures in result.items():
        print(f"{name:<28} {figures['median_ms']:8.3f} {figures['p99_ms']:8.3f}")
    grading = result["overhead_proxy_json_file"]["median_ms"]
    print(
        f"grading overhead per op (the recording path: proxy and JSON trace file): "
        f"median {grading:.3f} ms (target < {TARGET_OVERHEAD_MS:g} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

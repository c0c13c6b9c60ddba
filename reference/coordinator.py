"""The reference coordinator server: `python -m reference.coordinator [-q] CONFIG`.

One asyncio event loop (uvloop's when it is installed, see `run`) wraps the pure
`CoordinatorCore`: each control connection is parsed, answered, closed and only then acted on;
each online member has its own delivery channel whose flow control never holds up the request
path or other members.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any, Callable, Optional, TextIO, cast

from reference.config import ConfigError, load_coordinator_config
from reference.core import Action, CloseChannel, CoordinatorCore, OpenChannel, Overflow, Wake
from reference.wire import MAX_LINE, format_delivery, parse_ack, quote, reply_err

REQUEST_TIMEOUT = 5.0  # seconds a client has to send its whole request line
CONNECT_TIMEOUT = 5.0  # seconds to connect a delivery channel
LINGER = 1.0  # seconds an over-long request is drained before the connection is dropped
CLOSE_GRACE = 2.0  # seconds a closed channel may take to flush before it is aborted
EXPIRE_EVERY = 0.5  # seconds between expiry sweeps when no message arrives
BATCH = 256  # messages per channel write


def monotonic() -> float:
    """The coordinator's clock (looked up at call time, so freezegun can drive it)."""
    return time.monotonic()


class Log:
    """One flushed line per event on `stream`; `verbose` False drops per-request lines."""

    def __init__(self, stream: TextIO, verbose: bool = True) -> None:
        self.stream = stream
        self.verbose = verbose

    def event(self, text: str) -> None:
        self.stream.write(f"coordinator: {text}\n")
        self.stream.flush()

    def request(self, text: str) -> None:
        if self.verbose:
            self.event(text)


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


class RequestProtocol(asyncio.Protocol):
    """One control connection: read one line (<= MAX_LINE, within REQUEST_TIMEOUT), reply, close."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.done = False
        self.transport: Optional[asyncio.Transport] = None
        self.timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return  # draining after a refusal
        end = data.find(b"\n")
        if end < 0:
            self.buffer += data
            if len(self.buffer) > MAX_LINE:
                self._refuse_long()
            return
        self.buffer += data[:end]
        if len(self.buffer) > MAX_LINE:
            self._refuse_long()
            return
        self._answer(bytes(self.buffer).rstrip(b"\r"))

    def eof_received(self) -> bool:
        if self.done:
            return False
        if self.buffer:
            what = f"truncated request ({len(self.buffer)} bytes, no end of line)"
            self._fail(what, reply_err(what))
        else:
            self._fail("closed without a request", reply_err("empty request"))
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.done:
            self.done = True
            self.server.log.event(f"{self._peer()} closed before a full request line")

    def _peer(self) -> str:
        return _peer(self.transport) if self.transport is not None else "?"

    def _finish(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()

    def _answer(self, raw: bytes) -> None:
        self._finish()
        assert self.transport is not None
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            event = f"{self._peer()} bad request: not ASCII"
            self._reply_and_close(event, reply_err("not ASCII text"))
            return
        outcome = self.server.core.handle(line, self.server.clock())
        self.transport.write(outcome.reply.encode("ascii") + b"\n")
        self.transport.close()
        self.server.perform(outcome.actions)
        shown = line if len(line) <= 120 else line[:120] + "..."
        if outcome.ok:
            self.server.log.request(f"{self._peer()} {shown!r} -> {outcome.reply}")
        else:
            self.server.log.event(f"{self._peer()} bad request {shown!r} -> {outcome.reply}")

    def _reply_and_close(self, event: str, reply: str) -> None:
        assert self.transport is not None
        self.transport.write(reply.encode("ascii") + b"\n")
        self.transport.close()
        self.server.log.event(event)

    def _fail(self, what: str, reply: str) -> None:
        self._finish()
        self._reply_and_close(f"{self._peer()} {what}", reply)

    def _timed_out(self) -> None:
        if not self.done:
            what = f"request timeout after {REQUEST_TIMEOUT:g}s ({len(self.buffer)} bytes read)"
            self._fail(what, reply_err("request timeout"))

    def _refuse_long(self) -> None:
        """Reply, send FIN, and discard input for a moment so the peer can read the reply."""
        self._finish()
        assert self.transport is not None
        self.buffer = bytearray()
        reply = reply_err(f"request line longer than {MAX_LINE} bytes")
        self.transport.write(reply.encode() + b"\n")
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER, self.transport.abort)
        self.server.log.event(f"{self._peer()} bad request: line longer than {MAX_LINE} bytes")


class Channel(asyncio.Protocol):
    """Delivery channel to one member for one online period: writes MSG lines, reads ACKs."""

    def __init__(self, server: Server, pid: str, epoch: int) -> None:
        self.server = server
        self.pid = pid
        self.epoch = epoch
        self.transport: Optional[asyncio.Transport] = None
        self.paused = False
        self.closed = False
        self.inbox = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self.closed:
            self.transport.close()
            return
        self.pump()

    def pump(self) -> None:
        """Write every message the core has for this channel, until the transport pushes back."""
        core = self.server.core
        while self.transport is not None and not self.paused and not self.closed:
            batch = core.take(self.pid, self.epoch, BATCH)
            if not batch:
                return
            lines = "".join(format_delivery(m.seq, m.sender, m.text) + "\n" for m in batch)
            self.transport.write(lines.encode())

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        end = self.inbox.rfind(b"\n")
        if end < 0:
            if len(self.inbox) > MAX_LINE:
                self.server.log.event(f"channel to {self.pid}: over-long line from participant")
                if self.transport is not None:
                    self.transport.abort()  # connection_lost reports the failure
            return
        lines, self.inbox = self.inbox[:end].split(b"\n"), self.inbox[end + 1 :]
        top = -1
        for line in lines:
            seq = parse_ack(bytes(line))
            if seq is not None:
                top = max(top, seq)
            else:
                self.server.log.event(f"channel to {self.pid}: ignored line {quote(bytes(line))}")
        if top >= 0:
            self.server.core.ack(self.pid, self.epoch, top)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.closed:
            self.closed = True
            self.server.channel_failed(self, f"broke ({exc or 'closed by participant'})")

    def close(self) -> None:
        """Close on purpose (disconnect/deregister): no failure is reported."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            asyncio.get_running_loop().call_later(CLOSE_GRACE, self.transport.abort)


class Server:
    """Carries out the core's actions: opens, wakes and closes delivery channels; sweeps expiry."""

    def __init__(self, core: CoordinatorCore, log: Log, clock: Callable[[], float]) -> None:
        self.core = core
        self.log = log
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def perform(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if isinstance(action, Wake):
                channel = self.channels.get(action.pid)
                if channel is not None and channel.epoch == action.epoch:
                    channel.pump()
            elif isinstance(action, OpenChannel):
                self._open(action)
            elif isinstance(action, CloseChannel):
                channel = self.channels.get(action.pid)
                if channel is not None and channel.epoch == action.epoch:
                    del self.channels[action.pid]
                    channel.close()
                if isinstance(action, Overflow):
                    self.log.event(
                        f"channel to {action.pid} dropped: {action.count} unacknowledged "
                        f"message(s), {action.nbytes} bytes, pass the backlog limit "
                        f"({self.core.max_backlog} messages or {self.core.max_backlog_bytes} "
                        "bytes): now offline, its messages kept subject to td"
                    )

    def _open(self, action: OpenChannel) -> None:
        old = self.channels.pop(action.pid, None)
        if old is not None:
            old.close()
        channel = Channel(self, action.pid, action.epoch)
        self.channels[action.pid] = channel
        task = asyncio.get_running_loop().create_task(self._connect(channel, action))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, channel: Channel, action: OpenChannel) -> None:
        loop = asyncio.get_running_loop()
        address = f"{action.host}:{action.port}"
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: channel, action.host, action.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            if not channel.closed:
                channel.closed = True
                self.channel_failed(channel, f"cannot connect to {address} ({exc or 'timeout'})")
            return
        self.log.request(f"channel to {action.pid} open ({address})")

    def channel_failed(self, channel: Channel, reason: str) -> None:
        if self.channels.get(channel.pid) is channel:
            del self.channels[channel.pid]
        if self.core.channel_failed(channel.pid, channel.epoch, self.clock()):
            pending = len(self.core.owed(channel.pid, self.clock()))
            self.log.event(
                f"channel to {channel.pid} {reason}: now offline, {pending} message(s) pending"
            )

    def sweep(self) -> None:
        """Expire old messages, and again every EXPIRE_EVERY seconds."""
        self.core.expire(self.clock())
        asyncio.get_running_loop().call_later(EXPIRE_EVERY, self.sweep)


async def serve(port: int, td: float, log: Log, host: str = "0.0.0.0") -> None:
    """Run the coordinator on host:port until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = Server(CoordinatorCore(td), log, monotonic)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before listening: a client may signal at once
        loop.add_signal_handler(sig, stop.set)
    listener = await loop.create_server(
        lambda: RequestProtocol(server), host, port, backlog=1024, reuse_address=True
    )
    server.sweep()
    log.event(f"listening on {host}:{port}, td={td:g}s")
    await stop.wait()
    listener.close()
    log.event("stopping")


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when it is installed (`pip install pams[fast]`) and not refused by
    PAMS_REFERENCE_LOOP=asyncio, else on the standard library's event loop."""
    if os.environ.get("PAMS_REFERENCE_LOOP", "") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; returns the exit status (2 for usage or config errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = True
    if args and args[0] in ("-q", "--quiet"):
        verbose = False
        args = args[1:]
    if len(args) != 1:
        print("usage: python -m reference.coordinator [-q] CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_coordinator_config(args[0])
    except ConfigError as exc:
        print(f"coordinator: {exc}", file=sys.stderr)
        return 2
    log = Log(sys.stderr, verbose)
    try:
        run(serve(config.port, config.td, log))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        log.event(f"{args[0]}:1: cannot listen on port {config.port}: {reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

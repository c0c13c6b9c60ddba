"""Recording TCP proxies, one per participant, in front of the coordinator (README "How a run
works", docs/trace-format.md).

All proxies of a run share one asyncio loop in one daemon thread (`ProxyHub`). Each forwards
every byte both ways, records it as a `wire` event, reports what happens on the control path
(request bytes, reply bytes, closes, refused connects, cuts) to a sink that decides op
completion (`harness.running.opmachine`), cuts the control path on `partition()`, and can
interpose on delivery traffic by rewriting the thread-B port a register/reconnect request
advertises. A delivery port listens exactly while thread-B's own port does, so the coordinator
sees what it would see without the proxy. The decisions (`InterposeWatch`, `locate_port`) are
pure.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import itertools
import logging
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Union

from checkers.traceformat import Emit
from harness.running.ports import bindable  # noqa: E402

HOST = "127.0.0.1"
CONTROL = "control"
DELIVERY = "delivery"
INTERPOSED = ("register", "reconnect")
AMBIGUOUS = "port ambiguous in request"
NOT_FOUND = "port not found in request"
CONNECT_TIMEOUT = 10.0  # seconds for the proxy's own connect to the coordinator or thread-B
CALL_TIMEOUT = 5.0  # seconds a runner-thread call waits for the loop
BACKLOG = 128
_RST_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0 s}: close() sends RST
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
_log = logging.getLogger(__name__)


# --- pure decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PortMatch:
    """One occurrence of the advertised port in request bytes: `data[start:end]` encodes it."""

    encoding: str  # "decimal" | "be16" | "be32"
    start: int
    end: int


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    """Every start offset of `needle` in `data`, overlapping ones included."""
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def locate_port(data: bytes, port: int) -> Union[PortMatch, str, None]:
    """Find `port` in `data`: decimal text not adjacent to other digits first; only when there is
    none and `data` is not pure text, 2-byte big-endian (labelled be32 when two zero bytes precede
    it). Returns the match when exactly one occurrence, AMBIGUOUS for several, None for none."""
    decimal = [m.span() for m in re.finditer(rb"(?<![0-9])%d(?![0-9])" % port, data)]
    if decimal:
        return PortMatch("decimal", *decimal[0]) if len(decimal) == 1 else AMBIGUOUS
    if not 0 < port <= 0xFFFF or all(byte in _TEXT_BYTES for byte in data):
        return None
    spots = _occurrences(data, struct.pack(">H", port))
    if len(spots) != 1:
        return AMBIGUOUS if spots else None
    at = spots[0]
    if at >= 2 and data[at - 2 : at] == b"\0\0":
        return PortMatch("be32", at - 2, at + 2)
    return PortMatch("be16", at, at + 2)


def encode_port(encoding: str, port: int) -> bytes:
    """`port` in one of `locate_port`'s encodings."""
    if encoding == "decimal":
        return b"%d" % port
    return struct.pack(">H" if encoding == "be16" else ">I", port)


def rewrite_port(data: bytes, match: PortMatch, port: int) -> bytes:
    """`data` with the matched port replaced by `port` in the same encoding (same width)."""
    new = encode_port(match.encoding, port)
    if len(new) != match.end - match.start:
        raise ValueError(f"port {port} does not fit the {match.encoding} field")
    return data[: match.start] + new + data[match.end :]


@dataclass(frozen=True)
class InterposeWatch:
    """The armed op of one participant, as far as port interposition goes: while `scanning`,
    participant bytes are searched for thread-B's advertised `port`."""

    op: int
    f: str
    port: Optional[int]
    scanning: bool


ControlSink = Callable[[str, int, bytes], None]
"""`sink(kind, conn, data)`: kind is request / reply / close / hangup (the participant closed
its side) / refused / cut (the events
of the op-completion machine); called on the loop thread before the bytes are passed on."""
ListeningPorts = Callable[[], "set[int]"]
MIRROR_POLL = 0.01  # seconds between checks that each delivery port mirrors thread-B's


def wants_interpose(f: str, port: Optional[int], rewrite_ports: bool) -> bool:
    """Only register/reconnect with a known port are interposed on, and only when allowed."""
    return rewrite_ports and f in INTERPOSED and port is not None


# --- I/O --------------------------------------------------------------------------------------


def _reset(transport: Optional[asyncio.Transport]) -> None:
    """Close `transport` at once with an RST (no FIN, no TIME_WAIT)."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
    transport.abort()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _listen_socket(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:port (OSError when the port is taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Side(asyncio.Protocol):
    """One socket of a proxied connection; every event goes to its `_Link`."""

    def __init__(self, link: _Link, initiator: bool) -> None:
        self.link = link
        self.initiator = initiator
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.initiator:
            self.link.accepted()

    def data_received(self, data: bytes) -> None:
        self.link.data(self, data)

    def eof_received(self) -> bool:
        self.link.eof(self)
        return True  # keep the other direction open until it ends too

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.link.lost(self, exc)

    def pause_writing(self) -> None:
        self.link.throttle(self, True)

    def resume_writing(self) -> None:
        self.link.throttle(self, False)


class _Link:
    """One proxied connection: the accepted (initiator) side and the side the proxy connected
    (target). Control: participant → coordinator. Delivery: coordinator → thread-B."""

    def __init__(self, proxy: ParticipantProxy, channel: str, target_port: int) -> None:
        self.proxy = proxy
        self.hub = proxy.hub
        self.channel = channel
        self.target_port = target_port
        self.conn = proxy.hub.next_conn()
        self.a = _Side(self, initiator=True)
        self.b = _Side(self, initiator=False)
        self.ended: set[bool] = set()  # `initiator` flags of the sides that sent EOF
        self.done = False
        self.connected = False
        self.connecting = False
        self.early: list[Optional[bytes]] = []  # initiator bytes (None: EOF) read before connected

    def who(self, side: _Side) -> str:
        return "participant" if side.initiator == (self.channel == CONTROL) else "coordinator"

    def direction(self, side: _Side) -> str:
        """The `dir` of bytes read from `side`."""
        return "to_coordinator" if self.who(side) == "participant" else "to_participant"

    def peer(self, side: _Side) -> _Side:
        return self.b if side is self.a else self.a

    def closed_event(self, by: str, reason: str) -> None:
        self.hub.emit(
            {
                "type": "wire_close",
                "conn": self.conn,
                "participant": self.proxy.participant,
                "channel": self.channel,
                "by": by,
                "reason": reason,
            }
        )

    def accepted(self) -> None:
        self.hub.links.add(self)
        if self.channel == CONTROL:
            self.proxy.unmade = max(0, self.proxy.unmade - 1)
        if self.channel == CONTROL and self.proxy.partitioned:
            self.refuse("harness", "partition")
            return
        assert self.a.transport is not None
        self.a.transport.pause_reading()
        self.connecting = True
        self.hub.spawn(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: self.b, HOST, self.target_port), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError) as exc:
            self.connecting = False
            if not self.done:
                self.refuse(self.who(self.b), f"refused: {_reason(exc)}")
            return
        finally:
            if self.done:
                self.connecting = False
        if self.done:
            _reset(self.b.transport)
            return
        self.connected = True
        self.connecting = False
        early, self.early = self.early, []
        for chunk in early:  # pause_reading is only advisory before reading starts (3.9)
            if chunk is None:
                self.eof(self.a)
            else:
                self.data(self.a, chunk)
        if self.a.transport is not None and None not in early:
            self.a.transport.resume_reading()

    def refuse(self, by: str, reason: str) -> None:
        """The connection could not be carried: reset the initiator so it sees a failure."""
        self.closed_event(by, reason)
        if self.channel == CONTROL:
            self.proxy.control("refused", self.conn)
        self.finish(reset=True)

    def data(self, side: _Side, data: bytes) -> None:
        if self.done:
            return
        if side.initiator and not self.connected:
            self.early.append(data)
            return
        out = data
        if self.channel == CONTROL and side.initiator:
            out = self.proxy.outbound(self.conn, data)
        event = {
            "type": "wire",
            "conn": self.conn,
            "participant": self.proxy.participant,
            "dir": self.direction(side),
            "channel": self.channel,
            "data": base64.b64encode(data).decode("ascii"),
        }
        if out is not data:
            event["rewritten"] = base64.b64encode(out).decode("ascii")
        self.hub.emit(event)
        if self.channel == CONTROL:  # decided before the other side can see the bytes
            self.proxy.control("request" if side.initiator else "reply", self.conn, data)
        target = self.peer(side).transport
        if target is not None:
            target.write(out)

    def eof(self, side: _Side) -> None:
        if self.done or side.initiator in self.ended:
            return
        if side.initiator and not self.connected:
            if None not in self.early:
                self.early.append(None)
            return
        self.closed_event(self.who(side), "eof")
        self.ended.add(side.initiator)
        if self.channel == CONTROL:
            self.proxy.control("hangup" if side.initiator else "close", self.conn)
        target = self.peer(side).transport
        if target is not None and not target.is_closing() and target.can_write_eof():
            target.write_eof()
        if len(self.ended) == 2:
            self.finish(reset=False)

    def lost(self, side: _Side, exc: Optional[Exception]) -> None:
        if self.done:
            return
        self.closed_event(self.who(side), _reason(exc) if exc is not None else "closed")
        if self.channel == CONTROL:
            self.proxy.control("hangup" if side.initiator else "close", self.conn)
        self.finish(reset=True)

    def throttle(self, side: _Side, paused: bool) -> None:
        """`side` cannot take more bytes for now: stop (or resume) reading from its peer."""
        source = self.peer(side).transport
        if source is None or source.is_closing():
            return
        if paused:
            source.pause_reading()
        else:
            source.resume_reading()

    def cut(self, reason: str) -> None:
        """The harness ends this connection: both sides reset."""
        if not self.done:
            self.closed_event("harness", reason)
            if self.channel == CONTROL and reason == "partition":
                self.proxy.control("cut", self.conn)
            self.finish(reset=True)

    def finish(self, reset: bool) -> None:
        self.done = True
        self.hub.links.discard(self)
        for side in (self.a, self.b):
            if reset:
                _reset(side.transport)
            elif side.transport is not None:
                side.transport.close()


class _Listener:
    """A listening socket served by the hub's loop; `close()` works before serving began."""

    def __init__(self, hub: ProxyHub, sock: socket.socket, factory: Callable[[], _Side]) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.task = hub.spawn(hub.loop.create_server(factory, sock=sock))

    def close(self) -> None:
        if self.task.done():
            self._close_now(self.task)
        else:
            self.task.add_done_callback(self._close_now)

    def _close_now(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is not None:
            self.sock.close()
        else:
            task.result().close()


@dataclass
class _Mirror:
    """A delivery port `port` of the harness standing for thread-B's port `target`: it listens
    exactly while `target` does (loop thread only)."""

    target: int
    port: int
    listener: Optional[_Listener] = None


class ParticipantProxy:
    """The proxy of one participant: listens on 127.0.0.1 control ports and forwards each
    connection to the coordinator's matching port (runner-thread methods are thread-safe).

    Every control event goes to `on_control(kind, conn, data)` on the loop thread, before the
    bytes are passed on: `request` (participant bytes), `reply` (coordinator bytes), `close`
    (the coordinator's EOF or reset), `refused` (a connection that could not be carried: the
    partition, or the coordinator refused it), `cut` (the harness reset it: partition).

    Interposition (rewrite_ports, register/reconnect armed with port P): every participant chunk
    after arming is searched before it is forwarded (`locate_port`) until P is found once (a
    delivery port Q forwarding to P is set up, then P is rewritten to Q: `interpose` event, and
    the chunk's `wire` event carries the forwarded bytes as `rewritten`), found several times
    (left alone), or the op ends (left alone: "port not found in request"). Q listens exactly
    while P does, so a coordinator connecting to it meets what it would meet at P.

    Partition cuts the control path only: delivery connections and ports stay up, so a
    partitioned participant stays online as far as the membership rules go.
    """

    def __init__(
        self,
        hub: ProxyHub,
        participant: str,
        on_control: ControlSink,
        port_source: Callable[[int], int],
        rewrite_ports: bool,
    ) -> None:
        self.hub = hub
        self.participant = participant
        self.rewrite_ports = rewrite_ports
        self._on_control = on_control
        self._port_source = port_source
        self._lock = threading.Lock()
        self._watch: Optional[InterposeWatch] = None
        self.partitioned = False  # loop thread only
        self.mirrors: list[_Mirror] = []  # loop thread only
        self._listeners: list[_Listener] = []
        self.unmade = 0  # control connections accepted whose transport is not made yet

    # runner thread

    def arm(self, op: int, f: str, port: Optional[int] = None) -> None:
        """`op` is the participant's current op (call before writing its command): with
        rewrite_ports, a register/reconnect's advertised `port` is interposed on."""
        watch = InterposeWatch(op, f, port, wants_interpose(f, port, self.rewrite_ports))
        with self._lock:
            self._watch = watch

    def disarm(self, op: int) -> None:
        """`op` ended: stop looking for its port."""
        with self._lock:
            watch = self._watch
            if watch is None or watch.op != op:
                return
            self._watch = None
        self._give_up_interpose(watch)

    def partition(self) -> None:
        """Refuse new connections (accept, then RST) and reset every open control connection."""
        self.hub.call(self._partition)

    def heal(self) -> None:
        """Carry new connections again."""
        self.hub.call(self._heal)

    def release_delivery_ports(self) -> None:
        """Close this participant's delivery ports now (its process died); each opens again
        when its thread-B port listens again. Open delivery connections stay."""
        self.hub.call(self._release)

    # loop thread

    def start(self, sock: socket.socket, target_port: int) -> None:
        self._listeners.append(_Listener(self.hub, sock, lambda: self._control_side(target_port)))

    def listen(self, pairs: list[tuple[socket.socket, int]]) -> None:
        """`start` each (listening socket, coordinator port) pair."""
        for sock, target_port in pairs:
            self.start(sock, target_port)

    def _control_side(self, target_port: int) -> _Side:
        self.unmade += 1  # until its connection_made (accepted)
        return _Link(self, CONTROL, target_port).a

    def _partition(self) -> None:
        self.partitioned = True
        for link in list(self.hub.links):
            if link.proxy is self and link.channel == CONTROL:
                link.cut("partition")

    def _heal(self) -> None:
        self.partitioned = False

    def _release(self) -> None:
        for mirror in self.mirrors:
            if mirror.listener is not None:
                mirror.listener.close()
                mirror.listener = None

    def busy(self) -> bool:
        """True while bytes of this participant may still be on their way in: a connection
        waiting in a listener's backlog, accepted but not set up yet, or waiting for the
        coordinator."""
        if self.unmade > 0:
            return True
        if any(
            link.proxy is self and link.channel == CONTROL and link.connecting
            for link in self.hub.links
        ):
            return True
        socks = [listener.sock for listener in self._listeners if listener.sock.fileno() >= 0]
        try:
            return bool(select.select(socks, [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def follow(self, listening: set[int]) -> None:
        """Open or close each delivery port as its thread-B port listens or not."""
        for mirror in self.mirrors:
            if mirror.target in listening and mirror.listener is None:
                mirror.listener = self._open(mirror)
            elif mirror.target not in listening and mirror.listener is not None:
                mirror.listener.close()
                mirror.listener = None

    def _open(self, mirror: _Mirror) -> Optional[_Listener]:
        try:
            sock = _listen_socket(mirror.port)
        except OSError:
            return None
        return _Listener(self.hub, sock, lambda: _Link(self, DELIVERY, mirror.target).a)

    def close_listeners(self) -> list[asyncio.Task]:
        """Close every listener of this proxy; returns their start tasks (to await)."""
        listeners = [m.listener for m in self.mirrors if m.listener is not None]
        listeners += self._listeners
        self._release()
        for listener in self._listeners:
            listener.close()
        return [listener.task for listener in listeners]

    def control(self, kind: str, conn: int, data: bytes = b"") -> None:
        """Report a control event to the sink (a failing sink never breaks forwarding)."""
        try:
            self._on_control(kind, conn, data)
        except Exception:
            _log.exception("proxy: control sink failed on %s", kind)

    def outbound(self, conn: int, data: bytes) -> bytes:
        """Participant bytes on control connection `conn`: the bytes to forward."""
        with self._lock:
            watch = self._watch
            if watch is None or not watch.scanning or watch.port is None:
                return data
            found = locate_port(data, watch.port)
            if found is not None:
                watch = replace(watch, scanning=False)
            self._watch = watch
        if found is None:
            return data
        if isinstance(found, str):
            self._interpose_event(watch, None, reason=found)
            return data
        return self._interpose(watch, data, found)

    def _give_up_interpose(self, watch: InterposeWatch) -> None:
        if watch.scanning:
            self._interpose_event(watch, None, reason=NOT_FOUND)

    def _interpose(self, watch: InterposeWatch, data: bytes, match: PortMatch) -> bytes:
        assert watch.port is not None
        width = len(str(watch.port)) if match.encoding == "decimal" else 0
        mirror = self._mirror(width, watch.port)
        if mirror is None:
            self._interpose_event(watch, None, reason="no free proxy port")
            return data
        self._interpose_event(watch, mirror.port, encoding=match.encoding)
        return rewrite_port(data, match, mirror.port)

    def _mirror(self, width: int, target: int) -> Optional[_Mirror]:
        """A delivery port of `width` digits (0: any) standing for thread-B's port `target`,
        listening now if `target` does; None when `port_source` gives no usable port in three
        tries."""
        listening = target in self.hub.listening()
        for _ in range(3):
            try:
                port = self._port_source(width)
            except Exception:
                _log.exception("proxy: port_source(%d) failed", width)
                return None
            if not 0 < port <= 0xFFFF or (width and len(str(port)) != width):
                continue
            mirror = _Mirror(target, port)
            if listening:
                mirror.listener = self._open(mirror)
                if mirror.listener is None:
                    continue
            elif not bindable(port, HOST):
                continue
            self.mirrors.append(mirror)
            return mirror
        return None

    def _interpose_event(
        self,
        watch: InterposeWatch,
        proxy_port: Optional[int],
        *,
        encoding: str = "",
        reason: str = "",
    ) -> None:
        event: dict = {
            "type": "interpose",
            "participant": self.participant,
            "op": watch.op,
            "port": watch.port,
            "proxy_port": proxy_port,
        }
        if encoding:
            event["encoding"] = encoding
        if reason:
            event["reason"] = reason
        self.hub.emit(event)


class ProxyHub:
    """Owns one asyncio loop in one daemon thread for every proxy of a run. `start()` before
    `add_participant`; `close()` ends every listener and connection and joins the thread
    (bounded in time, idempotent). `listening()` gives the TCP ports listening on this machine
    now (the delivery ports follow it)."""

    def __init__(self, emit: Emit, listening: Optional[ListeningPorts] = None) -> None:
        self._emit = emit
        self.listening: ListeningPorts = listening or (lambda: set())
        self.loop = asyncio.new_event_loop()
        self.links: set[_Link] = set()  # loop thread only
        self.proxies: list[ParticipantProxy] = []
        self._tasks: set[asyncio.Task] = set()
        self._conns = itertools.count(1)
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def start(self) -> None:
        """Start the loop thread (and the task that keeps delivery ports mirroring)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="pams-proxy", daemon=True
        )
        self._thread.start()
        self.loop.call_soon_threadsafe(lambda: self.spawn(self._follow()))

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(MIRROR_POLL)
            if not any(proxy.mirrors for proxy in self.proxies):
                continue
            try:
                ports = self.listening()
            except Exception:
                _log.exception("proxy: cannot list listening ports")
                continue
            for proxy in self.proxies:
                proxy.follow(ports)

    def add_participant(
        self,
        participant: str,
        controls: list[tuple[int, int]],
        on_control: ControlSink,
        port_source: Callable[[int], int],
        rewrite_ports: bool,
    ) -> ParticipantProxy:
        """A proxy for `participant`: for each (listen_port, coordinator_port) of `controls`,
        127.0.0.1:listen_port forwards to the coordinator's port (bound and listening on return;
        OSError if a port is taken). Thread-safe."""
        if self._thread is None or self._closed:
            raise RuntimeError("ProxyHub is not running")
        proxy = ParticipantProxy(self, participant, on_control, port_source, rewrite_ports)
        socks: list[socket.socket] = []
        try:
            for listen_port, _ in controls:
                socks.append(_listen_socket(listen_port))
            pairs = list(zip(socks, [target for _, target in controls]))
            self.call(lambda: proxy.listen(pairs))
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        self.call(lambda: self.proxies.append(proxy))
        return proxy

    def barrier(self, proxy: ParticipantProxy, timeout: float = 1.0) -> None:
        """Return once the loop has read and passed on every byte that reached `proxy`'s
        sockets before this call (a few loop iterations, and no control connection still
        waiting for the coordinator), or after `timeout` s."""
        if threading.current_thread() is self._thread or self._closed:
            return
        done = threading.Event()
        deadline = time.monotonic() + timeout

        def hop(n: int) -> None:
            if time.monotonic() < deadline and proxy.busy():
                self.loop.call_soon(hop, 3)
            elif n > 0:
                self.loop.call_soon(hop, n - 1)
            else:
                done.set()

        try:
            self.loop.call_soon_threadsafe(hop, 3)
        except RuntimeError:  # the loop is closed
            return
        done.wait(timeout)

    def close(self) -> None:
        """Close every listener and connection (RST), stop the loop, join its thread."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(CALL_TIMEOUT)
            self.loop.call_soon_threadsafe(self.loop.stop)
            thread.join(CALL_TIMEOUT)
            if thread.is_alive():
                return  # a stuck callback: leave the daemon thread rather than hang
        self.loop.close()

    async def _shutdown(self) -> None:
        starts = [task for proxy in self.proxies for task in proxy.close_listeners()]
        await asyncio.gather(*starts, return_exceptions=True)
        for link in list(self.links):
            link.cut("shutdown")
        pending = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for _ in range(3):  # let the aborted transports run connection_lost and close sockets
            await asyncio.sleep(0)

    # loop thread helpers

    def next_conn(self) -> int:
        return next(self._conns)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run `coro` on the loop, kept until done (cancelled at close)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def emit(self, event: dict) -> None:
        """Record `event`; a failing recorder never breaks the forwarding."""
        try:
            self._emit(event)
        except Exception:
            _log.exception("proxy: cannot record %s event", event.get("type"))

    def call(self, fn: Callable[[], object]) -> object:
        """Run `fn` on the loop thread and return its result (bounded wait)."""
        if threading.current_thread() is self._thread:
            return fn()
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(CALL_TIMEOUT)

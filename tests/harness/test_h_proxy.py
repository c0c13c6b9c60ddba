"""The recording proxy (harness/proxy/hub.py) over real sockets on 127.0.0.1: forwarding and
recording, op completion, refusal, partition/heal, delivery-port interposition, shutdown; and
end to end in front of the real reference coordinator and participants."""

from __future__ import annotations

import base64
import itertools
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest

from harness.proxy.hub import (
    AMBIGUOUS,
    NOT_FOUND,
    ParticipantProxy,
    PortMatch,
    ProxyHub,
    locate_port,
)
from harness.running import opmachine as om
from harness.running.opmachine import OpMachine, Policy
from harness.running.procs import listening_ports
from tests.participant_driver import ParticipantDriver
from tests.procutil import (
    REPO,
    ProcessGroup,
    free_port,
    port_bindable,
    start_coordinator,
    wait_until,
)

WAIT = 5.0  # seconds for any single bounded wait


class Events:
    """A thread-safe in-memory recorder with the harness's emit signature."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def emit(self, event: dict) -> float:
        with self._lock:
            t = time.monotonic() - self._start
            self.items.append({**event, "t": t})
            return t

    def of(self, kind: str, **match: object) -> list[dict]:
        with self._lock:
            items = list(self.items)
        return [
            e for e in items if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        ]

    def stream(self, conn: int, direction: str) -> bytes:
        """The bytes recorded on `conn` in `direction`, concatenated in order."""
        wires = self.of("wire", conn=conn, dir=direction)
        return b"".join(base64.b64decode(e["data"]) for e in wires)


class Upstream:
    """A listening socket the test accepts from by hand (the coordinator or a thread-B)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(WAIT)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        conn.settimeout(WAIT)
        self.accepted.append(conn)
        return conn

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(WAIT)
        conn.close()
        return False

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


class Driven:
    """A participant proxy with the op-completion machine behind it, wired as the runner
    wires it: `arm` invokes an op; the machine's settlements land in `completed`, refused
    connections in `refused` (test-side stand-in for the runner, no process)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.machine = OpMachine(Policy(latency=60.0, op_timeout=60.0))
        self.lock = threading.Lock()
        self.proxy: Optional[ParticipantProxy] = None

    def control(self, kind: str, conn: int, data: bytes) -> None:
        event = om.control_event(kind, conn, data, time.monotonic())
        with self.lock:
            armed = self.machine.armed
            if kind == "refused" and armed is not None and not armed.refused_connect:
                self.harness.refused.append(armed.op)
            for action in self.machine.handle(event):
                if isinstance(action, om.Settle):
                    self.harness.completed.append(action.op)
                    assert self.proxy is not None
                    self.proxy.disarm(action.op)

    def arm(self, op: int, f: str, port: Optional[int] = None) -> None:
        with self.lock:
            self.machine.handle(om.Invoke(op, f, time.monotonic()))
        assert self.proxy is not None
        self.proxy.arm(op, f, port)

    def disarm(self, op: int) -> None:
        with self.lock:
            self.machine.armed = None
        assert self.proxy is not None
        self.proxy.disarm(op)

    def __getattr__(self, name: str) -> object:
        return getattr(self.proxy, name)


class Harness:
    """A hub, its events, and what each proxy's callbacks reported."""

    def __init__(self) -> None:
        self.events = Events()
        self.hub = ProxyHub(self.events.emit, listening=listening_ports)
        self.hub.start()
        self.completed: list[int] = []
        self.refused: list[int] = []
        self.ports: list[int] = []

    def port_source(self, width: int) -> int:
        port = free_port_of_width(width)
        self.ports.append(port)
        return port

    def proxy(
        self, coordinator: int, participant: str = "1", rewrite: bool = True
    ) -> tuple[Driven, int]:
        listen = free_port()
        driven = Driven(self)
        driven.proxy = self.hub.add_participant(
            participant, [(listen, coordinator)], driven.control, self.port_source, rewrite
        )
        return driven, listen


def free_port_of_width(width: int) -> int:
    """A free port with `width` decimal digits (0: any)."""
    if width in (0, 5):
        while True:
            port = free_port()
            if width == 0 or port >= 10000:
                return port
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, 10 ** (width - 1)), 10**width)
        if port_bindable(port):
            return port
    raise AssertionError(f"no free {width}-digit port")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return data


def recv_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def sees_failure(sock: socket.socket) -> bool:
    """True when the peer reset or closed the connection (what a refused connect looks like
    to a client whose connect was accepted by the proxy)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def refused_at_once(port: int, data: bytes) -> bool:
    """Connect to `port` and send `data`: True when the connection fails (reset at connect,
    send or receive, or closed without a byte), as a refused connection does."""
    try:
        with connect(port) as sock:
            sock.sendall(data)
            return sees_failure(sock)
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
        return True


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.hub.close()


@pytest.fixture
def coordinator() -> Iterator[Upstream]:
    upstream = Upstream()
    try:
        yield upstream
    finally:
        upstream.close()


# --- pure port location -----------------------------------------------------------------------


def test_locate_port_prefers_decimal_and_is_conservative_with_binary() -> None:
    assert locate_port(b"REGISTER 1 127.0.0.1 41001\n", 41001) == PortMatch("decimal", 21, 26)
    assert locate_port(b"REGISTER 1 127.0.0.1 410012\n", 41001) is None  # adjacent digits
    assert locate_port(b"R 41001 41001\n", 41001) == AMBIGUOUS
    # "OK" is 0x4F4B = 20299 big-endian: pure text is never searched for binary ports
    assert locate_port(b"REGISTER OK\n", 20299) is None
    assert locate_port(b"\x01" + struct.pack(">H", 20299), 20299) == PortMatch("be16", 1, 3)
    assert locate_port(b"\x01" + struct.pack(">I", 20299), 20299) == PortMatch("be32", 1, 5)
    twice = b"\x01" + struct.pack(">H", 20299) * 2
    assert locate_port(twice, 20299) == AMBIGUOUS
    # a decimal match wins over a binary one
    both = b"\x00 20299 " + struct.pack(">H", 20299)
    assert locate_port(both, 20299) == PortMatch("decimal", 2, 7)


# --- forwarding and recording -----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_bytes_forwarded_unchanged_and_recorded_per_connection(
    h: Harness, coordinator: Upstream
) -> None:
    _, listen = h.proxy(coordinator.port)
    payload = bytes(range(256)) * 1024  # 256 KiB of every byte value: flow control both ways
    conns = []
    for round_ in range(2):
        client = connect(listen)
        server = coordinator.accept()
        sender = threading.Thread(target=client.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(server, len(payload)) == payload
        sender.join(WAIT)
        client.sendall(b"tail %d" % round_)
        client.shutdown(socket.SHUT_WR)  # half-close: the reply direction stays open
        assert recv_all(server) == b"tail %d" % round_
        server.sendall(b"reply after half-close")
        server.sendall(b"\x00\xff")
        server.close()
        assert recv_all(client) == b"reply after half-close\x00\xff"
        client.close()
        conns.append((payload + b"tail %d" % round_, b"reply after half-close\x00\xff"))

    wait_until(lambda: len(h.events.of("wire_close")) == 4, WAIT, "two closes per connection")
    ids = sorted({e["conn"] for e in h.events.of("wire")})
    assert len(ids) == 2 and ids[0] < ids[1]
    for conn, (up, down) in zip(ids, conns):
        assert h.events.stream(conn, "to_coordinator") == up
        assert h.events.stream(conn, "to_participant") == down
        closes = h.events.of("wire_close", conn=conn)
        assert [(e["by"], e["reason"]) for e in closes] == [
            ("participant", "eof"),
            ("coordinator", "eof"),
        ]
    assert {(e["participant"], e["channel"]) for e in h.events.of("wire")} == {("1", "control")}


@pytest.mark.timeout(20)
def test_request_and_half_close_before_the_coordinator_accepts(
    h: Harness, coordinator: Upstream
) -> None:
    proxy, listen = h.proxy(coordinator.port)
    proxy.arm(1, "msend")
    client = connect(listen)
    client.sendall(b"MSEND 1 x\n")
    client.shutdown(socket.SHUT_WR)  # all of it may arrive before the proxy's own connect is up
    server = coordinator.accept()
    assert recv_all(server) == b"MSEND 1 x\n"
    server.sendall(b"OK\n")
    server.close()
    assert recv_all(client) == b"OK\n"
    assert h.completed == [1]
    wait_until(lambda: len(h.events.of("wire_close")) == 2, WAIT, "both ends closed")
    assert [e["by"] for e in h.events.of("wire_close")] == ["participant", "coordinator"]


@pytest.mark.timeout(20)
def test_a_failing_recorder_never_breaks_forwarding(coordinator: Upstream) -> None:
    def broken(event: dict) -> float:
        raise OSError("disk full")

    completed: list[int] = []
    hub = ProxyHub(broken)
    hub.start()
    try:
        listen = free_port()

        def sink(kind: str, conn: int, data: bytes) -> None:
            if kind in ("reply", "close") and not completed:
                completed.append(1)

        proxy = hub.add_participant(
            "1", [(listen, coordinator.port)], sink, free_port_of_width, True
        )
        proxy.arm(1, "msend")
        client = connect(listen)
        server = coordinator.accept()
        client.sendall(b"MSEND 1 x\n")
        assert recv_exactly(server, 10) == b"MSEND 1 x\n"
        server.sendall(b"OK\n")
        server.close()
        assert recv_all(client) == b"OK\n"
        assert completed == [1]
    finally:
        hub.close()


# --- op completion --------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_completion_by_first_reply_byte_exactly_once(h: Harness, coordinator: Upstream) -> None:
    proxy, listen = h.proxy(coordinator.port)
    proxy.arm(1, "msend")
    client = connect(listen)
    server = coordinator.accept()
    client.sendall(b"MSEND 1 M00000001\n")
    assert recv_exactly(server, 18) == b"MSEND 1 M00000001\n"
    assert h.completed == []  # sent, but nothing came back yet
    server.sendall(b"O")
    assert client.recv(1) == b"O"  # the proxy decides before forwarding
    assert h.completed == [1]
    server.sendall(b"K\n")
    server.close()
    assert recv_all(client) == b"K\n"
    client.close()
    wait_until(lambda: len(h.events.of("wire_close")) == 2, WAIT, "closes")
    assert h.completed == [1]


@pytest.mark.timeout(20)
def test_completion_by_coordinator_close_without_reply(h: Harness, coordinator: Upstream) -> None:
    proxy, listen = h.proxy(coordinator.port)
    proxy.arm(2, "disconnect")
    client = connect(listen)
    server = coordinator.accept()
    client.sendall(b"DISCONNECT 1\n")
    assert recv_exactly(server, 13) == b"DISCONNECT 1\n"
    server.close()
    assert recv_all(client) == b""
    assert h.completed == [2]


@pytest.mark.timeout(20)
def test_completion_on_persistent_connection_opened_before_arming(
    h: Harness, coordinator: Upstream
) -> None:
    proxy, listen = h.proxy(coordinator.port)
    client = connect(listen)
    server = coordinator.accept()
    client.sendall(b"HELLO\n")  # not armed: nothing to complete
    assert recv_exactly(server, 6) == b"HELLO\n"
    server.sendall(b"WELCOME\n")
    assert recv_exactly(client, 8) == b"WELCOME\n"
    proxy.arm(7, "register", None)
    client.sendall(b"REGISTER\n")
    assert recv_exactly(server, 9) == b"REGISTER\n"
    server.sendall(b"OK\n")
    assert recv_exactly(client, 3) == b"OK\n"
    assert h.completed == [7]


@pytest.mark.timeout(20)
def test_bytes_on_a_connection_that_sent_nothing_after_arming_do_not_complete(
    h: Harness, coordinator: Upstream
) -> None:
    proxy, listen = h.proxy(coordinator.port)
    idle = connect(listen)
    idle_server = coordinator.accept()
    idle.sendall(b"SUBSCRIBE\n")
    assert recv_exactly(idle_server, 10) == b"SUBSCRIBE\n"
    proxy.arm(3, "msend")
    idle_server.sendall(b"PUSH 1\n")  # before the op was sent
    assert recv_exactly(idle, 7) == b"PUSH 1\n"
    request = connect(listen)
    server = coordinator.accept()
    request.sendall(b"MSEND 1 x\n")
    assert recv_exactly(server, 10) == b"MSEND 1 x\n"
    idle_server.sendall(b"PUSH 2\n")  # after the op was sent, but on the idle connection
    assert recv_exactly(idle, 7) == b"PUSH 2\n"
    idle_server.close()
    assert recv_all(idle) == b""
    assert h.completed == []
    server.sendall(b"OK\n")
    assert recv_exactly(request, 3) == b"OK\n"
    assert h.completed == [3]


@pytest.mark.timeout(20)
def test_disarmed_op_is_not_completed(h: Harness, coordinator: Upstream) -> None:
    proxy, listen = h.proxy(coordinator.port)
    proxy.arm(4, "msend")
    client = connect(listen)
    server = coordinator.accept()
    client.sendall(b"MSEND 1 x\n")
    assert recv_exactly(server, 10) == b"MSEND 1 x\n"
    proxy.disarm(4)
    server.sendall(b"OK\n")
    server.close()
    assert recv_all(client) == b"OK\n"
    assert h.completed == []


# --- refusal and partition ------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_refused_coordinator_resets_the_participant(h: Harness) -> None:
    proxy, listen = h.proxy(free_port())  # nothing listens there
    proxy.arm(5, "msend")
    assert refused_at_once(listen, b"MSEND 1 x\n")
    closes = h.events.of("wire_close")
    assert len(closes) == 1 and closes[0]["by"] == "coordinator"
    assert closes[0]["reason"].startswith("refused")
    assert h.events.of("wire") == []  # nothing reached a coordinator
    assert h.refused == [5] and h.completed == []


@pytest.mark.timeout(20)
def test_partition_resets_open_refuses_new_and_heal_restores(
    h: Harness, coordinator: Upstream
) -> None:
    proxy, listen = h.proxy(coordinator.port)
    client = connect(listen)
    server = coordinator.accept()
    client.sendall(b"PING\n")
    assert recv_exactly(server, 5) == b"PING\n"
    proxy.arm(6, "msend")
    proxy.partition()
    assert sees_failure(client)
    assert sees_failure(server)
    assert refused_at_once(listen, b"MSEND 1 x\n")
    assert coordinator.nothing_pending()  # the refused connection never reached it
    assert h.refused == [6] and h.completed == []
    cuts = h.events.of("wire_close", by="harness", reason="partition")
    assert len(cuts) == 2 and cuts[0]["conn"] < cuts[1]["conn"]

    proxy.heal()
    again = connect(listen)
    again_server = coordinator.accept()
    again.sendall(b"MSEND 1 x\n")
    assert recv_exactly(again_server, 10) == b"MSEND 1 x\n"
    again_server.sendall(b"OK\n")
    assert recv_exactly(again, 3) == b"OK\n"
    assert h.completed == [6]


# --- delivery interposition -----------------------------------------------------------------


def _interposed_register(
    h: Harness,
    coordinator: Upstream,
    thread_b: Upstream,
    request: Callable[[int], bytes],
    op: int = 1,
) -> tuple[ParticipantProxy, bytes, int]:
    """Arm a register for thread_b's port, send `request(port)`; return the proxy, the bytes the
    coordinator got, and the proxy port Q they advertise."""
    proxy, listen = h.proxy(coordinator.port)
    proxy.arm(op, "register", thread_b.port)
    client = connect(listen)
    server = coordinator.accept()
    sent = request(thread_b.port)
    client.sendall(sent)
    got = recv_exactly(server, len(sent))
    server.sendall(b"OK\n")
    server.close()
    assert recv_all(client) == b"OK\n"
    assert h.completed == [op]
    (event,) = h.events.of("interpose")  # decided at the latest when the op completed
    assert event["participant"] == "1" and event["op"] == op and event["port"] == thread_b.port
    return proxy, got, event["proxy_port"]


def _delivery_reaches_thread_b(h: Harness, q: int, thread_b: Upstream) -> None:
    coordinator_side = connect(q)
    participant_side = thread_b.accept()
    coordinator_side.sendall(b"MSG 1 1 M00000001\n")
    assert recv_exactly(participant_side, 18) == b"MSG 1 1 M00000001\n"
    participant_side.sendall(b"ACK 1\n")
    assert recv_exactly(coordinator_side, 6) == b"ACK 1\n"
    (conn,) = {e["conn"] for e in h.events.of("wire", channel="delivery")}
    assert h.events.stream(conn, "to_participant") == b"MSG 1 1 M00000001\n"
    assert h.events.stream(conn, "to_coordinator") == b"ACK 1\n"
    coordinator_side.close()
    participant_side.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("width", [5, 4])
def test_decimal_port_rewritten_and_delivery_recorded(
    h: Harness, coordinator: Upstream, width: int
) -> None:
    thread_b = Upstream(free_port_of_width(width))
    try:
        proxy, got, q = _interposed_register(
            h, coordinator, thread_b, lambda p: b"REGISTER 1 127.0.0.1 %d\n" % p
        )
        assert got == b"REGISTER 1 127.0.0.1 %d\n" % q
        assert len(str(q)) == width and q != thread_b.port
        (event,) = h.events.of("interpose")
        assert event["encoding"] == "decimal"
        (wire,) = h.events.of("wire", dir="to_coordinator")
        assert base64.b64decode(wire["data"]) == b"REGISTER 1 127.0.0.1 %d\n" % thread_b.port
        assert base64.b64decode(wire["rewritten"]) == got
        _delivery_reaches_thread_b(h, q, thread_b)
        proxy.release_delivery_ports()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", q), timeout=WAIT)
    finally:
        thread_b.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("be16", lambda p: b"\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", p)),
        ("be32", lambda p: b"\x02" + struct.pack(">II", 1, p) + b"\x00end"),
    ],
)
def test_binary_port_rewritten(
    h: Harness, coordinator: Upstream, encoding: str, pack: Callable[[int], bytes]
) -> None:
    thread_b = Upstream()
    try:
        _, got, q = _interposed_register(h, coordinator, thread_b, pack)
        assert got == pack(q)
        assert h.events.of("interpose")[0]["encoding"] == encoding
        _delivery_reaches_thread_b(h, q, thread_b)
    finally:
        thread_b.close()


@pytest.mark.timeout(20)
def test_port_in_a_later_chunk_of_the_request_is_rewritten(
    h: Harness, coordinator: Upstream
) -> None:
    thread_b = Upstream()
    try:
        proxy, listen = h.proxy(coordinator.port)
        proxy.arm(1, "reconnect", thread_b.port)
        client = connect(listen)
        server = coordinator.accept()
        head = b"\x00\x09RECONNECT"  # like Java's writeUTF, then writeInt(port) on its own
        client.sendall(head)
        assert recv_exactly(server, len(head)) == head
        client.sendall(struct.pack(">I", thread_b.port))
        (q,) = struct.unpack(">I", recv_exactly(server, 4))
        (event,) = h.events.of("interpose")
        assert event["encoding"] == "be32" and event["proxy_port"] == q != thread_b.port
        _delivery_reaches_thread_b(h, q, thread_b)
    finally:
        thread_b.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("request_for", "reason"),
    [
        (lambda p: b"REGISTER 1 127.0.0.1 %d %d\n" % (p, p), AMBIGUOUS),
        (lambda p: b"REGISTER 1 127.0.0.1 %d7\n" % p, NOT_FOUND),
        (lambda p: b"REGISTER 1 127.0.0.1\n", NOT_FOUND),
    ],
)
def test_unlocatable_port_forwarded_unchanged(
    h: Harness,
    coordinator: Upstream,
    request_for: Callable[[int], bytes],
    reason: str,
) -> None:
    thread_b = Upstream()
    try:
        _, got, q = _interposed_register(h, coordinator, thread_b, request_for)
        assert got == request_for(thread_b.port)
        assert q is None and h.events.of("interpose")[0]["reason"] == reason
        assert h.ports == []  # no proxy port was even taken
    finally:
        thread_b.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("f", "rewrite"), [("msend", True), ("register", False)])
def test_no_interposition_outside_register_reconnect_or_when_disabled(
    h: Harness, coordinator: Upstream, f: str, rewrite: bool
) -> None:
    proxy, listen = h.proxy(coordinator.port, rewrite=rewrite)
    proxy.arm(1, f, 41001)
    client = connect(listen)
    server = coordinator.accept()
    client.sendall(b"MSEND 1 41001\n")
    assert recv_exactly(server, 14) == b"MSEND 1 41001\n"
    server.sendall(b"OK\n")
    assert recv_exactly(client, 3) == b"OK\n"
    assert h.completed == [1]
    assert h.events.of("interpose") == [] and h.ports == []


@pytest.mark.timeout(20)
def test_refused_thread_b_resets_the_coordinator(h: Harness, coordinator: Upstream) -> None:
    thread_b = Upstream()
    _, _, q = _interposed_register(
        h, coordinator, thread_b, lambda p: b"REGISTER 1 127.0.0.1 %d\n" % p
    )
    thread_b.close()  # thread-B released its port
    assert refused_at_once(q, b"MSG 1 1 M00000001\n")
    (close,) = h.events.of("wire_close", channel="delivery")
    assert close["by"] == "participant" and close["reason"].startswith("refused")
    assert h.refused == []  # delivery refusals are not control refusals


# --- hub lifecycle and scale ----------------------------------------------------------------


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pams-proxy"]


@pytest.mark.timeout(20)
def test_close_releases_every_port_and_thread(coordinator: Upstream) -> None:
    before = set(threading.enumerate())
    h = Harness()
    thread_b = Upstream()
    try:
        proxy, q_listen = h.proxy(coordinator.port)
        _, listen = h.proxy(coordinator.port, participant="2")
        proxy.arm(1, "register", thread_b.port)
        client = connect(q_listen)
        server = coordinator.accept()
        client.sendall(b"REGISTER 1 127.0.0.1 %d\n" % thread_b.port)
        recv_exactly(server, 10)
        wait_until(lambda: h.events.of("interpose"), WAIT, "interposition")
        q = h.events.of("interpose")[0]["proxy_port"]
        assert q is not None
        started = time.monotonic()
        h.hub.close()
        h.hub.close()  # idempotent
        assert time.monotonic() - started < 5.0
        assert sees_failure(client)  # open connections were reset
        for port in (q_listen, listen, q):
            assert port_bindable(port), f"port {port} still bound after close()"
        assert _proxy_threads() == []
        assert set(threading.enumerate()) <= before
        with pytest.raises(RuntimeError):
            h.proxy(coordinator.port)
    finally:
        thread_b.close()


class ReplyServer:
    """A threaded coordinator stand-in: reads one line, replies `OK <line>`, closes."""

    def __init__(self) -> None:
        self.upstream = Upstream()
        self.port = self.upstream.port
        self.upstream.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.upstream.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(WAIT)
                line = b""
                while not line.endswith(b"\n"):
                    chunk = conn.recv(100)
                    if not chunk:
                        break
                    line += chunk
                conn.sendall(b"OK " + line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.upstream.close()


@pytest.mark.timeout(30)
def test_twenty_proxies_in_one_hub(h: Harness) -> None:
    reply = ReplyServer()
    try:
        proxies = [h.proxy(reply.port, participant=str(i)) for i in range(1, 21)]
        results: dict[int, bytes] = {}

        def client(index: int, proxy: ParticipantProxy, listen: int) -> None:
            for round_ in range(3):
                op = index * 100 + round_
                proxy.arm(op, "msend")
                with connect(listen) as sock:
                    sock.sendall(b"MSEND %d %d\n" % (index, op))
                    results[op] = recv_all(sock)

        threads = [
            threading.Thread(target=client, args=(i, p, port))
            for i, (p, port) in enumerate(proxies, 1)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        ops = sorted(results)
        assert len(ops) == 60
        assert all(results[op] == b"OK MSEND %d %d\n" % (op // 100, op) for op in ops)
        assert sorted(h.completed) == ops
        conns = {(e["conn"], e["participant"]) for e in h.events.of("wire")}
        assert len(conns) == 60 and len({c for c, _ in conns}) == 60
        for conn, participant in conns:
            up = h.events.stream(conn, "to_coordinator")
            assert up.startswith(b"MSEND %s " % participant.encode())
    finally:
        reply.close()


# --- end to end with the reference ----------------------------------------------------------


class Runner:
    """The runner's side of op completion for one reference participant behind a proxy."""

    ops = itertools.count(1)  # op ids are unique across participants, as in a trace

    def __init__(self, h: Harness, proxy: ParticipantProxy, driver: ParticipantDriver) -> None:
        self.h = h
        self.proxy = proxy
        self.driver = driver

    def do(self, line: str, f: str, port: Optional[int] = None) -> None:
        op = next(self.ops)
        self.proxy.arm(op, f, port)
        self.driver.ok(line)  # the participant printed its reply: the proxy saw it first
        assert self.h.completed[-1:] == [op], f"{line!r}: completions {self.h.completed}"


@pytest.mark.process
@pytest.mark.timeout(60)
def test_reference_end_to_end_through_proxies(
    h: Harness, procs: ProcessGroup, tmp_path: Path
) -> None:
    _, coordinator_port = start_coordinator(procs, tmp_path / "coordinator", td=5)
    runners = []
    for pid in ("1", "2"):
        proxy, listen = h.proxy(coordinator_port, participant=pid)
        driver = ParticipantDriver.create(procs, tmp_path / f"p{pid}", pid, listen)
        runners.append(Runner(h, proxy, driver))
    one, two = runners
    port_one, port_two = free_port(), free_port()
    one.do(f"register {port_one}", "register", port_one)
    two.do(f"register {port_two}", "register", port_two)
    one.do("msend M00000001", "msend")
    one.driver.wait_log(["M00000001"])
    two.driver.wait_log(["M00000001"])

    two.do("disconnect", "disconnect")
    two.proxy.release_delivery_ports()
    one.do("msend M00000002", "msend")
    port_two = free_port()
    two.do(f"reconnect {port_two}", "reconnect", port_two)
    one.driver.wait_log(["M00000001", "M00000002"])
    two.driver.wait_log(["M00000001", "M00000002"])

    interposed = h.events.of("interpose")
    assert [(e["participant"], e["encoding"]) for e in interposed] == [
        ("1", "decimal"),
        ("2", "decimal"),
        ("2", "decimal"),
    ]
    for pid in ("1", "2"):
        delivery = h.events.of("wire", participant=pid, channel="delivery")
        conns = {e["conn"] for e in delivery}
        down = b"".join(h.events.stream(c, "to_participant") for c in sorted(conns))
        up = b"".join(h.events.stream(c, "to_coordinator") for c in sorted(conns))
        assert b"MSG " in down and b" M00000001\n" in down and b" M00000002\n" in down
        assert up.startswith(b"ACK ")
    control = h.events.of("wire", participant="1", channel="control", dir="to_coordinator")
    assert any(base64.b64decode(e["data"]).startswith(b"MSEND 1 M00000002") for e in control)
    assert len(h.completed) == 6 == len(set(h.completed))

    # partitioned: the real participant's msend fails, its delivery path stays up
    one.proxy.partition()
    op = next(Runner.ops)
    one.proxy.arm(op, "msend")
    assert one.driver.command("msend M00000003").startswith("error msend")
    assert h.refused == [op] and op not in h.completed
    two.do("msend M00000004", "msend")
    one.driver.wait_log(["M00000001", "M00000002", "M00000004"])
    one.proxy.heal()
    one.do("msend M00000005", "msend")
    two.driver.wait_log(["M00000001", "M00000002", "M00000004", "M00000005"])


# --- benchmark smoke ------------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(60)
def test_proxybench_reports_figures_for_every_mode() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.proxy", "--ops", "30", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {
        "direct",
        "proxy",
        "proxy_json_file",
        "overhead_proxy",
        "overhead_proxy_json_file",
    }
    for mode in ("direct", "proxy", "proxy_json_file"):
        assert 0 < figures[mode]["median_ms"] <= figures[mode]["p99_ms"]
    bad = subprocess.run(
        [sys.executable, "-m", "benchmarks.proxy", "--ops", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert bad.returncode == 2 and "--ops must be at least 1" in bad.stderr


def _listens_within(port: int, want: bool, seconds: float) -> bool:
    """True once `port` is (want) or is not (not want) listening, within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (port in listening_ports()) == want:
            return True
        time.sleep(0.005)
    return False


@pytest.mark.timeout(20)
def test_a_delivery_port_listens_exactly_while_thread_b_does(
    h: Harness, coordinator: Upstream
) -> None:
    """Transparency: the coordinator meets at Q what it would meet at thread-B's port P:
    refused while P does not listen (whatever the participant's state), accepted again when
    P listens again, and never closed by a disconnect."""
    port = free_port_of_width(5)
    thread_b = Upstream(port)
    _, _, q = _interposed_register(
        h, coordinator, thread_b, lambda p: b"REGISTER 1 127.0.0.1 %d\n" % p
    )
    _delivery_reaches_thread_b(h, q, thread_b)
    thread_b.close()
    assert _listens_within(q, False, 2.0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", q), timeout=WAIT)
    again = Upstream(port)
    try:
        assert _listens_within(q, True, 2.0)
        coordinator_side = connect(q)
        participant_side = again.accept()
        coordinator_side.sendall(b"MSG 2 1 M00000002\n")
        assert recv_exactly(participant_side, 18) == b"MSG 2 1 M00000002\n"
        coordinator_side.close()
        participant_side.close()
    finally:
        again.close()

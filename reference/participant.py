"""The reference participant: `python -m reference.participant CONFIG`.

Thread-A (the main thread) reads commands from stdin and prints one reply line per command;
thread-B (`Receiver`) listens while online, logs each delivered message and acknowledges it.
The decisions live in `reference.participant_state`; this module only does the I/O.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any, Optional, TextIO

from reference.config import ConfigError, ParticipantConfig, load_participant_config
from reference.participant_state import (
    Command,
    Lost,
    Outcome,
    Reply,
    State,
    Unsent,
    ack_line,
    error,
    parse_reply,
    plan,
    releases_port,
    request_line,
    settle,
    take_deliveries,
)
from reference.wire import MAX_LINE, quote

TIMEOUT = 5.0  # seconds, for the control connection's connect and for its reply
_RST_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0 s}: close() sends RST, no TIME_WAIT
# Linux applies SO_SNDTIMEO to connect() too, so a blocking socket with kernel timeouts does
# what socket.settimeout() does without a poll() before every call; elsewhere settimeout().
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_TIMEVAL = struct.pack("ll", int(TIMEOUT), int(TIMEOUT % 1 * 1_000_000))
_ADDRESSES: dict[tuple[str, int], list[tuple[Any, ...]]] = {}  # getaddrinfo, once per address


def _reason(exc: OSError) -> str:
    if isinstance(exc, (socket.timeout, BlockingIOError)):  # BlockingIOError: a kernel timeout
        return "timed out"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def set_timeouts(sock: socket.socket) -> None:
    """Make every connect, send and recv on `sock` give up after TIMEOUT."""
    if not _KERNEL_TIMEOUTS:
        sock.settimeout(TIMEOUT)
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL)


def connect(host: str, port: int) -> socket.socket:
    """A TCP connection to host:port (each address it resolves to in turn, as
    `socket.create_connection` does; resolved once), with `set_timeouts`; OSError if none."""
    addresses = _ADDRESSES.get((host, port))
    if addresses is None:
        addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        _ADDRESSES[(host, port)] = addresses
    failure: Optional[OSError] = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            set_timeouts(sock)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        return sock
    raise failure or OSError(f"no address for {host}")


class DeliveryLog:
    """The message log, opened for append; every `append` reaches the file with one write."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, path: Path) -> DeliveryLog:
        """Open (creating if needed) `path`, relative to the working directory, for append."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        return cls(os.open(path, flags, 0o644))

    def append(self, data: bytes) -> None:
        """Write `data` at the end of the file (unbuffered: nothing is left in memory)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        os.close(self._fd)


def _close_with_reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
    sock.close()


class Receiver:
    """Thread-B for one online period: accepts delivery connections on its port, logs each new
    message, acks cumulatively; `stop()` returns once the port is released and the thread ended."""

    def __init__(self, listener: socket.socket, log: DeliveryLog, last_seq: int) -> None:
        self.last_seq = last_seq
        self._listener = listener
        self._log = log
        self._wake_r, self._wake_w = socket.socketpair()
        self._buffers: dict[socket.socket, bytes] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "stop")
        self._thread = threading.Thread(target=self._run, name="thread-B", daemon=True)
        self._thread.start()

    @classmethod
    def listen(cls, port: int, log: DeliveryLog, last_seq: int) -> Receiver:
        """Bind and listen on `port` (all interfaces), then start the thread; OSError if not."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("", port))
            listener.listen(16)
        except OSError:
            listener.close()
            raise
        return cls(listener, log, last_seq)

    def stop(self) -> None:
        """Stop thread-B and close every socket it had (delivery sockets with RST)."""
        with contextlib.suppress(OSError):  # thread-B may already have ended (and closed _wake_r)
            self._wake_w.send(b"x")
        self._thread.join()
        self._wake_w.close()

    def _run(self) -> None:
        try:
            while self._serve_once():
                pass
        finally:
            for conn in list(self._buffers):
                _close_with_reset(conn)
            self._selector.close()
            self._listener.close()
            self._wake_r.close()

    def _serve_once(self) -> bool:
        for key, _ in self._selector.select():
            if key.data == "stop":
                return False
            if key.data == "accept":
                self._accept()
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]
        return True

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        set_timeouts(conn)
        self._buffers[conn] = b""
        self._selector.register(conn, selectors.EVENT_READ, "conn")

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._buffers[conn]
        _close_with_reset(conn)

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        batch = take_deliveries(self._buffers[conn] + data, self.last_seq)
        for line in batch.bad_lines:
            print(f"participant: ignored malformed delivery line {quote(line)}", file=sys.stderr)
        try:
            if batch.to_log:
                self._log.append(batch.to_log)
            self.last_seq = batch.last_seq
            if batch.ack is not None:
                conn.sendall(ack_line(batch.ack))
        except OSError as exc:
            print(f"participant: delivery channel dropped: {_reason(exc)}", file=sys.stderr)
            self._drop(conn)
            return
        if len(batch.rest) > MAX_LINE:
            print("participant: delivery line too long, channel dropped", file=sys.stderr)
            self._drop(conn)
            return
        self._buffers[conn] = batch.rest


def _read_reply(sock: socket.socket) -> Outcome:
    data = b""
    while b"\n" not in data and len(data) <= MAX_LINE:
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO ran out
            return Lost(f"no reply from coordinator within {TIMEOUT:g}s")
        except OSError as exc:
            return Lost(f"connection to coordinator lost: {_reason(exc)}")
        if not chunk:
            break
        data += chunk
    if not data.strip():
        return Lost("coordinator closed the connection without replying")
    return parse_reply(data.split(b"\n", 1)[0].decode("ascii", "replace"))


def send_request(config: ParticipantConfig, command: Command) -> Outcome:
    """One control request on its own connection: connect, send one line, read one reply."""
    try:
        sock = connect(config.coordinator_host, config.coordinator_port)
    except OSError as exc:
        return Unsent(f"coordinator unreachable: {_reason(exc)}")
    with sock:
        host = sock.getsockname()[0] if command.listens else ""  # only register/reconnect say
        line = request_line(config.participant_id, command, host)
        try:
            sock.sendall(line.encode("ascii"))
        except OSError as exc:
            return Lost(f"connection to coordinator lost: {_reason(exc)}")
        return _read_reply(sock)


class Participant:
    """Thread-A's command loop state: the local membership state and thread-B while online."""

    def __init__(self, config: ParticipantConfig, log: DeliveryLog) -> None:
        self.config = config
        self.state = State.UNKNOWN
        self._log = log
        self._receiver: Optional[Receiver] = None
        self._last_seq = 0

    def handle(self, line: str) -> Optional[str]:
        """Carry out one stdin line and return its reply line (None for a blank line)."""
        step = plan(self.state, line)
        if step is None or isinstance(step, Reply):
            return step.line if step else None
        if step.verb == "quit":
            return "ok quit"
        if step.listens:
            self.stop_receiver()  # one kept after a register/reconnect whose reply was lost
            failure = self._start_receiver(step)
            if failure:
                return failure
        outcome = send_request(self.config, step)
        self.state, reply = settle(self.state, step, outcome)
        if releases_port(step, outcome, self.state):
            self.stop_receiver()
        return reply

    def _start_receiver(self, command: Command) -> Optional[str]:
        assert command.port is not None
        if command.verb == "register":
            self._last_seq = 0  # a new entrant: sequence numbers start afresh
        try:
            self._receiver = Receiver.listen(command.port, self._log, self._last_seq)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return error(command.verb, f"port {command.port} in use")
            return error(command.verb, f"cannot listen on port {command.port}: {_reason(exc)}")
        return None

    def stop_receiver(self) -> None:
        """Release thread-B's port and end thread-B (no-op when not listening)."""
        if self._receiver is not None:
            self._receiver.stop()
            self._last_seq = self._receiver.last_seq
            self._receiver = None


def _emit(out: TextIO, line: str) -> None:
    try:
        out.write(line + "\n")
        out.flush()
    except (OSError, ValueError):
        pass  # nobody reads our stdout any more; keep serving commands


def run(config: ParticipantConfig, log: DeliveryLog, stdin: TextIO, out: TextIO) -> None:
    """Serve stdin commands until `quit` or EOF, then release everything."""
    participant = Participant(config, log)
    try:
        for raw in iter(stdin.buffer.readline, b""):
            reply = participant.handle(raw.decode("utf-8", "replace"))
            if reply is not None:
                _emit(out, reply)
            if reply == "ok quit":
                break
    except KeyboardInterrupt:
        pass
    finally:
        participant.stop_receiver()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; exit 0 on quit/EOF, 2 on a bad command line, config or log file."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("participant: usage: python -m reference.participant CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_participant_config(args[0])
    except ConfigError as exc:
        print(f"participant: {exc}", file=sys.stderr)
        return 2
    try:
        log = DeliveryLog.open(config.log_path)
    except OSError as exc:
        print(
            f"participant: {config.log_path}: cannot open log file: {_reason(exc)}", file=sys.stderr
        )
        return 2
    try:
        run(config, log, sys.stdin, sys.stdout)
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Raw-socket stand-ins for participants, shared by the fuzz and memory tests of the reference
coordinator: one-line control requests, and thread-B listeners that record seqs and ACK."""

from __future__ import annotations

import contextlib
import select
import socket
import threading


def request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a new connection and return everything the coordinator answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_to_eof(sock)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything `sock` receives until the peer closes (or resets) it."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def ok(port: int, line: str) -> str:
    reply = request(port, line.encode() + b"\n").decode()
    assert reply.startswith("OK") and reply.endswith("\n") and reply.count("\n") == 1, (
        f"{line[:80]!r} -> {reply!r}"
    )
    return reply.strip()


class Listener:
    """Thread-B stand-in: accepts delivery channels, records (seq, sender, len(text)) per MSG
    line, and acks cumulatively unless `ack` is False (it still reads everything)."""

    def __init__(self, ack: bool = True) -> None:
        self.ack = ack
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.seqs: list[int] = []
        self.eofs = 0
        self.lock = threading.Lock()
        self.closed = False
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def got(self) -> list[int]:
        with self.lock:
            return list(self.seqs)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.05)
                if not ready:
                    continue
                conn, _ = self.sock.accept()
            except (OSError, ValueError):
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = conn.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                with self.lock:
                    self.eofs += 1
                return
            *lines, buffer = (buffer + chunk).split(b"\n")
            if not lines:
                continue
            with self.lock:
                for line in lines:
                    kind, seq, _sender, _text = line.split(b" ")
                    assert kind == b"MSG"
                    self.seqs.append(int(seq))
                top = self.seqs[-1]
            if self.ack:
                try:
                    conn.sendall(b"ACK %d\n" % top)
                except OSError:
                    return

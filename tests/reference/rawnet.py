"""Raw-socket stand-ins for participants, shared by the process tests of the reference
coordinator: one-line control requests, and thread-B listeners that record MSG lines and ACK."""

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


class ThreadB:
    """A participant's thread-B stand-in: accepts delivery connections, records each MSG line as
    (seq, sender, text), and acks cumulatively; `ack=False` never acks (it still reads),
    `read=False` never reads, `keep_text=False` records "" for the text (60 KB messages by the
    thousand)."""

    def __init__(
        self, ack: bool = True, read: bool = True, rcvbuf: int = 0, keep_text: bool = True
    ) -> None:
        self.ack, self.read, self.keep_text = ack, read, keep_text
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.messages: list[tuple[int, str, str]] = []
        self.accepted = 0
        self.eofs = 0
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def texts(self) -> list[str]:
        with self.lock:
            return [text for _, _, text in self.messages]

    def seqs(self) -> list[int]:
        with self.lock:
            return [seq for seq, _, _ in self.messages]

    def close(self) -> None:
        """Crash: drop the listening socket (new connections refused) and every connection."""
        self.closed = True
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes the reading thread; close alone would not
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
            self.accepted += 1
            if self.read:
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
                    kind, seq, sender, text = line.split(b" ")
                    assert kind == b"MSG"
                    kept = text.decode(errors="replace") if self.keep_text else ""
                    self.messages.append((int(seq), sender.decode(errors="replace"), kept))
                top = self.messages[-1][0]
            if self.ack:
                try:
                    conn.sendall(b"ACK %d\n" % top)
                except OSError:
                    return

"""Free TCP ports for a run, picked from the adapter's range, preferring ports outside the
kernel's ephemeral range (an outgoing connection could otherwise take one a moment later)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import threading
from pathlib import Path

EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux), or the IANA default elsewhere."""
    try:
        lo, hi = EPHEMERAL_FILE.read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 49152, 65535


def bind_error(port: int, host: str = "127.0.0.1") -> str:
    """'' if a server could bind host:port now (SO_REUSEADDR, as servers set: nothing listens
    there), else why not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return ""


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port."""
    return not bind_error(port, host)


class PortPicker:
    """Hands out distinct bindable ports of [lo, hi]. Each port is also reserved for the
    picker's lifetime by a file in `registry` (created exclusively, holding our pid), so runs
    in other threads or processes on this machine never pick it meanwhile; `close()` frees
    them, and a reservation whose process is gone is taken over."""

    def __init__(
        self, lo: int, hi: int, seed: int | None = None, registry: Path | None = None
    ) -> None:
        self.lo, self.hi = lo, hi
        self._used: set[int] = set()
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._registry = registry or Path(tempfile.gettempdir()) / "pams-ports"
        self._registry.mkdir(parents=True, exist_ok=True)
        elo, ehi = ephemeral_range()
        self._preferred = [(a, b) for a, b in _outside(lo, hi, elo, ehi) if a <= b]

    def pick(self, width: int = 0) -> int:
        """A free port; with `width` > 0, one with exactly that many decimal digits."""
        with self._lock:
            for lo, hi in [*self._preferred, (self.lo, self.hi)]:
                lo, hi = _clip_width(lo, hi, width)
                if lo > hi:
                    continue
                for _ in range(200):
                    port = self._random.randint(lo, hi)
                    if port not in self._used and bindable(port) and self._reserve(port):
                        self._used.add(port)
                        return port
        where = f"{self.lo}-{self.hi}" + (f" with {width} digits" if width else "")
        raise RuntimeError(f"no free TCP port in {where}")

    def close(self) -> None:
        """Free every reservation of this picker (idempotent)."""
        with self._lock:
            for port in self._used:
                with contextlib.suppress(OSError):
                    (self._registry / str(port)).unlink()
            self._used.clear()

    def _reserve(self, port: int) -> bool:
        path = self._registry / str(port)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _stale(path):
                    return False
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            except OSError:
                return True  # no usable registry: fall back to the bind check alone
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False


def _stale(path: Path) -> bool:
    """A reservation whose owning process no longer exists."""
    try:
        pid = int(path.read_text() or "0")
    except (OSError, ValueError):
        return False  # being written right now
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _outside(lo: int, hi: int, elo: int, ehi: int) -> list[tuple[int, int]]:
    return [(lo, min(hi, elo - 1)), (max(lo, ehi + 1), hi)]


def _clip_width(lo: int, hi: int, width: int) -> tuple[int, int]:
    if width <= 0:
        return lo, hi
    return max(lo, 10 ** (width - 1)), min(hi, 10**width - 1)

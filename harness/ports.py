"""Free TCP ports for a run, picked from the adapter's range, preferring ports outside the
kernel's ephemeral range (an outgoing connection could otherwise take one a moment later)."""

from __future__ import annotations

import random
import socket
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


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (a bind with SO_REUSEADDR, as servers do, works)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class PortPicker:
    """Hands out distinct bindable ports of [lo, hi]; never the same port twice per picker."""

    def __init__(self, lo: int, hi: int, seed: int | None = None) -> None:
        self.lo, self.hi = lo, hi
        self._used: set[int] = set()
        self._lock = threading.Lock()
        self._random = random.Random(seed)
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
                    if port not in self._used and bindable(port):
                        self._used.add(port)
                        return port
        where = f"{self.lo}-{self.hi}" + (f" with {width} digits" if width else "")
        raise RuntimeError(f"no free TCP port in {where}")


def _outside(lo: int, hi: int, elo: int, ehi: int) -> list[tuple[int, int]]:
    return [(lo, min(hi, elo - 1)), (max(lo, ehi + 1), hi)]


def _clip_width(lo: int, hi: int, width: int) -> tuple[int, int]:
    if width <= 0:
        return lo, hi
    return max(lo, 10 ** (width - 1)), min(hi, 10**width - 1)

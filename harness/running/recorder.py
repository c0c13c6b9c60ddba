"""The trace writer: one JSON object per line, `t` stamped on the harness's monotonic clock
under a lock so times are non-decreasing across threads (docs/trace-format.md)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional


class Recorder:
    """Writes the header at once, then events via `emit`; `finish()` writes `end` (once).
    Events emitted after `finish()` are dropped: `end` is always the last line."""

    def __init__(
        self, path: Path, header: dict[str, Any], clock: Callable[[], float] = time.monotonic
    ):
        self.path = path
        self._clock = clock
        self._t0 = clock()
        self._last = 0.0
        self._lock = threading.Lock()
        self._file: Optional[Any] = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self._write({"type": "header", **header})

    def now(self) -> float:
        """Seconds since the run started (the trace's time base)."""
        return max(self._last, self._clock() - self._t0)

    def emit(self, event: dict) -> float:
        """Stamp `event` with `t` and append it; returns the stamp (thread-safe)."""
        with self._lock:
            t = round(max(self._last, self._clock() - self._t0), 6)
            self._last = t
            if self._file is not None:
                self._write({"type": event["type"], "t": t, **_without(event, "type")})
            return t

    def finish(self) -> float:
        """Write `end` and close the file; later events are dropped. Idempotent."""
        with self._lock:
            if self._file is None:
                return self._last
            t = round(max(self._last, self._clock() - self._t0), 6)
            self._last = t
            self._write({"type": "end", "t": t})
            self._close()
            return t

    def abandon(self) -> None:
        """Close without `end` (the trace is then marked truncated by the checkers)."""
        with self._lock:
            if self._file is not None:
                self._close()

    def _write(self, obj: dict) -> None:
        assert self._file is not None
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._file.flush()

    def _close(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None


def _without(event: dict, key: str) -> dict:
    return {k: v for k, v in event.items() if k != key and k != "t"}

"""Deliveries read from participants' log files (README "How a run works"): a pure
`LogTracker` that turns successive whole-file snapshots into `deliver`/`noise`/`log_reset`
events, and polling threads (`LogWatcher`, `LogWatchers`) that feed it from the real files."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from checkers.traceformat import Emit  # noqa: E402
from harness.scenarios.tokens import TOKEN_RE, TOKEN_WIDTH

LINE_CAP = 1000  # characters of a line kept in an event
_LINE_BYTES = 4 * LINE_CAP  # bytes decoded to get at most LINE_CAP characters
RACY_NS = 20_000_000  # a file modified this recently may change again without a stat change
_GONE = (FileNotFoundError, NotADirectoryError)


@dataclass(frozen=True)
class LogSnapshot:
    """A log file's identity (st_dev, st_ino) and whole content at one moment."""

    identity: tuple[int, int]
    content: bytes


def _decode(raw: bytes) -> str:
    """A log line as text: UTF-8 (bad bytes replaced), trailing CR/LF off, at most LINE_CAP."""
    return raw[:_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r\n")[:LINE_CAP]


class LogTracker:
    """Pure state machine for one participant's log: `observe(snapshot)` returns the events
    the change since the last snapshot means (no I/O, no clock).

    Content that starts with the known content has grown by the difference, whatever the
    file's identity: a program that rewrites its log whole on every message, in place or by
    writing a temp file and renaming it over the log, has each token counted exactly once.
    A strict prefix of the known content is a rewrite in progress (nothing reported, the
    known content kept) unless `restarted()` was called since the last change: then it is a
    new generation at once (a restarted program that appends to its old log just grows it).
    A rewrite back to exactly the known content is invisible. Any other change, or the file
    vanishing, is a `log_reset` and a new generation whose tokens are all new deliveries.
    A token is reported as soon as its bytes are all there, a token-less line (`noise`)
    once its newline is (or at `flush()`).
    """

    def __init__(self, participant: str):
        self.participant = participant
        self._identity: Optional[tuple[int, int]] = None
        self._restarted = False
        self._new_generation()

    def _new_generation(self) -> None:
        self._known = b""
        self._token_pos = 0  # no token can start before this offset in future content
        self._lines = 0  # complete lines in this generation
        self._line_start = 0  # offset of the current (unfinished) line
        self._line_has_token = False  # or its noise was already reported by flush()

    def restarted(self) -> None:
        """The harness restarted the participant: its next shrink is a new generation."""
        self._restarted = True

    def observe(self, snapshot: Optional[LogSnapshot]) -> list[dict]:
        """Events for the file now being `snapshot` (None: it does not exist)."""
        if snapshot is None:
            return self._vanished()
        previous, self._identity = self._identity, snapshot.identity
        content = snapshot.content
        if content.startswith(self._known):
            if len(content) > len(self._known):
                self._restarted = False
            return self._grow(content)
        if self._known.startswith(content) and not self._restarted:
            return []
        reason = _reset_reason(previous != snapshot.identity, len(content), len(self._known))
        events = self._reset(reason)
        return events + self._grow(content)

    def flush(self) -> list[dict]:
        """The unfinished last line as `noise` if it holds no token (once): the run is over."""
        if self._line_has_token or self._line_start >= len(self._known):
            return []
        self._line_has_token = True
        line = self._known[self._line_start :]
        return [self._event("noise", line_no=self._lines + 1, line=_decode(line))]

    def _vanished(self) -> list[dict]:
        if self._identity is None:
            return []
        self._identity = None
        return self._reset("deleted")

    def _reset(self, reason: str) -> list[dict]:
        events = self.flush()
        self._restarted = False
        self._new_generation()
        return [*events, self._event("log_reset", reason=reason)]

    def _grow(self, content: bytes) -> list[dict]:
        events: list[dict] = []
        end = len(content)
        tokens = TOKEN_RE.finditer(content, self._token_pos)
        match = next(tokens, None)
        newline = content.find(b"\n", len(self._known))
        while match is not None or newline >= 0:
            if match is not None and (newline < 0 or match.start() < newline):
                line_end = newline if newline >= 0 else end
                events.append(self._deliver(content, match.start(), line_end))
                self._token_pos = match.end()
                match = next(tokens, None)
            else:
                events.extend(self._end_line(content, newline))
                newline = content.find(b"\n", newline + 1)
        self._token_pos = max(self._token_pos, end - TOKEN_WIDTH + 1)
        self._known = content
        return events

    def _deliver(self, content: bytes, offset: int, line_end: int) -> dict:
        self._line_has_token = True
        return self._event(
            "deliver",
            message=content[offset : offset + TOKEN_WIDTH].decode("ascii"),
            line_no=self._lines + 1,
            line=_decode(content[self._line_start : line_end]),
            offset=offset,
        )

    def _end_line(self, content: bytes, newline: int) -> list[dict]:
        line = content[self._line_start : newline]
        has_token = self._line_has_token
        self._lines += 1
        self._line_start = newline + 1
        self._line_has_token = False
        if has_token:
            return []
        return [self._event("noise", line_no=self._lines, line=_decode(line))]

    def _event(self, kind: str, **fields: object) -> dict:
        return {"type": kind, "participant": self.participant, **fields}


def _reset_reason(identity_changed: bool, size: int, known_size: int) -> str:
    if identity_changed:
        return "recreated"
    return "truncated" if size < known_size else "rewritten"


def read_snapshot(path: Path) -> tuple[Optional[LogSnapshot], Optional[os.stat_result]]:
    """The file's snapshot and the fstat it was read under; (None, None) when it is gone."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            content = f.read()
    except _GONE:
        return None, None
    return LogSnapshot((st.st_dev, st.st_ino), content), st


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Source:
    """One watched file: stats it, reads it only when its stat changed (or it was modified
    so recently that a same-size change could hide within one timestamp tick), feeds the
    tracker and emits the events in order. Every method is thread-safe."""

    def __init__(self, path: Path, participant: str, emit: Emit):
        self.path = path
        self.tracker = LogTracker(participant)
        self._emit = emit
        self._lock = threading.Lock()
        self._signature: Optional[tuple[int, ...]] = None
        self._racy = True
        self._closed = False

    def poll(self) -> None:
        """Observe the file once, if it may have changed."""
        with self._lock:
            if not self._closed:
                self._poll()

    def restarted(self) -> None:
        """Attribute what is there now to the old process, then mark the restart."""
        with self._lock:
            if not self._closed:
                self._poll()
                self.tracker.restarted()

    def finish(self) -> None:
        """Final observation and flush; later polls do nothing. Idempotent."""
        with self._lock:
            if not self._closed:
                self._poll(force=True)
                self._send(self.tracker.flush())
                self._closed = True

    def _poll(self, force: bool = False) -> None:
        try:
            st: Optional[os.stat_result] = os.stat(self.path)
        except _GONE:
            st = None
        except OSError:
            return  # unreadable for now (permissions, I/O error): try again next poll
        signature = None if st is None else _signature(st)
        if signature == self._signature and not self._racy and not force:
            return
        now_ns = time.time_ns()
        try:
            snapshot, st = read_snapshot(self.path) if st is not None else (None, None)
        except OSError:
            return
        self._signature = None if st is None else _signature(st)
        self._racy = st is not None and st.st_mtime_ns >= now_ns - RACY_NS
        self._send(self.tracker.observe(snapshot))

    def _send(self, events: list[dict]) -> None:
        for event in events:
            self._emit(event)


class LogWatchers:
    """One polling thread for many log files (`watch()` adds one): each is stat'ed every
    `interval` seconds. `close()` stops the thread, then gives every file a final poll and
    flush; it is idempotent and bounded, and raises the first error a poll hit, if any."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self._sources: list[_Source] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self.error: Optional[BaseException] = None

    def watch(self, path: Path, participant: str, emit: Emit) -> LogWatcher:
        """A watcher of `path` polled by this group's thread (once both are started)."""
        return LogWatcher(path, participant, emit, self.interval, group=self)

    def start(self) -> None:
        """Start the polling thread (once)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="logwatch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop polling, final poll and flush of every file still watched."""
        with self._lock:
            self._closed = True
            sources, self._sources = self._sources, []
        self._halt()
        for source in sources:
            self._guard(source.finish)
        self._raise()

    def _halt(self) -> None:
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"log watching failed: {self.error!r}") from self.error

    def _add(self, source: _Source) -> None:
        with self._lock:
            if not self._closed and source not in self._sources:
                self._sources.append(source)

    def _remove(self, source: _Source) -> None:
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                sources = list(self._sources)
            for source in sources:
                self._guard(source.poll)
            self._stop.wait(self.interval)

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # a bug or a failing emit: keep the others going, report later
            if self.error is None:
                self.error = exc


class LogWatcher:
    """Watches one participant's log file, polled every `interval` seconds by its own thread,
    or by `group`'s shared thread. Events go to `emit` in file order, never twice."""

    def __init__(
        self,
        path: Path,
        participant: str,
        emit: Emit,
        interval: float = 0.005,
        group: Optional[LogWatchers] = None,
    ):
        self.path = Path(path)
        self.participant = participant
        self._source = _Source(self.path, participant, emit)
        self._own = group is None
        self._group = LogWatchers(interval) if group is None else group
        self._closed = False

    def start(self) -> None:
        """Begin polling (an observation happens at once)."""
        self._source.poll()
        self._group._add(self._source)
        if self._own:
            self._group.start()

    def poll_now(self) -> None:
        """One synchronous observation: whatever is in the file now is reported on return."""
        self._source.poll()

    def restarted(self) -> None:
        """Call when the harness restarts the participant (after the kill, before the start):
        what the log holds now belongs to the old process, a later shrink starts a new
        generation."""
        self._source.restarted()

    def close(self) -> None:
        """Final poll and flush (the unfinished last line becomes noise), stop polling."""
        if self._closed:
            return
        self._closed = True
        self._group._remove(self._source)
        if self._own:
            self._group._halt()
        self._group._guard(self._source.finish)
        if self._own:
            self._group._raise()

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

from checkers import traceformat as tf
from checkers.traceformat import Emit  # noqa: E402
from harness.scenarios.tokens import TOKEN_RE, TOKEN_WIDTH

LINE_CAP = 1000  # characters of a line kept in an event
_LINE_BYTES = 4 * LINE_CAP  # bytes decoded to get at most LINE_CAP characters
TAIL = 64 * 1024  # bytes a tracker keeps of a log (lines longer than that are cut in events)
LOG_CAP = 256 * 2**20  # bytes of a log read at most (the adapter's file_size limit, usually)
NOISE_CAP = 1000  # token-less lines recorded per log generation (a flood is not a trace)
READ_MAX = 4 * 2**20  # bytes read per poll at most (a flooded log is read over several polls)
RACY_NS = 20_000_000  # a file modified this recently may change again without a stat change
_GONE = (FileNotFoundError, NotADirectoryError)


@dataclass(frozen=True)
class LogSnapshot:
    """A log file's identity (st_dev, st_ino) and its content from byte `base` to its end at
    one moment (`base` 0: the whole file)."""

    identity: tuple[int, int]
    content: bytes
    base: int = 0


def _decode(raw: bytes) -> str:
    """A log line as text: UTF-8 (bad bytes replaced), trailing CR/LF off, at most LINE_CAP."""
    return raw[:_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r\n")[:LINE_CAP]


class LogTracker:
    """Pure state machine for one participant's log: `observe(snapshot)` returns the events
    the change since the last snapshot means (no I/O, no clock).

    It keeps only the last TAIL bytes of what it has seen, so memory stays bounded for any log:
    `read_from()` is where the next snapshot may start, and a snapshot from there that starts
    with the tail has grown by the rest. Content whose tail matches has grown, whatever the
    file's identity: a program that rewrites its log whole on every message, in place or by
    writing a temp file and renaming it over the log, has each token counted exactly once. A
    strict prefix of the known content (as far as the tail shows) is a rewrite in progress
    (nothing reported) unless `restarted()` was called since the last change: then it is a new
    generation at once (a restarted program that appends to its old log just grows it). Any
    other change, or the file vanishing, is a `log_reset` and a new generation whose tokens are
    all new deliveries; `needs_whole(snapshot)` says when that must be decided on the whole
    file. A token is reported as soon as its bytes are all there, a token-less line (`noise`)
    once its newline is (or at `flush()`).
    """

    def __init__(self, participant: str):
        self.participant = participant
        self._identity: Optional[tuple[int, int]] = None
        self._restarted = False
        self._new_generation()

    def _new_generation(self) -> None:
        self._base = 0  # file offset of _tail[0]: what came before it is forgotten
        self._tail = b""  # the known content from _base on
        self._token_pos = 0  # no token can start before this offset in future content
        self._lines = 0  # complete lines in this generation
        self._line_start = 0  # offset of the current (unfinished) line
        self._line_has_token = False  # or its noise was already reported by flush()
        self._noise = 0  # token-less lines reported in this generation

    @property
    def known_size(self) -> int:
        """How many bytes of this generation have been seen."""
        return self._base + len(self._tail)

    def read_from(self) -> int:
        """The offset a snapshot may start at (what comes before it is not needed)."""
        return self._base

    def restarted(self) -> None:
        """The harness restarted the participant: its next shrink is a new generation."""
        self._restarted = True

    def needs_whole(self, snapshot: LogSnapshot) -> bool:
        """True when `snapshot`, read from an offset, does not just extend the known content:
        the decision needs the file from its start."""
        return snapshot.base > 0 and self._grown(snapshot) is None

    def observe(self, snapshot: Optional[LogSnapshot]) -> list[dict]:
        """Events for the file now being `snapshot` (None: it does not exist)."""
        if snapshot is None:
            return self._vanished()
        previous, self._identity = self._identity, snapshot.identity
        grown = self._grown(snapshot)
        if grown is not None:
            if len(grown) > len(self._tail):
                self._restarted = False
            return self._grow(grown)
        content = snapshot.content  # the whole file (needs_whole said so otherwise)
        if self._is_known_prefix(content) and not self._restarted:
            return []
        reason = _reset_reason(previous != snapshot.identity, len(content), self.known_size)
        events = self._reset(reason)
        return events + self._grow(content)

    def _grown(self, snapshot: LogSnapshot) -> Optional[bytes]:
        """The content from _base on, if `snapshot` holds the known tail there; else None."""
        skip = self._base - snapshot.base
        if skip < 0:
            return None
        content = snapshot.content[skip:] if skip else snapshot.content
        if len(snapshot.content) < skip or not content.startswith(self._tail):
            return None
        return content

    def _is_known_prefix(self, content: bytes) -> bool:
        """`content` (a whole file) is shorter than the known content and agrees with the
        tail where they overlap (before the tail, nothing is kept to compare)."""
        if len(content) >= self.known_size:
            return False
        return self._tail.startswith(content[self._base :])

    def flush(self) -> list[dict]:
        """The unfinished last line as `noise` if it holds no token (once): the run is over."""
        if self._line_has_token or self._line_start >= self.known_size:
            return []
        self._line_has_token = True
        line = self._tail[max(0, self._line_start - self._base) :]
        return self._noise_event(self._lines + 1, _decode(line))

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
        """`content` runs from _base and starts with the tail: report what is new in it, in
        file order (Python work per token and per recorded noise line; other lines are only
        counted, so a flood of junk lines costs little)."""
        events: list[dict] = []
        base, end = self._base, len(content)
        scanned = len(self._tail)  # newlines before this were handled by earlier calls
        for match in TOKEN_RE.finditer(content, max(0, self._token_pos - base)):
            if match.start() > scanned:
                events += self._end_lines(content, scanned, match.start())
                scanned = match.start()
            line_end = content.find(b"\n", match.start())
            events.append(self._deliver(content, match.start(), end if line_end < 0 else line_end))
            self._token_pos = base + match.end()
        events += self._end_lines(content, scanned, end)
        self._token_pos = max(self._token_pos, base + end - TOKEN_WIDTH + 1)
        self._tail = content
        self._trim()
        return events

    def _end_lines(self, content: bytes, start: int, stop: int) -> list[dict]:
        """End every line whose newline lies in content[start:stop]."""
        events: list[dict] = []
        newline = content.find(b"\n", start, stop)
        while newline >= 0 and self._noise <= NOISE_CAP:
            events.extend(self._end_line(content, newline))
            newline = content.find(b"\n", newline + 1, stop)
        if newline >= 0:  # past the noise cap: count the rest without looking at them
            last = content.rfind(b"\n", newline, stop)
            self._lines += content.count(b"\n", newline, stop)
            self._line_start = self._base + last + 1
            self._line_has_token = False
        return events

    def _trim(self) -> None:
        """Forget all but the last TAIL bytes (what rewrites are compared against)."""
        keep = self.known_size - TAIL
        if keep > self._base:
            self._tail = self._tail[keep - self._base :]
            self._base = keep

    def _line_text(self, content: bytes, end: int) -> str:
        return _decode(content[max(0, self._line_start - self._base) : end])

    def _deliver(self, content: bytes, index: int, line_end: int) -> dict:
        self._line_has_token = True
        return self._event(
            "deliver",
            message=content[index : index + TOKEN_WIDTH].decode("ascii"),
            line_no=self._lines + 1,
            line=self._line_text(content, line_end),
            offset=self._base + index,
        )

    def _end_line(self, content: bytes, newline: int) -> list[dict]:
        text = self._line_text(content, newline)
        has_token = self._line_has_token
        self._lines += 1
        self._line_start = self._base + newline + 1
        self._line_has_token = False
        if has_token:
            return []
        return self._noise_event(self._lines, text)

    def _noise_event(self, line_no: int, text: str) -> list[dict]:
        """A `noise` event for the first NOISE_CAP token-less lines, then one note, then none."""
        self._noise += 1
        if self._noise > NOISE_CAP + 1:
            return []
        if self._noise == NOISE_CAP + 1:
            text = f"[pams: {NOISE_CAP} token-less lines recorded; later ones are not]"
        return [self._event("noise", line_no=line_no, line=text)]

    def _event(self, kind: str, **fields: object) -> dict:
        return {"type": kind, "participant": self.participant, **fields}


def _reset_reason(identity_changed: bool, size: int, known_size: int) -> str:
    if identity_changed:
        return "recreated"
    return "truncated" if size < known_size else "rewritten"


def read_snapshot(
    path: Path, start: int = 0, cap: int = LOG_CAP
) -> tuple[Optional[LogSnapshot], Optional[os.stat_result]]:
    """The file's content from `start` (0 if the file is now shorter) to its end or `cap`,
    and the fstat it was read under; (None, None) when it is gone."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            base = start if st.st_size >= start else 0
            f.seek(base)
            content = f.read(max(0, min(st.st_size, cap, base + READ_MAX) - base))
    except _GONE:
        return None, None
    return LogSnapshot((st.st_dev, st.st_ino), content, base), st


def _cap_detail(participant: str, cap: int) -> str:
    size = f"{cap // 2**20} MiB" if cap % 2**20 == 0 else f"{cap} bytes"
    return f"log of p{participant} exceeded {size}: the rest of it was not read"


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Source:
    """One watched file: stats it, reads it only when its stat changed (or it was modified
    so recently that a same-size change could hide within one timestamp tick), feeds the
    tracker and emits the events in order. Every method is thread-safe."""

    def __init__(self, path: Path, participant: str, emit: Emit, cap: int = LOG_CAP):
        self.path = path
        self.cap = cap or LOG_CAP
        self._capped = False
        self._behind = False  # the last read stopped short of the file's end (READ_MAX)
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
        if signature == self._signature and not self._racy and not self._behind and not force:
            return
        now_ns = time.time_ns()
        try:
            snapshot, st = self._read() if st is not None else (None, None)
        except OSError:
            return
        self._signature = None if st is None else _signature(st)
        self._racy = st is not None and st.st_mtime_ns >= now_ns - RACY_NS
        before = self.tracker.known_size
        self._send(self.tracker.observe(snapshot))
        known = self.tracker.known_size
        self._behind = st is not None and before != known < min(st.st_size, self.cap)
        if force and self._behind:  # the final read: everything up to the cap
            self._poll(force=True)
        if st is not None and st.st_size >= self.cap and not self._capped:
            self._capped = True
            self._send(
                [
                    tf.limit(
                        "file_size",
                        self.tracker.participant,
                        _cap_detail(self.tracker.participant, self.cap),
                    )
                ]
            )

    def _read(self) -> tuple[Optional[LogSnapshot], Optional[os.stat_result]]:
        """What grew since the last read (the whole file when that is needed), up to the cap."""
        snapshot, st = read_snapshot(self.path, self.tracker.read_from(), self.cap)
        if snapshot is not None and self.tracker.needs_whole(snapshot):
            snapshot, st = read_snapshot(self.path, 0, self.cap)
        return snapshot, st

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

    def watch(self, path: Path, participant: str, emit: Emit, cap: int = LOG_CAP) -> LogWatcher:
        """A watcher of `path` polled by this group's thread (once both are started); at most
        `cap` bytes of the file are read."""
        return LogWatcher(path, participant, emit, self.interval, group=self, cap=cap)

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
        cap: int = LOG_CAP,
    ):
        self.path = Path(path)
        self.participant = participant
        self._source = _Source(self.path, participant, emit, cap)
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

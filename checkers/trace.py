"""Streaming reader and validator for trace format v1 (docs/trace-format.md).

It reads one line at a time, rejects malformed input with a `TraceError` naming the file,
line and reason, and keeps only what the rules need (ops, deliveries, port probes, faults).
A `fault` event needs a string `fault` and a `target` (a participant id or "coordinator");
one whose target is neither "coordinator" nor named in the header's non-empty
`participants` list is ignored, like any unknown data (docs/trace-format.md).
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, NoReturn, Optional, Union, overload

from checkers.traceformat import COORDINATOR, FORMAT, FUNCTIONS, PROBES, VERSION

MAX_NUMBER = 1e300  # the largest magnitude a trace number may have (floats end near 1.8e308)
STDERR_TAIL = 3  # last stderr lines kept per process, for no-crash explanations
DEFAULT_TOLERANCE = 1.0
DEFAULT_LATENCY_BOUND = 1.0


class TraceError(Exception):
    """An unreadable or malformed trace; str(e) is "PATH:LINE: reason" (LINE omitted when
    the problem is not about one line)."""

    def __init__(self, path: str, line: Optional[int], reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


class Op(NamedTuple):
    """One invoked operation: its effect window [t0, t1]. t0 is the invoke, or the moment its
    request bytes reached the coordinator when the trace says (`request_at`): the effect cannot
    come earlier. t1 is None when it never completed (outcome "info" or "none"), and then the
    window runs to the trace's end. `acked` is False for an op settled without the coordinator's
    acknowledgement (its window still ends); `late_ack` when one came afterwards; `refusal` the
    reply that refused it; `error` why it failed or is unknown. (A tuple: there can be many.)"""

    id: Union[int, str]
    participant: str
    f: str
    t0: float
    t1: Optional[float]
    outcome: str
    message: Optional[str]
    line: int
    invoked: float
    acked: bool
    late_ack: Optional[float]
    refusal: Optional[str]
    error: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def make_op(
    op_id: Union[int, str],
    participant: str,
    f: str,
    t0: float,
    t1: Optional[float],
    outcome: str,
    message: Optional[str] = None,
    line: int = 0,
) -> Op:
    """An acknowledged-style Op invoked at t0 (no request time, acknowledgement or refusal)."""
    return Op(op_id, participant, f, t0, t1, outcome, message, line, t0, True, None, None, "")


@dataclass(frozen=True)
class Exit:
    """A process that exited or died without the harness asking (`process` event `exit`)."""

    __slots__ = ("t", "target", "returncode", "stderr", "line")
    t: float
    target: str
    returncode: Any
    stderr: tuple[str, ...]
    line: int


class Delivery(NamedTuple):
    """A token found in a participant's log at harness time t (a tuple: there can be
    millions)."""

    t: float
    participant: str
    message: str
    line: int


class Deliveries(Sequence[Delivery]):
    """A trace's deliveries in trace order, stored as columns (there can be millions): time,
    receiver, token and trace line of each; items are `Delivery` tuples."""

    __slots__ = ("times", "receivers", "tokens", "lines", "names", "words")

    def __init__(self) -> None:
        self.times = array("d")
        self.receivers = array("I")  # index into `names`
        self.tokens = array("I")  # index into `words`
        self.lines = array("q")
        self.names: list[str] = []
        self.words: list[str] = []

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, i: int) -> Delivery:
        pass

    @overload
    def __getitem__(self, i: slice) -> Sequence[Delivery]:
        pass

    def __getitem__(self, i: Union[int, slice]) -> Union[Delivery, Sequence[Delivery]]:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        return Delivery(
            self.times[i], self.names[self.receivers[i]], self.words[self.tokens[i]], self.lines[i]
        )

    def __iter__(self) -> Iterator[Delivery]:
        names, words = self.names, self.words
        for t, p, m, line in zip(self.times, self.receivers, self.tokens, self.lines):
            yield Delivery(t, names[p], words[m], line)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def columns(self) -> Iterator[tuple[float, str, str, int]]:
        """(t, receiver, token, line) of each delivery, in trace order."""
        names, words = self.names, self.words
        for t, p, m, line in zip(self.times, self.receivers, self.tokens, self.lines):
            yield t, names[p], words[m], line


@dataclass(frozen=True)
class Probe:
    """A probe made by the harness: `kind` "port_released" (after a disconnect/deregister) or
    "listening" (thread-B's port when a register/reconnect request reached the coordinator)."""

    __slots__ = ("t", "participant", "port", "ok", "line", "kind", "op")
    t: float
    participant: str
    port: Any
    ok: bool
    line: int
    kind: str
    op: Any


@dataclass(frozen=True)
class Fault:
    """A fault the harness injected at harness time t (`fault` as recorded, e.g. "kill",
    "pause"; `target` a participant id or "coordinator")."""

    __slots__ = ("t", "fault", "target", "line")
    t: float
    fault: str
    target: str
    line: int


@dataclass(frozen=True)
class Trace:
    """Everything the rules need from one trace. `end` is None for a truncated trace;
    `last_t` is the time of its last event either way; `faults` in trace order."""

    name: str
    td: float
    tolerance: Optional[float]
    latency_bound: Optional[float]
    participants: tuple[str, ...]
    scenario: str
    boundary: bool
    ops: tuple[Op, ...]
    deliveries: Sequence[Delivery]
    probes: tuple[Probe, ...]
    end: Optional[float]
    last_t: float
    events: int
    log_resets: int
    faults: tuple[Fault, ...] = ()
    exits: tuple[Exit, ...] = ()
    op_timeout: Optional[float] = None
    exit_on_deregister: bool = False
    expect: tuple[dict, ...] = ()

    @property
    def truncated(self) -> bool:
        return self.end is None

    @property
    def horizon(self) -> float:
        """The trace's end time: where info/pending windows stop."""
        return self.end if self.end is not None else self.last_t


def _number(value: object) -> Optional[float]:
    """`value` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and not -MAX_NUMBER < value < MAX_NUMBER:
        return None  # beyond what a float holds (JSON integers are unbounded)
    return float(value) if math.isfinite(value) else None


def _op_id(value: object) -> bool:
    """Op ids are integers (of at most 18 digits) or short strings."""
    if type(value) is int:
        return -(10**18) < value < 10**18
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(10**18) < value < 10**18
    return isinstance(value, str) and 0 < len(value) <= 100


def _shown(value: object) -> str:
    """`value` as an error message quotes it: its repr, at most 60 characters."""
    if isinstance(value, int) and not -MAX_NUMBER < value < MAX_NUMBER:
        return "a number too large"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ident(value: Any) -> Optional[str]:
    """Participant ids are strings; small integers are accepted and turned into strings."""
    if isinstance(value, str) and value:
        return sys.intern(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return sys.intern(str(value))
    return None


def _param(header: dict, key: str, err: Callable[[str], NoReturn]) -> Optional[float]:
    checker = header.get("checker")
    value = header.get(key)
    if value is None and isinstance(checker, dict):
        value = checker.get(key)
    if value is None:
        return None
    number = _number(value)
    if number is None or number < 0:
        err(f"header field {key}: must be a non-negative number, got {_shown(value)}")
    return number


def _scenario(header: dict) -> tuple[str, bool]:
    """The scenario's name and whether it is marked as a boundary scenario."""
    scen = header.get("scenario")
    if isinstance(scen, str):
        return scen, "boundary" in scen.lower()
    if not isinstance(scen, dict):
        return "", False
    name = str(scen.get("name", ""))
    marks = [name, str(scen.get("profile", "")), str(scen.get("kind", ""))]
    tags = scen.get("tags")
    if isinstance(tags, list):
        marks.extend(str(t) for t in tags)
    boundary = scen.get("boundary") is True or any("boundary" in m.lower() for m in marks)
    return name, boundary


class _Inexact(Exception):
    """Raised by the reader, before it changes anything, when a value decoded by the fast
    decoder may differ from the standard library's (orjson turns integers beyond 64 bits into
    floats): the line is decoded again with `json` and fed again."""


class _Reader:
    """Validating state machine fed one decoded JSON value per line. `exact` is False while
    the value came from the fast decoder (see `_Inexact`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.header: Optional[dict] = None
        self.ops: dict[Any, list] = {}
        self.tokens: dict[str, Any] = {}
        self.deliveries = Deliveries()
        self.receiver_index: dict[str, int] = {}
        self.token_index: dict[str, int] = {}
        self.probes: list[Probe] = []
        self.faults: list[Fault] = []
        self.exits: list[Exit] = []
        self.stderr: dict[str, deque[str]] = {}
        self.targets: frozenset[str] = frozenset()
        self.last_t = 0.0
        self.end: Optional[float] = None
        self.events = 0
        self.log_resets = 0
        self.line = 0
        self.exact = True
        d = self.deliveries
        self.put = (d.times.append, d.receivers.append, d.tokens.append, d.lines.append)

    def error(self, reason: str) -> NoReturn:
        raise TraceError(self.path, self.line, reason)

    def ident(self, value: Any) -> Optional[str]:
        """`_ident` of a decoded value; a float from the fast decoder may have been a large
        integer (an id for `json`)."""
        if type(value) is float and not self.exact:
            raise _Inexact
        return _ident(value)

    def raw(self, value: Any) -> Any:
        """A value kept as it is (a port, a return code): exact, as `json` gives it."""
        if type(value) is float and not self.exact:
            raise _Inexact
        return value

    def feed(self, lineno: int, obj: Any, exact: bool = True) -> None:
        self.line = lineno
        self.exact = exact
        if type(obj) is not dict:
            if not exact:
                raise _Inexact  # its type name is quoted: as json decodes it
            self.error(f"not a JSON object ({type(obj).__name__})")
        if self.header is None:
            self.take_header(obj)
            return
        kind = obj.get("type")
        if kind == "deliver":  # most lines of a trace
            self.take_delivery(obj)
            return
        if type(kind) is not str:
            self.error("event without type")
        kind = kind[:40]
        if kind == "header":
            self.error("second header")
        t = obj.get("t")
        if type(t) is not float or not self.last_t <= t < MAX_NUMBER or self.end is not None:
            t = self.time(kind, t)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, obj, t)
        self.last_t = t
        self.events += 1

    def time(self, kind: str, t: Any) -> float:
        """The event's `t`, checked: a finite number, not before the previous event's, and no
        event after `end`."""
        if type(t) is not float:
            t = _number(t) if type(t) is int else None
            if t is None:
                self.error(f"{kind} event without numeric t (a finite number of seconds)")
        elif not -MAX_NUMBER < t < MAX_NUMBER:
            if not self.exact:
                raise _Inexact  # maybe an integer beyond what a float holds (rejected by json)
            if not math.isfinite(t):
                self.error(f"{kind} event without numeric t (a finite number of seconds)")
        if t < self.last_t:
            self.error(f"t {t} decreases (previous event at t {self.last_t})")
        if self.end is not None:
            self.error(f"{kind} event after end")
        return t

    def take_header(self, obj: dict) -> None:
        if not self.exact:
            raise _Inexact  # the header's nested values are kept: decoded by json, once
        if obj.get("type") != "header":
            self.error(
                f'first line must be the header (type "header"), got type {_shown(obj.get("type"))}'
            )
        if obj.get("format") != FORMAT:
            self.error(f'header format must be "{FORMAT}", got {_shown(obj.get("format"))}')
        version = obj.get("version")
        if version != VERSION or isinstance(version, bool):
            self.error(f"unknown trace version {_shown(version)} (this checker reads version 1)")
        td = obj.get("td")
        if "td" not in obj:
            self.error("header field td is missing")
        seconds = _number(td)
        if seconds is None or seconds < 0:
            self.error(
                f"header field td: must be a non-negative number of seconds, got {_shown(td)}"
            )
        participants = obj.get("participants", [])
        if not isinstance(participants, list) or any(_ident(p) is None for p in participants):
            self.error("header field participants: must be a list of participant ids")
        _param(obj, "tolerance", self.error)
        _param(obj, "latency_bound", self.error)
        self.targets = frozenset(_ident(p) or "" for p in participants)
        self.header = obj

    def take_delivery(self, obj: dict) -> None:
        t = obj.get("t")
        if type(t) is not float or not self.last_t <= t < MAX_NUMBER or self.end is not None:
            t = self.time("deliver", t)
        participant = obj.get("participant")
        if type(participant) is not str or not participant:
            participant = self.ident(participant)
            if participant is None:
                self.error("deliver without participant")
        message = obj.get("message")
        if type(message) is not str or not message:
            self.error("deliver without message")
        who = self.receiver_index.get(participant)
        if who is None:
            who = self.receiver_index[participant] = len(self.deliveries.names)
            self.deliveries.names.append(sys.intern(participant))
        what = self.token_index.get(message)
        if what is None:
            what = self.token_index[message] = len(self.deliveries.words)
            self.deliveries.words.append(sys.intern(message))
        put_t, put_who, put_what, put_line = self.put
        put_t(t)
        put_who(who)
        put_what(what)
        put_line(self.line)
        self.last_t = t
        self.events += 1

    def on_invoke(self, obj: dict, t: float) -> None:
        op = obj.get("op")
        if not _op_id(op):
            self.error("invoke without op id")
        participant = obj.get("participant")
        if type(participant) is not str or not participant:
            participant = self.ident(participant)
            if participant is None:
                self.error(f"invoke of op {op} without participant")
        f = obj.get("f")
        if not isinstance(f, str):
            self.error(f"invoke of op {op} without f")
        f = _FUNCTION_NAMES.get(f)
        if f is None:
            self.error(
                f"invoke of op {op}: unknown f {_shown(obj.get('f'))} (expected one of "
                f"{', '.join(FUNCTIONS)})"
            )
        if op in self.ops:
            self.error(f"duplicate op id {op} (first invoked on line {self.ops[op][6]})")
        message = None
        if f == "msend":
            message = obj.get("message")
            if not isinstance(message, str) or not message:
                self.error(f"msend op {op} without message token")
            message = sys.intern(message)
            if message in self.tokens:
                first = self.ops[self.tokens[message]]
                self.error(
                    f"message token {message} already sent by op {first[7]} (line {first[6]})"
                )
            self.tokens[message] = op
        # [participant, f, t0, t1, outcome, message, invoke line, op id, completion line,
        #  request_at, acked, late ack, refusal, error]
        self.ops[op] = [
            participant, f, t, None, "none", message, self.line, op, 0,
            None, True, None, None, "",
        ]  # fmt: skip

    def on_completion(self, obj: dict, t: float) -> None:
        kind = obj["type"]
        op = obj.get("op")
        if not _op_id(op):
            self.error(f"{kind} without op id")
        rec = self.ops.get(op)
        if rec is None:
            self.error(f"{kind} for unknown op {op}")
        if rec[4] != "none":
            self.error(f"second completion for op {op} ({rec[4]} already on line {rec[8]})")
        rec[3] = t
        rec[4] = kind
        rec[8] = self.line
        request_at = obj.get("request_at")
        if request_at is not None:
            request_at = _number(request_at)
            if request_at is not None and rec[2] <= request_at <= t:
                rec[9] = request_at
        rec[10] = obj.get("acknowledged") is not False
        refusal = obj.get("refusal")
        if isinstance(refusal, str):
            rec[12] = refusal
        why = obj.get("error", obj.get("reason"))
        if isinstance(why, str):
            rec[13] = why

    def on_ack(self, obj: dict, t: float) -> None:
        """A late acknowledgement of an op settled without one."""
        rec = self.ops.get(obj.get("op"))
        if rec is not None and rec[11] is None:
            rec[11] = t

    def on_refused(self, obj: dict, t: float) -> None:
        """An op settled ok that its own reply line refused after all: it did not happen."""
        rec = self.ops.get(obj.get("op"))
        if rec is not None and rec[4] == "ok":
            rec[4] = "fail"
            text = obj.get("text")
            rec[12] = text if isinstance(text, str) else "refused"

    def on_process(self, obj: dict, t: float) -> None:
        if obj.get("event") != "exit":
            return
        target = self.ident(obj.get("target"))
        if target is None:
            return
        tail = tuple(self.stderr.get(target, ()))
        self.exits.append(Exit(t, target, self.raw(obj.get("returncode")), tail, self.line))

    def on_output(self, obj: dict, t: float) -> None:
        if obj.get("stream") != "stderr":
            return
        target, line = self.ident(obj.get("target")), obj.get("line")
        if target is not None and isinstance(line, str) and line.strip():
            self.stderr.setdefault(target, deque(maxlen=STDERR_TAIL)).append(line[:300])

    def on_probe(self, obj: dict, t: float) -> None:
        kind = obj.get("probe")
        if kind not in PROBES:
            return
        ok = obj.get("ok")
        if not isinstance(ok, bool):
            self.error(f"{kind} probe without boolean ok")
        participant = self.ident(obj.get("participant")) or "?"
        port, op = self.raw(obj.get("port")), self.raw(obj.get("op"))
        self.probes.append(Probe(t, participant, port, ok, self.line, kind, op))

    def on_fault(self, obj: dict, t: float) -> None:
        fault = obj.get("fault")
        if not isinstance(fault, str) or not fault:
            self.error("fault event without fault (the fault's name)")
        if "target" not in obj:
            self.error(f"{fault} fault event without target")
        target = self.ident(obj.get("target"))
        if target is None:
            self.error(f"{fault} fault event: target must be a participant id or {COORDINATOR!r}")
        if target != COORDINATOR and self.targets and target not in self.targets:
            return  # not a participant of this run: unknown data, ignored
        self.faults.append(Fault(t, sys.intern(fault), target, self.line))

    def on_log_reset(self, obj: dict, t: float) -> None:
        self.log_resets += 1

    def on_end(self, obj: dict, t: float) -> None:
        self.end = t

    def finish(self) -> Trace:
        header = self.header
        if header is None:
            raise TraceError(self.path, 1, "empty file (no header line)")
        ops = tuple(_op(r) for r in self.ops.values())
        names = [_ident(p) for p in header.get("participants", [])]
        scenario, boundary = _scenario(header)
        return Trace(
            name=self.path,
            td=float(header["td"]),
            tolerance=_param(header, "tolerance", self.error),
            latency_bound=_param(header, "latency_bound", self.error),
            participants=tuple(p for p in names if p is not None),
            scenario=scenario,
            boundary=boundary,
            ops=ops,
            deliveries=self.deliveries,
            probes=tuple(self.probes),
            end=self.end,
            last_t=self.last_t,
            events=self.events,
            log_resets=self.log_resets,
            faults=tuple(self.faults),
            exits=tuple(self.exits),
            op_timeout=_param(header, "op_timeout", self.error),
            exit_on_deregister=header.get("exit_on_deregister") is True,
            expect=_expect(header),
        )


def _op(r: list) -> Op:
    """An Op from the reader's record (see on_invoke for the layout)."""
    t1 = r[3] if r[4] in ("ok", "fail") else None
    t0 = r[9] if r[9] is not None else r[2]
    return Op(r[7], r[0], r[1], t0, t1, r[4], r[5], r[6], r[2], r[10], r[11], r[12], r[13])


def _expect(header: dict) -> tuple[dict, ...]:
    """The scenario's expectations (what a run must exercise), as recorded in the header."""
    scenario = header.get("scenario")
    expect = scenario.get("expect") if isinstance(scenario, dict) else None
    if not isinstance(expect, list):
        return ()
    return tuple(e for e in expect if isinstance(e, dict) and isinstance(e.get("kind"), str))


_HANDLERS = {
    "invoke": _Reader.on_invoke,
    "ack": _Reader.on_ack,
    "refused": _Reader.on_refused,
    "process": _Reader.on_process,
    "output": _Reader.on_output,
    "ok": _Reader.on_completion,
    "fail": _Reader.on_completion,
    "info": _Reader.on_completion,
    "probe": _Reader.on_probe,
    "log_reset": _Reader.on_log_reset,
    "fault": _Reader.on_fault,
    "end": _Reader.on_end,
}


_FUNCTION_NAMES = {f: sys.intern(f) for f in FUNCTIONS}


# --- decoding ---------------------------------------------------------------------------

_Line = Union[str, bytes]
_BLANK = object()  # a blank line: skipped
FAST_LINE = 400  # longer lines (rare: headers, wire data) go the standard way: one might nest
# deeper than `json` allows (a line of N characters nests at most N / 2 levels)


def _stdlib_fast(raw: _Line) -> Any:
    """One line's JSON value by the standard library's C scanner (ValueError if it is not
    one plain value: `_decode` then decides)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        text = text.strip()
        obj, end = _SCAN(text, 0)
    except (StopIteration, RecursionError):
        raise ValueError("not decoded") from None
    if end != len(text):
        raise ValueError("not decoded")
    return obj


try:  # an optional fast path: the same values and errors as the standard library's
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is optional
    _fast_decode: Callable[[_Line], Any] = _stdlib_fast
    FAST_EXACT = True
else:  # exact but in integers beyond 64 bits (see _Inexact); ValueError when not JSON
    _fast_decode = _orjson_loads
    FAST_EXACT = False


# scan_once is set in JSONDecoder.__init__, and typeshed's JSONDecoder does not declare it.
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _decode(path: str, lineno: int, raw: _Line) -> Any:
    """One line's JSON value by the standard library (or _BLANK); TraceError worded as
    docs/trace-format.md says."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            reason = f"not UTF-8 (byte {e.start + 1} of the line)"
            raise TraceError(path, lineno, reason) from None
    text = raw.strip()
    if not text:
        return _BLANK
    try:
        obj, end = _SCAN(text, 0)
        if end == len(text):
            return obj
    except (StopIteration, ValueError, RecursionError):
        pass
    try:
        return json.loads(raw)
    except RecursionError:
        raise TraceError(path, lineno, "bad JSON: nested too deeply") from None
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        if "integer string conversion" in msg:  # Python's int() digit limit
            raise TraceError(path, lineno, "bad JSON: a number of more than 4300 digits") from None
        col = getattr(e, "colno", None)
        where = (
            "" if col is None else f" column {col}" if msg.endswith(" at") else f" at column {col}"
        )
        raise TraceError(path, lineno, f"bad JSON: {msg}{where}") from None


def _cut_off(raw: _Line, lineno: int, e: TraceError) -> bool:
    """Whether `raw`, failing with `e`, may be a last line cut off while being written: bytes
    without their newline (file lines end in one), not UTF-8, or not JSON after the header."""
    if not isinstance(raw, bytes) or raw.endswith(b"\n"):
        return False
    return lineno > 1 or e.reason.startswith("not UTF-8")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector off while a trace is read and judged: the millions of objects
    built hold no cycles, and collecting over them would take as long as the work."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_lines(lines: Iterable[_Line], name: str = "<trace>") -> Trace:
    """Parse and validate an iterable of JSON lines (str or bytes); blank lines are skipped.
    A last line of bytes without its newline that does not parse was cut off while being
    written: the trace is read as truncated there."""
    reader = _Reader(name)
    feed, fast, exact = reader.feed, _fast_decode, FAST_EXACT
    cut: Optional[TraceError] = None  # a cut line's error, raised if a line follows it
    with gc_paused():
        for lineno, raw in enumerate(lines, 1):
            if cut is not None:
                raise cut
            if len(raw) <= FAST_LINE:
                try:
                    obj = fast(raw)
                except ValueError:
                    pass
                else:
                    try:
                        feed(lineno, obj, exact)
                        continue
                    except _Inexact:
                        pass
            try:
                obj = _decode(name, lineno, raw)
            except TraceError as e:
                if not _cut_off(raw, lineno, e):
                    raise
                cut = e
                continue
            if obj is not _BLANK:
                feed(lineno, obj)
        return reader.finish()


def _binary_lines(path: str) -> Iterator[bytes]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, errors must name the path
    except OSError as e:
        raise TraceError(path, None, f"cannot read: {e.strerror or e}") from None
    with handle:
        try:
            yield from handle
        except OSError as e:
            raise TraceError(path, None, f"cannot read: {e.strerror or e}") from None


def read_path(path: Union[str, os.PathLike]) -> Trace:
    """Parse and validate the trace file at `path`, streaming it line by line."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise TraceError(name, None, "cannot read: is a directory")
    return read_lines(_binary_lines(name), name=name)

"""Scenarios: a concrete schedule of steps (membership commands and faults) at times after
the schedule's start. The same data model is built by the registry, read from TOML/JSON
files, generated from a seed, and stored in a trace header for `pams replay`."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from checkers.traceformat import COORDINATOR
from checkers.traceformat import FUNCTIONS as COMMANDS
from harness.scenarios.tokens import TOKEN_TEXT_RE, token

PARTICIPANT_FAULTS = ("kill", "restart", "pause", "resume", "partition", "heal", "clock_step")
COORDINATOR_FAULTS = ("pause", "resume", "clock_step")
ACTIONS = COMMANDS + tuple(f for f in PARTICIPANT_FAULTS if f not in COMMANDS)
EXPECT_KINDS = (
    "owed-online",
    "owed-at-reconnect",
    "expired-at-reconnect",
    "after-deregister",
    "msend-after-reconnect",
    "send-while-paused",
    "port-probe",
    "ready-probe",
)
PROFILE_NAMES = ("basic", "skew", "faults", "stress")


class ScenarioError(ValueError):
    """A scenario file or value that cannot be used; str is `WHERE: FIELD: reason`."""


@dataclass(frozen=True)
class Expectation:
    """What a run of the scenario must exercise for its `rule` to be judged at all
    (docs/rules.md, "Not exercised"): at least `count` situations of `kind`, aged between
    `min_age` and `max_age` seconds where the kind has an age."""

    kind: str
    rule: str
    count: int = 1
    min_age: Optional[float] = None
    max_age: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Step:
    """One action at `at` seconds after the schedule starts. `target` is a participant id or
    `coordinator` (faults only); `port` is `fresh` or `same` (register/reconnect). A step may
    carry a `label`; one that `follows` a label waits for that step's actual completion and then
    the planned gap between the two (`at` minus the labelled step's `at`), so that the offline
    periods and message ages a scenario intends hold however slow the program is."""

    at: float
    action: str
    target: str
    message: Optional[str] = None
    port: str = "fresh"
    offset: Optional[float] = None
    label: Optional[str] = None
    follows: Optional[str] = None

    def describe(self) -> str:
        extra = self.message or (f"{self.offset:+g}s" if self.offset is not None else "")
        tags = (f" [{self.label}]" if self.label else "") + (
            f" (after {self.follows} took effect)" if self.follows else ""
        )
        return f"{self.at:7.3f}  {self.target:>11}  {self.action} {extra}".rstrip() + tags


@dataclass(frozen=True)
class Scenario:
    """A named schedule with its parameters. `clock_offsets` are applied at process start;
    `boundary` marks scenarios that probe the td ± tol edge (named as such in reports)."""

    name: str
    participants: tuple[str, ...]
    steps: tuple[Step, ...]
    td: float = 2.0
    description: str = ""
    profiles: tuple[str, ...] = ()
    tolerance: Optional[float] = None
    latency_bound: Optional[float] = None
    clock_offsets: tuple[tuple[str, float], ...] = ()
    boundary: bool = False
    seed: Optional[int] = None
    drain: float = 2.0
    expect: tuple[Expectation, ...] = ()

    def label(self, name: str) -> Optional[Step]:
        """The step carrying label `name`, or None."""
        return next((s for s in self.steps if s.label == name), None)

    @property
    def duration(self) -> float:
        return max((s.at for s in self.steps), default=0.0)

    @property
    def faults(self) -> frozenset:
        kinds = {s.action for s in self.steps if s.action not in COMMANDS}
        return frozenset(kinds | ({"clock_offset"} if self.clock_offsets else set()))

    @property
    def needs_clock(self) -> bool:
        return bool(self.clock_offsets) or any(s.action == "clock_step" for s in self.steps)

    def with_td(self, td: float) -> Scenario:
        """The same schedule with another td (times are kept; the caller owns the meaning)."""
        return replace(self, td=td)

    def to_json(self) -> dict[str, Any]:
        """The concrete schedule as stored in a trace header (docs/trace-format.md `scenario`)."""
        data = asdict(self)
        data["participants"] = list(self.participants)
        data["steps"] = [_step_json(s) for s in self.steps]
        data["clock_offsets"] = {t: o for t, o in self.clock_offsets}
        data["profiles"] = list(self.profiles)
        data["expect"] = [e.to_json() for e in self.expect]
        return data


def _step_json(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"at": round(step.at, 6), "do": step.action, "target": step.target}
    if step.message is not None:
        data["message"] = step.message
    if step.port != "fresh":
        data["port"] = step.port
    if step.offset is not None:
        data["offset"] = step.offset
    if step.label is not None:
        data["label"] = step.label
    if step.follows is not None:
        data["follows"] = step.follows
    return data


# ---------------------------------------------------------------------------- building

DEFAULT_EXPECT = (
    Expectation("owed-online", "no-miss"),
    Expectation("ready-probe", "thread-b-ready"),
)
"""What every built-in scenario exercises: some message owed to an online member, and
thread-B probed at a register/reconnect."""


class Script:
    """Builds a scenario step by step: `s.at(1.0, "1", "msend")`; msend tokens are assigned
    in order (`M00000001`, …) unless given."""

    def __init__(self, name: str, n: int, td: float = 2.0, **kw: Any) -> None:
        self.name, self.td, self.kw = name, td, kw
        self.participants = tuple(str(i) for i in range(1, n + 1))
        self.steps: list[Step] = []
        self._next_token = 1

    def at(self, t: float, target: str, action: str, **kw: Any) -> Script:
        if action == "msend" and "message" not in kw:
            kw["message"] = token(self._next_token)
            self._next_token += 1
        self.steps.append(Step(at=round(t, 6), action=action, target=target, **kw))
        return self

    def all(self, t: float, action: str, gap: float = 0.0) -> Script:
        for i, p in enumerate(self.participants):
            self.at(t + i * gap, p, action)
        return self

    def build(self) -> Scenario:
        steps = tuple(sorted(self.steps, key=lambda s: s.at))
        kw = {**self.kw, "expect": tuple(self.kw.get("expect", ())) + DEFAULT_EXPECT}
        return validate(Scenario(self.name, self.participants, steps, self.td, **kw), "")


# ---------------------------------------------------------------------------- validation


def validate(sc: Scenario, where: str) -> Scenario:
    """Check a scenario's fields; raises ScenarioError naming the field."""
    w = where or f"scenario {sc.name!r}"
    _require(bool(sc.name), w, "name", "must be a non-empty string")
    _require(_finite(sc.td) and sc.td > 0, w, "td", f"must be a positive number, got {sc.td!r}")
    _require(len(sc.participants) > 0, w, "participants", "at least one participant")
    _require(len(set(sc.participants)) == len(sc.participants), w, "participants", "duplicate id")
    for name in ("tolerance", "latency_bound"):
        value = getattr(sc, name)
        ok = value is None or (_finite(value) and value >= 0)
        _require(ok, w, name, f"must be a non-negative number, got {value!r}")
    for target, offset in sc.clock_offsets:
        _require(_known(sc, target), w, f"clock_offsets.{target}", "unknown target")
        _require(_finite(offset), w, f"clock_offsets.{target}", "must be a number")
    labels: dict[str, Step] = {}
    for i, step in enumerate(sc.steps):
        _check_step(sc, step, w, f"steps[{i}]")
        if step.label is not None:
            _require(step.label not in labels, w, f"steps[{i}].label", "duplicate label")
            labels[step.label] = step
    for i, step in enumerate(sc.steps):
        if step.follows is not None:
            anchor = labels.get(step.follows)
            _require(
                anchor is not None, w, f"steps[{i}].follows", f"no step has label {step.follows!r}"
            )
            assert anchor is not None
            _require(
                anchor.at <= step.at, w, f"steps[{i}].follows", "the labelled step must come first"
            )
    for i, e in enumerate(sc.expect):
        _require(
            e.kind in EXPECT_KINDS, w, f"expect[{i}].kind", f"one of {', '.join(EXPECT_KINDS)}"
        )
    return sc


def _check_step(sc: Scenario, step: Step, w: str, f: str) -> None:
    _require(
        step.action in ACTIONS,
        w,
        f"{f}.do",
        f"unknown action {step.action!r} (one of {', '.join(ACTIONS)})",
    )
    _require(_finite(step.at) and step.at >= 0, w, f"{f}.at", "must be a time >= 0")
    if step.target == COORDINATOR:
        _require(
            step.action in COORDINATOR_FAULTS,
            w,
            f"{f}.do",
            f"{step.action!r} cannot target the coordinator",
        )
    else:
        _require(
            step.target in sc.participants,
            w,
            f"{f}.target",
            f"unknown participant {step.target!r} (have {', '.join(sc.participants)})",
        )
    if step.action == "msend":
        ok = step.message is not None and TOKEN_TEXT_RE.fullmatch(step.message) is not None
        _require(ok, w, f"{f}.message", f"must be a token like M00000001, got {step.message!r}")
    if step.action == "clock_step":
        _require(
            step.offset is not None and _finite(step.offset),
            w,
            f"{f}.offset",
            "clock_step needs a numeric offset (seconds)",
        )
    _require(step.port in ("fresh", "same"), w, f"{f}.port", "must be 'fresh' or 'same'")


def _known(sc: Scenario, target: str) -> bool:
    return target == COORDINATOR or target in sc.participants


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _require(ok: bool, where: str, fieldname: str, reason: str) -> None:
    if not ok:
        raise ScenarioError(f"{where}: {fieldname}: {reason}")


# ---------------------------------------------------------------------------- files / JSON

_TOP = {
    "name",
    "description",
    "td",
    "participants",
    "steps",
    "tolerance",
    "latency_bound",
    "clock_offsets",
    "boundary",
    "seed",
    "drain",
    "profiles",
    "expect",
}
_STEP = {
    "at",
    "after",
    "do",
    "target",
    "participant",
    "message",
    "port",
    "offset",
    "label",
    "follows",
}


def from_json(data: Any, where: str) -> Scenario:
    """A scenario from its JSON/TOML form (a file or a trace header's `scenario`). Steps may
    give `at` (absolute) or `after` (seconds after the previous step); msend steps without a
    message get fresh tokens."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: scenario: must be a table/object")
    _no_unknown(data, _TOP, where, "")
    participants = _participants(data.get("participants", 2), where)
    steps = _steps(data.get("steps", []), where)
    offsets = data.get("clock_offsets", {})
    if not isinstance(offsets, dict):
        raise ScenarioError(f"{where}: clock_offsets: must be a table of target = seconds")
    sc = Scenario(
        name=str(data.get("name") or Path(where).stem),
        participants=participants,
        steps=steps,
        td=_num(data, "td", 2.0, where),
        description=str(data.get("description", "")),
        profiles=tuple(data.get("profiles", ())),
        tolerance=_opt_num(data, "tolerance", where),
        latency_bound=_opt_num(data, "latency_bound", where),
        clock_offsets=tuple(
            (str(k), _as_float(v, where, f"clock_offsets.{k}")) for k, v in offsets.items()
        ),
        boundary=bool(data.get("boundary", False)),
        seed=data.get("seed"),
        drain=_num(data, "drain", 2.0, where),
        expect=_expectations(data.get("expect", []), where),
    )
    validate(sc, where)
    return replace(sc, steps=tuple(sorted(sc.steps, key=lambda s: s.at)))


def load_file(path: Path) -> Scenario:
    """Read a scenario from a .toml or .json file (errors name the file and field)."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ScenarioError(f"{where}: cannot read: {e.strerror or e}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise ScenarioError(f"{where}: invalid JSON: {e}") from None
    else:
        data = _toml(raw, where)
    return from_json(data, where)


def _toml(raw: bytes, where: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised by the py39/py310 tox environments
        import tomli as tomllib
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"{where}: invalid TOML: {e}") from None


def _participants(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 200:
        return tuple(str(i) for i in range(1, value + 1))
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return tuple(str(v) for v in value)
    raise ScenarioError(f"{where}: participants: a count (1-200) or a list of ids, got {value!r}")


def _steps(value: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: steps: must be a list of tables")
    steps: list[Step] = []
    prev, counter = 0.0, 1
    for i, raw in enumerate(value):
        f = f"steps[{i}]"
        if not isinstance(raw, dict):
            raise ScenarioError(f"{where}: {f}: must be a table")
        _no_unknown(raw, _STEP, where, f + ".")
        at = _step_time(raw, prev, where, f)
        message = raw.get("message")
        if raw.get("do") == "msend" and message is None:
            message = token(counter)
            counter += 1
        target = raw.get("target", raw.get("participant"))
        if target is None:
            raise ScenarioError(f"{where}: {f}.target: missing (participant id or coordinator)")
        offset = raw.get("offset")
        steps.append(
            Step(
                at,
                str(raw.get("do", "")),
                str(target),
                message,
                str(raw.get("port", "fresh")),
                None if offset is None else _as_float(offset, where, f + ".offset"),
                _opt_str(raw, "label", where, f),
                _opt_str(raw, "follows", where, f),
            )
        )
        prev = at
    return tuple(steps)  # in file order, so errors name the step the user wrote


def _opt_str(raw: dict, key: str, where: str, f: str) -> Optional[str]:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ScenarioError(f"{where}: {f}.{key}: must be a non-empty string")
    return value


def _expectations(value: Any, where: str) -> tuple[Expectation, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScenarioError(f"{where}: expect: must be a list of tables")
    out = []
    for i, raw in enumerate(value):
        f = f"expect[{i}]"
        _no_unknown(raw, {"kind", "rule", "count", "min_age", "max_age"}, where, f + ".")
        if not isinstance(raw.get("kind"), str) or not isinstance(raw.get("rule"), str):
            raise ScenarioError(f"{where}: {f}: needs a kind and a rule (strings)")
        count = raw.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ScenarioError(f"{where}: {f}.count: must be an integer >= 1")
        ages = {k: _as_float(raw[k], where, f"{f}.{k}") for k in ("min_age", "max_age") if k in raw}
        out.append(Expectation(raw["kind"], raw["rule"], count, **ages))
    return tuple(out)


def _step_time(raw: dict, prev: float, where: str, f: str) -> float:
    if "at" in raw and "after" in raw:
        raise ScenarioError(f"{where}: {f}: give either at or after, not both")
    if "after" in raw:
        return prev + _as_float(raw["after"], where, f + ".after")
    if "at" not in raw:
        raise ScenarioError(f"{where}: {f}: give its time: at (seconds after the start) or after")
    return _as_float(raw["at"], where, f + ".at")


def _no_unknown(data: dict, known: set[str], where: str, prefix: str) -> None:
    for key in data:
        if key not in known:
            raise ScenarioError(
                f"{where}: {prefix}{key}: unknown field (known: {', '.join(sorted(known))})"
            )


def _as_float(value: Any, where: str, fieldname: str) -> float:
    if not _finite(value):
        raise ScenarioError(f"{where}: {fieldname}: must be a number, got {value!r}")
    return float(value)


def _num(data: dict, key: str, default: float, where: str) -> float:
    return _as_float(data.get(key, default), where, key)


def _opt_num(data: dict, key: str, where: str) -> Optional[float]:
    return None if data.get(key) is None else _as_float(data[key], where, key)

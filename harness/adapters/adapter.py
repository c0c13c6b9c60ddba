"""Adapter files (docs/adapter.md): load and validate the TOML that tells the harness how to
build and run one implementation, render its placeholders, and run its `build` command once.

Every problem with an adapter file is an `AdapterError` whose str is one line,
`PATH: KEY: reason` (KEY dotted, e.g. `participant.cmd[1]`, `commands.msend`).
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
import shlex
import signal
import string
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Optional

from harness.running.limits import Limits
from harness.running.opmachine import COMPLETE_ON, DEFAULT_REFUSAL, EITHER, REPLY, Policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the py39/py310 tox environments
    import tomli as tomllib

BUNDLED_DIR = Path(__file__).resolve().parent
DIRECTORY_FILES = ("pams.toml", "adapter.toml")
from checkers.traceformat import FUNCTIONS as COMMANDS  # noqa: E402

PROCESS_KINDS = ("coordinator", "participant")
OUTPUT_CAP = 256 * 1024  # bytes of build output kept (the tail)

# --- placeholders: the ONE table of which {name} has a value in which field -------------------
_GLOBAL = frozenset(
    {
        "python",
        "workdir",
        "td",
        "coordinator_host",
        "coordinator_port",
        "coordinator_port2",
        "port2",
    }
)
_CONFIG = frozenset({"config", "config_name"})
_LOG = frozenset({"log", "log_name", "id"})
_BUILD_TIME = frozenset({"python", "workdir"})
_COORDINATOR = _GLOBAL | _CONFIG | {"port"}
_PARTICIPANT = _GLOBAL | _CONFIG | _LOG
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "build": _BUILD_TIME,
    "env": _BUILD_TIME,
    "coordinator.cmd": _COORDINATOR,
    "coordinator.config": _COORDINATOR,
    "coordinator.stdin_preamble": _COORDINATOR,
    "participant.cmd": _PARTICIPANT,
    "participant.config": _PARTICIPANT,
    "participant.stdin_preamble": _PARTICIPANT,
    "commands.register": _PARTICIPANT | {"port"},
    "commands.reconnect": _PARTICIPANT | {"port"},
    "commands.msend": _PARTICIPANT | {"message"},
    "commands.deregister": _PARTICIPANT,
    "commands.disconnect": _PARTICIPANT,
}
"""Placeholders that have a value in each templated field (docs/adapter.md). `{port}` is the
coordinator's listening port in coordinator fields and thread-B's port in register/reconnect.
Fields not listed here (`name`, `workdir`, the `commands.*_pattern` regexes) are taken literally.
`{coordinator_port2}` is the coordinator's second port (`{port2}` in coordinator fields), which
participants reach through their own proxy like the first (docs/adapter.md)."""
ALL_PLACEHOLDERS = frozenset().union(*PLACEHOLDERS.values())


class AdapterError(Exception):
    """An adapter file that cannot be used; str() is one line, `PATH: KEY: reason`."""


class BuildError(Exception):
    """The adapter's `build` command failed; str() is a one-line summary, `.output` its output."""

    def __init__(self, summary: str, output: str) -> None:
        super().__init__(summary)
        self.output = output


# --- the data --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoordinatorSpec:
    """How to start the coordinator; `port` non-zero means it always listens there."""

    cmd: tuple[str, ...]
    config: str
    port: int = 0
    stdin_preamble: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParticipantSpec:
    """How to start a participant; `restart_on_exit` restarts one that exited before its next op;
    `exit_on_deregister` declares that it exits on deregister (not a crash)."""

    cmd: tuple[str, ...]
    config: str
    stdin_preamble: tuple[str, ...] = ()
    restart_on_exit: bool = True
    exit_on_deregister: bool = False


@dataclass(frozen=True)
class Commands:
    """The stdin line templates of the five operations, plus what completes an op (the
    op-completion machine's policy: docs/adapter.md, `[commands]`) and pacing."""

    register: str = "register {port}"
    deregister: str = "deregister"
    disconnect: str = "disconnect"
    reconnect: str = "reconnect {port}"
    msend: str = "msend {message}"
    done_pattern: str = ""
    reply_pattern: str = ""
    refusal_pattern: str = DEFAULT_REFUSAL
    prompt_pattern: str = ""
    complete_on: str = ""  # "" = "either" with a done_pattern, else "reply"
    min_gap: float = 0.0

    @property
    def done_re(self) -> Optional[re.Pattern[str]]:
        """The compiled `done_pattern` (searched in each stdout line), or None when unset."""
        return re.compile(self.done_pattern) if self.done_pattern else None

    @property
    def prompt_re(self) -> Optional[re.Pattern[str]]:
        """`prompt_pattern` anchored at the end of unterminated stdout text, or None."""
        return re.compile(f"(?:{self.prompt_pattern})$") if self.prompt_pattern else None

    def policy(self, latency: float, op_timeout: float) -> Policy:
        """The op-completion policy these commands imply."""
        how = self.complete_on or (EITHER if self.done_pattern else REPLY)
        return Policy(
            complete_on=how,
            done_re=self.done_re,
            reply_re=re.compile(self.reply_pattern) if self.reply_pattern else None,
            refusal_re=re.compile(self.refusal_pattern) if self.refusal_pattern else None,
            latency=latency,
            op_timeout=op_timeout,
        )


@dataclass(frozen=True)
class ClockSpec:
    """`fake_monotonic`: also fake the monotonic clock. No known runtime needs it (the JVM works
    with only the wall clock faked, docs/clock.md); with it, clock steps are skipped."""

    fake_monotonic: bool = False


@dataclass(frozen=True)
class Timing:
    """Seconds allowed for a process to start listening, and for one operation to complete."""

    startup: float = 10.0
    op_timeout: float = 5.0


@dataclass(frozen=True)
class ProxySpec:
    """Extension `[proxy]`: may the harness rewrite the thread-B port a participant advertises,
    so that delivery traffic also goes through its recording proxy?"""

    rewrite_ports: bool = True


@dataclass(frozen=True)
class Adapter:
    """A validated adapter: everything the harness needs to build and drive one implementation."""

    name: str
    path: Optional[Path]
    workdir: Path
    coordinator: CoordinatorSpec
    participant: ParticipantSpec
    build: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[int, int] = (20000, 60999)
    commands: Commands = Commands()
    clock: ClockSpec = ClockSpec()
    timing: Timing = Timing()
    proxy: ProxySpec = ProxySpec()
    limits: Limits = Limits()

    @property
    def serialized(self) -> bool:
        """True when runs of this adapter cannot overlap (its coordinator port is fixed)."""
        return self.coordinator.port != 0

    def env_dict(self) -> dict[str, str]:
        """The extra environment for every process and the build, placeholders rendered."""
        return {k: self._render(f"env.{k}", v, {}) for k, v in self.env}

    def build_argv(self) -> list[str]:
        """The `build` command, placeholders rendered (empty: nothing to build)."""
        return [self._render(f"build[{i}]", a, {}) for i, a in enumerate(self.build)]

    def coordinator_argv(self, values: Mapping[str, object]) -> list[str]:
        """The coordinator's argv for these placeholder values."""
        return self._argv("coordinator.cmd", self.coordinator.cmd, values)

    def coordinator_config(self, values: Mapping[str, object]) -> str:
        """The text of the coordinator's config file."""
        return self._render("coordinator.config", self.coordinator.config, values)

    def participant_argv(self, values: Mapping[str, object]) -> list[str]:
        """A participant's argv for these placeholder values."""
        return self._argv("participant.cmd", self.participant.cmd, values)

    def participant_config(self, values: Mapping[str, object]) -> str:
        """The text of a participant's config file."""
        return self._render("participant.config", self.participant.config, values)

    def preamble(self, kind: str, values: Mapping[str, object]) -> list[str]:
        """Lines written to the stdin of a `kind` process ("coordinator"/"participant") at start."""
        if kind not in PROCESS_KINDS:
            raise ValueError(f"unknown process kind {kind!r}; expected one of {PROCESS_KINDS}")
        spec = self.coordinator if kind == "coordinator" else self.participant
        return self._argv(f"{kind}.stdin_preamble", spec.stdin_preamble, values)

    def command_line(self, f: str, values: Mapping[str, object]) -> str:
        """The stdin text of operation `f` (one of COMMANDS), without the final newline; it may
        hold inner newlines for programs that ask for the message on a second line."""
        if f not in COMMANDS:
            raise ValueError(f"unknown operation {f!r}; expected one of {', '.join(COMMANDS)}")
        return self._render(f"commands.{f}", getattr(self.commands, f), values)

    def describe(self) -> dict[str, str]:
        """What a trace header's `implementation` records about this adapter."""
        info = {"name": self.name, "workdir": str(self.workdir)}
        if self.path is not None:
            info["path"] = str(self.path)
        return info

    def _argv(self, key: str, items: tuple[str, ...], values: Mapping[str, object]) -> list[str]:
        return [self._render(f"{key}[{i}]", item, values) for i, item in enumerate(items)]

    def _render(self, key: str, template: str, values: Mapping[str, object]) -> str:
        builtins = {"python": sys.executable, "workdir": str(self.workdir)}
        return _render(template, {**builtins, **values}, f"{self.path or self.name}: {key}")


# --- rendering -------------------------------------------------------------------------------
class _TemplateError(Exception):
    """A malformed template (internal; turned into an AdapterError with its file and key)."""


def format_td(td: float) -> str:
    """td as written into configs: an integer when integral (`2`), else shortest decimal (`2.5`)."""
    if not math.isfinite(td):
        raise ValueError(f"td must be finite, got {td!r}")
    return str(int(td)) if float(td).is_integer() else repr(float(td))


def _text(value: object) -> str:
    return format_td(value) if isinstance(value, float) else str(value)


def _pieces(template: str) -> list[tuple[str, Optional[str]]]:
    """(literal text, placeholder name or None) pairs of `template`; raises _TemplateError."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _TemplateError(
            f"unbalanced brace ({exc}); write {{{{ or }}}} for a literal one"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or not name.isidentifier()):
            raise _TemplateError(
                f"placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} is not a plain {{name}}; "
                "write {{ or }} for a literal brace"
            )
    return [(literal, name) for literal, name, _, _ in parsed]


def render(template: str, values: Mapping[str, object], where: str = "") -> str:
    """Substitute `{name}` placeholders from `values` (`{{`/`}}` are literal braces, floats are
    written by `format_td`); AdapterError, prefixed by `where`, if one is malformed or unset."""
    return _render(template, values, where or f"template {template!r}")


def _render(template: str, values: Mapping[str, object], where: str) -> str:
    try:
        pieces = _pieces(template)
    except _TemplateError as exc:
        raise AdapterError(f"{where}: {exc}") from None
    out = []
    for literal, name in pieces:
        out.append(literal)
        if name is not None:
            if values.get(name) is None:
                raise AdapterError(f"{where}: no value for placeholder {{{name}}}")
            out.append(_text(values[name]))
    return "".join(out)


def _suggest(word: str, known: Iterable[str], wrap: Callable[[str], str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {wrap(close[0])}?)" if close else ""


def _template_problem(field: str, template: str) -> Optional[str]:
    """Why `template` cannot be used in `field` (a PLACEHOLDERS key), or None when it can."""
    try:
        pieces = _pieces(template)
    except _TemplateError as exc:
        return str(exc)
    allowed = PLACEHOLDERS[field]
    for _, name in pieces:
        if name is None or name in allowed:
            continue
        if name not in ALL_PLACEHOLDERS:
            return f"unknown placeholder {{{name}}}" + _suggest(
                name, ALL_PLACEHOLDERS, lambda n: "{" + n + "}"
            )
        available = ", ".join("{" + n + "}" for n in sorted(allowed))
        return f"placeholder {{{name}}} has no value in this field (available: {available})"
    return None


# --- the schema ------------------------------------------------------------------------------
def _number(value: object) -> Optional[float]:
    """`value` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _string(value: object) -> Optional[str]:
    return None if isinstance(value, str) else "must be a string"


def _non_empty(value: object) -> Optional[str]:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _strings(value: object) -> Optional[str]:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return None if ok else "must be a list of strings"


def _argv(value: object) -> Optional[str]:
    if not isinstance(value, list) or _strings(value) or not value or not value[0]:
        return 'must be a non-empty list of strings, the program first (e.g. ["java", "X"])'
    return None


def _complete_on(value: object) -> Optional[str]:
    ok = value in COMPLETE_ON
    return None if ok else f"must be one of {', '.join(map(repr, COMPLETE_ON))}"


def _bool(value: object) -> Optional[str]:
    return None if isinstance(value, bool) else "must be true or false"


def _positive(value: object) -> Optional[str]:
    seconds = _number(value)
    ok = seconds is not None and seconds > 0
    return None if ok else "must be a positive number of seconds"


def _non_negative(value: object) -> Optional[str]:
    seconds = _number(value)
    ok = seconds is not None and seconds >= 0
    return None if ok else "must be a number of seconds >= 0"


def _fixed_port(value: object) -> Optional[str]:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535
    return None if ok else "must be an integer 1-65535, or 0 for none"


def _port_range(value: object) -> Optional[str]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1] <= 65535
    )
    return None if ok else "must be two integers [lo, hi] with 1 <= lo <= hi <= 65535"


def _env(value: object) -> Optional[str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return 'must be a table of strings (e.g. env = {JAVA_HOME = "/opt/jdk"})'
    bad = [k for k in value if not k or "=" in k or "\0" in k]
    return f"{bad[0]!r} is not an environment variable name" if bad else None


def _regex(value: object) -> Optional[str]:
    if not isinstance(value, str):
        return "must be a string (a regular expression)"
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


_SIZE_RE = re.compile(r"(\d+)\s*([KMG]i?B?|B)?", re.IGNORECASE)
_SCALE = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def parse_size(value: object) -> Optional[int]:
    """Bytes from an integer or a string like "256M", "2 GiB", "512k" (None if neither)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    match = _SIZE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    unit = (match.group(2) or "").upper()[:1]
    return int(match.group(1)) * _SCALE[unit]


def _byte_size(value: object) -> Optional[str]:
    ok = parse_size(value) is not None
    return None if ok else 'must be a size: bytes, or a string like "256M" or "2G" (0: no limit)'


def _count(value: object) -> Optional[str]:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be a whole number (0: no limit)"


@dataclass(frozen=True)
class _Field:
    """One key of the adapter file: its check (a reason, or None when valid) and whether it must
    be present (the defaults live on the dataclasses above)."""

    check: Callable[[object], Optional[str]]
    required: bool = False


_SCHEMA: dict[str, dict[str, _Field]] = {
    "": {
        "name": _Field(_non_empty),
        "workdir": _Field(_string),
        "build": _Field(_strings),
        "env": _Field(_env),
        "ports": _Field(_port_range),
    },
    "coordinator": {
        "cmd": _Field(_argv, required=True),
        "config": _Field(_string, required=True),
        "port": _Field(_fixed_port),
        "stdin_preamble": _Field(_strings),
    },
    "participant": {
        "cmd": _Field(_argv, required=True),
        "config": _Field(_string, required=True),
        "stdin_preamble": _Field(_strings),
        "restart_on_exit": _Field(_bool),
        "exit_on_deregister": _Field(_bool),
    },
    "commands": {
        **{f: _Field(_non_empty) for f in COMMANDS},
        "done_pattern": _Field(_regex),
        "reply_pattern": _Field(_regex),
        "refusal_pattern": _Field(_regex),
        "prompt_pattern": _Field(_regex),
        "complete_on": _Field(_complete_on),
        "min_gap": _Field(_non_negative),
    },
    "clock": {"fake_monotonic": _Field(_bool)},
    "timing": {"startup": _Field(_positive), "op_timeout": _Field(_positive)},
    "proxy": {"rewrite_ports": _Field(_bool)},
    "limits": {
        "memory": _Field(_byte_size),
        "processes": _Field(_count),
        "cpu": _Field(_non_negative),
        "file_size": _Field(_byte_size),
        "open_files": _Field(_count),
    },
}
TABLES = tuple(t for t in _SCHEMA if t)


def _dotted(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _home(table: str) -> str:
    return f"[{table}]" if table else "the top level, before any [table]"


def _unknown_key(table: str, key: str) -> str:
    """Why `key` is not allowed in `table`, with the table it belongs in or the closest key."""
    elsewhere = {k: t for t in _SCHEMA if t != table for k in _SCHEMA[t]}
    if key in elsewhere:
        return f"unknown key ({key} belongs in {_home(elsewhere[key])})"
    known = set(_SCHEMA[table]) | (set(TABLES) if not table else set())
    here = _suggest(key, known, repr)
    if here:
        return "unknown key" + here
    return "unknown key" + _suggest(key, elsewhere, lambda k: f"{k!r} in {_home(elsewhere[k])}")


def _templates(key: str, value: object) -> list[tuple[str, str]]:
    """(shown key, template) for each templated string under `key` (none if not templated)."""
    if key not in PLACEHOLDERS:
        return []
    if isinstance(value, dict):
        return [(f"{key}.{k}", v) for k, v in value.items()]
    if isinstance(value, list):
        return [(f"{key}[{i}]", v) for i, v in enumerate(value)]
    return [(key, value)] if isinstance(value, str) else []  # checked: a string here


def _problems(raw: dict[str, object]) -> list[tuple[str, str]]:
    """Every (key, reason) wrong with a parsed adapter file: the top level's shape first, then
    each table's keys in schema order."""
    shape = [(k, _unknown_key("", k)) for k in raw if k not in _SCHEMA[""] and k not in TABLES]
    shape += [
        (t, f"must be a table ([{t}])") for t in TABLES if not isinstance(raw.get(t, {}), dict)
    ]
    if shape:
        return shape
    return [p for t in _SCHEMA for p in _table_problems(t, _table(raw, t))]


def _consistency(raw: dict[str, object]) -> list[tuple[str, str]]:
    """Problems between keys: `complete_on = "line"` needs a `done_pattern`."""
    commands = _table(raw, "commands")
    if commands.get("complete_on") == "line" and not commands.get("done_pattern"):
        return [("commands.complete_on", '"line" needs a commands.done_pattern to match')]
    return []


def _table_problems(table: str, section: dict[str, object]) -> list[tuple[str, str]]:
    unknown = [k for k in section if table and k not in _SCHEMA[table]]
    found = [(_dotted(table, k), _unknown_key(table, k)) for k in unknown]
    for key, field in _SCHEMA[table].items():
        dotted = _dotted(table, key)
        if key not in section:
            found += [(dotted, "required key missing")] if field.required else []
            continue
        reason = field.check(section[key])
        found += [(dotted, reason)] if reason else _template_problems(dotted, section[key])
    return found


def _template_problems(key: str, value: object) -> list[tuple[str, str]]:
    found = []
    for shown, template in _templates(key, value):
        reason = _template_problem(key, template)
        found += [(shown, reason)] if reason else []
    return found


# --- loading ---------------------------------------------------------------------------------
def _locate(ref: str) -> Path:
    """The adapter file `ref` names: "reference", a TOML file, or a directory holding one."""
    if ref == "reference":
        return BUNDLED_DIR / "reference.toml"
    path = Path(ref)
    if path.is_dir():
        for candidate in DIRECTORY_FILES:
            if (path / candidate).is_file():
                return path / candidate
        raise AdapterError(f"{ref}: no {' or '.join(DIRECTORY_FILES)} in this directory")
    if not path.exists():
        raise AdapterError(
            f"{ref}: adapter file not found (give 'reference', a TOML file, "
            f"or a directory containing {' or '.join(DIRECTORY_FILES)})"
        )
    return path


def _parse(path: Path) -> dict[str, object]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read adapter file: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AdapterError(f"{path}: invalid TOML: {exc}") from None


def _default_name(path: Path) -> str:
    return path.parent.resolve().name if path.name in DIRECTORY_FILES else path.stem


def _table(raw: dict[str, object], key: str) -> dict[str, object]:
    """The table `key` of a parsed adapter file ({} if absent; the top level for "")."""
    table = raw.get(key, {}) if key else raw
    assert isinstance(table, dict), key  # _problems reports a key that is not a table
    return table


def _tuple(raw: dict[str, object], key: str, default: tuple[Any, ...]) -> tuple[Any, ...]:
    """The list `key` of a parsed adapter file as a tuple (`default` if absent)."""
    value = raw.get(key, default)
    assert isinstance(value, (list, tuple)), key  # checked by _problems
    return tuple(value)


def _section(raw: dict[str, object], table: str) -> dict[str, Any]:
    """The table's values, lists as tuples and seconds as floats, ready for its dataclass (Any:
    _problems checked each against _SCHEMA)."""
    return {key: _value(table, key, value) for key, value in _table(raw, table).items()}


def _value(table: str, key: str, value: object) -> object:
    if isinstance(value, list):
        return tuple(value)
    seconds = _number(value)
    if seconds is not None and _SCHEMA[table][key].check in (_positive, _non_negative):
        return seconds
    return value


def _adapter(path: Path, raw: dict[str, object]) -> Adapter:
    workdir = (path.parent / str(raw.get("workdir", "."))).resolve()
    if not workdir.is_dir():
        raise AdapterError(f"{path}: workdir: no such directory: {workdir}")
    return Adapter(
        name=str(raw.get("name", _default_name(path))),
        path=path.resolve(),
        workdir=workdir,
        build=_tuple(raw, "build", ()),
        env=tuple((k, str(v)) for k, v in _table(raw, "env").items()),  # strings: checked
        ports=_tuple(raw, "ports", Adapter.ports),
        coordinator=CoordinatorSpec(**_section(raw, "coordinator")),
        participant=ParticipantSpec(**_section(raw, "participant")),
        commands=Commands(**_section(raw, "commands")),
        clock=ClockSpec(**_section(raw, "clock")),
        timing=Timing(**_section(raw, "timing")),
        proxy=ProxySpec(**_section(raw, "proxy")),
        limits=_limits(_section(raw, "limits")),
    )


def _limits(section: dict[str, object]) -> Limits:
    sizes = {k: parse_size(v) for k, v in section.items() if k in ("memory", "file_size")}
    return Limits(**{**section, **sizes})  # type: ignore[arg-type]  # checked by the schema


def load_adapter(ref: str) -> Adapter:
    """Load and validate an adapter: `ref` is "reference" (the bundled one), a TOML file, or a
    directory containing pams.toml or adapter.toml. Raises AdapterError (`PATH: KEY: reason`)."""
    path = _locate(ref)
    raw = _parse(path)
    problems = _problems(raw) or _consistency(raw)
    if problems:
        key, reason = problems[0]
        more = "; ".join(f"{k}: {r}" for k, r in problems[1:])
        also = f" (and {len(problems) - 1} more: {more})" if more else ""
        raise AdapterError(f"{path}: {key}: {reason}{also}")
    return _adapter(path, raw)


# --- build -----------------------------------------------------------------------------------
_BUILD_LOCK = threading.Lock()
_BUILD_LOCKS: dict[tuple[object, ...], threading.Lock] = {}
_BUILD_OUTCOMES: dict[tuple[object, ...], Optional[BuildError]] = {}


def build(adapter: Adapter, timeout: float = 300.0) -> None:
    """Run the adapter's `build` in its workdir, once per process (thread-safe: concurrent
    callers wait for the one build); raises BuildError, every time, if that build failed."""
    argv = adapter.build_argv()
    if not argv:
        return
    key = (adapter.path, adapter.workdir, tuple(argv), adapter.env)
    with _BUILD_LOCK:
        lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key not in _BUILD_OUTCOMES:
            _BUILD_OUTCOMES[key] = _run_build(argv, adapter.workdir, adapter.env_dict(), timeout)
        error = _BUILD_OUTCOMES[key]
    if error is not None:
        raise BuildError(str(error), error.output)


def _run_build(
    argv: list[str], workdir: Path, env: dict[str, str], timeout: float
) -> Optional[BuildError]:
    """Run one build to completion (or kill its process group at `timeout`); None on success."""
    shown = shlex.join(argv)
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            return BuildError(f"build failed (program not found: {argv[0]}): {shown}", "")
        except OSError as exc:
            return BuildError(f"build failed (cannot start {argv[0]}: {exc.strerror}): {shown}", "")
        try:
            code: Optional[int] = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind, or all of it
            proc.wait()
        output = _tail(out)
    if code == 0:
        return None
    return BuildError(f"build failed ({_why(code, timeout)}): {shown}", output)


def _why(code: Optional[int], timeout: float) -> str:
    if code is None:
        return f"timed out after {timeout:g} s"
    return f"killed by signal {-code}" if code < 0 else f"exit {code}"


def _tail(out: IO[bytes]) -> str:
    """The captured output (its last OUTPUT_CAP bytes), decoded leniently."""
    size = out.seek(0, os.SEEK_END)
    out.seek(max(0, size - OUTPUT_CAP))
    data = out.read()
    skipped = f"[... {size - OUTPUT_CAP} bytes omitted]\n" if size > OUTPUT_CAP else ""
    return skipped + data.decode("utf-8", errors="replace")

"""The adapter file `pams init` writes (pure): every field with a one-line `# comment` saying
how it was found, and at the top what could not be inferred."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from harness.adapters.init.infer import Findings
from harness.adapters.init.variants import prompt_pattern


@dataclass(frozen=True)
class Sheet:
    """Everything the file says besides the probe's findings."""

    name: str
    workdir: str
    build: Sequence[str]
    build_how: str
    env: Mapping[str, str]
    env_how: str
    coordinator_cmd: Sequence[str]
    coordinator_how: str
    participant_cmd: Sequence[str]
    participant_how: str
    startup: Optional[float] = None
    startup_how: str = ""


def value(v: object) -> str:
    """A TOML value: strings as basic strings, lists and inline tables of them, numbers."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
    assert isinstance(v, (list, tuple)), v
    return "[" + ", ".join(value(x) for x in v) + "]"


def one_line(text: str) -> str:
    return " ".join(text.split())


def field(key: str, v: object, how: str = "") -> str:
    line = f"{key} = {value(v)}"
    return f"{line}  # {one_line(how)}" if how else line


def _program(table: str, cmd: list[str], how: str, spec: Any, config_how: str) -> list[str]:
    """A program's table head: its command line (how it was found, how its config reaches
    it) and its config line."""
    return [
        "",
        f"[{table}]",
        field("cmd", cmd, how + "; config " + _delivery(spec)),
        field("config", spec.config, config_how),
    ]


def _preamble(spec: Any) -> list[str]:
    if not spec.preamble:
        return []
    return [
        field("stdin_preamble", list(spec.preamble), "it reads its config file name from stdin")
    ]


def render(sheet: Sheet, f: Findings, when: str = "") -> str:
    """The adapter file's text."""
    why = f.why
    out = [
        f"# Adapter written by `pams init`{(' on ' + when) if when else ''}: "
        "each field says how it was found."
    ]
    if f.unknown:
        out.append("# Could not infer (check these by hand):")
        out += [f"#   - {one_line(u)}" for u in f.unknown]
    else:
        out.append(
            "# Nothing was left uninferred; `pams init --check` runs the smoke schedule again."
        )
    if f.smoke:
        out.append("# Smoke schedule as probed: " + one_line("; ".join(f.smoke)))
    out += [
        field("name", sheet.name, "the submission's directory name"),
        field("workdir", sheet.workdir, "the submission, relative to this file"),
    ]
    if sheet.build:
        out.append(field("build", list(sheet.build), sheet.build_how))
    if sheet.env:
        out.append(field("env", dict(sheet.env), sheet.env_how))
    if f.four_digit:
        out.append(field("ports", [4000, 9999], why.get("ports", "4-digit ports")))
    c, p = f.coordinator, f.participant
    c_how = why.get("coordinator", f"config {c.label}")
    out += _program(
        "coordinator", [*sheet.coordinator_cmd, *c.tail], sheet.coordinator_how, c, c_how
    )
    if f.fixed_port:
        how = why.get("port", "it listens there whatever its config says")
        out.append(field("port", f.fixed_port, how))
    out += _preamble(c)
    p_how = why.get("participant", f"config {p.label}")
    out += _program(
        "participant", [*sheet.participant_cmd, *p.tail], sheet.participant_how, p, p_how
    )
    out += _preamble(p)
    if f.exit_on_deregister:
        out.append(field("restart_on_exit", True, "started again before its next command"))
        out.append(field("exit_on_deregister", True, why["exit_on_deregister"]))
    out += ["", "[commands]"]
    for op in ("register", "deregister", "disconnect", "reconnect", "msend"):
        how = (
            "reached the coordinator when probed"
            if op in f.commands
            else "the assignment's word (not confirmed)"
        )
        out.append(field(op, f.command(op), how))
    if f.done_pattern:
        out.append(
            field("done_pattern", f.done_pattern, why.get("done_pattern", "its answer lines"))
        )
    elif why.get("done_pattern"):
        out.append(f"# no done_pattern: {one_line(why['done_pattern'])}")
    if f.reply_pattern:
        out.append(field("reply_pattern", f.reply_pattern, why.get("reply_pattern", "")))
        if not f.done_pattern:
            out.append(
                field("complete_on", "reply", "only the coordinator's answer completes an op")
            )
    if f.prompt:
        out.append(
            field(
                "prompt_pattern",
                prompt_pattern(f.prompt),
                why.get("prompt_pattern", f"its prompt {f.prompt!r}"),
            )
        )
    if sheet.startup:
        out += ["", "[timing]", field("startup", sheet.startup, sheet.startup_how)]
    return "\n".join(out) + "\n"


def _delivery(v: object) -> str:
    tail = getattr(v, "tail", ())
    return "path as its argument" if tail else "file name on stdin"

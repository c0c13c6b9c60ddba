"""`pams show --text`: a run's timeline in a terminal, one line per event that matters (ops
and their completions, deliveries, faults, failed probes, process exits), each violation
marked on the line of the event it concerns and explained after the timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from checkers import Verdict, check_path
from checkers.verdict import fmt_t

SHOWN = {"invoke", "ok", "fail", "info", "ack", "refused", "deliver", "fault", "probe", "process"}


def _events(path: Path) -> Iterator[dict[str, Any]]:
    """The trace's events (after the header) that the timeline shows."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        next(lines, None)
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                return  # a cut last line (the checker has read the trace already)
            if isinstance(event, dict) and event.get("type") in SHOWN:
                yield event


def _who(event: dict[str, Any]) -> str:
    p = event.get("participant", event.get("target"))
    return "coordinator" if p == "coordinator" else f"p{p}" if p is not None else ""


def _describe(event: dict[str, Any], ops: dict[Any, dict[str, Any]]) -> str:
    kind = event["type"]
    if kind == "invoke":
        ops[event.get("op")] = event
        what = " ".join(str(event[k]) for k in ("message", "port") if k in event)
        return f"{_who(event):<11} {event.get('f')} {what}".rstrip()
    if kind in ("ok", "fail", "info", "ack", "refused"):
        op = ops.get(event.get("op"), {})
        extra = event.get("refusal") or event.get("error") or event.get("reason") or ""
        if event.get("acknowledged") is False:
            kind = "ok (unacknowledged)"
        return f"{_who(op):<11} {op.get('f', '?')} -> {kind} {extra}".rstrip()
    if kind == "deliver":
        return f"{_who(event):<11} logged {event.get('message')}"
    if kind == "fault":
        offset = f" {event['offset']:+g} s" if "offset" in event else ""
        return f"{_who(event):<11} FAULT {event.get('fault')}{offset}"
    if kind == "probe":
        state = "ok" if event.get("ok") else "FAILED"
        return f"{_who(event):<11} probe {event.get('probe')} port {event.get('port')}: {state}"
    return f"{_who(event):<11} process {event.get('event')} {event.get('returncode', '')}".rstrip()


def _marks(verdict: Verdict) -> dict[tuple[str, str], list[str]]:
    """Where each violation is marked: a delivery at (participant, token); a message's msend
    at ("", token), with the participant named."""
    marks: dict[tuple[str, str], list[str]] = {}
    for v in verdict.violations:
        if v.message:
            marks.setdefault((v.participant, v.message), []).append(v.rule)
            marks.setdefault(("", v.message), []).append(f"{v.rule} p{v.participant}")
    return marks


def render(path: Path) -> tuple[str, Verdict]:
    """The timeline of the trace at `path` and its verdict (TraceError if unreadable)."""
    verdict = check_path(path)
    marks = _marks(verdict)
    ops: dict[Any, dict[str, Any]] = {}
    lines = [f"{path}: {verdict.verdict.upper()} ({verdict.scenario or 'no scenario'})"]
    for event in _events(path):
        if event["type"] == "probe" and event.get("ok"):
            continue
        line = f"{fmt_t(event.get('t')):>9}  {_describe(event, ops)}"
        token = str(event.get("message", ""))
        where = {"deliver": str(event.get("participant")), "invoke": ""}.get(event["type"])
        rules = marks.get((where, token), []) if where is not None else []
        if rules:
            line += "   <-- " + ", ".join(sorted(set(rules)))
        lines.append(line)
    if verdict.violations:
        lines.append("violations:")
        lines.extend(f"  {v.line()}" for v in verdict.violations)
    return "\n".join(lines), verdict

"""Checkers: pure functions from a pams trace (format v1) to an explained verdict (docs/rules.md).

`check_path` / `check_lines` read and validate a trace (raising `TraceError` on malformed
input) and return a `Verdict`. Parameters: keyword > trace header > defaults (1.0 s each).
Injected faults (kill, pause) are part of the judgement: see `checkers.faults`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Optional, Union

from checkers.model import Params
from checkers.order import OrderReport, delivery_order
from checkers.rulebook import RULES
from checkers.rules import judge
from checkers.trace import (
    DEFAULT_LATENCY_BOUND,
    DEFAULT_TOLERANCE,
    Trace,
    TraceError,
    gc_paused,
    read_lines,
    read_path,
)
from checkers.verdict import RuleResult, Verdict, Violation

__all__ = [
    "RULES",
    "OrderReport",
    "RuleResult",
    "Trace",
    "TraceError",
    "Verdict",
    "Violation",
    "check_lines",
    "check_path",
    "check_trace",
]


def _pick(name: str, given: Optional[float], header: Optional[float], default: float) -> float:
    value = given if given is not None else header if header is not None else default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def check_trace(
    trace: Trace, *, tolerance: Optional[float] = None, latency_bound: Optional[float] = None
) -> Verdict:
    """Judge an already parsed trace against every rule."""
    tol = _pick("tolerance", tolerance, trace.tolerance, DEFAULT_TOLERANCE)
    lat = _pick("latency_bound", latency_bound, trace.latency_bound, DEFAULT_LATENCY_BOUND)
    with gc_paused():
        found = judge(trace, Params(trace.td, tol, lat, trace.horizon))
    rules = {}
    for rule in RULES:
        mine = tuple(v for v in found.violations if v.rule == rule)
        rules[rule] = RuleResult("fail" if mine else "pass", found.checked[rule], mine)
    return Verdict(
        verdict="fail" if found.violations else "pass",
        truncated=trace.truncated,
        rules=rules,
        violations=found.violations,
        order=delivery_order(found.sequences, found.windows),
        tolerance=tol,
        latency_bound=lat,
        name=trace.name,
        td=trace.td,
        scenario=trace.scenario,
        boundary=trace.boundary,
        participants=found.participants,
        messages=found.messages,
        events=trace.events,
        notes=found.notes,
    )


def check_path(
    path: Union[str, os.PathLike],
    *,
    tolerance: Optional[float] = None,
    latency_bound: Optional[float] = None,
) -> Verdict:
    """Read, validate and judge the trace file at `path` (TraceError if malformed)."""
    _pick("tolerance", tolerance, 0.0, 0.0)
    _pick("latency_bound", latency_bound, 0.0, 0.0)
    return check_trace(read_path(path), tolerance=tolerance, latency_bound=latency_bound)


def check_lines(
    lines: Iterable[Union[str, bytes]],
    *,
    name: str = "<trace>",
    tolerance: Optional[float] = None,
    latency_bound: Optional[float] = None,
) -> Verdict:
    """Same as `check_path`, over an iterable of JSON lines."""
    _pick("tolerance", tolerance, 0.0, 0.0)
    _pick("latency_bound", latency_bound, 0.0, 0.0)
    return check_trace(
        read_lines(lines, name=name), tolerance=tolerance, latency_bound=latency_bound
    )

"""The judge's shared data: rule parameters and messages (docs/rules.md)."""

from __future__ import annotations

from dataclasses import dataclass

from checkers.verdict import Violation


@dataclass(frozen=True)
class Params:
    """Rule parameters: td, tolerance, latency bound, and the trace's end time."""

    td: float
    tol: float
    latency: float
    horizon: float


@dataclass(frozen=True)
class Message:
    """A multicast that happened (or may have): token, sender, send window, and whether it
    certainly happened from a member (msend ok, sender online in every possible state): only
    then is a delivery owed."""

    token: str
    sender: str
    s0: float
    s1: float
    owed: bool


@dataclass(frozen=True)
class RuleOutput:
    """What one rule found: its violations, the number of items it examined, notes."""

    violations: tuple[Violation, ...]
    checked: int
    notes: tuple[str, ...] = ()

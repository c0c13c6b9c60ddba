"""Verdict data: violations, per-rule results, the human summary and the JSON of docs/rules.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from checkers.order import OrderReport

__all__ = ["RuleResult", "Verdict", "Violation", "fmt_t"]

SUMMARY_PER_RULE = 50


def fmt_t(t: Optional[float]) -> str:
    """A harness time as printed in reports (milliseconds)."""
    return "-" if t is None else f"{t:.3f}"


@dataclass(frozen=True)
class Violation:
    """One broken rule for one participant (and message, when there is one); `why` is one
    sentence with the numbers compared; `at` is the time the violation is sorted by."""

    rule: str
    participant: str
    message: Optional[str]
    sent: Optional[tuple[float, float]]
    delivered_at: tuple[float, ...]
    why: str
    at: float = 0.0
    unexercised: bool = False  # the run did not exercise the rule (docs/rules.md)

    def sort_key(self) -> tuple:
        return (self.at, self.rule, self.participant, self.message or "")

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "participant": self.participant,
            "message": self.message,
            "sent": list(self.sent) if self.sent is not None else None,
            "delivered_at": list(self.delivered_at),
            "why": self.why,
            **({"not_exercised": True} if self.unexercised else {}),
        }

    def line(self) -> str:
        """The one-line form used in the human summary (the why carries the numbers)."""
        p = self.participant
        who = p if p in ("coordinator", "") else f"p{p}"
        return f"{self.rule} {who or '-'} {self.message or '-'}: {self.why}"


@dataclass(frozen=True)
class RuleResult:
    """Outcome of one rule: status "pass"/"fail", how many items it examined, its violations."""

    status: str
    checked: int
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class Verdict:
    """The checkers' answer for one trace."""

    verdict: str
    truncated: bool
    rules: Mapping[str, RuleResult]
    violations: tuple[Violation, ...]
    order: OrderReport
    tolerance: float
    latency_bound: float
    name: str = "<trace>"
    td: float = 0.0
    scenario: str = ""
    boundary: bool = False
    participants: int = 0
    messages: int = 0
    events: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def as_json(self) -> dict[str, Any]:
        """docs/rules.md verdict JSON plus context keys (trace, td, tolerance, boundary, order…)."""
        return {
            "trace": self.name,
            "verdict": self.verdict,
            "truncated": self.truncated,
            "rules": {
                name: {"status": r.status, "checked": r.checked, "violations": len(r.violations)}
                for name, r in self.rules.items()
            },
            "violations": [v.as_json() for v in self.violations],
            "td": self.td,
            "tolerance": self.tolerance,
            "latency_bound": self.latency_bound,
            "scenario": self.scenario,
            "boundary": self.boundary,
            "participants": self.participants,
            "messages": self.messages,
            "events": self.events,
            "order": self.order.as_json(),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """Human summary: header line, one line per rule, one line per violation, order."""
        flags = []
        if self.truncated:
            flags.append("TRUNCATED (no end event; judged on what it shows)")
        if self.boundary:
            flags.append(f"BOUNDARY scenario {self.scenario or '(unnamed)'}: tol {self.tolerance}")
        head = (
            f"{self.name}: {self.verdict.upper()} (td {self.td}, tol {self.tolerance}, "
            f"L {self.latency_bound}; {self.participants} participants, "
            f"{self.messages} messages, {self.events} events)"
        )
        lines = [head] + [f"  {f}" for f in flags]
        for name, r in self.rules.items():
            extra = f", violations {len(r.violations)}" if r.violations else ""
            lines.append(f"  {name:<20} {r.status.upper():<4}  checked {r.checked}{extra}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.violations:
            lines.append("  violations:")
            lines.extend(self._violation_lines())
        lines.extend(f"  {s}" for s in self.order.summary_lines())
        return "\n".join(lines)

    def _violation_lines(self) -> list[str]:
        """Each violation on one line, at most SUMMARY_PER_RULE per rule (JSON has them all)."""
        out = []
        shown: dict[str, int] = {}
        for v in self.violations:
            shown[v.rule] = shown.get(v.rule, 0) + 1
            if shown[v.rule] <= SUMMARY_PER_RULE:
                out.append(f"    {v.line()}")
        for rule, count in shown.items():
            if count > SUMMARY_PER_RULE:
                out.append(f"    ... {rule}: {count - SUMMARY_PER_RULE} more (see --json)")
        return out

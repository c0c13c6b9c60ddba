"""The judge: every rule of the registry (checkers/rulebook.py) over one trace's read-only
context, then what the scenario declared it must exercise (docs/rules.md)."""

from __future__ import annotations

from dataclasses import dataclass

from checkers import context
from checkers.context import Context
from checkers.exercise import Facts, unexercised
from checkers.model import Params
from checkers.rulebook import RULEBOOK
from checkers.trace import Trace
from checkers.verdict import Violation, fmt_t


@dataclass(frozen=True)
class Findings:
    """Violations and per-rule examined counts."""

    violations: tuple[Violation, ...]
    checked: dict
    notes: tuple[str, ...]
    participants: int
    messages: int
    sequences: dict
    windows: dict


def judge(trace: Trace, params: Params) -> Findings:
    """All violations of `trace` under `params`, deterministic order (time, rule, p, m)."""
    ctx = context.build(trace, params)
    outputs = {rule.name: rule.check(ctx) for rule in RULEBOOK}
    violations = [v for out in outputs.values() for v in out.violations]
    if trace.expect:
        facts = Facts.gather(trace, params, ctx.timelines, ctx.messages, ctx.faults)
        violations += unexercised(trace, params, facts)
    rule_notes = tuple(n for out in outputs.values() for n in out.notes)
    return Findings(
        violations=tuple(sorted(violations, key=Violation.sort_key)),
        checked={name: out.checked for name, out in outputs.items()},
        notes=_notes(ctx) + rule_notes + _fault_notes(ctx),
        participants=len(ctx.names),
        messages=len(ctx.messages),
        sequences=dict(ctx.sequences),
        windows={m.token: (m.sender, m.s0, m.s1) for m in ctx.messages},
    )


def _notes(ctx: Context) -> tuple[str, ...]:
    ops = ctx.trace.ops
    notes = []
    failed = sum(1 for op in ops if op.f == "msend" and op.outcome == "fail")
    if failed:
        notes.append(f"{failed} msend(s) failed: they create no obligation")
    unknown = sum(1 for op in ops if op.f == "msend" and op.outcome in ("info", "none"))
    if unknown:
        notes.append(
            f"{unknown} msend(s) of unknown outcome (info or no completion): "
            "no delivery is owed for them"
        )
    unsure = sum(1 for m in ctx.messages if not m.owed) - unknown
    if unsure:
        notes.append(
            f"{unsure} message(s) sent while the sender was not certainly online: "
            "no delivery is owed for them"
        )
    if ctx.trace.log_resets:
        notes.append(f"{ctx.trace.log_resets} log reset(s): later tokens count as new deliveries")
    return tuple(notes)


def _fault_notes(ctx: Context) -> tuple[str, ...]:
    """What the coordinator's kills and the pauses changed (kills of participants are noted
    by no-miss, with the messages they exempted)."""
    notes = [
        f"coordinator killed at {fmt_t(t)}: not modelled, judged as if not"
        for t in ctx.faults.coordinator_kills
    ]
    pauses = [x for group in ctx.faults.pauses.values() for x in group]
    if pauses:
        listed = ", ".join(x.describe() for x in sorted(pauses, key=lambda x: x.t0))
        notes.append(
            f"{listed}: a delivery deadline that meets a pause of its receiver (of "
            "anyone, for the coordinator) runs to the resume + L"
        )
    return tuple(notes)

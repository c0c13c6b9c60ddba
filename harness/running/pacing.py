"""When each step of a schedule is due (README, "The judge's model"). Pure: the runner tells
it when labelled steps took effect and how long commands took; it answers with due times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.scenarios.model import COMMANDS, Step

ANY = ""  # key of the delays measured on any participant (they all run the same program)


@dataclass
class Pacer:
    """A step is due at its planned time `t0 + at`; one that follows a labelled step is due
    no earlier than that step's effect plus the planned gap between them. A command is then
    sent early by the participant's last invoke-to-request delay and half its last
    request-to-acknowledgement delay (measured on any participant until its own are known),
    so the middle of its effect window lands where the scenario planned it."""

    t0: float
    op_timeout: float
    effects: dict[str, float] = field(default_factory=dict)  # label -> when it took effect
    lags: dict[str, float] = field(default_factory=dict)  # participant -> invoke-to-request
    acks: dict[str, float] = field(default_factory=dict)  # participant -> request-to-ack

    def took_effect(self, label: str, t: float) -> None:
        self.effects[label] = t

    def measured(
        self, participant: str, lag: Optional[float] = None, ack: Optional[float] = None
    ) -> None:
        """Record a command's invoke-to-request delay and/or request-to-ack delay."""
        if lag is not None:
            self.lags[participant] = self.lags[ANY] = max(0.0, lag)
        if ack is not None:
            self.acks[participant] = self.acks[ANY] = max(0.0, ack)

    def due(self, step: Step, anchor: Optional[Step]) -> float:
        planned = self.t0 + step.at
        done = self.effects.get(step.follows) if step.follows else None
        if done is None or anchor is None:
            return planned
        due = max(planned, done + step.at - anchor.at)
        if step.action not in COMMANDS:
            return due
        p = step.target
        lead = (
            self.lags.get(p, self.lags.get(ANY, 0.0))
            + self.acks.get(p, self.acks.get(ANY, 0.0)) / 2
        )
        return due - min(lead, self.op_timeout)

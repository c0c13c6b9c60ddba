"""When steps are due (harness/running/pacing.py), without processes: planned times, a step
that follows another's effect, and commands sent early by the measured delays."""

from __future__ import annotations

import pytest

from harness.running.pacing import Pacer
from harness.scenarios.model import Step

pytestmark = pytest.mark.timeout(10)
ANCHOR = Step(1.0, "disconnect", "3", label="d")
SEND = Step(3.0, "msend", "1", message="M00000001", follows="d")


def test_a_step_is_due_at_its_planned_time_until_its_anchor_took_effect() -> None:
    pacer = Pacer(t0=10.0, op_timeout=5.0)
    assert pacer.due(SEND, ANCHOR) == 13.0


def test_a_late_anchor_moves_the_step_by_the_planned_gap() -> None:
    pacer = Pacer(t0=10.0, op_timeout=5.0)
    pacer.took_effect("d", 12.5)  # the disconnect reached the coordinator 1.5 s late
    assert pacer.due(SEND, ANCHOR) == 14.5


def test_a_slow_program_gets_its_command_early_by_its_lag_and_half_its_ack() -> None:
    pacer = Pacer(t0=10.0, op_timeout=5.0)
    pacer.took_effect("d", 11.0)
    pacer.measured("3", lag=1.5, ack=0.2)  # measured on another participant: used for all
    assert pacer.due(SEND, ANCHOR) == pytest.approx(13.0 - 1.6)
    pacer.measured("1", lag=0.1, ack=0.0)  # its own, once known
    assert pacer.due(SEND, ANCHOR) == pytest.approx(12.9)


def test_faults_are_not_sent_early_and_the_lead_is_bounded() -> None:
    pacer = Pacer(t0=0.0, op_timeout=2.0)
    pacer.took_effect("d", 1.0)
    pacer.measured("1", lag=9.0)
    assert pacer.due(Step(3.0, "pause", "1", follows="d"), ANCHOR) == 3.0
    assert pacer.due(SEND, ANCHOR) == 1.0  # 3.0 - min(9.0, op_timeout 2.0)

"""The rules under injected faults (checkers/faults.py): a kill is a disconnect at that
instant with an in-flight exemption; a pause of the receiver or of the coordinator moves the
delivery deadline to resume + L; other faults change nothing. Hand-built traces, td 3, tol 1,
L 1 (TB defaults): p1 and p2 (and p3) register at 0.1, 0.2 (, 0.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from checkers import TraceError, Verdict, check_lines
from tests.checkers.test_chk_rules import TB, failed, members, only

pytestmark = pytest.mark.timeout(30)


def fault(tb: TB, t: float, name: str, target: str, **extra: Any) -> TB:
    return tb.event(t, type="fault", fault=name, target=target, **extra)


def crash(tb: TB, p: str, t: float, back: float) -> TB:
    """p killed at t, restarted at t + 0.2, reconnect invoked at `back` (window +0.01)."""
    fault(tb, t, "kill", p)
    fault(tb, t + 0.2, "restart", p)
    return tb.reconnect(p, back)


def notes(v: Verdict) -> str:
    return "\n".join(v.notes)


def same_judgement(a: Verdict, b: Verdict) -> bool:
    ja, jb = a.as_json(), b.as_json()
    return (ja["verdict"], ja["rules"], ja["violations"]) == (
        jb["verdict"],
        jb["rules"],
        jb["violations"],
    )


# -- kill of a participant -----------------------------------------------------------------


def dead_while_sent(deliver_at_reconnect: bool) -> TB:
    """p2 killed at 2.0 while online; MA sent [3.0, 3.01] while it is dead; reconnect
    [4.0, 4.01]: 4.01 - 3.0 <= td - tol, so MA is owed there."""
    tb = crash(members("1", "2"), "2", 2.0, 4.0)
    tb.msend("1", "MA", 3.0).deliver("1", "MA", 3.05)
    if deliver_at_reconnect:
        tb.deliver("2", "MA", 4.05)
    return tb.end(6.0)


def test_kill_then_messages_delivered_at_reconnect_within_td_pass() -> None:
    v = dead_while_sent(True).check()
    assert v.verdict == "pass", v.summary()
    assert "p2 killed at 2.000: a disconnect at that instant" in notes(v)


def test_kill_then_message_not_delivered_at_reconnect_fails_no_miss_naming_the_kill() -> None:
    v = dead_while_sent(False).check()
    why = only(v, "no-miss", "2", "MA")
    assert "offline since killed at 2.000" in why and "reconnected [4.000, 4.010]" in why


def test_without_the_kill_event_a_dead_participant_is_owed_at_once() -> None:
    """The same trace without the fault: p2 was online at MA, so MA was owed at once and its
    delivery at reconnect is late (what a correct implementation was flagged for before)."""
    tb = members("1", "2").reconnect("2", 4.0)
    tb.msend("1", "MA", 3.0).deliver("1", "MA", 3.05).deliver("2", "MA", 4.05)
    assert failed(tb.end(6.0).check()) == {"immediacy"}


def in_flight(*p2_gets: float, kill: float = 2.5) -> TB:
    """MA sent [2.0, 2.01] while p1, p2 online; p2 killed at `kill`, reconnect at 4.0."""
    tb = crash(members("1", "2"), "2", kill, 4.0)
    tb.msend("1", "MA", 2.0).deliver("1", "MA", 2.03).deliver("2", "MA", *p2_gets)
    return tb.end(6.0)


def test_in_flight_at_the_kill_and_lost_passes_and_the_summary_says_why() -> None:
    v = in_flight()
    verdict = v.check()
    assert verdict.verdict == "pass", verdict.summary()
    assert "possibly in flight when it died" in verdict.summary()
    assert "exempt from no-miss: MA" in verdict.summary()


def test_lost_after_a_kill_past_the_deadline_fails_no_miss() -> None:
    """Killed at 3.5 > s1 + L = 3.01: MA was due before the kill, so not exempt."""
    v = in_flight(kill=3.5).check()
    assert "no disconnect/deregister invoked by s1 + L = 3.010" in only(v, "no-miss", "2", "MA")
    assert "exempt" not in v.summary()


@pytest.mark.parametrize("at", [2.3, 4.05], ids=["before-kill", "at-reconnect"])
def test_in_flight_at_the_kill_delivered_once_passes(at: float) -> None:
    v = in_flight(at).check()
    assert v.verdict == "pass", v.summary()
    assert "exempt" not in v.summary()


def test_in_flight_at_the_kill_delivered_twice_fails_no_duplicate() -> None:
    v = in_flight(2.3, 4.05).check()
    assert "p2 got MA 2 times, at 2.300, 4.050" in only(v, "no-duplicate", "2", "MA")


def test_kill_during_the_msend_window_accepts_either_outcome() -> None:
    """Killed at 2.005, inside MA's window [2.0, 2.01]: online or already dead at m."""
    assert in_flight(kill=2.005).check().verdict == "pass"
    assert in_flight(2.004, kill=2.005).check().verdict == "pass"


def test_kill_within_l_of_a_reconnect_exempts_what_was_owed_there() -> None:
    """p2 offline at MA, reconnect [3.0, 3.01] owes it; a kill at 3.5 (< r1 + L) may have
    cut its delivery: exempt. Killed at 4.5 instead, MA was due: no-miss."""

    def run(kill: float) -> Verdict:
        tb = members("1", "2").disconnect("2", 1.0).msend("1", "MA", 2.0)
        tb.deliver("1", "MA", 2.03).reconnect("2", 3.0)
        return crash(tb, "2", kill, 5.0).end(7.0).check()

    exempt = run(3.5)
    assert exempt.verdict == "pass" and "exempt from no-miss: MA" in notes(exempt)
    assert "reconnected [3.000, 3.010]" in only(run(4.5), "no-miss", "2", "MA")


def test_kill_while_offline_changes_nothing() -> None:
    """p2 disconnected at 1.0, killed at 1.5 (already offline), reconnect at 3.5: MA (sent
    2.0) owed there. Same verdict and texts with or without the kill, delivered or not."""
    for deliver in (True, False):
        with_kill, without = members("1", "2"), members("1", "2")
        for tb in (with_kill, without):
            tb.disconnect("2", 1.0).msend("1", "MA", 2.0).deliver("1", "MA", 2.03)
            tb.reconnect("2", 3.5).end(6.0)
            if deliver:
                tb.deliver("2", "MA", 3.55)
        fault(with_kill, 1.5, "kill", "2")
        a, b = with_kill.check(), without.check()
        assert a.verdict == ("pass" if deliver else "fail")
        assert same_judgement(a, b)


def test_message_older_than_td_at_reconnect_after_a_kill_fails_no_expired() -> None:
    """Killed at 2.0, MA sent [2.5, 2.51], reconnect at 7.0: 7.0 - 2.51 > td + tol."""
    tb = crash(members("1", "2"), "2", 2.0, 7.0)
    tb.msend("1", "MA", 2.5).deliver("1", "MA", 2.53).deliver("2", "MA", 7.05)
    why = only(tb.end(9.0).check(), "no-expired", "2", "MA")
    assert "p2 offline at MA (sent [2.500, 2.510]) (killed at 2.000)" in why


def test_delivery_from_a_dead_participant_before_reconnect_fails_no_offline_delivery() -> None:
    tb = crash(members("1", "2"), "2", 2.0, 5.0)
    tb.msend("1", "MA", 2.5).deliver("1", "MA", 2.53).deliver("2", "MA", 3.8)
    why = only(tb.end(7.0).check(), "no-offline-delivery", "2", "MA")
    assert "before the offline period ended (reconnect invoked 5.000)" in why


def test_kill_of_the_coordinator_is_noted_and_changes_no_rule() -> None:
    tb = members("1", "2").msend("1", "MA", 2.0).to_all("MA", 2.03, "1", "2")
    plain = tb.end(5.0).check()
    killed = fault(tb, 3.0, "kill", "coordinator").check()
    assert same_judgement(plain, killed) and killed.verdict == "pass"
    assert "coordinator killed at 3.000: not modelled" in notes(killed)


# -- pauses ----------------------------------------------------------------------------------


def paused(who: str, at: float, *, resume: float = 4.0) -> TB:
    """`who` paused [2.0, resume]; MA sent [2.5, 2.51] by p1; p1, p3 get it at 2.55, p2 at
    `at`. s1 + L = 3.51."""
    tb = fault(members("1", "2", "3"), 2.0, "pause", who)
    fault(tb, resume, "resume", who)
    tb.msend("1", "MA", 2.5).to_all("MA", 2.55, "1", "3").deliver("2", "MA", at)
    return tb.end(8.0)


def without_faults(tb: TB) -> Verdict:
    """The verdict on `tb`'s trace with every fault event left out."""
    kept = [line for line in tb.lines() if json.loads(line).get("type") != "fault"]
    return check_lines(kept, name="built")


def test_delivery_to_a_paused_participant_within_l_of_its_resume_passes() -> None:
    v = paused("2", 4.5).check()
    assert v.verdict == "pass", v.summary()
    assert "p2 paused [2.000, 4.000]" in notes(v)
    assert only(without_faults(paused("2", 4.5)), "immediacy", "2", "MA")


def test_delivery_after_resume_plus_l_fails_immediacy_naming_the_pause() -> None:
    why = only(paused("2", 5.5).check(), "immediacy", "2", "MA")
    assert "first delivery 5.500 - 2.510 = 2.990 > L 1.0" in why
    assert "5.000 (s1 + L extended to resume + L: p2 paused [2.000, 4.000])" in why


def test_coordinator_pause_extends_every_deadline() -> None:
    tb = fault(members("1", "2", "3"), 2.0, "pause", "coordinator")
    fault(tb, 4.0, "resume", "coordinator").msend("1", "MA", 2.5)
    assert tb.to_all("MA", 4.6, "1", "2", "3").end(8.0).check().verdict == "pass"
    late = fault(members("1", "2", "3"), 2.0, "pause", "coordinator")
    fault(late, 4.0, "resume", "coordinator").msend("1", "MA", 2.5)
    v = late.to_all("MA", 5.2, "1", "2", "3").end(8.0).check()
    assert [(x.rule, x.participant) for x in v.violations] == [
        ("immediacy", p) for p in ("1", "2", "3")
    ]
    assert all("coordinator paused [2.000, 4.000]" in x.why for x in v.violations)


def test_another_participants_pause_does_not_extend_the_deadline() -> None:
    """p3 paused [2.0, 4.0], p2 not: p2 and p3 both get MA at 4.5; p3's delivery is within
    its resume + L, p2's fails immediacy ("one paused participant delaying everyone")."""
    tb = fault(members("1", "2", "3"), 2.0, "pause", "3")
    fault(tb, 4.0, "resume", "3").msend("1", "MA", 2.5).deliver("1", "MA", 2.55)
    v = tb.to_all("MA", 4.5, "2", "3").end(8.0).check()
    why = only(v, "immediacy", "2", "MA")
    assert "paused" not in why and "no disconnect/deregister invoked by 3.510" in why


def test_pause_without_resume_lasts_to_the_trace_end() -> None:
    """p2 paused at 2.0 for good: MA never reaches it and nothing is owed before the end;
    p3, not paused, still misses MA."""
    tb = fault(members("1", "2", "3"), 2.0, "pause", "2").msend("1", "MA", 2.5)
    v = tb.deliver("1", "MA", 2.55).end(8.0).check()
    assert only(v, "no-miss", "3", "MA")
    assert "p2 paused [2.000, -] (no resume)" in notes(v)


def test_chained_pauses_extend_the_deadline_again() -> None:
    """p2 paused [2.0, 3.0] moves 3.51 to 4.0; the coordinator paused from 3.5 (< 4.0) to 5.0
    moves it to 6.0."""

    def run(at: float) -> Verdict:
        tb = fault(members("1", "2"), 2.0, "pause", "2")
        fault(tb, 3.0, "resume", "2")
        fault(tb, 3.5, "pause", "coordinator")
        fault(tb, 5.0, "resume", "coordinator")
        tb.msend("1", "MA", 2.5).deliver("1", "MA", 2.55).deliver("2", "MA", at)
        return tb.end(9.0).check()

    assert run(5.9).verdict == "pass"
    why = only(run(6.2), "immediacy", "2", "MA")
    assert "p2 paused [2.000, 3.000], coordinator paused [3.500, 5.000]" in why


def test_pause_extends_the_kill_in_flight_exemption() -> None:
    """p2 paused [2.0, 4.0], MA sent at 2.5, p2 killed at 4.5: past s1 + L = 3.51 but before
    resume + L = 5.0, so MA may have been in flight: exempt. Without the pause: no-miss."""
    tb = fault(members("1", "2"), 2.0, "pause", "2")
    fault(tb, 4.0, "resume", "2").msend("1", "MA", 2.5).deliver("1", "MA", 2.55)
    v = crash(tb, "2", 4.5, 6.0).end(8.0).check()
    assert v.verdict == "pass" and "exempt from no-miss: MA" in notes(v)
    no_pause = crash(members("1", "2"), "2", 4.5, 6.0).msend("1", "MA", 2.5)
    assert only(no_pause.deliver("1", "MA", 2.55).end(8.0).check(), "no-miss", "2", "MA")


def test_a_kill_ends_the_pause_of_the_killed_process() -> None:
    """p2 paused at 2.0 and killed at 3.0 (never resumed): after its restart and reconnect
    the pause is over, so a message sent at 5.0 is owed within L as usual."""
    tb = fault(members("1", "2"), 2.0, "pause", "2")
    crash(tb, "2", 3.0, 4.0).msend("1", "MA", 5.0).deliver("1", "MA", 5.05)
    v = tb.deliver("2", "MA", 6.5).end(8.0).check()
    assert "no disconnect/deregister invoked by 6.010" in only(v, "immediacy", "2", "MA")


# -- faults that change no rule, and validation -------------------------------------------------


def test_faults_without_rule_changes_leave_the_verdict_alone() -> None:
    """Clock offsets and steps, partitions and heals, a coordinator restart, unknown fault
    names and faults of unknown targets: the judgement equals the one without them."""
    for deliver in (True, False):
        tb = members("1", "2").msend("1", "MA", 2.0).deliver("1", "MA", 2.03)
        if deliver:
            tb.deliver("2", "MA", 2.04)
        tb.end(6.0)
        plain = tb.check()
        fault(tb, 0.05, "clock_offset", "2", offset=-60)
        fault(tb, 1.0, "clock_step", "coordinator", offset=3600)
        fault(tb, 1.5, "partition", "2")
        fault(tb, 2.5, "heal", "2")
        fault(tb, 2.6, "restart", "coordinator")
        fault(tb, 2.7, "meteor", "2")
        fault(tb, 1.9, "kill", "9")  # not in the header's participants: ignored
        fault(tb, 1.9, "pause", "7")
        noisy = tb.check()
        assert same_judgement(plain, noisy) and noisy.verdict == ("pass" if deliver else "fail")
        assert noisy.notes == plain.notes


def test_without_a_participants_list_any_target_counts() -> None:
    tb = TB(participants=())
    tb.register("1", 0.1).register("2", 0.2)
    crash(tb, "2", 2.0, 4.0).msend("1", "MA", 3.0).deliver("1", "MA", 3.05)
    v = tb.deliver("2", "MA", 4.05).end(6.0).check()
    assert v.verdict == "pass" and "p2 killed at 2.000" in notes(v)


@pytest.mark.parametrize(
    "event, reason",
    [
        ({"target": "2"}, "fault event without fault"),
        ({"fault": "", "target": "2"}, "fault event without fault"),
        ({"fault": "kill"}, "kill fault event without target"),
        ({"fault": "pause", "target": None}, "pause fault event: target must be"),
        ({"fault": "pause", "target": ["2"]}, "pause fault event: target must be"),
    ],
)
def test_malformed_fault_event_is_an_error_naming_the_line(event: dict, reason: str) -> None:
    tb = members("1", "2")
    tb.event(1.0, type="fault", **event).end(3.0)
    lines = tb.lines()
    bad = next(i for i, line in enumerate(lines, start=1) if '"fault"' in line)
    with pytest.raises(TraceError) as info:
        check_lines(lines, name="built")
    assert info.value.line == bad and reason in info.value.reason, str(info.value)
    assert str(info.value).startswith(f"built:{bad}: ")


def test_restart_of_a_live_participant_counts_as_a_kill() -> None:
    """The harness kills a live process before restarting it: a restart with no kill before
    it is a kill at that instant (MA, sent while p2 was being restarted, is owed at its
    reconnect); a restart after a kill adds nothing."""
    tb = fault(members("1", "2"), 2.0, "restart", "2").reconnect("2", 4.0)
    tb.msend("1", "MA", 3.0).deliver("1", "MA", 3.05).deliver("2", "MA", 4.05)
    v = tb.end(6.0).check()
    assert v.verdict == "pass", v.summary()
    assert "p2 restarted while alive at 2.000: a disconnect at that instant" in notes(v)
    killed = dead_while_sent(True).check()
    assert [n for n in killed.notes if n.startswith("p2 ")] == [
        "p2 killed at 2.000: a disconnect at that instant"
    ]

"""Unit tests of the eight rules (docs/rules.md) on small traces built event by event."""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest

from checkers import RULES, Verdict, check_lines

pytestmark = pytest.mark.timeout(30)


class TB:
    """Tiny trace builder: collects events (sorted by t when rendered) and checks them."""

    def __init__(
        self, td: float = 3.0, participants: tuple[str, ...] = ("1", "2", "3"), **header: Any
    ) -> None:
        self.header = {"type": "header", "format": "pams-trace", "version": 1, "td": td}
        self.header["participants"] = list(participants)
        self.header.update(header)
        self.events: list[tuple[float, int, dict]] = []
        self.next_op = 1
        self.ended: Optional[float] = None

    def event(self, t: float, **fields: Any) -> TB:
        self.events.append((t, len(self.events), {"t": t, **fields}))
        return self

    def op(
        self,
        p: str,
        f: str,
        t0: float,
        t1: Optional[float] = None,
        outcome: str = "ok",
        **extra: Any,
    ) -> int:
        """An op invoked at t0 completing with `outcome` at t1 (default t0 + 0.01); outcome
        "none" leaves it pending."""
        op = self.next_op
        self.next_op += 1
        self.event(t0, type="invoke", op=op, participant=p, f=f, **extra)
        if outcome != "none":
            self.event(t0 + 0.01 if t1 is None else t1, type=outcome, op=op)
        return op

    def register(self, p: str, t: float, **kw: Any) -> TB:
        self.op(p, "register", t, port=40000 + int(p), **kw)
        return self

    def disconnect(self, p: str, t: float, **kw: Any) -> TB:
        self.op(p, "disconnect", t, **kw)
        return self

    def reconnect(self, p: str, t: float, **kw: Any) -> TB:
        self.op(p, "reconnect", t, port=41000 + int(p), **kw)
        return self

    def deregister(self, p: str, t: float, **kw: Any) -> TB:
        self.op(p, "deregister", t, **kw)
        return self

    def msend(self, p: str, token: str, t: float, **kw: Any) -> TB:
        self.op(p, "msend", t, message=token, **kw)
        return self

    def deliver(self, p: str, token: str, *times: float) -> TB:
        for t in times:
            self.event(t, type="deliver", participant=p, message=token, line=token)
        return self

    def to_all(self, token: str, t: float, *ps: str) -> TB:
        for p in ps:
            self.deliver(p, token, t)
        return self

    def end(self, t: float) -> TB:
        self.ended = t
        return self

    def lines(self) -> list[str]:
        out = [json.dumps(self.header)]
        out.extend(json.dumps(e) for _, _, e in sorted(self.events, key=lambda x: (x[0], x[1])))
        if self.ended is not None:
            out.append(json.dumps({"type": "end", "t": self.ended}))
        return out

    def check(self, **kw: Any) -> Verdict:
        return check_lines(self.lines(), name="built", **kw)


def members(*ps: str, t: float = 0.1) -> TB:
    tb = TB()
    for i, p in enumerate(ps):
        tb.register(p, t + 0.1 * i)
    return tb


def failed(v: Verdict) -> set[str]:
    return {name for name, r in v.rules.items() if r.status == "fail"}


def only(v: Verdict, rule: str, p: str, m: Optional[str]) -> str:
    """Assert the verdict has exactly one violation, of `rule` for (p, m), besides the
    `acknowledged` ones its failed commands give (tests/checkers/test_chk_conduct.py);
    return its why."""
    found = [x for x in v.violations if x.rule != "acknowledged" or rule == "acknowledged"]
    assert [(x.rule, x.participant, x.message) for x in found] == [(rule, p, m)], v.summary()
    return found[0].why


# -- passing runs --


def test_clean_run_passes_with_counts_for_every_rule() -> None:
    tb = members("1", "2", "3")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2", "3")
    tb.msend("2", "MB", 2.0).to_all("MB", 2.05, "1", "2", "3")
    v = tb.end(5.0).check()
    assert v.verdict == "pass" and not v.truncated and v.violations == ()
    assert tuple(v.rules) == RULES
    assert v.rules["no-miss"].checked == 6  # 2 messages x 3 participants
    assert v.rules["no-duplicate"].checked == 6
    assert v.rules["no-phantom"].checked == 6
    assert v.rules["port-released"].checked == 0
    assert "PASS" in v.summary() and v.as_json()["verdict"] == "pass"


# -- no-miss / the sender's own copy --


def test_sender_must_get_its_own_message() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "2")
    why = only(tb.end(5.0).check(), "no-miss", "1", "MA")
    assert "online" in why and "never delivered" in why


def test_online_member_missing_a_message() -> None:
    tb = members("1", "2", "3")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    why = only(tb.end(5.0).check(), "no-miss", "3", "MA")
    assert "p3 online at MA (sent [1.000, 1.010])" in why
    assert "s1 + L = 2.010" in why


def test_trace_ending_before_the_latency_bound_does_not_judge_the_miss() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    assert tb.end(1.5).check().verdict == "pass"
    assert failed(tb.end(2.5).check()) == {"no-miss"}


@pytest.mark.parametrize("exit_op", ["deregister", "disconnect"])
def test_exit_invoked_within_L_excuses_a_missing_message(exit_op: str) -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.op("2", exit_op, 1.5)
    assert tb.end(9.0).check().verdict == "pass"


def test_exit_invoked_after_L_does_not_excuse() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.disconnect("2", 2.5)
    only(tb.end(9.0).check(), "no-miss", "2", "MA")


def test_in_flight_disconnect_with_quick_reconnect_still_owes_the_message() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.disconnect("2", 1.5).reconnect("2", 2.0)  # reconnect done 2.01 <= s0 + td - tol = 3.0
    why = only(tb.end(9.0).check(), "no-miss", "2", "MA")
    assert "reconnect completed 2.010 <= s0 + td - tol = 3.000" in why


def test_message_from_a_non_member_creates_no_obligation() -> None:
    tb = members("2")
    tb.msend("1", "MA", 1.0)  # p1 never registered: a correct coordinator refuses it
    v = tb.end(5.0).check()
    assert v.verdict == "pass"
    assert any("not certainly online" in n for n in v.notes)


# -- td boundaries (no-miss / no-expired) --


def offline_run(
    reconnect_at: float, delivered: Optional[float], tol: Optional[float] = None
) -> Verdict:
    """p2 disconnects at 1.0; MA sent [2.0, 2.01]; p2 reconnects [reconnect_at, +0.01]."""
    tb = (
        members("1", "2")
        if tol is None
        else TB(tolerance=tol).register("1", 0.1).register("2", 0.2)
    )
    tb.disconnect("2", 1.0)
    tb.msend("1", "MA", 2.0).to_all("MA", 2.05, "1")
    tb.reconnect("2", reconnect_at)
    if delivered is not None:
        tb.deliver("2", "MA", delivered)
    return tb.end(reconnect_at + 5.0).check()


def test_offline_reconnect_inside_td_minus_tol_must_deliver() -> None:
    # td 3, tol 1: r1 - s0 = 3.91 - 2.0 = 1.91 <= 2.0
    why = only(offline_run(3.9, None), "no-miss", "2", "MA")
    assert "reconnected [3.900, 3.910]: 3.910 - 2.000 = 1.910 <= td 3.0 - tol 1.0" in why


def test_offline_reconnect_just_past_td_minus_tol_may_skip() -> None:
    assert offline_run(4.0, None).verdict == "pass"  # r1 - s0 = 2.01 > 2.0


def test_expired_delivery_just_inside_td_plus_tol_is_accepted() -> None:
    assert offline_run(5.9, 5.95).verdict == "pass"  # r0 - s1 = 3.89 <= 4.0


def test_expired_delivery_past_td_plus_tol_is_a_violation() -> None:
    why = only(offline_run(6.1, 6.15), "no-expired", "2", "MA")
    assert "6.100 - 2.010 = 4.090 > td 3.0 + tol 1.0" in why


def test_between_the_bounds_either_outcome_is_accepted() -> None:
    assert offline_run(5.0, None).verdict == "pass"
    assert offline_run(5.0, 5.05).verdict == "pass"


@pytest.mark.parametrize(
    ("reconnect_at", "delivered", "rule"),
    [(4.5, None, "no-miss"), (4.5, 4.55, None), (5.5, None, None), (5.5, 5.55, "no-expired")],
)
def test_boundary_tolerance_catches_off_by_half_a_second(
    reconnect_at: float, delivered: Optional[float], rule: Optional[str]
) -> None:
    # tol 0.25 from the header: aged ~td - 0.5 must arrive, aged ~td + 0.5 must not.
    v = offline_run(reconnect_at, delivered, tol=0.25)
    assert v.tolerance == 0.25
    assert failed(v) == ({rule} if rule else set()), v.summary()


def test_info_reconnect_creates_no_obligation() -> None:
    tb = members("1", "2").disconnect("2", 1.0)
    tb.msend("1", "MA", 2.0).to_all("MA", 2.05, "1")
    tb.op("2", "reconnect", 3.0, outcome="info", t1=8.0)
    assert tb.end(12.0).check().verdict == "pass"
    tb.deliver("2", "MA", 3.5)  # a delivery after its invoke is fine too
    assert tb.end(12.0).check().verdict == "pass"


def test_info_reconnect_ends_known_offline_from_its_invoke_only() -> None:
    tb = members("1", "2").disconnect("2", 1.0)
    tb.msend("1", "MA", 2.0).to_all("MA", 2.05, "1").deliver("2", "MA", 2.5)
    tb.op("2", "reconnect", 3.0, outcome="info", t1=8.0)
    only(tb.end(12.0).check(), "no-offline-delivery", "2", "MA")


# -- uncertain windows --


@pytest.mark.parametrize("delivered", [True, False])
@pytest.mark.parametrize("op", ["register", "disconnect", "deregister"])
def test_op_concurrent_with_msend_accepts_both_outcomes(op: str, delivered: bool) -> None:
    tb = members("1") if op == "register" else members("1", "2")
    tb.op("2", op, 0.95, t1=1.2)  # overlaps MA's window [1.0, 1.01]
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    if delivered:
        tb.deliver("2", "MA", 1.1)
    assert tb.end(9.0).check().verdict == "pass"


@pytest.mark.parametrize("op", ["register", "disconnect", "deregister"])
def test_duplicate_still_fails_under_an_uncertain_window(op: str) -> None:
    tb = members("1") if op == "register" else members("1", "2")
    tb.op("2", op, 0.95, t1=1.2)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1").deliver("2", "MA", 1.1, 1.3)
    why = only(tb.end(9.0).check(), "no-duplicate", "2", "MA")
    assert "2 times, at 1.100, 1.300" in why


def test_concurrent_disconnect_then_quick_reconnect_owes_delivery_in_every_state() -> None:
    tb = members("1", "2")
    tb.op("2", "disconnect", 0.95, t1=1.2)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.reconnect("2", 1.5)
    why = only(tb.end(9.0).check(), "no-miss", "2", "MA")
    assert "online or offline (uncertain)" in why


def test_info_register_long_before_keeps_membership_uncertain() -> None:
    tb = TB().register("1", 0.1)
    tb.op("2", "register", 0.2, outcome="info", t1=5.2)
    tb.msend("1", "MA", 7.0).to_all("MA", 7.05, "1")
    assert tb.end(12.0).check().verdict == "pass"


def test_failed_op_did_not_happen() -> None:
    tb = members("1", "2")
    tb.op("2", "disconnect", 0.5, outcome="fail")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    only(tb.end(5.0).check(), "no-miss", "2", "MA")


# -- no-post-deregister --


def test_never_registered_participant_gets_a_message() -> None:
    tb = members("1")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    why = only(tb.end(5.0).check(), "no-post-deregister", "2", "MA")
    assert "p2 out at MA" in why and "delivered at 1.050" in why


def test_re_registered_participant_is_a_new_entrant() -> None:
    tb = members("1", "2").deregister("2", 0.5)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.register("2", 2.0).deliver("2", "MA", 2.05)
    only(tb.end(6.0).check(), "no-post-deregister", "2", "MA")


def test_offline_then_deregister_then_register_loses_the_message() -> None:
    tb = members("1", "2").disconnect("2", 0.5)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.deregister("2", 1.5).register("2", 2.0)
    assert tb.end(6.0).check().verdict == "pass"  # not delivered: right
    tb.deliver("2", "MA", 2.05)
    why = only(tb.end(6.0).check(), "no-post-deregister", "2", "MA")
    assert "ended with deregister invoked 1.500" in why


# -- immediacy --


def test_batched_delivery_to_an_online_member() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1").deliver("2", "MA", 2.5)
    why = only(tb.end(5.0).check(), "immediacy", "2", "MA")
    assert "2.500 - 1.010 = 1.490 > L 1.0" in why
    assert tb.end(5.0).check(latency_bound=2.0).verdict == "pass"


def test_late_delivery_at_reconnect_is_fine_when_a_disconnect_was_in_flight() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.disconnect("2", 1.5).reconnect("2", 2.5).deliver("2", "MA", 2.55)
    assert tb.end(6.0).check().verdict == "pass"


# -- no-offline-delivery --


def test_delivery_while_known_offline() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    tb.disconnect("2", 2.0)
    tb.msend("1", "MB", 3.0).to_all("MB", 3.05, "1")
    tb.msend("1", "MC", 3.1).to_all("MC", 3.15, "1", "2")  # sent while p2 offline
    tb.reconnect("2", 6.0).deliver("2", "MB", 6.05)
    v = tb.end(9.0).check()
    why = only(v, "no-offline-delivery", "2", "MC")
    assert "delivered at 3.150 before the offline period ended (reconnect invoked 6.000)" in why


def test_old_message_arriving_while_offline_past_tol() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.disconnect("2", 1.2)  # in flight: excuses the miss, not a delivery while offline
    tb.deliver("2", "MA", 2.5)
    tb.reconnect("2", 4.0)
    why = only(tb.end(9.0).check(), "no-offline-delivery", "2", "MA")
    assert "disconnect completed 1.210 + tol 1.0 = 2.210 < 2.500" in why
    assert "next reconnect invoked 4.000" in why


def test_delivery_within_tol_of_the_disconnect_is_accepted() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.disconnect("2", 1.2).deliver("2", "MA", 2.0).reconnect("2", 4.0)
    v = tb.end(9.0).check()
    assert v.verdict == "pass", v.summary()


def test_offline_forever_any_delivery_is_offline_delivery() -> None:
    tb = members("1", "2").disconnect("2", 0.5)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    why = only(tb.end(9.0).check(), "no-offline-delivery", "2", "MA")
    assert "no reconnect" in why


# -- no-duplicate / log generations --


def test_duplicate_across_log_generations() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    tb.event(2.0, type="log_reset", participant="2", reason="truncated")
    tb.deliver("2", "MA", 2.1)
    v = tb.end(5.0).check()
    only(v, "no-duplicate", "2", "MA")
    assert any("log reset" in n for n in v.notes)


# -- no-phantom --


def test_phantom_token_never_sent() -> None:
    tb = members("1", "2").deliver("2", "MZZ", 1.0)
    why = only(tb.end(5.0).check(), "no-phantom", "2", "MZZ")
    assert "no msend ever sent this token" in why


def test_token_delivered_before_its_msend_was_invoked() -> None:
    tb = members("1", "2")
    tb.deliver("2", "MA", 0.9)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    v = tb.end(5.0).check()
    why = only(v, "no-phantom", "2", "MA")
    assert "before its msend was invoked at 1.000" in why
    assert v.violations[0].sent == (1.0, 1.01)


def test_delivery_of_a_failed_msend_is_a_phantom() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0, outcome="fail")
    tb.deliver("2", "MA", 1.05)
    v = tb.end(5.0).check()
    assert "msend (op 3, invoked 1.000) failed" in only(v, "no-phantom", "2", "MA")
    assert v.rules["no-miss"].checked == 0


# -- port-released --


def test_failed_port_released_probe() -> None:
    tb = members("1", "2").disconnect("2", 1.0)
    tb.event(1.05, type="probe", participant="2", probe="port_released", port=41002, ok=False)
    tb.event(1.05, type="probe", participant="1", probe="port_released", port=41001, ok=True)
    tb.event(1.06, type="probe", participant="1", probe="something_else", ok=False)
    v = tb.end(5.0).check()
    why = only(v, "port-released", "2", None)
    assert "port 41002 of p2 could not be bound at 1.050" in why
    assert v.rules["port-released"].checked == 2


# -- noise, truncation, parameters, reports --


def test_noise_and_unknown_events_and_fields_are_ignored() -> None:
    tb = members("1", "2")
    tb.event(0.5, type="noise", participant="2", line_no=1, line="Welcome!")
    tb.event(0.6, type="wire", conn=1, participant="1", dir="to_coordinator", data="aGk=")
    tb.event(0.7, type="something_new", whatever=[1, 2])
    tb.event(0.8, type="output", target="1", stream="stdout", line="ok register")
    tb.msend("1", "MA", 1.0, extra_field=True).to_all("MA", 1.05, "1", "2")
    assert tb.end(5.0).check().verdict == "pass"


def test_truncated_trace_is_reported_and_judged_on_what_it_shows() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1", "2")
    tb.msend("1", "MB", 2.0, outcome="none")  # pending: window runs to the last event
    tb.deliver("1", "MB", 3.5).deliver("2", "MB", 3.5)
    v = tb.check()
    assert v.truncated and v.verdict == "pass"
    assert "TRUNCATED" in v.summary() and v.as_json()["truncated"] is True
    tb2 = members("1", "2").msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb2.event(4.0, type="noise", participant="1", line="x")
    v2 = tb2.check()
    assert v2.truncated and failed(v2) == {"no-miss"}


def test_parameter_precedence_keyword_over_header_over_default() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1").deliver("2", "MA", 2.5)
    assert tb.check().tolerance == 1.0 and tb.check().latency_bound == 1.0
    tb.header["latency_bound"] = 2.0
    assert tb.check().verdict == "pass" and tb.check().latency_bound == 2.0
    assert tb.check(latency_bound=1.0).verdict == "fail"
    del tb.header["latency_bound"]
    tb.header["checker"] = {"latency_bound": 3.0, "tolerance": 0.5}
    v = tb.check()
    assert (v.latency_bound, v.tolerance, v.verdict) == (3.0, 0.5, "pass")
    with pytest.raises(ValueError):
        tb.check(tolerance=-1.0)


def test_boundary_scenario_is_named_in_reports() -> None:
    tb = TB(scenario={"name": "expiry-edge", "boundary": True}, tolerance=0.25)
    v = tb.register("1", 0.1).end(2.0).check()
    assert v.boundary and v.as_json()["boundary"] is True
    assert "BOUNDARY scenario expiry-edge" in v.summary()
    assert TB(scenario={"name": "basic-boundary-2"}).end(1.0).check().boundary
    assert not TB(scenario={"name": "basic"}).end(1.0).check().boundary


def test_violations_are_ordered_by_time_then_rule_participant_message() -> None:
    tb = members("1", "2", "3")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.deliver("3", "MZ", 0.5).deliver("2", "MZ", 0.5)
    v = tb.end(5.0).check()
    keys = [(x.at, x.rule, x.participant, x.message) for x in v.violations]
    assert keys == sorted(keys)
    assert [(x.rule, x.participant) for x in v.violations] == [
        ("no-phantom", "2"),
        ("no-phantom", "3"),
        ("no-miss", "2"),
        ("no-miss", "3"),
    ]


def test_json_has_the_contract_shape() -> None:
    tb = members("1", "2")
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    doc = tb.end(5.0).check().as_json()
    assert {"verdict", "truncated", "rules", "violations"} <= set(doc)
    assert set(doc["rules"]) == set(RULES)
    assert doc["rules"]["no-miss"] == {"status": "fail", "checked": 3, "violations": 1}
    (viol,) = doc["violations"]
    assert set(viol) == {"rule", "participant", "message", "sent", "delivered_at", "why"}
    assert viol["sent"] == [1.0, 1.01] and viol["delivered_at"] == []
    json.dumps(doc)


def test_order_report_fifo_and_total_order() -> None:
    tb = members("1", "2", "3")
    tb.msend("1", "MA", 1.0).msend("1", "MB", 1.5)
    tb.deliver("1", "MA", 1.05).deliver("1", "MB", 1.55)
    tb.deliver("2", "MA", 1.05).deliver("2", "MB", 1.55)
    tb.deliver("3", "MB", 1.6).deliver("3", "MA", 1.7)  # p3 reversed, late but within L
    v = tb.end(5.0).check()
    assert v.verdict == "pass"  # order is reported, never a violation
    assert v.order.fifo_count == 1 and "p3 got MA" in v.order.fifo_examples[0]
    assert v.order.total_pairs == 2 and v.order.pairs_checked == 3
    assert v.as_json()["order"]["total_order"]["disagreeing_pairs"] == 2


def test_disconnect_right_after_reconnect_moves_the_obligation() -> None:
    tb = members("1", "2").disconnect("2", 0.5)
    tb.msend("1", "MA", 1.0).to_all("MA", 1.05, "1")
    tb.reconnect("2", 1.5).disconnect("2", 1.7)  # delivery at reconnect may have been in flight
    assert tb.end(9.0).check().verdict == "pass"
    tb.reconnect("2", 1.9)  # back within td - tol of s0: now it is owed
    why = only(tb.end(9.0).check(), "no-miss", "2", "MA")
    assert "reconnected [1.900, 1.910]" in why

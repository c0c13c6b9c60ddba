"""The op-completion machine (harness/running/opmachine.py), driven without sockets or clocks: each
test feeds the events a real program produces and asserts the completion a careful human
would record."""

from __future__ import annotations

import re
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.running import opmachine as om
from harness.running.opmachine import DEFAULT_REFUSAL, OpMachine, Policy

DONE = re.compile(r"^(ok|error) ")


def machine(
    complete_on: str = om.REPLY,
    done: Optional[str] = None,
    reply: Optional[str] = None,
    refusal: Optional[str] = DEFAULT_REFUSAL,
) -> OpMachine:
    return OpMachine(
        Policy(
            complete_on=complete_on,
            done_re=re.compile(done) if done else None,
            reply_re=re.compile(reply) if reply else None,
            refusal_re=re.compile(refusal) if refusal else None,
            latency=1.0,
            op_timeout=5.0,
        )
    )


def settles(actions: list[om.Action]) -> list[om.Settle]:
    return [a for a in actions if isinstance(a, om.Settle)]


def only_settle(actions: list[om.Action]) -> om.Settle:
    found = settles(actions)
    assert len(found) == 1, actions
    return found[0]


def test_first_reply_byte_completes_an_op_that_sent_bytes() -> None:
    m = machine()
    m.handle(om.Invoke(1, "register", 0.0))
    assert [type(a) for a in m.handle(om.Request(7, 0.01))] == [om.RequestSeen]
    s = only_settle(m.handle(om.Reply(7, b"OK\n", 0.02)))
    assert (s.op, s.outcome, dict(s.fields)["request_at"], dict(s.fields)["reply"]) == (
        1,
        "ok",
        0.01,
        "OK",
    )


def test_reply_on_a_connection_that_sent_nothing_does_not_complete() -> None:
    m = machine()
    m.handle(om.Invoke(1, "msend", 0.0))
    assert m.handle(om.Reply(3, b"NOTICE 2 joined\n", 0.01)) == []
    m.handle(om.Request(4, 0.02))
    assert only_settle(m.handle(om.Close(4, 0.03))).outcome == "ok"


def test_java_stream_header_does_not_complete_when_the_reply_pattern_waits_for_ok() -> None:
    m = machine(reply="OK|ERR")
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    assert m.handle(om.Reply(1, b"\xac\xed\x00\x05", 0.011)) == []
    assert only_settle(m.handle(om.Reply(1, b"OK\n", 0.31))).t == 0.31


def test_notice_lines_on_a_persistent_connection_do_not_complete() -> None:
    m = machine(reply=r"(?m)^ACK")
    m.handle(om.Invoke(1, "disconnect", 0.0))
    m.handle(om.Request(1, 0.01))
    assert m.handle(om.Reply(1, b"NOTICE 3 joined\n", 0.02)) == []
    assert only_settle(m.handle(om.Reply(1, b"ACK disconnect\n", 0.05))).outcome == "ok"


@pytest.mark.parametrize(
    "reply",
    [
        b"ERR Unable to accept more clients\n",
        b"already connected or not found\n",
        b'{"ok": false, "error": "x"}',
    ],
)
def test_a_refusing_reply_fails_the_op_and_names_the_reply(reply: bytes) -> None:
    m = machine()
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    s = only_settle(m.handle(om.Reply(1, reply, 0.02)))
    assert s.outcome == "fail"
    assert dict(s.fields)["refusal"] == " ".join(reply.decode().split())


def test_no_refusal_pattern_means_a_refusal_word_is_just_a_reply() -> None:
    m = machine(refusal=None)
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    assert only_settle(m.handle(om.Reply(1, b"ERR no\n", 0.02))).outcome == "ok"


def test_no_reply_settles_unacknowledged_at_request_plus_latency() -> None:
    m = machine()
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 1.5))  # a slow program: the request leaves 1.5 s after the command
    assert m.deadline() == 2.5
    assert m.handle(om.Tick(2.4)) == []
    s = only_settle(m.handle(om.Tick(2.5)))
    assert s.outcome == "ok" and dict(s.fields)["acknowledged"] is False
    assert dict(s.fields)["request_at"] == 1.5


def test_a_late_reply_after_the_bound_is_a_late_acknowledgement() -> None:
    m = machine()
    m.handle(om.Invoke(1, "msend", 0.0))
    m.handle(om.Request(1, 0.01))
    only_settle(m.handle(om.Tick(1.01)))
    assert m.handle(om.Reply(1, b"OK 1\n", 2.0)) == [om.LateAck(1, 2.0, "reply")]


def test_nothing_sent_fails_at_op_timeout() -> None:
    m = machine()
    m.handle(om.Invoke(1, "register", 0.0))
    assert m.deadline() == 5.0
    s = only_settle(m.handle(om.Tick(5.0)))
    assert s.outcome == "fail" and "nothing reached the coordinator" in dict(s.fields)["error"]


def test_refused_connections_are_named() -> None:
    m = machine()
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Refused(0.01))
    assert "refused" in dict(only_settle(m.handle(om.Tick(5.0))).fields)["error"]


def test_a_done_line_before_any_request_byte_is_a_local_failure() -> None:
    m = machine(om.EITHER, done=DONE.pattern, refusal=None)
    m.handle(om.Invoke(1, "msend", 0.0))
    s = only_settle(m.handle(om.Line("ok msend 1", 0.01)))
    assert s.outcome == "fail" and "participant said: ok msend 1" in dict(s.fields)["error"]


def test_a_done_line_after_the_request_completes_when_lines_count() -> None:
    m = machine(om.LINE, done=DONE.pattern)
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    assert m.handle(om.Reply(1, b"OK\n", 0.02)) == []  # only the line completes
    assert only_settle(m.handle(om.Line("ok register", 0.03))).outcome == "ok"


def test_a_refusal_line_fails_the_pending_op() -> None:
    m = machine(om.EITHER, done=DONE.pattern)
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    s = only_settle(m.handle(om.Line("error register: already registered", 0.02)))
    assert s.outcome == "fail" and dict(s.fields)["by"] == "coordinator"


def test_banner_lines_before_the_first_command_are_ignored() -> None:
    m = machine(om.EITHER, done=r"^ok")
    assert m.handle(om.Line("ok, welcome!", 0.0)) == []
    m.handle(om.Invoke(1, "register", 0.1))
    m.handle(om.Request(1, 0.11))
    assert only_settle(m.handle(om.Line("ok register", 0.12))).op == 1


def test_the_nth_done_line_answers_the_nth_command_only() -> None:
    m = machine(om.EITHER, done=DONE.pattern)
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    only_settle(m.handle(om.Reply(1, b"OK\n", 0.02)))
    m.handle(om.Invoke(2, "msend", 0.1))
    m.handle(om.Request(2, 0.11))
    assert settles(m.handle(om.Line("ok register", 0.12))) == []  # late line of command 1
    assert only_settle(m.handle(om.Line("ok msend 1", 0.13))).op == 2


def test_a_reply_line_refusing_an_op_already_settled_is_reported() -> None:
    m = machine(om.EITHER, done=DONE.pattern)
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    only_settle(m.handle(om.Reply(1, b"\x00\x01", 0.02)))
    assert m.handle(om.Line("error register: not accepted", 0.03)) == [
        om.Refusal(1, 0.03, "error register: not accepted")
    ]


def test_a_pause_makes_the_outcome_unknown_and_a_resume_restarts_the_bound() -> None:
    m = machine()
    m.handle(om.Invoke(1, "msend", 0.0))
    m.handle(om.Request(1, 0.01))
    m.handle(om.Hold(0.5))
    assert m.deadline() == 5.0
    m.handle(om.Release(2.0))
    assert m.deadline() == 3.0
    held = machine()
    held.handle(om.Hold(0.0))
    held.handle(om.Invoke(1, "msend", 0.1))
    held.handle(om.Request(1, 0.2))
    assert only_settle(held.handle(om.Tick(5.1))).outcome == "info"


def test_a_partition_cut_makes_the_outcome_unknown() -> None:
    m = machine()
    m.handle(om.Invoke(1, "msend", 0.0))
    m.handle(om.Request(1, 0.01))
    m.handle(om.Cut(1, 0.02))
    assert only_settle(m.handle(om.Tick(5.0))).outcome == "info"


def test_a_kill_settles_info() -> None:
    m = machine()
    m.handle(om.Invoke(1, "msend", 0.0))
    assert only_settle(m.handle(om.Killed(0.5))).outcome == "info"


@given(
    st.lists(
        st.one_of(
            st.builds(om.Request, st.integers(1, 3), st.floats(0, 10)),
            st.builds(om.Reply, st.integers(1, 3), st.binary(max_size=8), st.floats(0, 10)),
            st.builds(om.Close, st.integers(1, 3), st.floats(0, 10)),
            st.builds(om.Line, st.sampled_from(["ok x", "error y", "hello"]), st.floats(0, 10)),
            st.builds(om.Tick, st.floats(0, 10)),
            st.builds(om.Refused, st.floats(0, 10)),
        ),
        max_size=12,
    )
)
def test_every_op_settles_at_most_once_and_always_by_its_timeout(events: list[om.Event]) -> None:
    m = machine(om.EITHER, done=DONE.pattern)
    actions = m.handle(om.Invoke(1, "msend", 0.0))
    for event in sorted(events, key=lambda e: e.t):
        actions += m.handle(event)
    actions += m.handle(om.Tick(5.0))
    assert len(settles(actions)) == 1
    assert m.armed is None


def test_a_coordinator_close_after_the_participant_gave_up_is_no_acknowledgement() -> None:
    m = machine()
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    assert m.handle(om.Hangup(1, 0.31)) == []  # the participant waited 0.3 s, then closed
    assert m.handle(om.Close(1, 0.32)) == []
    s = only_settle(m.handle(om.Tick(1.01)))
    assert dict(s.fields)["acknowledged"] is False


def test_a_line_without_any_coordinator_byte_is_done_but_not_acknowledged() -> None:
    m = machine(om.EITHER, done=DONE.pattern)
    m.handle(om.Invoke(1, "register", 0.0))
    m.handle(om.Request(1, 0.01))
    s = only_settle(m.handle(om.Line("ok register", 0.31)))  # it gave up waiting, said ok
    assert s.outcome == "ok" and dict(s.fields)["acknowledged"] is False
    assert m.handle(om.Reply(1, b"OK\n", 0.5)) == [om.LateAck(1, 0.5, "reply")]

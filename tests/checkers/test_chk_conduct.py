"""The conduct rules (acknowledged, async-send, no-crash, thread-b-ready) and the "not
exercised" check, on small hand-made traces: each test is one situation a grader meets."""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest

import checkers

pytestmark = pytest.mark.timeout(30)


def trace(events: list[dict[str, Any]], **header: Any) -> checkers.Verdict:
    head = {
        "type": "header",
        "format": "pams-trace",
        "version": 1,
        "td": 2.0,
        "participants": ["1", "2", "3"],
        "op_timeout": 5.0,
        **header,
    }
    end = max([e["t"] for e in events], default=0.0) + 3.0
    lines = [head, *sorted(events, key=lambda e: e["t"]), {"type": "end", "t": end}]
    return checkers.check_lines([json.dumps(e) for e in lines])


def op(n: int, p: str, f: str, t0: float, t1: Optional[float], outcome: str = "ok", **kw: Any):
    inv: dict[str, Any] = {"type": "invoke", "t": t0, "op": n, "participant": p, "f": f}
    if f == "msend":
        inv["message"] = f"M{n:08d}"
    done = [] if t1 is None else [{"type": outcome, "t": t1, "op": n, **kw}]
    return [inv, *done]


def registered(t: float = 0.1) -> list[dict[str, Any]]:
    return [e for i, p in enumerate("123", 1) for e in op(i, p, "register", t * i, t * i + 0.01)]


def failed(v: checkers.Verdict) -> set[str]:
    return {name for name, r in v.rules.items() if r.status == "fail"}


def test_a_refusal_of_a_valid_register_names_the_reply() -> None:
    events = registered()[:4] + op(3, "3", "register", 0.3, 0.31, "fail", refusal="ERR full")
    v = trace(events)
    assert failed(v) == {"acknowledged"}
    assert "refused: 'ERR full', although p3 was out" in v.violations[0].why


def test_a_refusal_of_an_invalid_command_is_right() -> None:
    events = registered() + op(4, "1", "register", 1.0, 1.01, "fail", refusal="ERR already")
    assert failed(trace(events)) == set()


def test_a_partition_excuses_a_failed_command() -> None:
    events = registered() + op(4, "2", "msend", 1.0, 1.2, "fail", error="connection refused")
    events += [
        {"type": "fault", "t": 0.9, "fault": "partition", "target": "2"},
        {"type": "fault", "t": 2.0, "fault": "heal", "target": "2"},
    ]
    assert "acknowledged" not in failed(trace(events))


def test_an_unacknowledged_op_with_a_late_ack_is_acknowledged() -> None:
    sent = op(4, "1", "msend", 1.0, 2.0, acknowledged=False, request_at=1.0)
    late = {"type": "ack", "t": 2.5, "op": 4, "how": "reply"}
    deliveries = [
        {"type": "deliver", "t": 1.1, "participant": p, "message": "M00000004"} for p in "123"
    ]
    assert failed(trace(registered() + sent + [late] + deliveries)) == set()
    assert failed(trace(registered() + sent + deliveries)) == {"acknowledged"}


def test_a_blocked_sender_fails_async_send_only_while_another_member_is_paused() -> None:
    slow = op(4, "1", "msend", 1.2, 2.2, acknowledged=False, request_at=1.2)
    slow.append({"type": "ack", "t": 3.1, "op": 4, "how": "reply"})
    deliveries = [
        {"type": "deliver", "t": 1.3, "participant": "1", "message": "M00000004"},
        {"type": "deliver", "t": 1.3, "participant": "2", "message": "M00000004"},
        {"type": "deliver", "t": 3.05, "participant": "3", "message": "M00000004"},
    ]
    pause = [
        {"type": "fault", "t": 1.0, "fault": "pause", "target": "3"},
        {"type": "fault", "t": 3.0, "fault": "resume", "target": "3"},
    ]
    v = trace(registered() + slow + deliveries + pause)
    assert failed(v) == {"async-send"}
    assert "while p3 paused [1.000, 3.000]" in v.violations[0].why
    assert "async-send" not in failed(trace(registered() + slow + deliveries))


def test_a_crash_names_status_and_stderr_and_a_declared_deregister_exit_is_none() -> None:
    crash = [
        {"type": "output", "t": 1.4, "target": "coordinator", "stream": "stderr", "line": "boom"},
        {"type": "process", "t": 1.5, "target": "coordinator", "event": "exit", "returncode": 3},
    ]
    v = trace(registered() + crash)
    assert failed(v) == {"no-crash"}
    assert "status 3 at 1.500 without being asked; last stderr: 'boom'" in v.violations[0].why
    leave = op(4, "3", "deregister", 1.0, 1.01)
    leave.append({"type": "process", "t": 1.02, "target": "3", "event": "exit", "returncode": 0})
    assert failed(trace(registered() + leave, exit_on_deregister=True)) == set()
    assert failed(trace(registered() + leave)) == {"no-crash"}


def test_thread_b_not_listening_at_the_request_fails_thread_b_ready() -> None:
    probe = {"type": "probe", "t": 0.105, "participant": "1", "probe": "listening"}
    probe.update(op=1, port=41001, ok=False)
    v = trace([*registered(), probe])
    assert failed(v) == {"thread-b-ready"}


def test_a_run_that_shows_nothing_it_promised_is_not_exercised() -> None:
    expect = [{"kind": "owed-at-reconnect", "rule": "no-miss", "count": 1}]
    v = trace(registered(), scenario={"name": "x", "expect": expect})
    assert failed(v) == {"no-miss"}
    (x,) = v.violations
    assert x.unexercised and x.as_json()["not_exercised"] is True
    assert "needs 1 message(s) owed at one reconnect" in x.why and "showed 0" in x.why

"""The one registry of rules (docs/rules.md): name, report column, one-line summary, an
example violation line, and the check: a function of the read-only `Context`. Verdicts, the
grade table, `pams check --help` and the README's rule table all read it
(tests/checkers/test_chk_cli.py keeps the README in step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from checkers import conduct, delivery
from checkers.context import Context
from checkers.model import RuleOutput


@dataclass(frozen=True)
class Rule:
    """One rule: `name` as in traces and reports, `column` its short grade-table heading,
    `summary` what a violation is, `example` a violation line as `pams check` prints it;
    `check` finds its violations; `assignment` marks the four rules the assignment states."""

    name: str
    column: str
    summary: str
    example: str
    check: Callable[[Context], RuleOutput]
    assignment: bool = False


RULEBOOK: tuple[Rule, ...] = (
    Rule(
        "no-miss",
        "miss",
        "m owed to p (online at m, or offline and reconnected within td - tol) never arrived; "
        "exempt when p was killed while it may have been in flight",
        "no-miss p2 M0000007: p2 offline at M0000007 (sent [3.012, 3.020]): reconnected "
        "[9.500, 9.530]: 9.530 - 3.012 = 6.518 <= td 10.0 - tol 1.0; never delivered",
        delivery.no_miss,
        assignment=True,
    ),
    Rule(
        "no-expired",
        "expired",
        "m delivered at reconnect although it was more than td + tol old",
        "no-expired p2 M0000003: p2 offline at M0000003 (sent [1.000, 1.010]): reconnect "
        "invoked 16.000: 16.000 - 1.010 = 14.990 > td 10.0 + tol 1.0, yet delivered at 16.020",
        delivery.no_expired,
        assignment=True,
    ),
    Rule(
        "no-duplicate",
        "dup",
        "the same m delivered to p more than once (across log generations too)",
        "no-duplicate p1 M0000004: p1 got M0000004 2 times, at 2.020, 5.300",
        delivery.no_duplicate,
        assignment=True,
    ),
    Rule(
        "no-post-deregister",
        "dereg",
        "m delivered to p that was out at m, or offline at m with the period ended by deregister",
        "no-post-deregister p3 M0000009: p3 out at M0000009 (sent [7.000, 7.010]): not a "
        "member (never registered, or deregistered) when it was sent; delivered at 9.100",
        delivery.no_post_deregister,
        assignment=True,
    ),
    Rule(
        "immediacy",
        "immediate",
        "p online at m got it more than L after the msend completed, or after resume + L "
        "when p or the coordinator was paused (batched)",
        "immediacy p2 M0000005: p2 online at M0000005 (sent [4.000, 4.010]): first delivery "
        "6.500 - 4.010 = 2.490 > L 1.0, no disconnect/deregister invoked by 5.010",
        delivery.immediacy,
    ),
    Rule(
        "no-offline-delivery",
        "offline",
        "a delivery while p was known offline (thread-B should have released its port)",
        "no-offline-delivery p2 M0000006: p2 offline at M0000006 (sent [5.000, 5.010]): "
        "delivered at 5.500 before the offline period ended (reconnect invoked 8.000)",
        delivery.no_offline_delivery,
    ),
    Rule(
        "no-phantom",
        "phantom",
        "a delivered token that no (successful) msend sent, or delivered before its msend",
        "no-phantom p1 MZZZZZZZ1: p1 got MZZZZZZZ1 at 3.000 but no msend ever sent this token",
        delivery.no_phantom,
    ),
    Rule(
        "port-released",
        "port",
        "thread-B still held its port right after disconnect/deregister completed",
        "port-released p2 -: port 41002 of p2 could not be bound at 6.100, right after its "
        "disconnect/deregister completed",
        delivery.port_released,
    ),
    Rule(
        "acknowledged",
        "ack",
        "a valid command got no acknowledgement from the coordinator within op_timeout, or "
        "was refused (the reply is named)",
        "acknowledged p4 -: register (op 4, invoked 0.150) refused: 'ERR Unable to accept "
        "more clients', although p4 was out, so the command was valid",
        conduct.acknowledged,
    ),
    Rule(
        "async-send",
        "async",
        "an msend acknowledged more than L after its request (or never) while another member "
        "was paused or partitioned: the sender waited for deliveries",
        "async-send p1 M00000004: msend M00000004 (op 9) acknowledged 2.310 s after its "
        "request reached the coordinator at 1.302 (> L 1) while p3 paused [1.000, 3.000]: the "
        "sender waited for deliveries",
        conduct.async_send,
    ),
    Rule(
        "no-crash",
        "crash",
        "a coordinator or participant exited or died without the harness asking (a kill, or a "
        "deregister the adapter declares as exiting)",
        "no-crash coordinator -: the coordinator exited with status 3 at 1.512 without being "
        "asked; last stderr: 'coordinator: fatal: out of threads'",
        conduct.no_crash,
    ),
    Rule(
        "thread-b-ready",
        "ready",
        "thread-B was not listening on its port when the register/reconnect request reached "
        "the coordinator (it must be operational before the request is sent)",
        "thread-b-ready p2 -: port 41002 was not listening when p2's register/reconnect "
        "request (op 2) reached the coordinator at 0.412",
        delivery.thread_b_ready,
    ),
)
RULES: tuple[str, ...] = tuple(r.name for r in RULEBOOK)
BY_NAME: dict[str, Rule] = {r.name: r for r in RULEBOOK}

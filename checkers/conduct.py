"""Rules on how the programs behave rather than on what they deliver (docs/rules.md):
`acknowledged` (every valid command is acknowledged by the coordinator within op_timeout and
not refused), `async-send` (an msend is acknowledged within L while another member is paused
or partitioned), `no-crash` (no process exits without the harness asking). Pure."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping

from checkers.context import Context
from checkers.faults import FaultModel
from checkers.model import Params, RuleOutput
from checkers.timeline import OFFLINE, ONLINE, OUT, Timeline
from checkers.trace import COORDINATOR, Op, Trace
from checkers.verdict import Violation, fmt_t

DEFAULT_OP_TIMEOUT = 5.0
VALID_FROM = {
    "register": frozenset((OUT,)),
    "disconnect": frozenset((ONLINE,)),
    "reconnect": frozenset((OFFLINE,)),
    "deregister": frozenset((ONLINE, OFFLINE)),
    "msend": frozenset((ONLINE,)),
}


def acknowledged(ctx: Context) -> RuleOutput:
    found = tuple(_acknowledged(ctx.trace, ctx.p, ctx.timelines, ctx.faults))
    return RuleOutput(found, len(ctx.trace.ops))


def async_send(ctx: Context) -> RuleOutput:
    found = tuple(_async_send(ctx.trace, ctx.p, ctx.faults))
    return RuleOutput(found, sum(op.f == "msend" for op in ctx.trace.ops))


def no_crash(ctx: Context) -> RuleOutput:
    return RuleOutput(tuple(_crashes(ctx.trace)), len(ctx.names) + 1)


class _Obstacles:
    """Per participant, its pauses and partitions and the coordinator's pauses, by start,
    with the latest end so far: whether one meets a window is two look-ups."""

    def __init__(self, faults: FaultModel) -> None:
        self.faults = faults
        self.index: dict[str, tuple[list[float], list[float]]] = {}

    def meet(self, p: str, t0: float, t1: float) -> bool:
        """Whether a pause or partition of p, or a pause of the coordinator, meets [t0, t1]:
        it makes an op's outcome unknown."""
        found = self.index.get(p)
        if found is None:
            f = self.faults
            mine = f.pauses.get(p, ()) + f.pauses.get(COORDINATOR, ()) + f.partitions.get(p, ())
            starts, ends, high = [], [], -math.inf
            for x in sorted(mine, key=lambda x: x.t0):
                high = max(high, x.t1)
                starts.append(x.t0)
                ends.append(high)
            found = self.index[p] = (starts, ends)
        starts, ends = found
        i = bisect_right(starts, t1)
        return i > 0 and ends[i - 1] >= t0


def _killed_during(op: Op, until: float, faults: FaultModel) -> bool:
    return any(op.invoked <= k.t0 <= until for k in faults.kills.get(op.participant, ()))


def _acknowledged(
    trace: Trace, params: Params, timelines: Mapping[str, Timeline], faults: FaultModel
) -> Iterator[Violation]:
    timeout = trace.op_timeout if trace.op_timeout is not None else DEFAULT_OP_TIMEOUT
    obstacles = _Obstacles(faults)
    for op in trace.ops:
        until = op.invoked + timeout
        if op.outcome in ("info", "none") or (op.ok and op.acked):
            continue
        if op.ok and until > params.horizon and op.late_ack is None:
            if params.horizon - op.invoked < 2 * params.latency:
                continue  # too close to the end to tell: an acknowledgement may have come
            until = params.horizon
        if obstacles.meet(op.participant, op.invoked, until) or _killed_during(op, until, faults):
            continue
        token = f" {op.message}" if op.message else ""
        what = f"{op.f}{token} (op {op.id}, invoked {fmt_t(op.invoked)})"
        if op.ok:
            if op.late_ack is not None and op.late_ack <= until:
                continue
            within = (
                f"within op_timeout {timeout:g} s"
                if until == op.invoked + timeout
                else f"by the end of the run ({until - op.invoked:.1f} s later)"
            )
            why = (
                f"{what}: no acknowledgement from the coordinator {within} "
                f"(its request reached the coordinator at {fmt_t(op.t0)})"
            )
            yield Violation("acknowledged", op.participant, None, None, (), why, op.invoked)
            continue
        states, _ = timelines[op.participant].states(op.invoked, op.invoked)
        if not states <= VALID_FROM[op.f]:
            continue  # not valid in every state the earlier ops allow: a refusal may be right
        state = " or ".join(sorted(states))
        if op.refusal is not None:
            why = (
                f"{what} refused: {op.refusal!r}, although p{op.participant} was {state}, "
                "so the command was valid"
            )
        else:
            why = f"{what} got no acknowledgement: {op.error or 'failed'}"
        yield Violation("acknowledged", op.participant, None, None, (), why, op.invoked)


def _async_send(trace: Trace, params: Params, faults: FaultModel) -> Iterator[Violation]:
    lat = params.latency
    obstacles = faults.obstacles()
    if not obstacles:
        return
    for op in trace.ops:
        if op.f != "msend" or not op.ok:
            continue  # failed, or unknown because of a fault of the sender or the coordinator
        ack = op.t1 if op.ok and op.acked else op.late_ack
        if ack is not None and ack - op.t0 <= lat:
            continue
        if ack is None and params.horizon < op.t0 + lat:
            continue
        blocking = [
            x for x in obstacles if x.target != op.participant and x.t0 <= op.t0 + lat <= x.t1
        ]
        if not blocking:
            continue
        took = (
            f"acknowledged {ack - op.t0:.3f} s after"
            if ack is not None
            else "never acknowledged after"
        )
        why = (
            f"msend {op.message} (op {op.id}) {took} its request reached the coordinator at "
            f"{fmt_t(op.t0)} (> L {lat:g}) while {', '.join(x.describe() for x in blocking)}: "
            "the sender waited for deliveries"
        )
        yield Violation("async-send", op.participant, op.message, None, (), why, op.t0)


def _crashes(trace: Trace) -> Iterator[Violation]:
    for exit in trace.exits:
        if (
            exit.target != COORDINATOR
            and trace.exit_on_deregister
            and _after_deregister(trace, exit.target, exit.t)
        ):
            continue
        who = "the coordinator" if exit.target == COORDINATOR else f"p{exit.target}"
        code = exit.returncode
        how = (
            f"was killed by signal {-code}"
            if isinstance(code, int) and code < 0
            else f"exited with status {code}"
        )
        last = f"; last stderr: {' | '.join(repr(x) for x in exit.stderr)}" if exit.stderr else ""
        why = f"{who} {how} at {fmt_t(exit.t)} without being asked{last}"
        yield Violation("no-crash", exit.target, None, None, (), why, exit.t)


def _after_deregister(trace: Trace, participant: str, t: float) -> bool:
    """True when p's last op invoked before t is a deregister that did not fail."""
    last = None
    for op in trace.ops:
        if op.participant == participant and op.invoked <= t:
            last = op
    return last is not None and last.f == "deregister" and last.outcome != "fail"

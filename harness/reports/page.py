"""The model behind `pams show`'s page: what to draw for one trace, derived from the checkers'
public API (the verdict, the read-only `checkers.context.Context`, its membership timelines and
fault model), as compact column arrays the page's script draws without judging anything.

Lanes: index 0 is the coordinator, then the participants in `Context.names` order. Times are
harness seconds. Every drawn element names its trace line (1-based), so the page can show the
raw event; the raw lines themselves are kept apart (`raw_lines`) so the page parses them only
when asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from checkers import Verdict, check_trace
from checkers.context import Context, build
from checkers.model import Params
from checkers.rulebook import BY_NAME
from checkers.timeline import OFFLINE, ONLINE, OUT
from checkers.trace import Trace, read_path
from checkers.traceformat import COORDINATOR

RAW_LINE_CHARS = 4000  # a raw line longer than this is cut in the page
RAW_TOTAL_CHARS = 64 << 20  # past this many characters of raw lines, later lines are left out
STATE_BITS = {ONLINE: 1, OFFLINE: 2, OUT: 4}
OUTCOMES = ("ok", "unacknowledged", "fail", "refused", "info", "none")
GROUPS = {"wire": "wire", "wire_close": "wire", "interpose": "wire", "output": "output"}
GROUPS.update({"noise": "log", "log_reset": "log", "process": "process", "probe": "probe"})
COMPLETED = ("ok", "fail", "info", "ack", "refused")


@dataclass(frozen=True)
class Scan:
    """What the page needs from the raw lines that the checkers do not keep."""

    header: dict[str, Any]
    lines: list[str]
    omitted: int  # raw lines left out (RAW_TOTAL_CHARS)
    op_lines: dict[Any, list[int]]  # op id -> its completion / ack / refused lines
    offsets: dict[int, float]  # fault line -> its offset (clock faults)
    side: dict[str, list[tuple[str, float, int, str]]]  # group -> (who, t, line, label)


def scan(path: Path) -> Scan:
    """One pass over the trace's raw lines (already validated by the checkers' reader)."""
    lines: list[str] = []
    op_lines: dict[Any, list[int]] = {}
    offsets: dict[int, float] = {}
    side: dict[str, list[tuple[str, float, int, str]]] = {g: [] for g in set(GROUPS.values())}
    header: dict[str, Any] = {}
    kept = omitted = 0
    for number, text in enumerate(_read(path), start=1):
        if kept + len(text) > RAW_TOTAL_CHARS:
            omitted += 1
            lines.append("")
        else:
            lines.append(text[:RAW_LINE_CHARS])
            kept += min(len(text), RAW_LINE_CHARS)
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        if number == 1:
            header = event
        elif kind in COMPLETED:
            op_lines.setdefault(event.get("op"), []).append(number)
        elif kind == "fault" and isinstance(event.get("offset"), (int, float)):
            offsets[number] = float(event["offset"])
        elif kind in GROUPS:
            _side(side, kind, event, number)
    return Scan(header, lines, omitted, op_lines, offsets, side)


def _read(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.rstrip("\r\n")
            if text.strip():
                yield text


def _side(side: dict, kind: str, event: dict[str, Any], number: int) -> None:
    who = event.get("participant", event.get("target"))
    t = event.get("t")
    if who is None or not isinstance(t, (int, float)):
        return
    label = kind
    if kind == "process":
        label = str(event.get("event", "process"))
        if label in ("exit", "kill") and "returncode" in event:
            label += f" {event['returncode']}"
    elif kind == "probe":
        if event.get("ok") is not False:
            return  # a passing probe is not drawn (its event is still in the raw lines)
        label = f"{event.get('probe')} probe failed"
    elif kind == "output":
        label = str(event.get("stream", "output"))
    side[GROUPS[kind]].append((str(who), float(t), number, label))


def _r(t: Optional[float]) -> Optional[float]:
    return None if t is None else round(t, 6)


def model(path: Path) -> tuple[dict[str, Any], list[str], Verdict]:
    """The page model of the trace at `path`, its raw lines and its verdict (TraceError if
    the trace is unreadable)."""
    trace = read_path(path)
    verdict = check_trace(trace)
    params = Params(trace.td, verdict.tolerance, verdict.latency_bound, trace.horizon)
    ctx = build(trace, params)
    raw = scan(path)
    lanes = [COORDINATOR, *(p for p in ctx.names if p != COORDINATOR)]
    lane = {name: i for i, name in enumerate(lanes)}
    ops, op_index = _ops(trace, lane, raw)
    msgs, msg_index = _messages(ctx, op_index)
    for i, at in enumerate(msgs["op"]):
        ops["msg"][at] = i
    dels = _deliveries(ctx, lane, msg_index)
    data = {
        "meta": _meta(path, trace, verdict, raw),
        "lanes": lanes,
        "ops": ops,
        "msgs": msgs,
        "dels": dels,
        "periods": _periods(ctx, lane),
        "windows": _windows(ctx, lane, op_index),
        "pauses": _pauses(ctx, lane),
        "faults": _faults(trace, lane, raw),
        "side": {g: _columns(rows, lane) for g, rows in raw.side.items()},
        "viol": _violations(verdict, lane, msg_index, ops, msgs, dels, trace.horizon),
    }
    return data, raw.lines, verdict


def _meta(path: Path, trace: Trace, verdict: Verdict, raw: Scan) -> dict[str, Any]:
    header = raw.header
    scenario = header.get("scenario")
    scenario = scenario if isinstance(scenario, dict) else {"name": scenario or ""}
    impl = header.get("implementation")
    rules = []
    for name, result in verdict.rules.items():
        unexercised = bool(result.violations) and all(v.unexercised for v in result.violations)
        status = "not exercised" if unexercised else result.status
        if status == "pass" and not result.checked:
            status = "n/a"  # the run gave the rule nothing to check
        rules.append(
            {
                "name": name,
                "status": status,
                "checked": result.checked,
                "violations": len(result.violations),
                "summary": BY_NAME[name].summary,
            }
        )
    return {
        "trace": str(path),
        "verdict": verdict.verdict,
        "truncated": verdict.truncated,
        "scenario": str(scenario.get("name") or verdict.scenario or ""),
        "description": str(scenario.get("description") or ""),
        "adapter": str(impl.get("name", "")) if isinstance(impl, dict) else "",
        "created": str(header.get("created", "")),
        "run_id": str(header.get("run_id", "")),
        "td": trace.td,
        "tolerance": verdict.tolerance,
        "latency_bound": verdict.latency_bound,
        "horizon": _r(trace.horizon),
        "events": trace.events,
        "rules": rules,
        "notes": [*verdict.notes, *verdict.order.summary_lines()],
        "omitted": raw.omitted,
    }


def _ops(trace: Trace, lane: dict[str, int], raw: Scan) -> tuple[dict[str, list], dict]:
    """Every invoked op: lane, f, invoke time, effect window [t0, t1] (t1 null: never
    completed), outcome (index into OUTCOMES), message (filled by `_messages`), lines."""
    cols: dict[str, list] = {k: [] for k in ("lane", "f", "inv", "t0", "t1", "out", "msg", "id")}
    cols["lines"] = []
    index = {}
    for i, op in enumerate(trace.ops):
        index[op.id] = i
        outcome = op.outcome
        if outcome == "fail" and op.refusal:
            outcome = "refused"
        elif outcome == "ok" and not op.acked and op.late_ack is None:
            outcome = "unacknowledged"
        cols["lane"].append(lane[op.participant])
        cols["f"].append(op.f)
        cols["inv"].append(_r(op.invoked))
        cols["t0"].append(_r(op.t0))
        cols["t1"].append(_r(op.t1))
        cols["out"].append(OUTCOMES.index(outcome))
        cols["msg"].append(-1)
        cols["id"].append(op.id)
        cols["lines"].append([op.line, *raw.op_lines.get(op.id, ())])
    return cols, index


def _messages(ctx: Context, op_index: dict) -> tuple[dict[str, list], dict[str, int]]:
    """Every msend token (failed ones too, not owed): its op, send window, whether owed."""
    cols: dict[str, list] = {k: [] for k in ("token", "op", "s0", "s1", "owed")}
    index: dict[str, int] = {}
    windows = {m.token: m for m in ctx.messages}
    for token, op in ctx.sends.items():
        m = windows.get(token)
        index[token] = len(cols["token"])
        cols["token"].append(token)
        cols["op"].append(op_index[op.id])
        cols["s0"].append(_r(m.s0 if m else op.t0))
        cols["s1"].append(_r(m.s1 if m else (op.t1 if op.t1 is not None else ctx.p.horizon)))
        cols["owed"].append(bool(m and m.owed))
    return cols, index


def _deliveries(ctx: Context, lane: dict[str, int], msg_index: dict[str, int]) -> dict:
    """Every delivery: receiver lane, time, message (-1: no msend sent it), trace line, and
    whether the checkers count it as a phantom."""
    phantom = {(x.participant, x.token, t) for x in ctx.phantoms for t in x.times}
    cols: dict[str, list] = {k: [] for k in ("lane", "t", "msg", "line", "phantom")}
    for d in ctx.trace.deliveries:
        cols["lane"].append(lane[d.participant])
        cols["t"].append(_r(d.t))
        cols["msg"].append(msg_index.get(d.message, -1))
        cols["line"].append(d.line)
        cols["phantom"].append(int((d.participant, d.message, d.t) in phantom))
    if any(m < 0 for m in cols["msg"]):
        pairs = zip(ctx.trace.deliveries, cols["msg"])
        cols["token"] = [d.message if m < 0 else "" for d, m in pairs]
    return cols


def _periods(ctx: Context, lane: dict[str, int]) -> dict[str, list]:
    """Per participant, maximal intervals of one set of possible membership states (bits:
    1 online, 2 offline, 4 out), as the checkers' timeline gives them at each instant."""
    cols: dict[str, list] = {k: [] for k in ("lane", "t0", "t1", "states")}
    horizon = ctx.p.horizon
    for p, tl in ctx.timelines.items():
        cuts = {0.0, horizon}
        for op in tl.ops:
            cuts.add(op.t0)
            cuts.add(op.t1 if op.t1 is not None else horizon)
        edges = sorted(t for t in cuts if 0.0 <= t <= horizon)
        for a, b in zip(edges, edges[1:]):
            states, _ = tl.states((a + b) / 2, (a + b) / 2)
            bits = sum(STATE_BITS[s] for s in states)
            if cols["lane"] and cols["lane"][-1] == lane[p] and cols["states"][-1] == bits:
                cols["t1"][-1] = _r(b)
                continue
            cols["lane"].append(lane[p])
            cols["t0"].append(_r(a))
            cols["t1"].append(_r(b))
            cols["states"].append(bits)
    return cols


def _windows(ctx: Context, lane: dict[str, int], op_index: dict) -> dict[str, list]:
    """The td window of each reconnect that did not fail (docs/rules.md): messages sent from
    `owed` (r1 - (td - tol)) on are owed at it; those sent before `expired` (r0 - (td + tol))
    must not be delivered; between the two either is allowed."""
    cols: dict[str, list] = {k: [] for k in ("lane", "op", "r0", "r1", "owed", "expired")}
    p = ctx.p
    for name, tl in ctx.timelines.items():
        for op in tl.ops:
            if op.f != "reconnect" or op.outcome == "fail" or op.id not in op_index:
                continue
            r1 = op.t1 if op.t1 is not None else p.horizon
            cols["lane"].append(lane[name])
            cols["op"].append(op_index[op.id])
            cols["r0"].append(_r(op.t0))
            cols["r1"].append(_r(r1))
            cols["owed"].append(_r(r1 - (p.td - p.tol)))
            cols["expired"].append(_r(op.t0 - (p.td + p.tol)))
    return cols


def _pauses(ctx: Context, lane: dict[str, int]) -> dict[str, list]:
    """Pauses (SIGSTOP ... resume) and partitions (partition ... heal) of each target."""
    cols: dict[str, list] = {k: [] for k in ("lane", "t0", "t1", "word", "resumed", "text")}
    groups = [*ctx.faults.pauses.values(), *ctx.faults.partitions.values()]
    for x in (x for group in groups for x in group):
        if x.target not in lane:
            continue
        cols["lane"].append(lane[x.target])
        cols["t0"].append(_r(x.t0))
        cols["t1"].append(_r(x.t1))
        cols["word"].append(x.word)
        cols["resumed"].append(x.resumed)
        cols["text"].append(x.describe())
    return cols


def _faults(trace: Trace, lane: dict[str, int], raw: Scan) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("lane", "t", "kind", "line", "offset")}
    for f in trace.faults:
        if f.target not in lane:
            continue
        cols["lane"].append(lane[f.target])
        cols["t"].append(_r(f.t))
        cols["kind"].append(f.fault)
        cols["line"].append(f.line)
        cols["offset"].append(raw.offsets.get(f.line))
    return cols


def _columns(rows: list[tuple[str, float, int, str]], lane: dict[str, int]) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("lane", "t", "line", "label")}
    for who, t, line, label in rows:
        if who in lane:
            cols["lane"].append(lane[who])
            cols["t"].append(_r(t))
            cols["line"].append(line)
            cols["label"].append(label)
    return cols


def _violations(
    verdict: Verdict,
    lane: dict[str, int],
    msg_index: dict[str, int],
    ops: dict[str, list],
    msgs: dict[str, list],
    dels: dict[str, list],
    horizon: float,
) -> list[dict[str, Any]]:
    """Every violation as the checkers gave it, with the lane, message, ops and deliveries it
    concerns: the message's msend and its deliveries to the participant at the violation's
    times; without a message, the participant's ops whose window holds the violation's time."""
    by_pair: dict[tuple[int, int], list[int]] = {}
    for i, (where, m) in enumerate(zip(dels["lane"], dels["msg"])):
        by_pair.setdefault((where, m), []).append(i)
    out = []
    for v in verdict.violations:
        where = lane.get(v.participant, 0)
        m = msg_index.get(v.message, -1) if v.message else -1
        got = {_r(t) for t in v.delivered_at}
        tokens = dels.get("token")
        if m >= 0:
            op_ids = [msgs["op"][m]]
            pair = by_pair.get((where, m), [])
        else:
            op_ids = _ops_holding(ops, where, v.at, horizon) if not v.message else []
            pair = [i for i in by_pair.get((where, -1), []) if tokens and tokens[i] == v.message]
        out.append(
            {
                "rule": v.rule,
                "lane": where,
                "who": v.participant,
                "msg": m,
                "token": v.message,
                "sent": list(v.sent) if v.sent is not None else None,
                "got": sorted(t for t in got if t is not None),
                "at": _r(v.at),
                "why": v.why,
                "line": v.line(),
                "unexercised": v.unexercised,
                "ops": op_ids,
                "dels": [i for i in pair if dels["t"][i] in got],
            }
        )
    return out


def _ops_holding(ops: dict[str, list], where: int, at: float, horizon: float) -> list[int]:
    """The ops of lane `where` whose window [invoke, completion] holds time `at`."""
    eps = 1e-6
    return [
        i
        for i, (o, inv, t1) in enumerate(zip(ops["lane"], ops["inv"], ops["t1"]))
        if o == where and inv - eps <= at <= (t1 if t1 is not None else horizon) + eps
    ]

"""The trace reader: every malformed input is a TraceError naming file, line and reason."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers import TraceError, check_lines, check_path
from checkers import trace as trace_module
from checkers.trace import read_lines

pytestmark = pytest.mark.timeout(60)

HEADER = {"type": "header", "format": "pams-trace", "version": 1, "td": 3.0, "participants": ["1"]}


def lines(*events: Any, header: Optional[dict] = None) -> list[str]:
    head = HEADER if header is None else header
    return [json.dumps(head)] + [e if isinstance(e, str) else json.dumps(e) for e in events]


def error_of(raw: list[Any], name: str = "t.jsonl") -> TraceError:
    with pytest.raises(TraceError) as info:
        check_lines(raw, name=name)
    return info.value


REG = {"type": "invoke", "t": 0.1, "op": 1, "participant": "1", "f": "register"}
REG_OK = {"type": "ok", "t": 0.2, "op": 1}


def test_error_string_and_attributes() -> None:
    e = error_of(lines("{oops"))
    assert (e.path, e.line) == ("t.jsonl", 2)
    assert str(e).startswith("t.jsonl:2: bad JSON")
    assert e.reason.startswith("bad JSON")


@pytest.mark.parametrize(
    ("raw", "line", "reason"),
    [
        (lines("[1, 2]"), 2, "not a JSON object (list)"),
        (['{"type": "invoke", "t": 0}'], 1, "first line must be the header"),
        (lines(header={**HEADER, "format": "other"}), 1, 'header format must be "pams-trace"'),
        (lines(header={**HEADER, "version": 2}), 1, "unknown trace version 2"),
        (lines(header={**HEADER, "version": True}), 1, "unknown trace version True"),
        (lines(header={**HEADER, "td": "3"}), 1, "header field td: must be a non-negative number"),
        (lines(header={**HEADER, "td": -1}), 1, "header field td: must be a non-negative number"),
        (lines(header={k: v for k, v in HEADER.items() if k != "td"}), 1, "td is missing"),
        (lines(header={**HEADER, "td": float("nan")}), 1, "header field td"),
        (lines(header={**HEADER, "tolerance": -1}), 1, "header field tolerance"),
        (
            lines(header={**HEADER, "checker": {"latency_bound": "x"}}),
            1,
            "header field latency_bound",
        ),
        (lines(header={**HEADER, "participants": "1,2"}), 1, "header field participants"),
        (lines({"t": 1.0}), 2, "event without type"),
        (lines({"type": "noise"}), 2, "noise event without numeric t"),
        (lines({"type": "noise", "t": "1"}), 2, "noise event without numeric t"),
        (lines({"type": "noise", "t": True}), 2, "noise event without numeric t"),
        (lines('{"type": "noise", "t": NaN}'), 2, "noise event without numeric t"),
        (lines({"type": "noise", "t": 2}, {"type": "noise", "t": 1.5}), 3, "t 1.5 decreases"),
        (lines(HEADER), 2, "second header"),
        (lines({**REG, "op": None}), 2, "invoke without op id"),
        (lines({**REG, "participant": None}), 2, "invoke of op 1 without participant"),
        (lines({**REG, "f": None}), 2, "invoke of op 1 without f"),
        (lines({**REG, "f": "multicast"}), 2, "unknown f 'multicast'"),
        (lines(REG, {**REG, "t": 0.3}), 3, "duplicate op id 1 (first invoked on line 2)"),
        (lines({**REG, "f": "msend"}), 2, "msend op 1 without message token"),
        (
            lines(
                {**REG, "f": "msend", "message": "MA"},
                {**REG, "op": 2, "f": "msend", "message": "MA"},
            ),
            3,
            "message token MA already sent by op 1 (line 2)",
        ),
        (lines({"type": "ok", "t": 1, "op": 9}), 2, "ok for unknown op 9"),
        (lines({"type": "info", "t": 1}), 2, "info without op id"),
        (
            lines(REG, REG_OK, {"type": "fail", "t": 0.3, "op": 1}),
            4,
            "second completion for op 1 (ok already on line 3)",
        ),
        (lines({"type": "deliver", "t": 1, "message": "MA"}), 2, "deliver without participant"),
        (lines({"type": "deliver", "t": 1, "participant": "1"}), 2, "deliver without message"),
        (
            lines({"type": "probe", "t": 1, "probe": "port_released", "ok": "no"}),
            2,
            "without boolean ok",
        ),
        (lines({"type": "end", "t": 1}, {"type": "noise", "t": 2}), 3, "noise event after end"),
    ],
)
def test_malformed_events_name_their_line(raw: list[str], line: int, reason: str) -> None:
    e = error_of(raw)
    assert e.line == line, str(e)
    assert reason in e.reason, str(e)
    assert str(e) == f"t.jsonl:{line}: {e.reason}"


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text(json.dumps(HEADER) + "\n\n   \n" + '{"type": "noise"}\n')
    with pytest.raises(TraceError) as info:
        check_path(path)
    assert (
        str(info.value) == f"{path}:4: noise event without numeric t (a finite number of seconds)"
    )


def test_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(HEADER).encode() + b'\n{"type": "noise", "t": 1, "line": "caf\xe9"}\n'
    )
    with pytest.raises(TraceError) as info:
        check_path(path)
    assert info.value.line == 2 and "not UTF-8" in info.value.reason


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(TraceError) as info:
        check_path(path)
    assert info.value.line == 1
    assert str(info.value) == f"{path}:1: empty file (no header line)"
    path.write_text("\n\n")
    with pytest.raises(TraceError, match="empty file"):
        check_path(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TraceError) as info:
        check_path(tmp_path / "nope.jsonl")
    assert info.value.line is None and "cannot read" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "nope.jsonl") + ": ")
    with pytest.raises(TraceError, match="is a directory"):
        check_path(tmp_path)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.jsonl"
        locked.write_text(json.dumps(HEADER) + "\n")
        locked.chmod(0)
        with pytest.raises(TraceError, match="cannot read"):
            check_path(locked)


def test_bytes_lines_and_path_objects_are_accepted(tmp_path: Path) -> None:
    raw = lines(REG, REG_OK, {"type": "end", "t": 1.0})
    assert check_lines([r.encode() for r in raw]).verdict == "pass"
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(raw) + "\n")
    assert check_path(path).verdict == "pass" and check_path(str(path)).name == str(path)


def test_reader_keeps_what_rules_need() -> None:
    raw = lines(
        {**REG, "participant": 1},  # integer ids become strings
        REG_OK,
        {"type": "invoke", "t": 0.3, "op": "x", "participant": "1", "f": "msend", "message": "MA"},
        {"type": "info", "t": 5.3, "op": "x", "reason": "timeout"},
        {"type": "wire", "t": 5.4, "conn": 1, "data": "AAAA" * 100},
        {"type": "deliver", "t": 5.5, "participant": "1", "message": "MA", "line": "MA"},
        {"type": "log_reset", "t": 5.6, "participant": "1", "reason": "deleted"},
        {
            "type": "probe",
            "t": 5.7,
            "participant": "1",
            "probe": "port_released",
            "port": 5,
            "ok": True,
        },
    )
    trace = read_lines(raw, name="r")
    assert trace.truncated and trace.horizon == 5.7 and trace.end is None
    reg, send = trace.ops
    assert (reg.participant, reg.f, reg.t0, reg.t1, reg.outcome) == (
        "1",
        "register",
        0.1,
        0.2,
        "ok",
    )
    assert (send.id, send.t1, send.outcome, send.message) == ("x", None, "info", "MA")
    assert [(d.t, d.participant, d.message, d.line) for d in trace.deliveries] == [
        (5.5, "1", "MA", 7)
    ]
    assert trace.log_resets == 1 and len(trace.probes) == 1 and trace.events == 8


def test_large_trace_is_judged_in_full(tmp_path: Path) -> None:
    """~120k events: every (message, participant) pair is judged (speed: `pams bench checkers`)."""
    path = tmp_path / "big.jsonl"
    ps = [str(i) for i in range(1, 9)]
    with path.open("w") as f:
        f.write(json.dumps({**HEADER, "participants": ps}) + "\n")
        op = 0
        for i, p in enumerate(ps):
            op += 1
            f.write(
                json.dumps(
                    {"type": "invoke", "t": 0.01 * i, "op": op, "participant": p, "f": "register"}
                )
                + "\n"
            )
            f.write(json.dumps({"type": "ok", "t": 0.01 * i + 0.001, "op": op}) + "\n")
        for k in range(12000):
            t = 1.0 + k * 0.01
            op += 1
            sender = ps[k % len(ps)]
            token = f"M{k:08d}"
            f.write(
                json.dumps(
                    {
                        "type": "invoke",
                        "t": t,
                        "op": op,
                        "participant": sender,
                        "f": "msend",
                        "message": token,
                    }
                )
                + "\n"
            )
            f.write(json.dumps({"type": "ok", "t": t + 0.001, "op": op}) + "\n")
            for p in ps:
                f.write(
                    json.dumps(
                        {"type": "deliver", "t": t + 0.002, "participant": p, "message": token}
                    )
                    + "\n"
                )
        f.write(json.dumps({"type": "end", "t": 200.0}) + "\n")
    v = check_path(path)
    assert v.verdict == "pass" and v.events > 120_000
    assert v.rules["no-miss"].checked == 12000 * 8


def test_td_zero_is_a_valid_header() -> None:
    """td = 0 (no persistence at all) is a legal coordinator config, so a legal trace too."""
    assert check_lines(lines(REG, REG_OK, header={**HEADER, "td": 0})).verdict == "pass"


# -- hostile input found by mutating traces (issue: bad input never crashes anything) --


@pytest.mark.parametrize(
    ("raw", "line", "reason"),
    [
        (lines('{"type": "noise", "t": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}"), 2, "nested"),
        (lines('{"type": "noise", "t": 1e400}'), 2, "noise event without numeric t"),
        (lines('{"type": "noise", "t": ' + "9" * 400 + "}"), 2, "without numeric t"),
        (lines('{"type": "noise", "t": ' + "9" * 5000 + "}"), 2, "4300 digits"),
        (['{"type": "header", "format": "pams-trace", "version": 1, "td": 1e400}'], 1, "got inf"),
        (
            ['{"type":"header","format":"pams-trace","version":1,"td":' + "9" * 5000 + "}"],
            1,
            "4300 digits",
        ),
        (lines({**REG, "op": 10**30}), 2, "invoke without op id"),
        (lines({**REG, "f": "x" * 10_000}), 2, "unknown f 'xxxxx"),
        (
            lines('{"type": "ok", "t": 0.2, "o'),
            2,
            "bad JSON: Unterminated string starting at column",
        ),
    ],
)
def test_hostile_values_are_one_line_errors(raw: list[str], line: int, reason: str) -> None:
    e = error_of(raw)
    assert e.line == line and reason in e.reason, str(e)
    assert len(str(e)) < 300 and "\n" not in str(e)


def test_a_last_line_cut_in_half_makes_a_truncated_trace(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    body = "\n".join(lines(REG, REG_OK)) + '\n{"type": "invoke", "t": 0.5, "op": 2, "partic'
    path.write_text(body)
    verdict = check_path(path)
    assert verdict.truncated and verdict.passed
    path.write_text(body + "\n")  # a complete bad line is still an error
    with pytest.raises(TraceError, match=":4: bad JSON"):
        check_path(path)


# -- fuzzing the reader: whatever the bytes, a Trace or a one-line TraceError --------------


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["invoke", "ok", "fail", "info", "deliver", "fault", "probe", "end", "x"]
        )
    },
    optional={
        "t": st.one_of(st.floats(0, 10), st.integers(-5, 10**400), st.text(max_size=3)),
        "op": st.one_of(st.integers(0, 3), st.integers(10**20, 10**25), st.text(max_size=3)),
        "participant": st.one_of(st.sampled_from(["1", "2"]), st.integers(), _JSON),
        "f": st.sampled_from(["register", "msend", "disconnect", "nope"]),
        "message": st.one_of(st.sampled_from(["M00000001", ""]), _JSON),
        "fault": st.one_of(st.sampled_from(["kill", "pause"]), _JSON),
        "target": st.one_of(st.sampled_from(["1", "coordinator"]), _JSON),
        "probe": st.sampled_from(["port_released", "listening"]),
        "ok": st.one_of(st.booleans(), _JSON),
        "acknowledged": _JSON,
        "request_at": _JSON,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_EVENT.map(json.dumps), st.text(max_size=40)), max_size=12))
def test_any_lines_give_a_trace_or_a_one_line_error(body: list[str]) -> None:
    try:
        check_lines([json.dumps(HEADER), *body])
    except TraceError as e:
        assert "\n" not in str(e) and len(str(e)) < 400


# -- the fast decoder (orjson, optional) reads exactly what the standard library reads -----


def _read_with(decoder: str, raw: list[Any]) -> Any:
    """What read_lines makes of `raw` with one decoder: a summary of the trace, or the
    error text."""
    saved = trace_module._fast_decode, trace_module.FAST_EXACT
    if decoder == "stdlib":
        trace_module._fast_decode, trace_module.FAST_EXACT = trace_module._stdlib_fast, True
    try:
        t = read_lines(raw, name="t.jsonl")
    except TraceError as e:
        return str(e)
    finally:
        trace_module._fast_decode, trace_module.FAST_EXACT = saved
    shown = (t.ops, list(t.deliveries), t.probes, t.faults, t.exits, t.participants)
    return repr((shown, t.events, t.end, t.last_t, t.log_resets, t.td, t.scenario))


_BIG = (2**63, 2**64, -(2**63) - 1, 10**20, 10**301, 10**400)
_BASES = (
    {"type": "deliver", "participant": "1", "message": "MA"},
    {"type": "invoke", "participant": "1", "f": "register"},
    {"type": "probe", "probe": "listening", "participant": "1", "ok": True},
    {"type": "process", "event": "exit", "target": "1"},
    {"type": "fault", "fault": "kill", "target": "1"},
    {"type": "output", "stream": "stderr", "target": "1", "line": "x"},
    {"type": "ok"},
)
_KEYS = ("participant", "target", "port", "returncode", "t", "op", "request_at")
_ODD = (
    "[" * 300 + "]" * 300,
    '{"type": "noise", "t": 1, "x": ' + "[" * 1000 + "]" * 1000 + "}",  # too deep for json
    '{"type": "noise", "t": 1, "x": ' + "[" * 150 + "]" * 150 + "}",
    '{"type": "noise", "t": NaN}',
    '{"type": "noise", "t": 1, "s": "\\ud800"}',
    '\ufeff{"type": "noise", "t": 1}',
    '{"type": "noise", "t": 1}\x0c',
    "18446744073709551616",
    '{"type": "process", "t": 1, "event": "exit", "target": 3.0, "returncode": 1.5}',
)
_PREFIX = [
    json.dumps({**HEADER, "participants": ["1", "2", str(10**20)]}),
    json.dumps({"type": "invoke", "t": 0.5, "op": 1, "participant": "1", "f": "msend",
                "message": "MA"}),
]  # fmt: skip


def test_the_fast_decoder_reads_what_the_standard_library_reads() -> None:
    """Every large integer in every field the reader keeps, and lines orjson and json treat
    differently (deep nesting, NaN, lone surrogates, a BOM, other whitespace)."""
    pytest.importorskip("orjson")
    odd = [json.dumps({**b, "t": 1, "op": 1, k: n}) for b in _BASES for k in _KEYS for n in _BIG]
    heads = [{**HEADER, k: n} for k in ("version", "td", "tolerance") for n in _BIG]
    heads += [{**HEADER, "participants": [n]} for n in _BIG]
    for head in heads:
        raw = [json.dumps(head), _PREFIX[1]]
        assert _read_with("orjson", raw) == _read_with("stdlib", raw), head
    for line in [*odd, *_ODD]:
        for raw in (
            [*_PREFIX, line],
            [x.encode("utf-8", "surrogatepass") + b"\n" for x in [*_PREFIX, line]],
        ):
            assert _read_with("orjson", raw) == _read_with("stdlib", raw), line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(_EVENT.map(json.dumps), st.sampled_from(_ODD), st.text(max_size=30)), max_size=8
    )
)
def test_the_fast_decoder_agrees_on_any_lines(body: list[str]) -> None:
    pytest.importorskip("orjson")
    raw = [*_PREFIX, *body]
    assert _read_with("orjson", raw) == _read_with("stdlib", raw)


def test_integers_beyond_64_bits_are_kept_exact() -> None:
    """orjson would make floats of them; the reader decodes such lines again with json."""
    big = 10**20
    raw = lines(
        {"type": "deliver", "t": 1, "participant": big, "message": "MA"},
        {"type": "probe", "t": 2, "probe": "port_released", "participant": "1", "ok": False,
         "port": big},
        {"type": "process", "t": 3, "event": "exit", "target": big, "returncode": -big},
    )  # fmt: skip
    trace = read_lines(raw)
    assert list(trace.deliveries)[0].participant == str(big)
    port, code = trace.probes[0].port, trace.exits[0].returncode
    assert (type(port), port, type(code), code) == (int, big, int, -big)

"""The reference wire grammar (`reference.wire`): the shared bounded number parser, short quoting
of refused input, and properties of every line parser (never raises; format -> parse round-trips).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.core import CoordinatorCore
from reference.wire import (
    MAX_DIGITS,
    PORTS,
    QUOTE_LIMIT,
    SEQS,
    Delivery,
    Deregister,
    Disconnect,
    Err,
    Msend,
    Ok,
    Reconnect,
    Register,
    Request,
    format_ack,
    format_delivery,
    format_request,
    parse_ack,
    parse_delivery,
    parse_number,
    parse_port,
    parse_reply,
    parse_request,
    parse_seconds,
    quote,
    reply_err,
    reply_ok,
)

HUGE = "9" * 5000  # over Python's 4,300-digit int() limit


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\u00b2",  # str.isdigit() is True, int() raises
        "\u0661\u0662\u0663\u0664\u0665",  # Arabic-Indic 12345: int() accepts it
        "\uff11\uff12",  # fullwidth 12
        "-1",
        "+1",
        " 1",
        "1 ",
        "1_0",
        "0x10",
        HUGE,
        "1" + "0" * 30,
        "1" * (MAX_DIGITS + 1),
    ],
)
def test_parse_number_takes_bounded_ascii_digits_only(text: str) -> None:
    assert parse_number(text, range(0, 10**40)) is None
    assert parse_number(text.encode("utf-8"), range(0, 10**40)) is None


def test_parse_number_checks_the_range() -> None:
    assert parse_number("0", SEQS) == 0
    assert parse_number(str(2**63 - 1), SEQS) == 2**63 - 1
    assert parse_number(str(2**63), SEQS) is None
    assert parse_number(b"0042", SEQS) == 42
    assert [parse_port(t) for t in ("0", "1", "65535", "65536")] == [None, 1, 65535, None]


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3.0), ("2.5", 2.5), ("0", 0.0), (".5", 0.5), ("1e-05", 1e-05), ("1e+16", 1e16)],
)
def test_parse_seconds_accepts_what_the_harness_writes(text: str, value: float) -> None:
    assert parse_seconds(text) == value


@pytest.mark.parametrize(
    "text", ["", "-1", "inf", "nan", "soon", "1e999", "\u0661\u0662", "\u00b2", "1_0", HUGE]
)
def test_parse_seconds_refuses_non_ascii_and_non_finite(text: str) -> None:
    assert parse_seconds(text) is None


@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_parse_seconds_reads_every_repr_of_a_finite_duration(td: float) -> None:
    assert parse_seconds(repr(td)) == td


def test_quote_cuts_long_input() -> None:
    assert quote("abc") == "'abc'"
    assert quote("x" * 10_000_000) == repr("x" * QUOTE_LIMIT) + "..."
    assert quote(b"y" * 100) == repr(b"y" * QUOTE_LIMIT) + "..."


# --- requests and replies -----------------------------------------------------------------------


def test_request_with_a_huge_or_unicode_port_is_refused_not_raised() -> None:
    """Regression (issue 12): a 5000-digit port made `int()` raise inside the coordinator."""
    core = CoordinatorCore(3.0)
    for port in (HUGE, "\u0661\u0662\u0663\u0664\u0665", "\u00b2"):
        outcome = core.handle(f"REGISTER 1 127.0.0.1 {port}", 0.0)
        assert outcome.reply.startswith("ERR bad port "), outcome.reply
        assert len(outcome.reply) < 100
    assert core.members() == {}


def test_refusals_quote_a_short_prefix() -> None:
    for line in ("FROB" + "x" * 1_000_000, "MSEND 1 " + "!" * 60_000, "DISCONNECT " + "/" * 60_000):
        reason = parse_request(line)
        assert isinstance(reason, str) and len(reason) < 100 and reason.endswith("..."), reason


_IDS = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)
_HOSTS = st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)
_TEXTS = st.from_regex(r"[A-Za-z0-9]{1,30}", fullmatch=True)
_PORTS = st.integers(PORTS.start, PORTS.stop - 1)
_SEQS = st.integers(SEQS.start, SEQS.stop - 1)
_REQUESTS = st.one_of(
    st.builds(Register, _IDS, _HOSTS, _PORTS),
    st.builds(Reconnect, _IDS, _HOSTS, _PORTS),
    st.builds(Deregister, _IDS),
    st.builds(Disconnect, _IDS),
    st.builds(Msend, _IDS, _TEXTS),
)
_PROTOCOLISH = st.sampled_from(
    ["REGISTER", "RECONNECT", "DEREGISTER", "DISCONNECT", "MSEND", "MSG", "ACK", "OK", "ERR"]
)
_WORDS = st.one_of(
    _PROTOCOLISH, st.text(max_size=12), st.integers().map(str), st.just(HUGE), st.just("\u00b2")
)
_LINES = st.one_of(
    st.text(),
    st.lists(_WORDS, max_size=5).map(" ".join),
    st.lists(_WORDS, max_size=5).map("\t".join),
)
_RAW = st.one_of(st.binary(), _LINES.map(lambda s: s.encode("utf-8")))


@given(_LINES)
def test_parse_request_never_raises(line: str) -> None:
    parsed = parse_request(line)
    if isinstance(parsed, str):
        assert "\n" not in parsed and len(parsed) < 200
    else:
        assert isinstance(parsed, (Register, Reconnect, Deregister, Disconnect, Msend))
        if isinstance(parsed, (Register, Reconnect)):
            assert parsed.port in PORTS


@given(_RAW)
def test_parse_request_of_decoded_bytes_never_raises(raw: bytes) -> None:
    for line in (raw.decode("latin-1"), raw.decode("utf-8", "replace")):
        assert isinstance(
            parse_request(line), (str, Register, Reconnect, Deregister, Disconnect, Msend)
        )


@given(_REQUESTS)
def test_request_round_trips(request: Request) -> None:
    line = format_request(request)
    assert parse_request(line) == request
    assert parse_request(line + "\r\n") == request
    verb, _, rest = line.partition(" ")
    assert parse_request(f"{verb.lower()}  {rest}") == request  # any case, any spacing


@given(
    st.one_of(st.just(""), _TEXTS),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126)),
)
def test_reply_round_trips(detail: str, reason: str) -> None:
    assert parse_reply(reply_ok(detail)) == Ok(detail)
    if reason:
        assert parse_reply(reply_err(reason) + "\n") == Err(reason)


@given(_LINES)
def test_parse_reply_never_raises(line: str) -> None:
    assert isinstance(parse_reply(line), (Ok, Err, str))


# --- deliveries and acks ------------------------------------------------------------------------


@given(_RAW)
def test_parse_delivery_and_ack_never_raise(raw: bytes) -> None:
    for line in (raw, raw.decode("latin-1")):
        delivery = parse_delivery(line)
        assert delivery is None or (isinstance(delivery, Delivery) and delivery.seq in SEQS)
        ack = parse_ack(line)
        assert ack is None or ack in SEQS


@given(_LINES)
def test_parse_delivery_and_ack_of_text_never_raise(line: str) -> None:
    delivery = parse_delivery(line)
    assert delivery is None or delivery.seq in SEQS
    ack = parse_ack(line)
    assert ack is None or ack in SEQS


@given(_SEQS, _IDS, _TEXTS)
def test_delivery_round_trips(seq: int, sender: str, text: str) -> None:
    line = format_delivery(seq, sender, text)
    assert parse_delivery(line) == Delivery(seq, sender, text)
    assert parse_delivery(line.encode() + b"\r") == Delivery(seq, sender, text)


@given(_SEQS)
def test_ack_round_trips(seq: int) -> None:
    assert parse_ack(format_ack(seq)) == seq
    assert parse_ack(format_ack(seq).encode() + b"\r") == seq


def test_delivery_text_keeps_its_bytes() -> None:
    delivery = parse_delivery(b"MSG 3 a caf\xc3\xa9\xff")
    assert delivery is not None
    assert delivery.text.encode("ascii", "surrogateescape") == b"caf\xc3\xa9\xff"


@pytest.mark.parametrize(
    "line",
    [
        "MSG " + HUGE + " x y",
        "MSG " + "1" + "0" * 30 + " x y",
        f"MSG {2**63} x y",
        "MSG -1 x y",
        "MSG \u00b2 x y",
        "MSG 1 x",
        "MSG 1 x y z",
        "MSG 1 x ",
    ],
)
def test_malformed_or_oversized_deliveries_are_refused(line: str) -> None:
    assert parse_delivery(line) is None
    assert parse_delivery(line.encode("utf-8")) is None


@pytest.mark.parametrize(
    "line", ["ACK " + HUGE, f"ACK {2**63}", "ACK -1", "ACK", "ACK 1 2", "ack 1"]
)
def test_malformed_or_oversized_acks_are_refused(line: str) -> None:
    assert parse_ack(line) is None
    assert parse_ack(line.encode()) is None
